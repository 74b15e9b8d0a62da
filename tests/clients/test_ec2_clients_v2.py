"""Real clients against IMDSv2 (loopback only).

- cloud-init's DataSourceEc2 in AWS mode against `http-tokens required`: the
  whole crawl, the signed identity document (verified with openssl), and its
  token refresh after a 401 in the middle of the crawl.
- botocore's credential chain and region with tokens required, the role
  credentials coming from a credential-source command.
- botocore's fallback to IMDSv1 when the token PUT is refused: behind a
  relay that adds X-Forwarded-For (kube2iam's story), the server answers the
  PUT with 403 and botocore carries on without a token.
- Negative: a client without tokens gets 401 when tokens are required, and
  the same fallback cannot get around `required`.
"""

from __future__ import annotations

import http.client
import http.server
import json
import shutil
import socketserver
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cloudinit import distros, helpers, util
from cloudinit.sources import DataSourceEc2

import loopback_guard
from openimds_harness import clean_env, instance, metric_sum

util._DNS_REDIRECT_IP = set()  # no bogus-name DNS probes (see test_cloud_init.py)

IID = "i-0c11e4750000000a2"
PROBE = Path(__file__).resolve().parent / "botocore_probe.py"


def no_escapes():
    assert loopback_guard.refused == [], loopback_guard.refused


