#!/usr/bin/python3
"""Diff OpenIMDS's OpenStack flavour against Nova's own renderer.

Feeds one canonical instance record (docs/instance.md) to
  * the real `openimds serve` (loopback, port 0, temporary store), and
  * Nova's `nova.api.metadata.base.InstanceMetadata` (Debian's python3-nova,
    used as a library: no Nova service, database or network is involved),
then compares, for every OpenStack version Nova knows:
  /openstack, /openstack/<ver>, meta_data.json (random_seed masked),
  network_data.json, and the EC2 tree Nova serves beside them.
OpenStack documents must match byte for byte.

The EC2 tree is compared twice:
  * against a second `openimds serve --ec2-versions nova` (the Nova dialect):
    /, then for every EC2 version Nova knows and `latest`, the version root
    and a crawl of everything Nova lists below it (listings and leaf values,
    as Nova's own test_get_metadata crawls), plus paths Nova does not serve.
    Must match byte for byte.
  * against the default server (the AWS dialect, a different tree: AWS's
    versions and categories): differences are notes, failures only with
    --strict-ec2.
The record is completed with Nova-equivalent EC2 fields where it has none
(image_id, instance_type, reservation_id, local/public hostname = hostname,
ami_manifest_path "FIXME", block_devices), and Nova is fed the same values.

Usage: tools/nova_conformance.py [--instance FILE] [--binary PATH] [-v]
Exit status: 0 when every compared OpenStack document and every Nova-dialect
EC2 path is identical.
Needs: apt-get install -y --no-install-recommends python3-nova
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "pylib"))

SEED = re.compile(r'"random_seed": "[A-Za-z0-9+/=]*"')


def complete_ec2_fields(rec: dict) -> dict:
    """The record with the EC2 fields Nova always has, where it has none.
    Nova derives them from its own objects (ec2_ids, flavor, block device
    mappings, the FIXME manifest path); a record meant to be served like
    Nova carries them itself. Nothing in the OpenStack documents uses them."""
    rec = dict(rec)
    rec.setdefault("image_id", "ami-00000001")
    rec.setdefault("instance_type", "m1.small")
    rec.setdefault("reservation_id", "r-00000001")
    rec.setdefault("local_hostname", rec.get("hostname", ""))
    rec.setdefault("public_hostname", rec.get("hostname", ""))
    rec.setdefault("ami_manifest_path", "FIXME")
    # What nova.block_device.instance_block_mapping gives for root /dev/vda
    # and no other block devices.
    rec.setdefault("block_devices", {"ami": "vda", "root": "/dev/vda"})
    return rec


def nova_instance(rec: dict):
    """A nova.objects.Instance (+ NetworkInfo) equivalent to the record."""
    from nova import objects
    from nova.network import model as nm
    from oslo_utils import uuidutils  # noqa: F401  (nova dependency, import check)

    keypairs = objects.KeyPairList(objects=[
        objects.KeyPair(name=k["name"], public_key=k["key"], type="ssh")
        for k in rec.get("ssh_keys", [])[:1]])  # Nova serves the one key_name keypair
    devices = []
    buses = {"pci": objects.PCIDeviceBus, "usb": objects.USBDeviceBus,
             "scsi": objects.SCSIDeviceBus, "ide": objects.IDEDeviceBus,
             "xen": objects.XenDeviceBus}
    for d in rec.get("devices", []):
        bus = buses[d["bus"]](address=d["address"])
        kw = {"bus": bus}
        if d.get("tags"):
            kw["tags"] = d["tags"]
        if d["type"] == "nic":
            kw["mac"] = d["mac"]
            if "vlan" in d:
                kw["vlan"] = d["vlan"]
            if "vf_trusted" in d:
                kw["vf_trusted"] = d["vf_trusted"]
            devices.append(objects.NetworkInterfaceMetadata(**kw))
        else:
            for f in ("serial", "path"):
                if f in d:
                    kw[f] = d[f]
            devices.append(objects.DiskMetadata(**kw))
    numa = None
    if rec.get("dedicated_cpus"):
        numa = objects.InstanceNUMATopology(cells=[objects.InstanceNUMACell(
            id=0, cpuset=set(), pcpuset=set(rec["dedicated_cpus"]), memory=512)])

    nw_info = nm.NetworkInfo()
    nc = rec.get("network_config", {})
    for link in nc.get("links", []):
        if link["type"] != "physical":
            raise SystemExit("Nova's libvirt path has no bonds or VLANs: use a record "
                             "with physical links only")
        subnets = []
        net_id = None
        for n in [n for n in nc.get("networks", []) if n["link"] == link["name"]]:
            v = n.get("ip_version", 4)
            mode = n.get("mode", "static")
            net_id = n.get("network_id") or net_id
            meta = {}
            if mode == "dhcp":
                meta["dhcp_server"] = "192.0.2.1" if v == 4 else "2001:db8::2"
            elif mode != "static":
                meta["ipv6_address_mode"] = mode
            addr = n.get("address")
            import ipaddress
            cidr = str(ipaddress.ip_interface(addr).network) if addr else (
                "192.0.2.0/24" if v == 4 else "2001:db8:ffff::/64")
            ips = [nm.FixedIP(address=addr.split("/")[0])] if addr else [
                nm.FixedIP(address="192.0.2.10" if v == 4 else "2001:db8:ffff::10")]
            subnets.append(nm.Subnet(
                cidr=cidr, ips=ips,
                gateway=nm.IP(address=n["gateway"], type="gateway") if n.get("gateway") else None,
                dns=[nm.IP(address=a, type="dns") for a in n.get("dns_servers", [])],
                routes=[nm.Route(cidr=r["destination"],
                                 gateway=nm.IP(address=r["gateway"], type="gateway"))
                        for r in n.get("routes", [])],
                **meta))
        net_meta = {"mtu": link["mtu"]} if link.get("mtu") else {}
        network = nm.Network(id=net_id or "net", subnets=subnets, **net_meta)
        nw_info.append(nm.VIF(id=link.get("vif_id", ""), address=link["mac"],
                              devname=link["name"], type=link.get("vif_type") or "unbound",
                              network=network))

    inst = objects.Instance(
        id=1, uuid=rec["id"], display_name=rec.get("name", ""),
        hostname=rec.get("hostname", ""), launch_index=rec.get("launch_index", 0),
        project_id=rec.get("account_id", ""), user_id="u",
        key_name=(rec.get("ssh_keys") or [{}])[0].get("name"), keypairs=keypairs,
        # Nova keeps properties in DB row order; ours are sorted by key. JSON
        # objects are unordered, so feed Nova the sorted order for a byte diff.
        metadata=dict(sorted(rec.get("tags", {}).items())), system_metadata={},
        key_data=(rec.get("ssh_keys") or [{}])[0].get("key"),
        user_data=rec.get("user_data"), availability_zone=rec.get("availability_zone"),
        device_metadata=objects.InstanceDeviceMetadata(devices=devices),
        numa_topology=numa, reservation_id=rec.get("reservation_id", "r-1"), image_ref="",
        kernel_id="", ramdisk_id="", root_device_name="/dev/vda",
        # Nova's EC2 ids are ami-%08x / i-%08x mappings; ours are the
        # record's own, so feed Nova those.
        ec2_ids=objects.EC2Ids(instance_id=rec["id"], ami_id=rec.get("image_id", "ami-00000001"),
                               kernel_id=rec.get("kernel_id") or None,
                               ramdisk_id=rec.get("ramdisk_id") or None),
        flavor=objects.Flavor(name=rec.get("instance_type", "m1.small"), memory_mb=512, vcpus=1,
                              root_gb=1,
                              ephemeral_gb=0, swap=0, flavorid="1", extra_specs={}),
        info_cache=objects.InstanceInfoCache(network_info=nw_info),
        security_groups=objects.SecurityGroupList(objects=[]),
        vm_state="active", task_state=None, deleted=False)
    return inst, nw_info


def nova_metadata(rec: dict):
    from nova import objects
    objects.register_all()
    import nova.conf
    from nova.api.metadata import base
    conf = nova.conf.CONF
    conf([], project="nova", default_config_files=[])
    conf.set_override("dhcp_domain", "", group="api")
    inst, nw_info = nova_instance(rec)
    with mock.patch.object(base, "_format_instance_mapping",
                           return_value=dict(rec.get("block_devices", {}))), \
            mock.patch.object(base.security_group_api, "get_instance_security_groups",
                              return_value=[]):
        md = base.InstanceMetadata(inst, address="127.0.0.1", network_info=nw_info)
    return base, md


def nova_get(base, md, path: str) -> tuple[int, bytes]:
    if os.path.normpath(path) == "/":
        return 200, base.ec2_md_print(base.VERSIONS + ["latest"]).encode()
    try:
        data = md.lookup(path)
    except base.InvalidMetadataPath:
        return 404, b""
    if callable(data):
        return 200, b"<callable>"
    out = base.ec2_md_print(data)
    return 200, out if isinstance(out, bytes) else out.encode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instance", default=str(ROOT / "tests/testdata/openstack/nova_instance.json"))
    ap.add_argument("--binary", default=os.environ.get("OPENIMDS_BINARY"))
    ap.add_argument("--strict-ec2", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.binary:
        os.environ["OPENIMDS_BINARY"] = str(Path(args.binary).resolve())
    from openimds_harness import Server, find_binary

    rec = complete_ec2_fields(json.loads(Path(args.instance).read_text()))
    base, md = nova_metadata(rec)
    failures = 0
    ec2_failures = 0
    ec2_compared = 0
    notes = 0
    with tempfile.TemporaryDirectory(prefix="oimds-nova-") as tmp, \
            Server(binary=find_binary(), workdir=Path(tmp) / "s") as s, \
            Server(binary=find_binary(), workdir=Path(tmp) / "nova",
                   extra_args=["--ec2-versions", "nova"]) as sn:
        s.put_instance(rec)
        sn.put_instance(rec)

        def ours(path: str, server=s) -> tuple[int, bytes]:
            r = server.get(path)
            return r.status, r.body

        def compare(path: str, mask_seed: bool = False, strict: bool = True,
                    server=s) -> None:
            nonlocal failures, notes
            ns, nb = nova_get(base, md, path)
            os_, ob = ours(path, server)
            if mask_seed:
                nb = SEED.sub('"random_seed": "*"', nb.decode()).encode()
                ob = SEED.sub('"random_seed": "*"', ob.decode()).encode()
            # webob's 404 body is added by the WSGI layer, not by lookup().
            same = ns == os_ and (ns == 404 or nb == ob)
            tag = "same" if same else ("DIFF" if strict else "note")
            if not same:
                if strict:
                    failures += 1
                else:
                    notes += 1
            if args.verbose or not same:
                print(f"{tag:4} {path}  nova={ns} ours={os_}")
                if not same and (strict or args.verbose):
                    print(f"     nova: {nb[:600]!r}\n     ours: {ob[:600]!r}")

        # Ours may list versions newer than this Nova (Debian 12 ships Nova 26,
        # which stops at 2020-10-14): compare the common prefix, note the rest.
        ns, nb = nova_get(base, md, "/openstack")
        os_, ob = ours("/openstack")
        nv, ov = nb.decode().split("\n"), ob.decode().split("\n")
        newer = [v for v in ov if v not in nv]
        if ns != os_ or [v for v in ov if v in nv] != nv or newer != [
                v for v in ov[len(nv) - 1:-1]]:
            failures += 1
            print(f"DIFF /openstack  nova={nb!r} ours={ob!r}")
        else:
            print(f"same /openstack (ours also lists {', '.join(newer) or 'nothing more'})")
        for v in base.OPENSTACK_VERSIONS + ["latest"]:
            compare(f"/openstack/{v}")
            compare(f"/openstack/{v}/meta_data.json", mask_seed=True)
            compare(f"/openstack/{v}/network_data.json")
            compare(f"/openstack/{v}/user_data")
        for p in ("/openstack/2011-01-01/meta_data.json", "/openstack/latest/nope",
                  "/openstack/content/0000"):
            compare(p)
        # The AWS dialect: another tree by design (notes).
        compare("/", strict=args.strict_ec2)
        for v in ("1.0", "2009-04-04", "latest"):
            compare(f"/{v}/", strict=args.strict_ec2)
            compare(f"/{v}/meta-data/", strict=args.strict_ec2)

        # The Nova dialect: Nova's tree, byte for byte.
        before = failures

        def ec2(path: str) -> None:
            nonlocal ec2_compared
            ec2_compared += 1
            compare(path, server=sn)

        def crawl(path: str) -> None:
            """`path` (a directory, with '/') and everything Nova lists below it."""
            ec2(path)
            status, listing = nova_get(base, md, path)
            if status != 200:
                return
            for entry in listing.decode().split("\n"):
                if not entry:
                    continue
                if "=" in entry:  # public-keys: "0=name" is directory "0/"
                    crawl(path + entry.split("=", 1)[0] + "/")
                elif entry.endswith("/"):
                    crawl(path + entry)
                else:
                    ec2(path + entry)

        ec2("/")
        for v in base.VERSIONS + ["latest"]:
            ec2(f"/{v}")
            crawl(f"/{v}/")
            ec2(f"/{v}/meta-data")  # no trailing slash: Nova normalises, no 301
        # Not in Nova's tree: 404 from both.
        for p in ("/2011-01-01/", "/2021-07-15/meta-data/instance-id", "/latest/dynamic/",
                  "/latest/meta-data/iam/", "/latest/meta-data/no-such-key",
                  "/1.0/meta-data/instance-type", "/2007-10-10/meta-data/ramdisk-id"):
            ec2(p)
        ec2_failures = failures - before
        print(f"{'same' if ec2_failures == 0 else 'DIFF'} EC2 tree in the Nova dialect "
              f"(--ec2-versions nova): {ec2_compared - ec2_failures}/{ec2_compared} paths "
              f"identical")
    print(f"nova_conformance: {failures - ec2_failures} OpenStack difference(s), "
          f"{ec2_failures} Nova-dialect EC2 difference(s), {notes} AWS-dialect EC2 note(s) "
          f"(Nova {base.OPENSTACK_VERSIONS[-1]} versions)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
