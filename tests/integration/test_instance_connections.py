"""A per-instance limit on open connections (docs/instance.md "limits",
max_connections; serve --instance-max-connections): over it a request gets
429 with Retry-After in the flavour's error format and its connection
closes, counted per reason and per instance; a connection that closes gives
its place back. Real binary on loopback; guests played from 127.0.0.0/8
addresses."""
from __future__ import annotations

import socket

from openimds_harness import instance, metric_sum, wait_for

A = "127.0.0.31"
B = "127.0.0.33"
LEAF = b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"


def connect(server, source: str) -> socket.socket:
    host, port = server.guest_address()
    return socket.create_connection((host, port), timeout=10, source_address=(source, 0))


def ask(s: socket.socket) -> bytes:
    """One request on a kept-alive connection; the whole response."""
    s.sendall(LEAF)
    data = b""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            if length and len(rest) >= length[0]:
                return data
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_an_instance_keeps_at_most_its_connections_open(make_server):
    server = make_server(extra_args=["--instance-refusal-delay-ms", "0"])
    server.put_instance(instance("i-conn", A, limits={"max_connections": 2}))
    server.put_instance(instance("i-other", B, limits={"max_connections": 2}))
    first, second = connect(server, A), connect(server, A)
    try:
        for s in (first, second):
            assert ask(s).endswith(b"\r\n\r\ni-conn")
        third = connect(server, A)
        try:
            reply = ask(third)
            assert reply.startswith(b"HTTP/1.1 429 "), reply
            assert b"\r\nRetry-After: 1\r\n" in reply, reply
            assert b"Connection: close" in reply, reply
            assert b"too many connections from this instance" in reply, reply
            assert third.recv(1) == b""  # closed after the refusal
        finally:
            third.close()
        # The kept connections go on serving; another instance has its own budget.
        assert ask(first).endswith(b"i-conn")
        other = connect(server, B)
        assert ask(other).endswith(b"i-other")
        other.close()
        m = server.metrics()
        assert metric_sum(m, "metadata_rate_limited_total", reason="connections") == 1
        assert metric_sum(m, "metadata_rate_limited_instance_total", instance="i-conn",
                          reason="connections") == 1
        # A closed connection gives its place back.
        second.close()

        def served_again() -> bool:
            s = connect(server, A)
            try:
                return ask(s).endswith(b"i-conn")
            finally:
                s.close()
        wait_for("a freed place serves the instance again", served_again, server.proc,
                 server.log_path)
    finally:
        first.close()
        second.close()


def test_the_server_default_holds_for_records_without_the_field(make_server):
    server = make_server(extra_args=["--instance-refusal-delay-ms", "0",
                                     "--instance-max-connections", "1"])
    server.put_instance(instance("i-default", A))
    kept = connect(server, A)
    try:
        assert ask(kept).endswith(b"i-default")
        extra = connect(server, A)
        try:
            assert ask(extra).startswith(b"HTTP/1.1 429 ")
        finally:
            extra.close()
    finally:
        kept.close()


def test_the_limit_field_is_validated_and_kept(server):
    bad = server.admin("PUT", "/v1/instances/i-bad",
                       instance("i-bad", A, limits={"max_connections": -1}))
    assert bad.status == 400 and "/limits/max_connections" in bad.text, bad
    server.put_instance(instance("i-good", A, limits={"max_connections": 7}))
    got = server.admin("GET", "/v1/instances/i-good").json()
    assert got["limits"] == {"max_connections": 7}, got
