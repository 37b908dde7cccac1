#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Stack-id collisions: the kernel's stack-trace map against the content store
the captures use (probes/stackstore.bpf.h), sampling the same CPUs at the same
time, under a pre-fork server whose workers spread their time over thousands
of distinct stacks (the e2e culprit workload).

    test/bench/bench_stackstore.py [--seconds 10] [--sizes 16384,65536] [--hz 99]

For each size (capture.max_stacks): samples, stacks lost, % of samples that
lost a stack, and ns per sample of each scheme, side by side from one run.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from benchlib import built, need_root, save

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from workloads import CLIENT, NOFP_FLAGS, SERVER  # noqa: E402


def build(name, source, d):
    src = os.path.join(d, name + ".c")
    with open(src, "w") as f:
        f.write(source)
    exe = os.path.join(d, name)
    subprocess.run(["gcc", *NOFP_FLAGS, "-o", exe, src], check=True)
    return exe


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--sizes", default="16384,65536")
    ap.add_argument("--hz", type=int, default=99)
    args = ap.parse_args()
    need_root()
    exe = built("test", "bench", "bench_stackstore")
    d = tempfile.mkdtemp(prefix="autotrace-bench-")
    server, client = build("atserver", SERVER, d), build("atclient", CLIENT, d)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        secs = args.seconds + 2
        load = [subprocess.Popen([server, "6", str(secs)]), subprocess.Popen([client, str(secs)])]
        out = subprocess.run([exe, str(size), str(args.seconds), str(args.hz)],
                             capture_output=True, text=True, check=True).stdout
        for p in load:
            p.wait()
        for line in out.splitlines():
            r = json.loads(line)
            r["lost_pct"] = round(100.0 * r["stacks_lost"] / max(1, r["samples"]), 2)
            rows.append(r)
    print(f"{'max_stacks':>10}  {'scheme':<16} {'samples':>8} {'stacks lost':>11} "
          f"{'% of samples':>12} {'distinct kept':>13} {'ns/sample':>9}")
    for r in rows:
        print(f"{r['max_stacks']:>10}  {r['scheme']:<16} {r['samples']:>8} {r['stacks_lost']:>11} "
              f"{r['lost_pct']:>12} {r['stacks_kept']:>13} {r['ns_per_sample']:>9}")
    save("stackstore", {"rows": rows})


if __name__ == "__main__":
    main()
