#!/usr/bin/python3
"""What a booting guest asks: cloud-init's EC2 datasource (Debian's package,
as a library) crawls a real `openimds serve` on loopback, once per record
size (1, 4 and 8 NICs, IMDSv2 as on AWS), and this prints per crawl the
requests made, how long they took, the most made in any one second, and the
smallest burst a per-instance token bucket at RATE requests/s (default 100,
serve's default) must allow for none of them to be refused. The figures
behind serve's default --instance-rate-burst (docs/instance.md, "limits").

Run: bench/cloud_init_boot.py  (env: OPENIMDS_BINARY, else build/src/app/openimds;
RATE). Needs cloud-init (apt-get install cloud-init). Loopback only: the
loopback guard refuses any other address, and every URL is 127.0.0.1.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "pylib"))

import loopback_guard  # noqa: E402

loopback_guard.install()

from cloudinit import distros, helpers, url_helper, util  # noqa: E402
from cloudinit.sources import DataSourceEc2  # noqa: E402

from openimds_harness import Server, find_binary, instance  # noqa: E402

util._DNS_REDIRECT_IP = set()  # numeric loopback URLs: no DNS hijack probe
RATE = float(os.environ.get("RATE", "100"))


def record(nics: int) -> dict:
    rec = instance("i-0b00700000000001", "127.0.0.1", mac="02:00:00:00:0b:00")
    rec["metadata_options"]["http_tokens"] = "required"
    first = rec["nics"][0]
    for i in range(1, nics):
        nic = copy.deepcopy(first)
        nic.update({"mac": f"02:00:00:00:0b:{i:02x}", "device_number": i,
                    "interface_id": f"eni-00000000000000{i:02x}",
                    "private_ipv4s": [f"127.0.11.{i}"]})
        rec["nics"].append(nic)
    return rec


def smallest_burst(times: list[float], rate: float) -> int:
    """The least bucket size that admits every request at these times (GCRA)."""
    lo, hi = 1, len(times)
    while lo < hi:
        b = (lo + hi) // 2
        tat, ok = times[0], True
        for t in times:
            tat = max(tat, t)
            if tat - t > (b - 1) / rate:
                ok = False
                break
            tat += 1 / rate
        lo, hi = (lo, b) if ok else (b + 1, hi)
    return lo


def crawl(binary: Path, nics: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="oimds-ciboot-"))
    stamps: list[float] = []
    real_readurl = url_helper.readurl

    def timed(*args, **kwargs):
        stamps.append(time.monotonic())
        return real_readurl(*args, **kwargs)

    url_helper.readurl = timed
    try:
        # Limits off, so the crawl measures cloud-init and nothing else.
        with Server(binary=binary, workdir=work / "s",
                    extra_args=["--instance-rate-limit", "0"]) as s:
            s.put_instance(record(nics))
            paths = helpers.Paths({"cloud_dir": f"{work}/cloud", "run_dir": f"{work}/run",
                                   "docs_dir": str(work), "templates_dir": str(work)})
            distro = distros.fetch("debian")("debian", {}, paths)
            cfg = {"datasource": {"Ec2": {"metadata_urls": [s.base_url()], "timeout": 5,
                                          "max_wait": 20, "retries": 2}}}
            ds = DataSourceEc2.DataSourceEc2(cfg, distro, paths)
            ds.metadata_urls = [s.base_url()]
            ds._cloud_name = "aws"  # the token flow, as on AWS
            stamps.clear()
            assert ds.get_data() is True, "cloud-init's crawl failed"
            assert loopback_guard.refused == [], loopback_guard.refused
    finally:
        url_helper.readurl = real_readurl
        shutil.rmtree(work, ignore_errors=True)
    span = stamps[-1] - stamps[0]
    peak = max(sum(1 for u in stamps if t <= u < t + 1) for t in stamps)
    print(f"{nics:>4} {len(stamps):>9} {span * 1000:>9.0f} {peak:>13} "
          f"{smallest_burst(stamps, RATE):>14}")


def main() -> None:
    binary = find_binary()
    print(f"cloud-init's DataSourceEc2 (aws mode, IMDSv2) against {binary}")
    print(f"{'nics':>4} {'requests':>9} {'span ms':>9} {'peak in 1 s':>13} "
          f"{'burst @' + format(RATE, 'g') + '/s':>14}")
    for nics in (1, 4, 8):
        crawl(binary, nics)


if __name__ == "__main__":
    main()
