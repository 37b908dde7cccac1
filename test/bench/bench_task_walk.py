#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""The floor of the task pass: what walking every thread costs before the pass
reads anything (issue 16, cost per thread).

    sudo AUTOTRACE_BIN=build-test/autotrace test/bench/bench_task_walk.py [--reps 21]

bench_scale's thread population (processes of 50 threads, 10% of them waking
once a second) at each size; in each, bench_task_walk runs one BPF program
that walks every thread with the open-coded task iterator (Linux 6.7+, as the
agent's taskwatch_walk does) and reads, per variant: nothing; the scheduler
statistics the pass's idle test reads; those and the task's state; the state
alone; or walks the processes only. Reported: µs per pass (median of --reps,
100 ms apart) at each size and ns per thread (the slope between the sizes).
bench_scale's taskwatch row is the agent's whole pass on the same population.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchlib import HERE, build_c, built, machine, need_root, save

THREADS_PER_PROC = 50


def population(threads, wakers):
    """Processes of THREADS_PER_PROC threads, asleep but for wakers of them."""
    n = -(-threads // THREADS_PER_PROC)
    spec = tempfile.NamedTemporaryFile("w", prefix="autotrace-bench-walk-", delete=False)
    for p in range(n):
        t = threads // n + (1 if p < threads % n else 0)
        spec.write(f"{t} {int(round(t * wakers))}\n")
    spec.close()
    with open(os.path.join(HERE, "scale_pop.c")) as f:
        exe = build_c("scale_pop", f.read(), libs=["-pthread"])
    proc = subprocess.Popen([exe, spec.name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    if not proc.stdout.readline().startswith("ready"):
        sys.exit(f"population of {threads} threads did not start")
    os.unlink(spec.name)
    return proc


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1000,30000")
    ap.add_argument("--wakers", type=float, default=0.1)
    ap.add_argument("--reps", type=int, default=21)
    args = ap.parse_args()
    need_root()
    exe = built("test", "bench", "bench_task_walk")
    sizes = [int(x) for x in args.threads.split(",")]
    rows = {}
    for threads in sizes:
        pop = population(threads, args.wakers)
        try:
            time.sleep(2)
            out = subprocess.run([exe, str(args.reps)], check=True, capture_output=True,
                                 text=True).stdout
        finally:
            pop.stdin.close()
            pop.wait(60)
        for line in out.splitlines():
            r = json.loads(line)
            rows.setdefault(r["variant"], []).append({"threads": threads, **r})
    lo, hi = sizes[0], sizes[-1]
    print(f"| variant | " + " | ".join(f"µs per pass, {t} threads (tasks visited)"
                                      for t in sizes) +
          f" | ns per task visited | ns per thread of the node ({lo} → {hi}) |")
    print("|---|" + "---|" * (len(sizes) + 2))
    for name, rs in rows.items():
        a, b = rs[0], rs[-1]
        d_us = (b["median_us"] - a["median_us"]) * 1000
        print(f"| {name} | " + " | ".join(f"{r['median_us']:.0f} ({r['tasks']})" for r in rs) +
              f" | {d_us / max(b['tasks'] - a['tasks'], 1):.0f} | {d_us / (hi - lo):.1f} |")
    save("task_walk", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