@pytest.fixture
def keys(binary, workdir) -> Path:
    d = workdir / "keys"
    p = subprocess.run([str(binary), "keygen", "--out", str(d)], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return d


@pytest.fixture
def ci_paths():
    tmp = tempfile.mkdtemp(prefix="oimds-ci2-")
    paths = helpers.Paths({"cloud_dir": f"{tmp}/cloud", "run_dir": f"{tmp}/run",
                           "docs_dir": tmp, "templates_dir": tmp})
    yield tmp, paths
    shutil.rmtree(tmp, ignore_errors=True)


def record(http_tokens: str) -> dict:
    rec = instance(IID, "127.0.0.1", region="us-east-1", availability_zone="us-east-1a")
    rec["metadata_options"]["http_tokens"] = http_tokens
    rec["events"] = {"scheduled": [{"id": "instance-event-1", "code": "system-reboot",
                                    "description": "scheduled reboot",
                                    "not_before": {"in_seconds": 86400}}]}
    rec["identity_credentials"] = {"access_key_id": "ASIAIDENTITYCLIENT01",
                                   "secret_access_key": "identity/secret",
                                   "token": "identity-token",
                                   "expiration": "2099-01-01T00:00:00Z"}
    return rec


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_cloud_init_aws_mode_tokens_required_with_a_refresh_after_401(make_server, keys,
                                                                      ci_paths, workdir):
    s = make_server(extra_args=["--identity-keys", str(keys)])
    s.put_instance(record("required"))
    tmp, paths = ci_paths
    distro = distros.fetch("debian")("debian", {}, paths)
    cfg = {"datasource": {"Ec2": {"metadata_urls": [s.base_url()], "timeout": 5,
                                  "max_wait": 20, "retries": 3}}}
    ds = DataSourceEc2.DataSourceEc2(cfg, distro, paths)
    ds.metadata_urls = [s.base_url()]
    ds._cloud_name = "aws"

    # Half-way through the crawl the token goes bad (one byte altered), as if
    # it had expired: the server answers 401 and cloud-init must fetch a new
    # token and carry on.
    real_get_headers = ds._get_headers
    calls = {"n": 0, "tampered": None}

    def get_headers(url=""):
        calls["n"] += 1
        if calls["n"] == 20 and ds._api_token:
            t = ds._api_token  # bytes, as cloud-init keeps it
            calls["tampered"] = t[:10] + (b"A" if t[10:11] != b"A" else b"B") + t[11:]
            ds._api_token = calls["tampered"]
        return real_get_headers(url)

    ds._get_headers = get_headers
    assert ds.get_data() is True
    assert calls["tampered"] is not None, "the crawl was shorter than expected"
    assert ds._api_token and ds._api_token != calls["tampered"]
    assert ds.get_instance_id() == IID
    # cloud-init splits a multi-line leaf into lines; joined, it is EC2's JSON.
    scheduled = ds.metadata["events"]["maintenance"]["scheduled"]
    assert json.loads("\n".join(scheduled))[0]["Code"] == "system-reboot"
    assert ds.metadata["instance-life-cycle"] == "on-demand"
    assert ds.identity["instanceId"] == IID and ds.identity["region"] == "us-east-1"

    m = s.metrics()
    assert metric_sum(m, "imds_token_rejected_total", reason="bad_seal") >= 1
    assert metric_sum(m, "imds_token_issued_total") >= 2  # the refresh PUT
    assert metric_sum(m, "imds_requests_total", version="v1") == 0
    assert metric_sum(m, "imds_requests_total", version="v2") >= 40
    assert metric_sum(m, "imds_not_found_total") == 0  # nothing listed was missing

    # What cloud-init crawled from dynamic/instance-identity verifies with
    # the operator's certificate (AWS's commands).
    ident = ds._crawled_metadata["dynamic"]["instance-identity"]
    assert set(ident) >= {"document", "pkcs7", "signature", "rsa2048"}, set(ident)
    d = workdir / "ci-verify"
    d.mkdir()
    doc = s.get("/latest/dynamic/instance-identity/document", token=ds._api_token).body
    assert json.loads(doc) == ident["document"]
    (d / "document").write_bytes(doc)
    for form in ("pkcs7", "rsa2048"):
        body = ident[form] if isinstance(ident[form], str) else "\n".join(ident[form])
        (d / form).write_text("-----BEGIN PKCS7-----\n" + body + "\n-----END PKCS7-----\n")
        p = subprocess.run(["openssl", "smime", "-verify", "-in", form, "-inform", "PEM",
                            "-content", "document", "-certfile", str(keys / "identity.crt"),
                            "-noverify"], cwd=d, capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
    no_escapes()


# --------------------------------------------------------------------------
# botocore


SOURCE = r"""#!/bin/sh
exp=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
printf '{"Version": 1, "AccessKeyId": "ASIAFROMSOURCE000001", "SecretAccessKey": "source/secret/key", "SessionToken": "token-for-%s-%s", "Expiration": "%s"}\n' "$1" "$2" "$exp"
"""


def run_probe(endpoint: str, home: Path) -> dict:
    env = clean_env(HOME=str(home), AWS_EC2_METADATA_SERVICE_ENDPOINT=endpoint,
                    AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                    AWS_METADATA_SERVICE_TIMEOUT="5", BOTO_CONFIG="/dev/null",
                    PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run(["/usr/bin/python3", str(PROBE), endpoint], env=env, capture_output=True,
                       timeout=120, cwd=str(home))
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    out = json.loads(p.stdout)
    assert out["refused"] == [] and out["leaked_env"] == [], out
    return out


def test_botocore_chain_and_region_with_tokens_required_and_a_credential_source(
        make_server, workdir):
    script = workdir / "creds.sh"
    script.write_text(SOURCE)
    script.chmod(0o755)
    s = make_server(extra_args=["--credential-source-command", str(script)])
    rec = record("required")
    rec["iam"] = {"role": "app-role",
                  "instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/app"}
    s.put_instance(rec)
    creds = "/latest/meta-data/iam/security-credentials/app-role"
    # The first scan runs the command; wait until it has (no token: 401 until then).
    import time
    deadline = time.monotonic() + 15
    while metric_sum(s.metrics(), "credential_source_runs_total", result="ok") < 1:
        assert time.monotonic() < deadline, s.log()
        time.sleep(0.1)

    out = run_probe(s.base_url() + "/", workdir)
    f = out["fetcher"]
    assert f["role_name"] == "app-role"
    assert f["access_key"] == "ASIAFROMSOURCE000001"
    assert f["token"] == f"token-for-{IID}-app-role"
    assert out["chain"]["method"] == "iam-role"
    assert out["chain"]["secret_key"] == "source/secret/key"
    assert out["region"] == "us-east-1"
    m = s.metrics()
    assert metric_sum(m, "imds_requests_total", version="v1") == 0
    assert metric_sum(m, "imds_credential_reads_total", delivery="v2", result="served") >= 2
    assert metric_sum(m, "imds_credential_reads_total", delivery="v1") == 0
    assert s.get(creds).status == 401  # and nothing without a token


class _Relay(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def start_forwarding_relay(upstream: tuple[str, int]) -> tuple[_Relay, str]:
    """A reverse proxy on loopback that adds X-Forwarded-For to everything it
    forwards, as Go's httputil.ReverseProxy (kube2iam) does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["X-Forwarded-For"] = self.client_address[0]
            conn = http.client.HTTPConnection(*upstream, timeout=10)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status, r.reason)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "content-length", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                conn.close()

        do_GET = do_PUT = do_HEAD = do_POST = forward

    relay = _Relay(("127.0.0.1", 0), Handler)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    return relay, f"http://127.0.0.1:{relay.server_address[1]}/"


@pytest.mark.parametrize("http_tokens", ["optional", "required"])
def test_botocore_falls_back_to_imdsv1_when_the_token_put_is_refused(make_server, workdir,
                                                                     http_tokens):
    s = make_server()
    rec = record(http_tokens)
    rec["iam"] = {"role": "app-role", "credentials": {
        "access_key_id": "ASIAPUSHEDCREDS00001", "secret_access_key": "pushed/secret",
        "token": "pushed-token", "expiration": "2099-01-01T00:00:00Z"}}
    s.put_instance(rec)
    relay, endpoint = start_forwarding_relay(s.guest_address())
    try:
        out = run_probe(endpoint, workdir)
    finally:
        relay.shutdown()
        relay.server_close()
    m = s.metrics()
    # Every token PUT came through the relay and was refused as relayed.
    assert metric_sum(m, "imds_token_put_rejected_total", reason="forwarded") >= 1
    assert metric_sum(m, "imds_token_issued_total") == 0
    if http_tokens == "optional":
        # botocore treated the 403 as "no IMDSv2" and used IMDSv1.
        assert out["fetcher"]["access_key"] == "ASIAPUSHEDCREDS00001"
        assert out["chain"]["method"] == "iam-role"
        assert out["region"] == "us-east-1"
        assert metric_sum(m, "imds_v1_requests_total", instance=IID) >= 3
        assert metric_sum(m, "imds_credential_reads_total", delivery="v1", result="served") >= 1
    else:
        # The fallback cannot get around `required`: 401s, no credentials.
        assert out["fetcher"] == {}
        assert out["chain"] is None
        assert out["region"] is None
        assert metric_sum(m, "imds_token_rejected_total", reason="missing") >= 2
        assert metric_sum(m, "imds_requests_total", version="v1") == 0


def test_a_client_without_tokens_gets_401_when_tokens_are_required(make_server):
    s = make_server()
    s.put_instance(record("required"))
    # What `curl http://169.254.169.254/latest/meta-data/...` scripts do.
    for path in ("/latest/meta-data/instance-id", "/latest/user-data",
                 "/latest/meta-data/iam/security-credentials/test-role",
                 "/latest/dynamic/instance-identity/document", "/latest/meta-data/"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(s.base_url() + path, timeout=5)
        assert e.value.code == 401, path
        assert e.value.headers["Server"] == "EC2ws"
    m = s.metrics()
    assert metric_sum(m, "imds_token_rejected_total", reason="missing") == 5
    assert metric_sum(m, "imds_v1_requests_total") == 0
    no_escapes()
