#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""What the watch layer costs on a dense node (issue 16), step by step.

The agent runs its default rules (dry run: evaluated, nothing attached) on a
node grown step by step, in two cgroup layouts:

- v1: this host's controllers (cgroup v1 or hybrid), every container cgroup
  created in cpu, cpuacct, cpuset, memory, pids and blkio, as runtimes do;
- v2: a private cgroup2 mount (the agent runs in a mount namespace of its own
  with cgroup2 at /sys/fs/cgroup), containers created in the v2 hierarchy.

Steps: 0, 250, 500, 1000, 2000 container cgroups with one process each; 1k,
10k and 30k threads (processes of 50 threads, spread over the containers);
and the target point, 1000 containers with 20000 threads. A share of the
threads (--wakers, 10%) wakes once a second, as runtimes' timer and
housekeeping threads do; the rest sleep. For each step, once the agent has settled (a full cgroup
scan after start), over --seconds:

- agent CPU, % of one core, from the scheduler's exact per-thread accounting;
- each watcher's agent CPU per round (status sample_us_avg, as a delta);
- RSS (max over the window) and the peak since start (VmHWM);
- cgroups watched, found and dropped; tasks the iterator visited;
- the cost per watched cgroup and per thread (least-squares slopes);
- which task pass ran (the one-run walk, or task by task).

With --baseline, the cgroup and thread steps also run another build on the
same population, for before/after ratios; with --reps N, each of those steps
runs N times (the builds in turn) and the tables show medians: one run of a
step moves by up to a fifth with what else the host does.

Churn (--churn): containers start and stop at --churn-rate per second for
--churn-seconds on top of 250 containers, rules armed; then it checks for
leaks (agent fds, RSS, BPF map entries), stale series (labelled series back
to where they were once the history window passed) and containers found late
(a container that lived a full scan period must have appeared in the watched
set within one scan period plus one interval of its start, from the agent's
debug log).

    sudo AUTOTRACE_BIN=build/autotrace test/bench/bench_scale.py \\
        [--layouts v1,v2] [--steps cgroups,threads,target,churn] [--seconds 20] \\
        [--baseline OTHER_BUILD] [--reps N]

It prints Markdown tables (docs/performance.md keeps the results) and never
fails on the numbers. Global state it changes (kernel.pid_max when 30k
threads need it, the cgroups it creates, a cgroup2 mount when none exists) is
restored on exit.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import BIN, HERE, SRC, AgentOn, build_c, machine, need_root, save

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from promlib import CgroupSeriesPoller  # noqa: E402

CG = "/sys/fs/cgroup"
V1_CTRLS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio")
THREADS_PER_PROC = 50
WATCHERS = ("cpustat", "psi", "memstat", "diskstats", "cgroups", "taskwatch")


def fs_type(path):
    out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return out.stdout.strip()


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            p = line.split()
            if p[2] == "cgroup2":
                return p[1]
    return None


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


class Layout:
    """Where containers are created and how the agent is started to see them."""

    def __init__(self, name):
        self.name = name
        self.top = f"/autotrace-bench-{os.getpid()}"
        self.own_mount = None
        if name == "v1":
            if fs_type(CG) == "cgroup2fs":
                raise RuntimeError("no cgroup v1 controllers on this host")
            seen, self.roots = set(), []
            for c in V1_CTRLS:
                d = os.path.realpath(os.path.join(CG, c))
                if os.path.isdir(d) and d not in seen:
                    seen.add(d)
                    self.roots.append(d)
            self.wrap = []
        else:
            m = cgroup2_mount()
            if not m:
                m = tempfile.mkdtemp(prefix="autotrace-bench-cg2-")
                subprocess.run(["mount", "-t", "cgroup2", "cgroup2", m], check=True)
                self.own_mount = m
            self.roots = [m]
            # the agent sees nothing but the v2 hierarchy at /sys/fs/cgroup
            self.wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                         f"mount -t cgroup2 cgroup2 {CG} && exec \"$@\"", "autotrace"]
        for r in self.roots:
            self.mkdir(os.path.join(r + self.top))

    def mkdir(self, d):
        os.mkdir(d)
        if "/cpuset" in d:
            parent = os.path.dirname(d)
            for f in ("cpuset.cpus", "cpuset.mems"):
                write(os.path.join(d, f), read(os.path.join(parent, f)))

    def create(self, rel):
        """Creates container cgroup rel (below the bench's top) everywhere;
        returns the cgroup.procs files a process joins it with."""
        procs = []
        for r in self.roots:
            d = r + self.top + rel
            self.mkdir(d)
            procs.append(os.path.join(d, "cgroup.procs"))
        return procs

    def remove(self, rel, deadline=None):
        """Removes a container cgroup once its processes are gone (killed
        processes with thousands of threads take a while to be reaped)."""
        deadline = deadline or time.time() + 60
        for r in self.roots:
            d = r + self.top + rel
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)

    def close(self):
        deadline = time.time() + 120
        for r in self.roots:
            top = r + self.top
            if os.path.isdir(top):
                for name in os.listdir(top):
                    if os.path.isdir(os.path.join(top, name)):
                        self.remove("/" + name, deadline)
                self.remove("", deadline)
        if self.own_mount:
            subprocess.run(["umount", self.own_mount], check=False)
            os.rmdir(self.own_mount)


