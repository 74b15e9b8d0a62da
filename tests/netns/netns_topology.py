"""Network namespaces for the proxy end-to-end test, built and torn down here.

Everything lives in namespaces this module creates (names oimds-<pid>-*),
joined by veth pairs among themselves only: no interface is attached to the
host's real ones, no namespace has a default route, and guest namespaces
resolve names against their own loopback. Processes are started with
`ip netns exec` (which execs, so the PID is the program's) and stopped by PID.

    guest-a (10.0.0.5) --veth-- host:ha 10.0.0.1  nft DNAT 169.254.169.254:80 -> 10.0.0.1:9697
      ctr-a (172.17.0.2) behind guest-a (NAT), for the hop-limit check
    guest-b (10.0.0.5) --veth-- host:hb 10.0.0.1 + 169.254.169.254/32 (proxy listens there)
    host:hs0 10.255.0.1 --veth-- server:s0 10.255.0.2  (openimds serve, mode=proxy listeners)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

PREFIX = f"oimds-{os.getpid()}-"


def run(*cmd: str, check: bool = True, timeout: float = 30,
        input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    p = subprocess.run(list(cmd), capture_output=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): "
                           f"{p.stderr.decode(errors='replace')}")
    return p


def _die_with_parent() -> None:
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def usable(tools: tuple = ("ip", "nft", "curl"), nft: bool = True) -> Optional[str]:
    """None if this machine can run a namespace test needing `tools` (and a
    working nftables inside a namespace when `nft`), else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces" + (", nftables)" if nft else ")")
    for tool in tools:
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed"
    probe = PREFIX + "probe"
    p = run("ip", "netns", "add", probe, check=False)
    if p.returncode != 0:
        return f"ip netns unavailable: {p.stderr.decode(errors='replace').strip()}"
    try:
        if nft:
            p = run("ip", "netns", "exec", probe, "nft", "list", "ruleset", check=False)
            if p.returncode != 0:
                return f"nft unusable in a namespace: {p.stderr.decode(errors='replace').strip()}"
    finally:
        run("ip", "netns", "del", probe, check=False)
    return None


class Namespaces:
    """The network namespaces a test creates, each with its loopback up and
    resolving names nowhere but there (/etc/netns/NAME/resolv.conf), and
    their removal (also after failures)."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self._etc_dirs: list[Path] = []
        self._made_etc_netns = not Path("/etc/netns").exists()

    def add(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self.created.append(name)
        etc = Path("/etc/netns") / name
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        self._etc_dirs.append(etc)
        run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")

    def delete_all(self) -> None:
        for name in self.created:
            run("ip", "netns", "del", name, check=False)
        for etc in self._etc_dirs:
            shutil.rmtree(etc, ignore_errors=True)
        if self._made_etc_netns:
            try:
                Path("/etc/netns").rmdir()  # only if empty: someone else may use it now
            except OSError:
                pass


class Topology:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.ns = {k: PREFIX + k for k in ("server", "host", "guest-a", "guest-b", "ctr-a")}
        self.procs: list[subprocess.Popen] = []
        self._namespaces = Namespaces()

    # ---- building

    def build(self) -> None:
        ns = self.ns
        for name in ns.values():
            self._namespaces.add(name)
        self.veth("server", "s0", "host", "hs0")
        self.veth("host", "ha", "guest-a", "eth0")
        self.veth("host", "hb", "guest-b", "eth0")
        self.veth("guest-a", "gc", "ctr-a", "eth0")
        self.sh("server", "ip addr add 10.255.0.2/30 dev s0")
        self.sh("host", "ip addr add 10.255.0.1/30 dev hs0")
        # Both tenant networks are 10.0.0.0/24 with the gateway at .1: the
        # proxies bind to their interface, so replies find the right guest.
        self.sh("host", "ip addr add 10.0.0.1/24 dev ha")
        self.sh("host", "ip addr add 10.0.0.1/24 dev hb")
        for conf in ("all", "default", "ha", "hb", "hs0"):
            self.sh("host", f"sysctl -qw net.ipv4.conf.{conf}.rp_filter=0")
        for g in ("guest-a", "guest-b"):
            self.sh(g, "ip addr add 10.0.0.5/24 dev eth0")
        # guest-a reaches the metadata address through its gateway (DNAT on
        # the host); guest-b on its link (the host holds the address on hb).
        self.sh("guest-a", "ip route add 169.254.169.254/32 via 10.0.0.1")
        self.sh("guest-b", "ip route add 169.254.169.254/32 dev eth0")
        # A container behind guest-a, NATed to 10.0.0.5 like Docker's bridge.
        self.sh("guest-a", "ip addr add 172.17.0.1/24 dev gc")
        self.sh("ctr-a", "ip addr add 172.17.0.2/24 dev eth0")
        self.sh("ctr-a", "ip route add 169.254.169.254/32 via 172.17.0.1")
        self.sh("guest-a", "sysctl -qw net.ipv4.ip_forward=1")
        run("ip", "netns", "exec", ns["guest-a"], "nft", "-f", "-", input=(
            b"table ip ctrnat {\n chain post {\n  type nat hook postrouting priority srcnat;"
            b" policy accept;\n  oifname \"eth0\" masquerade\n }\n}\n"))
        # Count what reaches guest-a from the metadata address, by TTL.
        run("ip", "netns", "exec", ns["guest-a"], "nft", "-f", "-", input=(
            b"table inet ttlwatch {\n chain in {\n  type filter hook input priority 0;"
            b" policy accept;\n"
            b"  ip saddr 169.254.169.254 tcp sport 80 ip ttl 1 counter\n"
            b"  ip saddr 169.254.169.254 tcp sport 80 ip ttl != 1 counter\n }\n}\n"))

    def veth(self, ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
        tag = os.getpid() % 100000
        tmp_a, tmp_b = f"oi{tag}{dev_a}"[:15], f"oj{tag}{dev_b}"[:15]
        # Created inside ns_a directly, so nothing appears in the host namespace.
        self.sh(ns_a, f"ip link add {tmp_a} type veth peer name {tmp_b} netns {self.ns[ns_b]}")
        self.sh(ns_a, f"ip link set {tmp_a} name {dev_a}")
        self.sh(ns_b, f"ip link set {tmp_b} name {dev_b}")
        self.sh(ns_a, f"ip link set {dev_a} up")
        self.sh(ns_b, f"ip link set {dev_b} up")

    # ---- running things

    def sh(self, ns: str, command: str, check: bool = True,
           timeout: float = 30) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.ns[ns], "sh", "-c", command, check=check,
                   timeout=timeout)

    def exec(self, ns: str, *cmd: str, check: bool = False, timeout: float = 60,
             input: Optional[bytes] = None) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.ns[ns], *cmd, check=check, timeout=timeout,
                   input=input)

    def start(self, ns: str, cmd: list[str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as f:
            p = subprocess.Popen(["ip", "netns", "exec", self.ns[ns], *cmd],
                                 stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                 preexec_fn=_die_with_parent)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen, sig: int = signal.SIGTERM) -> Optional[int]:
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode

    # ---- teardown (also after failures)

    def destroy(self) -> None:
        for p in list(self.procs):
            self.stop(p)
        self._namespaces.delete_all()


def wait_for_file(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {timeout}s:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
