# SPDX-License-Identifier: GPL-2.0-only
"""The scheduler captures end to end (issue 5): the real `autotrace run`, real
induced anomalies, and assertions on the incident each capture writes.

- a vfork() child that sleeps: its parent sits in D state -> dstate names the
  kernel's vfork wait;
- more spinning threads than CPUs -> runq names victims and culprits;
- threads blocking in nanosleep and in a futex -> offcpu's top stacks show
  those paths, and who woke the futex waiter;
- one thread spinning, one sleeping -> timeline shows one mostly on CPU, one
  mostly off, and draws timeline.svg;
- a costly host-wide offcpu capture under `perf bench sched pipe` with
  guard.capture_cpu_pct: 1 -> the run-time guard cuts it short.
"""
import glob
import json
import os
import signal
import subprocess
import time

import pytest

from agentlib import BIN, Agent, agent_prog_ids, compile_c, prog_exists

NCPU = os.cpu_count() or 2

# Rules that never fire on their own (sys% above 1000): they carry capture
# parameters for `autotrace trigger --rule NAME --pid P`.
RULES = """
rules:
  - name: runq-sensitive
    description: run-queue waits from 2 ms
    metric: cpu.sys_pct
    above: 1000
    capture:
      - { kind: runq, duration: 3s, threshold_us: 2000 }
    cooldown: 1s
  - name: dstate-own-pattern
    description: D-state with a rule's own label
    metric: cpu.sys_pct
    above: 1000
    capture:
      - kind: dstate
        duration: 2s
        threshold: 200ms
        patterns: ["site-label: vfork in the build farm=kernel_clone"]
    cooldown: 1s
"""

VFORK = r"""
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int secs = argc > 1 ? atoi(argv[1]) : 8;
    pid_t p = vfork();
    if (p == 0) { sleep(secs); _exit(0); }
    waitpid(p, NULL, 0);
    return 0;
}
"""

SPINNERS = r"""
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
static volatile unsigned long sink;
static void *spin(void *a) { for (;;) sink++; return a; }
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    pthread_t t;
    for (int i = 0; i < n - 1; i++) pthread_create(&t, 0, spin, 0);
    spin(0);
}
"""

BLOCKERS = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>
#include <unistd.h>
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ticks;
/* libc's nanosleep keeps no frame pointer, so the frame-pointer walk skips
   its caller: at_nap_loop is the first frame of ours it can show */
__attribute__((noinline)) static void at_nap(void) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, 0);
    __asm__ volatile("" ::: "memory");
}
__attribute__((noinline)) static void *at_nap_loop(void *a) {
    pthread_setname_np(pthread_self(), "at_napper");
    for (;;) at_nap();
    return a;
}
__attribute__((noinline)) static void *at_futex_loop(void *a) {
    pthread_setname_np(pthread_self(), "at_futexer");
    pthread_mutex_lock(&mu);
    for (int seen = 0;; seen = ticks)
        while (ticks == seen) pthread_cond_wait(&cv, &mu);
    return a;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, 0, at_nap_loop, 0);
    pthread_create(&t, 0, at_futex_loop, 0);
    for (;;) {
        usleep(100 * 1000);
        pthread_mutex_lock(&mu); ticks++; pthread_cond_signal(&cv); pthread_mutex_unlock(&mu);
    }
}
"""

SPIN_AND_SLEEP = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>
#include <unistd.h>
static volatile unsigned long sink;
static void *spin(void *a) {
    pthread_setname_np(pthread_self(), "at_spin");
    for (;;) sink++;
    return a;
}
static void *nap(void *a) {
    pthread_setname_np(pthread_self(), "at_sleep");
    for (;;) { struct timespec ts = {0, 20 * 1000 * 1000}; nanosleep(&ts, 0); }
    return a;
}
int main(void) {
    pthread_t t[2];
    pthread_create(&t[0], 0, spin, 0);
    pthread_create(&t[1], 0, nap, 0);
    pthread_join(t[0], 0);
}
"""

