"""The per-source connection cap counts an IPv6 guest per /64: a guest
usually owns a whole /64 and may send from any address in it, so a cap per
address would not hold it. IPv4 stays per address.

One network namespace of this test's own (loopback only, no other
interface), holding fd00:64::1 (the listener), fd00:64::2 and fd00:64::3
(one guest's /64) and fd00:65::1 (another /64). The connections start inside
that namespace; the test reads metrics over the admin unix socket. The
namespace is deleted afterwards and the server stopped by PID.
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Optional

import pytest

from netns_topology import Namespaces, _die_with_parent, run, usable, wait_for_file
from openimds_harness import (UnixHTTPConnection, _request, find_binary, metric_sum,
                              parse_metrics)

PREFIX = f"oimds64-{os.getpid()}-"
WHY_NOT = usable(("ip",), nft=False)
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

# Opens `each` connections from every source, sends a request on each and
# says which got an answer and which were closed unanswered.
CLIENT = textwrap.dedent("""
    import json, socket, sys
    port, each, sources = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    socks = []
    for src in sources:
        for _ in range(each):
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.settimeout(10)
            s.bind((src, 0))
            s.connect(("fd00:64::1", port))
            socks.append((src, s))
    out = {src: {"answered": 0, "closed": 0} for src in sources}
    for src, s in socks:
        try:
            s.sendall(b"GET /latest/meta-data/instance-id HTTP/1.1\\r\\n"
                      b"Host: 169.254.169.254\\r\\n\\r\\n")
            data = s.recv(4096)
        except (ConnectionError, OSError):
            data = b""
        out[src]["answered" if data.startswith(b"HTTP/1.1 ") else "closed"] += 1
    for _, s in socks:
        s.close()
    print(json.dumps(out))
""")


class Lab:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.ns = PREFIX + "ns"
        self.namespaces = Namespaces()
        self.server: Optional[subprocess.Popen] = None
        self.admin = workdir / "admin.sock"

    def build(self) -> None:
        self.namespaces.add(self.ns)
        for addr in ("fd00:64::1/64", "fd00:64::2/128", "fd00:64::3/128", "fd00:65::1/128"):
            run("ip", "-n", self.ns, "-6", "addr", "add", addr, "dev", "lo", "nodad")

    def start(self, cap: int) -> None:
        ready = self.dir / "ready.json"
        cmd = [str(find_binary()), "serve", "--store", f"sqlite:{self.dir / 'store.db'}",
               "--admin", f"unix:{self.admin}", "--ready-file", str(ready),
               "--threads", "1", "--listen", "[fd00:64::1]:8080",
               "--max-connections-per-source", str(cap)]
        log = open(self.dir / "serve.log", "wb")
        self.server = subprocess.Popen(["ip", "netns", "exec", self.ns, *cmd],
                                       stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        log.close()
        wait_for_file(ready, self.server, self.dir / "serve.log")

    def client(self, each: int, *sources: str) -> dict:
        p = run("ip", "netns", "exec", self.ns, "python3", "-c", CLIENT, "8080", str(each),
                *sources, timeout=60)
        return json.loads(p.stdout)

    def refused_per_source(self) -> float:
        reply = _request(UnixHTTPConnection(str(self.admin)), "GET", "/metrics", None, {})
        assert reply.status == 200, reply
        return metric_sum(parse_metrics(reply.text), "http_connections_refused_total",
                          reason="per_source")

    def destroy(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.namespaces.delete_all()


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    try:
        lab.build()
        yield lab
    finally:
        lab.destroy()


def test_one_ipv6_slash64_shares_one_per_source_cap(lab):
    lab.start(cap=4)
    # Four connections each from two addresses of one /64, and from another
    # /64: that guest's /64 holds four in all; the other /64 has its own four.
    got = lab.client(4, "fd00:64::2", "fd00:64::3", "fd00:65::1")
    assert got["fd00:64::2"]["answered"] + got["fd00:64::3"]["answered"] == 4, got
    assert got["fd00:64::2"]["closed"] + got["fd00:64::3"]["closed"] == 4, got
    assert got["fd00:65::1"] == {"answered": 4, "closed": 0}, got
    assert lab.refused_per_source() == 4
    log = (lab.dir / "serve.log").read_text(errors="replace")
    assert "connections from that /64 are open" in log, log
