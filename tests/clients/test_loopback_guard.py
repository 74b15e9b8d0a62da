"""The guard that keeps these tests on loopback is installed and refuses
non-loopback destinations (checked without sending anything)."""

import socket

import pytest

import loopback_guard


def test_guard_is_installed():
    assert socket.socket.connect.__module__ == "loopback_guard"
    assert socket.getaddrinfo.__module__ == "loopback_guard"


@pytest.mark.parametrize("address,family", [
    (("192.0.2.1", 80), socket.AF_INET),        # TEST-NET-1
    (("169.254.169.254", 80), socket.AF_INET),
    (("fd00:ec2::254", 80, 0, 0), socket.AF_INET6),
])
def test_guard_refuses_non_loopback(address, family):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        before = len(loopback_guard.refused)
        with pytest.raises(ConnectionRefusedError):
            loopback_guard._check(s, address)
        assert len(loopback_guard.refused) == before + 1
        del loopback_guard.refused[before:]


@pytest.mark.parametrize("address,family", [
    (("127.0.0.1", 80), socket.AF_INET),
    (("127.9.8.7", 80), socket.AF_INET),
    (("::1", 80, 0, 0), socket.AF_INET6),
])
def test_guard_allows_loopback(address, family):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        loopback_guard._check(s, address)  # no exception
