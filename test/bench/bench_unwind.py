#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""DWARF unwinding of user stacks: depth and cost against `perf record
--call-graph dwarf` on the same workloads, in the same run.

    test/bench/bench_unwind.py [--reps N] [--seconds S] [--stack-size BYTES]

Workloads, each a process built without frame pointers (checked: none of its
.eh_frame FDEs uses rbp as the frame address):
  - unwind_target cpu: the test program (-O2 -fomit-frame-pointer), main ->
    unwind_chain_01 -> ... -> unwind_chain_12 -> burn, burning CPU;
  - xz -9 -T1 (Debian's xz-utils and liblzma): compressing generated text.

Variants, interleaved: the workload alone (off); the agent profiling it
(`autotrace trigger --capture profile --pid`) with unwind.mode auto and with
unwind.mode off (frame pointers only); `perf record --call-graph
dwarf,STACK -F 99 -p PID`. For each: median user depth of the workload's
samples, share of samples reaching main (main, __libc_start_call_main or
start_thread in the stack), the tool's CPU (agent during the window; perf
record + perf script, where perf does its unwinding), the workload's
throughput against off. Benchmarks measure; they never pass or fail.
"""
import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time

from benchlib import BIN, WORK_CPU, AgentOn, built, need_root, save

FREQ = 99
REACH = ("main", "__libc_start_call_main", "__libc_start_main", "start_thread")


def fde_rbp_share(path):
    """Share of a binary's FDEs whose CFA is ever rbp-based (frame pointers)."""
    out = subprocess.run(["readelf", "-wF", path], capture_output=True, text=True).stdout
    fdes = rbp = 0
    seen = False
    for line in out.splitlines():
        if " FDE " in line:
            fdes += 1
            seen = False
        elif not seen and re.search(r"\brbp\+\d+", line):
            rbp += 1
            seen = True
    return fdes, rbp


def proc_cpu_s(pid):
    """CPU seconds of a process (all its threads) and of its children: the
    sandboxed helpers the agent starts (symbolizer, unwinder) do work for it,
    live ones by their own counters, reaped ones in the parent's cutime/cstime."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15])
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += f.read().split()
    except OSError:
        pass
    return ticks / os.sysconf("SC_CLK_TCK") + sum(proc_cpu_s(int(k)) for k in kids)


class Workload:
    """Starts the program pinned to one CPU; stop() says how much work it did
    per second: unwind_target's loop iterations, or the bytes xz read."""

    def __init__(self, name, cmd, binaries, stdin=None):
        self.name, self.cmd, self.binaries, self.stdin = name, cmd, binaries, stdin

    def start(self):
        self.proc = subprocess.Popen(["taskset", "-c", WORK_CPU, *self.cmd],
                                     stdin=open(self.stdin) if self.stdin else None,
                                     stdout=subprocess.DEVNULL if self.stdin else subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        if not self.stdin:
            self.proc.stdout.readline()  # "ready": in the leaf
        self.t0 = time.monotonic()
        return self.proc.pid

    def stop(self):
        """Work units per second since start()."""
        wall = time.monotonic() - self.t0
        if self.stdin:
            with open(f"/proc/{self.proc.pid}/io") as f:
                units = int(re.search(r"rchar: (\d+)", f.read()).group(1))
            self.proc.kill()
            self.proc.wait()
        else:
            self.proc.terminate()
            out, _ = self.proc.communicate()
            units = int(re.search(r"iterations (\d+)", out).group(1))
        return units / wall


def depth_stats(stacks):
    """stacks: [(user frames root-first, weight)] -> median depth, share reaching main."""
    depths, reach, total = [], 0, 0
    for frames, w in stacks:
        depths += [len(frames)] * w
        total += w
        if any(f.split("+")[0] in REACH for f in frames):
            reach += w
    if not total:
        return 0, 0.0, 0
    return statistics.median(depths), reach / total, total


def folded_stacks(text, comm):
    out = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if frames[0] != comm[:15]:
            continue
        user = [f for f in frames[1:] if not f.endswith("_[k]")]
        out.append((user, int(count)))
    return out


def perf_stacks(text):
    """`perf script -F ip,sym,dso` callchains -> [(user frames root-first, 1)]."""
    out, cur = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            if cur:
                out.append((list(reversed(cur)), 1))
            cur = []
            continue
        parts = line.split(None, 1)
        if line.endswith("(inlined)"):
            continue
        if len(parts) < 2 or "kernel.kallsyms" in line or "[unknown]" in parts[1] and \
                int(parts[0], 16) >= 0xffff800000000000:
            continue
        sym = parts[1].rsplit(" (", 1)[0]
        cur.append(sym)
    if cur:
        out.append((list(reversed(cur)), 1))
    return out


def bpf_prog_ns(name):
    """(run_time_ns, run_cnt) of the loaded BPF programs called name (bpf_stats on)."""
    out = subprocess.run(["bpftool", "prog", "show", "name", name, "-j"], capture_output=True,
                         text=True).stdout
    import json
    try:
        progs = json.loads(out) if out.strip() else []
    except ValueError:
        return 0, 0
    if isinstance(progs, dict):
        progs = [progs]
    return (sum(p.get("run_time_ns", 0) for p in progs),
            sum(p.get("run_cnt", 0) for p in progs))


def run_autotrace(agent, wl, seconds):
    cfg = os.path.join(agent.dir, "autotrace.yaml")
    pid = wl.start()
    cpu0 = proc_cpu_s(agent.proc.pid)
    res = subprocess.run([BIN, "trigger", "-c", cfg, "--capture", "profile", "--pid", str(pid),
                          "--duration", f"{seconds}s"], capture_output=True, text=True,
                         check=True)
    tool_cpu = proc_cpu_s(agent.proc.pid) - cpu0
    ns, cnt = bpf_prog_ns("profile_sample")
    rate = wl.stop()
    d = re.search(r"written to (\S+)", res.stdout).group(1)
    with open(os.path.join(d, "profile.folded")) as f:
        folded = f.read()
    import json
    with open(os.path.join(d, "incident.json")) as f:
        cap = json.load(f)["captures"][0]
    cap["bpf_ns_per_sample"] = ns / cnt if cnt else 0
    return folded_stacks(folded, os.path.basename(wl.cmd[0])), tool_cpu, rate, cap


def run_perf(wl, seconds, stack_size, workdir):
    data = os.path.join(workdir, "perf.data")
    pid = wl.start()
    rec = subprocess.Popen(["perf", "record", "-q", "-F", str(FREQ), "--call-graph",
                            f"dwarf,{stack_size}", "-p", str(pid), "-o", data, "--",
                            "sleep", str(seconds)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(rec.pid, 0)
    rate = wl.stop()
    rec_cpu = ru.ru_utime + ru.ru_stime
    t = time.monotonic()
    # --no-inline: perf would list inlined functions as frames of their own
    script = subprocess.Popen(["perf", "script", "--no-inline", "-i", data, "-F", "ip,sym,dso"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    text, _ = script.communicate()
    _, _, ru2 = os.wait4(script.pid, 0) if script.returncode is None else (0, 0, None)
    script_cpu = (ru2.ru_utime + ru2.ru_stime) if ru2 else time.monotonic() - t
    size = os.path.getsize(data)
    os.unlink(data)
    return perf_stacks(text), rec_cpu, script_cpu, rate, size


def make_xz_input(path, mb):
    words = [''.join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(2, 9)))
             for _ in range(5000)]
    with open(path, "w") as f:
        for _ in range(mb * 1024 * 1024 // 64):
            f.write(" ".join(random.choice(words) for _ in range(10)) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--stack-size", type=int, default=16384)
    ap.add_argument("--workloads", default="unwind_target,xz")
    args = ap.parse_args()
    need_root()
    random.seed(1)
    work = tempfile.mkdtemp(prefix="autotrace-bench-unwind-")
    xz_in = os.path.join(work, "input.txt")
    workloads = []
    for w in args.workloads.split(","):
        if w == "unwind_target":
            target = built("test", "unwind_target")
            workloads.append(Workload("unwind_target (-O2 -fomit-frame-pointer, 12-link chain)",
                                      [target, "cpu", str(args.seconds + 30)], [target]))
        elif w == "xz":
            make_xz_input(xz_in, 64)
            workloads.append(Workload("xz -9 -T1 (Debian xz-utils 5.4, liblzma)",
                                      ["xz", "-9", "-T1", "-c"],
                                      [shutil.which("xz"),
                                       "/lib/x86_64-linux-gnu/liblzma.so.5"], stdin=xz_in))
    print("# DWARF unwinding vs perf record --call-graph dwarf "
          f"(stack {args.stack_size} bytes, {FREQ} Hz, {args.seconds} s windows, "
          f"{args.reps} interleaved runs)")
    for wl in workloads:
        for b in wl.binaries:
            fdes, rbp = fde_rbp_share(b)
            print(f"- {b}: {fdes} FDEs, {rbp} with an rbp-based CFA (frame pointers)")
    extra = lambda mode: (  # noqa: E731
        "capture:\n  max_seconds_per_hour: 3600\n  max_duration: 60s\n"
        "guard:\n  enabled: false\n"
        f"unwind:\n  mode: {mode}\n  stack_size: {args.stack_size}\n  cpu_pct: 100\n")
    results = {}
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        stats_was = f.read().strip()
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    try:
        for wl in workloads:
            rows = {k: [] for k in ("off", "autotrace (unwind auto)", "autotrace (unwind off)",
                                    "perf --call-graph dwarf")}
            for _ in range(args.reps):
                wl.start()
                time.sleep(args.seconds)
                rows["off"].append({"rate": wl.stop()})
                for mode in ("auto", "off"):
                    with AgentOn(rules="rules: []\n", config_extra=extra(mode)) as agent:
                        stacks, tool_cpu, rate, cap = run_autotrace(agent, wl, args.seconds)
                    med, reach, n = depth_stats(stacks)
                    rows[f"autotrace (unwind {mode})"].append(
                        {"depth": med, "reach": reach, "samples": n, "tool_cpu": tool_cpu,
                         "rate": rate,
                         "bpf_ns": cap["bpf_ns_per_sample"],
                         "unwind_us": (cap.get("unwind", {}).get("cpu_ms", 0) * 1000 /
                                       max(1, cap.get("unwind", {}).get("samples", 0))),
                         "unwind": cap.get("unwind", {}),
                         "failed": cap.get("unwind_failed", 0),
                         "truncated": cap.get("unwind_truncated", 0)})
                stacks, rec_cpu, script_cpu, rate, size = run_perf(
                    wl, args.seconds, args.stack_size, work)
                med, reach, n = depth_stats(stacks)
                rows["perf --call-graph dwarf"].append(
                    {"depth": med, "reach": reach, "samples": n, "tool_cpu": rec_cpu,
                     "post_cpu": script_cpu, "rate": rate, "bytes": size})
            results[wl.name] = rows
            report(wl.name, rows)
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(stats_was)
        shutil.rmtree(work, ignore_errors=True)
    save("unwind", {"stack_size": args.stack_size, "seconds": args.seconds,
                    "results": results})


def report(name, rows):
    med = lambda rs, k: statistics.median(r[k] for r in rs) if rs and k in rs[0] else None  # noqa
    perf_depth = med(rows["perf --call-graph dwarf"], "depth")
    print(f"\n## {name}")
    off = med(rows["off"], "rate")
    print("| variant | median user depth | vs perf | samples reaching main | samples "
          "| tool CPU in window, s | post-processing CPU, s | workload throughput vs off |")
    print("|---|---|---|---|---|---|---|---|")
    for k, rs in rows.items():
        d = med(rs, "depth")
        cells = [k,
                 f"{d:.0f}" if d is not None else "",
                 f"{100 * d / perf_depth:.0f}%" if d is not None and perf_depth else "",
                 f"{100 * med(rs, 'reach'):.1f}%" if d is not None else "",
                 f"{med(rs, 'samples'):.0f}" if d is not None else "",
                 f"{med(rs, 'tool_cpu'):.3f}" if med(rs, "tool_cpu") is not None else "",
                 f"{med(rs, 'post_cpu'):.3f}" if med(rs, "post_cpu") is not None else "",
                 f"{100 * (med(rs, 'rate') / off - 1):+.1f}%"]
        print("| " + " | ".join(cells) + " |")
    for k in ("autotrace (unwind auto)", "autotrace (unwind off)"):
        if rows[k]:
            print(f"{k}: BPF profile_sample {med(rows[k], 'bpf_ns'):.0f} ns per sample"
                  + (f", the agent's time unwinding (its unwind.cpu_ms: helper round trips "
                        f"included) {med(rows[k], 'unwind_us'):.1f} us per sample"
                     if "auto" in k else ""))
    auto = rows["autotrace (unwind auto)"]
    if auto:
        u = auto[len(auto) // 2]
        print(f"\nautotrace unwind (middle run): {u['unwind']}, unwind_failed {u['failed']}, "
              f"unwind_truncated {u['truncated']}")
    p = rows["perf --call-graph dwarf"]
    if p:
        print(f"perf.data: {statistics.median(r['bytes'] for r in p) / 1e6:.1f} MB per window")


if __name__ == "__main__":
    main()
