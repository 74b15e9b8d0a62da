"""Test harness: runs the real `openimds serve` on loopback and talks to it.

Everything here targets 127.0.0.0/8 and ::1 only. A server gets port 0 and a
store, admin socket and ready file under its own temporary directory; it is
stopped by PID with SIGTERM and must then exit 0.

The guest API identifies a caller by (listener network, source address), so
one test process plays several guests by binding its client socket to
different loopback addresses (127.0.0.2, 127.0.0.3, ...) before connecting.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]

# Timeouts are generous: the machine running the suite may be busy.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def terminate(proc: subprocess.Popen, what: str, log: Callable[[], str]) -> int:
    """SIGTERM by PID and wait; the exit code. Not stopped within
    STOP_TIMEOUT_S: SIGKILL, then an AssertionError naming `what`, with its log."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{what} did not stop within {STOP_TIMEOUT_S}s of SIGTERM:\n{log()}")
IO_TIMEOUT_S = 10.0

TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the child if the test process dies first (a ctest
    timeout, Ctrl-C), so no server outlives its test run."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def find_binary() -> Path:
    """OPENIMDS_BINARY (set by ctest), else <repo>/build/src/app/openimds."""
    env = os.environ.get("OPENIMDS_BINARY")
    path = Path(env) if env else REPO_ROOT / "build" / "src" / "app" / "openimds"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"openimds binary not found at {path}: build it (ninja -C build openimds) "
            "or set OPENIMDS_BINARY")
    return path


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8 and ::1: the only addresses tests may contact."""
    if host == "::1":
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() for p in parts)


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """'127.0.0.1:8169' / '[::1]:8169' -> (host, port)."""
    host, _, port = endpoint.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


# --------------------------------------------------------------------------
# HTTP plumbing


@dataclass
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict:
        """The admin API's {"error": {"code", "message"}} body."""
        doc = self.json()
        assert isinstance(doc, dict) and "error" in doc, f"not an error body: {self.body!r}"
        return doc["error"]

    def __repr__(self) -> str:  # shows up in assertion messages
        return f"Reply({self.status} {self.reason}, body={self.body[:300]!r})"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket (the admin API's listener)."""

    def __init__(self, path: str, timeout: float = IO_TIMEOUT_S):
        super().__init__("localhost", timeout=timeout)
        self._unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _request(conn: http.client.HTTPConnection, method: str, target: str,
             body: Optional[bytes], headers: dict[str, str]) -> Reply:
    try:
        # skip_accept_encoding: send only the headers the test chose (plus Host,
        # and Content-Length when there is a body).
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, resp.reason, list(resp.getheaders()), data)
    finally:
        conn.close()


def raw_exchange(host: str, port: int, data: bytes, source: Optional[str] = None,
                 timeout: float = IO_TIMEOUT_S) -> bytes:
    """Sends bytes as they are (no client normalisation) and returns everything
    the server sends back until it closes the connection or goes quiet."""
    assert is_loopback(host), host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if source:
            sock.bind((source, 0))
        sock.connect((host, port))
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if _complete_response(b"".join(chunks)):
                break
        return b"".join(chunks)
    finally:
        sock.close()


