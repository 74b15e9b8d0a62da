"""The admin API on TCP: the bearer token is checked on the request header,
before any body byte is read; off loopback the listener speaks TLS or the
server refuses to start; the CLI speaks https:// and checks the server's
certificate. Real binary, loopback only; the certificate is made with the
openssl command line tool."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from openimds_harness import (Server, clean_env, instance, metric_sum, parse_metrics,
                              split_endpoint)

TOKEN = "an-admin-token-of-enough-length-0123456789"


@dataclass
class TcpAdminServer(Server):
    """A Server whose admin API listens on 127.0.0.1 (TLS when cert is set)."""
    cert: Optional[Path] = None
    key: Optional[Path] = None

    @property
    def token_file(self) -> Path:
        return self.workdir / "admin.token"

    def command(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_file.write_text(TOKEN + "\n")
        self.token_file.chmod(0o600)
        cmd = super().command()
        i = cmd.index("--admin")
        cmd[i + 1] = "127.0.0.1:0"
        cmd += ["--admin-token-file", str(self.token_file)]
        if self.cert:
            cmd += ["--admin-tls-cert", str(self.cert), "--admin-tls-key", str(self.key)]
        return cmd

    @property
    def admin_tcp(self) -> tuple[str, int]:
        return split_endpoint(self.ready["admin"])

    def metrics(self) -> dict[str, float]:
        status, body = self.tcp_admin("GET", "/metrics")
        assert status == 200, body
        return parse_metrics(body.decode())

    def tcp_admin(self, method: str, target: str, body: Optional[bytes] = None,
                  token: Optional[str] = TOKEN) -> tuple[int, bytes]:
        host, port = self.admin_tcp
        if self.cert:
            ctx = ssl.create_default_context(cafile=str(self.cert))
            conn = http.client.HTTPSConnection(host, port, timeout=10, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=10)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, target, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()


@pytest.fixture
def tcp_server(binary, workdir):
    s = TcpAdminServer(binary=binary, workdir=workdir / "tcp").start()
    yield s
    if s.proc is not None:
        s.stop()


def make_certificate(workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "admin.crt", workdir / "admin.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    key.chmod(0o600)
    return cert, key


def read_reply(s: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_an_upload_without_the_token_is_refused_before_its_body(tcp_server):
    """60 MiB announced, a few bytes sent: the 401 comes at once and the
    connection closes; the server never waits for (or buffers) the body."""
    host, port = tcp_server.admin_tcp
    before = metric_sum(tcp_server.metrics(), "admin_auth_rejected_total")
    for auth in ("", "Authorization: Bearer wrong-token-of-some-length-0000\r\n"):
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"POST /v1/instances:import HTTP/1.1\r\nHost: x\r\n" + auth.encode() +
                      b"Content-Type: application/x-ndjson\r\nContent-Length: 62914560\r\n\r\n" +
                      b"{" * 1000)
            reply = read_reply(s)  # times out (5 s) if the server waits for the body
        assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
        assert b"Connection: close" in reply, reply
        assert b'"code":"unauthenticated"' in reply, reply
    assert metric_sum(tcp_server.metrics(), "admin_auth_rejected_total") == before + 2
    # With the token the same route takes its body.
    line = json.dumps(instance("i-tcp", "127.0.0.2")).encode()
    status, body = tcp_server.tcp_admin("POST", "/v1/instances:import", line + b"\n")
    assert status == 200, body
    assert json.loads(body)["imported"] == 1


def test_an_admin_listener_off_loopback_needs_tls(binary, workdir):
    token = workdir / "t"
    token.write_text(TOKEN)
    token.chmod(0o600)
    base = [str(binary), "serve", "--store", f"sqlite:{workdir}/s.db", "--listen", "127.0.0.1:0",
            "--admin-token-file", str(token)]
    # Refused before anything binds: no traffic leaves loopback.
    p = subprocess.run(base + ["--admin", "0.0.0.0:0"], capture_output=True, text=True,
                       timeout=30, cwd=workdir)
    assert p.returncode == 2, p
    assert "--admin-tls-cert" in p.stderr and "0.0.0.0:0" in p.stderr, p.stderr
    cert, key = make_certificate(workdir)
    p = subprocess.run(base + ["--admin", "0.0.0.0:0", "--admin-tls-cert", str(cert)],
                       capture_output=True, text=True, timeout=30, cwd=workdir)
    assert p.returncode == 2 and "go together" in p.stderr, p
    key.chmod(0o644)
    p = subprocess.run(base + ["--admin", "127.0.0.1:0", "--admin-tls-cert", str(cert),
                               "--admin-tls-key", str(key)],
                       capture_output=True, text=True, timeout=30, cwd=workdir)
    assert p.returncode == 2 and "chmod 600" in p.stderr, p


def test_the_admin_api_over_tls(binary, workdir):
    cert, key = make_certificate(workdir)
    server = TcpAdminServer(binary=binary, workdir=workdir / "tls", cert=cert, key=key).start()
    try:
        host, port = server.admin_tcp
        endpoint = f"https://127.0.0.1:{port}"
        record = workdir / "vm.json"
        record.write_text(json.dumps(instance("i-tls", "127.0.0.2")))

        def cli(*args: str, ca: Optional[Path] = cert) -> subprocess.CompletedProcess:
            extra = ["--ca-file", str(ca)] if ca else []
            return subprocess.run([str(binary), "instance", "--admin", endpoint, "--token-file",
                                   str(server.token_file), *extra, *args],
                                  capture_output=True, text=True, timeout=30,
                                  env=clean_env())

        p = cli("put", str(record))
        assert p.returncode == 0, p
        p = cli("get", "i-tls")
        assert p.returncode == 0 and json.loads(p.stdout)["id"] == "i-tls", p
        # A certificate the client does not trust: refused, nothing sent.
        p = cli("get", "i-tls", ca=None)
        assert p.returncode != 0 and "TLS handshake failed" in p.stderr, p
        # Plain HTTP to the TLS port gets no answer, and is counted.
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not read_reply(s).startswith(b"HTTP/1.1 200")
        assert metric_sum(server.metrics(), "http_rejected_total", listener="admin",
                          reason="tls_handshake") >= 2
        # Guests are served as ever.
        assert server.get("/latest/meta-data/instance-id", source="127.0.0.2").text == "i-tls"
    finally:
        server.stop()
