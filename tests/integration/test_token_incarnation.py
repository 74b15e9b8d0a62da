"""IMDSv2 tokens are bound to one incarnation of an instance, on the real
binary: delete an instance and create it again under the same id, and the old
instance's token is refused (EC2 paths and, through the metadata service, the
OpenStack paths); a fresh token works; an update keeps tokens valid. The
incarnation comes from the store, so a second server on the same store and a
restart agree."""

from __future__ import annotations

import time

from openimds_harness import Server, instance, metric_sum

IID = "i-0000000000000incar"
GUEST = "127.0.0.1"
INSTANCE_ID = "/latest/meta-data/instance-id"
OPENSTACK = "/openstack/latest/meta_data.json"
PATCH = {"Content-Type": "application/merge-patch+json"}


def required(iid: str = IID) -> dict:
    record = instance(iid, address=GUEST)
    record["metadata_options"]["http_tokens"] = "required"
    return record


def incarnation(s: Server, iid: str = IID) -> int:
    r = s.admin("GET", f"/v1/instances/{iid}")
    assert r.status == 200, r
    return int(r.header("X-OpenIMDS-Incarnation"))


def test_a_token_does_not_outlive_its_instance(server):
    record = required()
    created = server.put_instance(record, expect=(201,))
    first = int(created.header("X-OpenIMDS-Incarnation"))
    assert first == incarnation(server) > 0
    old = server.token(source=GUEST)
    assert server.get(INSTANCE_ID, token=old, source=GUEST).text == IID
    assert server.get(OPENSTACK, token=old, source=GUEST).status == 200

    # An update keeps the incarnation, and so the token.
    r = server.admin("PATCH", f"/v1/instances/{IID}", {"name": "renamed"}, headers=PATCH)
    assert r.status == 200, r
    assert int(r.header("X-OpenIMDS-Incarnation")) == first
    r = server.put_instance(record, expect=(200,))
    assert int(r.header("X-OpenIMDS-Incarnation")) == first
    assert server.get(INSTANCE_ID, token=old, source=GUEST).text == IID

    # Deleted and created again with the very same record: a new incarnation.
    assert server.admin("DELETE", f"/v1/instances/{IID}").status == 204
    recreated = server.put_instance(record, expect=(201,))
    second = int(recreated.header("X-OpenIMDS-Incarnation"))
    assert second != first
    assert incarnation(server) == second
    listed = server.admin("GET", "/v1/instances").json()["instances"]
    assert [item["incarnation"] for item in listed if item["instance"]["id"] == IID] == [second]

    before = server.metrics()
    r = server.get(INSTANCE_ID, token=old, source=GUEST)
    assert r.status == 401, r
    r = server.get(OPENSTACK, token=old, source=GUEST)
    assert r.status == 401, r
    after = server.metrics()
    assert (metric_sum(after, "imds_token_rejected_total", reason="bad_seal")
            == metric_sum(before, "imds_token_rejected_total", reason="bad_seal") + 1)
    assert (metric_sum(after, "metadata_rejected_total", reason="token_required")
            == metric_sum(before, "metadata_rejected_total", reason="token_required") + 1)

    fresh = server.token(source=GUEST)
    assert server.get(INSTANCE_ID, token=fresh, source=GUEST).text == IID
    assert server.get(OPENSTACK, token=fresh, source=GUEST).status == 200


def test_the_incarnation_is_the_stores_for_every_server_and_restart(make_server, workdir):
    a = make_server("a")
    a.put_instance(required(), expect=(201,))
    b = Server(binary=a.binary, workdir=workdir / "b")
    b.workdir.mkdir()
    (b.workdir / "store").symlink_to(a.workdir / "store")  # one store, two servers
    b.start()
    try:
        from_a = a.token(source=GUEST)
        assert b.get(INSTANCE_ID, token=from_a, source=GUEST).text == IID
        assert incarnation(b) == incarnation(a)

        # Re-created through a; b follows the store's change feed and then
        # refuses the old token too.
        assert a.admin("DELETE", f"/v1/instances/{IID}").status == 204
        a.put_instance(required(), expect=(201,))
        deadline = time.monotonic() + 30
        while incarnation(b) != incarnation(a):
            assert time.monotonic() < deadline, "b did not follow a's write"
            time.sleep(0.05)
        assert b.get(INSTANCE_ID, token=from_a, source=GUEST).status == 401
        from_b = b.token(source=GUEST)
        assert a.get(INSTANCE_ID, token=from_b, source=GUEST).text == IID
    finally:
        b.stop()
    a.restart()
    assert a.get(INSTANCE_ID, token=from_b, source=GUEST).text == IID
    assert a.get(INSTANCE_ID, token=from_a, source=GUEST).status == 401
