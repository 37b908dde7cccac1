#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Symbolizer throughput and memory, side by side with eu-addr2line (elfutils)
on the same addresses of the same running process, and the cost of parsing
tenants' binaries in the sandboxed helper rather than in the process itself.

    test/bench/bench_symbolize.py [--frames N] [--reps N]

The target is the autotrace binary itself (RelWithDebInfo: .symtab and DWARF)
kept running by `autotrace metrics` with a long interval, plus libc. N
addresses are drawn inside its function symbols and libc's exported
functions; each tool resolves all of them in one process (`autotrace
symbolize --pid P` and `eu-addr2line --pid P -f`), reading them from standard
input. Reported: frames per second (wall), peak RSS of the tool, and how many
function names the two agree on. eu-addr2line also reads DWARF (source lines,
inlined functions), so it does more per frame; autotrace reads symbol tables
only, which is what incidents carry. `autotrace symbolize --in-process`
parses in its own process, as the agent did before the sandboxed helper: the
two side by side are the helper's cost, warm (the tables read, frames looked
up) and cold (one frame in each of the process's binaries, each binary read
through the helper or in process, from a fresh command each time).
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import BIN, need_root, save


def exec_ranges(pid):
    """(start, end, offset, path) of the file-backed executable mappings."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and "x" in parts[1] and parts[5].startswith("/"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                out.append((start, end, int(parts[2], 16), parts[5]))
    return out


def function_addresses(path, dynamic):
    """File-relative virtual addresses of function symbols, and PT_LOAD info."""
    args = ["nm", "--defined-only", "-S"] + (["-D"] if dynamic else []) + [path]
    r = subprocess.run(args, capture_output=True, text=True)
    funcs = []
    for line in r.stdout.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "Tt":
            addr, size = int(p[0], 16), int(p[1], 16)
            if size > 4:
                funcs.append((addr, size))
    return funcs


def load_bias(pid, path):
    """The runtime address of the file's first byte (PIE and shared objects)."""
    first = min((s - off for s, e, off, p in exec_ranges(pid) if p == path), default=None)
    if first is None:
        raise RuntimeError(f"{path} not mapped in {pid}")
    # the lowest mapping of the file, any permission
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == path and int(parts[2], 16) == 0:
                return int(parts[0].split("-")[0], 16)
    return first


def draw(pid, frames):
    rng = random.Random(7)
    out = []
    ranges = exec_ranges(pid)
    paths = sorted({p for _, _, _, p in ranges})
    exe = os.path.realpath(BIN)
    libc = next((p for p in paths if "/libc.so" in p), None)
    for path, dynamic, share in ((exe, False, 0.8), (libc, True, 0.2)):
        if not path:
            continue
        funcs = function_addresses(path, dynamic)
        bias = load_bias(pid, path)
        for _ in range(int(frames * share)):
            a, size = rng.choice(funcs)
            out.append(bias + a + rng.randrange(1, size))
    rng.shuffle(out)
    return out


def run_tool(cmd, addresses):
    text = "".join(f"0x{a:x}\n" for a in addresses)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    out, _ = p.communicate(text)
    return time.monotonic() - t0, out


def peak_rss_mib(cmd, addresses):
    """Runs cmd once more under /usr/bin/time for its maximum RSS."""
    text = "".join(f"0x{a:x}\n" for a in addresses)
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, input=text, capture_output=True,
                       text=True)
    return int(r.stderr.strip().splitlines()[-1]) / 1024


