"""No HEAD answer carries a body, whoever writes it: a flavour, the server's
own refusals (400, 413, 431), a proxy-mode listener's /healthz, and
`openimds proxy`'s own answers and pooled ones. One stray body desynchronises
every later answer on a kept-alive connection, which through the proxy's
shared upstream connections means other guests' answers. Real binaries on
loopback only."""
from __future__ import annotations

import re
import socket

import pytest

from openimds_harness import (IO_TIMEOUT_S, Proxy, instance, raw_body, raw_exchange, raw_status,
                              split_endpoint, write_keys)

GUEST = "127.0.0.2"
OTHER = "127.0.0.3"
NETWORK = "tenant-a"
KEY = ("a", "secret-of-key-a-0123456789")


def head_and_get(host: str, port: int, target: str, extra: str = "",
                 source: str = GUEST) -> tuple[bytes, bytes]:
    def one(method: str) -> bytes:
        return raw_exchange(host, port, f"{method} {target} HTTP/1.1\r\nHost: 169.254.169.254\r\n"
                            f"{extra}Connection: close\r\n\r\n".encode(), source=source)
    return one("HEAD"), one("GET")


def assert_bodyless(head: bytes, get: bytes) -> None:
    assert raw_status(head) == raw_status(get), (head, get)
    assert raw_body(get), get  # GET has a body here; HEAD must not send it
    assert raw_body(head) == b"", head


@pytest.mark.parametrize("target,extra", [
    ("/nothing", ""),                                   # no flavour answers: 404 text
    ("/latest/meta-data/", "X-Big: " + "a" * 9000 + "\r\n"),   # 431 from the server itself
    ("/latest/meta-data/", "Transfer-Encoding: xchunked\r\n"),  # 400 from the server itself
], ids=["404", "431", "400"])
def test_server_refusals_to_head_carry_no_body(server, target, extra):
    server.put_instance(instance("i-head", GUEST))
    host, port = server.guest_address()
    assert_bodyless(*head_and_get(host, port, target, extra))


def read_until_close(host: str, port: int, data: bytes, source: str = GUEST) -> bytes:
    """Sends `data` and returns everything the peer sends until it closes."""
    sock = socket.create_connection((host, port), timeout=IO_TIMEOUT_S,
                                    source_address=(source, 0))
    try:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def second_answer(reply: bytes) -> bytes:
    """The second of two answers on one connection (the first has a Content-Length)."""
    head, _, rest = reply.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    return rest[length:]


# A HEAD whose request line alone is over the header limit: the method is
# read from the raw bytes, since no request line was parsed.
LONG_HEAD = b"HEAD /latest/meta-data/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n"
FIRST_GET = b"GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"


def test_server_refusal_of_a_long_head_line_carries_no_body_after_other_requests(make_server):
    # One I/O thread: the HEAD's connection reuses the buffers of the GET's,
    # and the second request of a connection reuses the first's.
    server = make_server(threads=1)
    server.put_instance(instance("i-head", GUEST))
    host, port = server.guest_address()
    get = raw_exchange(host, port, FIRST_GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
                       source=GUEST)
    assert raw_status(get) == 200 and raw_body(get), get
    head = raw_exchange(host, port, LONG_HEAD, source=GUEST)
    assert raw_status(head) == 431, head
    assert raw_body(head) == b"", head
    second = second_answer(read_until_close(host, port, FIRST_GET + LONG_HEAD))
    assert raw_status(second) == 431, second
    assert raw_body(second) == b"", second


@pytest.fixture
def proxied(binary, workdir, make_server):
    """(server with a mode=proxy listener, proxy in front of it) for one guest."""
    server_keys = workdir / "server.keys"
    proxy_keys = workdir / "proxy.keys"
    write_keys(server_keys, KEY)
    write_keys(proxy_keys, KEY)
    server = make_server(listens=["127.0.0.1:0,mode=proxy"],
                         extra_args=["--trusted-proxy", "127.0.0.1/32",
                                     "--proxy-keys-file", str(server_keys)])
    server.put_instance(instance("i-guest", GUEST, network=NETWORK))
    server.put_instance(instance("i-other", OTHER, network=NETWORK))
    host, port = server.guest_address()
    proxy = Proxy(binary, workdir / "proxy", f"{host}:{port}", proxy_keys, NETWORK, GUEST).start()
    try:
        yield server, proxy
    finally:
        proxy.stop()


def test_proxy_mode_listener_healthz_head_has_no_body(proxied):
    server, _ = proxied
    host, port = server.guest_address()
    head, get = head_and_get(host, port, "/healthz", source="127.0.0.1")
    assert raw_status(get) == 200, get
    assert_bodyless(head, get)


def test_proxy_refusal_of_a_long_head_line_carries_no_body_after_another_request(proxied):
    _, proxy = proxied
    host, port = split_endpoint(proxy.endpoint)
    second = second_answer(read_until_close(host, port, FIRST_GET + LONG_HEAD))
    assert raw_status(second) == 431, second
    assert raw_body(second) == b"", second


@pytest.mark.parametrize("target,extra", [
    ("/latest/meta-data/instance-id", ""),                 # pooled, answered upstream
    ("/nothing", ""),                                      # pooled, upstream's 404
    ("/latest/meta-data/", "X-Big: " + "a" * 9000 + "\r\n"),   # the proxy's own 431
    ("/latest/meta-data/", "Transfer-Encoding: xchunked\r\n"),  # the proxy's own 400
], ids=["200", "404", "431", "400"])
def test_proxy_answers_to_head_carry_no_body(proxied, target, extra):
    _, proxy = proxied
    host, port = split_endpoint(proxy.endpoint)
    assert_bodyless(*head_and_get(host, port, target, extra))


def test_heads_through_the_proxy_do_not_break_other_guests(proxied):
    """HEADs from one guest interleaved with another guest's GETs on the
    proxy's pooled upstream connections: every GET gets its own answer."""
    _, proxy = proxied
    host, port = split_endpoint(proxy.endpoint)
    heads = []
    for _ in range(22):
        s = socket.create_connection((host, port), timeout=5, source_address=(GUEST, 0))
        s.sendall(b"HEAD /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"HEAD /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n\r\n")
        heads.append(s)
    for _ in range(40):
        reply = raw_exchange(host, port, b"GET /latest/meta-data/instance-id HTTP/1.1\r\n"
                             b"Host: x\r\nConnection: close\r\n\r\n", source=OTHER)
        assert (raw_status(reply), raw_body(reply)) == (200, b"i-other"), reply
    for s in heads:
        s.close()
    assert proxy.metrics().get("proxy_upstream_errors_total", 0) == 0


def test_proxy_unavailable_answer_to_head_has_no_body(binary, workdir):
    """The proxy's own 503 (no upstream answers) to a HEAD has no body."""
    keys = workdir / "proxy.keys"
    write_keys(keys, KEY)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        proxy = Proxy(binary, workdir / "proxy", f"127.0.0.1:{closed.getsockname()[1]}", keys,
                      NETWORK, GUEST).start()
        try:
            host, port = split_endpoint(proxy.endpoint)
            head, get = head_and_get(host, port, "/latest/meta-data/")
            assert raw_status(get) in (502, 503), get
            assert_bodyless(head, get)
        finally:
            proxy.stop()
    finally:
        closed.close()
