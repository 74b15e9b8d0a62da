"""cloud-init's OpenStack datasource helpers (Debian's package, as a library)
against the real server on loopback.

read_metadata_service() does what DataSourceOpenStack does after discovery:
GET /openstack, pick the newest version it knows (2018-08-27), fetch
meta_data.json, user_data, vendor_data.json, vendor_data2.json,
network_data.json, then crawl the EC2 tree. That crawl is hard-coded to
http://169.254.169.254; here it is pointed at the same loopback server (the
netns variant with the real link-local address is left to tests/netns).
convert_net_json() then turns our network_data.json into network config v1.
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import pytest

from cloudinit import url_helper, util
from cloudinit.sources import DataSourceOpenStack
from cloudinit.sources.helpers import openstack as os_helper

import loopback_guard
from openimds_harness import metric_sum

util._DNS_REDIRECT_IP = set()  # numeric loopback URLs: no DNS-hijack probing

FIXTURE = Path(__file__).resolve().parents[1] / "testdata" / "openstack" / "instance.json"
KNOWN_MACS = {"fa:16:3e:00:00:01": "eth0", "fa:16:3e:00:00:02": "eth1",
              "fa:16:3e:00:00:03": "eth2"}


def record() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture
def os_server(make_server):
    s = make_server(name="openstack")
    s.put_instance(record())
    return s


def no_escapes():
    assert loopback_guard.refused == [], loopback_guard.refused


def read_service(base: str) -> dict:
    # The EC2 crawl inside read_v2 goes to the same (loopback) base URL.
    orig = os_helper.ec2.get_instance_metadata
    os_helper.ec2.get_instance_metadata = functools.partial(orig, metadata_address=base)
    try:
        return DataSourceOpenStack.read_metadata_service(base, timeout=5, retries=1)
    finally:
        os_helper.ec2.get_instance_metadata = orig


def test_read_metadata_service(os_server):
    base = os_server.base_url()
    m0 = os_server.metrics()
    # Discovery, as DataSourceOpenStack does it: GET <base>/openstack must be a
    # non-empty 200.
    r = url_helper.readurl(base + "/openstack", timeout=5)
    assert r.code == 200 and r.contents.decode().endswith("\nlatest")

    res = read_service(base)
    md = res["metadata"]
    assert md["instance-id"] == "6f4c1c1e-3c5e-4a7b-9a55-0d8f1b2c3d4e"
    assert md["uuid"] == md["instance-id"]
    assert md["local-hostname"] == "web-1"
    assert md["availability_zone"] == "nova"
    assert md["public_keys"] == {"mykey": record()["ssh_keys"][0]["key"]}
    assert md["meta"] == {"dsmode": "net", "role": "web"}
    assert len(md["random_seed"]) == 512  # decoded by cloud-init
    assert md["project_id"] == "f3a9c0d2b1e84d6c9a7b5e4d3c2b1a09"
    # 2018-08-27 was chosen: devices with vf_trusted, no dedicated_cpus.
    assert "dedicated_cpus" not in md
    assert md["devices"][0] == {"vlan": 100, "vf_trusted": False, "type": "nic",
                                "mac": "fa:16:3e:00:00:01", "bus": "pci",
                                "address": "0000:00:03.0", "tags": ["uplink"]}
    assert res["userdata"] == b"#cloud-config\nhostname: web-1\n"
    assert res["vendordata"] == {"cloud-init": "#cloud-config\npackages: [htop]\n",
                                 "site": "lab"}
    assert res["vendordata2"] == {"static": res["vendordata"]}
    assert res["networkdata"]["links"][3]["type"] == "bond"
    ec2_md = res["ec2-metadata"]
    assert ec2_md["instance-id"] == md["uuid"]
    assert ec2_md["public-keys"]["mykey"]

    m1 = os_server.metrics()
    assert metric_sum(m1, "openstack_requests_total") - metric_sum(
        m0, "openstack_requests_total") >= 7
    # Nothing cloud-init asked for was missing (the EC2 crawl retries 404s).
    assert metric_sum(m1, "openstack_refused_total") == metric_sum(m0, "openstack_refused_total")
    assert metric_sum(m1, "imds_not_found_total") == metric_sum(m0, "imds_not_found_total")
    no_escapes()


def test_convert_net_json_bond_vlan_static_dhcp(os_server):
    nd = read_service(os_server.base_url())["networkdata"]
    cfg = os_helper.convert_net_json(nd, known_macs=KNOWN_MACS)
    assert cfg["version"] == 1
    by_name = {c.get("name"): c for c in cfg["config"]}
    eth0 = by_name["eth0"]
    assert eth0["type"] == "physical" and eth0["mac_address"] == "fa:16:3e:00:00:01"
    assert eth0["mtu"] == 1500
    assert [s["type"] for s in eth0["subnets"]] == ["dhcp4", "ipv6_slaac"]
    assert by_name["eth1"]["subnets"] == [] and by_name["eth2"]["subnets"] == []

    # cloud-init ≥ 23 also copies network-level dns services into
    # dns_nameservers; Debian 12's 22.4 does not. Accept both, exactly.
    def subnets(cfg: dict, dns: list[list[str]]) -> list[dict]:
        out = []
        for sub, want in zip(cfg["subnets"], dns):
            sub = dict(sub)
            got = sub.pop("dns_nameservers", None)
            assert got in (None, want), (got, want)
            out.append(sub)
        return out

    bond = by_name["bond0"]
    assert bond["type"] == "bond"
    assert bond["bond_interfaces"] == ["eth1", "eth2"]
    assert bond["params"] == {"bond_mode": "802.3ad"}
    assert bond["mac_address"] == "fa:16:3e:00:00:02"
    assert bond["mtu"] == 9000
    assert subnets(bond, [["10.1.0.2"]]) == [{
        "type": "static", "address": "10.1.0.5", "netmask": "255.255.255.0",
        "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.1.0.1"},
                   {"network": "192.168.0.0", "netmask": "255.255.0.0",
                    "gateway": "10.1.0.254"}],
        "ipv4": True}]

    vlan = by_name["bond0.100"]
    assert vlan["type"] == "vlan"
    assert vlan["vlan_id"] == 100 and vlan["vlan_link"] == "bond0"
    assert vlan["mac_address"] == "fa:16:3e:00:00:02"
    assert vlan["accept-ra"] is False  # static IPv6 on it
    assert subnets(vlan, [["10.1.0.2", "9.9.9.9"], []]) == [
        {"type": "static", "address": "172.16.100.5", "netmask": "255.255.255.0",
         "routes": [], "ipv4": True},
        {"type": "static6", "address": "2001:db8:100::5", "netmask": "ffff:ffff:ffff:ffff::",
         "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8:100::1"}],
         "ipv6": True}]

    nameservers = [c for c in cfg["config"] if c["type"] == "nameserver"]
    assert nameservers == [{"type": "nameserver", "address": a}
                           for a in ("10.1.0.2", "9.9.9.9", "1.1.1.1")]
    no_escapes()


def test_bad_input(os_server):
    base = os_server.base_url()
    for path in ("/openstack/2011-01-01/meta_data.json", "/openstack/latest/nope",
                 "/openstack/content/0000", "/openstack/2012-08-10/password"):
        assert os_server.get(path).status == 404, path

    # Password: too large, then set once, then a second POST conflicts.
    pw = base + "/openstack/latest/password"
    big = url_helper.readurl(pw, data=b"x" * 1021, request_method="POST", timeout=5,
                             exception_cb=lambda *a: False, check_status=False)
    assert big.code == 400
    assert url_helper.readurl(pw, data=b"enc-1", request_method="POST", timeout=5).code == 200
    again = url_helper.readurl(pw, data=b"enc-2", request_method="POST", timeout=5,
                               check_status=False)
    assert again.code == 409
    assert url_helper.readurl(pw, timeout=5).contents == b"enc-1"

    # A network model that is inconsistent is refused with the offending field.
    bad = record()
    bad["id"] = "bad-vlan"
    bad["nics"] = [{"mac": "fa:16:3e:00:00:09", "private_ipv4s": ["127.0.0.9"]}]
    bad["network_config"] = {"links": [
        {"name": "eth0", "type": "physical", "mac": "fa:16:3e:00:00:09"},
        {"name": "eth0.7", "type": "vlan", "vlan_id": 7, "vlan_link": "bond9"}]}
    rep = os_server.put_instance(bad, expect=(400,))
    assert "/network_config/links/1/vlan_link" in rep.text, rep
    no_escapes()


def test_racing_password_posts(make_server):
    s = make_server(name="race")
    rec = record()
    s.put_instance(rec)
    url = s.base_url() + "/openstack/latest/password"
    codes: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def post(i: int) -> None:
        barrier.wait()
        r = url_helper.readurl(url, data=f"pw-{i}".encode(), request_method="POST", timeout=10,
                               check_status=False)
        with lock:
            codes.append(r.code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [409] * 7, codes
    assert url_helper.readurl(url, timeout=5).contents.startswith(b"pw-")
    no_escapes()


def test_nova_conformance(binary):
    """tools/nova_conformance.py: our meta_data.json / network_data.json /
    listings against Nova's own InstanceMetadata (python3-nova as a library)."""
    import importlib.util
    import subprocess
    import sys
    if importlib.util.find_spec("nova") is None:
        pytest.skip("python3-nova not installed (apt-get install --no-install-recommends python3-nova)")
    tool = Path(__file__).resolve().parents[2] / "tools" / "nova_conformance.py"
    r = subprocess.run([sys.executable, str(tool), "--binary", str(binary)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 OpenStack difference(s)" in r.stdout, r.stdout
