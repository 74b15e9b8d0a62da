"""EC2 fidelity and IMDSv2 security, against the real binary.

Signed identity documents checked with the exact openssl commands of AWS's
documentation; platform events set through the admin API with a delay;
credentials pushed, expired and produced by a credential-source command;
the whole tree crawled for content types; bad IMDSv2 input, each with its
status code; the operator's counters; token keys shared by two processes on
one store. Loopback only.
"""

from __future__ import annotations

import calendar
import json
import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from openimds_harness import (TOKEN_HEADER, TOKEN_TTL_HEADER, Server, instance, metric_sum,
                              raw_body, raw_status)

IID = "i-0ec2f1de11700001"
CERT = "identity.crt"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("curl") is None
                                   or shutil.which("base64") is None,
                                   reason="needs openssl, curl and base64 (coreutils)")


def keygen(binary: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), "keygen", "--out", str(out), *extra],
                          capture_output=True, timeout=120)


@pytest.fixture
def keys(binary, workdir) -> Path:
    d = workdir / "keys"
    p = keygen(binary, d)
    assert p.returncode == 0, p.stderr
    return d


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    """Polls until predicate() is truthy (returns it) or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def sh(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", command], cwd=cwd, capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "NO_PROXY": "*"})


# --------------------------------------------------------------------------
# Signed identity documents


@needs_openssl
@pytest.mark.parametrize("imds_version", ["v1", "v2"])
def test_identity_document_verifies_with_the_aws_commands(make_server, keys, workdir,
                                                          imds_version):
    s = make_server(extra_args=["--identity-keys", str(keys)])
    rec = instance(IID)
    rec["metadata_options"]["http_tokens"] = "required" if imds_version == "v2" else "optional"
    s.put_instance(rec)
    base = s.base_url()
    d = workdir / f"verify-{imds_version}"
    d.mkdir()
    shutil.copy(keys / CERT, d / "certificate")
    # The retrieval commands of AWS's verify-*.md pages, with the loopback URL.
    if imds_version == "v2":
        get = (f'TOKEN=`curl -s -X PUT "{base}/latest/api/token" '
               f'-H "X-aws-ec2-metadata-token-ttl-seconds: 21600"` && '
               f'curl -s -H "X-aws-ec2-metadata-token: $TOKEN" {base}/latest/dynamic/instance-identity')
    else:
        get = f"curl -s {base}/latest/dynamic/instance-identity"
    steps = [
        f"{get}/document > document",
        f"{get}/signature | base64 -d >> signature",
        'echo "-----BEGIN PKCS7-----" > pkcs7',
        f"{get}/pkcs7 >> pkcs7",
        'echo "" >> pkcs7',
        'echo "-----END PKCS7-----" >> pkcs7',
        'echo "-----BEGIN PKCS7-----" > rsa2048',
        f"{get}/rsa2048 >> rsa2048",
        'echo "" >> rsa2048',
        'echo "-----END PKCS7-----" >> rsa2048',
        "openssl x509 -pubkey -noout -in certificate >> key",
    ]
    for step in steps:
        p = sh(step, d)
        assert p.returncode == 0, (step, p.stderr)
    doc = json.loads((d / "document").read_bytes())
    assert doc["instanceId"] == IID

    p = sh("openssl dgst -sha256 -verify key -signature signature document", d)
    assert p.returncode == 0 and p.stdout.strip() == b"Verified OK", p
    for form in ("pkcs7", "rsa2048"):
        p = sh(f"openssl smime -verify -in {form} -inform PEM -content document "
               "-certfile certificate -noverify", d)
        assert p.returncode == 0, p.stderr
        assert b"Verification successful" in p.stderr
        # The older form of the procedure, without -content, prints the
        # document carried inside: it is attached, byte for byte.
        p = sh(f"openssl smime -verify -in {form} -inform PEM -certfile certificate -noverify", d)
        assert p.returncode == 0, p.stderr
        assert p.stdout == (d / "document").read_bytes()

    # A certificate that is not the operator's does not verify.
    other = workdir / "other-keys"
    assert keygen(s.binary, other).returncode == 0
    shutil.copy(other / CERT, d / "certificate")
    assert sh("openssl smime -verify -in rsa2048 -inform PEM -content document "
              "-certfile certificate -noverify", d).returncode != 0


@needs_openssl
def test_documents_are_resigned_only_when_they_change(make_server, keys, workdir):
    s = make_server(extra_args=["--identity-keys", str(keys)])
    rec = instance(IID)
    s.put_instance(rec)
    first = s.get("/latest/dynamic/instance-identity/pkcs7").body
    time.sleep(1.1)  # a new signature would carry another signing time
    assert s.get("/latest/dynamic/instance-identity/pkcs7").body == first
    assert s.get("/latest/dynamic/instance-identity/").text == "document\npkcs7\nrsa2048\nsignature"

    rec["instance_type"] = "m5.large"
    s.put_instance(rec)
    doc = s.get("/latest/dynamic/instance-identity/document").body
    assert json.loads(doc)["instanceType"] == "m5.large"
    second = s.get("/latest/dynamic/instance-identity/pkcs7").body
    assert second != first
    d = workdir / "resign"
    d.mkdir()
    (d / "document").write_bytes(doc)
    (d / "p7").write_bytes(b"-----BEGIN PKCS7-----\n" + second + b"\n-----END PKCS7-----\n")
    p = sh(f"openssl smime -verify -in p7 -inform PEM -certfile {keys / CERT} -noverify", d)
    assert p.returncode == 0 and p.stdout == doc, p.stderr


@needs_openssl
def test_keygen_files_and_a_dsa_pkcs7_key(make_server, binary, workdir):
    d = workdir / "dsa-keys"
    p = keygen(binary, d, "--pkcs7-dsa", "--days", "30")
    assert p.returncode == 0, p.stderr
    for name, mode in (("identity.key", 0o600), ("identity.crt", 0o644), ("pkcs7.key", 0o600),
                       ("pkcs7.crt", 0o644)):
        assert stat.S_IMODE((d / name).stat().st_mode) == mode, name
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(d / "pkcs7.crt")],
                          capture_output=True).stdout
    assert b"dsaEncryption" in text
    # Existing files are kept unless --force.
    again = keygen(binary, d)
    assert again.returncode == 2 and b"exists" in again.stderr
    assert keygen(binary, d, "--force").returncode == 0

    s = make_server(extra_args=["--identity-keys", str(d)])
    s.put_instance(instance(IID))
    doc = s.get("/latest/dynamic/instance-identity/document").body
    (workdir / "document").write_bytes(doc)
    for form, cert in (("pkcs7", "pkcs7.crt"), ("rsa2048", "identity.crt")):
        body = s.get(f"/latest/dynamic/instance-identity/{form}").body
        (workdir / form).write_bytes(b"-----BEGIN PKCS7-----\n" + body + b"\n-----END PKCS7-----\n")
        p = sh(f"openssl smime -verify -in {form} -inform PEM -content document "
               f"-certfile {d / cert} -noverify", workdir)
        assert p.returncode == 0, (form, p.stderr)


def test_serve_refuses_unusable_key_files(binary, workdir, keys):
    def serve(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(binary), "serve", "--store", f"sqlite:{workdir}/refuse.db",
                               "--admin", f"unix:{workdir}/refuse.sock", "--listen",
                               "127.0.0.1:0", *extra], capture_output=True, timeout=60)

    (keys / "identity.key").chmod(0o644)
    p = serve("--identity-keys", str(keys))
    assert p.returncode == 2 and b"chmod 600" in p.stderr, p.stderr
    assert b"PRIVATE KEY" not in p.stderr
    (keys / "identity.key").chmod(0o600)
    (keys / "identity.crt").write_text("not a certificate\n")
    p = serve("--identity-keys", str(keys))
    assert p.returncode == 2 and b"not a PEM certificate" in p.stderr, p.stderr
    p = serve("--token-key-period", "10")
    assert p.returncode == 2 and b"--token-key-period" in p.stderr, p.stderr


def test_without_keys_only_the_document_is_listed(server):
    server.put_instance(instance(IID))
    assert server.get("/latest/dynamic/instance-identity/").text == "document"
    assert server.get("/latest/dynamic/instance-identity/signature").status == 404


# --------------------------------------------------------------------------
# The tree over the wire


def crawl(s: Server, version: str, token: str | None = None) -> dict[str, tuple[int, str, bytes]]:
    """Every listed path -> (status, content type, body), as cloud-init walks it."""
    out: dict[str, tuple[int, str, bytes]] = {}
    pending = [f"/{version}/"]
    while pending:
        d = pending.pop()
        r = s.get(d, token=token)
        assert r.status == 200, (d, r)
        out[d] = (r.status, r.header("Content-Type"), r.body)
        for name in r.text.split("\n"):
            assert name, (d, r.text)
            if "=" in name:
                name = name.split("=")[0] + "/"
            if name in ("meta-data", "dynamic"):
                name += "/"
            if name.endswith("/"):
                pending.append(d + name)
                continue
            leaf = s.get(d + name, token=token)
            out[d + name] = (leaf.status, leaf.header("Content-Type"), leaf.body)
    return out


def full_record() -> dict:
    rec = instance(IID)
    rec.update({
        "ancestor_ami_ids": ["ami-0aaaaaaaaaaaaaaa1"],
        "product_codes": ["1abc2defghijklm3nopqrs4tu"],
        "instance_life_cycle": "spot",
        "placement_group": "cluster-a",
        "partition_number": 2,
        "monitoring": "enabled",
        "identity_credentials": {"access_key_id": "ASIAIDENTITYTEST0001",
                                 "secret_access_key": "identity/secret",
                                 "token": "identity-token",
                                 "expiration": "2099-01-01T00:00:00Z",
                                 "last_updated": "2026-11-25T13:00:00Z"},
        "events": {"rebalance": {"notice_time": {"in_seconds": 0}},
                   "scheduled": [{"id": "instance-event-1", "code": "system-reboot",
                                  "not_before": {"in_seconds": 86400},
                                  "description": "scheduled reboot"}],
                   "target_lifecycle_states": [{"state": "InService"}]},
    })
    nic = rec["nics"][0]
    nic["public_ipv4s"] = ["203.0.113.7"]
    nic["ipv4_associations"] = {"203.0.113.7": "127.0.0.1"}
    nic["ipv4_prefixes"] = ["10.9.0.0/28"]
    return rec


def test_whole_tree_content_types_and_no_empty_values(make_server, keys):
    # Crawls the tree of every dated version (thousands of requests in a few
    # seconds, far past any booting guest): per-instance limits off.
    s = make_server(extra_args=["--identity-keys", str(keys), "--instance-rate-limit", "0"])
    rec = full_record()
    s.put_instance(rec)
    mac = rec["nics"][0]["mac"]
    tree = crawl(s, "latest")
    leaves = {p: v for p, v in tree.items() if not p.endswith("/")}
    assert len(leaves) > 50, sorted(tree)
    for path, (status, ctype, body) in leaves.items():
        assert status == 200, path
        want = "application/octet-stream" if path == "/latest/user-data" else "text/plain"
        assert ctype == want, path
        assert body, f"{path} served an empty value"
    for must in ("/latest/meta-data/events/maintenance/scheduled",
                 "/latest/meta-data/events/recommendations/rebalance",
                 "/latest/meta-data/autoscaling/target-lifecycle-state",
                 "/latest/meta-data/identity-credentials/ec2/info",
                 "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
                 "/latest/meta-data/placement/partition-number",
                 f"/latest/meta-data/network/interfaces/macs/{mac}/ipv4-associations/203.0.113.7",
                 f"/latest/meta-data/network/interfaces/macs/{mac}/ipv4-prefix",
                 "/latest/meta-data/instance-life-cycle",
                 "/latest/meta-data/product-codes",
                 "/latest/dynamic/fws/instance-monitoring",
                 "/latest/dynamic/instance-identity/rsa2048"):
        assert must in leaves, must
    assert leaves[f"/latest/meta-data/network/interfaces/macs/{mac}/ipv4-associations/"
                  "203.0.113.7"][2] == b"127.0.0.1"
    assert leaves["/latest/meta-data/autoscaling/target-lifecycle-state"][2] == b"InService"
    assert leaves["/latest/dynamic/fws/instance-monitoring"][2] == b"enabled"
    sched = json.loads(leaves["/latest/meta-data/events/maintenance/scheduled"][2])
    assert sched[0]["EventId"] == "instance-event-1" and sched[0]["State"] == "active"
    # Every dated version lists only what it serves, and nothing listed is 404.
    for version in s.get("/").text.split("\n"):
        for path, (status, _, _) in crawl(s, version).items():
            assert status == 200, (version, path)


def test_wire_details(make_server):
    s = make_server()
    s.put_instance(full_record())
    r = s.get("/latest/meta-data/events")
    assert r.status == 301
    assert r.header("Location") == s.base_url() + "/latest/meta-data/events/"
    assert r.header("Server") == "EC2ws"
    resp = s.raw(b"GET /latest/dynamic/fws HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n")
    assert raw_status(resp) == 301
    assert b"\r\nLocation: http://169.254.169.254/latest/dynamic/fws/\r\n" in resp
    assert s.get("/latest").status == 200 and s.get("/").status == 200
    plain = s.get("/latest/meta-data/identity-credentials/ec2/info")
    for accept in ("application/json", "text/html", "*/*"):
        r = s.get("/latest/meta-data/identity-credentials/ec2/info", headers={"Accept": accept})
        assert (r.status, r.body, r.header("Content-Type")) == (200, plain.body, "text/plain")
    head = s.guest("HEAD", "/latest/meta-data/events/maintenance/scheduled")
    assert head.status == 200 and head.body == b""
    assert int(head.header("Content-Length")) == len(
        s.get("/latest/meta-data/events/maintenance/scheduled").body)
    # EC2's JSON style: two-space indent and " : ".
    assert plain.text.startswith('{\n  "Code" : "Success",\n')
    assert s.get("/2009-04-05/meta-data/").status == 404  # unknown version


# --------------------------------------------------------------------------
# Platform events through the admin API


def test_events_set_with_a_delay_appear_when_due(server):
    rec = instance(IID)
    rec["events"] = {
        "spot": {"action": "terminate", "time": {"in_seconds": 123}},   # notice in 3 s
        "scheduled": [{"id": "instance-event-9", "code": "instance-retirement",
                       "not_before": {"in_seconds": 600}, "notice_time": {"in_seconds": 2}}],
        "target_lifecycle_states": [{"state": "Warmed:Running"},
                                    {"state": "InService", "at": {"in_seconds": 2}}],
    }
    before = time.time()
    server.put_instance(rec)
    # Stored as absolute times: the admin API returns them.
    stored = server.admin("GET", f"/v1/instances/{IID}").json()
    spot_time = stored["events"]["spot"]["time"]
    assert "in_seconds" not in json.dumps(stored)
    t = calendar.timegm(time.strptime(spot_time, "%Y-%m-%dT%H:%M:%SZ"))
    assert before + 121 <= t <= time.time() + 124

    assert server.get("/latest/meta-data/spot/instance-action").status == 404
    assert server.get("/latest/meta-data/events/maintenance/scheduled").text == "[ ]"
    assert server.get("/latest/meta-data/autoscaling/target-lifecycle-state").text == \
        "Warmed:Running"
    r = wait_for(lambda: (x := server.get("/latest/meta-data/spot/instance-action")).status == 200
                 and x)
    assert json.loads(r.body) == {"action": "terminate", "time": spot_time}
    assert server.get("/latest/meta-data/spot/termination-time").text == spot_time
    assert server.get("/latest/meta-data/events/maintenance/scheduled").json()[0]["Code"] == \
        "instance-retirement"
    assert server.get("/latest/meta-data/autoscaling/target-lifecycle-state").text == "InService"


def test_scheduled_event_moves_to_history_and_rebalance_by_patch(server):
    rec = instance(IID)
    rec["events"] = {"scheduled": [{"id": "instance-event-1", "code": "system-reboot",
                                    "description": "scheduled reboot",
                                    "not_before": {"in_seconds": 0},
                                    "not_after": {"in_seconds": 2}}]}
    server.put_instance(rec)
    assert server.get("/latest/meta-data/events/maintenance/scheduled").json()[0]["State"] == \
        "active"
    hist = wait_for(lambda: server.get("/latest/meta-data/events/maintenance/history").json())
    assert hist[0]["State"] == "completed"
    assert hist[0]["Description"] == "[Completed] scheduled reboot"
    assert server.get("/latest/meta-data/events/maintenance/scheduled").text == "[ ]"

    assert server.get("/latest/meta-data/events/recommendations/rebalance").status == 404
    r = server.admin("PATCH", f"/v1/instances/{IID}",
                     {"events": {"rebalance": {"notice_time": {"in_seconds": 0}}}},
                     headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, r
    body = server.get("/latest/meta-data/events/recommendations/rebalance").json()
    assert set(body) == {"noticeTime"}
    # The earlier event is still there: a merge patch of "events" merges.
    assert server.get("/latest/meta-data/events/maintenance/history").json()[0]["EventId"] == \
        "instance-event-1"


def test_bad_events_are_400_with_a_pointer(server):
    rec = instance(IID)
    rec["events"] = {"spot": {"action": "explode", "time": {"in_seconds": 5}}}
    r = server.admin("PUT", f"/v1/instances/{IID}", rec)
    assert r.status == 400
    assert r.error()["message"].startswith("/events/spot/action: must be one of")


# --------------------------------------------------------------------------
# Credentials


CREDS = "/latest/meta-data/iam/security-credentials/test-role"


def test_expired_pushed_credentials_are_not_served(server):
    rec = instance(IID)
    rec["iam"]["credentials"]["expiration"] = "2020-01-01T00:00:00Z"
    server.put_instance(rec)
    assert server.get("/latest/meta-data/iam/security-credentials/").text == "test-role"
    r = server.get(CREDS)
    assert r.status == 404 and r.header("Content-Type") == "text/html"
    m = server.metrics()
    assert metric_sum(m, "imds_credential_reads_total", result="unavailable") == 1
    # Pushing fresh ones through the admin API serves them at once.
    rec["iam"]["credentials"]["expiration"] = "2099-01-01T00:00:00Z"
    server.put_instance(rec)
    got = server.get(CREDS).json()
    assert set(got) == {"Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token",
                        "Expiration"}
    assert got["Expiration"] == "2099-01-01T00:00:00Z" and got["Type"] == "AWS-HMAC"
    m = server.metrics()
    assert metric_sum(m, "imds_credential_reads_total", result="served", delivery="v1") == 1


SOURCE = r"""#!/bin/sh
# A credential_process helper: prints credentials for "$1" (instance) / "$2" (role).
echo "$1 $2 $OPENIMDS_ACCOUNT_ID" >> "$(dirname "$0")/calls.log"
case "$2" in
  fail-role) echo "no such role: $2" >&2; exit 3 ;;
  soon-role) exp=$(date -u -d '+60 seconds' +%Y-%m-%dT%H:%M:%SZ) ;;
  *) exp=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ) ;;
