# SPDX-License-Identifier: GPL-2.0-only
"""Container churn with rules armed, the real binary on the real kernel
(issue 16; test/bench/bench_scale.py measures the full-size version, 20
containers per second for a minute, over hundreds of containers):

- containers (a cgroup with a process in it) start and stop at 10 per second
  for 15 s, each living 3 s, in two phases;
- every container that lived a scan period appears on the Prometheus endpoint
  within one scan period (plus a round and a poll) of its start, and none is
  still exposed a scan period after it stopped;
- once the history window has passed, the agent holds what it held before:
  the same file descriptors, the same entries in its BPF hash maps, no
  per-task state for the containers' processes (the task pass keeps state
  for threads that ran, which grows with what ran on the node, not with what
  is watched), its metric series back to where they were; the second phase
  grows its memory no more than the first left it (a leak grows with every
  phase).
"""
import collections
import hashlib
import json
import os
import re
import signal
import subprocess
import time

from agentlib import Agent, control_call
from promlib import CgroupSeriesPoller, free_port

CGROOT = "/sys/fs/cgroup"
RATE = 10.0  # containers started (and stopped) per second
LIFE = 3.0  # seconds each lives
PHASE = 15.0  # seconds of churn per phase
INTERVAL = 1.0
HISTORY = 10  # agent.history, s: the series of gone containers leave after it
SCAN = 1.0  # watch.cgroup_scan (the cgroupfs reader's scan period)
POLL = 0.25

# armed on every watched cgroup (scope cgroup, no match): each churned
# container gets its own scope state, which must go with the container
RULES = """rules:
  - name: e2e-churn-armed
    description: a container's memory at its limit (never, here)
    metric: cgroup.mem.usage_pct
    scope: cgroup
    above: 99.9
    for: 5s
    dry_run: true
    cooldown: 1h
"""


def is_cgroup2(path):
    out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return out.stdout.strip() == "cgroup2fs"


def read(path):
    with open(path) as f:
        return f.read()


class Hierarchies:
    """The test's parent cgroup: v2, or the v1 cpu, cpuacct and memory
    controllers (as runtimes create containers there)."""

    def __init__(self):
        self.rel = f"/autotrace-e2e-churn-{os.getpid()}"
        if is_cgroup2(CGROOT):
            ctrls = [CGROOT]
        else:
            ctrls = [os.path.join(CGROOT, c) for c in ("cpu", "cpuacct", "memory")
                     if os.path.isdir(os.path.join(CGROOT, c))]
        self.roots = []
        for c in ctrls:
            r = os.path.realpath(c)
            if r not in self.roots:
                self.roots.append(r)
        for r in self.roots:
            os.mkdir(r + self.rel)

    def create(self, name):
        files = []
        for r in self.roots:
            os.mkdir(f"{r}{self.rel}/{name}")
            files.append(f"{r}{self.rel}/{name}/cgroup.procs")
        return files

    def remove(self, name, timeout=20):
        deadline = time.time() + timeout
        for r in self.roots:
            d = f"{r}{self.rel}/{name}"
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.02)

    def close(self):
        for r in self.roots:
            top = r + self.rel
            if not os.path.isdir(top):
                continue
            for name in os.listdir(top):
                d = os.path.join(top, name)
                if os.path.isdir(d):
                    for pid in read(os.path.join(d, "cgroup.procs")).split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    self.remove(name)
            os.rmdir(top)


def churn(h, tag, pids, halfway=None):
    """Starts and stops containers for PHASE seconds; returns {name: (start, stop)}
    and adds their processes' ids to pids. Calls halfway() once, halfway."""
    live, times, n = [], {}, 0
    t0 = time.monotonic()
    next_start = t0
    try:
        while time.monotonic() - t0 < PHASE:
            now = time.monotonic()
            if halfway and now - t0 >= PHASE / 2:
                halfway()
                halfway = None
            while next_start <= now:
                name = tag + hashlib.sha256(f"{tag}{n}".encode()).hexdigest()[:24]
                n += 1
                files = h.create(name)
                p = subprocess.Popen(["sh", "-c", 'for f; do echo $$ > "$f"; done; exec sleep 600',
                                      "sh", *files], stdin=subprocess.DEVNULL)
                pids.add(p.pid)
                live.append((time.monotonic() + LIFE, name, p))
                times[name] = [time.monotonic(), None]
                next_start += 1.0 / RATE
            while live and live[0][0] <= now:
                _, name, p = live.pop(0)
                p.kill()
                p.wait()
                h.remove(name)
                times[name][1] = time.monotonic()
            time.sleep(0.01)
    finally:
        for _, name, p in live:
            p.kill()
            p.wait()
            h.remove(name)
            times[name][1] = time.monotonic()
    return times


