"""Every secret file obeys one set of rules (common::ReadSecretFile): serve's
--admin-token-file, --neutron-secret-file and --proxy-keys-file, proxy's
--key-file and the CLI's --token-file. A refused file stops the command at
start with exit code 2 and a message that names the path and the reason,
never the secret. These are the refusals the shared reader added: a file
owned by another user, a secret under 16 bytes, a file over 64 KiB. Real
binary; nothing listens beyond loopback, nothing is contacted."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from openimds_harness import clean_env

SECRET = "Zq7xWv9Kp2Lm8Nb4Rt6Yh3Jd-0123456789"
NOBODY = 65534


def command(binary: Path, workdir: Path, target: str, path: Path) -> list[str]:
    serve = [str(binary), "serve", "--store", f"sqlite:{workdir}/s.db", "--listen", "127.0.0.1:0"]
    unix_admin = ["--admin", f"unix:{workdir}/admin.sock"]
    return {
        "serve --admin-token-file": serve + ["--admin", "127.0.0.1:0",
                                             "--admin-token-file", str(path)],
        "serve --neutron-secret-file": serve + unix_admin + ["--neutron-secret-file", str(path)],
        "serve --proxy-keys-file": serve + unix_admin + ["--proxy-keys-file", str(path)],
        "proxy --key-file": [str(binary), "proxy", "--listen", "127.0.0.1:0,network=default",
                             "--upstream", "127.0.0.1:1", "--key-file", str(path)],
        # No server there: a CLI that accepted the file would stop at
        # connecting (exit 3), after the file was read.
        "instance --token-file": [str(binary), "instance", "get", "i-x", "--admin",
                                  f"unix:{workdir}/nobody-listens.sock", "--token-file",
                                  str(path)],
    }[target]


def content(target: str, secret: str) -> str:
    return f"k1 {secret}\n" if "keys" in target or "key-file" in target else secret + "\n"


TARGETS = ["serve --admin-token-file", "serve --neutron-secret-file", "serve --proxy-keys-file",
           "proxy --key-file", "instance --token-file"]


def refused(binary: Path, workdir: Path, target: str, path: Path) -> str:
    # A command that accepted the file would keep serving: the timeout ends
    # the test as a failure then.
    p = subprocess.run(command(binary, workdir, target, path), capture_output=True, text=True,
                       timeout=30, cwd=workdir, env=clean_env())
    out = p.stderr + p.stdout
    assert p.returncode == 2, (p.returncode, out)
    assert str(path) in out, out
    assert SECRET[:12] not in out, out
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_a_file_owned_by_another_user_is_refused(binary, workdir, target):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file away")
    path = workdir / "secret"
    path.write_text(content(target, SECRET))
    path.chmod(0o600)
    os.chown(path, NOBODY, NOBODY)
    out = refused(binary, workdir, target, path)
    assert f"owned by uid {NOBODY}" in out and f"chown 0 {path}" in out, out


@pytest.mark.parametrize("target", ["serve --admin-token-file", "serve --neutron-secret-file",
                                    "instance --token-file"])
def test_a_secret_under_16_bytes_is_refused(binary, workdir, target):
    path = workdir / "secret"
    path.write_text("Zq7xWv9Kp2L\n")  # 11 bytes
    path.chmod(0o600)
    out = refused(binary, workdir, target, path)
    assert "holds 11 bytes" in out and "at least 16" in out, out


@pytest.mark.parametrize("target", TARGETS)
def test_a_file_over_64_kib_is_refused(binary, workdir, target):
    path = workdir / "secret"
    if "keys" in target or "key-file" in target:
        text = content(target, SECRET) + "# padding\n" * 7000
    else:
        text = SECRET + "x" * 70_000 + "\n"
    path.write_text(text)
    path.chmod(0o600)
    out = refused(binary, workdir, target, path)
    assert "larger than 64 KiB" in out, out
