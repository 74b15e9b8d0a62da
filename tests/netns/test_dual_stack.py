"""Dual stack: 169.254.169.254 and fe80::a9fe:a9fe answered identically.

cloud-init's DataSourceOpenStack races http://[fe80::a9fe:a9fe%25<iface>] and
http://169.254.169.254 and keeps the first answer of any status
(openstack.md §7.2, §8.1 item 3), so both must give the same bytes. Over
IPv6 the guest calls from its link-local address, fe80::<EUI-64 of its MAC>;
the catalog derives that address from the instance's NIC MAC (as Neutron's
agent looks callers up by MAC), so the same instance answers.

Two network namespaces of this test's own, one veth pair between them (no
route out, nothing attached to the host's interfaces):

    guest  eth0 MAC 52:54:00:12:34:56, 10.3.0.5/24, addrgenmode eui64
           -> fe80::5054:ff:fe12:3456
      |
    server md0  10.3.0.1/24, 169.254.169.254/32, fe80::a9fe:a9fe/128;
                `openimds serve --listen 169.254.169.254:80
                                --listen [fe80::a9fe:a9fe%md0]:80`

Every request to the metadata addresses starts inside the guest namespace;
the test process itself talks only to the admin unix socket. Namespaces are
named oimds6-<pid>-* and deleted afterwards, even on failure; the server is
stopped by PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Optional

import pytest

from netns_topology import Namespaces, _die_with_parent, run, usable, wait_for_file
from openimds_harness import UnixHTTPConnection, _request, find_binary, instance

PREFIX = f"oimds6-{os.getpid()}-"
IID = "5b2f7c1e-6d4a-4e8b-9c3f-2a1d0e9f8b7a"  # OpenStack ids are UUIDs
MAC = "52:54:00:12:34:56"
GUEST_LL = "fe80::5054:ff:fe12:3456"  # modified EUI-64 of MAC
GUEST_V4 = "10.3.0.5"
V4 = "http://169.254.169.254"
V6 = "http://[fe80::a9fe:a9fe%25eth0]"
SEED = re.compile(rb'"random_seed": "[A-Za-z0-9+/=]*"')


def _why_not() -> Optional[str]:
    if not Path("/usr/lib/python3/dist-packages/cloudinit").is_dir() and os.geteuid() == 0:
        return "cloud-init is not installed (apt-get install cloud-init)"
    return usable(("ip", "curl"), nft=False)


WHY_NOT = _why_not()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


def _clean_env() -> dict:
    """The environment for processes in the guest: no proxy settings, so
    nothing is sent anywhere but where the test says."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


