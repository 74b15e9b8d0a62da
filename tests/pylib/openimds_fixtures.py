"""pytest fixtures shared by tests/integration and tests/clients.

Each test directory's conftest.py imports them by name.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from openimds_harness import Server, find_binary


@pytest.fixture(scope="session")
def binary() -> Path:
    try:
        return find_binary()
    except RuntimeError as e:
        pytest.exit(str(e), returncode=2)


@pytest.fixture
def workdir():
    # Short paths under /tmp: a unix socket path must fit in 108 bytes, and
    # pytest's tmp_path grows with the test's name.
    path = Path(tempfile.mkdtemp(prefix="oimds-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_server(binary, workdir):
    """make_server(name="s", **Server fields) -> a started Server. Every server
    still running at the end of the test is stopped with SIGTERM and must exit 0."""
    servers: list[Server] = []

    def make(name: str = "s", **kwargs) -> Server:
        s = Server(binary=binary, workdir=workdir / name, **kwargs)
        servers.append(s)
        return s.start()

    yield make
    errors = []
    for s in servers:
        if s.proc is not None:
            try:
                s.stop()
            except AssertionError as e:
                errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def server(make_server) -> Server:
    """An empty server: no instances."""
    return make_server()


@pytest.fixture
def demo_server(make_server) -> Server:
    """A server started with --demo (instance i-0123456789abcdef0 on 127.0.0.1 and ::1)."""
    return make_server(demo=True)