def warm_up(h):
    """One container that lives a few rounds, before the first snapshot. The
    cgroup pass learns a cgroup once something runs in or below it and keeps
    it while it exists, so the test's parent cgroups, empty until the first
    container, are learned then and stay: what the phases add must go again,
    not those."""
    files = h.create("warmup")
    p = subprocess.Popen(["sh", "-c", 'for f; do echo $$ > "$f"; done; exec sleep 600',
                          "sh", *files], stdin=subprocess.DEVNULL)
    time.sleep(SCAN + 2 * INTERVAL + 1)
    p.kill()
    p.wait()
    h.remove("warmup")


def map_key_u32(entry):
    if "formatted" in entry and isinstance(entry["formatted"].get("key"), int):
        return entry["formatted"]["key"]
    return int.from_bytes(bytes(int(b, 16) for b in entry["key"]), "little")


def hash_map_entries(pid, tasks_only=False):
    """Entries of the agent's BPF hash maps (the ones that grow with what is
    watched), and apart the task pass's per-task state: the thread ids it holds
    state for (tasks_by_pid, before 5.11), or the entries in use of the walk's
    table (task_table, 6.7+: keyed by task addresses, which user space cannot
    see), as a count; None with task storage, which goes with its task.
    tasks_only: the latter alone."""
    shown = subprocess.run(["bpftool", "-j", "map", "show"], capture_output=True, text=True,
                           check=True)
    names = {str(m["id"]): m.get("name", "") for m in json.loads(shown.stdout or "[]")}
    total, state, seen = 0, None, set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-map":
                continue
            info = dict(line.split(":\t", 1) for line in read(f"/proc/{pid}/fdinfo/{fd}")
                        .splitlines() if ":\t" in line)
        except OSError:
            continue
        name = names.get(info["map_id"])
        tasks = name in ("tasks_by_pid", "task_table")
        if (int(info["map_type"]) not in (1, 5, 9, 10) and not tasks) \
                or (tasks_only and not tasks) or info["map_id"] in seen:
            continue
        seen.add(info["map_id"])
        out = subprocess.run(["bpftool", "-j", "map", "dump", "id", info["map_id"]],
                             capture_output=True, text=True, check=True)
        entries = json.loads(out.stdout or "[]")
        if name == "tasks_by_pid":
            state = {map_key_u32(e) for e in entries}
        elif name == "task_table":
            state = sum(1 for e in entries if e["formatted"]["value"]["addr"])
        else:
            total += len(entries)
    return total, state


def open_files(pid):
    """The agent's descriptors by what they are: sockets and pipes by kind (clients
    of the control socket and the endpoint come and go), everything else by name."""
    kinds = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds[re.sub(r"^(socket|pipe):\[\d+\]$", r"\1", target)] += 1
    return kinds


def snapshot(agent):
    pid = agent.proc.pid
    fds = open_files(pid)  # before the status call's connection

    def watchers():
        st = control_call(agent.socket, "status")["result"]
        return st, {w["name"]: w for w in st["watchers"]}

    tasks = watchers()[1]["taskwatch"]["tasks"]
    maps, task_ids = hash_map_entries(pid)
    rss = int(re.search(r"VmRSS:\s+(\d+)", read(f"/proc/{pid}/status")).group(1))
    st, watchers = watchers()
    # the threads the passes around the dump visited
    tasks = max(tasks, watchers["taskwatch"]["tasks"])
    cg = watchers["cgroups"]
    return {"fds": fds, "maps": maps, "task_ids": task_ids, "tasks": tasks, "rss_kib": rss,
            "series": st["agent"]["metric_series"],
            "appeared": cg["cgroups_appeared"], "reader": cg.get("reader"),
            "every": cg.get("every", 1), "dropped": cg["cgroups_dropped"],
            "free_missed": watchers["taskwatch"].get("task_free_missed", 0)}


