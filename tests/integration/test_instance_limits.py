"""Per-instance request limits (docs/instance.md "limits"): the real binary on
loopback, guests played from 127.0.0.2 and 127.0.0.3.

Over its limit an instance gets 429 with Retry-After in the error format of
the flavour it asked (EC2 and OpenStack paths, GET and HEAD, direct and
proxy-mode listeners), counted per reason and in the bounded per-instance
view, without a log line per refusal; other instances are unaffected; the
server-wide defaults come from serve flags and a record's "limits" override
them field by field; a refused instance is served again once its bucket
refills. On direct listeners a 429 is held back (--instance-refusal-delay-ms)
before it is sent, never on proxy-mode listeners; tests that are not about
that turn it off. Limits are small (1..2 requests/s) so that a 429 follows
the burst whatever the machine's speed, and recovery is polled for
("eventually 200"), never timed.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest

from openimds_harness import (IO_TIMEOUT_S, Proxy, Reply, _request, instance, metric_sum,
                              split_endpoint, write_keys)

A = "127.0.0.2"
B = "127.0.0.3"
LEAF = "/latest/meta-data/instance-id"
OS_META = "/openstack/latest/meta_data.json"
VD2 = "/openstack/latest/vendor_data2.json"
LIMITED = "metadata_rate_limited_total"
PER_INSTANCE = "metadata_rate_limited_instance_total"


def until_refused(ask: Callable[[], Reply], most: int = 30) -> list[Reply]:
    """Asks until the first 429 (at most `most` times); every reply, in order."""
    replies = []
    for _ in range(most):
        replies.append(ask())
        if replies[-1].status == 429:
            break
    return replies


def eventually_served(ask: Callable[[], Reply], timeout: float = 20.0) -> Reply:
    deadline = time.monotonic() + timeout
    while True:
        r = ask()
        if r.status == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


NO_HOLD = ["--instance-refusal-delay-ms", "0"]
HELD = "metadata_rate_limited_held_requests"


@pytest.fixture
def server(make_server):
    """A server whose refusals are sent at once."""
    return make_server(extra_args=NO_HOLD)


def assert_refused(r: Reply, head: bool = False) -> None:
    assert r.status == 429, r
    assert r.header("Retry-After") == "1", r.headers  # ceil(next token), rate >= 1/s
    assert r.header("Content-Type").startswith("text/plain"), r.headers  # both flavours
    if head:
        assert r.body == b"", r
    else:
        assert b"too many requests from this instance" in r.body, r


def test_record_limit_refuses_after_the_burst_on_every_flavour_and_method(server):
    server.put_instance(instance("i-lim-a", A, limits={"requests_per_second": 1, "burst": 3}))
    server.put_instance(instance("i-lim-b", B))

    replies = until_refused(lambda: server.get(LEAF, source=A))
    assert [r.status for r in replies[:3]] == [200, 200, 200], replies  # the burst passes
    assert_refused(replies[-1])
    assert replies[-1].header("Server") == "EC2ws"  # EC2's error, with its headers
    # One budget per instance, whichever flavour or method asks.
    assert_refused(server.get(OS_META, source=A))
    assert_refused(server.guest("HEAD", LEAF, source=A), head=True)
    assert_refused(server.guest("HEAD", OS_META, source=A), head=True)

    # Another instance is not touched by the first one's limit.
    for path in (LEAF, OS_META, LEAF, OS_META, LEAF):
        assert server.get(path, source=B).status == 200

    m = server.metrics()
    assert metric_sum(m, LIMITED, reason="rate") >= 4
    assert metric_sum(m, LIMITED, reason="concurrency") == 0
    assert metric_sum(m, PER_INSTANCE, instance="i-lim-a", reason="rate") >= 4
    assert metric_sum(m, PER_INSTANCE, instance="i-lim-b") == 0

    # Served again once a token is back.
    r = eventually_served(lambda: server.get(LEAF, source=A))
    assert (r.status, r.text) == (200, "i-lim-a"), r


def test_refusals_are_summarised_not_logged_one_by_one(server):
    server.put_instance(instance("i-lim-log", A, limits={"requests_per_second": 1, "burst": 1}))
    refused = 0
    for _ in range(40):
        refused += server.get(LEAF, source=A).status == 429
    assert refused >= 30
    lines = [line for line in server.log().splitlines() if "per-instance limits" in line]
    assert 1 <= len(lines) <= 2, lines  # one summary per 10 s at most
    assert "i-lim-log" in lines[0], lines


def test_server_defaults_from_flags_and_record_overrides(make_server):
    s = make_server(extra_args=["--instance-rate-limit", "2", "--instance-rate-burst", "2",
                                *NO_HOLD])
    s.put_instance(instance("i-def-a", A))
    s.put_instance(instance("i-def-b", B, limits={"requests_per_second": 0}))  # 0: none

    replies = until_refused(lambda: s.get(LEAF, source=A))
    assert [r.status for r in replies[:2]] == [200, 200], replies
    assert_refused(replies[-1])
    for _ in range(40):
        assert s.get(LEAF, source=B).status == 200

    # One field of the record over the server's others: a bigger burst, the same rate.
    s.put_instance(instance("i-def-b", B, limits={"burst": 6}))
    replies = until_refused(lambda: s.get(LEAF, source=B))
    assert [r.status for r in replies[:6]] == [200] * 6, replies
    assert_refused(replies[-1])


def test_default_limits_let_a_booting_guest_crawl(make_server):
    # Five times cloud-init's whole EC2 crawl of a one-NIC record, at once,
    # passes under the defaults (burst 500), on one keep-alive connection.
    server = make_server()
    server.put_instance(instance("i-boot", A))
    host, port = server.guest_address()
    conn = http.client.HTTPConnection(host, port, timeout=IO_TIMEOUT_S, source_address=(A, 0))
    try:
        for _ in range(300):
            conn.request("GET", LEAF)
            r = conn.getresponse()
            r.read()
            assert r.status == 200
    finally:
        conn.close()
    assert metric_sum(server.metrics(), LIMITED) == 0


def test_bad_limits_are_refused_with_the_field_named(server):
    r = server.put_instance(instance("i-bad", A, limits={"burst": 0}), expect=(400,))
    assert "/limits/burst" in r.error()["message"], r
    r = server.put_instance(instance("i-bad", A, limits={"rate": 5}), expect=(400,))
    assert "/limits/rate: unknown field" in r.error()["message"], r


def test_bad_limit_flags_fail_at_start(binary, workdir):
    out = subprocess.run([str(binary), "serve", "--instance-rate-burst", "0", "--store",
                          f"sqlite:{workdir}/x.db", "--admin", f"unix:{workdir}/a.sock"],
                         capture_output=True, timeout=30)
    assert out.returncode == 2
    assert b"--instance-rate-burst: Value 0 not in range 1 to 1000000" in out.stderr + out.stdout


def test_a_refusal_is_held_back_on_direct_listeners(make_server):
    s = make_server(extra_args=["--instance-refusal-delay-ms", "6000"])
    s.put_instance(instance("i-held", A, limits={"requests_per_second": 1, "burst": 1}))
    s.put_instance(instance("i-held-b", B))
    assert s.get(LEAF, source=A).status == 200
    got: list[Reply] = []
    t = threading.Thread(target=lambda: got.append(s.get(LEAF, source=A)))
    t.start()
    try:
        # Refused at once (counted), answered only later: parked meanwhile,
        # while other guests are served.
        deadline = time.monotonic() + 5
        while metric_sum(s.metrics(), HELD) != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        m = s.metrics()
        assert metric_sum(m, HELD) == 1, m
        assert metric_sum(m, LIMITED, reason="rate") == 1
        assert not got
        assert s.get(LEAF, source=B).status == 200
    finally:
        t.join(IO_TIMEOUT_S * 2)
    assert got, "no answer to the held request"
    assert_refused(got[0])
    assert metric_sum(s.metrics(), HELD) == 0


# ----------------------------------------------------------------- proxy mode


def test_proxy_mode_limits_each_guest_behind_one_proxy(binary, workdir, make_server):
    network = "tenant-a"
    keys = workdir / "proxy.keys"
    write_keys(keys, ("k1", "secret-of-k1-0123456789abcdef"))
    # Refusals would be held for a minute on a direct listener (the proxy
    # would give up first); on a proxy-mode one they are sent at once.
    server = make_server(listens=["127.0.0.1:0,mode=proxy"],
                         extra_args=["--trusted-proxy", "127.0.0.1/32",
                                     "--proxy-keys-file", str(keys),
                                     "--instance-refusal-delay-ms", "60000"])
    server.put_instance(instance("i-px-a", A, network=network,
                                 limits={"requests_per_second": 1, "burst": 2}))
    server.put_instance(instance("i-px-b", B, network=network))
    host, port = server.guest_address()
    proxy = Proxy(binary, workdir / "proxy", f"{host}:{port}", keys, network, A).start()
    try:
        def via_proxy(source: str, method: str = "GET") -> Reply:
            phost, pport = split_endpoint(proxy.endpoint)
            conn = http.client.HTTPConnection(phost, pport, timeout=IO_TIMEOUT_S,
                                              source_address=(source, 0))
            return _request(conn, method, LEAF, None, {})

        # Every guest arrives from the proxy's one address; each has its own budget.
        replies = until_refused(lambda: via_proxy(A))
        assert [r.status for r in replies[:2]] == [200, 200], (replies, proxy.log())
        assert_refused(replies[-1])
        assert_refused(via_proxy(A, "HEAD"), head=True)
        for _ in range(5):
            r = via_proxy(B)
            assert (r.status, r.text) == (200, "i-px-b"), r
        m = server.metrics()
        assert metric_sum(m, PER_INSTANCE, instance="i-px-a", reason="rate") >= 2
        assert metric_sum(m, HELD) == 0
        r = eventually_served(lambda: via_proxy(A))
        assert (r.status, r.text) == (200, "i-px-a"), r
    finally:
        proxy.stop()


# ----------------------------------------------------------------- requests in flight


class SlowVendordata:
    """A DynamicJSON vendordata target that answers only when released."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.arrived.set()
                outer.release.wait(20)
                body = json.dumps({"late": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/vd"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_parked_request_holds_its_in_flight_slot(make_server):
    target = SlowVendordata()
    try:
        s = make_server(extra_args=["--vendordata-target", f"slow@{target.url()}",
                                    "--no-vendordata-prefetch",
                                    "--vendordata-read-timeout", "30", *NO_HOLD])
        s.put_instance(instance("i-par-a", A, limits={"max_in_flight": 1}))
        s.put_instance(instance("i-par-b", B, limits={"max_in_flight": 1}))
        parked: list[Reply] = []
        t = threading.Thread(target=lambda: parked.append(s.get(VD2, source=A)))
        t.start()
        try:
            # The fetch starts while the request is admitted; it then waits parked.
            assert target.arrived.wait(IO_TIMEOUT_S)
            r = s.get(LEAF, source=A)
            assert r.status == 429, r
            assert r.header("Retry-After") == "1", r.headers
            assert b"at once" in r.body, r
            assert s.get(LEAF, source=B).status == 200  # another instance's slots
            m = s.metrics()
            assert metric_sum(m, LIMITED, reason="concurrency") == 1
            assert metric_sum(m, PER_INSTANCE, instance="i-par-a", reason="concurrency") == 1
        finally:
            target.release.set()
            t.join(IO_TIMEOUT_S * 3)
        assert parked and parked[0].status == 200, parked
        assert parked[0].json()["slow"] == {"late": True}
        # The slot came back with the answer.
        r = s.get(LEAF, source=A)
        assert (r.status, r.text) == (200, "i-par-a"), r
    finally:
        target.close()
