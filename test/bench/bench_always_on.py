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

from benchlib import (RUNQLAT_BT, AgentOn, Background, Off, ensure_tracefs, hackbench, interleave,
                      need_root, report, save, sched_pipe, syscall_loop)


def runs_here(peer):
    """A peer that cannot run on this machine (bcc without kernel headers) is
    left out of the table, saying why, instead of ending the benchmark."""
    try:
        with peer:
            return True
    except RuntimeError as e:
        print(f"({peer.name} left out: {e})")
        return False


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
        peers = []
        if shutil.which("bpftrace"):
            peers.append(Background("bpftrace runqlat", ["bpftrace", "-e", RUNQLAT_BT]))
        if shutil.which("runqlat-bpfcc"):
            peers.append(Background("runqlat-bpfcc", ["runqlat-bpfcc", "3600", "1"], settle=8))
        variants += [p for p in peers if runs_here(p)]
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
