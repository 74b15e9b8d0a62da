"""The admin API's refusals in its own shape, and a full disk an operator can
recover from through the API. Real binary; the full disk is a real tmpfs
(needs root, as CI has; skipped otherwise)."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from openimds_harness import b64, instance

LIMIT = 64 * 1024 * 1024  # the admin listener's body limit (bulk imports)


def unix_raw(path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_an_import_over_the_body_limit_gets_the_json_error(server):
    reply = unix_raw(server.admin_path,
                     b"POST /v1/instances:import HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-ndjson\r\n"
                     b"Content-Length: " + str(LIMIT + 1).encode() + b"\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply[:300]
    assert b"Content-Type: application/json" in head, head
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large", error
    assert str(LIMIT) in error["message"], error


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                        str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> None:
    block = b"f" * 65536
    with open(path, "wb") as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError:
            pass


def test_a_full_disk_is_reported_and_deletes_free_it(make_server, workdir):
    with tmpfs(workdir / "s" / "store", "40m") as store_dir:
        server = make_server("s")
        try:
            server.put_instance(instance("i-keep", "127.0.0.2"))
            server.put_instance(instance("i-gone", "127.0.0.3"))
            assert server.admin("GET", "/readyz").text == "ready\n"
            assert (store_dir / "openimds.db.reserve").exists()

            fill(store_dir / "filler")
            big = instance("i-big", "127.0.0.4")
            big["user_data"] = b64(os.urandom(12 * 1024))
            r = server.admin("PUT", "/v1/instances/i-big", big)
            assert r.status == 507, r
            assert r.json()["error"]["code"] == "insufficient_storage", r
            assert "only deletes are accepted" in r.json()["error"]["message"], r
            ready = server.admin("GET", "/readyz")
            assert ready.status == 200 and ready.text.startswith("degraded: storage full"), ready

            # The operator frees space through the API.
            r = server.admin("DELETE", "/v1/instances/i-gone")
            assert r.status in (200, 204), r
            assert server.admin("GET", "/v1/instances/i-gone").status == 404
            assert server.admin("PUT", "/v1/instances/i-big", big).status == 507

            (store_dir / "filler").unlink()
            r = server.admin("PUT", "/v1/instances/i-big", big)
            assert r.status in (200, 201), r
            assert server.admin("GET", "/readyz").text == "ready\n"
            assert server.get("/latest/meta-data/instance-id", source="127.0.0.2").text == "i-keep"
            assert "released the" in server.log() and "room again" in server.log()
        finally:
            server.stop()


def test_a_record_body_over_its_limit_is_refused_before_it_is_read(server):
    """A PUT announcing 50 MiB gets its 413 on the header alone: nothing of
    the body is sent, and the answer comes (read_reply would time out if the
    server waited for the body)."""
    reply = unix_raw(server.admin_path,
                     b"PUT /v1/instances/i-big HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: 52428800\r\n\r\n{\"id\":")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply[:300]
    assert b"Connection: close" in head, head
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large", error
    assert "52428800 bytes" in error["message"], error
    assert server.admin("GET", "/v1/instances/i-big").status == 404
