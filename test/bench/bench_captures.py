#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Capture cost: how much a running capture slows a context-switch-heavy
workload, side by side with no capture, interleaved.

    test/bench/bench_captures.py [--reps N] [--kinds offcpu,runq,timeline,dstate,profile]

One agent (guard off, so nothing is cut short) runs every variant: "off" (the
agent with nothing attached), then each capture kind attached to the whole
host, and the same kinds filtered to another process (the cost every other
task pays for the target filter). The workload is pinned `perf bench sched
pipe` (usecs per round trip, lower is better); it runs while the capture is
attached, then the variant waits for the window to end.
"""
import argparse
import os
import subprocess
import time

from benchlib import (BIN, AgentOn, Variant, interleave, need_root, report, save, sched_pipe)

WINDOW_S = 3


class Capture(Variant):
    def __init__(self, agent, kind, pid=None):
        self.agent = agent
        self.kind = kind
        self.pid = pid
        self.name = kind + (" (other pid)" if pid else " (host)")

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


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kinds", default="offcpu,runq,timeline,dstate")
    ap.add_argument("--loops", type=int, default=100000)
    args = ap.parse_args()
    need_root()
    bystander = subprocess.Popen(["sleep", "100000"])
    try:
        with AgentOn(rules="rules: []\n", config_extra=(
                "capture:\n  max_seconds_per_hour: 3600\n  max_duration: 10s\n"
                "guard:\n  enabled: false\n")) as agent:
            variants = [Off()]
            for kind in args.kinds.split(","):
                variants.append(Capture(agent, kind))
                variants.append(Capture(agent, kind, pid=bystander.pid))
            out = report(f"perf bench sched pipe -l {args.loops} (pinned) under a capture, "
                         "usecs/op",
                         interleave(variants, lambda: sched_pipe(args.loops), args.reps),
                         unit="us/op")
    finally:
        bystander.kill()
        bystander.wait()
    save("captures", out)


if __name__ == "__main__":
    main()
