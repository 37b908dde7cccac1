#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Capture cost: how much a running capture slows a context-switch-heavy and a
syscall-heavy workload, side by side with no capture and with `perf record
-F 99 -a -g` (the peer), interleaved.

    test/bench/bench_captures.py [--reps N] [--kinds profile,offcpu,profile+offcpu]
                                 [--workloads pipe,syscall] [--no-peers]

One agent (guard off, so nothing is cut short) runs every variant: "off" (the
agent with nothing attached), then each capture kind attached to the whole
host, and the same kinds filtered to another process (the cost every other
task pays for the target filter). The workloads are pinned `perf bench sched
pipe` (usecs per round trip) and a getppid loop (ns per call), lower is
better; each runs while the capture is attached, then the variant waits for
the window to end. Target (issue 9): a profile + offcpu capture <= 5%.
"""
import argparse
import os
import shutil
import subprocess
import time

from benchlib import (BIN, AgentOn, Background, Variant, interleave, need_root, report, save,
                      sched_pipe, syscall_loop)

WINDOW_S = 3


class Capture(Variant):
    def __init__(self, agent, kind, pid=None):
        self.agent = agent
        self.kind = kind  # one kind or several, comma-separated
        self.pid = pid
        self.name = kind.replace(",", " + ") + (" (other pid)" if pid else " (host)")

    def __enter__(self):
        cfg = os.path.join(self.agent.dir, "autotrace.yaml")
        args = [BIN, "trigger", "-c", cfg, "--capture", self.kind, "--duration", f"{WINDOW_S}s",
                "--no-wait"]
        if self.pid:
            args += ["--pid", str(self.pid)]
        subprocess.run(args, check=True, capture_output=True)
        self.t0 = time.monotonic()
        time.sleep(0.3)  # attached
        return self

    def __exit__(self, *exc):
        # the window must be over before the next variant asks for one
        left = self.t0 + WINDOW_S + 1.0 - time.monotonic()
        if left > 0:
            time.sleep(left)
        return False


class Off(Variant):
    name = "off"


class PerfRecord(Background):
    """The peer: `perf record -F 99 -a -g`, what an SRE runs by hand."""

    def __init__(self, workdir):
        super().__init__("perf record -F 99 -a -g",
                         ["perf", "record", "-F", "99", "-a", "-g", "-q",
                          "-o", os.path.join(workdir, "perf.data")], settle=1.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kinds", default="profile,offcpu,profile+offcpu,runq,timeline,dstate",
                    help="capture kinds, one variant each; a+b runs both in one window")
    ap.add_argument("--loops", type=int, default=100000)
    ap.add_argument("--workloads", default="pipe,syscall")
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()
    need_root()
    bystander = subprocess.Popen(["sleep", "100000"])
    out = {}
    try:
        with AgentOn(rules="rules: []\n", config_extra=(
                "capture:\n  max_seconds_per_hour: 3600\n  max_duration: 10s\n"
                "guard:\n  enabled: false\n")) as agent:
            variants = [Off()]
            for kind in args.kinds.split(","):
                kind = kind.replace("+", ",")
                variants.append(Capture(agent, kind))
                variants.append(Capture(agent, kind, pid=bystander.pid))
            if not args.no_peers and shutil.which("perf"):
                variants.append(PerfRecord(agent.dir))
            workloads = {
                "pipe": (f"perf bench sched pipe -l {args.loops} (pinned) under a capture, "
                         "usecs/op", lambda: sched_pipe(args.loops), "us/op"),
                "syscall": ("getppid loop (pinned) under a capture, ns/call",
                            syscall_loop, "ns"),
            }
            for w in args.workloads.split(","):
                title, fn, unit = workloads[w]
                out[w] = report(title, interleave(variants, fn, args.reps), unit=unit)
    finally:
        bystander.kill()
        bystander.wait()
    save("captures", out)


if __name__ == "__main__":
    main()
