"""`openimds proxy` holds its listening address alone: a second proxy on the
same address fails at start, naming it, instead of taking a share of the
guests. Real binaries on loopback only."""
from __future__ import annotations

import subprocess

from openimds_harness import Proxy, write_keys

GUEST = "127.0.0.2"


def test_a_proxy_address_in_use_is_refused_at_start(server, binary, workdir):
    keys = workdir / "proxy.keys"
    write_keys(keys, ("a", "secret-of-key-a-0123456789"))
    host, port = server.guest_address()
    first = Proxy(binary, workdir / "first", f"{host}:{port}", keys, "default", GUEST).start()
    try:
        p = subprocess.run([str(binary), "proxy", "--listen", f"{first.endpoint},network=default",
                            "--upstream", f"{host}:{port}", "--key-file", str(keys)],
                           capture_output=True, timeout=30, cwd=workdir, text=True)
        assert p.returncode != 0, p
        out = (p.stderr + p.stdout).lower()
        assert "address already in use" in out and first.endpoint in out, out
        assert first.proc.poll() is None, first.log()
    finally:
        first.stop()