BUILD_FLAGS = ("-O1", "-g", "-pthread", "-fno-omit-frame-pointer")


def cli(*args, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def agent():
    a = Agent(rules_yaml=RULES, config_extra="capture:\n  max_seconds_per_hour: 600\n").start()
    yield a
    rc, _ = a.stop()
    log = a.read_log()
    # every capture kind loaded at start-up and left nothing behind
    for kind in ("offcpu", "dstate", "runq", "timeline"):
        assert f"{kind}: BPF programs loaded:" in log, log
    ids = agent_prog_ids(log)
    assert rc == 0 and ids, log
    assert not [i for i in ids if prog_exists(i)], log
    a.cleanup()


@pytest.fixture
def spawn(tmp_path):
    procs = []

    def run(source, name, *args):
        exe = compile_c(source, name, str(tmp_path), flags=BUILD_FLAGS)
        # its own session, so its children (a vfork child) go with it
        p = subprocess.Popen([exe, *map(str, args)], start_new_session=True)
        procs.append(p)
        return p

    yield run
    for p in procs:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def trigger(agent, *args):
    out = cli("trigger", "-c", agent.config, "--json", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    res = json.loads(out.stdout)
    assert res.get("state") == "written", res
    return res["incident_id"]


def capture_of(agent, iid, kind):
    doc = agent.incident_doc(iid)
    caps = [c for c in doc["captures"] if c["kind"] == kind]
    assert len(caps) == 1, doc["captures"]
    return doc, caps[0]


def artifact(agent, iid, name):
    found = glob.glob(os.path.join(agent.incident_dir, "*", iid, name))
    assert found, (iid, name, os.listdir(agent.incident_dir))
    assert oct(os.stat(found[0]).st_mode & 0o777) == "0o600"
    with open(found[0]) as f:
        return f.read()


def funcs(frames, kernel=None):
    return [f.get("func", "") for f in frames if kernel is None or f["kernel"] == kernel]


def test_dstate_vfork_parent(agent, spawn):
    parent = spawn(VFORK, "at_vforker", 10)
    time.sleep(1.0)
    iid = trigger(agent, "--capture", "dstate", "--pid", str(parent.pid), "--duration", "2s")
    doc, cap = capture_of(agent, iid, "dstate")
    assert cap["status"] == "ok", cap
    assert doc["trigger"]["target"] == {"kind": "process", "pid": parent.pid}
    tasks = {t["tid"]: t for t in cap["tasks"]}
    assert parent.pid in tasks, cap
    t = tasks[parent.pid]
    # filtered in the kernel to the process: the sleeping child is another process
    assert set(tasks) == {parent.pid}
    names = funcs(t["frames"])
    # the kernel's vfork wait on 6.x: wait_for_vfork_done() inlined into kernel_clone
    assert "kernel_clone" in names, names
    assert {"__do_sys_vfork", "__x64_sys_vfork"} & set(names), names
    assert t["wchan"] == names[0]
    assert t["comm"] == "at_vforker"
    assert "vfork" in t["label"]
    assert t["at_start"] and t["at_end"] and t["stayed_stuck"]
    assert t["blocked_ms"] >= 2500, t
    assert t["killable"] is True
    assert cap["stayed_stuck"] == 1 and cap["snapshots"] >= 3
    assert cap["labels"] == [{"label": t["label"], "tasks": 1}]
    assert "kernel_clone_[k]" in artifact(agent, iid, "dstate.folded")

    show = cli("incidents", "show", iid, "--dir", agent.incident_dir)
    assert show.returncode == 0, show.stderr
    for want in ("capture dstate: ok", "tasks (1):", "at_vforker", "kernel_clone"):
        assert want in show.stdout, (want, show.stdout)


def test_dstate_rule_pattern(agent, spawn):
    parent = spawn(VFORK, "at_vforker", 10)
    time.sleep(0.5)
    iid = trigger(agent, "--rule", "dstate-own-pattern", "--pid", str(parent.pid))
    _, cap = capture_of(agent, iid, "dstate")
    assert cap["threshold_ms"] == 200
    (t,) = [t for t in cap["tasks"] if t["tid"] == parent.pid]
    # the rule's own pattern is checked before the built-in vfork one
    assert t["label"] == "site-label: vfork in the build farm"


def test_runq_spinners(agent, spawn):
    nthreads = NCPU * 2 + 1
    spinners = spawn(SPINNERS, "at_rq_spin", nthreads)
    time.sleep(1.0)
    iid = trigger(agent, "--rule", "runq-sensitive", "--pid", str(spinners.pid))
    _, cap = capture_of(agent, iid, "runq")
    assert cap["status"] in ("ok", "partial"), cap
    assert cap["threshold_us"] == 2000
    assert cap["events"] >= 10, cap
    assert cap["waits"] >= cap["events"]
    worst = cap["worst"]
    assert worst and all(e["pid"] == spinners.pid and e["wait_us"] >= 2000 for e in worst)
    e = worst[0]
    assert e["comm"] == "at_rq_spin" and 0 <= e["cpu"] < NCPU
    assert e["reason"] in ("preempted", "wakeup")
    # the victim waited while other tasks held its CPU: the culprits
    assert e["culprits"], e
    assert any(c["tid"] != e["tid"] and c["held_us"] > 0 for c in e["culprits"]), e
    assert e["culprit"]
    assert e["nr_running"] >= 2
    # the spinners are each other's culprits
    culprit_tids = {c["tid"] for c in cap["culprits"]}
    victim_tids = {v["tid"] for v in cap["victims"]}
    assert len(victim_tids) >= 2 and culprit_tids & victim_tids, cap
    # the run queues were crowded
    lens = cap["runq_length"]
    assert lens and max(q["mean"] for q in lens) > 1.5, lens
    assert cap["wait_histogram"]

    show = cli("incidents", "show", iid, "--dir", agent.incident_dir)
    assert show.returncode == 0
    assert "worst (" in show.stdout and "culprit" in show.stdout


def test_offcpu_nanosleep_and_futex(agent, spawn):
    prog = spawn(BLOCKERS, "at_blockers")
    time.sleep(0.5)
    iid = trigger(agent, "--capture", "offcpu", "--pid", str(prog.pid), "--duration", "2s")
    _, cap = capture_of(agent, iid, "offcpu")
    assert cap["status"] in ("ok", "partial"), cap
    tops = cap["top_stacks"]
    assert tops and all(s["pid"] == prog.pid for s in tops)

    def top_for(comm):
        mine = [s for s in tops if s["comm"] == comm]
        assert mine, (comm, [(s["comm"], s["blocked_us"]) for s in tops])
        return mine[0]

    nap = top_for("at_napper")
    assert nap["state"] == "S"
    assert {"do_nanosleep", "hrtimer_nanosleep"} & set(funcs(nap["frames"], True))
    assert nap["blocked_us"] > 1_500_000
    assert any("at_nap_loop" in f for f in funcs(nap["frames"], False)), funcs(nap["frames"])
    fut = top_for("at_futexer")
    assert fut["state"] == "S"
    assert any(f.startswith("futex_wait") for f in funcs(fut["frames"], True)), fut
    assert fut["blocked_us"] > 1_500_000
    # the futex waiter was woken by the main thread, from futex_wake
    woke = [w for w in cap["wakers"] if w["comm"] == "at_futexer" and w["waker_pid"] == prog.pid]
    assert woke, cap["wakers"]
    assert any("futex_wake" in f for f in funcs(woke[0]["frames"])), woke[0]
    assert woke[0]["wakeups"] >= 10
    threads = {t["comm"]: t for t in cap["threads"]}
    assert threads["at_napper"]["sleep_us"] > 1_500_000
    folded = artifact(agent, iid, "offcpu.folded")
    assert "at_napper;[S];" in folded and "do_nanosleep_[k]" in folded


def test_timeline_spinner_and_sleeper(agent, spawn):
    prog = spawn(SPIN_AND_SLEEP, "at_timeline")
    time.sleep(0.5)
    iid = trigger(agent, "--capture", "timeline", "--pid", str(prog.pid), "--duration", "2s")
    _, cap = capture_of(agent, iid, "timeline")
    assert cap["status"] in ("ok", "partial"), cap
    lanes = {t["comm"]: t for t in cap["threads"]}
    assert {"at_spin", "at_sleep"} <= set(lanes), list(lanes)
    spin, nap = lanes["at_spin"], lanes["at_sleep"]
    # the spinner is on CPU, or waiting for one (the machine may be busy)
    assert spin["on_cpu_pct"] > 20 and spin["off_cpu_pct"] < 5, spin
    assert spin["on_cpu_pct"] + spin["runnable_pct"] > 95, spin
    assert nap["off_cpu_pct"] > 90 and nap["switches"] >= 50, {
        k: v for k, v in nap.items() if k != "timeline"}
    for lane in (spin, nap):
        assert lane["observed_ms"] > 0.95 * cap["window_ms"]
        tl = lane["timeline"]
        # parallel arrays, one entry per interval, each of one type
        n = len(tl["start_us"])
        assert n and len(tl["dur_us"]) == n == len(tl["stack"]) == len(tl["state"])
        assert tl["start_us"] == sorted(tl["start_us"])
    assert {"S", "C"} <= set(nap["timeline"]["state"]), nap["timeline"]["state"]
    # the sleeper's S intervals carry the stack it blocked in
    sleep_stacks = {k for c, k in zip(nap["timeline"]["state"], nap["timeline"]["stack"])
                    if c == "S" and k >= 0}
    assert any("do_nanosleep" in cap["stacks"][k] for k in sleep_stacks), cap["stacks"]
    svg = artifact(agent, iid, "timeline.svg")
    assert svg.startswith("<?xml") and svg.rstrip().endswith("</svg>")
    assert "at_spin" in svg and "at_sleep" in svg and "do_nanosleep" in svg


def test_guard_cuts_costly_offcpu_short(tmp_path):
    """An offcpu capture of the whole host under a context-switch storm costs
    more than guard.capture_cpu_pct: 1 allows, so the guard ends it early."""
    a = Agent(rules_yaml=RULES, config_extra=(
        "capture:\n  max_seconds_per_hour: 600\n"
        "guard:\n  capture_cpu_pct: 1\n")).start()
    # its own session: perf bench forks, and the whole group must go at the end
    bench = subprocess.Popen(["perf", "bench", "sched", "pipe", "-l", "100000000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        iid = trigger(a, "--capture", "offcpu", "--duration", "30s")
        took = time.monotonic() - t0
        _, cap = capture_of(a, iid, "offcpu")
    finally:
        os.killpg(bench.pid, signal.SIGKILL)
        bench.wait()
        a.stop()
        log = a.read_log()
        a.cleanup()
    assert cap["status"] == "truncated", cap
    assert "capture programs used" in cap["truncated_reason"], cap
    assert cap["duration_ms"] < 20000 and took < 25, (cap["duration_ms"], took)
    # what it captured before the cut is still there
    assert cap["blocks"] > 0 and cap["top_stacks"]
    assert "cut short" in log


# Three threads each in a vfork wait: the process with the most D threads.
VFORK_THREADS = r"""
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static int secs;
static void *vf(void *a) {
    pid_t p = vfork();
    if (p == 0) { sleep(secs); _exit(0); }
    waitpid(p, NULL, 0);
    return a;
}
int main(int argc, char **argv) {
    pthread_t t[3];
    secs = atoi(argv[1]);
    for (int i = 0; i < 3; i++) pthread_create(&t[i], 0, vf, 0);
    for (int i = 0; i < 3; i++) pthread_join(t[i], 0);
    return 0;
}
"""

FIRING_RULES = """
rules:
  - name: stuck-in-d
    description: a task has been in D state for over a second
    metric: sched.dstate_max_ms
    above: 1000
    for: 1s
    capture:
      - { kind: dstate, duration: 2s, threshold: 500ms, target: process }
    cooldown: 1h
  - name: runq-latency
    description: tasks wait for a CPU for over 10 ms
    metric: sched.runq_max_us
    above: 10000
    for: 2s
    capture:
      - { kind: runq, duration: 2s, threshold_us: 2000, target: process }
      - { kind: timeline, duration: 2s, target: process }
    cooldown: 1h
"""


@pytest.fixture
def firing_agent():
    a = Agent(rules_yaml=FIRING_RULES,
              config_extra="capture:\n  max_seconds_per_hour: 600\n  max_concurrent: 2\n")
    yield a
    a.cleanup()


def incident_of_rule(agent, rule, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for inc in agent.incidents():
            doc = agent.incident_doc(inc["id"])
            if doc["rule"]["name"] == rule:
                return doc
        time.sleep(0.5)
    raise AssertionError(f"no incident of rule {rule}; log:\n" + agent.read_log())


def test_rule_on_dstate_metric_captures_the_stuck_process(firing_agent, spawn):
    """The whole chain: the task-iterator watcher sees a long D state, the rule
    fires, and its captures, aimed at the process with the most D threads, name
    the vfork wait."""
    firing_agent.start()
    prog = spawn(VFORK_THREADS, "at_vfork3", 15)
    doc = incident_of_rule(firing_agent, "stuck-in-d", timeout=30)
    caps = {c["kind"]: c for c in doc["captures"]}
    dst = caps["dstate"]
    assert dst["target"] == {"kind": "process", "pid": prog.pid}, (dst["target"], prog.pid)
    assert doc["trigger"]["metric"] == "sched.dstate_max_ms" and doc["trigger"]["value"] > 1000
    ours = [t for t in dst["tasks"] if t["pid"] == prog.pid]
    assert len(ours) == 3, dst["tasks"]
    for t in ours:
        assert "kernel_clone" in funcs(t["frames"]) and t["label"] == "vfork wait", t
        assert t["stayed_stuck"]
    rc, _ = firing_agent.stop()
    assert rc == 0


def test_rule_on_runq_metric_captures_the_spinners(firing_agent, spawn):
    """Spinners crowd the CPUs, the run-queue watcher trips the rule, and runq
    and timeline capture the top process: the spinners."""
    firing_agent.start()
    # eight and a half spinners a CPU: each waits for the others' slices, at
    # least a tick each (4 ms at HZ=250); the longest wait of a round was
    # 32-68 ms on the CI machine, against 7-16 ms with two and a half a CPU
    # (the rule then fired late or not at all)
    nthreads = NCPU * 8 + 1
    prog = spawn(SPINNERS, "at_rq_spin", nthreads)
    doc = incident_of_rule(firing_agent, "runq-latency", timeout=40)
    caps = {c["kind"]: c for c in doc["captures"]}
    rq, tl = caps["runq"], caps["timeline"]
    assert rq["target"] == {"kind": "process", "pid": prog.pid}, (rq["target"], prog.pid)
    assert rq["events"] > 0 and rq["worst"], rq
    assert all(e["pid"] == prog.pid for e in rq["worst"])
    assert any(c["tid"] != rq["worst"][0]["tid"] for c in rq["worst"][0]["culprits"])
    lanes = [t for t in tl["threads"] if t["pid"] == prog.pid]
    assert len(lanes) == nthreads, [t["tid"] for t in tl["threads"]]
    # every spinner is on CPU or waiting for one, never asleep
    assert all(t["off_cpu_pct"] < 5 for t in lanes), lanes
    assert "timeline.svg" in tl["artifacts"]
    rc, _ = firing_agent.stop()
    assert rc == 0
