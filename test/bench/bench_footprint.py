#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Agent footprint: CPU % of one core and RSS over a window, idle and under load,
and the start-up peak.

    test/bench/bench_footprint.py [--seconds 60]
    test/bench/bench_footprint.py --startups 5 [--baseline OLD-BINARY]

--startups N starts the agent N times (default configuration, then with an
Elasticsearch sink configured towards a closed port) and reports the peak RSS
since start (VmHWM) and the RSS once started; with --baseline the other build
starts in turn, interleaved.

The agent runs its default rules in dry-run mode (watched and evaluated, no
capture attached), so this is the always-on footprint.

Targets: idle agent <= 0.5% of one core and <= 32 MiB RSS.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
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


ES_CLOSED = ("  elasticsearch:\n    enabled: true\n    urls: [\"http://127.0.0.1:9\"]\n"
             "    spool_dir: {dir}\n")


def startups(args):
    """Peak and settled RSS of fresh agents, this build and --baseline interleaved."""
    bins = [("after", None)] + ([("before", args.baseline)] if args.baseline else [])
    spool = tempfile.mkdtemp(prefix="autotrace-bench-spool-")
    out = {}
    try:
        for conf, extra in (("default", ""), ("elasticsearch on", ES_CLOSED.format(dir=spool))):
            for _ in range(args.startups):
                for name, b in bins:
                    with AgentOn(dry_run=True, bin=b, config_extra=extra) as agent:
                        time.sleep(2)
                        pid = agent.proc.pid
                        r = out.setdefault(f"{conf}, {name}", {"hwm": [], "rss": []})
                        r["hwm"].append(status_kib(pid, "VmHWM") / 1024)
                        r["rss"].append(status_kib(pid, "VmRSS") / 1024)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    print("| configuration, build | start-up peak (VmHWM) MiB, median | min | max | "
          "RSS once started MiB, median |")
    print("|---|---|---|---|---|")
    for k, v in out.items():
        h = sorted(v["hwm"])
        print(f"| {k} | {statistics.median(h):.1f} | {h[0]:.1f} | {h[-1]:.1f} | "
              f"{statistics.median(v['rss']):.1f} |")
    save("footprint_startup", out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--startups", type=int, default=0,
                    help="measure the start-up peak over this many starts instead")
    ap.add_argument("--baseline", default="", help="another build of the agent (before)")
    args = ap.parse_args()
    need_root()
    if args.startups:
        startups(args)
        return
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
