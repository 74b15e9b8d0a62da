"""`openimds proxy` keeps one guest from holding every upstream connection:
requests from one guest forwarded at once are capped per I/O thread
(--max-in-flight-per-source), and more get 429 with Retry-After at once,
while other guests are forwarded as usual. The upstream here is a stand-in
on loopback that holds one guest's requests until the test lets them go (a
server's long-polls or a slow store look the same to the proxy). The
server's own 429s through the proxy are tested in test_instance_limits.py."""
from __future__ import annotations

import http.client
import re
import socket
import socketserver
import threading

from openimds_harness import (IO_TIMEOUT_S, Proxy, _request, metric_sum, split_endpoint,
                              wait_for, write_keys)

NOISY = "127.0.0.20"
QUIET = "127.0.0.21"
CAP = 4


class HoldingUpstream:
    """Answers /healthz and QUIET's requests at once; holds NOISY's until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.held = 0  # NOISY requests received and not answered yet
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = self.rfile.readline()
                        if not line:
                            return
                        head += line
                    lines = head.decode("latin-1").split("\r\n")
                    path = lines[0].split(" ")[1]
                    headers = {k.strip().lower(): v.strip() for k, _, v in
                               (h.partition(":") for h in lines[1:] if h)}
                    length = int(headers.get("content-length", "0"))
                    if length:
                        self.rfile.read(length)
                    body = b"ok\n"
                    if path != "/healthz" and headers.get("x-openimds-source") == NOISY:
                        with outer.lock:
                            outer.held += 1
                        outer.release.wait(30)
                        with outer.lock:
                            outer.held -= 1
                        body = b"held"
                    elif path != "/healthz":
                        body = b"quick"
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                     b"Content-Length: " + str(len(body)).encode() +
                                     b"\r\n\r\n" + body)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def held_now(self) -> int:
        with self.lock:
            return self.held

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def send_get(endpoint: str, source: str) -> socket.socket:
    host, port = split_endpoint(endpoint)
    s = socket.create_connection((host, port), timeout=IO_TIMEOUT_S, source_address=(source, 0))
    s.sendall(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n")
    return s


def read_reply(s: socket.socket) -> bytes:
    """One whole response (the proxy always sends Content-Length)."""
    data = b""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if m and len(rest) >= int(m.group(1)):
                return data
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_one_guest_cannot_hold_every_upstream_connection(binary, workdir):
    upstream = HoldingUpstream()
    keys = workdir / "proxy.keys"
    write_keys(keys, ("a", "secret-of-key-a-0123456789"))
    proxy = Proxy(binary, workdir / "proxy", upstream.endpoint, keys, "default", QUIET,
                  extra_args=["--max-in-flight-per-source", str(CAP),
                              "--upstream-timeout-ms", "20000"])
    proxy.cmd[proxy.cmd.index("--threads") + 1] = "1"  # one thread: one pool, one count
    proxy.start()
    held: list[socket.socket] = []
    try:
        # The noisy guest fills its share, one request at a time so each
        # takes an upstream connection of its own.
        for i in range(CAP):
            held.append(send_get(proxy.endpoint, NOISY))
            wait_for(f"{i + 1} noisy requests held upstream",
                     lambda: upstream.held_now() == i + 1, proxy.proc, proxy.log_path)
        # More from it are refused at once, never sent upstream.
        for _ in range(2):
            s = send_get(proxy.endpoint, NOISY)
            try:
                reply = read_reply(s)
            finally:
                s.close()
            assert reply.startswith(b"HTTP/1.1 429 "), reply
            assert b"\r\nRetry-After: 1\r\n" in reply, reply
            assert b"too many requests from this guest at once" in reply, reply
        assert upstream.held_now() == CAP
        # The quiet guest is forwarded meanwhile.
        r = proxy.get()
        assert (r.status, r.text) == (200, "quick"), r
        m = proxy.metrics()
        assert metric_sum(m, "proxy_rejected_total",
                          reason="too_many_in_flight_from_source") == 2
        assert "of its requests are in flight" in proxy.log()
        # Once its requests are answered, the noisy guest is forwarded again.
        upstream.release.set()
        for s in held:
            assert read_reply(s).endswith(b"held")
        host, port = split_endpoint(proxy.endpoint)
        conn = http.client.HTTPConnection(host, port, timeout=IO_TIMEOUT_S,
                                          source_address=(NOISY, 0))
        r = _request(conn, "GET", "/latest/meta-data/instance-id", None, {})
        assert (r.status, r.text) == (200, "held"), r
    finally:
        for s in held:
            s.close()
        proxy.stop()
        upstream.close()
