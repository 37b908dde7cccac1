#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""What the always-on watch layer costs (issue 3), measured side by side:

1. agent CPU (user + sys, % of one core) at a 1 s interval on an idle machine,
   default watch layer and with the opt-in hook modes, per watcher too;
2. pinned `perf bench sched pipe`: agent off vs on (default watch layer),
   interleaved repetitions, medians;
3. the opt-in run-queue hook mode next to empty tp_btf programs on the same
   tracepoints and next to the bpftrace runqlat one-liner, same workload;
   plus the ns per event each reports.

    test/bench/bench_watch.py [--reps N] [--idle-seconds S] [--skip idle,pipe,hooks]

Targets (issue 3): the default layer <= 0.5% of one core and <= 1% slowdown
of the pinned benchmark. It prints Markdown tables; docs/performance.md keeps
the results. It never fails on the numbers.
"""
import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import (BIN, RUNQLAT_BT, AgentOn, Background, EmptyTp, Off, ensure_tracefs, machine,
                      need_root, pinned, report, save)

# a rule that never fires: the watch layer alone, no capture in the way
QUIET_RULES = """
rules:
  - name: bench-never
    metric: cpu.steal_pct
    above: 1000
    dry_run: true
"""

HOOKS = "watch:\n  runq_hooks: true\n"
ALL_HOOKS = "watch:\n  runq_hooks: true\n  block_hooks: true\n"


def proc_cpu_ns(pid):
    """CPU time (user + sys) of all threads of a process, ns: the scheduler's
    exact sum (/proc/PID/task/TID/schedstat), not clock ticks, which are too
    coarse for an agent that runs a millisecond per second."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError):
            pass
    return total


def status(agent):
    out = subprocess.run([BIN, "status", "--json", "--socket",
                          os.path.join(agent.dir, "control.sock")],
                         capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout) if out.returncode == 0 else None


