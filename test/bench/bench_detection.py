#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Detection latency: anomaly onset -> capture attached, over N trials.

    test/bench/bench_detection.py [--trials 10] [--interval 1s]

The anomaly is two threads reading /dev/zero (kernel time on both CPUs); the rule
fires on cpu.sys_pct above 20 with no `for`, so latency = time until the first
watcher round that sees it + evaluation + attach. Target: <= interval + 250 ms.
"""
import argparse
import datetime
import re
import statistics
import subprocess
import time

from benchlib import AgentOn, build_c, need_root, save

SYSLOAD = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
static void *spin(void *a) { static __thread char b[65536]; int fd = open("/dev/zero", O_RDONLY);
    for (;;) if (read(fd, b, sizeof(b)) < 0) abort(); return a; }
int main(void) { pthread_t t[2]; for (int i = 0; i < 2; i++) pthread_create(&t[i], 0, spin, 0);
    pause(); return 0; }
"""

RULES = """
rules:
  - name: bench-detect
    metric: cpu.sys_pct
    above: 20
    capture:
      - { kind: profile, duration: 1s }
    cooldown: 1s
"""


def attach_times(log):
    out = []
    for m in re.finditer(r"^(\S+Z) info  capture profile attached", log, re.M):
        ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
        out.append(ts.replace(tzinfo=datetime.timezone.utc).timestamp())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--interval", default="1s")
    args = ap.parse_args()
    need_root()
    exe = build_c("bench_sysload", SYSLOAD, libs=("-pthread",))
    lat = []
    with AgentOn(rules=RULES, interval=args.interval) as agent:
        for _ in range(args.trials):
            time.sleep(3.0)  # quiet: the condition clears and the cooldown passes
            before = len(attach_times(open(agent.log.name).read()))
            onset = time.time()
            load = subprocess.Popen([exe])
            deadline = time.time() + 10
            times = []
            while time.time() < deadline:
                times = attach_times(open(agent.log.name).read())
                if len(times) > before:
                    break
                time.sleep(0.02)
            load.kill()
            load.wait()
            if len(times) > before:
                lat.append((times[before] - onset) * 1000)
    print(f"detection latency over {len(lat)} trials (interval {args.interval}): "
          f"median {statistics.median(lat):.0f} ms, max {max(lat):.0f} ms, "
          f"min {min(lat):.0f} ms")
    save("detection", {"interval": args.interval, "latency_ms": lat})


if __name__ == "__main__":
    main()
