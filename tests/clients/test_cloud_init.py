"""cloud-init (Debian's package, used as a library) against the real server.

All cloud-init state lives under a temporary directory; only the EC2 helpers
and DataSourceEc2 are used (never the *Local datasources, which run DHCP).
Every URL points at 127.0.0.1, and loopback_guard (conftest.py) makes any
attempt to reach another address fail.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile

import pytest

from cloudinit import distros, helpers, url_helper, util
from cloudinit.sources import DataSourceEc2
from cloudinit.sources.helpers import ec2

import loopback_guard
from openimds_harness import TOKEN_HEADER, TOKEN_TTL_HEADER, instance, metric_sum

# cloud-init's is_resolvable() first looks up bogus names to detect DNS
# hijacking; there is nothing to detect for numeric loopback URLs, and those
# lookups would leave the machine.
util._DNS_REDIRECT_IP = set()

IID = "i-0c10d1417cafe0001"
MAC = "02:00:00:00:0a:01"


def record(http_tokens: str = "optional") -> dict:
    rec = instance(IID, "127.0.0.1", mac=MAC)
    rec["metadata_options"]["http_tokens"] = http_tokens
    rec["user_data"] = "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogY2xvdWR5CnJ1bmNtZDogWyJlY2hvIGhpIl0K"
    rec["ssh_keys"] = [
        {"name": "alice", "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAliceAliceAliceAliceAliceAliceAliceAliceAl alice@example"},
        {"name": "bob", "key": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQBobBobBobBobBobBobBobBobBobBobBobBobBob bob@example"},
    ]
    second_nic = copy.deepcopy(rec["nics"][0])
    second_nic.update({"mac": "02:00:00:00:0a:02", "device_number": 1,
                       "interface_id": "eni-0000000000000000b", "private_ipv4s": ["127.0.9.2"]})
    rec["nics"].append(second_nic)
    return rec


USER_DATA = b'#cloud-config\nhostname: cloudy\nruncmd: ["echo hi"]\n'


@pytest.fixture
def ci_server(make_server):
    def make(http_tokens: str):
        s = make_server(name=f"ci-{http_tokens}")
        s.put_instance(record(http_tokens))
        return s
    return make


@pytest.fixture
def ci_paths():
    tmp = tempfile.mkdtemp(prefix="oimds-ci-")
    paths = helpers.Paths({"cloud_dir": f"{tmp}/cloud", "run_dir": f"{tmp}/run",
                           "docs_dir": tmp, "templates_dir": tmp})
    yield tmp, paths
    shutil.rmtree(tmp, ignore_errors=True)


def no_escapes():
    assert loopback_guard.refused == [], loopback_guard.refused


def assert_metadata(md: dict) -> None:
    assert md["instance-id"] == IID
    assert md["local-ipv4"] == "127.0.0.1"
    assert md["instance-type"] == "t3.small"
    assert md["placement"]["availability-zone"] == "eu-west-1b"
    assert md["placement"]["region"] == "eu-west-1"
    keys = md["public-keys"]
    assert set(keys) == {"alice", "bob"}, keys
    alice = keys["alice"] if isinstance(keys["alice"], str) else keys["alice"][0]
    assert alice.startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice")
    macs = md["network"]["interfaces"]["macs"]
    assert set(macs) == {MAC, "02:00:00:00:0a:02"}, macs
    assert macs[MAC]["vpc-id"] == "vpc-0123456789abcdef0"
    assert macs[MAC]["device-number"] == "0"
    assert macs["02:00:00:00:0a:02"]["device-number"] == "1"
    assert macs["02:00:00:00:0a:02"]["local-ipv4s"] == "127.0.9.2"
    assert macs[MAC]["subnet-id"] == "subnet-0123456789abcdef0"
    assert md["tags"]["instance"]["Name"] == IID
    # Credentials are not crawled ("security-credentials" is skipped by name).
    assert "security-credentials" not in md["iam"]


def assert_identity(ident: dict) -> None:
    doc = ident["document"]
    assert isinstance(doc, dict), ident  # decoded as JSON by cloud-init
    assert doc["instanceId"] == IID
    assert doc["region"] == "eu-west-1"
    assert doc["availabilityZone"] == "eu-west-1b"
    assert doc["privateIp"] == "127.0.0.1"
    # Signatures (pkcs7, signature, rsa2048) are listed only when the server
    # has a signing key; when listed they must be non-empty.
    for name in ("pkcs7", "signature", "rsa2048"):
        if name in ident:
            assert ident[name], name


def test_ec2_helpers_imdsv1(ci_server):
    s = ci_server("optional")
    base = s.base_url()
    m0 = s.metrics()

    ud = ec2.get_instance_userdata("latest", base, timeout=5, retries=1)
    assert ud == USER_DATA
    md = ec2.get_instance_metadata("latest", base, timeout=5, retries=1)
    assert_metadata(md)
    ident = ec2.get_instance_identity("latest", base, timeout=5, retries=1)
    assert_identity(ident)
    # Another path form cloud-init uses: a dated version.
    md_dated = ec2.get_instance_metadata("2016-09-02", base, timeout=5, retries=1)
    assert md_dated["instance-id"] == IID

    m1 = s.metrics()
    v1 = metric_sum(m1, "imds_requests_total", version="v1") - metric_sum(
        m0, "imds_requests_total", version="v1")
    assert v1 >= 40, v1  # the whole tree was crawled without a token
    # Every name the server listed could be fetched: the crawl met no 404.
    assert metric_sum(m1, "imds_not_found_total") == metric_sum(m0, "imds_not_found_total")
    no_escapes()


def test_ec2_helpers_with_token_against_tokens_required(ci_server):
    s = ci_server("required")
    base = s.base_url()
    tok = url_helper.readurl(base + "/latest/api/token", request_method="PUT",
                             headers={TOKEN_TTL_HEADER: "21600"}, timeout=5).contents.decode()
    assert tok and "\n" not in tok

    def hcb(url):
        return {TOKEN_HEADER: tok}

    ud = ec2.get_instance_userdata("latest", base, timeout=5, retries=1, headers_cb=hcb)
    assert ud == USER_DATA
    assert_metadata(ec2.get_instance_metadata("latest", base, timeout=5, retries=1,
                                              headers_cb=hcb))
    assert_identity(ec2.get_instance_identity("latest", base, timeout=5, retries=1,
                                              headers_cb=hcb))
    m = s.metrics()
    assert metric_sum(m, "imds_requests_total", version="v1") == 0
    assert metric_sum(m, "imds_requests_total", version="v2") >= 40
    no_escapes()


def test_ec2_helpers_without_token_against_tokens_required_get_nothing(ci_server):
    s = ci_server("required")
    base = s.base_url()
    ud = ec2.get_instance_userdata("latest", base, timeout=5, retries=0)
    assert not ud  # "" after the 401
    md = ec2.get_instance_metadata("latest", base, timeout=5, retries=0)
    assert md == {}
    ident = ec2.get_instance_identity("latest", base, timeout=5, retries=0)
    assert ident == {}
    m = s.metrics()
    assert metric_sum(m, "imds_token_rejected_total", reason="missing") >= 3
    assert metric_sum(m, "imds_requests_total", version="v1") == 0
    no_escapes()


def make_datasource(tmp, paths, base):
    distro = distros.fetch("debian")("debian", {}, paths)
    cfg = {"datasource": {"Ec2": {"metadata_urls": [base], "timeout": 5, "max_wait": 20,
                                  "retries": 2}}}
    ds = DataSourceEc2.DataSourceEc2(cfg, distro, paths)
    # Should cloud-init find the configured URL unusable it falls back to its
    # defaults (169.254.169.254, ...): make those loopback too.
    ds.metadata_urls = [base]
    return ds


def test_datasource_ec2_aws_mode_with_tokens_required(ci_server, ci_paths):
    s = ci_server("required")
    tmp, paths = ci_paths
    ds = make_datasource(tmp, paths, s.base_url())
    ds._cloud_name = "aws"  # else identify_platform() reads DMI
    assert ds.get_data() is True
    assert ds.get_instance_id() == IID
    assert ds.userdata_raw == USER_DATA
    keys = ds.get_public_ssh_keys()
    assert any(k.startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice") for k in keys), keys
    assert any(k.startswith("ssh-rsa ") for k in keys), keys
    assert ds._api_token, "DataSourceEc2 did not use an IMDSv2 token"
    assert ds.metadata["instance-id"] == IID
    assert ds.identity["instanceId"] == IID
    assert ds.identity["region"] == "eu-west-1"
    assert ds.availability_zone == "eu-west-1b"
    assert ds.region == "eu-west-1"
    assert ds.get_hostname().hostname.startswith("host-" + IID)
    # Networking, as cloud-init derives it from the crawled tree (given a
    # MAC -> NIC map instead of reading this machine's /sys/class/net).
    netcfg = DataSourceEc2.convert_ec2_metadata_network_config(
        ds.metadata["network"], macs_to_nics={MAC: "ens5", "02:00:00:00:0a:02": "ens6"},
        fallback_nic="ens5", full_network_config=True)
    eth = netcfg["ethernets"]
    assert set(eth) == {"ens5", "ens6"}, netcfg
    assert eth["ens5"]["match"]["macaddress"] == MAC
    assert eth["ens5"]["dhcp4"] is True
    assert eth["ens6"]["match"]["macaddress"] == "02:00:00:00:0a:02"
    # device-number 1 gets a higher route metric than the primary NIC.
    assert eth["ens6"]["dhcp4-overrides"]["route-metric"] > eth["ens5"].get(
        "dhcp4-overrides", {}).get("route-metric", 0), netcfg
    # get_data wrote instance-data.json under our temporary run_dir only.
    with open(f"{tmp}/run/instance-data.json") as f:
        data = json.load(f)
    assert data["v1"]["instance_id"] == IID

    m = s.metrics()
    assert metric_sum(m, "imds_token_issued_total") >= 1
    assert metric_sum(m, "imds_requests_total", version="v1") == 0
    assert metric_sum(m, "imds_requests_total", version="v2") >= 40
    assert metric_sum(m, "imds_token_rejected_total") == 0
    no_escapes()


def test_datasource_ec2_imdsv1_mode_with_tokens_optional(ci_server, ci_paths):
    """On non-AWS DMI cloud-init 22.4 never asks for a token: it needs v1."""
    s = ci_server("optional")
    tmp, paths = ci_paths
    ds = make_datasource(tmp, paths, s.base_url())
    ds._cloud_name = "unknown"
    assert ds.get_data() is True
    assert ds.get_instance_id() == IID
    assert ds.userdata_raw == USER_DATA
    assert ds._api_token is None
    m = s.metrics()
    assert metric_sum(m, "imds_token_issued_total") == 0
    assert metric_sum(m, "imds_requests_total", version="v1") >= 40
    no_escapes()
