#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Always-on cost: the agent with its default rules and no capture running, next
to the tools SREs run instead, on context-switch- and syscall-heavy workloads.

    test/bench/bench_always_on.py [--reps N]

The agent runs its default rules in dry-run mode: everything is watched and
evaluated, nothing is attached when a rule trips. Target: the default agent
slows pinned `perf bench sched pipe` by <= 1%.
"""
import argparse
import shutil

from benchlib import (AgentOn, Background, Off, ensure_tracefs, hackbench, interleave,
                      need_root, report, save, sched_pipe, syscall_loop)

RUNQLAT_BT = ("tracepoint:sched:sched_wakeup,tracepoint:sched:sched_wakeup_new "
              "{ @qtime[args.pid] = nsecs; } "
              "tracepoint:sched:sched_switch { if (args.prev_state == 0) "
              "{ @qtime[args.prev_pid] = nsecs; } $ns = @qtime[args.next_pid]; "
              "if ($ns) { @usecs = hist((nsecs - $ns) / 1000); } delete(@qtime[args.next_pid]); }")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()
    need_root()
    ensure_tracefs()

    # the default rules, evaluated every interval; dry run so a rule the
    # workload trips (sched pipe is mostly sys time) logs instead of capturing
    variants = [Off(), AgentOn("autotrace (default rules, no capture)", dry_run=True)]
    if not args.no_peers:
        if shutil.which("bpftrace"):
            variants.append(Background("bpftrace runqlat", ["bpftrace", "-e", RUNQLAT_BT]))
        if shutil.which("runqlat-bpfcc"):
            variants.append(Background("runqlat-bpfcc", ["runqlat-bpfcc", "3600", "1"],
                                       settle=8))
    out = {}
    out["sched_pipe"] = report("perf bench sched pipe (pinned), usecs/op",
                               interleave(variants, sched_pipe, args.reps), unit="us/op")
    out["syscall"] = report("getppid loop (pinned), ns/call",
                            interleave(variants, syscall_loop, args.reps), unit="ns")
    out["hackbench"] = report("perf bench sched messaging (pinned), seconds",
                              interleave(variants, hackbench, args.reps), unit="s")
    save("always_on", out)


if __name__ == "__main__":
    main()
