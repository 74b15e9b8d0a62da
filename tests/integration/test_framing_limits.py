"""Chunk extensions and trailers are bounded by the header limit, on the guest
port of `openimds serve` and on `openimds proxy`: Beast 1.81 bounds neither,
so an endless trailer line once grew the server by hundreds of MB a second.

Real binaries on loopback only."""
from __future__ import annotations

import socket

import pytest

from openimds_harness import (IO_TIMEOUT_S, Proxy, instance, metric_sum, raw_body, raw_status,
                              rss_kib, split_endpoint, write_keys)

GUEST = "127.0.0.2"
NETWORK = "default"
HEADER_LIMIT = 8 * 1024  # --max-header-bytes default, both processes

HEAD = (b"POST /openstack/latest/password HTTP/1.1\r\nHost: 169.254.169.254\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")


def endless(host: str, port: int, prefix: bytes, filler: bytes, total: int) -> bytes:
    """Sends `prefix`, then `filler` repeatedly up to `total` bytes while the
    peer keeps reading; returns what the peer answered."""
    sock = socket.create_connection((host, port), timeout=IO_TIMEOUT_S,
                                    source_address=(GUEST, 0))
    received = b""
    try:
        sock.sendall(prefix)
        sent = 0
        while sent < total:
            try:
                sock.sendall(filler)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(filler)
        sock.settimeout(IO_TIMEOUT_S)
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    except (socket.timeout, TimeoutError):
        pass
    finally:
        sock.close()
    return received


CASES = {
    # "0\r\nX: " and then a header value that never ends.
    "endless trailer": (HEAD + b"0\r\nX-Trailer: ", b"a" * 65536),
    # A chunk-size line whose extension never ends.
    "endless extension": (HEAD + b"1;name=", b"b" * 65536),
    # Many complete chunks, each with an extension: together past the limit.
    "many extensions": (HEAD, b"1;" + b"e" * 1000 + b"\r\nx\r\n"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_serve_bounds_chunk_extensions_and_trailers(server, case):
    server.put_instance(instance("i-framing", GUEST))
    prefix, filler = CASES[case]
    host, port = server.guest_address()
    before = rss_kib(server.proc.pid)
    m0 = server.metrics()
    # 64 MiB offered; the server must stop reading long before.
    reply = endless(host, port, prefix, filler, 64 * 1024 * 1024)
    assert raw_status(reply) == 431, reply[:300]
    assert b"chunk extensions or trailers larger than 8192 bytes" in raw_body(reply), reply[:300]
    assert b"connection: close" in reply.lower(), reply[:300]
    assert rss_kib(server.proc.pid) - before < 32 * 1024  # far less than what was offered
    m1 = server.metrics()
    assert metric_sum(m1, "http_rejected_total", reason="header_too_large") == metric_sum(
        m0, "http_rejected_total", reason="header_too_large") + 1
    # The server goes on serving.
    r = server.get("/latest/meta-data/instance-id", source=GUEST)
    assert r.status == 200 and r.text == "i-framing", r


def test_serve_accepts_chunked_bodies_within_the_limit(server):
    server.put_instance(instance("i-framing-ok", GUEST))
    host, port = server.guest_address()
    body = b"4;ext=1\r\nabcd\r\n0\r\nX-Trailer: short\r\n\r\n"
    request = HEAD.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1) + body
    reply = endless(host, port, request, b"", 0)
    # Parsed to the end: whatever the password route answers, it is not a
    # framing refusal.
    assert raw_status(reply) not in (400, 431), reply[:300]


@pytest.fixture
def proxy(binary, workdir, server):
    keys = workdir / "proxy.keys"
    write_keys(keys, ("a", "secret-of-key-a-0123456789"))
    host, port = server.guest_address()
    p = Proxy(binary, workdir / "proxy", f"{host}:{port}", keys, NETWORK, GUEST).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.mark.parametrize("case", list(CASES))
def test_proxy_bounds_chunk_extensions_and_trailers(proxy, case):
    prefix, filler = CASES[case]
    host, port = split_endpoint(proxy.endpoint)
    before = rss_kib(proxy.proc.pid)
    reply = endless(host, port, prefix, filler, 64 * 1024 * 1024)
    assert raw_status(reply) == 431, reply[:300]
    assert b"chunk extensions or trailers larger than 8192 bytes" in raw_body(reply), reply[:300]
    assert rss_kib(proxy.proc.pid) - before < 32 * 1024
    assert metric_sum(proxy.metrics(), "proxy_rejected_total", reason="header_too_large") >= 1


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"


@pytest.mark.parametrize("coding", [b"xchunked", b"chunked, identity", b"gzip, chunked",
                                    b"identity"])
@pytest.mark.parametrize("via", ["serve", "proxy"])
def test_unknown_transfer_coding_is_400_and_closes(server, proxy, coding, via):
    """Anything but exactly "chunked" is refused with 400 and the connection
    closed: the bytes after it are never read as a second request."""
    server.put_instance(instance("i-te", GUEST))
    host, port = server.guest_address() if via == "serve" else split_endpoint(proxy.endpoint)
    request = (b"POST /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n"
               b"Transfer-Encoding: " + coding + b"\r\n\r\n" + SMUGGLED)
    reply = endless(host, port, request, b"", 0)
    assert raw_status(reply) == 400, reply[:300]
    assert b"unsupported Transfer-Encoding" in reply, reply[:300]
    assert reply.count(b"HTTP/1.1 ") == 1, reply  # no answer to the smuggled request


def test_two_transfer_encoding_headers_are_400(server):
    host, port = server.guest_address()
    request = (b"POST /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n"
               b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert raw_status(endless(host, port, request, b"", 0)) == 400
