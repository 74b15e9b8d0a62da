"""Keeps a Python process (a test running real clients in-process, or a client
subprocess) from sending any packet off loopback.

Real clients have built-in defaults that point at the real metadata service
(cloud-init falls back to http://169.254.169.254 when it finds its configured
URLs unusable; botocore defaults to it too) and they resolve names through
DNS. install() makes every TCP/UDP connect to a non-loopback address and every
name lookup other than numeric loopback / localhost fail with OSError, so a
mistake in a test shows up as a failure instead of as traffic.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_installed = False
refused: list[str] = []  # what was blocked, for assertions and messages


def _is_loopback(host) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(sock: socket.socket, address) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if not _is_loopback(host):
            refused.append(f"connect {address!r}")
            raise ConnectionRefusedError(f"loopback_guard: refusing to connect to {address!r}")


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        os.environ.pop(var, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        _check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check(self, address)
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        _check(self, args[-1])
        return real_sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        if host is None or _is_loopback(host) or host in ("localhost", "localhost."):
            return real_getaddrinfo(host, *args, **kwargs)
        refused.append(f"resolve {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"loopback_guard: not resolving {host!r}")

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.getaddrinfo = getaddrinfo