def _complete_response(data: bytes) -> bool:
    """True once `data` holds one whole HTTP response with Content-Length."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return m is not None and len(rest) >= int(m.group(1))


def raw_status(response: bytes) -> int:
    """Status code of a raw HTTP response (fails the test if there is none)."""
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", response)
    assert m, f"no HTTP status line in {response[:200]!r}"
    return int(m.group(1))


def raw_body(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


# --------------------------------------------------------------------------
# Metrics


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value} (labels as written)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key.strip()] = float(value)
    return out


def metric_sum(metrics: dict[str, float], name: str, **labels: str) -> float:
    """Sum of every series of `name` whose labels include all of `labels`."""
    total = 0.0
    found = False
    for key, value in metrics.items():
        series, _, rest = key.partition("{")
        if series != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        if all(have.get(k) == v for k, v in labels.items()):
            total += value
            found = True
    return total if found else 0.0


def metric_names(metrics: dict[str, float]) -> set[str]:
    return {k.partition("{")[0] for k in metrics}


# --------------------------------------------------------------------------
# Instances


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def instance(iid: str, address: str = "127.0.0.1", network: str = "default",
             mac: Optional[str] = None, **fields: Any) -> dict:
    """A realistic instance record answering from `address` (see docs/instance.md).
    Keyword arguments replace top-level fields."""
    n = sum(int(x) for x in re.findall(r"\d+", iid + address)) % 250 + 2
    mac = mac or f"02:00:00:00:{n // 16:02x}:{n % 256:02x}"
    record: dict[str, Any] = {
        "id": iid,
        "network": network,
        "hostname": f"host-{iid}.example.internal",
        "local_hostname": f"host-{iid}.example.internal",
        "account_id": "123456789012",
        "image_id": "ami-0abcdef1234567890",
        "instance_type": "t3.small",
        "reservation_id": "r-0123456789abcdef0",
        "region": "eu-west-1",
        "availability_zone": "eu-west-1b",
        "availability_zone_id": "euw1-az2",
        "launch_time": "2026-11-25T13:00:00Z",
        "nics": [{
            "mac": mac,
            "device_number": 0,
            "interface_id": "eni-0123456789abcdef0",
            "private_ipv4s": [address],
            "subnet_id": "subnet-0123456789abcdef0",
            "subnet_ipv4_cidr": "127.0.0.0/8",
            "vpc_id": "vpc-0123456789abcdef0",
            "vpc_ipv4_cidr": "127.0.0.0/8",
            "security_groups": ["default"],
            "security_group_ids": ["sg-0123456789abcdef0"],
        }],
        "ssh_keys": [{"name": "test-key",
                      "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestTestTestTestTestTestTestTestTest test-key"}],
        "user_data": b64("#cloud-config\nhostname: " + iid + "\n"),
        "tags": {"Name": iid, "Environment": "test"},
        "iam": {
            "role": "test-role",
            "instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/test-role",
            "instance_profile_id": "AIPATESTTESTTEST0001",
            "credentials": {
                "access_key_id": "ASIATEST" + iid.upper().replace("-", "")[:12].ljust(12, "0"),
                "secret_access_key": "test/secret/" + iid,
                "token": "session-token-" + iid,
                "expiration": "2099-01-01T00:00:00Z",
                "last_updated": "2026-11-25T13:00:00Z",
            },
        },
        "metadata_options": {"http_tokens": "optional", "hop_limit": 1,
                             "http_endpoint": "enabled", "instance_metadata_tags": "enabled"},
    }
    record.update(fields)
    return record


def minimal_instance(iid: str, address: str, mac: str = "02:00:00:00:00:02",
                     network: str = "default") -> dict:
    return {"id": iid, "network": network,
            "nics": [{"mac": mac, "device_number": 0, "private_ipv4s": [address]}]}


# --------------------------------------------------------------------------
# The server


@dataclass
class Server:
    """One `openimds serve` process. Use start()/stop(), or as a context manager."""

    binary: Path
    workdir: Path
    demo: bool = False
    listens: list[str] = field(default_factory=lambda: ["127.0.0.1:0"])
    threads: int = 2
    log_level: str = "info"
    extra_args: list[str] = field(default_factory=list)
    # RLIMIT_NOFILE (soft and hard) to start the server with; None: inherited.
    nofile: Optional[int] = None

    proc: Optional[subprocess.Popen] = None
    ready: dict = field(default_factory=dict)
    starts: int = 0

    @property
    def store_path(self) -> Path:
        return self.workdir / "store" / "openimds.db"

    @property
    def admin_path(self) -> Path:
        return self.workdir / "admin.sock"

    @property
    def admin_endpoint(self) -> str:
        return f"unix:{self.admin_path}"

    @property
    def ready_path(self) -> Path:
        return self.workdir / "ready.json"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"serve-{self.starts}.log"

    def command(self) -> list[str]:
        cmd = [str(self.binary), "serve", "--store", f"sqlite:{self.store_path}",
               "--admin", self.admin_endpoint, "--ready-file", str(self.ready_path),
               "--threads", str(self.threads), "--log-level", self.log_level]
        for spec in self.listens:
            host, _ = split_endpoint(spec.split(",")[0])
            assert is_loopback(host), f"tests listen on loopback only, not {spec}"
            cmd += ["--listen", spec]
        if self.demo:
            cmd.append("--demo")
        return cmd + list(self.extra_args)

    def start(self) -> "Server":
        assert self.proc is None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ready_path.unlink(missing_ok=True)
        self.starts += 1
        log = open(self.log_path, "wb")
        try:
            nofile = self.nofile

            def preexec() -> None:
                _die_with_parent()
                if nofile is not None:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.workdir,
                                         preexec_fn=preexec)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise RuntimeError(f"openimds serve exited with {rc} before it was ready:\n"
                                   f"{self.log()}")
            if self.ready_path.exists():
                try:
                    self.ready = json.loads(self.ready_path.read_text())
                    break
                except ValueError:
                    pass  # renamed into place, so this should not happen; retry
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"openimds serve not ready after {START_TIMEOUT_S}s:\n"
                                   f"{self.log()}")
            time.sleep(0.02)
        assert self.ready.get("pid") == self.proc.pid, self.ready
        return self

    def stop(self, expect_rc: int = 0) -> int:
        """SIGTERM by PID; waits, and checks the exit code."""
        assert self.proc is not None, "not running"
        proc, self.proc = self.proc, None
        rc = terminate(proc, "openimds serve", self.log)
        assert rc == expect_rc, f"openimds serve exited with {rc}:\n{self.log()}"
        return rc

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> "Server":
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            if exc[0] is None:
                self.stop()
            else:
                self.kill()

    # ---- guest API

    def guest_address(self, network: str = "default") -> tuple[str, int]:
        for g in self.ready["guest"]:
            if g["network"] == network:
                return split_endpoint(g["endpoint"])
        raise KeyError(f"no guest listener for network {network}: {self.ready}")

    def base_url(self, network: str = "default") -> str:
        host, port = self.guest_address(network)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def guest(self, method: str, path: str, headers: Optional[dict[str, str]] = None,
              body: Optional[bytes] = None, source: Optional[str] = None,
              network: str = "default") -> Reply:
        """One request on a new connection, from `source` (a loopback address)."""
        host, port = self.guest_address(network)
        assert is_loopback(host)
        if source is not None:
            assert is_loopback(source), source
        conn = http.client.HTTPConnection(
            host, port, timeout=IO_TIMEOUT_S,
            source_address=(source, 0) if source else None)
        return _request(conn, method, path, body, headers or {})

    def get(self, path: str, token: Optional[str] = None, source: Optional[str] = None,
            network: str = "default", headers: Optional[dict[str, str]] = None) -> Reply:
        h = dict(headers or {})
        if token is not None:
            h[TOKEN_HEADER] = token
        return self.guest("GET", path, h, source=source, network=network)

    def token(self, ttl: int = 21600, source: Optional[str] = None,
              network: str = "default") -> str:
        r = self.guest("PUT", "/latest/api/token", {TOKEN_TTL_HEADER: str(ttl)}, body=b"",
                       source=source, network=network)
        assert r.status == 200, r
        return r.text

    def raw(self, data: bytes, source: Optional[str] = None, network: str = "default") -> bytes:
        host, port = self.guest_address(network)
        return raw_exchange(host, port, data, source=source)

    # ---- admin API

    def admin(self, method: str, target: str, body: Any = None,
              headers: Optional[dict[str, str]] = None) -> Reply:
        """`body`: bytes/str sent as is, anything else as JSON."""
        h = dict(headers or {})
        data: Optional[bytes]
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        return _request(UnixHTTPConnection(str(self.admin_path)), method, target, data, h)

    def put_instance(self, record: dict, expect: Iterable[int] = (200, 201)) -> Reply:
        r = self.admin("PUT", f"/v1/instances/{record['id']}", record)
        assert r.status in tuple(expect), r
        return r

    def metrics(self) -> dict[str, float]:
        r = self.admin("GET", "/metrics")
        assert r.status == 200, r
        return parse_metrics(r.text)

    # ---- CLI

    def cli(self, *args: str, input: Optional[bytes] = None,
            admin: Optional[str] = None) -> subprocess.CompletedProcess:
        """`openimds instance --admin unix:... ARGS...`, captured."""
        cmd = [str(self.binary), "instance", "--admin", admin or self.admin_endpoint, *args]
        return subprocess.run(cmd, input=input, capture_output=True, timeout=60,
                              cwd=self.workdir)


def clean_env(**extra: str) -> dict[str, str]:
    """An environment without AWS_* / proxy variables, for client subprocesses:
    no host credentials or config leak into a test, and nothing is proxied."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONDONTWRITEBYTECODE"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.setdefault("PATH", "/usr/bin:/bin")
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env.update(extra)
    return env


