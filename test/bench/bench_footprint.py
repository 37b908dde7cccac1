#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Agent footprint: CPU % of one core and RSS over a window, idle and under load.

    test/bench/bench_footprint.py [--seconds 60]

The agent runs its default rules in dry-run mode (watched and evaluated, no
capture attached), so this is the always-on footprint.

Targets: idle agent <= 0.5% of one core and <= 32 MiB RSS.
"""
import argparse
import os
import subprocess
import time

from benchlib import AgentOn, need_root, save

def cpu_ns(pid):
    """CPU time of all the agent's threads, from the scheduler's exact
    per-thread accounting (clock ticks are too coarse for 0.1% over 60 s)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just exited
    return total


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def measure(agent, seconds):
    pid = agent.proc.pid
    t0, c0 = time.monotonic(), cpu_ns(pid)
    rss_max = 0
    while time.monotonic() - t0 < seconds:
        time.sleep(1)
        rss_max = max(rss_max, status_kib(pid, "VmRSS"))
    cpu = (cpu_ns(pid) - c0) / 1e9 / (time.monotonic() - t0) * 100
    return {"cpu_pct_of_one_core": cpu, "rss_max_mib": rss_max / 1024,
            "hwm_mib": status_kib(pid, "VmHWM") / 1024}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    need_root()
    out = {}
    with AgentOn(dry_run=True) as agent:
        out["idle"] = measure(agent, args.seconds)
    # load: context switches on one CPU and a busy loop on the other, with many
    # short-lived processes so the watchers see churn
    with AgentOn(dry_run=True) as agent:
        load = [subprocess.Popen(["taskset", "-c", "1", "perf", "bench", "sched", "pipe",
                                  "-l", "100000000"], stdout=subprocess.DEVNULL,
                                 start_new_session=True),
                subprocess.Popen(["sh", "-c", "while :; do /bin/true; done"],
                                 start_new_session=True)]
        try:
            out["loaded"] = measure(agent, args.seconds)
        finally:
            for p in load:
                os.killpg(p.pid, 9)
                p.wait()
    print("| state | agent CPU (% of one core) | max RSS (MiB) | peak RSS (MiB) |")
    print("|---|---|---|---|")
    for k, v in out.items():
        print(f"| {k} | {v['cpu_pct_of_one_core']:.3f} | {v['rss_max_mib']:.1f} | "
              f"{v['hwm_mib']:.1f} |")
    save("footprint", out)


if __name__ == "__main__":
    main()