class Lab:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.ns = {k: PREFIX + k for k in ("guest", "server")}
        self.namespaces = Namespaces()
        self.server: Optional[subprocess.Popen] = None
        self.admin = workdir / "admin.sock"

    def sh(self, ns: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.ns[ns], "sh", "-c", command, check=check)

    def build(self) -> None:
        for name in self.ns.values():
            self.namespaces.add(name)
        # Both ends are created inside the guest namespace and the peer moved
        # straight into the server's: nothing appears in the host namespace.
        tmp_g, tmp_s = f"g{os.getpid() % 100000}", f"s{os.getpid() % 100000}"
        self.sh("guest", f"ip link add {tmp_g} type veth peer name {tmp_s} "
                         f"netns {self.ns['server']}")
        # The guest's interface: the instance's MAC and EUI-64 address
        # generation, both set before the link comes up, so the kernel forms
        # fe80::<EUI-64> (and not a stable-privacy address). No DAD: the
        # address is usable at once. Named eth0, not veth*: cloud-init
        # ignores veth devices when it picks the fallback NIC.
        self.sh("guest", f"ip link set {tmp_g} name eth0 && "
                         f"ip link set eth0 address {MAC} && "
                         "sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0 && "
                         "sysctl -qw net.ipv6.conf.eth0.accept_dad=0 && "
                         "sysctl -qw net.ipv6.conf.eth0.addr_gen_mode=0 && "
                         "ip link set eth0 addrgenmode eui64 && "
                         f"ip addr add {GUEST_V4}/24 dev eth0 && "
                         "ip link set eth0 up && "
                         "ip route add 169.254.169.254/32 via 10.3.0.1")
        # The metadata side, as Neutron's DHCP/OVN namespaces configure it.
        self.sh("server", f"ip link set {tmp_s} name md0 && "
                          "sysctl -qw net.ipv6.conf.md0.disable_ipv6=0 && "
                          "sysctl -qw net.ipv6.conf.md0.accept_dad=0 && "
                          "ip addr add 10.3.0.1/24 dev md0 && "
                          "ip addr add 169.254.169.254/32 dev md0 && "
                          "ip -6 addr add fe80::a9fe:a9fe/128 dev md0 nodad && "
                          "ip link set md0 up")
        self.wait_for_link_local()

    def wait_for_link_local(self, timeout: float = 10) -> None:
        """Until the guest's EUI-64 address is there and not tentative."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.sh("guest", "ip -6 -o addr show dev eth0 scope link").stdout.decode()
            if GUEST_LL in out and "tentative" not in out:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"guest link-local address not ready: {out!r}")
            time.sleep(0.1)

    def start_server(self, binary: Path) -> None:
        ready = self.dir / "ready.json"
        log = self.dir / "serve.log"
        with open(log, "wb") as f:
            self.server = subprocess.Popen(
                ["ip", "netns", "exec", self.ns["server"], str(binary), "serve",
                 "--store", f"sqlite:{self.dir}/store.db", "--admin", f"unix:{self.admin}",
                 "--listen", "169.254.169.254:80", "--listen", "[fe80::a9fe:a9fe%md0]:80",
                 "--threads", "2", "--ready-file", str(ready)],
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent)
        wait_for_file(ready, self.server, log)
        self.ready = json.loads(ready.read_text())
        assert self.ready["pid"] == self.server.pid

    def log(self) -> str:
        try:
            return (self.dir / "serve.log").read_text(errors="replace")[-5000:]
        except OSError:
            return "(no log)"

    def admin_call(self, method: str, target: str, body=None,
                   content_type: str = "application/json"):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type} if data else {}
        return _request(UnixHTTPConnection(str(self.admin)), method, target, data, headers)

    def put(self, mac: str = MAC) -> None:
        rec = instance(IID, GUEST_V4, mac=mac)
        rec["nics"][0]["subnet_ipv4_cidr"] = "10.3.0.0/24"
        r = self.admin_call("PUT", f"/v1/instances/{IID}", rec)
        assert r.status in (200, 201), r

    def curl(self, url: str, *args: str, timeout: float = 5) -> tuple[int, bytes, str]:
        """curl inside the guest: (status, body, content type); status 0 when
        nothing came back. -g: the URL holds an IPv6 literal with a zone."""
        p = run("ip", "netns", "exec", self.ns["guest"], "curl", "-s", "-g", "--noproxy", "*",
                "-m", str(timeout), "-o", "-", "-w", "\n%{http_code} %{content_type}", *args,
                url, check=False, timeout=timeout + 10)
        body, _, tail = p.stdout.rpartition(b"\n")
        code, _, ctype = tail.decode().partition(" ")
        return int(code or 0), body, ctype

    def python_in_guest(self, code: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns["guest"], "/usr/bin/python3", "-c",
                               code], capture_output=True, timeout=timeout, env=_clean_env())

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
    workdir = Path(tempfile.mkdtemp(prefix="oimds6-"))
    lab = Lab(workdir)
    try:
        lab.build()
        lab.start_server(binary)
        lab.put()
        yield lab
    finally:
        lab.destroy()
        if os.environ.get("OIMDS_KEEP_NETNS_DIR"):
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def test_server_listens_on_both_metadata_addresses(lab):
    endpoints = sorted(g["endpoint"] for g in lab.ready["guest"])
    assert endpoints == ["169.254.169.254:80", "[fe80::a9fe:a9fe%md0]:80"], lab.ready


def test_guest_calls_from_its_eui64_link_local_address(lab):
    out = lab.sh("guest", "ip -6 -o addr show dev eth0").stdout.decode()
    assert f"{GUEST_LL}/64" in out, out
    assert lab.sh("guest", "cat /sys/class/net/eth0/address").stdout.decode().strip() == MAC


@pytest.mark.parametrize("path", ["/openstack/latest/meta_data.json",
                                  "/latest/meta-data/instance-id",
                                  "/openstack", "/openstack/2018-08-27/network_data.json",
                                  "/latest/meta-data/", "/", "/openstack/latest/nope"])
def test_both_addresses_answer_byte_for_byte_alike(lab, path):
    v4 = lab.curl(V4 + path)
    v6 = lab.curl(V6 + path)
    assert v4[0] != 0 and v6[0] != 0, (v4, v6, lab.log())
    if path.endswith("meta_data.json"):
        v4 = (v4[0], SEED.sub(b'"random_seed": "*"', v4[1]), v4[2])
        v6 = (v6[0], SEED.sub(b'"random_seed": "*"', v6[1]), v6[2])
    assert v4 == v6, path
    if path == "/openstack/latest/meta_data.json":
        assert v4[0] == 200
        assert json.loads(v4[1])["uuid"] == IID
    if path == "/latest/meta-data/instance-id":
        assert (v4[0], v4[1]) == (200, IID.encode())


def test_ipv6_caller_is_found_by_the_mac_of_the_record(lab):
    """Identity over IPv6 comes from the record's NIC MAC: another MAC in the
    record, and the guest's link-local address is unknown (IPv4 still works)."""
    try:
        lab.put(mac="52:54:00:ab:cd:ef")
        status, body, _ = lab.curl(V6 + "/latest/meta-data/instance-id")
        assert status == 404, (status, body)
        assert GUEST_LL.encode() in body, body  # "no instance is registered for <addr> ..."
        status, body, _ = lab.curl(V4 + "/latest/meta-data/instance-id")
        assert (status, body) == (200, IID.encode())
    finally:
        lab.put()
    status, body, _ = lab.curl(V6 + "/latest/meta-data/instance-id")
    assert (status, body) == (200, IID.encode())


