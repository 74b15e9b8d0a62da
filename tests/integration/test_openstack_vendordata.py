"""Nova's DynamicJSON vendordata end to end: the real binary on
loopback POSTs to a real Python http.server target on 127.0.0.1 and serves
vendor_data2.json from what it answered.

Checks Nova's POST (body bytes as json.dumps writes them, headers), the
vendor_data2.json document, Cache-Control (max-age honoured, no-store
refetched), failures (down, slow, non-JSON, non-object, 5xx: {} non-fatal,
500 with --vendordata-failure-fatal), the breaker, prefetch, the admin render
preview, and the counters in /metrics. Loopback only: the target listens on
127.0.0.1 port 0, guests are 127.0.0.x.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import pytest

from openimds_harness import b64, instance, is_loopback, metric_sum

VD2 = "/openstack/latest/vendor_data2.json"
GUEST = "127.0.0.2"


class Target:
    """A DynamicJSON vendordata service: routes by path, records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, bytes]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends /slow's wait at teardown
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.requests.append((self.path, dict(self.headers.items()), body))
                status, headers, payload = outer.route(self.path, body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def route(self, path: str, body: bytes) -> tuple[int, dict, bytes]:
        js = {"Content-Type": "application/json"}
        if path == "/ok" or path.startswith("/ok?"):
            req = json.loads(body)
            return 200, js, json.dumps({"greeting": "hello", "for": req["instance-id"]}).encode()
        if path == "/max-age":
            return 200, {**js, "Cache-Control": "public, max-age=300"}, b'{"cached": true}'
        if path == "/no-store":
            n = self.count("/no-store")
            return 200, {**js, "Cache-Control": "no-store"}, json.dumps({"n": n}).encode()
        if path == "/slow":
            self.release.wait(5)
            return 200, js, b'{"late": true}'
        if path == "/not-json":
            return 200, {"Content-Type": "text/html"}, b"<html>surprise</html>"
        if path == "/list":
            return 200, js, b"[1, 2, 3]"
        if path == "/error":
            return 500, js, b'{"error": "boom"}'
        return 404, js, b"{}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _, _ in self.requests if p == path)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def target():
    t = Target()
    yield t
    t.close()


def closed_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def record(iid: str = "i-vd-0001", address: str = GUEST, **fields) -> dict:
    return instance(iid, address, user_data=b64("#cloud-config\nhostname: vd\n"),
                    tags={"role": "web", "Name": iid}, **fields)


def vd_server(make_server, workdir, targets: list[str], *extra: str, static: Optional[dict] = None,
              name: str = "s"):
    args = []
    if static is not None:
        path = workdir / f"{name}-static.json"
        path.write_text(json.dumps(static))
        args += ["--vendordata-file", str(path)]
    for t in targets:
        spec_url = t.split("@", 1)[1]
        assert is_loopback(spec_url.split("//", 1)[1].split(":")[0]), t
        args += ["--vendordata-target", t]
    return make_server(name=name, extra_args=args + list(extra))


def counters(server, name: str, **labels: str) -> float:
    return metric_sum(server.metrics(), name, **labels)


# ------------------------------------------------------------------ the POST


def test_nova_post_body_headers_and_vendor_data2(make_server, workdir, target):
    s = vd_server(make_server, workdir, [f"hello@{target.url('/ok')}"], "--no-vendordata-prefetch",
                  static={"static-key": "static-value"})
    rec = record()
    s.put_instance(rec)

    r = s.get(VD2, source=GUEST)
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json"
    assert r.json() == {"static": {"static-key": "static-value"},
                        "hello": {"greeting": "hello", "for": rec["id"]}}
    # Serialised as Nova's json.dumps: ", " and ": " separators.
    assert r.body == json.dumps(r.json()).encode()

    assert len(target.requests) == 1
    path, headers, body = target.requests[0]
    assert path == "/ok"
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower["content-type"] == "application/json"
    assert lower["accept"] == "application/json"
    assert lower["user-agent"] == "openstack-nova-vendordata"
    # Byte for byte what Nova's jsonutils.dumps(body) sends. user-data is the
    # base64 text (Nova keeps instance.user_data encoded); metadata = tags.
    nova_body = {
        "project-id": rec["account_id"],
        "instance-id": rec["id"],
        "image-id": rec["image_id"],
        "user-data": rec["user_data"],
        "hostname": rec["hostname"],
        "metadata": dict(sorted(rec["tags"].items())),
        "boot-roles": "",
    }
    assert body == json.dumps(nova_body).encode()

    # StaticJSON alone in vendor_data.json, as Nova.
    r = s.get("/openstack/latest/vendor_data.json", source=GUEST)
    assert r.status == 200 and r.json() == {"static-key": "static-value"}, r


def test_instance_without_user_data_sends_null(make_server, workdir, target):
    s = vd_server(make_server, workdir, [f"t@{target.url('/ok')}"], "--no-vendordata-prefetch")
    rec = record()
    del rec["user_data"]
    s.put_instance(rec)
    assert s.get(VD2, source=GUEST).status == 200
    assert json.loads(target.requests[0][2])["user-data"] is None


# ------------------------------------------------------------------ caching


def test_max_age_is_honoured(make_server, workdir, target):
    s = vd_server(make_server, workdir, [f"cached@{target.url('/max-age')}"],
                  "--no-vendordata-prefetch")
    s.put_instance(record())
    for _ in range(4):
        r = s.get(VD2, source=GUEST)
        assert r.status == 200 and r.json()["cached"] == {"cached": True}, r
    assert target.count("/max-age") == 1
    m = s.metrics()
    assert metric_sum(m, "openstack_vendordata_fetches_total", target="cached") == 1
    assert metric_sum(m, "openstack_vendordata_cache_misses_total", target="cached") == 1
    # 1 for the parked request's second render + 3 warm requests.
    assert metric_sum(m, "openstack_vendordata_cache_hits_total", target="cached") == 4
    assert metric_sum(m, "openstack_vendordata_deferred_total") == 1


def test_no_store_is_fetched_every_time(make_server, workdir, target):
    s = vd_server(make_server, workdir, [f"fresh@{target.url('/no-store')}"],
                  "--no-vendordata-prefetch")
    s.put_instance(record())
    seen = [s.get(VD2, source=GUEST).json()["fresh"]["n"] for _ in range(3)]
    # Each request got the answer of its own POST.
    assert seen == [1, 2, 3]
    assert target.count("/no-store") == 3
    assert counters(s, "openstack_vendordata_fetches_total", target="fresh") == 3


def test_changed_instance_is_fetched_again(make_server, workdir, target):
    s = vd_server(make_server, workdir, [f"cached@{target.url('/max-age')}"],
                  "--no-vendordata-prefetch")
    rec = record()
    s.put_instance(rec)
    assert s.get(VD2, source=GUEST).status == 200
    rec["tags"] = {"role": "db"}  # part of Nova's body (metadata)
    s.put_instance(rec)
    assert s.get(VD2, source=GUEST).status == 200
    assert target.count("/max-age") == 2
    assert json.loads(target.requests[1][2])["metadata"] == {"role": "db"}


def test_prefetch_on_instance_change(make_server, workdir, target):
    s = vd_server(make_server, workdir, [f"cached@{target.url('/max-age')}"])
    s.put_instance(record())
    deadline = time.monotonic() + 10
    while target.count("/max-age") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.count("/max-age") == 1, "no prefetch after the instance was created"
    time.sleep(0.3)  # let the answer land in the cache
    r = s.get(VD2, source=GUEST)
    assert r.status == 200 and r.json()["cached"] == {"cached": True}
    assert target.count("/max-age") == 1
    assert counters(s, "openstack_vendordata_deferred_total") == 0


# ------------------------------------------------------------------ failures


def test_failures_are_empty_objects_and_counted(make_server, workdir, target):
    down = f"http://127.0.0.1:{closed_port()}/vd"
    s = vd_server(make_server, workdir,
                  [f"ok@{target.url('/ok')}", f"down@{down}", f"slow@{target.url('/slow')}",
                   f"notjson@{target.url('/not-json')}", f"list@{target.url('/list')}",
                   f"err@{target.url('/error')}"],
                  "--no-vendordata-prefetch", "--vendordata-read-timeout", "1",
                  static={"k": "v"})
    rec = record()
    s.put_instance(rec)
    r = s.get(VD2, source=GUEST)
    assert r.status == 200, r
    assert r.json() == {"static": {"k": "v"}, "ok": {"greeting": "hello", "for": rec["id"]},
                        "down": {}, "slow": {}, "notjson": {}, "list": {}, "err": {}}
    # Member order is the targets' order, after "static".
    assert list(r.json()) == ["static", "ok", "down", "slow", "notjson", "list", "err"]
    m = s.metrics()
    f = "openstack_vendordata_failures_total"
    assert metric_sum(m, f, target="down", reason="connect") == 1
    assert metric_sum(m, f, target="slow", reason="read_timeout") == 1
    assert metric_sum(m, f, target="notjson", reason="not_json") == 1
    assert metric_sum(m, f, target="list", reason="not_object") == 1
    assert metric_sum(m, f, target="err", reason="http_5xx") == 1
    assert metric_sum(m, f, target="ok") == 0
    assert "vendordata" in s.log() and "connect" in s.log()

    # The breaker: within the back-off, unwell targets are not called again.
    errors_before = target.count("/error")
    r = s.get(VD2, source=GUEST)
    assert r.status == 200 and r.json()["down"] == {} and r.json()["err"] == {}, r
    assert target.count("/error") == errors_before
    m = s.metrics()
    assert metric_sum(m, f, target="down", reason="circuit_open") >= 1
    assert metric_sum(m, f, target="err", reason="circuit_open") >= 1


@pytest.mark.parametrize("path,reason", [
    (None, "connect"),
    ("/slow", "read_timeout"),
    ("/not-json", "not_json"),
    ("/list", "not_object"),
    ("/error", "http_5xx"),
])
def test_failure_fatal_is_500_naming_target_and_reason(make_server, workdir, target, path, reason):
    url = target.url(path) if path else f"http://127.0.0.1:{closed_port()}/vd"
    s = vd_server(make_server, workdir, [f"good@{target.url('/ok')}", f"bad@{url}"],
                  "--no-vendordata-prefetch", "--vendordata-failure-fatal",
                  "--vendordata-read-timeout", "1")
    s.put_instance(record())
    r = s.get(VD2, source=GUEST)
    assert r.status == 500, r
    assert "bad" in r.text and reason in r.text, r
    assert counters(s, "openstack_vendordata_failures_total", target="bad", reason=reason) == 1
    # The rest of the tree is unaffected.
    assert s.get("/openstack/latest/meta_data.json", source=GUEST).status == 200


# ------------------------------------------------------------------ providers, preview, config


def test_providers_flag_and_static_only(make_server, workdir, target):
    # DynamicJSON alone: no "static", vendor_data.json 404 (still listed).
    s = vd_server(make_server, workdir, [f"t@{target.url('/max-age')}"], "--no-vendordata-prefetch",
                  "--vendordata-providers", "DynamicJSON", static={"k": "v"})
    s.put_instance(record())
    assert s.get(VD2, source=GUEST).json() == {"t": {"cached": True}}
    assert s.get("/openstack/latest/vendor_data.json", source=GUEST).status == 404
    assert "vendor_data.json" in s.get("/openstack/latest", source=GUEST).text


def test_admin_render_preview_waits_for_the_target(make_server, workdir, target):
    s = vd_server(make_server, workdir, [f"t@{target.url('/ok')}"], "--no-vendordata-prefetch")
    rec = record()
    s.put_instance(rec)
    r = s.admin("GET", f"/v1/instances/{rec['id']}/render?path={VD2}")
    assert r.status == 200, r
    assert r.json() == {"static": {}, "t": {"greeting": "hello", "for": rec["id"]}}


@pytest.mark.parametrize("args,message", [
    (["--vendordata-target", "t@https://127.0.0.1:1/"], "http://"),
    (["--vendordata-target", "no-name-here"], "lacks a name"),
    (["--vendordata-target", "t@http://127.0.0.1:1/", "--vendordata-connect-timeout", "2"],
     "at least 3"),
    (["--vendordata-target", "t@http://127.0.0.1:1/", "--vendordata-providers", "StaticJSON"],
     "DynamicJSON"),
    (["--vendordata-providers", "Bogus"], "unknown provider"),
])
def test_bad_configuration_refuses_to_start(make_server, args, message):
    with pytest.raises(RuntimeError) as e:
        make_server(extra_args=args)
    assert "exited with 2" in str(e.value) and message in str(e.value), str(e.value)


def test_bad_static_file_refuses_to_start(make_server, workdir):
    bad = workdir / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(RuntimeError) as e:
        make_server(extra_args=["--vendordata-file", str(bad)])
    assert "not a JSON object" in str(e.value), str(e.value)
