"""The admin unix socket belongs to one `openimds serve`: a second one given
the same path fails at start, naming it, instead of unlinking the live
socket and taking the admin API over. A socket file nobody answers on (left
by a process that was killed) is replaced. Real binaries, loopback only."""
from __future__ import annotations

import subprocess

from openimds_harness import Proxy, instance, metric_sum, write_keys


def second_serve(binary, workdir, admin_path) -> subprocess.CompletedProcess:
    (workdir / "second").mkdir(exist_ok=True)
    return subprocess.run(
        [str(binary), "serve", "--store", f"sqlite:{workdir / 'second' / 'store.db'}",
         "--admin", f"unix:{admin_path}", "--listen", "127.0.0.1:0", "--threads", "1",
         "--ready-file", str(workdir / "second" / "ready.json")],
        capture_output=True, timeout=30, cwd=workdir, text=True, stdin=subprocess.DEVNULL)


def test_a_live_admin_socket_is_not_taken_over(server, binary, workdir):
    server.put_instance(instance("i-first", "127.0.0.7"))
    p = second_serve(binary, workdir, server.admin_path)
    assert p.returncode != 0, p
    out = p.stderr + p.stdout
    assert f"address already in use: {server.admin_path}" in out, out
    # The first server still owns its admin API (the same store answers).
    assert server.proc.poll() is None, server.log()
    assert server.admin_path.is_socket()
    r = server.admin("GET", "/v1/instances/i-first")
    assert r.status == 200 and r.json()["id"] == "i-first", r


def test_a_stale_admin_socket_is_replaced(server):
    server.put_instance(instance("i-kept", "127.0.0.8"))
    server.kill()  # SIGKILL: the socket file stays, with nobody behind it
    assert server.admin_path.is_socket()
    server.start()
    r = server.admin("GET", "/v1/instances/i-kept")
    assert r.status == 200, r


def test_a_proxy_metrics_socket_is_not_taken_over(server, binary, workdir):
    keys = workdir / "proxy.keys"
    write_keys(keys, ("a", "secret-of-key-a-0123456789"))
    host, port = server.guest_address()
    first = Proxy(binary, workdir / "first", f"{host}:{port}", keys, "default", "127.0.0.2")
    first.start()
    try:
        p = subprocess.run([str(binary), "proxy", "--listen", "127.0.0.1:0,network=default",
                            "--upstream", f"{host}:{port}", "--key-file", str(keys),
                            "--metrics", f"unix:{first.metrics_sock}"],
                           capture_output=True, timeout=30, cwd=workdir, text=True,
                           stdin=subprocess.DEVNULL)
        assert p.returncode != 0, p
        out = p.stderr + p.stdout
        assert f"address already in use: {first.metrics_sock}" in out, out
        assert first.proc.poll() is None, first.log()
        assert metric_sum(first.metrics(), "proxy_connections_total") >= 0
    finally:
        first.stop()
