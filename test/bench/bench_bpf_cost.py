#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Per-program BPF cost: ns per event of every program a capture attaches,
from the kernel's BPF run-time statistics, next to an empty tp_btf program on
the same hot tracepoints (the floor of being attached at all).

    test/bench/bench_bpf_cost.py [--kinds profile,offcpu] [--seconds 10]

Workload during the window: pinned `perf bench sched pipe` (context switches
and wakeups) plus a getppid loop (syscalls).
"""
import argparse
import json
import os
import re
import subprocess
import time

from benchlib import BIN, AgentOn, build_c, need_root, pinned, save, SYSCALL_LOOP, build_dir


def prog_stats(ids):
    out = {}
    for i in ids:
        r = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(i)], capture_output=True,
                           text=True)
        if r.returncode == 0:
            p = json.loads(r.stdout)
            out[p.get("name", str(i))] = (p.get("run_cnt", 0), p.get("run_time_ns", 0))
    return out


def workload(seconds):
    exe = build_c("bench_syscall", SYSCALL_LOOP)
    # own sessions: perf bench forks its workers, and all of them must go
    procs = [subprocess.Popen(pinned(["perf", "bench", "sched", "pipe", "-l", "100000000"]),
                              stdout=subprocess.DEVNULL, start_new_session=True),
             subprocess.Popen([exe, "100000000"], stdout=subprocess.DEVNULL,
                              start_new_session=True)]
    time.sleep(seconds)
    for p in procs:
        os.killpg(p.pid, 9)
        p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kinds", default="profile,offcpu")
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    need_root()

    # the floor: empty programs on the same tracepoints
    floor = subprocess.Popen([os.path.join(build_dir(), "test", "bench", "bench_empty_tp"),
                              "sched_switch", "sched_wakeup", "sys_enter"],
                             stdout=subprocess.PIPE, text=True)
    assert floor.stdout.readline().strip() == "ready"
    workload(args.seconds)
    floor.send_signal(2)
    floor_out = floor.communicate()[0]
    print("## empty programs (floor)")
    print(floor_out)

    # the guard keeps the kernel's run-time statistics on while a capture runs;
    # limits it cannot reach, so nothing is cut short
    with AgentOn(rules="rules: []\n", config_extra=(
            "guard:\n  capture_cpu_pct: 100\n  agent_cpu_pct: 1000\n"
            "capture:\n  max_duration: 60s\n")) as agent:
        cfg = os.path.join(agent.dir, "autotrace.yaml")
        subprocess.run([BIN, "trigger", "-c", cfg, "--capture", args.kinds, "--duration",
                        f"{args.seconds + 5}s", "--no-wait"], check=True, capture_output=True)
        workload(args.seconds)
        # read while the window is still open: the programs are loaded at the trigger
        log = open(agent.log.name).read()
        ids = {int(m) for line in re.findall(r"BPF programs loaded:.*", log)
               for m in re.findall(r"#(\d+)", line)}
        stats = prog_stats(ids)
    print("## autotrace capture programs")
    print("| program | events | ns/event |")
    print("|---|---|---|")
    result = {}
    for name, (cnt, ns) in sorted(stats.items()):
        if cnt:
            print(f"| {name} | {cnt} | {ns / cnt:.1f} |")
            result[name] = ns / cnt
    save("bpf_cost", {"floor": floor_out, "programs": result})


if __name__ == "__main__":
    main()
