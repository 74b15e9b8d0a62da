"""Soak: 60 s of mixed good and bad guest traffic from 100 source addresses
while admin writes run. Every good request must be answered correctly, and
the server's RSS must end within 20% of where it stood after warm-up. Real
binary on loopback (127.0.2.1 .. 127.0.2.100 are the sources)."""
from __future__ import annotations

import random
import socket
import threading
import time

from openimds_harness import (TOKEN_HEADER, TOKEN_TTL_HEADER, instance, raw_exchange, raw_status,
                              rss_kib)

SOURCES = [f"127.0.2.{i}" for i in range(1, 101)]
WARMUP_S = 8
SOAK_S = 60
THREADS = 6


def iid(source: str) -> str:
    return "i-soak-" + source.rsplit(".", 1)[1]


BAD = [
    # header flood (431), garbage (400), an unknown transfer coding (400),
    # endless chunk trailers (431), a body where none is taken, a path no
    # flavour serves (404), a truncated request (the peer goes away).
    b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    b"POST /latest/api/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + b"t" * 12000,
    b"POST /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"b" * 3000,
    b"GET /no/such/" + b"%ff" * 200 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHo",
]


def bad_request(host: str, port: int, source: str, rng: random.Random) -> None:
    data = rng.choice(BAD)
    try:
        with socket.create_connection((host, port), timeout=2, source_address=(source, 0)) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
    except OSError:
        pass  # a refusal may reset the connection: that is fine for bad traffic


def good_request(host: str, port: int, source: str, rng: random.Random) -> str:
    """One good exchange; returns '' when answered correctly, else why not."""
    want = iid(source).encode()
    kind = rng.randrange(3)
    if kind == 0:
        reply = raw_exchange(host, port, b"GET /latest/meta-data/instance-id HTTP/1.1\r\n"
                             b"Host: 169.254.169.254\r\nConnection: close\r\n\r\n", source=source)
        ok = raw_status(reply) == 200 and reply.endswith(b"\r\n\r\n" + want)
    elif kind == 1:
        reply = raw_exchange(host, port, b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n"
                             + TOKEN_TTL_HEADER.encode() + b": 60\r\nConnection: close\r\n\r\n",
                             source=source)
        if raw_status(reply) != 200:
            return f"token PUT from {source}: {reply[:120]!r}"
        token = reply.split(b"\r\n\r\n", 1)[1]
        reply = raw_exchange(host, port, b"GET /latest/meta-data/instance-id HTTP/1.1\r\n"
                             b"Host: x\r\n" + TOKEN_HEADER.encode() + b": " + token +
                             b"\r\nConnection: close\r\n\r\n", source=source)
        ok = raw_status(reply) == 200 and reply.endswith(b"\r\n\r\n" + want)
    else:
        reply = raw_exchange(host, port, b"GET /openstack/latest/meta_data.json HTTP/1.1\r\n"
                             b"Host: x\r\nConnection: close\r\n\r\n", source=source)
        ok = raw_status(reply) == 200 and b'"uuid": "' + want + b'"' in reply
    return "" if ok else f"{source}: {reply[:200]!r}"


def test_soak_mixed_traffic_with_writes(make_server):
    server = make_server(threads=2, log_level="warn")
    for source in SOURCES:
        server.put_instance(instance(iid(source), source))
    host, port = server.guest_address()
    pid = server.proc.pid

    stop = threading.Event()
    counts = {"good": 0, "bad": 0, "writes": 0}
    failures: list[str] = []
    lock = threading.Lock()

    def guest(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            source = rng.choice(SOURCES)
            if rng.random() < 0.5:
                why = good_request(host, port, source, rng)
                with lock:
                    counts["good"] += 1
                    if why:
                        failures.append(why)
            else:
                bad_request(host, port, source, rng)
                with lock:
                    counts["bad"] += 1

    def writer() -> None:
        rng = random.Random(99)
        n = 0
        while not stop.is_set():
            source = rng.choice(SOURCES)
            r = server.admin("PATCH", f"/v1/instances/{iid(source)}",
                             '{"tags":{"soak":"%d"}}' % n,
                             headers={"Content-Type": "application/merge-patch+json"})
            with lock:
                counts["writes"] += 1
                if r.status != 200:
                    failures.append(f"PATCH {iid(source)}: {r}")
            n += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=guest, args=(i,)) for i in range(THREADS)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    try:
        time.sleep(WARMUP_S)
        start_rss = rss_kib(pid)
        start_counts = dict(counts)
        time.sleep(SOAK_S)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    end_rss = rss_kib(pid)
    done = {k: counts[k] - start_counts[k] for k in counts}
    print(f"soak: {done} in {SOAK_S} s after warm-up; RSS {start_rss} -> {end_rss} KiB")
    assert not failures, failures[:10]
    assert done["good"] > 1000 and done["bad"] > 1000 and done["writes"] > 100, done
    assert end_rss <= start_rss * 1.2, (start_rss, end_rss)
    # The server is still whole: every instance answers after the soak.
    for source in SOURCES[::10]:
        assert good_request(host, port, source, random.Random(0)) == ""