# cloud-init's own code, as a library inside the guest namespace. Newer
# cloud-init (openstack.md §7.2) defaults DataSourceOpenStack's metadata_urls
# to [http://[fe80::a9fe:a9fe%25<fallback nic>], http://169.254.169.254] and
# races them with url_helper.wait_for_url(connect_synchronously=False)
# (dual_stack: 150 ms apart, first answer of any status). When the installed
# DataSourceOpenStack already does that, its wait_for_metadata_service() is
# run as it is; an older one (Debian 12 ships 22.4, IPv4 only and serial)
# gets the same call made here with its own url_helper and fallback-NIC
# logic. Then the real read_metadata_service() crawls the winner (and its EC2
# crawl goes to 169.254.169.254, as cloud-init's does). Nothing is written
# outside a temporary directory; no *Local datasource (no DHCP) is used.
CLOUD_INIT_SCRIPT = textwrap.dedent("""
    import json, shutil, sys, tempfile
    from cloudinit import net, url_helper, util
    from cloudinit.sources import DataSourceOpenStack as m

    util._DNS_REDIRECT_IP = set()     # no probes for bogus names
    util.udevadm_settle = lambda *a, **k: None  # the host's udev is not ours
    fallback = net.find_fallback_nic()
    timeout, max_wait = 5, 30
    tmp = tempfile.mkdtemp(prefix="oimds-ci-")
    try:
        defaults = [str(u) for u in getattr(m, "DEF_MD_URLS", [getattr(m, "DEF_MD_URL", "")])]
        if any("fe80::a9fe:a9fe" in u for u in defaults):
            from cloudinit import distros, helpers
            paths = helpers.Paths({"cloud_dir": tmp + "/cloud", "run_dir": tmp + "/run",
                                   "docs_dir": tmp, "templates_dir": tmp})
            distro = distros.fetch("debian")("debian", {}, paths)
            cfg = {"datasource": {"OpenStack": {"timeout": timeout, "max_wait": max_wait,
                                                "retries": 1}}}
            ds = m.DataSourceOpenStack(cfg, distro, paths)
            how = "DataSourceOpenStack.wait_for_metadata_service"
            assert ds.wait_for_metadata_service(), "no metadata service found"
            base, urls = ds.metadata_address, defaults
        else:
            urls = ["http://[fe80::a9fe:a9fe%25" + fallback + "]", "http://169.254.169.254"]
            md_urls = [url_helper.combine_url(u, "openstack") for u in urls]
            how = "url_helper.wait_for_url(connect_synchronously=False)"
            avail, response = url_helper.wait_for_url(
                urls=md_urls, max_wait=max_wait, timeout=timeout, connect_synchronously=False)
            assert avail, "no metadata service found"
            base = urls[md_urls.index(avail)]
        results = {}
        for b in urls:
            r = m.read_metadata_service(b, timeout=timeout, retries=1)
            md = r["metadata"]
            md.pop("random_seed", None)
            results[b] = {"iid": md.get("instance-id"), "uuid": md.get("uuid"),
                          "version": r.get("version"), "md": md,
                          "ec2_iid": (r.get("ec2-metadata") or {}).get("instance-id"),
                          "userdata": (r.get("userdata") or b"").decode()}
        print(json.dumps({"how": how, "fallback": fallback, "urls": urls, "winner": base,
                          "results": results}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
""")


def test_cloud_init_openstack_datasource_races_both_and_gets_this_instance(lab):
    p = lab.python_in_guest(CLOUD_INIT_SCRIPT)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:] + lab.log()
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert out["fallback"] == "eth0", out
    assert out["urls"][0] == V6 and out["urls"][1] == V4, out
    assert out["winner"] in (V4, V6), out
    print(f"cloud-init race ({out['how']}): winner {out['winner']}")
    results = out["results"]
    for base in (V4, V6):
        r = results[base]
        assert r["iid"] == IID and r["uuid"] == IID, (base, r)
        assert r["ec2_iid"] == IID, (base, r)  # its EC2 crawl, over 169.254.169.254
        assert f"hostname: {IID}" in r["userdata"], (base, r)
    # Both bases gave cloud-init the same metadata.
    assert results[V4]["md"] == results[V6]["md"]
    assert results[V4]["version"] == results[V6]["version"] == 2
