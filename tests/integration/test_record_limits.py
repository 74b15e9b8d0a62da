"""Record limits on the real binary: PUT, PATCH and import refuse a record over
a limit with 413 and a JSON error naming the field's JSON pointer, count the
refusal, and leave the stored record as it was; --max-user-data-bytes (flag or
config key) moves the user-data limit; a record stored over a limit still
loads, and a write to it must bring it within the limits."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from openimds_harness import Reply, Server, b64, instance, metric_sum, wait_for

IID = "i-0000000000000limit"


def tags(n: int) -> dict[str, str]:
    return {f"tag-{i}": "v" for i in range(n)}


def ssh_keys(n: int) -> list[dict[str, str]]:
    return [{"name": f"key-{i}", "key": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{i:08d} key-{i}"}
            for i in range(n)]


def assert_refused(r: Reply, message: str) -> None:
    assert r.status == 413, r
    err = r.error()
    assert err["code"] == "payload_too_large", r
    assert err["message"].startswith(message), r


def stored(s: Server, iid: str = IID) -> Reply:
    r = s.admin("GET", f"/v1/instances/{iid}")
    assert r.status == 200, r
    return r


def refusals(s: Server, limit: str) -> float:
    return metric_sum(s.metrics(), "admin_record_limit_refusals_total", limit=limit)


# (what, the field set to a value over its limit, the message's start, the limit's name)
OVER_LIMIT = [
    ("name", {"name": "n" * 5000}, "/name: 5000 bytes; the limit is 4096", "text_bytes"),
    # The body's size: refused before it is parsed.
    ("huge name", {"name": "n" * (2 * 1024 * 1024)}, "/: ", "record_bytes"),
    ("tags", {"tags": tags(300)}, "/tags: 300 tags; the limit is 256", "tags"),
    ("ssh keys", {"ssh_keys": ssh_keys(101)}, "/ssh_keys: 101 keys; the limit is 100",
     "ssh_keys"),
    ("user-data", {"user_data": b64(b"u" * 16385)},
     "/user_data: 16385 bytes; the limit is 16384", "user_data_bytes"),
]


@pytest.mark.parametrize("what,fields,message,limit", OVER_LIMIT, ids=[c[0] for c in OVER_LIMIT])
def test_put_over_a_limit_is_refused_and_changes_nothing(server, what, fields, message, limit):
    server.put_instance(instance(IID))
    before = stored(server)
    refused_before = refusals(server, limit)

    r = server.admin("PUT", f"/v1/instances/{IID}", instance(IID, **fields))
    assert_refused(r, message)
    if limit == "record_bytes":
        assert "bytes; the limit is 1048576" in r.error()["message"], r

    after = stored(server)
    assert after.header("ETag") == before.header("ETag")
    assert after.json() == before.json()
    assert refusals(server, limit) == refused_before + 1
    assert metric_sum(server.metrics(), "admin_requests_rejected_total",
                      reason="payload_too_large") >= 1
    assert "refused: payload_too_large" in server.log()


def test_put_at_the_limits_is_accepted(server):
    record = instance(IID, name="n" * 4096, hostname="h" * 255, tags=tags(256),
                      ssh_keys=ssh_keys(100), user_data=b64(b"u" * 16384))
    r = server.put_instance(record, expect=(201,))
    assert r.json()["name"] == "n" * 4096
    assert len(r.json()["tags"]) == 256
    got = server.get("/latest/user-data", source="127.0.0.1")
    assert got.status == 200 and got.body == b"u" * 16384


PATCH_OVER_LIMIT = [
    ("name", {"name": "n" * 5000}, "/name: 5000 bytes; the limit is 4096"),
    # The record has two tags: 255 more make 257. The record the patch would
    # leave is what must be within the limits, not the patch.
    ("tags", {"tags": tags(255)}, "/tags: 257 tags; the limit is 256"),
    ("ssh keys", {"ssh_keys": ssh_keys(101)}, "/ssh_keys: 101 keys; the limit is 100"),
    ("user-data", {"user_data": b64(b"u" * 16385)},
     "/user_data: 16385 bytes; the limit is 16384"),
]


@pytest.mark.parametrize("what,patch,message", PATCH_OVER_LIMIT,
                         ids=[c[0] for c in PATCH_OVER_LIMIT])
def test_patch_that_would_exceed_a_limit_is_refused(server, what, patch, message):
    server.put_instance(instance(IID))
    before = stored(server)
    r = server.admin("PATCH", f"/v1/instances/{IID}", patch,
                     headers={"Content-Type": "application/merge-patch+json"})
    assert_refused(r, message)
    after = stored(server)
    assert after.header("ETag") == before.header("ETag")
    assert after.json() == before.json()


def ndjson(*records: dict) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


IMPORT_OVER_LIMIT = [
    ("name", {"name": "n" * 5000}, "line 2: /name: 5000 bytes; the limit is 4096"),
    ("huge line", {"name": "n" * (2 * 1024 * 1024)}, "line 2: /: "),
    ("tags", {"tags": tags(300)}, "line 2: /tags: 300 tags; the limit is 256"),
    ("ssh keys", {"ssh_keys": ssh_keys(101)}, "line 2: /ssh_keys: 101 keys; the limit is 100"),
    ("user-data", {"user_data": b64(b"u" * 16385)},
     "line 2: /user_data: 16385 bytes; the limit is 16384"),
]


@pytest.mark.parametrize("what,fields,message", IMPORT_OVER_LIMIT,
                         ids=[c[0] for c in IMPORT_OVER_LIMIT])
def test_import_with_a_line_over_a_limit_imports_nothing(server, what, fields, message):
    server.put_instance(instance(IID))
    before = stored(server)
    body = ndjson(instance("i-import-1", address="127.0.0.21"),
                  instance(IID, **{"name": "replaced", **fields}))
    r = server.admin("POST", "/v1/instances:import", body,
                     headers={"Content-Type": "application/x-ndjson"})
    assert_refused(r, message)
    after = stored(server)
    assert after.header("ETag") == before.header("ETag")
    assert after.json() == before.json()
    assert server.admin("GET", "/v1/instances/i-import-1").status == 404


def test_configured_user_data_limit(make_server):
    s = make_server(extra_args=["--max-user-data-bytes", "32768"])
    s.put_instance(instance(IID, user_data=b64(b"u" * 20000)), expect=(201,))
    assert stored(s).json()["user_data"] == b64(b"u" * 20000)
    r = s.admin("PUT", f"/v1/instances/{IID}", instance(IID, user_data=b64(b"u" * 40000)))
    assert_refused(r, "/user_data: 40000 bytes; the limit is 32768")
    assert stored(s).json()["user_data"] == b64(b"u" * 20000)


class ConfiguredServer(Server):
    """`openimds --config FILE serve ...`: the file's [serve] keys as flags."""

    config: Optional[Path] = None

    def command(self) -> list[str]:
        cmd = super().command()
        return [cmd[0], "--config", str(self.config)] + cmd[1:]


