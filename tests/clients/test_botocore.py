"""Debian's botocore (python3-botocore) against the real server.

botocore runs in a subprocess with a clean environment (no AWS_* variables,
no config or credential files, no proxies), so no host credentials can leak
in and whatever it returns came from our server. The endpoint is given the
way users give it: AWS_EC2_METADATA_SERVICE_ENDPOINT.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from openimds_harness import clean_env, instance, metric_sum

PROBE = Path(__file__).resolve().parent / "botocore_probe.py"
IID = "i-0b070c0e000000001"


def record(http_tokens: str) -> dict:
    rec = instance(IID, "127.0.0.1", region="us-east-1", availability_zone="us-east-1a")
    rec["metadata_options"]["http_tokens"] = http_tokens
    rec["iam"] = {
        "role": "app-role",
        "credentials": {
            "access_key_id": "ASIAOPENIMDSTEST0001",
            "secret_access_key": "s3cr3t/Key+for/openimds/tests/0000000001",
            "token": "IQoJb3JpZ2luX2VjEOPENIMDS//////////test-session-token==",
            "expiration": "2099-12-31T23:59:59Z",
            "last_updated": "2026-11-25T13:00:00Z",
        },
    }
    return rec


def run_probe(server, home: Path) -> dict:
    endpoint = server.base_url() + "/"
    env = clean_env(
        HOME=str(home),
        AWS_EC2_METADATA_SERVICE_ENDPOINT=endpoint,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_METADATA_SERVICE_TIMEOUT="5",
        BOTO_CONFIG="/dev/null",
        PYTHONDONTWRITEBYTECODE="1",
    )
    p = subprocess.run(["/usr/bin/python3", str(PROBE), endpoint], env=env,
                       capture_output=True, timeout=120, cwd=str(home))
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return json.loads(p.stdout)


@pytest.mark.parametrize("http_tokens", ["optional", "required"])
def test_botocore_credentials_and_region(make_server, workdir, http_tokens):
    s = make_server()
    rec = record(http_tokens)
    s.put_instance(rec)
    want = rec["iam"]["credentials"]

    out = run_probe(s, workdir)
    assert out["leaked_env"] == []
    assert out["refused"] == [], out["refused"]

    f = out["fetcher"]
    assert f["role_name"] == "app-role"
    assert f["access_key"] == want["access_key_id"]
    assert f["secret_key"] == want["secret_access_key"]
    assert f["token"] == want["token"]
    assert f["expiry_time"] == want["expiration"], f

    chain = out["chain"]
    assert chain is not None, "botocore found no credentials"
    assert chain["method"] == "iam-role"
    assert chain["access_key"] == want["access_key_id"]
    assert chain["secret_key"] == want["secret_access_key"]
    assert chain["token"] == want["token"]

    assert out["region"] == "us-east-1"

    m = s.metrics()
    # botocore always takes the IMDSv2 path: a token per retrieval, no v1 GETs.
    assert metric_sum(m, "imds_token_issued_total") >= 3
    assert metric_sum(m, "imds_requests_total", version="v1") == 0
    assert metric_sum(m, "imds_requests_total", version="v2") >= 5
    assert metric_sum(m, "imds_token_rejected_total") == 0


def test_botocore_without_instance_gets_nothing(make_server, workdir):
    """A caller the server does not know: botocore finds no credentials and no
    region (and, thanks to the clean env and the guard, nothing else)."""
    s = make_server()
    out = run_probe(s, workdir)
    assert out["refused"] == [], out["refused"]
    assert out["fetcher"] == {}
    assert out["chain"] is None
    assert out["region"] is None
    assert metric_sum(s.metrics(), "metadata_rejected_total", reason="unknown_caller") >= 1
