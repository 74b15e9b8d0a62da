"""`serve` and `proxy` share one signal watcher and one ready-file writer
(common::SignalWatcher, common::WriteReadyFile). A SIGUSR2 from outside (the
watcher's own wake-up signal) must not leave SIGTERM unanswered, and a ready
file that cannot be written stops the command, naming the path, instead of
leaving whoever waits for it waiting forever. Real binaries on loopback."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from openimds_harness import Proxy, clean_env, wait_for, write_keys

KEY = ("a", "secret-of-key-a-0123456789")


def pending(pid: int, sig: int) -> bool:
    """True while `sig` waits, undelivered, in the process's shared pending set."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("ShdPnd:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    raise AssertionError(f"no ShdPnd in /proc/{pid}/status")


def stray_sigusr2(proc: subprocess.Popen, log_path: Path) -> None:
    proc.send_signal(signal.SIGUSR2)
    wait_for("the watcher to take SIGUSR2", lambda: not pending(proc.pid, signal.SIGUSR2),
             proc, log_path)


def test_serve_still_drains_on_sigterm_after_a_stray_sigusr2(server):
    stray_sigusr2(server.proc, server.log_path)
    assert server.get("/latest/meta-data/instance-id").status == 404  # still serving
    server.stop()  # SIGTERM; must exit 0 in time


def test_proxy_still_drains_on_sigterm_after_a_stray_sigusr2(server, binary, workdir):
    keys = workdir / "proxy.keys"
    write_keys(keys, KEY)
    host, port = server.guest_address()
    proxy = Proxy(binary, workdir / "proxy", f"{host}:{port}", keys, "default",
                  "127.0.0.2").start()
    try:
        stray_sigusr2(proxy.proc, proxy.log_path)
    finally:
        proxy.stop()  # SIGTERM; must exit 0 in time


def test_an_unwritable_ready_file_stops_serve_and_proxy(binary, workdir):
    ready = workdir / "no-such-dir" / "ready.json"
    keys = workdir / "proxy.keys"
    write_keys(keys, KEY)
    commands = {
        "serve": [str(binary), "serve", "--store", f"sqlite:{workdir}/s.db", "--listen",
                  "127.0.0.1:0", "--admin", f"unix:{workdir}/admin.sock"],
        "proxy": [str(binary), "proxy", "--listen", "127.0.0.1:0,network=default",
                  "--upstream", "127.0.0.1:1", "--key-file", str(keys)],
    }
    for what, cmd in commands.items():
        # A command that ignored the failure would keep running: the timeout
        # ends the test as a failure then.
        p = subprocess.run(cmd + ["--ready-file", str(ready)], capture_output=True, text=True,
                           timeout=30, cwd=workdir, env=clean_env())
        out = p.stderr + p.stdout
        assert p.returncode == 1, (what, p.returncode, out)
        assert f"cannot write the ready file {ready}" in out, (what, out)
        assert not Path(str(ready) + ".tmp").exists()