def test_churn_no_leak_no_stale_series_no_missed_container():
    port = free_port()
    h = Hierarchies()
    # under ASan freed memory waits in a quarantine (256 MB by default) that
    # fills as the agent works: RSS would measure that, not what it keeps
    asan = os.environ.get("ASAN_OPTIONS", "")
    agent = Agent(rules_yaml=RULES, config_extra=(
        f"metrics:\n  listen: 127.0.0.1:{port}\n"
        f"watch:\n  cgroup_scan: {int(SCAN)}s\n"), interval=f"{int(INTERVAL)}s",
        env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=1"})
    # agent.history is in the agent: section Agent writes first
    with open(agent.config) as f:
        cfg = f.read().replace("agent:\n", f"agent:\n  history: {HISTORY}s\n", 1)
    with open(agent.config, "w") as f:
        f.write(cfg)
    phases = []
    try:
        agent.start()
        warm_up(h)
        time.sleep(4)
        before = snapshot(agent)
        for i in range(2):
            tag = f"churn{i}x"
            poller = CgroupSeriesPoller(f"http://127.0.0.1:{port}/metrics", tag, POLL)
            try:
                pids, mid = set(), {}
                times = churn(h, tag, pids,
                              lambda: mid.update(task_ids=hash_map_entries(agent.proc.pid,
                                                                           True)[1]))
                time.sleep(SCAN * before["every"] + INTERVAL + 2 * POLL + 1)
            finally:
                poller.close()
            # the history window, then a sweep (every 8 rounds)
            time.sleep(HISTORY + 8 * INTERVAL + 2)
            phases.append({"times": times, "pids": pids, "poller": poller, "mid": mid,
                           "after": snapshot(agent)})
        log = agent.read_log()
    finally:
        agent.stop()
        agent.cleanup()
        h.close()

    def shown(snap):
        ids = snap["task_ids"]
        return {**{k: v for k, v in snap.items() if k != "task_ids"},
                "task_ids": len(ids) if isinstance(ids, set) else ids}  # a count, or None

    print("before", shown(before))
    for i, ph in enumerate(phases):
        times, poller, after = ph["times"], ph["poller"], ph["after"]

        # one scan period: the rounds between the cgroup passes (the guard may
        # widen them; the endpoint says by how much) or, reading cgroupfs
        # files, watch.cgroup_scan; plus the round that puts the values and a poll
        def bound(t0, t1):
            rounds = poller.every_max(t0, t1) * INTERVAL
            scan = rounds if before["reader"] == "iterator" else max(rounds, SCAN)
            return scan + INTERVAL + 2 * POLL

        lat = sorted(poller.first[n] - t[0] for n, t in times.items() if n in poller.first)
        print(f"phase {i + 1}: {len(times)} started, {len(lat)} seen, found after "
              f"p50 {lat[len(lat) // 2]:.2f} s max {lat[-1]:.2f} s, cgroup passes every "
              f"{poller.every_max(0, time.monotonic())} rounds at most, {poller.polls} polls; "
              f"after: {shown(after)}")
        assert not poller.errors, poller.errors[:3]
        assert len(times) >= RATE * PHASE * 0.9
        for name, (start, stop) in times.items():
            first = poller.first.get(name)
            b = bound(start, first if first is not None else stop)
            if stop - start >= b:
                assert first is not None, f"{name} lived {stop - start:.1f} s, never watched"
            if first is not None:
                assert first - start <= b, f"{name} found {first - start:.2f} s after start"
                # gone from the endpoint within a scan period of its stop
                last = poller.last[name]
                assert last - stop <= bound(stop, last), \
                    f"{name} still exposed {last - stop:.2f} s after it stopped"
        assert after["appeared"] - before["appeared"] >= len(times) * (i + 1) * 0.9
        # nothing left behind once the history window has passed
        # no descriptor of any other kind more than before; sockets within the
        # clients that may be connected (a scraper, a status call, the helper)
        grown = {k: n - before["fds"][k] for k, n in after["fds"].items()
                 if n > before["fds"][k] and k != "socket"}
        assert not grown, grown
        assert after["fds"]["socket"] <= before["fds"]["socket"] + 3, \
            (shown(before), shown(after))
        assert after["maps"] == before["maps"], (shown(before), shown(after))
        # the containers' processes are gone, and so is their per-task state
        # (the agent counts a task-free hook that did not run, or did not find
        # an entry the pass was moving, and such an entry stays: no more of
        # them than it counted)
        if isinstance(after["task_ids"], set):
            # they had some halfway (each runs at its start, and a pass then
            # gives it state); an id taken again since by a live task may
            # have state of its own
            assert ph["pids"] & ph["mid"]["task_ids"], "no state for the containers' tasks"
            kept = {p for p in ph["pids"] & after["task_ids"]
                    if not os.path.exists(f"/proc/{p}")}
            assert len(kept) <= after["free_missed"], (
                f"per-task state kept for {len(kept)} exited processes, "
                f"{after['free_missed']} counted")
        elif after["task_ids"] is not None:
            # by count: the table held entries for the containers' processes
            # halfway (about RATE * LIFE of them alive then), and now no more
            # entries than the pass visits threads (each holds one at most),
            # plus those counted
            print(f"phase {i + 1}: table entries in use: {before['task_ids']} before, "
                  f"{ph['mid']['task_ids']} halfway, {after['task_ids']} after, "
                  f"{after['tasks']} threads in a pass")
            assert ph["mid"]["task_ids"] >= before["task_ids"] + RATE * LIFE / 2
            assert after["task_ids"] <= after["tasks"] + after["free_missed"], (
                f"{after['task_ids']} entries in use, {after['tasks']} threads, "
                f"{after['free_missed']} counted")
        assert after["series"] <= before["series"] + 20, (shown(before), shown(after))
        assert after["dropped"] == 0
    # a leak grows with every phase; the first phase may leave the allocator warmer
    grown = phases[1]["after"]["rss_kib"] - phases[0]["after"]["rss_kib"]
    assert grown < 1024, f"RSS grew {grown} KiB in the second phase"
    errors = [line for line in log.splitlines() if " error " in line]
    assert not errors, errors[:5]