# --------------------------------------------------------------------------
# `openimds proxy` on loopback


def rss_kib(pid: int) -> int:
    """A process's resident set (VmRSS) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def write_keys(path: Path, *keys: tuple[str, str], mode: int = 0o600) -> None:
    """Replaces the file in one rename, as an operator's editor or config
    management would, so a reload never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{kid} {secret}\n" for kid, secret in keys))
    tmp.chmod(mode)
    os.replace(tmp, path)


def wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen,
             log: Path, timeout: float = START_TIMEOUT_S) -> None:
    """Polls `check` until true; fails early if the process died."""
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"process exited ({proc.returncode}) while waiting for " \
                                    f"{what}:\n{log.read_text(errors='replace')[-5000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" \
                                            f"{log.read_text(errors='replace')[-5000:]}"
        time.sleep(0.02)


class Proxy:
    """One `openimds proxy` process on loopback."""

    def __init__(self, binary: Path, workdir: Path, upstream: str, key_file: Path,
                 network: str, guest: str, extra_args: Iterable[str] = ()):
        self.guest_source = guest
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ready_path = self.dir / "proxy.ready"
        self.metrics_sock = self.dir / "proxy-metrics.sock"
        self.log_path = self.dir / "proxy.log"
        host, _ = split_endpoint(upstream)
        assert is_loopback(host), upstream
        self.cmd = [str(binary), "proxy", "--listen", f"127.0.0.1:0,network={network}",
                    "--upstream", upstream, "--key-file", str(key_file), "--threads", "2",
                    "--metrics", f"unix:{self.metrics_sock}", "--ready-file",
                    str(self.ready_path), *extra_args]
        self.proc: Optional[subprocess.Popen] = None
        self.endpoint = ""

    def start(self) -> "Proxy":
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.dir,
                                         preexec_fn=_die_with_parent)
        wait_for("the proxy's ready file", self.ready_path.exists, self.proc, self.log_path)
        ready = json.loads(self.ready_path.read_text())
        assert ready["pid"] == self.proc.pid, ready
        self.endpoint = ready["guest"][0]["endpoint"]
        assert is_loopback(split_endpoint(self.endpoint)[0]), self.endpoint
        return self

    def get(self, target: str = "/latest/meta-data/instance-id"):
        host, port = split_endpoint(self.endpoint)
        conn = http.client.HTTPConnection(host, port, timeout=IO_TIMEOUT_S,
                                          source_address=(self.guest_source, 0))
        return _request(conn, "GET", target, None, {})

    def metrics(self) -> dict[str, float]:
        r = _request(UnixHTTPConnection(str(self.metrics_sock)), "GET", "/metrics", None, {})
        assert r.status == 200, r
        return parse_metrics(r.text)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        rc = terminate(proc, "proxy", self.log)
        assert rc == 0, f"proxy exited with {rc}:\n{self.log()}"
