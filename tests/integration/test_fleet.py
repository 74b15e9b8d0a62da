"""End-to-end tests of the change feed (docs/admin_api.md "Consistency"):
read-your-writes under concurrent writers, two `serve` processes on one store
file, durability of acknowledged writes across SIGKILL, --max-instances, and
the resync after a gap in the feed.

Loopback and unix sockets only. Guests are played by binding the client
socket to distinct 127.x.y.z source addresses. Every loop is bounded in count
and in time; the only time limits asserted are generous convergence deadlines.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time

from openimds_harness import Server, instance, metric_sum, minimal_instance

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
CONVERGE_S = 10.0  # deadline for things that should take well under a second


def etag_revision(reply) -> int:
    tag = reply.header("ETag")
    assert tag is not None, reply
    assert tag.startswith('"') and tag.endswith('"'), tag
    return int(tag.strip('"'))


def wait_until(predicate, what: str, deadline_s: float = CONVERGE_S, step_s: float = 0.02):
    """Polls predicate() (bounded: deadline and iteration count) until it returns
    something truthy; fails the test naming `what` and the last value otherwise."""
    end = time.monotonic() + deadline_s
    last = None
    for _ in range(int(deadline_s / step_s) + 1):
        last = predicate()
        if last:
            return last
        if time.monotonic() > end:
            break
        time.sleep(step_s)
    raise AssertionError(f"{what}: not within {deadline_s}s (last: {last!r})")


def run_threads(targets) -> None:
    """Starts one thread per callable, joins them (bounded), re-raises the first error."""
    errors: list[BaseException] = []
    lock = threading.Lock()

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported in the main thread
                with lock:
                    errors.append(e)
        return run

    threads = [threading.Thread(target=wrap(fn), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "writer threads did not finish"
    if errors:
        raise errors[0]


def second_server_on_same_store(first: Server, name: str, extra_args=()) -> Server:
    """A Server (not started) whose store is `first`'s file: its store/ directory
    is a symlink to first's (as test_ec2_fidelity does). Own admin socket, own
    guest port. The caller stops it by PID."""
    other = Server(binary=first.binary, workdir=first.workdir.parent / name,
                   extra_args=list(extra_args))
    other.workdir.mkdir()
    (other.workdir / "store").symlink_to(first.workdir / "store")
    return other


# ---------------------------------------------------------------- read-your-writes


def test_read_your_writes_under_concurrent_patchers(server):
    writers = 4
    patches = 50
    ids = [f"i-ryw{t}" for t in range(writers)]
    addresses = [f"127.0.5.{t + 2}" for t in range(writers)]
    for iid, addr in zip(ids, addresses):
        rec = instance(iid, addr)
        assert rec["metadata_options"]["instance_metadata_tags"] == "enabled"
        server.put_instance(rec, expect=(201,))
        assert server.get("/latest/meta-data/instance-id", source=addr).text == iid

    etags: dict[str, list[int]] = {iid: [] for iid in ids}

    def patcher(t: int):
        iid, addr = ids[t], addresses[t]
        for n in range(patches):
            value = f"v{t}-{n}"
            r = server.admin("PATCH", f"/v1/instances/{iid}",
                             json.dumps({"tags": {"Counter": value}}), headers=MERGE_PATCH)
            assert r.status == 200, (iid, n, r)
            etags[iid].append(etag_revision(r))
            g = server.get("/latest/meta-data/tags/instance/Counter", source=addr)
            assert g.status == 200 and g.text == value, (
                f"read-your-writes broken for {iid} after PATCH #{n} (ETag {r.header('ETag')}): "
                f"guest from {addr} saw {g!r}, want {value!r}")

    run_threads([lambda t=t: patcher(t) for t in range(writers)])

    for iid in ids:
        revs = etags[iid]
        assert len(revs) == patches
        assert all(a < b for a, b in zip(revs, revs[1:])), (iid, revs)
    # Distinct instances' revisions come from one feed: no two writes share one.
    every = [r for revs in etags.values() for r in revs]
    assert len(set(every)) == len(every)
    for t, iid in enumerate(ids):
        got = server.admin("GET", f"/v1/instances/{iid}")
        assert got.json()["tags"]["Counter"] == f"v{t}-{patches - 1}"
        assert etag_revision(got) == etags[iid][-1]


# ---------------------------------------------------------------- two serves, one store


def test_two_serves_on_one_store_converge_through_the_feed(make_server):
    a = make_server("a")
    b = second_server_on_same_store(a, "b")
    b.start()
    try:
        addr = "127.0.6.2"
        assert a.get("/latest/meta-data/instance-id", source=addr).status == 404
        assert b.get("/latest/meta-data/instance-id", source=addr).status == 404

        # Written through A: A shows it at once, B within the poll interval.
        a.put_instance(instance("i-shared", addr), expect=(201,))
        assert a.get("/latest/meta-data/instance-id", source=addr).text == "i-shared"
        wait_until(lambda: b.get("/latest/meta-data/instance-id", source=addr).text == "i-shared",
                   "B's guest port shows the instance written through A")
        assert b.admin("GET", "/v1/instances/i-shared").status == 200

        # A change through A reaches B too.
        r = a.admin("PATCH", "/v1/instances/i-shared",
                    json.dumps({"tags": {"Name": "from-a"}}), headers=MERGE_PATCH)
        assert r.status == 200, r
        wait_until(lambda: b.get("/latest/meta-data/tags/instance/Name", source=addr).text
                   == "from-a", "B's guest port shows A's PATCH")
        assert etag_revision(b.admin("GET", "/v1/instances/i-shared")) == etag_revision(r)

        # Deleted through B: B answers 404 at once, A within the poll interval.
        d = b.admin("DELETE", "/v1/instances/i-shared")
        assert d.status == 204, d
        assert b.get("/latest/meta-data/instance-id", source=addr).status == 404
        wait_until(lambda: a.get("/latest/meta-data/instance-id", source=addr).status == 404,
                   "A's guest port answers 404 for the instance deleted through B")
        assert a.admin("GET", "/v1/instances/i-shared").status == 404
    finally:
        b.stop()


# ---------------------------------------------------------------- kill -9


def test_acknowledged_creates_survive_sigkill_under_concurrent_writers(make_server):
    s = make_server()
    writers = 4
    per_writer_max = 1500  # bound on each loop; the kill normally ends it far earlier
    acked: list[list[str]] = [[] for _ in range(writers)]
    addr_of: dict[str, str] = {}
    stop = threading.Event()

    def creator(t: int):
        for i in range(per_writer_max):
            if stop.is_set():
                return
            iid = f"i-k{t}n{i:04d}"
            addr = f"127.{20 + t}.{i // 200}.{i % 200 + 2}"
            mac = f"02:00:{t:02x}:00:{i // 256:02x}:{i % 256:02x}"
            try:
                r = s.admin("PUT", f"/v1/instances/{iid}", minimal_instance(iid, addr, mac=mac))
            except OSError:
                return  # the server is gone (SIGKILL): no acknowledgement
            if r.status == 201:
                acked[t].append(iid)
                addr_of[iid] = addr
            else:
                # Any other answer is a real error while the server still runs.
                assert stop.is_set(), (iid, r)
                return

    threads = [threading.Thread(target=creator, args=(t,), daemon=True) for t in range(writers)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    pid = s.proc.pid
    s.kill()  # SIGKILL by PID, then wait
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "writer threads did not finish"

    ids = [iid for per in acked for iid in per]
    assert len(ids) > writers, f"too few acknowledged creates before the kill: {ids}"

    s.start()  # the same store file
    assert s.proc.pid != pid
    listed = s.admin("GET", "/v1/instances")
    assert listed.status == 200, listed
    present = {item["instance"]["id"] for item in listed.json()["instances"]}
    missing = [iid for iid in ids if iid not in present]
    assert not missing, f"{len(missing)} of {len(ids)} acknowledged creates lost: {missing[:20]}"
    for iid in ids:
        got = s.admin("GET", f"/v1/instances/{iid}")
        assert got.status == 200, (iid, got)
        g = s.get("/latest/meta-data/instance-id", source=addr_of[iid])
        assert g.status == 200 and g.text == iid, (iid, addr_of[iid], g)


# ---------------------------------------------------------------- --max-instances


def test_max_instances_refuses_growth_with_507(make_server):
    s = make_server(extra_args=["--max-instances", "3"])
    rejected = lambda: metric_sum(s.metrics(), "admin_requests_rejected_total",  # noqa: E731
                                  reason="insufficient_storage")
    before = rejected()
    for n in range(1, 4):
        s.put_instance(instance(f"i-cap{n}", f"127.0.7.{n + 1}"), expect=(201,))

    r = s.admin("PUT", "/v1/instances/i-cap4", instance("i-cap4", "127.0.7.5"))
    assert r.status == 507, r
    err = r.error()
    assert err["code"] == "insufficient_storage", err
    assert "--max-instances" in err["message"] and "3" in err["message"], err
    assert s.admin("GET", "/v1/instances/i-cap4").status == 404
    assert s.get("/latest/meta-data/instance-id", source="127.0.7.5").status == 404
    assert rejected() == before + 1

    # Replacing an existing instance does not grow the store: allowed.
    rec = instance("i-cap2", "127.0.7.3", instance_type="m5.large")
    r = s.admin("PUT", "/v1/instances/i-cap2", rec)
    assert r.status == 200, r
    assert s.get("/latest/meta-data/instance-type", source="127.0.7.3").text == "m5.large"
    r = s.admin("PATCH", "/v1/instances/i-cap3", json.dumps({"tags": {"Name": "still"}}),
                headers=MERGE_PATCH)
    assert r.status == 200, r

    # An import that would grow past the limit is refused as a whole.
    body = (json.dumps(instance("i-cap1", "127.0.7.2")) + "\n" +
            json.dumps(instance("i-cap5", "127.0.7.6")) + "\n").encode()
    r = s.admin("POST", "/v1/instances:import", body,
                headers={"Content-Type": "application/x-ndjson"})
    assert r.status == 507, r
    assert r.error()["code"] == "insufficient_storage"
    assert s.admin("GET", "/v1/instances/i-cap5").status == 404
    assert rejected() == before + 2

    # Deleting frees room for a new one.
    assert s.admin("DELETE", "/v1/instances/i-cap1").status == 204
    s.put_instance(instance("i-cap4", "127.0.7.5"), expect=(201,))
    assert s.get("/latest/meta-data/instance-id", source="127.0.7.5").text == "i-cap4"
    assert len(s.admin("GET", "/v1/instances").json()["instances"]) == 3


# ---------------------------------------------------------------- resync on a gap


def test_gap_in_the_feed_resyncs_and_keeps_read_your_writes(make_server):
    s = make_server()
    s.put_instance(instance("i-gap1", "127.0.8.2"), expect=(201,))
    assert s.get("/latest/meta-data/instance-id", source="127.0.8.2").text == "i-gap1"
    resyncs_before = metric_sum(s.metrics(), "feed_resyncs_total")
    assert resyncs_before >= 1  # the start-up load counts as one
    log_before = s.log()

    # A hand edit of the store: the revision jumps by 5 with no changes rows.
    with sqlite3.connect(str(s.store_path), timeout=10) as db:
        db.execute("UPDATE meta SET value = value + 5 WHERE key = 'revision'")
    db.close()

    r = s.admin("PUT", "/v1/instances/i-gap2", instance("i-gap2", "127.0.8.3"))
    assert r.status == 201, r
    assert s.get("/latest/meta-data/instance-id", source="127.0.8.3").text == "i-gap2"
    assert s.get("/latest/meta-data/instance-id", source="127.0.8.2").text == "i-gap1"
    r2 = s.admin("PATCH", "/v1/instances/i-gap2", json.dumps({"tags": {"Name": "after-gap"}}),
                 headers=MERGE_PATCH)
    assert r2.status == 200, r2
    assert etag_revision(r2) > etag_revision(r)
    assert s.get("/latest/meta-data/tags/instance/Name", source="127.0.8.3").text == "after-gap"

    assert metric_sum(s.metrics(), "feed_resyncs_total") > resyncs_before
    # The server's stderr (the harness logs stdout+stderr to a file) says why.
    new_log = s.log()[len(log_before):] if s.log().startswith(log_before) else s.log()
    assert "gap in the change feed" in new_log, new_log
    assert "loaded 1 instances at revision" in new_log or "loaded 2 instances at revision" \
        in new_log, new_log