def test_user_data_limit_from_the_config_file(binary, workdir):
    config = workdir / "openimds.toml"
    config.write_text("[serve]\nmax-user-data-bytes = 20000\n")
    s = ConfiguredServer(binary=binary, workdir=workdir / "s")
    s.config = config
    with s:
        s.put_instance(instance(IID, user_data=b64(b"u" * 20000)), expect=(201,))
        r = s.admin("PUT", f"/v1/instances/{IID}", instance(IID, user_data=b64(b"u" * 20001)))
        assert_refused(r, "/user_data: 20001 bytes; the limit is 20000")


@pytest.mark.parametrize("value", ["0", "65537"])
def test_user_data_limit_out_of_range_fails_at_start(binary, workdir, value):
    proc = subprocess.run(
        [str(binary), "serve", "--store", f"sqlite:{workdir}/s.db", "--admin",
         f"unix:{workdir}/a.sock", "--listen", "127.0.0.1:0", "--max-user-data-bytes", value],
        capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert (b"--max-user-data-bytes: Value " + value.encode() + b" not in range 1 to 65536"
            in proc.stdout + proc.stderr)


def test_record_stored_over_a_limit_loads_and_must_be_brought_within(make_server):
    s = make_server(extra_args=["--max-user-data-bytes", "32768"])
    s.put_instance(instance(IID, user_data=b64(b"u" * 30000)), expect=(201,))
    s.stop()
    # As an older version could have: 300 tags, written behind the API's back.
    db = sqlite3.connect(s.store_path)
    try:
        (text,) = db.execute("SELECT json FROM instances WHERE id = ?", (IID,)).fetchone()
        record = json.loads(text)
        record["tags"] = tags(300)
        db.execute("UPDATE instances SET json = ? WHERE id = ?", (json.dumps(record), IID))
        db.commit()
    finally:
        db.close()

    # Restarted with the default limits: loaded, counted, one log line, served.
    s.extra_args = []
    s.start()
    # Counted once guests are served (the count is a report, not a
    # condition of serving), so it may land just after the ready file.
    wait_for("the over-limits count",
             lambda: "exceed the record limits" in s.log(), s.proc, s.log_path)
    assert metric_sum(s.metrics(), "admin_instances_over_limits_at_start") == 1
    lines = [l for l in s.log().splitlines() if "exceed the record limits" in l]
    assert len(lines) == 1, s.log()
    assert IID in lines[0]
    before = stored(s)
    assert len(before.json()["tags"]) == 300
    got = s.get("/latest/user-data", source="127.0.0.1")
    assert got.status == 200 and got.body == b"u" * 30000

    # A write that leaves it over a limit is refused; one that brings it within works.
    patch_headers = {"Content-Type": "application/merge-patch+json"}
    r = s.admin("PATCH", f"/v1/instances/{IID}", {"name": "renamed"}, headers=patch_headers)
    assert_refused(r, "/user_data: 30000 bytes; the limit is 16384")
    r = s.admin("PATCH", f"/v1/instances/{IID}", {"user_data": b64(b"small")},
                headers=patch_headers)
    assert_refused(r, "/tags: 300 tags; the limit is 256")
    assert stored(s).json() == before.json()
    r = s.admin("PATCH", f"/v1/instances/{IID}",
                {"user_data": b64(b"small"), "tags": {f"tag-{i}": None for i in range(100)}},
                headers=patch_headers)
    assert r.status == 200, r
    assert len(r.json()["tags"]) == 200
    # DELETE needs no limit.
    assert s.admin("DELETE", f"/v1/instances/{IID}").status == 204
