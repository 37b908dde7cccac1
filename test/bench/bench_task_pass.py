#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""The task pass of several builds, run at the same time (issue 16, cost per
thread).

    sudo test/bench/bench_task_pass.py BUILD [BUILD...] [--threads 30000] [--rounds 6]

One run of a build moves by up to a fifth from one minute to the next on a
shared VM, more than most changes to the pass, so builds measured one after
the other cannot be told apart. Here every round starts one agent of each
build on one thread population (bench_scale's: processes of 50 threads, 10%
waking once a second), their passes spread over the interval, and measures
them over the same seconds: the agent CPU of a task sample (status
sample_us_total over samples). The round's order alternates. Reported: each
build's median and the median, over the rounds, of its ratio to the first
build's figure of the same round.
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

from benchlib import AgentOn, machine, need_root
from bench_task_walk import population

# every pass, whatever it costs: the guard would sample a costly one less often
FULL_RATE = "guard:\n  watch_cpu: 0ms\n"


def agent_on(name, build):
    """An agent of this build passing every round; a build from before the
    guard held the watch layer (e4745bc, the issue's "today") has no such key
    and passes every round anyway."""
    try:
        return AgentOn(name, bin=build, dry_run=True, config_extra=FULL_RATE).__enter__()
    except RuntimeError as e:
        if "unknown key 'guard.watch_cpu'" not in str(e):
            raise
    return AgentOn(name, bin=build, dry_run=True).__enter__()


def taskwatch(build, agent):
    out = subprocess.run([build, "status", "--json", "--socket",
                          os.path.join(agent.dir, "control.sock")],
                         capture_output=True, text=True, check=True).stdout
    return next(w for w in json.loads(out)["watchers"] if w["name"] == "taskwatch")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builds", nargs="+", help="agent binaries; ratios are to the first")
    ap.add_argument("--threads", type=int, default=30000)
    ap.add_argument("--wakers", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    need_root()
    m = machine()
    print(f"# task pass side by side: {m['model']}, {m['cpus']} CPUs, kernel {m['kernel']}; "
          f"{args.threads} threads, wakers {args.wakers:.0%}, {args.rounds} rounds of "
          f"{args.seconds} s")
    cost = {b: [] for b in args.builds}
    pop = population(args.threads, args.wakers)
    try:
        time.sleep(2)
        for rnd in range(args.rounds):
            order = args.builds if rnd % 2 == 0 else args.builds[::-1]
            with contextlib.ExitStack() as stack:
                agents = []
                for i, b in enumerate(order):
                    a = agent_on(f"pass{i}", b)
                    stack.push(a.__exit__)
                    agents.append((b, a))
                    time.sleep(1.0 / len(order))  # the passes apart
                time.sleep(4)  # the first pass (every task's baseline) is over
                before = {b: taskwatch(b, a) for b, a in agents}
                time.sleep(args.seconds)
                cells = []
                for b, a in agents:
                    w0, w1 = before[b], taskwatch(b, a)
                    n = w1["samples"] - w0["samples"]
                    if n <= 0:
                        sys.exit(f"{b}: no task sample in {args.seconds} s")
                    us = (w1["sample_us_total"] - w0["sample_us_total"]) / n
                    cost[b].append(us)
                    cells.append(f"{os.path.basename(b)} {us:.0f} µs ({w1.get('walk')}, "
                                 f"{w1['tasks'] - w1.get('tasks_idle', 0)} busy of "
                                 f"{w1['tasks']})")
                print(f"round {rnd}: " + " | ".join(cells), flush=True)
    finally:
        pop.stdin.close()
        pop.wait(60)
    first = cost[args.builds[0]]
    print("\n| build | µs per task sample (median) | ns per thread | ratio to the first "
          "(median of rounds) |")
    print("|---|---|---|---|")
    for b in args.builds:
        med = statistics.median(cost[b])
        ratio = statistics.median(x / y for x, y in zip(cost[b], first))
        print(f"| {b} | {med:.0f} | {1000 * med / args.threads:.1f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
