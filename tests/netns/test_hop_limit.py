"""The IMDSv2 hop limit, for real, and the IPv6 endpoint.

Three network namespaces of this test's own, joined by veth pairs only (no
route out, nothing attached to the host's interfaces):

    guest (10.1.0.2, fd01::2) -- router (forwards, 1 hop) -- server
                                                              169.254.169.254/32 and
                                                              fd00:ec2::254/128 on lo,
                                                              `openimds serve` on both

The token PUT response leaves the server with IP TTL / IPv6 hop limit = the
instance's hop limit. The router decrements it: with hop limit 1 the guest
never receives the token, with 2 it does; plain GETs (default TTL) work
either way. Every request to the metadata addresses starts inside the guest
namespace; the test process itself talks only to the admin unix socket.
Namespaces are named oimds3-<pid>-* and deleted afterwards, even on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Optional

import pytest

from netns_topology import Namespaces, _die_with_parent, run, usable
from openimds_harness import UnixHTTPConnection, _request, find_binary, instance

PREFIX = f"oimds3-{os.getpid()}-"
IID = "i-0h0p11m17000000a1"
GUEST_V4, GUEST_V6 = "10.1.0.2", "fd01::2"
TOKEN_PUT = ["-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60"]


WHY_NOT = usable(("ip", "curl"), nft=False)
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


class Lab:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.ns = {k: PREFIX + k for k in ("guest", "router", "server")}
        self.namespaces = Namespaces()
        self.server: Optional[subprocess.Popen] = None
        self.admin = workdir / "admin.sock"

    def sh(self, ns: str, command: str) -> None:
        run("ip", "netns", "exec", self.ns[ns], "sh", "-c", command)

    def build(self) -> None:
        for name in self.ns.values():
            self.namespaces.add(name)
        self.veth("guest", "eth0", "router", "rg")
        self.veth("router", "rs", "server", "eth0")
        self.sh("guest", f"ip addr add {GUEST_V4}/24 dev eth0 && "
                         f"ip -6 addr add {GUEST_V6}/64 dev eth0 nodad && "
                         "ip route add 169.254.169.254/32 via 10.1.0.1 && "
                         "ip -6 route add fd00:ec2::254/128 via fd01::1")
        self.sh("router", "ip addr add 10.1.0.1/24 dev rg && ip addr add 10.2.0.1/24 dev rs && "
                          "ip -6 addr add fd01::1/64 dev rg nodad && "
                          "ip -6 addr add fd02::1/64 dev rs nodad && "
                          "sysctl -qw net.ipv4.ip_forward=1 && "
                          "sysctl -qw net.ipv6.conf.all.forwarding=1 && "
                          "ip route add 169.254.169.254/32 via 10.2.0.2 && "
                          "ip -6 route add fd00:ec2::254/128 via fd02::2")
        self.sh("server", "ip addr add 10.2.0.2/24 dev eth0 && "
                          "ip -6 addr add fd02::2/64 dev eth0 nodad && "
                          "ip addr add 169.254.169.254/32 dev lo && "
                          "ip -6 addr add fd00:ec2::254/128 dev lo nodad && "
                          "ip route add 10.1.0.0/24 via 10.2.0.1 && "
                          "ip -6 route add fd01::/64 via fd02::1")

    def veth(self, ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
        tmp_a = f"h{os.getpid() % 100000}{dev_a}"[:15]
        tmp_b = f"k{os.getpid() % 100000}{dev_b}"[:15]
        # Created inside ns_a: nothing ever appears in the host namespace.
        self.sh(ns_a, f"ip link add {tmp_a} type veth peer name {tmp_b} netns {self.ns[ns_b]}")
        self.sh(ns_a, f"ip link set {tmp_a} name {dev_a} && ip link set {dev_a} up")
        self.sh(ns_b, f"ip link set {tmp_b} name {dev_b} && ip link set {dev_b} up")

    def start_server(self, binary: Path) -> None:
        ready = self.dir / "ready.json"
        log = open(self.dir / "serve.log", "wb")
        try:
            self.server = subprocess.Popen(
                ["ip", "netns", "exec", self.ns["server"], str(binary), "serve",
                 "--store", f"sqlite:{self.dir}/store.db", "--admin", f"unix:{self.admin}",
                 "--listen", "169.254.169.254:80", "--listen", "[fd00:ec2::254]:80",
                 "--threads", "2", "--ready-file", str(ready)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent)
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve did not start:\n" + self.log())
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return (self.dir / "serve.log").read_text(errors="replace")[-5000:]
        except OSError:
            return "(no log)"

    def put(self, hop_limit: int, http_tokens: str = "optional") -> None:
        rec = instance(IID, GUEST_V4, mac="02:00:00:00:01:02")
        rec["nics"][0]["ipv6s"] = [GUEST_V6]
        rec["metadata_options"]["hop_limit"] = hop_limit
        rec["metadata_options"]["http_tokens"] = http_tokens
        r = _request(UnixHTTPConnection(str(self.admin)), "PUT", f"/v1/instances/{IID}",
                     json.dumps(rec).encode(), {"Content-Type": "application/json"})
        assert r.status in (200, 201), r

    def curl(self, url: str, *args: str, timeout: float = 3) -> subprocess.CompletedProcess:
        """curl inside the guest namespace; -g for IPv6 literals."""
        return run("ip", "netns", "exec", self.ns["guest"], "curl", "-s", "-g", "--noproxy", "*",
                    "-m", str(timeout), "-w", "\n%{http_code}", *args, url, check=False,
                    timeout=timeout + 10)

    def python_in_guest(self, code: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.ns["guest"], "/usr/bin/python3", "-c", code,
                    check=False, timeout=timeout)

    def watch_ttls(self) -> None:
        """(Re)creates counters, in the guest, of the data segments arriving
        from the metadata addresses, one per TTL / hop limit seen (1 and 63
        expected, anything else in 'other')."""
        run("ip", "netns", "exec", self.ns["guest"], "nft", "delete", "table", "inet",
             "oimds3ttl", check=False)
        rules = ["table inet oimds3ttl {", " chain in {",
                 "  type filter hook input priority 0; policy accept;"]
        for ttl in (1, 63):
            rules.append(f"  ip saddr 169.254.169.254 tcp sport 80 tcp flags & psh == psh "
                         f"ip ttl {ttl} counter")
            rules.append(f"  ip6 saddr fd00:ec2::254 tcp sport 80 tcp flags & psh == psh "
                         f"ip6 hoplimit {ttl} counter")
        rules.append("  ip saddr 169.254.169.254 tcp sport 80 tcp flags & psh == psh "
                     "ip ttl != { 1, 63 } counter")
        rules.append("  ip6 saddr fd00:ec2::254 tcp sport 80 tcp flags & psh == psh "
                     "ip6 hoplimit != { 1, 63 } counter")
        rules += [" }", "}"]
        run("ip", "netns", "exec", self.ns["guest"], "nft", "-f", "-",
             input="\n".join(rules).encode() + b"\n")

    def ttl_counts(self) -> dict:
        """{ttl: packets} from watch_ttls' counters; key 0 for 'other'."""
        p = run("ip", "netns", "exec", self.ns["guest"], "nft", "-j", "list", "table", "inet",
                 "oimds3ttl")
        counts: dict = {}
        for item in json.loads(p.stdout)["nftables"]:
            rule = item.get("rule")
            if not rule:
                continue
            ttl, packets = None, 0
            for expr in rule["expr"]:
                m = expr.get("match")
                if m and m["left"].get("payload", {}).get("field") in ("ttl", "hoplimit"):
                    ttl = m["right"] if m["op"] == "==" else 0
                if "counter" in expr:
                    packets = expr["counter"]["packets"]
            if packets:
                counts[ttl] = counts.get(ttl, 0) + packets
        return counts

    def destroy(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.namespaces.delete_all()


@pytest.fixture(scope="module")
def lab():
    binary = find_binary()
    workdir = Path(tempfile.mkdtemp(prefix="oimds3-"))
    lab = Lab(workdir)
    try:
        lab.build()
        lab.start_server(binary)
        yield lab
    finally:
        lab.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


def split(p: subprocess.CompletedProcess) -> tuple[int, str]:
    """curl -w '\\n%{http_code}' output -> (status, body); status 0 if nothing came back."""
    body, _, code = p.stdout.decode(errors="replace").rpartition("\n")
    return int(code or 0), body


ENDPOINTS = [pytest.param("http://169.254.169.254", id="ipv4"),
             pytest.param("http://[fd00:ec2::254]", id="ipv6")]


@pytest.mark.parametrize("base", ENDPOINTS)
def test_hop_limit_1_the_token_never_reaches_a_guest_one_router_away(lab, base):
    lab.put(hop_limit=1)
    status, body = split(lab.curl(base + "/latest/meta-data/instance-id"))
    assert (status, body) == (200, IID), lab.log()
    p = lab.curl(base + "/latest/api/token", *TOKEN_PUT)
    status, body = split(p)
    assert p.returncode == 28, (p.returncode, p.stdout)  # curl: operation timed out
    assert status == 0 and body == ""


@pytest.mark.parametrize("base", ENDPOINTS)
def test_hop_limit_2_the_token_arrives_and_works(lab, base):
    lab.put(hop_limit=2, http_tokens="required")
    p = lab.curl(base + "/latest/api/token", *TOKEN_PUT)
    status, token = split(p)
    assert status == 200 and len(token) == 55, (p.returncode, p.stdout, lab.log())
    status, body = split(lab.curl(base + "/latest/meta-data/instance-id", "-H",
                                  f"X-aws-ec2-metadata-token: {token}"))
    assert (status, body) == (200, IID)
    status, _ = split(lab.curl(base + "/latest/meta-data/instance-id"))
    assert status == 401


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft to count packets by TTL")
@pytest.mark.parametrize("base", ENDPOINTS)
def test_keep_alive_after_the_token_uses_the_default_ttl_again(lab, base):
    """Token, then a GET, on one kept-alive connection (hop limit 2): the
    guest's firewall counts the data segments it receives by TTL. The token
    arrives with 1 left (2, less the router), the GET's answer with 63 (the
    default 64, less the router): the hop limit applied to the token only."""
    lab.put(hop_limit=2)
    lab.watch_ttls()
    host = base.split("//")[1]
    code = textwrap.dedent(f"""
        import socket
        family = socket.AF_INET6 if {host!r}.startswith("[") else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(({host!r}.strip("[]"), 80))
        def exchange(req):
            s.sendall(req)
            data = b""
            while True:
                head, sep, body = data.partition(b"\\r\\n\\r\\n")
                if sep:
                    n = [int(l.split(b":")[1]) for l in head.split(b"\\r\\n")
                         if l.lower().startswith(b"content-length")][0]
                    if len(body) >= n:
                        return head.split(b" ")[1].decode()
                data += s.recv(65536)
        print(exchange(b"PUT /latest/api/token HTTP/1.1\\r\\nHost: x\\r\\n"
                       b"X-aws-ec2-metadata-token-ttl-seconds: 60\\r\\nContent-Length: 0\\r\\n\\r\\n"),
              exchange(b"GET /latest/meta-data/instance-id HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"))
    """)
    p = lab.python_in_guest(code)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert p.stdout.split() == [b"200", b"200"]
    counts = lab.ttl_counts()
    assert counts[1] == 1, counts    # the token response, one segment
    assert counts[63] >= 1, counts   # the GET's response
    assert set(counts) <= {1, 63}, counts


# Regression: the HTTP core used to restore the default TTL before the next
# response even while the token segment was unacknowledged, so its
# retransmission left with the default TTL and reached a guest the hop limit
# should stop. http::HopLimitGuard now restores only once ioctl(SIOCOUTQ) is 0.
@pytest.mark.parametrize("base", ENDPOINTS)
def test_a_pipelined_request_does_not_carry_the_token_past_the_hop_limit(lab, base):
    """PUT and GET written together (hop limit 1): the token segment is
    dropped at the router; the token must not arrive later either, e.g. in a
    retransmission sent after the connection went back to the default TTL."""
    lab.put(hop_limit=1)
    host = base.split("//")[1]
    code = textwrap.dedent(f"""
        import socket, time
        family = socket.AF_INET6 if {host!r}.startswith("[") else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(({host!r}.strip("[]"), 80))
        s.sendall(b"PUT /latest/api/token HTTP/1.1\\r\\nHost: x\\r\\n"
                  b"X-aws-ec2-metadata-token-ttl-seconds: 60\\r\\nContent-Length: 0\\r\\n\\r\\n"
                  b"GET /latest/meta-data/instance-id HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        data, end = b"", time.monotonic() + 6
        while time.monotonic() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
        print(repr(data))
    """)
    p = lab.python_in_guest(code)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    received = p.stdout.decode()
    assert "X-Aws-Ec2-Metadata-Token-Ttl-Seconds" not in received, received


def test_ipv6_endpoint_is_served_identically(lab):
    lab.put(hop_limit=2)
    for path in ("/", "/latest/meta-data/", "/latest/meta-data/instance-id",
                 "/latest/dynamic/instance-identity/document",
                 "/latest/meta-data/network/interfaces/macs/02:00:00:00:01:02/ipv6s",
                 "/latest/meta-data/nope"):
        v4 = split(lab.curl("http://169.254.169.254" + path))
        v6 = split(lab.curl("http://[fd00:ec2::254]" + path))
        assert v4 == v6, path
    assert split(lab.curl("http://[fd00:ec2::254]/latest/meta-data/ipv6"))[1] == GUEST_V6
    # The redirect names the address the guest used.
    p = lab.curl("http://[fd00:ec2::254]/latest/meta-data", "-o", "/dev/null", "-w",
                 "%{redirect_url}")
    assert p.stdout.decode().startswith("http://[fd00:ec2::254]/latest/meta-data/")
