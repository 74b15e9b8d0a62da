"""Proxy key rotation without a restart: SIGHUP makes `openimds serve` re-read
--proxy-keys-file (and --neutron-secret-file) and `openimds proxy` re-read
--key-file, while both keep serving (docs/proxy.md §2).

The real binaries on loopback only: a server with a mode=proxy listener on
127.0.0.1:0 trusting 127.0.0.1, a proxy on 127.0.0.1:0 for network tenant-a
forwarding to it, and a guest played from 127.0.0.5. Processes are signalled
and stopped by PID.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from openimds_harness import Proxy, instance, metric_sum, wait_for, write_keys

NETWORK = "tenant-a"
GUEST = "127.0.0.5"
IID = "i-0keyreload00000a1"
TARGET = "/latest/meta-data/instance-id"
KEY_A = ("a", "secret-of-key-a-0123456789")
KEY_B = ("b", "secret-of-key-b-9876543210")
REJECTED = "identity_rejected_total"


def signed_get(server, key: tuple[str, str], target: str = TARGET, ts: Optional[int] = None):
    """A GET straight to the server's proxy-mode listener from 127.0.0.1 (a
    trusted peer), carrying identity headers signed in Python exactly as
    auth/request_signer.h specifies."""
    kid, secret = key
    ts = int(time.time()) if ts is None else ts
    msg = f"openimds-identity-v1\nGET\n{target}\n{NETWORK}\n{GUEST}\n{ts}"
    sig = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
    headers = {"X-OpenIMDS-Network": NETWORK, "X-OpenIMDS-Source": GUEST,
               "X-OpenIMDS-Timestamp": str(ts), "X-OpenIMDS-Key-Id": kid,
               "X-OpenIMDS-Signature": sig}
    return server.get(target, headers=headers, source="127.0.0.1")


def reloads(metrics: dict[str, float], name: str, result: str) -> float:
    return metric_sum(metrics, name, result=result)


def sighup_server(server, result: str) -> None:
    """SIGHUP by PID; returns once the server counted the reload as `result`."""
    name = "identity_key_reload_total"
    before = reloads(server.metrics(), name, result)
    server.proc.send_signal(signal.SIGHUP)
    wait_for(f"serve to count a reload ({result})",
             lambda: reloads(server.metrics(), name, result) == before + 1,
             server.proc, server.log_path)


def sighup_proxy(proxy: Proxy, result: str) -> None:
    name = "proxy_key_reload_total"
    before = reloads(proxy.metrics(), name, result)
    proxy.proc.send_signal(signal.SIGHUP)
    wait_for(f"the proxy to count a reload ({result})",
             lambda: reloads(proxy.metrics(), name, result) == before + 1,
             proxy.proc, proxy.log_path)


@pytest.fixture
def system(binary, workdir, make_server):
    """(server, proxy, server keys file, proxy keys file), both signing/accepting key a."""
    server_keys = workdir / "server.keys"
    proxy_keys = workdir / "proxy.keys"
    write_keys(server_keys, KEY_A)
    write_keys(proxy_keys, KEY_A)
    server = make_server(listens=["127.0.0.1:0,mode=proxy"],
                         extra_args=["--trusted-proxy", "127.0.0.1/32",
                                     "--proxy-keys-file", str(server_keys)])
    server.put_instance(instance(IID, GUEST, network=NETWORK))
    host, port = server.guest_address()
    proxy = Proxy(binary, workdir / "proxy", f"{host}:{port}", proxy_keys, NETWORK, GUEST).start()
    try:
        yield server, proxy, server_keys, proxy_keys
    finally:
        proxy.stop()


def assert_served(proxy: Proxy) -> None:
    r = proxy.get()
    assert (r.status, r.text) == (200, IID), (r, proxy.log())


def test_rotation_with_sighup_keeps_guests_served(system):
    server, proxy, server_keys, proxy_keys = system
    assert_served(proxy)
    m = server.metrics()
    assert reloads(m, "identity_key_reload_total", "ok") == 0
    assert reloads(m, "identity_key_reload_total", "error") == 0

    # (1) the server accepts a and b; the proxy still signs with a.
    write_keys(server_keys, KEY_A, KEY_B)
    sighup_server(server, "ok")
    assert_served(proxy)
    assert signed_get(server, KEY_B).status == 200  # b is accepted now

    # (2) the proxy switches to b.
    write_keys(proxy_keys, KEY_B)
    sighup_proxy(proxy, "ok")
    accepted_before = metric_sum(server.metrics(), "identity_accepted_total", via="proxy")
    assert_served(proxy)
    assert metric_sum(server.metrics(), "identity_accepted_total", via="proxy") \
        == accepted_before + 1

    # (3) the server drops a.
    write_keys(server_keys, KEY_B)
    sighup_server(server, "ok")
    assert_served(proxy)
    m = server.metrics()
    assert reloads(m, "identity_key_reload_total", "ok") == 2
    assert reloads(m, "identity_key_reload_total", "error") == 0
    assert reloads(proxy.metrics(), "proxy_key_reload_total", "ok") == 1

    # A request still signed with a, straight to the server, is refused.
    before = metric_sum(server.metrics(), REJECTED, reason="unknown_key")
    r = signed_get(server, KEY_A)
    assert r.status == 403, r
    assert metric_sum(server.metrics(), REJECTED, reason="unknown_key") == before + 1
    # The same request signed with b passes: the refusal is the key, not the request.
    assert signed_get(server, KEY_B).status == 200

    # The logs name the key ids, never a secret.
    server_log, proxy_log = server.log(), proxy.log()
    assert "now accepting proxy keys a, b" in server_log, server_log
    assert "now accepting proxy keys b" in server_log, server_log
    assert "signing with key b" in proxy_log, proxy_log
    for secret in (KEY_A[1], KEY_B[1]):
        assert secret not in server_log and secret not in proxy_log


@pytest.mark.parametrize("bad", ["malformed", "short_secret", "world_readable", "missing"])
def test_bad_server_keys_file_keeps_the_old_keys(system, bad):
    server, proxy, server_keys, _ = system
    assert_served(proxy)
    if bad == "malformed":
        server_keys.write_text("this-line-has-no-secret\n")
    elif bad == "short_secret":
        server_keys.write_text("b short\n")
    elif bad == "world_readable":
        write_keys(server_keys, KEY_B, mode=0o644)
    else:
        server_keys.unlink()
    sighup_server(server, "error")
    m = server.metrics()
    assert reloads(m, "identity_key_reload_total", "ok") == 0
    assert_served(proxy)  # key a still accepted
    assert signed_get(server, KEY_A).status == 200
    if bad == "world_readable":
        assert signed_get(server, KEY_B).status == 403  # b was not installed
    log = server.log()
    lines = [l for l in log.splitlines() if "key reload failed" in l]
    assert len(lines) == 1, log
    assert str(server_keys) in lines[0], lines[0]
    assert KEY_B[1] not in log and KEY_A[1] not in log

    # Fixing the file and signalling again recovers.
    write_keys(server_keys, KEY_A, KEY_B)
    sighup_server(server, "ok")
    assert signed_get(server, KEY_B).status == 200


def test_bad_proxy_key_file_keeps_signing_with_the_old_key(system):
    server, proxy, _, proxy_keys = system
    proxy_keys.write_text("a\n")  # no secret
    sighup_proxy(proxy, "error")
    assert reloads(proxy.metrics(), "proxy_key_reload_total", "ok") == 0
    assert_served(proxy)  # still signs with a, which the server accepts
    lines = [l for l in proxy.log().splitlines() if "key reload failed" in l]
    assert len(lines) == 1 and str(proxy_keys) in lines[0], proxy.log()


def test_requests_keep_flowing_during_repeated_reloads(system):
    """Guests are served while both processes reload many times: no request
    fails, and each process is still the same PID afterwards."""
    server, proxy, server_keys, proxy_keys = system
    server_pid, proxy_pid = server.proc.pid, proxy.proc.pid
    write_keys(server_keys, KEY_A, KEY_B)
    for i in range(20):
        write_keys(proxy_keys, KEY_B if i % 2 else KEY_A)
        server.proc.send_signal(signal.SIGHUP)
        proxy.proc.send_signal(signal.SIGHUP)
        assert_served(proxy)
    wait_for("serve's reloads", lambda: reloads(server.metrics(), "identity_key_reload_total",
                                                "ok") >= 1, server.proc, server.log_path)
    assert server.proc.pid == server_pid and proxy.proc.pid == proxy_pid
    assert reloads(server.metrics(), "identity_key_reload_total", "error") == 0
    assert reloads(proxy.metrics(), "proxy_key_reload_total", "error") == 0