def container_name(i, tag="c"):
    return "/" + hashlib.sha256(f"{tag}{i}".encode()).hexdigest()


class Population:
    """ncg containers with one process each, threads spread over them (or over
    processes of THREADS_PER_PROC in the bench's own cgroup when ncg is 0)."""

    def __init__(self, layout, ncg, threads, wakers):
        self.layout = layout
        self.names = [container_name(i) for i in range(ncg)]
        lines = []
        procs_files = [layout.create(n) for n in self.names]
        nproc = max(ncg, -(-threads // THREADS_PER_PROC)) if threads else ncg
        total = max(threads, nproc)
        for p in range(nproc):
            t = total // nproc + (1 if p < total % nproc else 0)
            w = int(round(t * wakers))
            files = procs_files[p % ncg] if ncg else []
            lines.append(f"{t} {w} {' '.join(files)}\n")
        self.spec = tempfile.NamedTemporaryFile("w", prefix="autotrace-bench-pop-", delete=False)
        self.spec.writelines(lines)
        self.spec.close()
        exe = build_c("scale_pop", read(os.path.join(HERE, "scale_pop.c")), libs=["-pthread"])
        self.proc = subprocess.Popen([exe, self.spec.name], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.close()
            raise RuntimeError(f"population of {ncg} cgroups, {threads} threads did not start")
        self.nproc, self.threads = nproc, total

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.time() + 120
        for n in self.names:
            self.layout.remove(n, deadline)
        os.unlink(self.spec.name)


# --- what the agent costs -------------------------------------------------------

def proc_cpu_ns(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(read(f"/proc/{pid}/task/{tid}/schedstat").split()[0])
        except (OSError, ValueError):
            pass
    return total


def status_kib(pid, key):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def agent_pid(agent):
    """The autotrace process (under unshare/sh the Popen child execs into it)."""
    return agent.proc.pid


def status(agent):
    out = subprocess.run([agent.bin, "status", "--json", "--socket",
                          os.path.join(agent.dir, "control.sock")],
                         capture_output=True, text=True, timeout=60)
    if out.returncode:
        raise RuntimeError("status: " + out.stderr)
    st = json.loads(out.stdout)
    return st.get("result", st)


def watchers(st):
    return {w["name"]: w for w in st.get("watchers", [])}


def per_round(w0, w1):
    """Agent CPU per round between two status snapshots, µs."""
    n = w1.get("samples", 0) - w0.get("samples", 0)
    if n <= 0:
        return None
    return (w1["sample_us_avg"] * w1["samples"] - w0["sample_us_avg"] * w0["samples"]) / n


class Agent(AgentOn):
    """The agent with its default rules, dry run, started to see the layout."""

    def __init__(self, layout, config_extra="", agent_extra="", bin=None):
        super().__init__(f"scale-{layout.name}", config_extra=config_extra, dry_run=True,
                         wrap=layout.wrap, agent_extra=agent_extra, bin=bin)


def measure(layout, agent, seconds, settle):
    time.sleep(settle)
    pid = agent_pid(agent)
    st0, c0, t0 = status(agent), proc_cpu_ns(pid), time.monotonic()
    rss = 0
    while time.monotonic() - t0 < seconds:
        time.sleep(1)
        rss = max(rss, status_kib(pid, "VmRSS"))
    c1, t1 = proc_cpu_ns(pid), time.monotonic()
    st1 = status(agent)
    w0, w1 = watchers(st0), watchers(st1)
    cg, tw = w1.get("cgroups", {}), w1.get("taskwatch", {})
    return {
        "cpu_pct": 100.0 * (c1 - c0) / ((t1 - t0) * 1e9),
        "rss_mib": rss / 1024,
        "hwm_mib": status_kib(pid, "VmHWM") / 1024,
        "us_per_round": {n: per_round(w0.get(n, {}), w1[n]) for n in WATCHERS if n in w1},
        "cgroups_watched": cg.get("cgroups"),
        "cgroups_found": cg.get("cgroups_found"),
        "cgroups_dropped": cg.get("cgroups_dropped"),
        "scan_us": cg.get("scan_us"),
        "files_open": cg.get("files_open"),
        "tasks": tw.get("tasks"),
        "tasks_idle": tw.get("tasks_idle"),
        "series": st1["agent"].get("metric_series"),
        "cgroups_state": cg.get("state"),
        "taskwatch_state": tw.get("state"),
        "reader": cg.get("reader"),
        "walk": tw.get("walk"),
        "every": {n: w1[n].get("every") for n in ("cgroups", "taskwatch") if n in w1},
        "guard": (st1.get("guard") or {}).get("watch"),
    }


# --- churn -------------------------------------------------------------------

def agent_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


BPF_HASH_TYPES = {1, 5, 9, 10}  # hash, percpu hash, LRU hash, LRU percpu hash


def bpf_map_entries(pid):
    """Entries in the agent's hash maps (the maps that grow with what is
    watched; arrays are fixed, task storage goes with its tasks): {map id: n}."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-map":
                continue
            info = dict(line.split(":\t", 1) for line in
                        read(f"/proc/{pid}/fdinfo/{fd}").splitlines() if ":\t" in line)
        except OSError:
            continue
        if int(info.get("map_type", "0")) not in BPF_HASH_TYPES or "map_id" not in info:
            continue
        mid = int(info["map_id"])
        if mid in out:
            continue
        dump = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(mid)],
                              capture_output=True, text=True)
        out[mid] = len(json.loads(dump.stdout or "[]")) if dump.returncode == 0 else None
    return out


class Churn:
    """Containers that start and stop at `rate` per second, each living `life`
    seconds: a cgroup created (in every controller of the layout), a process
    started in it, then killed, reaped and its cgroup removed."""

    def __init__(self, layout, rate, life, tag):
        self.layout, self.rate, self.life, self.tag = layout, rate, life, tag
        self.live = []  # (stop at, name, Popen)
        self.started = {}  # name -> start time
        self.stopped = {}  # name -> stop time
        self.n = 0

    def start_one(self):
        name = "/" + self.tag + hashlib.sha256(f"{self.tag}{self.n}".encode()).hexdigest()[:40]
        self.n += 1
        files = self.layout.create(name)
        # the process joins its cgroups before it runs anything, as a runtime's
        p = subprocess.Popen(["sh", "-c", 'for f; do echo $$ > "$f"; done; exec sleep 3600',
                              "sh", *files], stdin=subprocess.DEVNULL)
        t = time.monotonic()
        self.started[name[1:]] = t
        self.live.append((t + self.life, name, p))

    def stop_one(self, name, p):
        p.kill()
        p.wait()
        self.layout.remove(name, time.time() + 30)
        self.stopped[name[1:]] = time.monotonic()

    def run(self, seconds):
        t0 = time.monotonic()
        next_start = t0
        while time.monotonic() - t0 < seconds:
            now = time.monotonic()
            while next_start <= now:
                self.start_one()
                next_start += 1.0 / self.rate
            while self.live and self.live[0][0] <= now:
                _, name, p = self.live.pop(0)
                self.stop_one(name, p)
            time.sleep(max(0.0, min(next_start, self.live[0][0] if self.live else next_start)
                           - time.monotonic()))
        self.close()
        return time.monotonic() - t0

    def close(self):
        while self.live:
            _, name, p = self.live.pop(0)
            self.stop_one(name, p)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leak_snapshot(agent):
    pid = agent_pid(agent)
    st = status(agent)
    cg = watchers(st).get("cgroups", {})
    maps = bpf_map_entries(pid)
    return {"fds": agent_fds(pid), "rss_kib": status_kib(pid, "VmRSS"),
            "hwm_kib": status_kib(pid, "VmHWM"), "series": st["agent"].get("metric_series"),
            "watched": cg.get("cgroups"), "appeared": cg.get("cgroups_appeared"),
            "vanished": cg.get("cgroups_vanished"), "reader": cg.get("reader"),
            "map_entries": sum(v for v in maps.values() if v is not None),
            "maps": maps, "every": watchers(st).get("cgroups", {}).get("every", 1),
            "dropped": cg.get("cgroups_dropped")}


def churn_phase(layout, agent, expo, args, tag, interval_s, scan_s, history_s):
    """One minute (--churn-seconds) of churn, then the history window and two
    sweeps; what the agent holds before and after, and how soon it saw each."""
    before = leak_snapshot(agent)
    churn = Churn(layout, args.churn_rate, args.churn_life, tag)
    expo.every.clear()
    took = churn.run(args.churn_seconds)
    mid = leak_snapshot(agent)
    time.sleep(history_s + 16 * interval_s + 2)
    after = leak_snapshot(agent)
    # a container is found within one scan period (plus a round and a poll);
    # the scan period is the interval times the rounds between the cgroup
    # passes, which the guard widens (the cgroupfs reader: watch.cgroup_scan)
    def bound(t0, t1):
        rounds = expo.every_max(t0, t1) * interval_s
        return (rounds if after["reader"] == "iterator" else max(rounds, scan_s)) \
            + interval_s + 2 * expo.period

    lat, late, missed, stale, bounds = [], 0, 0, 0, []
    for name, t in churn.started.items():
        first = expo.first.get(name)
        stop = churn.stopped.get(name, time.monotonic())
        b = bound(t, first if first is not None else stop)
        bounds.append(b)
        if first is not None:
            lat.append(first - t)
            late += first - t > b
        elif stop - t >= b:
            missed += 1
        last = expo.last.get(name)
        if last is not None and last - stop > bound(stop, last):
            stale += 1
    lat.sort()
    return {"started": len(churn.started), "seconds": took, "before": before, "mid": mid,
            "after": after, "bound_s": max(bounds or [0]), "found": len(lat), "late": late,
            "every_max": expo.every_max(0, time.monotonic()),
            "missed": missed, "stale_exposed": stale,
            "latency_p50": lat[len(lat) // 2] if lat else None,
            "latency_max": lat[-1] if lat else None}


def bench_churn(layout, args, out):
    port = free_port()
    interval_s, history_s = 1.0, args.churn_history
    pop = Population(layout, args.churn_base, 0, args.wakers)
    rows = []
    try:
        with Agent(layout, config_extra=f"metrics:\n  listen: 127.0.0.1:{port}\n"
                   + args.config_extra, agent_extra=f"  history: {history_s}s\n") as agent:
            time.sleep(args.settle)
            expo = CgroupSeriesPoller(f"http://127.0.0.1:{port}/metrics", "churn")
            try:
                st = leak_snapshot(agent)
                scan_s = 5.0  # watch.cgroup_scan: the cgroupfs reader's walks
                for i in range(args.churn_phases):
                    rows.append(churn_phase(layout, agent, expo, args, f"churn{i}x",
                                            interval_s, scan_s, history_s))
            finally:
                expo.close()
            polls, errors = expo.polls, len(expo.errors)
    finally:
        pop.close()
    print(f"\n### churn, cgroup {layout.name}: {args.churn_rate}/s for {args.churn_seconds} s, "
          f"each container {args.churn_life} s, over {args.churn_base} containers; "
          f"history {history_s} s; endpoint polled {polls} times ({errors} errors)\n")
    print("| phase | started | found (late) / missed | found after p50 / max s (widest bound) | "
          "cgroup passes every (widest) | "
          "exposed > bound after stop | fds before → after | hash map entries before → during "
          "→ after | series before → during → after | watched before → after | RSS MiB before "
          "→ after (peak) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        b, m, a = r["before"], r["mid"], r["after"]
        print(f"| {i + 1} | {r['started']} | {r['found']} ({r['late']}) / {r['missed']} | "
              f"{fmt(r['latency_p50'], '.2f')} / {fmt(r['latency_max'], '.2f')} "
              f"({r['bound_s']:.2f}) | {r['every_max']} | {r['stale_exposed']} | "
              f"{b['fds']} → {a['fds']} | "
              f"{b['map_entries']} → {m['map_entries']} → {a['map_entries']} | "
              f"{b['series']} → {m['series']} → {a['series']} | {b['watched']} → {a['watched']} | "
              f"{b['rss_kib'] / 1024:.1f} → {a['rss_kib'] / 1024:.1f} "
              f"({a['hwm_kib'] / 1024:.1f}) |")
    sys.stdout.flush()
    out[layout.name + "_churn"] = rows


def fmt(v, spec=".0f"):
    return "—" if v is None else format(v, spec)


def slope(points):
    """Least-squares slope of [(x, y)]."""
    pts = [(x, y) for x, y in points if x is not None and y is not None]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None


def print_rows(title, rows):
    print(f"\n### {title}\n")
    print("| step | threads | agent CPU % | cgroups µs/round | taskwatch µs/round | other "
          "watchers µs | sampled every (cgroups, tasks) | RSS MiB | peak MiB | watched / found "
          "(dropped) | tasks (idle) | series |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["m"]
        u = m["us_per_round"]
        other = sum(v for k, v in u.items() if k not in ("cgroups", "taskwatch") and v)
        print(f"| {r['step']} | {r['threads']} | {m['cpu_pct']:.3f} | {fmt(u.get('cgroups'))} | "
              f"{fmt(u.get('taskwatch'))} | {other:.0f} | "
              f"{fmt(m['every'].get('cgroups'))}, {fmt(m['every'].get('taskwatch'))} | "
              f"{m['rss_mib']:.1f} | "
              f"{m['hwm_mib']:.1f} | {fmt(m['cgroups_watched'])} / {fmt(m['cgroups_found'])} "
              f"({fmt(m['cgroups_dropped'])}) | {fmt(m['tasks'])} ({fmt(m['tasks_idle'])}) | "
              f"{fmt(m['series'])} |")
    sys.stdout.flush()


# the build before (--baseline): every cgroup watched, its other keys at their defaults
BASELINE_CONFIG = "watch:\n  max_cgroups: 4096\n"


def median_of(runs):
    """One measurement from several of the same step: the median of each
    figure (a run's figures can move together with what else the host does,
    so each is taken on its own), the rest from the first run."""
    if len(runs) == 1:
        return runs[0]
    m = dict(runs[0])
    m["cpu_pct"] = statistics.median(r["cpu_pct"] for r in runs)
    m["rss_mib"] = statistics.median(r["rss_mib"] for r in runs)
    m["us_per_round"] = {n: statistics.median(r["us_per_round"][n] for r in runs)
                         for n in runs[0]["us_per_round"]
                         if all(r["us_per_round"].get(n) is not None for r in runs)}
    m["runs"] = len(runs)
    return m


def run_step(layout, ncg, threads, args, config_extra="", settle=7.0, baseline=False):
    pop = Population(layout, ncg, threads, args.wakers)
    runs, bases = [], []
    try:
        # with a baseline, the two builds take turns on the same population
        # (after, before, before, after, ...): the host's own drift over the
        # step then weighs on both alike
        for rep in range(args.reps if baseline else 1):
            order = ["after", "before"] if rep % 2 == 0 else ["before", "after"]
            for which in order:
                if which == "after":
                    with Agent(layout, config_extra=config_extra) as agent:
                        runs.append(measure(layout, agent, args.seconds, settle))
                elif baseline and args.baseline:
                    with Agent(layout, config_extra=BASELINE_CONFIG, bin=args.baseline) as agent:
                        bases.append(measure(layout, agent, args.seconds, settle))
    finally:
        pop.close()
    return {"cgroups": ncg, "threads": pop.threads, "m": median_of(runs),
            "base": median_of(bases) if bases else None}


# the cost of sampling everything every round: the guard never widens
FULL_RATE = "guard:\n  watch_cpu: 0ms\n"


def steps_of(args):
    """(label, cgroups, threads, config, settle seconds)."""
    out = []
    if "cgroups" in args.steps:
        out += [(f"{n} cgroups", n, 0, FULL_RATE, args.settle) for n in args.cgroups]
    if "threads" in args.steps:
        out += [(f"{t} threads", 0, t, FULL_RATE, args.settle) for t in args.threads]
    if "target" in args.steps:
        out.append(("target, every round", 1000, 20000, FULL_RATE, args.settle))
        # the defaults: the guard holds the watch layer to guard.watch_cpu,
        # which takes a minute to settle
        out.append(("target, defaults (guard)", 1000, 20000, "", args.guard_settle))
    return out


def bench_layout(layout, args, out):
    if "churn" in args.steps:
        bench_churn(layout, args, out)
    if not steps_of(args):
        return
    rows = []
    for step, ncg, threads, config, settle in steps_of(args):
        r = run_step(layout, ncg, threads, args, config + args.config_extra, settle,
                     baseline=config == FULL_RATE and not step.startswith("target"))
        r["step"] = step
        rows.append(r)
        print(f"  {layout.name} {step}: {json.dumps(r['m']['us_per_round'])} "
              f"every {r['m'].get('every')} cpu {r['m']['cpu_pct']:.3f}%", file=sys.stderr)
    print_rows(f"cgroup {layout.name}", rows)
    # a pass that could not load its walk falls back to visiting task by task,
    # at several times the cost: say which one each step ran
    print("\ntask pass (status `walk`): " + "; ".join(
        f"{r['step']}: {r['m'].get('walk') or 'n/a'}" for r in rows) +
        (f"; each cgroup and thread step the median of {args.reps} runs" if args.reps > 1 else ""))
    per_cg = slope([(r["m"]["cgroups_watched"], r["m"]["us_per_round"].get("cgroups"))
                    for r in rows if r["threads"] <= max(r["cgroups"], 1)])
    per_task = slope([(r["m"]["tasks"], r["m"]["us_per_round"].get("taskwatch"))
                      for r in rows if r["cgroups"] == 0])
    cpu_cg = slope([(r["m"]["cgroups_watched"], r["m"]["cpu_pct"]) for r in rows
                    if r["threads"] <= max(r["cgroups"], 1)])
    cpu_task = slope([(r["m"]["tasks"], r["m"]["cpu_pct"]) for r in rows if r["cgroups"] == 0])
    print(f"\ncost per watched cgroup: {fmt(per_cg, '.2f')} µs per round (cgroups watcher), "
          f"{fmt(cpu_cg and cpu_cg * 1e4, '.2f')} µs/s of agent CPU in all; per thread: "
          f"{fmt(per_task and per_task * 1e3, '.0f')} ns per round (taskwatch), "
          f"{fmt(cpu_task and cpu_task * 1e7, '.0f')} ns/s of agent CPU in all")
    out[layout.name] = {"rows": rows, "us_per_cgroup": per_cg,
                        "ns_per_thread": per_task and per_task * 1e3}
    if args.baseline:
        based = [r for r in rows if r.get("base")]
        print(f"\n#### before ({args.baseline}) and after, same populations, every round\n")
        print("| step | agent CPU % before / after (ratio) | cgroups µs/round before / after | "
              "taskwatch µs/round before / after | RSS MiB before / after | watched before / "
              "after |")
        print("|---|---|---|---|---|---|")
        for r in based:
            b, m = r["base"], r["m"]
            ratio = b["cpu_pct"] / m["cpu_pct"] if m["cpu_pct"] else None
            print(f"| {r['step']} | {b['cpu_pct']:.3f} / {m['cpu_pct']:.3f} ({fmt(ratio, '.1f')}×) | "
                  f"{fmt(b['us_per_round'].get('cgroups'))} / {fmt(m['us_per_round'].get('cgroups'))} | "
                  f"{fmt(b['us_per_round'].get('taskwatch'))} / "
                  f"{fmt(m['us_per_round'].get('taskwatch'))} | {b['rss_mib']:.1f} / "
                  f"{m['rss_mib']:.1f} | {fmt(b['cgroups_watched'])} / {fmt(m['cgroups_watched'])} |")
        b_cg = slope([(r["base"]["cgroups_watched"], r["base"]["us_per_round"].get("cgroups"))
                      for r in based if r["threads"] <= max(r["cgroups"], 1)])
        b_task = slope([(r["base"]["tasks"], r["base"]["us_per_round"].get("taskwatch"))
                        for r in based if r["cgroups"] == 0])
        print(f"\nbefore: {fmt(b_cg, '.2f')} µs per watched cgroup per round, "
              f"{fmt(b_task and b_task * 1e3, '.0f')} ns per thread per round; ratio before/after: "
              f"per cgroup {fmt(b_cg and per_cg and b_cg / per_cg, '.1f')}×, per thread "
              f"{fmt(b_task and per_task and b_task / per_task, '.1f')}×")
        out[layout.name]["before"] = {"us_per_cgroup": b_cg,
                                      "ns_per_thread": b_task and b_task * 1e3}
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layouts", default="v1,v2")
    ap.add_argument("--steps", default="cgroups,threads,target,churn")
    ap.add_argument("--cgroups", default="0,250,500,1000,2000")
    ap.add_argument("--threads", default="1000,10000,30000")
    ap.add_argument("--wakers", type=float, default=0.1,
                    help="share of threads waking once a second")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--reps", type=int, default=1,
                    help="runs of each cgroup and thread step (with --baseline, the two "
                         "builds in turn); the tables show each figure's median")
    ap.add_argument("--settle", type=float, default=7.0,
                    help="seconds after the agent is ready before measuring (a full scan)")
    ap.add_argument("--guard-settle", type=float, default=75.0,
                    help="the same for the defaults row, where the guard settles first")
    ap.add_argument("--config-extra", default="",
                    help="YAML appended to the agent's configuration (e.g. watch: ...)")
    ap.add_argument("--baseline", default="",
                    help="another build of the agent (before a change): the cgroup and thread "
                         "steps run it too, on the same population, for before/after ratios")
    ap.add_argument("--churn-rate", type=float, default=20.0,
                    help="containers started (and stopped) per second")
    ap.add_argument("--churn-seconds", type=float, default=60.0)
    ap.add_argument("--churn-life", type=float, default=6.0,
                    help="seconds each churned container lives (over a 5 s scan period)")
    ap.add_argument("--churn-base", type=int, default=250,
                    help="containers that stay for the whole churn step")
    ap.add_argument("--churn-phases", type=int, default=2,
                    help="churn phases: growth between them is a leak")
    ap.add_argument("--churn-history", type=int, default=30,
                    help="agent.history in the churn step (seconds): series of gone "
                         "containers are forgotten after it")
    args = ap.parse_args()
    args.cgroups = [int(x) for x in args.cgroups.split(",") if x]
    args.threads = [int(x) for x in args.threads.split(",") if x]
    args.config_extra = args.config_extra.replace("\\n", "\n")
    need_root()
    m = machine()
    print(f"# scale benchmark: {m['model']}, {m['cpus']} CPUs, kernel {m['kernel']}, "
          f"binary {BIN}; wakers {args.wakers:.0%}, {args.seconds} s per step")
    pid_max = int(read("/proc/sys/kernel/pid_max"))
    need = max(args.threads + [20000]) * 2 + 8192
    out = {}
    try:
        if pid_max < need:
            write("/proc/sys/kernel/pid_max", str(need))
        for name in args.layouts.split(","):
            layout = Layout(name)
            try:
                bench_layout(layout, args, out)
            finally:
                layout.close()
    finally:
        if int(read("/proc/sys/kernel/pid_max")) != pid_max:
            write("/proc/sys/kernel/pid_max", str(pid_max))
    save("scale", out)


if __name__ == "__main__":
    main()
