"""The whole path to 169.254.169.254, end to end, in namespaces of its own.

Two tenant networks both put a guest at 10.0.0.5. A host namespace runs one
`openimds proxy` per network: tenant-a's guests reach theirs through the
`openimds redirect` DNAT rule, tenant-b's proxy listens on 169.254.169.254
itself. `openimds serve` runs in its own namespace with proxy-facing
listeners (TCP for one proxy, a unix socket for the other). Every request to
169.254.169.254 starts inside a guest namespace; the test process itself
talks only to unix sockets. See netns_topology.py for the wiring.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import netns_topology as topo
from openimds_harness import UnixHTTPConnection, _request, find_binary, instance, parse_metrics

WHY_NOT = topo.usable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

PROXY_KEY = "2026 proxy-secret-0123456789abcdef"
NEUTRON_SECRET = "neutron-shared-secret-0123456789"
IID_A, IID_B = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"


def write_secret(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


class Env:
    """The running system: namespaces, server, proxies."""

    def __init__(self, t: topo.Topology, workdir: Path, binary: Path):
        self.t = t
        self.dir = workdir
        self.bin = str(binary)
        self.keys = write_secret(workdir / "proxy.keys", PROXY_KEY)
        self.neutron = write_secret(workdir / "neutron.secret", NEUTRON_SECRET)
        self.admin = workdir / "admin.sock"
        self.server = None
        self.server_starts = 0
        self.proxies = {}

    def start_server(self) -> None:
        self.server_starts += 1
        ready = self.dir / "serve.ready"
        ready.unlink(missing_ok=True)
        log = self.dir / f"serve-{self.server_starts}.log"
        self.server = self.t.start("server", [
            self.bin, "serve", "--store", f"sqlite:{self.dir}/store.db",
            "--admin", f"unix:{self.admin}", "--ready-file", str(ready), "--threads", "2",
            "--listen", "10.255.0.2:8775,mode=proxy",
            "--listen", f"unix:{self.dir}/proxied.sock,mode=proxy",
            "--trusted-proxy", "10.255.0.1/32",
            "--proxy-keys-file", str(self.keys),
            "--neutron-secret-file", str(self.neutron)], log)
        topo.wait_for_file(ready, self.server, log)

    def start_proxy(self, name: str, listen: str, upstream: str) -> None:
        ready = self.dir / f"proxy-{name}.ready"
        log = self.dir / f"proxy-{name}.log"
        p = self.t.start("host", [
            self.bin, "proxy", "--listen", listen, "--upstream", upstream,
            "--key-file", str(self.keys), "--threads", "2",
            "--metrics", f"unix:{self.dir}/proxy-{name}-metrics.sock",
            "--ready-file", str(ready)], log)
        topo.wait_for_file(ready, p, log)
        assert json.loads(ready.read_text())["pid"] == p.pid
        self.proxies[name] = p

    def admin_call(self, method: str, target: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        return _request(UnixHTTPConnection(str(self.admin)), method, target, data, headers)

    def server_metrics(self) -> dict:
        r = self.admin_call("GET", "/metrics")
        assert r.status == 200, r
        return parse_metrics(r.text)

    def proxy_metrics(self, name: str) -> dict:
        r = _request(UnixHTTPConnection(str(self.dir / f"proxy-{name}-metrics.sock")), "GET",
                     "/metrics", None, {})
        assert r.status == 200, r
        return parse_metrics(r.text)

    def curl(self, ns: str, url: str, *args: str, timeout: int = 5):
        """curl inside namespace `ns`; returns (status, headers, body)."""
        assert ns != "root"
        p = self.t.exec(ns, "curl", "-s", "-i", "-m", str(timeout), *args, url,
                        timeout=timeout + 10)
        if p.returncode != 0:
            return None, {}, p.stderr.decode(errors="replace") + f" (curl exit {p.returncode})"
        raw = p.stdout.decode(errors="replace")
        head, _, body = raw.partition("\r\n\r\n")
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers, body

    def record(self, iid: str, network: str, account: str, mac: str) -> dict:
        rec = instance(iid, "10.0.0.5", network=network, mac=mac, account_id=account)
        rec["nics"][0]["subnet_ipv4_cidr"] = "10.0.0.0/24"
        rec["nics"][0]["vpc_ipv4_cidr"] = "10.0.0.0/16"
        return rec


@pytest.fixture(scope="module")
def env():
    binary = find_binary()
    workdir = Path(tempfile.mkdtemp(prefix="oimds-netns-"))
    t = topo.Topology(workdir)
    try:
        t.build()
        e = Env(t, workdir, binary)
        # tenant-a: the nft redirect sends 169.254.169.254:80 from ha to the proxy.
        p = t.exec("host", e.bin, "redirect", "apply", "--interface", "ha",
                   "--to", "10.0.0.1:9697")
        assert p.returncode == 0, p.stderr
        # tenant-b: the proxy listens on the metadata address itself.
        p = t.exec("host", e.bin, "redirect", "address", "add", "--interface", "hb")
        assert p.returncode == 0, p.stderr
        e.start_server()
        for rec in (e.record(IID_A, "tenant-a", "proj-a", "02:00:00:00:0a:05"),
                    e.record(IID_B, "tenant-b", "proj-b", "02:00:00:00:0b:05")):
            r = e.admin_call("PUT", f"/v1/instances/{rec['id']}", rec)
            assert r.status in (200, 201), r
        e.start_proxy("a", "10.0.0.1:9697,network=tenant-a,interface=ha", "10.255.0.2:8775")
        e.start_proxy("b", "169.254.169.254:80,network=tenant-b,interface=hb",
                      f"unix:{workdir}/proxied.sock")
        yield e
    finally:
        t.destroy()
        if os.environ.get("OIMDS_KEEP_NETNS_DIR"):
            print(f"kept {workdir}")
        else:
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)


MD = "http://169.254.169.254/latest/meta-data/"


def test_each_guest_gets_its_own_record(env):
    for guest, iid in (("guest-a", IID_A), ("guest-b", IID_B)):
        status, _, body = env.curl(guest, MD + "instance-id")
        assert (status, body) == (200, iid), (guest, status, body)
        status, _, body = env.curl(guest, MD + "local-ipv4")
        assert (status, body) == (200, "10.0.0.5")
    m = env.server_metrics()
    assert m.get('identity_accepted_total{via="proxy"}', 0) >= 4


def test_forged_identity_headers_change_nothing(env):
    neutron_sig = hmac.new(NEUTRON_SECRET.encode(), IID_B.encode(), hashlib.sha256).hexdigest()
    forged = ["-H", "X-Forwarded-For: 10.0.0.5, 10.0.0.9", "-H", "Forwarded: for=10.0.0.9",
              "-H", "X-Instance-ID: " + IID_B, "-H", "X-Tenant-ID: proj-b",
              "-H", "X-Instance-ID-Signature: " + neutron_sig,
              "-H", "X-OpenIMDS-Network: tenant-b", "-H", "X-OpenIMDS-Source: 10.0.0.5",
              "-H", "X-Neutron-Network-ID: tenant-b", "-H", "X-OVN-Network-ID: tenant-b"]
    status, _, body = env.curl("guest-a", MD + "instance-id", *forged)
    assert (status, body) == (200, IID_A)
    status, _, body = env.curl("guest-b", MD + "instance-id", *forged[:4])
    assert (status, body) == (200, IID_B)
    assert env.proxy_metrics("a")["proxy_identity_headers_stripped_total"] >= 1
    # The guest's X-Forwarded-For still marks its token PUT as relayed (EC2 policy: 403).
    status, _, _ = env.curl("guest-a", "http://169.254.169.254/latest/api/token", "-X", "PUT",
                            "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60",
                            "-H", "X-Forwarded-For: 10.0.0.9")
    assert status == 403


def signed_headers(method: str, target: str, network: str, source: str, ts: int,
                   key_id: str = "2026", secret: str = PROXY_KEY.split()[1]) -> list[str]:
    msg = f"openimds-identity-v1\n{method}\n{target}\n{network}\n{source}\n{ts}"
    sig = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
    out = []
    for k, v in (("X-OpenIMDS-Network", network), ("X-OpenIMDS-Source", source),
                 ("X-OpenIMDS-Timestamp", str(ts)), ("X-OpenIMDS-Key-Id", key_id),
                 ("X-OpenIMDS-Signature", sig)):
        out += ["-H", f"{k}: {v}"]
    return out


def test_server_refuses_stale_wrong_and_untrusted_signatures(env):
    target = "/latest/meta-data/instance-id"
    url = "http://10.255.0.2:8775" + target
    now = int(time.time())
    # Control: a correct signature from the trusted peer is served.
    status, _, body = env.curl("host", url, *signed_headers("GET", target, "tenant-b", "10.0.0.5",
                                                            now))
    assert (status, body) == (200, IID_B)
    before = env.server_metrics()
    cases = {
        "stale": signed_headers("GET", target, "tenant-b", "10.0.0.5", now - 300),
        "bad_signature": signed_headers("GET", target, "tenant-b", "10.0.0.5", now,
                                        secret="not-the-secret-0123456789"),
        "unknown_key": signed_headers("GET", target, "tenant-b", "10.0.0.5", now, key_id="old"),
    }
    for reason, headers in cases.items():
        status, _, body = env.curl("host", url, *headers)
        assert status == 403, (reason, status, body)
    # Signed for another path: refused too.
    status, _, _ = env.curl("host", "http://10.255.0.2:8775/latest/user-data",
                            *signed_headers("GET", target, "tenant-b", "10.0.0.5", now))
    assert status == 403
    # A valid signature from a peer that is not a trusted proxy (the server's
    # own namespace, 10.255.0.2) is refused whatever it carries.
    status, _, _ = env.curl("server", url, *signed_headers("GET", target, "tenant-b", "10.0.0.5",
                                                           now))
    assert status == 403
    after = env.server_metrics()
    for reason in ("stale", "unknown_key", "untrusted_peer"):
        key = f'identity_rejected_total{{reason="{reason}"}}'
        assert after.get(key, 0) - before.get(key, 0) >= 1, reason
    key = 'identity_rejected_total{reason="bad_signature"}'
    assert after.get(key, 0) - before.get(key, 0) >= 2
    # Guests cannot reach the server at all.
    status, _, err = env.curl("guest-a", url, timeout=2)
    assert status is None, err


def test_neutron_metadata_agent_headers(env):
    """What an unmodified neutron-metadata-agent sends to nova_metadata_host:port."""
    url = "http://10.255.0.2:8775/latest/meta-data/instance-id"

    def agent(iid: str, tenant: str, secret: str = NEUTRON_SECRET, drop: str = ""):
        h = {"X-Forwarded-For": "10.0.0.5", "X-Instance-ID": iid, "X-Tenant-ID": tenant,
             "X-Instance-ID-Signature": hmac.new(secret.encode(), iid.encode(),
                                                 hashlib.sha256).hexdigest()}
        h.pop(drop, None)
        args = []
        for k, v in h.items():
            args += ["-H", f"{k}: {v}"]
        return env.curl("host", url, *args)[:3:2]

    assert agent(IID_A, "proj-a") == (200, IID_A)
    assert agent(IID_B, "proj-b") == (200, IID_B)
    for missing in ("X-Instance-ID", "X-Tenant-ID", "X-Instance-ID-Signature"):
        assert agent(IID_A, "proj-a", drop=missing)[0] == 400, missing
    assert agent(IID_A, "proj-a", secret="wrong-secret-0123456789")[0] == 403
    assert agent(IID_A, "proj-b")[0] == 404  # tenant mismatch, as Nova


def test_cloud_init_datasource_ec2_with_default_urls(env):
    script = textwrap.dedent("""
        import json, shutil, sys, tempfile
        from cloudinit import distros, helpers, util
        from cloudinit.sources import DataSourceEc2 as m
        util._DNS_REDIRECT_IP = set()   # no bogus-name probes
        tmp = tempfile.mkdtemp(prefix="oimds-ci-")
        try:
            paths = helpers.Paths({"cloud_dir": tmp + "/cloud", "run_dir": tmp + "/run",
                                   "docs_dir": tmp, "templates_dir": tmp})
            distro = distros.fetch("debian")("debian", {}, paths)
            cfg = {"datasource": {"Ec2": {"timeout": 5, "max_wait": 30}}}  # default metadata_urls
            ds = m.DataSourceEc2(cfg, distro, paths)
            ds._cloud_name = "aws"
            ok = ds.get_data()
            print(json.dumps({"ok": ok, "iid": ds.get_instance_id(),
                              "urls": ds.ds_cfg.get("metadata_urls"),
                              "url": ds.metadata_address,
                              "token": bool(ds._api_token),
                              "az": ds.metadata.get("placement", {}).get("availability-zone"),
                              "keys": ds.get_public_ssh_keys(),
                              "userdata": (ds.userdata_raw or b"").decode()}))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    """)
    for guest, iid in (("guest-a", IID_A), ("guest-b", IID_B)):
        p = env.t.exec(guest, "/usr/bin/python3", "-c", script, timeout=120)
        assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
        assert out["ok"] is True, out
        assert out["iid"] == iid
        assert out["url"] == "http://169.254.169.254"
        assert out["token"] is True, "IMDSv2 token flow through the proxy"
        assert out["az"] == "eu-west-1b"
        assert any("test-key" in k for k in out["keys"]), out["keys"]
        assert f"hostname: {iid}" in out["userdata"]


def ttl_counts(env) -> tuple[int, int]:
    """Packets from 169.254.169.254:80 seen by guest-a with TTL 1, and with other TTLs."""
    out = env.t.exec("guest-a", "nft", "list", "table", "inet", "ttlwatch").stdout.decode()
    counts = [int(x) for x in re.findall(r"counter packets (\d+)", out)]
    assert len(counts) == 2, out
    return counts[0], counts[1]


def set_hop_limit(env, iid: str, hops: int) -> None:
    body = json.dumps({"metadata_options": {"hop_limit": hops}}).encode()
    r = _request(UnixHTTPConnection(str(env.admin)), "PATCH", f"/v1/instances/{iid}", body,
                 {"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, r


def test_hop_limit_applies_through_the_proxy(env):
    token_url = "http://169.254.169.254/latest/api/token"
    put = ["-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60"]
    set_hop_limit(env, IID_A, 1)
    ttl1_before, other_before = ttl_counts(env)
    status, headers, token = env.curl("guest-a", token_url, *put)
    assert status == 200 and token, (status, token)
    assert "x-openimds-ip-ttl" not in headers
    ttl1_after, _ = ttl_counts(env)
    assert ttl1_after > ttl1_before, "the token response did not leave with TTL 1"
    status, _, body = env.curl("guest-a", MD + "instance-id", "-H",
                               f"X-aws-ec2-metadata-token: {token}")
    assert (status, body) == (200, IID_A)
    assert ttl_counts(env)[1] > other_before, "ordinary responses keep the default TTL"

    # A container behind the guest is one hop further: with hop limit 1 the
    # token response dies on the way; IMDSv1 still works; hop limit 2 lets it through.
    status, _, err = env.curl("ctr-a", token_url, *put, timeout=3)
    assert status is None, (status, err)
    status, _, body = env.curl("ctr-a", MD + "instance-id")
    assert (status, body) == (200, IID_A)
    set_hop_limit(env, IID_A, 2)
    status, _, token = env.curl("ctr-a", token_url, *put)
    assert status == 200 and token
    set_hop_limit(env, IID_A, 1)


def test_redirect_show_prints_what_is_installed(env):
    shown = env.t.exec("host", env.bin, "redirect", "show", "--interface", "ha",
                       "--to", "10.0.0.1:9697").stdout.decode()
    assert 'iifname { "ha" } ip daddr 169.254.169.254 tcp dport 80 counter dnat ip to ' \
           '10.0.0.1:9697' in shown
    installed = env.t.exec("host", env.bin, "redirect", "show", "--installed").stdout.decode()
    assert re.search(r'iifname "ha" ip daddr 169\.254\.169\.254 tcp dport 80 counter packets '
                     r'[1-9]\d* bytes \d+ dnat ip to 10\.0\.0\.1:9697', installed), installed
    # Applying again changes nothing (the counters aside).
    norm = lambda s: re.sub(r"packets \d+ bytes \d+", "", s)
    assert env.t.exec("host", env.bin, "redirect", "apply", "--interface", "ha",
                      "--to", "10.0.0.1:9697").returncode == 0
    again = env.t.exec("host", env.bin, "redirect", "show", "--installed").stdout.decode()
    assert norm(again) == norm(installed)


def test_server_down_503_then_recovers_without_proxy_restart(env):
    proxies_before = {k: p.pid for k, p in env.proxies.items()}
    assert env.t.stop(env.server) == 0
    for guest in ("guest-a", "guest-b"):
        status, headers, body = env.curl(guest, MD + "instance-id")
        assert status == 503, (guest, status, body)
        assert headers.get("retry-after") == "1"
    m = env.proxy_metrics("a")
    assert m['proxy_rejected_total{reason="unavailable"}'] >= 1
    env.start_server()
    deadline = time.monotonic() + 20
    got = {}
    while time.monotonic() < deadline and len(got) < 2:
        for guest, iid in (("guest-a", IID_A), ("guest-b", IID_B)):
            status, _, body = env.curl(guest, MD + "instance-id", timeout=2)
            if (status, body) == (200, iid):
                got[guest] = True
        time.sleep(0.3)
    assert len(got) == 2, "the proxies did not recover"
    assert {k: p.pid for k, p in env.proxies.items()} == proxies_before
    assert all(p.poll() is None for p in env.proxies.values())


def test_redirect_remove_leaves_the_namespace_as_it_was(env):
    # Last: the redirect goes away and guest-a's path with it.
    p = env.t.exec("host", env.bin, "redirect", "remove")
    assert p.returncode == 0, p.stderr
    assert env.t.exec("host", "nft", "list", "ruleset").stdout.decode().strip() == ""
    assert env.t.exec("host", env.bin, "redirect", "remove").returncode == 0
    status, _, _ = env.curl("guest-a", MD + "instance-id", timeout=2)
    assert status != 200
    p = env.t.exec("host", env.bin, "redirect", "address", "remove", "--interface", "hb")
    assert p.returncode == 0, p.stderr
    assert "169.254.169.254" not in env.t.exec("host", "ip", "-o", "addr").stdout.decode()
