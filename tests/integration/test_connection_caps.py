"""Connections are descriptors: one guest opening thousands of idle
connections must not lock out other guests or the admin API. `serve` and
`openimds proxy` cap connections per source address and in all, below the
descriptor limit, closing extra ones at accept with a counter. Real binaries
on loopback only (127.0.0.0/8 gives the many source addresses)."""
from __future__ import annotations

import contextlib
import resource
import socket
import time

from openimds_harness import (Proxy, instance, metric_sum, raw_body, raw_exchange, raw_status,
                              split_endpoint, wait_for, write_keys)

REFUSED = "http_connections_refused_total"


@contextlib.contextmanager
def idle_connections(host: str, port: int, sources: list[str], each: int):
    """Opens `each` connections from every source, sends nothing; closes them at the end."""
    socks: list[socket.socket] = []
    try:
        for source in sources:
            for _ in range(each):
                socks.append(socket.create_connection((host, port), timeout=5,
                                                      source_address=(source, 0)))
        yield socks
    finally:
        for s in socks:
            s.close()


def closed_by_peer(s: socket.socket) -> bool:
    """True once the other end closed (EOF or reset); False while it is open and silent."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True
    finally:
        s.setblocking(True)


def served(host: str, port: int, source: str, want: str) -> bool:
    try:
        reply = raw_exchange(host, port, b"GET /latest/meta-data/instance-id HTTP/1.1\r\n"
                             b"Host: 169.254.169.254\r\nConnection: close\r\n\r\n",
                             source=source)
    except ConnectionError:
        return False  # closed at accept, with the request unread
    if not reply:
        return False  # closed at accept
    return (raw_status(reply), raw_body(reply)) == (200, want.encode())


def raise_own_descriptor_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))


def test_one_source_holds_no_more_than_its_cap(make_server):
    server = make_server(extra_args=["--max-connections-per-source", "20"])
    server.put_instance(instance("i-noisy", "127.0.0.5"))
    server.put_instance(instance("i-quiet", "127.0.0.6"))
    host, port = server.guest_address()
    with idle_connections(host, port, ["127.0.0.5"], 30) as socks:
        wait_for("10 connections refused per source",
                 lambda: metric_sum(server.metrics(), REFUSED, listener="guest",
                                    reason="per_source") == 10,
                 server.proc, server.log_path)
        time.sleep(0.2)  # the closes reach the client
        closed = [s for s in socks if closed_by_peer(s)]
        assert len(closed) == 10, len(closed)
        # Another guest is served meanwhile; so is the noisy one on a
        # connection it frees.
        assert served(host, port, "127.0.0.6", "i-quiet")
        next(s for s in socks if s not in closed).close()
        wait_for("a freed slot serves the noisy guest again",
                 lambda: served(host, port, "127.0.0.5", "i-noisy"), server.proc, server.log_path)
    assert metric_sum(server.metrics(), REFUSED, reason="open") == 0
    assert "connections from that address are open" in server.log()


def test_a_guest_flood_leaves_the_admin_api_working(make_server):
    """With 400 descriptors, 450 guest connections from ten addresses: the
    guests' cap (400 minus what the admin API and the store keep) closes the
    rest at accept, so the admin API and /healthz keep answering."""
    raise_own_descriptor_limit(1024)
    server = make_server(nofile=400)
    server.put_instance(instance("i-flood", "127.0.0.2"))
    host, port = server.guest_address()
    sources = [f"127.0.1.{i}" for i in range(1, 11)]

    def accounted() -> float:
        m = server.metrics()
        return (metric_sum(m, "http_connections_total", listener="guest") +
                metric_sum(m, REFUSED, listener="guest"))

    before = accounted()
    with idle_connections(host, port, sources, 45):
        wait_for("450 connections admitted or refused", lambda: accounted() == before + 450,
                 server.proc, server.log_path)
        m = server.metrics()
        assert metric_sum(m, REFUSED, listener="guest", reason="open") > 0, m
        assert metric_sum(m, REFUSED, listener="guest", reason="per_source") == 0, m
        # The admin API answers reads and writes while the flood holds.
        r = server.admin("GET", "/healthz")
        assert r.status == 200, r
        server.put_instance(instance("i-during", "127.0.0.3"))
        assert server.admin("GET", "/v1/instances/i-during").status == 200
    wait_for("guests served again once the flood is gone",
             lambda: served(host, port, "127.0.0.2", "i-flood"), server.proc, server.log_path)
    assert "connections are open" in server.log()


def test_the_proxy_caps_connections_per_source(binary, workdir, make_server):
    key = ("a", "secret-of-key-a-0123456789")
    server_keys = workdir / "server.keys"
    proxy_keys = workdir / "proxy.keys"
    write_keys(server_keys, key)
    write_keys(proxy_keys, key)
    server = make_server(listens=["127.0.0.1:0,mode=proxy"],
                         extra_args=["--trusted-proxy", "127.0.0.1/32",
                                     "--proxy-keys-file", str(server_keys)])
    server.put_instance(instance("i-noisy", "127.0.0.5", network="tenant-a"))
    server.put_instance(instance("i-quiet", "127.0.0.6", network="tenant-a"))
    host, port = server.guest_address()
    proxy = Proxy(binary, workdir / "proxy", f"{host}:{port}", proxy_keys, "tenant-a",
                  "127.0.0.5", extra_args=["--max-connections-per-source", "8"]).start()
    try:
        phost, pport = split_endpoint(proxy.endpoint)
        with idle_connections(phost, pport, ["127.0.0.5"], 12) as socks:
            wait_for("4 connections refused per source",
                     lambda: metric_sum(proxy.metrics(), "proxy_rejected_total",
                                        reason="too_many_from_source") == 4,
                     proxy.proc, proxy.log_path)
            time.sleep(0.2)
            assert sum(closed_by_peer(s) for s in socks) == 4
            assert served(phost, pport, "127.0.0.6", "i-quiet")
    finally:
        proxy.stop()
