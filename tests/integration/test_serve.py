"""End-to-end tests of `openimds serve`: the real binary on loopback, its admin
API (unix socket), its EC2 guest API, its CLI, restarts on the same store.

Several guests are played from one process by binding the client socket to
different loopback addresses (127.0.0.2, 127.0.0.3, ...).
"""

from __future__ import annotations

import copy
import http.client
import json
import socket
import subprocess
import time

import pytest

from openimds_harness import (TOKEN_HEADER, TOKEN_TTL_HEADER, b64, instance, metric_names,
                              metric_sum, minimal_instance, raw_body, raw_exchange, raw_status,
                              split_endpoint)


def etag_revision(reply) -> int:
    tag = reply.header("ETag")
    assert tag is not None, reply
    assert tag.startswith('"') and tag.endswith('"'), tag
    return int(tag.strip('"'))


def assert_contains(expected, actual, where="") -> None:
    """Every field of `expected` is in `actual` with the same value (the server
    may add defaulted fields such as architecture or network_card_index)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for k, v in expected.items():
            assert k in actual, f"{where}/{k} missing in {actual!r}"
            assert_contains(v, actual[k], f"{where}/{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_contains(e, a, f"{where}/{i}")
    else:
        assert expected == actual, f"{where}: want {expected!r}, got {actual!r}"


def required_tokens(record: dict) -> dict:
    record = copy.deepcopy(record)
    record["metadata_options"]["http_tokens"] = "required"
    return record


# ---------------------------------------------------------------- admin CRUD


def test_put_creates_then_replaces_and_get_returns_it(server):
    rec = instance("i-0000000000000aaa1", "127.0.0.2")
    r = server.admin("PUT", "/v1/instances/i-0000000000000aaa1", rec)
    assert r.status == 201, r
    assert r.header("Location") == "/v1/instances/i-0000000000000aaa1"
    first = etag_revision(r)
    assert_contains(rec, r.json())

    got = server.admin("GET", "/v1/instances/i-0000000000000aaa1")
    assert got.status == 200, got
    assert got.header("Content-Type").startswith("application/json")
    assert etag_revision(got) == first
    assert_contains(rec, got.json())
    assert got.json() == r.json()

    rec["instance_type"] = "m5.large"
    rec["tags"]["Name"] = "renamed"
    r2 = server.admin("PUT", "/v1/instances/i-0000000000000aaa1", rec)
    assert r2.status == 200, r2
    second = etag_revision(r2)
    assert second > first
    got2 = server.admin("GET", "/v1/instances/i-0000000000000aaa1")
    assert etag_revision(got2) == second
    assert got2.json()["instance_type"] == "m5.large"
    assert got2.json()["tags"]["Name"] == "renamed"

    # The id may be left out of the body: the URL names the instance.
    body = dict(rec)
    del body["id"]
    r3 = server.admin("PUT", "/v1/instances/i-0000000000000aaa1", body)
    assert r3.status == 200, r3
    # The same record again changes nothing, so it takes no new revision.
    assert etag_revision(r3) == second
    # A conditional GET of the current revision is answered 304.
    r304 = server.admin("GET", "/v1/instances/i-0000000000000aaa1",
                        headers={"If-None-Match": r3.header("ETag")})
    assert r304.status == 304, r304


def test_get_unknown_instance_is_404_json(server):
    r = server.admin("GET", "/v1/instances/i-nobody")
    assert r.status == 404, r
    assert r.error()["code"] == "not_found"
    assert "i-nobody" in r.error()["message"]


def test_if_match_and_if_none_match(server):
    rec = minimal_instance("i-etag", "127.0.0.2")
    created = server.admin("PUT", "/v1/instances/i-etag", rec, headers={"If-None-Match": "*"})
    assert created.status == 201, created
    rev1 = etag_revision(created)

    # Create-only on an existing instance.
    again = server.admin("PUT", "/v1/instances/i-etag", rec, headers={"If-None-Match": "*"})
    assert again.status == 412, again
    assert again.error()["code"] == "failed_precondition"

    rec["name"] = "second"
    ok = server.admin("PUT", "/v1/instances/i-etag", rec, headers={"If-Match": f'"{rev1}"'})
    assert ok.status == 200, ok
    rev2 = etag_revision(ok)
    assert rev2 > rev1

    # The revision we read first is stale now.
    rec["name"] = "lost update"
    stale = server.admin("PUT", "/v1/instances/i-etag", rec, headers={"If-Match": f'"{rev1}"'})
    assert stale.status == 412, stale
    assert server.admin("GET", "/v1/instances/i-etag").json()["name"] == "second"

    stale_patch = server.admin("PATCH", "/v1/instances/i-etag", {"name": "x"},
                               headers={"If-Match": f'"{rev1}"',
                                        "Content-Type": "application/merge-patch+json"})
    assert stale_patch.status == 412, stale_patch
    stale_delete = server.admin("DELETE", "/v1/instances/i-etag", headers={"If-Match": f'"{rev1}"'})
    assert stale_delete.status == 412, stale_delete
    assert server.admin("GET", "/v1/instances/i-etag").status == 200


@pytest.mark.parametrize("field,value,pointer", [
    ("launch_index", "seven", "/launch_index"),
    ("colour", "blue", "/colour"),  # unknown field
    ("nics", [{"mac": "not-a-mac", "private_ipv4s": ["127.0.0.2"]}], "/nics/0/mac"),
    ("nics", [{"mac": "02:00:00:00:00:02", "private_ipv4s": ["300.1.1.1"]}],
     "/nics/0/private_ipv4s/0"),
    ("nics", [{"mac": "02:00:00:00:00:02", "colour": "red"}], "/nics/0/colour"),
    ("user_data", "***not base64***", "/user_data"),
    ("metadata_options", {"http_tokens": "sometimes"}, "/metadata_options/http_tokens"),
    ("network", None, "/network"),  # null is a type error, not "absent"
])
def test_invalid_records_are_400_with_json_pointer(server, field, value, pointer):
    rec = {"id": "i-bad", field: value}
    r = server.admin("PUT", "/v1/instances/i-bad", rec)
    assert r.status == 400, r
    err = r.error()
    assert err["code"] == "invalid_argument"
    assert err["message"].startswith(pointer), err
    # Nothing was written.
    assert server.admin("GET", "/v1/instances/i-bad").status == 404


def test_unparseable_and_mismatched_bodies_are_400(server):
    r = server.admin("PUT", "/v1/instances/i-x", b'{"id": "i-x", ')
    assert r.status == 400, r
    assert r.error()["message"].startswith("invalid JSON"), r
    r = server.admin("PUT", "/v1/instances/i-x", {"id": "i-other"})
    assert r.status == 400, r
    assert r.error()["message"].startswith("/id"), r
    r = server.admin("PUT", "/v1/instances/i-x", [1, 2])
    assert r.status == 400, r
    assert r.error()["message"].startswith("/"), r


def test_duplicate_address_is_409_naming_the_holder(server):
    server.put_instance(minimal_instance("i-holder", "127.0.0.2"))
    r = server.admin("PUT", "/v1/instances/i-claimer",
                     minimal_instance("i-claimer", "127.0.0.2", mac="02:00:00:00:00:03"))
    assert r.status == 409, r
    assert r.error()["code"] == "conflict"
    assert "i-holder" in r.error()["message"]
    assert "127.0.0.2" in r.error()["message"]
    assert server.admin("GET", "/v1/instances/i-claimer").status == 404
    # The same address in another network is a different caller: allowed.
    r = server.admin("PUT", "/v1/instances/i-claimer",
                     minimal_instance("i-claimer", "127.0.0.2", network="tenant-b"))
    assert r.status == 201, r


def test_patch_merges(server):
    rec = instance("i-patch", "127.0.0.2")
    rev1 = etag_revision(server.put_instance(rec))
    patch = {"instance_type": "c5.xlarge", "tags": {"team": "infra", "Environment": None},
             "name": "patched"}
    r = server.admin("PATCH", "/v1/instances/i-patch", json.dumps(patch),
                     headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, r
    assert etag_revision(r) > rev1
    got = server.admin("GET", "/v1/instances/i-patch").json()
    assert got["instance_type"] == "c5.xlarge"
    assert got["name"] == "patched"
    assert got["tags"] == {"Name": "i-patch", "team": "infra"}
    # Untouched fields stay.
    assert got["nics"][0]["private_ipv4s"] == ["127.0.0.2"]
    assert got["iam"] == rec["iam"]
    assert got["user_data"] == rec["user_data"]

    # A patch that makes the record invalid is refused with the pointer.
    bad = server.admin("PATCH", "/v1/instances/i-patch", json.dumps({"launch_index": -1}),
                       headers={"Content-Type": "application/merge-patch+json"})
    assert bad.status == 400, bad
    assert bad.error()["message"].startswith("/launch_index")
    # JSON Patch (RFC 6902) is not a merge patch.
    other = server.admin("PATCH", "/v1/instances/i-patch", b"[]",
                         headers={"Content-Type": "application/json-patch+json"})
    assert other.status == 400, other
    missing = server.admin("PATCH", "/v1/instances/i-nobody", json.dumps({"name": "x"}),
                           headers={"Content-Type": "application/merge-patch+json"})
    assert missing.status == 404, missing


def test_delete_then_404(server):
    server.put_instance(instance("i-del", "127.0.0.2"))
    assert server.get("/latest/meta-data/instance-id", source="127.0.0.2").text == "i-del"
    r = server.admin("DELETE", "/v1/instances/i-del")
    assert r.status == 204, r
    assert r.body == b""
    assert server.admin("GET", "/v1/instances/i-del").status == 404
    assert server.admin("DELETE", "/v1/instances/i-del").status == 404
    # Its guest is unknown at once; its address is free again.
    assert server.get("/latest/meta-data/instance-id", source="127.0.0.2").status == 404
    assert server.admin("PUT", "/v1/instances/i-new",
                        minimal_instance("i-new", "127.0.0.2")).status == 201


def ndjson(*records: dict) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_import_ndjson(server):
    recs = [instance(f"i-imp{n}", f"127.0.1.{n}") for n in range(1, 6)]
    r = server.admin("POST", "/v1/instances:import", ndjson(*recs),
                     headers={"Content-Type": "application/x-ndjson"})
    assert r.status == 200, r
    assert r.json()["imported"] == 5
    listed = server.admin("GET", "/v1/instances").json()["instances"]
    assert sorted(i["instance"]["id"] for i in listed) == [f"i-imp{n}" for n in range(1, 6)]
    for n in range(1, 6):
        assert server.get("/latest/meta-data/instance-id",
                          source=f"127.0.1.{n}").text == f"i-imp{n}"


def test_import_is_all_or_nothing(server):
    server.put_instance(minimal_instance("i-before", "127.0.2.9"))
    good1 = minimal_instance("i-ok1", "127.0.2.1")
    good2 = minimal_instance("i-ok2", "127.0.2.2")
    bad = {"id": "i-broken", "launch_index": "x"}
    r = server.admin("POST", "/v1/instances:import", ndjson(good1, bad, good2))
    assert r.status == 400, r
    assert "line 2" in r.error()["message"]
    assert "/launch_index" in r.error()["message"]
    for iid in ("i-ok1", "i-ok2", "i-broken"):
        assert server.admin("GET", f"/v1/instances/{iid}").status == 404, iid

    # A clash with an instance the import does not replace: 409, nothing written.
    clash = minimal_instance("i-clash", "127.0.2.9")
    r = server.admin("POST", "/v1/instances:import", ndjson(good1, clash))
    assert r.status == 409, r
    assert "i-before" in r.error()["message"]
    assert server.admin("GET", "/v1/instances/i-ok1").status == 404

    # Two lines claiming one address.
    r = server.admin("POST", "/v1/instances:import",
                     ndjson(good1, minimal_instance("i-twin", "127.0.2.1", mac="02:00:00:00:00:09")))
    assert r.status == 409, r
    assert server.admin("GET", "/v1/instances/i-ok1").status == 404
    listed = server.admin("GET", "/v1/instances").json()["instances"]
    assert [i["instance"]["id"] for i in listed] == ["i-before"]


def test_list_filters(server):
    server.put_instance(minimal_instance("i-a1", "127.0.3.1", network="tenant-a"))
    server.put_instance(minimal_instance("i-a2", "127.0.3.2", network="tenant-a"))
    server.put_instance(minimal_instance("i-b1", "127.0.3.1", network="tenant-b"))

    def ids(query: str) -> list[str]:
        r = server.admin("GET", "/v1/instances" + query)
        assert r.status == 200, r
        items = r.json()["instances"]
        for item in items:
            assert isinstance(item["revision"], int) and item["revision"] > 0
        return sorted(item["instance"]["id"] for item in items)

    assert ids("") == ["i-a1", "i-a2", "i-b1"]
    assert ids("?network=tenant-a") == ["i-a1", "i-a2"]
    assert ids("?network=tenant-b") == ["i-b1"]
    assert ids("?network=nowhere") == []
    assert ids("?address=127.0.3.1") == ["i-a1", "i-b1"]
    assert ids("?network=tenant-b&address=127.0.3.1") == ["i-b1"]
    assert ids("?network=tenant-a&address=127.0.3.9") == []
    assert len(ids("?limit=2")) == 2
    assert server.admin("GET", "/v1/instances?colour=red").status == 400
    assert server.admin("GET", "/v1/instances?address=not-an-ip").status == 400


def test_admin_unknown_route_and_method(server):
    r = server.admin("GET", "/v1/nothing")
    assert r.status == 404, r
    assert r.error()["code"] == "not_found"
    r = server.admin("POST", "/v1/instances/i-x", b"{}")
    assert r.status == 405, r
    assert "PUT" in (r.header("Allow") or "")


def test_render_preview(server):
    server.put_instance(instance("i-render", "127.0.0.2"))
    r = server.admin("GET", "/v1/instances/i-render/render?path=/latest/meta-data/instance-id")
    assert r.status == 200, r
    assert r.body == b"i-render"
    r = server.admin("GET", "/v1/instances/i-render/render?path=/latest/meta-data/nothing-here")
    # Exactly what the guest would get: EC2's XHTML 404 page.
    assert r.status == 404, r
    assert r.header("X-OpenIMDS-Render-Status") == "404", r
    assert b"<title>404 - Not Found</title>" in r.body, r
    r = server.admin("GET", "/v1/instances/i-nobody/render?path=/latest/")
    assert r.status == 404, r
    assert "i-nobody" in r.error()["message"]
    assert server.admin("GET", "/v1/instances/i-render/render").status == 400  # no path


# ---------------------------------------------------------------- live updates


def test_live_update_is_seen_by_the_next_guest_request(server):
    rec = instance("i-live", "127.0.0.2")
    server.put_instance(rec)
    g = lambda path, src="127.0.0.2": server.get(path, source=src)  # noqa: E731
    assert g("/latest/meta-data/instance-id").text == "i-live"
    assert g("/latest/meta-data/local-ipv4").text == "127.0.0.2"
    assert g("/latest/meta-data/tags/instance/Name").text == "i-live"
    assert g("/latest/meta-data/instance-type").text == "t3.small"

    r = server.admin("PATCH", "/v1/instances/i-live",
                     json.dumps({"tags": {"Name": "web-2"}, "instance_type": "m6i.large"}),
                     headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, r
    assert g("/latest/meta-data/tags/instance/Name").text == "web-2"
    assert g("/latest/meta-data/instance-type").text == "m6i.large"

    # Move the instance to another address: the old one is nobody's at once.
    rec["nics"][0]["private_ipv4s"] = ["127.0.0.3"]
    server.put_instance(rec)
    assert g("/latest/meta-data/instance-id").status == 404
    assert g("/latest/meta-data/instance-id", "127.0.0.3").text == "i-live"
    assert g("/latest/meta-data/local-ipv4", "127.0.0.3").text == "127.0.0.3"

    # User-data replaced, then removed.
    server.admin("PATCH", "/v1/instances/i-live", json.dumps({"user_data": b64("#!/bin/sh\n")}),
                 headers={"Content-Type": "application/merge-patch+json"})
    assert g("/latest/user-data", "127.0.0.3").body == b"#!/bin/sh\n"
    server.admin("PATCH", "/v1/instances/i-live", json.dumps({"user_data": None}),
                 headers={"Content-Type": "application/merge-patch+json"})
    assert g("/latest/user-data", "127.0.0.3").status == 404

    # Tags switched off: the tags/ tree goes away.
    server.admin("PATCH", "/v1/instances/i-live",
                 json.dumps({"metadata_options": {"instance_metadata_tags": "disabled"}}),
                 headers={"Content-Type": "application/merge-patch+json"})
    assert g("/latest/meta-data/tags/instance/Name", "127.0.0.3").status == 404


def test_guests_are_told_apart_by_source_address_and_network(make_server):
    s = make_server(listens=["127.0.0.1:0,network=tenant-a", "127.0.0.1:0,network=tenant-b"])
    s.put_instance(instance("i-a", "127.0.0.2", network="tenant-a"))
    s.put_instance(instance("i-b", "127.0.0.2", network="tenant-b"))
    s.put_instance(instance("i-a3", "127.0.0.3", network="tenant-a"))
    assert s.get("/latest/meta-data/instance-id", source="127.0.0.2",
                 network="tenant-a").text == "i-a"
    assert s.get("/latest/meta-data/instance-id", source="127.0.0.2",
                 network="tenant-b").text == "i-b"
    assert s.get("/latest/meta-data/instance-id", source="127.0.0.3",
                 network="tenant-a").text == "i-a3"
    r = s.get("/latest/meta-data/instance-id", source="127.0.0.3", network="tenant-b")
    assert r.status == 404, r
    # The stranger is told its own address, not the listener's network; the
    # operator's log names both.
    assert "127.0.0.3" in r.text and "tenant" not in r.text, r.text
    time.sleep(0.2)
    assert "no instance is registered for 127.0.0.3 in network tenant-b" in s.log_path.read_text()


def test_demo_instance_answers_ipv4_and_ipv6_loopback(make_server):
    s = make_server(demo=True, listens=["127.0.0.1:0", "[::1]:0"])
    hosts = sorted(g["endpoint"] for g in s.ready["guest"])
    assert any(h.startswith("[::1]:") for h in hosts), hosts
    for g in s.ready["guest"]:
        host, port = split_endpoint(g["endpoint"])
        resp = raw_exchange(host, port, b"GET /latest/meta-data/instance-id HTTP/1.1\r\n"
                                        b"Host: 169.254.169.254\r\nConnection: close\r\n\r\n")
        assert raw_status(resp) == 200, resp
        assert raw_body(resp) == b"i-0123456789abcdef0"
    assert s.get("/latest/meta-data/iam/security-credentials/").text == "demo-role"
    assert s.get("/latest/meta-data/placement/region").text == "us-east-1"
    assert s.get("/latest/meta-data/placement/availability-zone").text == "us-east-1a"
    assert s.get("/latest/meta-data/public-keys/").text == "0=demo-key"
    assert s.get("/latest/user-data").body == b"#cloud-config\nhostname: demo\n"
    assert s.get("/latest/meta-data/tags/instance/Name").status == 200


# ---------------------------------------------------------------- restart


def test_restart_keeps_instances_revisions_and_tokens(make_server):
    s = make_server()
    rec = required_tokens(instance("i-keep", "127.0.0.2"))
    s.put_instance(rec)
    s.put_instance(instance("i-keep2", "127.0.0.3"))
    rev = etag_revision(s.admin("GET", "/v1/instances/i-keep"))
    token = s.token(ttl=21600, source="127.0.0.2")
    before = {p: s.get(p, token=token, source="127.0.0.2").body for p in (
        "/latest/meta-data/instance-id", "/latest/meta-data/local-ipv4",
        "/latest/meta-data/tags/instance/Name", "/latest/user-data",
        "/latest/meta-data/iam/security-credentials/test-role")}
    assert before["/latest/meta-data/instance-id"] == b"i-keep"
    listed_before = s.admin("GET", "/v1/instances").json()

    s.restart()  # SIGTERM, exit code 0, start again on the same store
    assert s.admin("GET", "/v1/instances").json() == listed_before
    assert etag_revision(s.admin("GET", "/v1/instances/i-keep")) == rev
    # The token key lives in the store: a token from before the restart works.
    for path, body in before.items():
        r = s.get(path, token=token, source="127.0.0.2")
        assert r.status == 200, (path, r)
        assert r.body == body, path
    assert s.get("/latest/meta-data/instance-id", source="127.0.0.2").status == 401
    assert s.get("/latest/meta-data/instance-id", source="127.0.0.3").text == "i-keep2"
    # New writes continue the revision sequence.
    rec["name"] = "after"
    assert etag_revision(s.put_instance(rec)) > rev


# ---------------------------------------------------------------- IMDSv2


def test_token_put_response(server):
    server.put_instance(instance("i-tok", "127.0.0.2"))
    r = server.guest("PUT", "/latest/api/token", {TOKEN_TTL_HEADER: "300"}, body=b"",
                     source="127.0.0.2")
    assert r.status == 200, r
    assert r.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "300"
    token = r.text
    assert token and token == token.strip() and not r.body.endswith(b"\n")
    assert all(0x21 <= c < 0x7f for c in r.body), r.body  # usable verbatim in a header

    # The header arrives in several casings; and curl -X PUT sends no Content-Length.
    for name in ("x-aws-ec2-metadata-token-ttl-seconds", "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"):
        r = server.guest("PUT", "/latest/api/token", {name: "21600"}, source="127.0.0.2")
        assert r.status == 200, (name, r)
        assert r.header("x-aws-ec2-metadata-token-ttl-seconds") == "21600"
    resp = server.raw(b"PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\n"
                      b"X-aws-ec2-metadata-token-ttl-seconds: 60\r\nConnection: close\r\n\r\n",
                      source="127.0.0.2")
    assert raw_status(resp) == 200, resp
    tok2 = raw_body(resp).decode()

    for t in (token, tok2):
        got = server.get("/latest/meta-data/instance-id", token=t, source="127.0.0.2")
        assert got.status == 200 and got.text == "i-tok", got


def test_tokens_required(server):
    rec = required_tokens(instance("i-v2", "127.0.0.2"))
    server.put_instance(rec)
    server.put_instance(required_tokens(instance("i-v2b", "127.0.0.3")))
    m0 = server.metrics()

    r = server.get("/latest/meta-data/instance-id", source="127.0.0.2")
    assert r.status == 401, r
    assert server.get("/latest/user-data", source="127.0.0.2").status == 401
    token = server.token(ttl=60, source="127.0.0.2")
    r = server.get("/latest/meta-data/instance-id", token=token, source="127.0.0.2")
    assert r.status == 200 and r.text == "i-v2", r
    creds = server.get("/latest/meta-data/iam/security-credentials/test-role", token=token,
                       source="127.0.0.2")
    assert creds.status == 200, creds
    doc = creds.json()
    want = rec["iam"]["credentials"]
    assert doc["AccessKeyId"] == want["access_key_id"]
    assert doc["SecretAccessKey"] == want["secret_access_key"]
    assert doc["Token"] == want["token"]
    assert doc["Expiration"] == want["expiration"]
    assert doc["Code"] == "Success"

    # Garbage, truncated and tampered tokens are refused.
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in ("garbage", token[:-4], flipped, "A" * 5000):
        r = server.get("/latest/meta-data/instance-id", token=bad, source="127.0.0.2")
        assert r.status == 401, (bad[:20], r)
    # A token is bound to the instance that asked for it.
    r = server.get("/latest/meta-data/instance-id", token=token, source="127.0.0.3")
    assert r.status == 401, r
    own = server.token(source="127.0.0.3")
    assert server.get("/latest/meta-data/instance-id", token=own,
                      source="127.0.0.3").text == "i-v2b"

    m1 = server.metrics()
    assert metric_sum(m1, "imds_token_issued_total") - metric_sum(m0, "imds_token_issued_total") == 2
    assert metric_sum(m1, "imds_requests_total", version="v1") == metric_sum(
        m0, "imds_requests_total", version="v1")
    assert metric_sum(m1, "imds_token_rejected_total") - metric_sum(
        m0, "imds_token_rejected_total") >= 7


def test_token_expires(server):
    server.put_instance(required_tokens(instance("i-exp", "127.0.0.2")))
    token = server.token(ttl=1, source="127.0.0.2")
    assert server.get("/latest/meta-data/instance-id", token=token, source="127.0.0.2").status == 200
    time.sleep(2.2)
    r = server.get("/latest/meta-data/instance-id", token=token, source="127.0.0.2")
    assert r.status == 401, r
    assert metric_sum(server.metrics(), "imds_token_rejected_total", reason="expired") >= 1


@pytest.mark.parametrize("ttl", ["0", "21601", None, "abc", "-5", "1.5", ""])
def test_token_ttl_out_of_range_is_400(server, ttl):
    server.put_instance(instance("i-ttl", "127.0.0.2"))
    headers = {} if ttl is None else {TOKEN_TTL_HEADER: ttl}
    r = server.guest("PUT", "/latest/api/token", headers, body=b"", source="127.0.0.2")
    assert r.status == 400, r


@pytest.mark.parametrize("ttl", ["1", "21600"])
def test_token_ttl_bounds_are_accepted(server, ttl):
    server.put_instance(instance("i-ttl", "127.0.0.2"))
    r = server.guest("PUT", "/latest/api/token", {TOKEN_TTL_HEADER: ttl}, body=b"",
                     source="127.0.0.2")
    assert r.status == 200, r


def test_token_put_with_x_forwarded_for_is_403(server):
    server.put_instance(instance("i-xff", "127.0.0.2"))
    r = server.guest("PUT", "/latest/api/token",
                     {TOKEN_TTL_HEADER: "60", "X-Forwarded-For": "203.0.113.9"}, body=b"",
                     source="127.0.0.2")
    assert r.status == 403, r
    assert metric_sum(server.metrics(), "imds_token_put_rejected_total", reason="forwarded") == 1


def test_get_on_token_endpoint_is_405(server):
    server.put_instance(instance("i-405", "127.0.0.2"))
    r = server.get("/latest/api/token", source="127.0.0.2")
    assert r.status == 405, r
    r = server.guest("POST", "/latest/meta-data/instance-id", body=b"", source="127.0.0.2")
    assert r.status == 405, r


def test_endpoint_disabled(server):
    rec = instance("i-off", "127.0.0.2")
    rec["metadata_options"]["http_endpoint"] = "disabled"
    server.put_instance(rec)
    r = server.get("/latest/meta-data/instance-id", source="127.0.0.2")
    assert r.status in (403, 404), r
    assert b"i-off" not in r.body
    r = server.guest("PUT", "/latest/api/token", {TOKEN_TTL_HEADER: "60"}, body=b"",
                     source="127.0.0.2")
    assert r.status in (403, 404, 405), r


OPENSTACK_PATHS = ["/openstack/latest/meta_data.json", "/openstack/latest/user_data",
                   "/openstack/latest/network_data.json", "/openstack/", "/openstack"]


def test_tokens_required_holds_on_openstack_paths(server):
    """A record's metadata options hold for every flavour that renders it: with
    tokens required, the OpenStack paths need the IMDSv2 token too."""
    secret = b"#!/bin/sh\necho only-with-a-token\n"
    server.put_instance(required_tokens(instance("i-osv2", "127.0.0.2", user_data=b64(secret))))
    server.put_instance(instance("i-osv1", "127.0.0.3"))  # tokens optional
    m0 = server.metrics()

    for path in OPENSTACK_PATHS:
        r = server.get(path, source="127.0.0.2")
        assert r.status == 401, (path, r)
        assert b"only-with-a-token" not in r.body and b"i-osv2" not in r.body, (path, r)
        assert b"IMDSv2 token" in r.body, (path, r)
        r = server.guest("HEAD", path, source="127.0.0.2")
        assert r.status == 401, (path, r)
    # Another instance's token, a tampered one and two headers are refused.
    other = server.token(source="127.0.0.3")
    token = server.token(source="127.0.0.2")
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (other, flipped, "garbage"):
        r = server.get("/openstack/latest/user_data", token=bad, source="127.0.0.2")
        assert r.status == 401, (bad[:12], r)
    refused = 3 + 2 * len(OPENSTACK_PATHS)

    r = server.get("/openstack/latest/user_data", token=token, source="127.0.0.2")
    assert r.status == 200 and r.body == secret, r
    r = server.get("/openstack/latest/meta_data.json", token=token, source="127.0.0.2")
    assert r.status == 200 and r.json()["uuid"] == "i-osv2", r
    # Tokens optional: served without one, as before.
    r = server.get("/openstack/latest/meta_data.json", source="127.0.0.3")
    assert r.status == 200 and r.json()["uuid"] == "i-osv1", r

    m1 = server.metrics()
    assert metric_sum(m1, "metadata_rejected_total", reason="token_required") - metric_sum(
        m0, "metadata_rejected_total", reason="token_required") == refused


def test_endpoint_disabled_holds_on_openstack_paths(server):
    rec = instance("i-osoff", "127.0.0.2", user_data=b64("#cloud-config\nsecret: 1\n"))
    rec["metadata_options"]["http_endpoint"] = "disabled"
    server.put_instance(rec)
    m0 = server.metrics()
    for path in OPENSTACK_PATHS:
        r = server.get(path, source="127.0.0.2")
        assert r.status == 403, (path, r)
        assert b"i-osoff" not in r.body and b"secret" not in r.body, (path, r)
        assert server.guest("HEAD", path, source="127.0.0.2").status == 403, path
    m1 = server.metrics()
    assert metric_sum(m1, "metadata_rejected_total", reason="endpoint_disabled") - metric_sum(
        m0, "metadata_rejected_total", reason="endpoint_disabled") == 2 * len(OPENSTACK_PATHS)
    # The EC2 paths refuse as before (the EC2 flavour applies the option itself).
    assert server.get("/latest/meta-data/instance-id", source="127.0.0.2").status == 403


# ---------------------------------------------------------------- unknown callers, bad input


def test_unknown_caller_is_404_naming_its_address(server):
    server.put_instance(instance("i-known", "127.0.0.2"))
    before = metric_sum(server.metrics(), "metadata_rejected_total", reason="unknown_caller")
    for _ in range(3):
        r = server.get("/latest/meta-data/instance-id", source="127.0.0.9")
        assert r.status == 404, r
        assert "127.0.0.9" in r.text
        assert "i-known" not in r.text
        assert "network" not in r.text and "default" not in r.text, r.text  # say less to strangers
    after = metric_sum(server.metrics(), "metadata_rejected_total", reason="unknown_caller")
    assert after - before == 3
    assert "unknown_caller" in server.admin("GET", "/metrics").text


def test_path_traversal_is_404(server):
    server.put_instance(instance("i-trav", "127.0.0.2"))
    for target in (b"/latest/meta-data/../../etc/passwd", b"/latest/meta-data/%2e%2e/%2e%2e/etc/passwd",
                   b"/../../../../etc/passwd", b"/latest/user-data/../../../etc/passwd"):
        resp = server.raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          source="127.0.0.2")
        assert raw_status(resp) in (400, 404), (target, resp)
        assert b"root:" not in resp
    resp = server.raw(b"GET /latest/meta-data/../../etc/passwd HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n", source="127.0.0.2")
    assert raw_status(resp) == 404, resp


def test_oversized_header_is_431(server):
    before = metric_sum(server.metrics(), "http_rejected_total", reason="header_too_large")
    req = (b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 20000 +
           b"\r\n\r\n")
    resp = server.raw(req, source="127.0.0.2")
    assert raw_status(resp) == 431, resp[:200]
    after = metric_sum(server.metrics(), "http_rejected_total", reason="header_too_large")
    assert after - before == 1


def test_oversized_body_is_413(server):
    server.put_instance(instance("i-body", "127.0.0.2"))
    r = server.guest("PUT", "/latest/api/token", {TOKEN_TTL_HEADER: "60"}, body=b"x" * 100000,
                     source="127.0.0.2")
    assert r.status == 413, r


def test_unknown_method_is_405(server):
    server.put_instance(instance("i-meth", "127.0.0.2"))
    for method in (b"FROB", b"DELETE", b"PATCH"):
        resp = server.raw(method + b" /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 0\r\nConnection: close\r\n\r\n", source="127.0.0.2")
        assert raw_status(resp) == 405, (method, resp)


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET /latest/meta-data/ HTTP/1.1\r\nHost x\r\n\r\n",           # header without colon
    b"GET /latest/meta-data/ HTTP/9.9\r\nHost: x\r\n\r\n",           # unknown version
    b"GET /latest/meta-data/ HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"GET /latest/meta data/ HTTP/1.1\r\nHost: x\r\n\r\n",           # space in target
])
def test_malformed_request_is_400(server, request_bytes):
    server.put_instance(instance("i-mal", "127.0.0.2"))
    resp = server.raw(request_bytes, source="127.0.0.2")
    assert raw_status(resp) == 400, (request_bytes, resp)
    # The server is still fine afterwards.
    assert server.get("/latest/meta-data/instance-id", source="127.0.0.2").text == "i-mal"


def test_keep_alive_serves_several_requests_on_one_connection(server):
    server.put_instance(instance("i-ka", "127.0.0.2"))
    host, port = server.guest_address()
    conn = http.client.HTTPConnection(host, port, timeout=10, source_address=("127.0.0.2", 0))
    try:
        conn.request("PUT", "/latest/api/token", body=b"", headers={TOKEN_TTL_HEADER: "60"})
        token = conn.getresponse().read().decode()
        for path, want in (("/latest/meta-data/instance-id", b"i-ka"),
                           ("/latest/meta-data/local-ipv4", b"127.0.0.2"),
                           ("/latest/meta-data/placement/availability-zone/", b"eu-west-1b")):
            conn.request("GET", path, headers={TOKEN_HEADER: token})
            r = conn.getresponse()
            assert (r.status, r.read()) == (200, want), path
    finally:
        conn.close()


# ---------------------------------------------------------------- health, metrics


def test_health_readiness_metrics(demo_server):
    s = demo_server
    r = s.admin("GET", "/healthz")
    assert r.status == 200 and r.text.strip() == "ok", r
    r = s.admin("GET", "/readyz")
    assert r.status == 200, r
    r = s.admin("HEAD", "/healthz")
    assert r.status == 200 and r.body == b""
    r = s.admin("GET", "/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain")
    m = s.metrics()
    for name in ("http_requests_total", "metadata_rejected_total", "imds_token_issued_total",
                 "imds_requests_total", "catalog_instances", "admin_requests_total"):
        assert name in metric_names(m), name
    assert metric_sum(m, "catalog_instances") == 1
    s.put_instance(instance("i-more", "127.0.0.2"))
    assert metric_sum(s.metrics(), "catalog_instances") == 2
    assert s.admin("POST", "/healthz", b"").status == 405
    # The guest listener does not serve the admin API.
    assert s.get("/v1/instances").status == 404
    assert s.get("/metrics").status == 404


def test_sigterm_while_a_client_is_connected_exits_0(server):
    server.put_instance(instance("i-term", "127.0.0.2"))
    host, port = server.guest_address()
    idle = socket.create_connection((host, port), timeout=5)
    try:
        server.stop()  # asserts exit code 0
    finally:
        idle.close()


# ---------------------------------------------------------------- CLI


def test_cli_round_trip(server, workdir):
    rec = instance("i-cli", "127.0.0.2")
    path = workdir / "i-cli.json"
    path.write_text(json.dumps(rec))

    p = server.cli("put", str(path))
    assert p.returncode == 0, p
    p = server.cli("get", "i-cli")
    assert p.returncode == 0, p
    assert_contains(rec, json.loads(p.stdout))

    patch = workdir / "patch.json"
    patch.write_text(json.dumps({"tags": {"Name": "via-cli"}}))
    p = server.cli("patch", "i-cli", str(patch))
    assert p.returncode == 0, p
    assert server.get("/latest/meta-data/tags/instance/Name", source="127.0.0.2").text == "via-cli"

    p = server.cli("render", "i-cli", "/latest/meta-data/instance-id")
    assert p.returncode == 0, p
    assert p.stdout.strip() == b"i-cli"

    p = server.cli("list")
    assert p.returncode == 0, p
    assert [i["instance"]["id"] for i in json.loads(p.stdout)["instances"]] == ["i-cli"]

    # put from stdin, create-only twice
    other = minimal_instance("i-stdin", "127.0.0.3")
    p = server.cli("put", "--create-only", "-", input=json.dumps(other).encode())
    assert p.returncode == 0, p
    p = server.cli("put", "--create-only", "-", input=json.dumps(other).encode())
    assert p.returncode == 1, p
    assert p.stderr, p

    p = server.cli("list", "--address", "127.0.0.3")
    assert p.returncode == 0
    assert [i["instance"]["id"] for i in json.loads(p.stdout)["instances"]] == ["i-stdin"]

    p = server.cli("delete", "i-cli")
    assert p.returncode == 0, p
    p = server.cli("get", "i-cli")
    assert p.returncode == 1, p
    assert b"i-cli" in p.stderr
    assert server.admin("GET", "/v1/instances/i-cli").status == 404


def test_cli_import_and_errors(server, workdir):
    good = workdir / "fleet.ndjson"
    good.write_bytes(ndjson(*[minimal_instance(f"i-f{n}", f"127.0.4.{n}") for n in range(1, 4)]))
    p = server.cli("import", str(good))
    assert p.returncode == 0, p
    assert len(server.admin("GET", "/v1/instances").json()["instances"]) == 3

    bad = workdir / "bad.ndjson"
    bad.write_bytes(ndjson(minimal_instance("i-g1", "127.0.5.1"), {"id": "i-g2", "nics": 5}))
    p = server.cli("import", str(bad))
    assert p.returncode == 1, p
    assert b"line 2" in p.stderr
    assert server.admin("GET", "/v1/instances/i-g1").status == 404

    invalid = workdir / "invalid.json"
    invalid.write_text(json.dumps({"id": "i-inv", "colour": "red"}))
    p = server.cli("put", str(invalid))
    assert p.returncode == 1, p
    assert b"/colour" in p.stderr


def test_cli_usage_error_exits_2(server):
    # `openimds instance --help`: "Exit codes: 0 ok, 1 refused by the server
    # (message on stderr), 2 usage error, 3 cannot reach the admin API."
    for args in (("get",), ("put",), ("frobnicate",), ("list", "--limit", "zero")):
        p = server.cli(*args)
        assert p.returncode == 2, p
        assert p.stderr, p


def test_serve_refuses_bad_flags(binary, workdir):
    for args in (["--listen", "127.0.0.1:0,colour=blue"], ["--store", "mysql:x"],
                 ["--log-level", "loud"]):
        p = subprocess.run([str(binary), "serve", "--admin", f"unix:{workdir}/a.sock",
                            "--listen", "127.0.0.1:0", *args], capture_output=True, timeout=30,
                           cwd=workdir)
        assert p.returncode != 0, (args, p)
        assert p.stderr or p.stdout, args


def test_cli_without_server_exits_3(server, workdir):
    p = server.cli("list", admin=f"unix:{workdir}/no-such.sock")
    assert p.returncode == 3, p
    msg = p.stderr.decode()
    assert "no-such.sock" in msg
    assert "openimds serve" in msg  # says what to do about it


@pytest.mark.parametrize("path", ["/nothing", "/latest/meta-data/no-such-key",
                                  "/openstack/latest/meta_data.json"])
def test_head_answers_carry_no_body(server, path):
    """HEAD gets the status and headers GET would, never body bytes: one
    stray body desynchronises every response after it on a kept-alive or
    pooled connection (a proxy's upstream, for one)."""
    server.put_instance(instance("i-head", "127.0.0.2"))
    host, port = server.guest_address()
    get = raw_exchange(host, port, f"GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n"
                       "Connection: close\r\n\r\n".encode(), source="127.0.0.2")
    head = raw_exchange(host, port, f"HEAD {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n"
                        "Connection: close\r\n\r\n".encode(), source="127.0.0.2")
    assert raw_status(head) == raw_status(get), (head, get)
    assert raw_body(get), get  # GET has a body here; HEAD must not send it
    assert raw_body(head) == b"", head


def test_a_guest_address_in_use_is_refused_at_start(server, binary, workdir):
    """A listener's address is exclusive: a second process, a second --listen
    of another network on the same port, or --admin on the guest port must
    fail at start, naming the address, instead of silently sharing it (guests
    would get another tenant's record at random)."""
    host, port = server.guest_address()
    taken = f"{host}:{port}"
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()
    token_file = workdir / "admin.token"
    token_file.write_text("an-admin-token-of-enough-length-0123456789\n")
    token_file.chmod(0o600)
    attempts = {
        "second process": ["--admin", f"unix:{workdir}/second.sock", "--listen", taken],
        "two networks, one port": ["--admin", f"unix:{workdir}/third.sock",
                                   "--listen", f"127.0.0.1:{free_port},network=a",
                                   "--listen", f"127.0.0.1:{free_port},network=b"],
        "admin on the guest port": ["--admin", taken, "--admin-token-file", str(token_file),
                                    "--listen", "127.0.0.1:0"],
    }
    for what, args in attempts.items():
        p = subprocess.run([str(binary), "serve", "--store", f"sqlite:{workdir}/{what[:6]}.db",
                            *args], capture_output=True, timeout=30, cwd=workdir, text=True)
        assert p.returncode != 0, (what, p)
        out = (p.stderr + p.stdout).lower()
        assert "address already in use" in out, (what, out)
        want = taken if what != "two networks, one port" else f"127.0.0.1:{free_port}"
        assert want in out, (what, out)
    # The first server still answers every guest.
    server.put_instance(instance("i-exclusive", "127.0.0.2"))
    for _ in range(20):
        r = server.get("/latest/meta-data/instance-id", source="127.0.0.2")
        assert r.status == 200 and r.text == "i-exclusive", r


def test_refusal_log_lines_are_cut_and_escaped(server):
    """A refusal that echoes what a guest sent (here an 8 KB path of non-ASCII
    bytes no flavour serves) logs one short line of printable ASCII."""
    host, port = server.guest_address()
    path = "/nope-" + "\u00e9" * 3000 + "-end"
    reply = raw_exchange(host, port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         .encode(), source="127.0.0.2")
    assert raw_status(reply) == 404, reply[:200]
    time.sleep(0.2)
    lines = [l for l in server.log_path.read_bytes().splitlines() if b"no flavour for /nope-" in l]
    assert len(lines) == 1, lines
    line = lines[0]
    assert len(line) < 700, len(line)
    assert all(0x20 <= b < 0x7f for b in line), line[:200]
    assert b"\\xc3\\xa9" in line and b"bytes cut)" in line, line[:300]