esac
n=$(wc -l < "$(dirname "$0")/calls.log")
printf '{"Version": 1, "AccessKeyId": "ASIASOURCE%010d", "SecretAccessKey": "src/secret", "SessionToken": "src-token-%s", "Expiration": "%s"}\n' "$n" "$1" "$exp"
"""


@pytest.fixture
def source_script(workdir) -> Path:
    d = workdir / "source"
    d.mkdir()
    path = d / "creds.sh"
    path.write_text(SOURCE)
    path.chmod(0o755)
    return path


def test_credential_source_command(make_server, source_script):
    s = make_server(extra_args=["--credential-source-command", str(source_script)])
    rec = instance(IID)
    del rec["iam"]["credentials"]
    s.put_instance(rec)
    body = wait_for(lambda: (r := s.get(CREDS)).status == 200 and r.json())
    assert body["AccessKeyId"].startswith("ASIASOURCE")
    assert body["Token"] == f"src-token-{IID}"
    assert body["Code"] == "Success"
    calls = (source_script.parent / "calls.log").read_text().split("\n")
    assert f"{IID} test-role 123456789012" in calls
    # Cached: valid for an hour, so no second run on the next reads.
    runs = metric_sum(s.metrics(), "credential_source_runs_total", result="ok")
    for _ in range(3):
        assert s.get(CREDS).json()["AccessKeyId"] == body["AccessKeyId"]
    time.sleep(2.5)  # a scan or two later
    assert metric_sum(s.metrics(), "credential_source_runs_total", result="ok") == runs

    # A failing command: 404 for the role, counted, logged with its stderr.
    failing = instance("i-0ec2f1de11700002", "127.0.0.2", mac="02:00:00:00:00:aa")
    failing["iam"] = {"role": "fail-role"}
    s.put_instance(failing)
    wait_for(lambda: metric_sum(s.metrics(), "credential_source_runs_total", result="failed"))
    r = s.get("/latest/meta-data/iam/security-credentials/fail-role", source="127.0.0.2")
    assert r.status == 404
    assert "no such role: fail-role" in s.log()
    # Credentials that would need refreshing at once are refused, not served.
    soon = instance("i-0ec2f1de11700003", "127.0.0.3", mac="02:00:00:00:00:ab")
    soon["iam"] = {"role": "soon-role"}
    s.put_instance(soon)
    wait_for(lambda: metric_sum(s.metrics(), "credential_source_runs_total", result="invalid"))
    assert s.get("/latest/meta-data/iam/security-credentials/soon-role",
                 source="127.0.0.3").status == 404
    assert "src/secret" not in s.log()  # stdout (the secret) is never logged


# --------------------------------------------------------------------------
# IMDSv2: bad input, each with its status code


@pytest.fixture
def v2(server) -> Server:
    rec = instance(IID)
    rec["metadata_options"]["http_tokens"] = "required"
    server.put_instance(rec)
    other = instance("i-0ec2f1de11700009", "127.0.0.9", mac="02:00:00:00:00:99")
    server.put_instance(other)
    return server


@pytest.mark.parametrize("ttl,status", [
    (None, 400), ("0", 400), ("-1", 400), ("21601", 400), ("abc", 400), ("1.5", 400),
    ("9" * 4000, 400), ("", 400), ("0x10", 400), ("1", 200), ("21600", 200),
    # Whitespace around a header value is not part of it (RFC 9110 5.5).
    (" 60 ", 200)])
def test_token_ttl(v2, ttl, status):
    h = {} if ttl is None else {TOKEN_TTL_HEADER: ttl}
    r = v2.guest("PUT", "/latest/api/token", h, body=b"")
    assert r.status == status, r
    if status == 200:
        assert r.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == ttl.strip()
        assert len(r.body) == 55 and b"\n" not in r.body


def test_bad_tokens(v2):
    good = v2.token(ttl=2)
    other = v2.token(source="127.0.0.9")
    flipped = good[:20] + ("A" if good[20] != "A" else "B") + good[21:]
    cases = {
        "valid": (good, 200),
        "truncated": (good[:-1], 401),
        "truncated to 8": (good[:8], 401),
        "altered by one byte": (flipped, 401),
        "another instance's": (other, 401),
        "with a space": (" " + good[1:] + "x", 401),
        "huge": ("A" * 6000, 401),
        "none": (None, 401),
    }
    for name, (token, status) in cases.items():
        r = v2.get("/latest/meta-data/instance-id", token=token)
        assert r.status == status, (name, r)
    time.sleep(2.1)
    assert v2.get("/latest/meta-data/instance-id", token=good).status == 401  # expired
    m = v2.metrics()
    assert metric_sum(m, "imds_token_rejected_total", reason="malformed") >= 4
    assert metric_sum(m, "imds_token_rejected_total", reason="bad_seal") >= 2
    assert metric_sum(m, "imds_token_rejected_total", reason="expired") == 1
    assert metric_sum(m, "imds_token_rejected_total", reason="missing") == 1


def test_header_injection_and_oversize_bodies(v2):
    token = v2.token()
    host, port = v2.guest_address()
    # A client that pastes an attacker's string into a header: whatever
    # follows CRLF is a header of its own, and is judged as one.
    def get(token_value: bytes) -> bytes:
        return v2.raw(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n"
                      b"X-aws-ec2-metadata-token: " + token_value + b"\r\n\r\n")

    # A second token header smuggled in: two tokens are refused, not chosen from.
    resp = get(token.encode() + b"\r\nX-aws-ec2-metadata-token: " + token.encode())
    assert raw_status(resp) == 401
    # X-Forwarded-For smuggled into the TTL of a token PUT: refused as a relay.
    resp = v2.raw(b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n"
                  b"X-aws-ec2-metadata-token-ttl-seconds: 60\r\nX-Forwarded-For: 1.2.3.4"
                  b"\r\nContent-Length: 0\r\n\r\n")
    assert raw_status(resp) == 403
    # Bare CR and NUL inside a value are not HTTP: refused before any flavour
    # sees them (or, if a parser let one through, as a malformed token).
    for junk in (token.encode() + b"\rX-Evil: 1", token.encode() + b"\x00",
                 token[:20].encode() + b"\n" + token[20:].encode()):
        resp = get(junk)
        assert raw_status(resp) in (400, 401), (junk, resp[:200])
        assert token.encode() not in raw_body(resp)
    # A token split over two lines (obsolete line folding).
    resp = v2.raw(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n"
                  b"X-aws-ec2-metadata-token: " + token[:20].encode() + b"\r\n " +
                  token[20:].encode() + b"\r\n\r\n")
    assert raw_status(resp) in (400, 401)
    # Oversize PUT bodies: refused before the token logic (4 KiB limit).
    big = b"x" * 5000
    resp = v2.raw(b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n"
                  b"X-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 5000\r\n\r\n" + big)
    assert raw_status(resp) == 413
    resp = v2.raw(b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n"
                  b"X-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 100\r\n\r\n" +
                  b"y" * 100)
    assert raw_status(resp) == 200  # a small body is ignored, as EC2 does


def test_token_endpoint_rules(v2):
    assert v2.guest("PUT", "/2021-03-23/api/token", {TOKEN_TTL_HEADER: "60"}).status == 403
    for method in ("GET", "POST", "HEAD"):
        r = v2.guest(method, "/latest/api/token", {TOKEN_TTL_HEADER: "60"})
        assert r.status == 405 and r.header("Allow") == "OPTIONS, PUT", (method, r)
    r = v2.guest("PUT", "/latest/api/token", {TOKEN_TTL_HEADER: "60",
                                              "X-Forwarded-For": "198.51.100.1"})
    assert r.status == 403
    assert metric_sum(v2.metrics(), "imds_token_put_rejected_total", reason="forwarded") == 1


def test_tokens_work_across_processes_on_one_store_and_restarts(make_server, workdir):
    a = make_server("a")
    rec = instance(IID)
    rec["metadata_options"]["http_tokens"] = "required"
    a.put_instance(rec)
    b = Server(binary=a.binary, workdir=workdir / "b")
    b.extra_args = []
    # The same store file: b reads the same token keys (and instances).
    b.workdir.mkdir()
    (b.workdir / "store").symlink_to(a.workdir / "store")
    b.start()
    try:
        from_a = a.token()
        from_b = b.token()
        assert b.get("/latest/meta-data/instance-id", token=from_a).text == IID
        assert a.get("/latest/meta-data/instance-id", token=from_b).text == IID
        epoch = metric_sum(a.metrics(), "imds_token_key_epoch")
        assert epoch > 0 and epoch == metric_sum(b.metrics(), "imds_token_key_epoch")
    finally:
        b.stop()
    a.restart()
    assert a.get("/latest/meta-data/instance-id", token=from_b).text == IID


def test_a_token_from_another_deployment_is_refused(make_server):
    a = make_server("a")
    b = make_server("b")  # its own store: its own keys
    rec = instance(IID)
    rec["metadata_options"]["http_tokens"] = "required"
    a.put_instance(rec)
    b.put_instance(rec)
    assert b.get("/latest/meta-data/instance-id", token=a.token()).status == 401
    assert metric_sum(b.metrics(), "imds_token_rejected_total", reason="bad_seal") == 1


# --------------------------------------------------------------------------
# Counters


def test_operator_counters(server):
    server.put_instance(instance(IID))
    server.put_instance(instance("i-0ec2f1de11700009", "127.0.0.9", mac="02:00:00:00:00:99"))
    for _ in range(3):
        server.get("/latest/meta-data/instance-id")
    server.get("/latest/meta-data/instance-id", source="127.0.0.9")
    token = server.token()
    server.get("/latest/meta-data/instance-id", token=token)
    server.get(CREDS, token=token)
    server.get(CREDS)
    server.get("/latest/meta-data/instance-id", token="garbage")
    server.guest("PUT", "/latest/api/token", {TOKEN_TTL_HEADER: "60", "X-Forwarded-For": "1.1.1.1"})
    m = server.metrics()
    assert metric_sum(m, "imds_v1_requests_total", instance=IID) == 4  # 3 + the v1 credential read
    assert metric_sum(m, "imds_v1_requests_total", instance="i-0ec2f1de11700009") == 1
    assert metric_sum(m, "imds_credential_reads_total", delivery="v2", result="served") == 1
    assert metric_sum(m, "imds_credential_reads_total", delivery="v1", result="served") == 1
    assert metric_sum(m, "imds_token_rejected_total", reason="malformed") == 1
    assert metric_sum(m, "imds_token_put_rejected_total", reason="forwarded") == 1
    text = server.admin("GET", "/metrics").text
    assert "# HELP imds_v1_requests_total" in text
    assert "session-token-" not in text  # never a secret on the metrics page