def agent_cpu(config_extra, seconds, name):
    """Agent CPU over `seconds` once settled, and each watcher's cost."""
    with AgentOn(name, rules=QUIET_RULES, config_extra=config_extra) as a:
        time.sleep(2)
        c0, t0 = proc_cpu_ns(a.proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = proc_cpu_ns(a.proc.pid), time.monotonic()
        st = status(a)
    pct = 100.0 * (c1 - c0) / ((t1 - t0) * 1e9)
    watchers = {}
    for w in (st or {}).get("result", st or {}).get("watchers", []):
        watchers[w["name"]] = {k: w.get(k) for k in ("state", "sample_us_avg", "sample_us_max",
                                                      "ns_per_event_avg", "tasks", "cgroups")
                               if w.get(k) is not None}
    return pct, watchers


def bench_idle(args, out):
    print("\n## Agent CPU at a 1 s interval (user + sys, % of one core)")
    print(f"{args.idle_seconds} s per run, {args.idle_reps} runs each, interleaved; "
          "a rule that never fires")
    runs = {"default": [], "runq + block hooks": []}
    last = {}
    for _ in range(args.idle_reps):
        for name, extra in (("default", ""), ("runq + block hooks", ALL_HOOKS)):
            pct, w = agent_cpu(extra, args.idle_seconds, name)
            runs[name].append(pct)
            last[name] = w
    print("| watch layer | median % of one core | min | max |")
    print("|---|---|---|---|")
    for name, vals in runs.items():
        print(f"| {name} | {statistics.median(vals):.3f} | {min(vals):.3f} | {max(vals):.3f} |")
    print("\nPer watcher, default layer (agent CPU per round):")
    print("| watcher | state | µs per round (avg) | max |")
    print("|---|---|---|---|")
    for n, w in last["default"].items():
        print(f"| {n} | {w.get('state')} | {w.get('sample_us_avg', 0):.0f} | "
              f"{w.get('sample_us_max', 0):.0f} |")
    hooks = {n: w for n, w in last["runq + block hooks"].items() if "ns_per_event_avg" in w}
    if hooks:
        print("\nHook modes while idle: " + ", ".join(
            f"{n} {w['ns_per_event_avg']:.0f} ns/event" for n, w in hooks.items()))
    out["idle_cpu_pct"] = {k: {"median": statistics.median(v), "values": v}
                           for k, v in runs.items()}
    out["idle_watchers"] = last
    sys.stdout.flush()


def sched_pipe_wall_and_cpu(loops=200000):
    """Pinned `perf bench sched pipe`: wall usecs per round trip, and the CPU
    time (user + sys of the benchmark's processes) per round trip. Hooks on
    sched_switch run in the switching task's context, so their cost is in the
    second number too, while time spent waiting behind other tenants' tasks
    of a shared machine is not."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(pinned(["perf", "bench", "sched", "pipe", "-l", str(loops)]),
                         capture_output=True, text=True, check=True).stdout
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e6 / loops
    return float(re.search(r"([\d.]+)\s+usecs/op", out).group(1)), cpu


def interleave2(variants, reps, warmup=1):
    """Every variant reps times, interleaved; {name: [wall]}, {name: [cpu]}."""
    wall = {v.name: [] for v in variants}
    cpu = {v.name: [] for v in variants}
    for r in range(warmup + reps):
        for v in variants:
            with v:
                w, c = sched_pipe_wall_and_cpu()
            if r >= warmup:
                wall[v.name].append(w)
                cpu[v.name].append(c)
    return wall, cpu


def pipe_report(title, variants, reps):
    wall, cpu = interleave2(variants, reps)
    return {"wall": report(title + ", wall usecs per round trip", wall, unit="us/op"),
            "cpu": report(title + ", CPU usecs (user + sys) per round trip", cpu,
                          unit="us/op")}


def bench_pipe(args, out):
    variants = [Off(), AgentOn("autotrace (default watch layer)", rules=QUIET_RULES)]
    out["sched_pipe_default"] = pipe_report(
        "perf bench sched pipe (pinned), agent off vs default watch layer", variants, args.reps)


class AgentHooks(AgentOn):
    """The agent in the run-queue hook mode; keeps the ns per event it reports."""

    def __init__(self):
        super().__init__("autotrace runq_hooks", rules=QUIET_RULES, config_extra=HOOKS)
        self.ns = []

    def __exit__(self, *exc):
        st = status(self)
        for w in (st or {}).get("result", st or {}).get("watchers", []):
            if w["name"] == "runqlat" and w.get("ns_per_event_avg"):
                self.ns.append(w["ns_per_event_avg"])
        return super().__exit__(*exc)


def bench_hooks(args, out):
    hooks = AgentHooks()
    variants = [Off(), EmptyTp(["sched_switch", "sched_wakeup", "sched_wakeup_new"]), hooks]
    if shutil.which("bpftrace"):
        ensure_tracefs()
        variants.append(Background("bpftrace runqlat", ["bpftrace", "-e", RUNQLAT_BT]))
    else:
        print("(bpftrace not installed: no runqlat one-liner column)")
    out["sched_pipe_hooks"] = pipe_report(
        "perf bench sched pipe (pinned): the run-queue hook mode and its peers", variants,
        args.reps)
    if hooks.ns:
        print(f"\nrun-queue hook mode, ns per event as the agent reports it (median of runs): "
              f"{statistics.median(hooks.ns):.0f}")
        out["runq_hooks_ns_per_event"] = hooks.ns


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--idle-seconds", type=int, default=30)
    ap.add_argument("--idle-reps", type=int, default=3)
    ap.add_argument("--skip", default="")
    args = ap.parse_args()
    need_root()
    skip = set(filter(None, args.skip.split(",")))
    m = machine()
    print(f"# watch layer benchmark: {m['model']}, {m['cpus']} CPUs, kernel {m['kernel']}, "
          f"workload pinned to CPU {os.environ.get('BENCH_CPU', '1')}")
    out = {}
    if "idle" not in skip:
        bench_idle(args, out)
    if "pipe" not in skip:
        bench_pipe(args, out)
    if "hooks" not in skip:
        bench_hooks(args, out)
    save("watch", out)


if __name__ == "__main__":
    main()
