"""Routes that take no body refuse a request that announces one, on its
header and before reading it: every guest GET and HEAD (400 in the
flavour's error format, HEAD without a body), the admin API's GET, HEAD and
DELETE (400, JSON), and the same through `openimds proxy`. Each request here
sends the header alone: a server that waited for the announced body would
answer nothing. Real binaries, loopback only."""
from __future__ import annotations

import socket

import pytest

from openimds_harness import (Proxy, instance, metric_sum, raw_body, raw_exchange, raw_status,
                              split_endpoint, write_keys)

GUEST = "127.0.0.9"
ANNOUNCED = {
    "content-length": b"Content-Length: 100\r\n",  # under the body limit (413 above)
    "chunked": b"Transfer-Encoding: chunked\r\n",
}


def request(method: bytes, target: bytes, framing: bytes) -> bytes:
    return (method + b" " + target + b" HTTP/1.1\r\nHost: 169.254.169.254\r\n" + framing +
            b"\r\n")


@pytest.mark.parametrize("framing", list(ANNOUNCED))
@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
@pytest.mark.parametrize("target", [b"/latest/meta-data/instance-id",
                                    b"/openstack/latest/meta_data.json", b"/nothing/here"])
def test_server_refuses_a_body_announced_on_a_bodyless_route(server, method, target, framing):
    server.put_instance(instance("i-nobody", GUEST))
    host, port = server.guest_address()
    reply = raw_exchange(host, port, request(method, target, ANNOUNCED[framing]), source=GUEST)
    assert raw_status(reply) == 400, reply[:300]
    if method == b"HEAD":
        assert raw_body(reply) == b"", reply
    else:
        assert b"requests take no body" in raw_body(reply), reply
    assert b"connection: close" in reply.lower(), reply
    m = server.metrics()
    assert metric_sum(m, "metadata_rejected_total", reason="unexpected_body") == 1
    assert "announced a body" in server.log()
    # The guest is served as usual without one.
    assert server.get("/latest/meta-data/instance-id", source=GUEST).text == "i-nobody"


def test_server_refuses_a_small_body_that_came_with_its_header(server):
    server.put_instance(instance("i-nobody", GUEST))
    host, port = server.guest_address()
    reply = raw_exchange(host, port, request(b"GET", b"/latest/meta-data/instance-id",
                                             b"Content-Length: 4\r\n") + b"abcd", source=GUEST)
    assert raw_status(reply) == 400, reply[:300]
    assert b"GET requests take no body" in raw_body(reply), reply


def test_routes_that_take_a_body_still_do(server):
    server.put_instance(instance("i-nobody", GUEST))
    host, port = server.guest_address()
    reply = raw_exchange(host, port, b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n"
                         b"X-aws-ec2-metadata-token-ttl-seconds: 60\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n", source=GUEST)
    assert raw_status(reply) == 200, reply[:300]
    # Content-Length: 0 on a GET announces nothing.
    reply = raw_exchange(host, port, request(b"GET", b"/latest/meta-data/instance-id",
                                             b"Content-Length: 0\r\nConnection: close\r\n"),
                         source=GUEST)
    assert raw_status(reply) == 200 and raw_body(reply) == b"i-nobody", reply


def admin_raw(server, data: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(str(server.admin_path))
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        s.close()


@pytest.mark.parametrize("method,target", [(b"GET", b"/v1/instances"),
                                           (b"GET", b"/healthz"),
                                           (b"DELETE", b"/v1/instances/i-nobody"),
                                           (b"HEAD", b"/v1/instances/i-nobody")])
def test_admin_refuses_a_body_on_routes_that_take_none(server, method, target):
    server.put_instance(instance("i-nobody", GUEST))
    reply = admin_raw(server, request(method, target, ANNOUNCED["content-length"]))
    assert raw_status(reply) == 400, reply[:300]
    if method != b"HEAD":
        assert b'"invalid_argument"' in raw_body(reply) and b"take no body" in reply, reply
    assert metric_sum(server.metrics(), "admin_unexpected_body_total") == 1
    # Nothing was deleted.
    assert server.admin("GET", "/v1/instances/i-nobody").status == 200


@pytest.fixture
def proxy(binary, workdir, server):
    keys = workdir / "proxy.keys"
    write_keys(keys, ("a", "secret-of-key-a-0123456789"))
    host, port = server.guest_address()
    p = Proxy(binary, workdir / "proxy", f"{host}:{port}", keys, "default", GUEST).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.mark.parametrize("framing", list(ANNOUNCED))
@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_proxy_refuses_a_body_announced_on_a_bodyless_route(server, proxy, method, framing):
    server.put_instance(instance("i-nobody", GUEST))
    host, port = split_endpoint(proxy.endpoint)
    reply = raw_exchange(host, port, request(method, b"/latest/meta-data/instance-id",
                                             ANNOUNCED[framing]), source=GUEST)
    assert raw_status(reply) == 400, reply[:300]
    if method == b"HEAD":
        assert raw_body(reply) == b"", reply
    else:
        assert b"requests take no body" in raw_body(reply), reply
    assert metric_sum(proxy.metrics(), "proxy_rejected_total", reason="unexpected_body") == 1
    # Refused at the proxy: the server never saw it.
    assert metric_sum(server.metrics(), "metadata_rejected_total", reason="unexpected_body") == 0
    # Without a body the same request is forwarded (this server answers it
    # for the proxy's own address: it is not set up to trust the proxy).
    assert b"no instance is registered" in proxy.get().body