def cold_runs(pid, reps, baseline=None):
    """One address in each executable file pid maps: every one a table to read."""
    firsts = {}
    for start, end, off, path in exec_ranges(pid):
        firsts.setdefault(path, start + (end - start) // 2)
    addrs = [f"0x{a:x}" for a in firsts.values()]
    modes = [("sandboxed helper", [BIN]), ("in process", [BIN, "--in-process"])]
    if baseline:
        modes.append(("baseline", [baseline]))
    out = {"binaries": len(addrs), **{m: [] for m, _ in modes}}
    for _ in range(reps):
        for mode, cmd in modes:
            t0 = time.monotonic()
            subprocess.run([cmd[0], "symbolize", *cmd[1:], "--pid", str(pid), *addrs],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            out[mode].append((time.monotonic() - t0) * 1000)
    return out


def names_autotrace(out):
    names = []
    for line in out.splitlines():
        p = line.split()
        names.append(p[1].rsplit("+", 1)[0] if len(p) > 1 and p[1] != "?" else None)
    return names


def names_eu(out):
    """eu-addr2line -a -f: the address, the function, then file:line, for each
    address. An inlined frame reads "INNER inlined at FILE:LINE in OUTER": the
    symbol table names OUTER, so that is what is compared."""
    names, lines = [], out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("0x") and i + 1 < len(lines):
            fn = lines[i + 1]
            if " inlined at " in fn:
                fn = fn.rsplit(" in ", 1)[-1]
            fn = fn.split(" ")[0]
            names.append(None if fn.startswith("??") else fn)
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=50000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--baseline", metavar="BIN",
                    help="another autotrace binary (say, one built before the sandboxed "
                         "helper) run side by side as well")
    args = ap.parse_args()
    need_root()
    if not shutil.which("eu-addr2line"):
        sys.exit("eu-addr2line not found (elfutils)")
    target = subprocess.Popen([BIN, "metrics", "--count", "1000000", "--interval", "60s"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        addrs = draw(target.pid, args.frames)
        tools = {
            "autotrace symbolize": [BIN, "symbolize", "--pid", str(target.pid)],
            "autotrace symbolize --in-process": [BIN, "symbolize", "--in-process", "--pid",
                                                 str(target.pid)],
            "eu-addr2line": ["eu-addr2line", "--pid", str(target.pid), "-f", "-a", "-C"],
        }
        if args.baseline:
            tools["baseline autotrace symbolize"] = [args.baseline, "symbolize", "--pid",
                                                     str(target.pid)]
        walls = {k: [] for k in tools}
        outs = {}
        for _ in range(args.reps):
            for name, cmd in tools.items():
                w, out = run_tool(cmd, addrs)
                walls[name].append(w)
                outs[name] = out
        rss = {name: peak_rss_mib(cmd, addrs) for name, cmd in tools.items()}
        cold = cold_runs(target.pid, args.reps, args.baseline)
    finally:
        target.kill()
        target.wait()

    ours = names_autotrace(outs["autotrace symbolize"])
    theirs = names_eu(outs["eu-addr2line"])
    both = sum(1 for a, b in zip(ours, theirs) if a and b and (a == b or a in b or b in a))
    resolved = {"autotrace symbolize": sum(1 for a in ours if a),
                "autotrace symbolize --in-process": sum(
                    1 for a in names_autotrace(outs["autotrace symbolize --in-process"]) if a),
                "eu-addr2line": sum(1 for b in theirs if b)}
    if args.baseline:
        resolved["baseline autotrace symbolize"] = sum(
            1 for a in names_autotrace(outs["baseline autotrace symbolize"]) if a)

    print(f"\n## {len(addrs)} frames in {target.pid}'s autotrace binary (80%) and libc (20%)")
    print("| tool | frames/s, median | min | max | peak RSS MiB | resolved |")
    print("|---|---|---|---|---|---|")
    result = {}
    for name in tools:
        fps = [len(addrs) / w for w in walls[name]]
        med = statistics.median(fps)
        result[name] = {"fps_median": med, "rss_mib": rss[name], "resolved": resolved[name]}
        print(f"| {name} | {med:,.0f} | {min(fps):,.0f} | {max(fps):,.0f} | "
              f"{rss[name]:.1f} | {resolved[name]} |")
    ratio = result["autotrace symbolize"]["fps_median"] / result["eu-addr2line"]["fps_median"]
    sandbox = (result["autotrace symbolize --in-process"]["fps_median"]
               / result["autotrace symbolize"]["fps_median"])
    print(f"\nautotrace / eu-addr2line throughput: {ratio:.2f}x; "
          f"same function name on {both} of {len(addrs)} frames")
    print(f"in process / sandboxed helper throughput: {sandbox:.2f}x")
    nbin = cold["binaries"]
    print(f"\n## cold: one frame in each of the {nbin} binaries {target.pid} maps, "
          f"a fresh command each run")
    print("| mode | ms per run, median | min | max | ms per binary |")
    print("|---|---|---|---|---|")
    for mode in [m for m in cold if m != "binaries"]:
        ms = cold[mode]
        print(f"| {mode} | {statistics.median(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} | "
              f"{statistics.median(ms) / nbin:.2f} |")
    cold_ratio = statistics.median(cold["sandboxed helper"]) / statistics.median(cold["in process"])
    print(f"\nsandboxed / in process, cold: {cold_ratio:.2f}x the time")
    save("symbolize", {"frames": len(addrs), "tools": result, "agree": both,
                       "sandbox_warm_ratio": sandbox, "cold": cold, "cold_ratio": cold_ratio})


if __name__ == "__main__":
    main()
