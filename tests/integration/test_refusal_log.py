"""Refusal log lines are limited per call site, and what a site's budget
held back is summarised ("N more refusals of kind K in the last 10 s")
instead of being dropped: the summary comes even when nothing is refused
after the burst, and a flood of one kind does not hide the lines of
another. Real binary on loopback."""
from __future__ import annotations

import re

from openimds_harness import raw_exchange, raw_status, wait_for

BURST = 40
SUMMARY = re.compile(rb"(\d+) more refusals of kind metadata \(metadata_service\.cc:\d+\) "
                     rb"in the last 10 s")


def no_flavour(server, i: int) -> None:
    host, port = server.guest_address()
    reply = raw_exchange(host, port, f"GET /burst-{i} HTTP/1.1\r\nHost: x\r\n"
                         "Connection: close\r\n\r\n".encode(), source="127.0.0.2")
    assert raw_status(reply) == 404, reply[:200]


def test_a_burst_of_refusals_is_summarised_not_dropped(server):
    for i in range(BURST):
        no_flavour(server, i)
    # Another kind right after the flood still gets its own line.
    r = server.get("/latest/meta-data/instance-id", source="127.0.0.3")
    assert r.status == 404, r

    def log() -> bytes:
        return server.log_path.read_bytes()

    wait_for("the summary of the held-back lines",
             lambda: SUMMARY.search(log()) is not None, server.proc, server.log_path,
             timeout=60)
    text = log()
    written = len(re.findall(rb"no flavour for /burst-\d+", text))
    held = sum(int(n) for n in SUMMARY.findall(text))
    assert written + held == BURST, (written, held)
    assert 1 <= written < BURST, written
    assert b"127.0.0.3" in text  # the unknown caller's line
