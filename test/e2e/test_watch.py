# SPDX-License-Identifier: GPL-2.0-only
"""Issue 3 end to end: the always-on watch layer sees real anomalies, on the
host and in the cgroup they happen in, with the real binary.

- a vfork() child that sleeps: its parent is in D (host and the test's
  cgroup), and the D time grows;
- 3 x nproc spinners in a test cgroup: run-queue waits >= 1 ms attributed to
  that cgroup, and a cgroup-scoped rule fires on it with the history before;
- O_DIRECT writes on a real disk: its write bytes/s and await, and in the
  opt-in block hook mode its latency percentiles and their cost;
- 1 GiB allocated and touched in about 2 s: the anon growth signal rises;
- a cgroup the test creates appears with its own CPU and memory metrics and
  disappears after;
- the default watch layer attaches no per-event hook; a hook mode reports its
  cost in `autotrace status` and leaves nothing loaded after exit.
"""
import json
import os
import re
import signal
import stat
import subprocess
import tempfile
import time
import urllib.request

import pytest

from agentlib import BIN, Agent, agent_prog_ids, compile_c, control_call, prog_exists, \
    write_private
from promlib import free_port

CGROOT = "/sys/fs/cgroup"


def is_cgroup2(path):
    out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return out.stdout.strip() == "cgroup2fs"


class TempCgroup:
    """A cgroup of the test's own: v2 where /sys/fs/cgroup is v2, else the same
    path in the v1 cpu, cpuacct and memory controllers (as runtimes do)."""

    def __init__(self, tag):
        self.rel = f"/autotrace-e2e-{tag}-{os.getpid()}"
        if is_cgroup2(CGROOT):
            ctrls = [CGROOT]
        else:
            ctrls = [os.path.join(CGROOT, c) for c in ("cpu", "cpuacct", "memory")
                     if os.path.isdir(os.path.join(CGROOT, c))]
        self.dirs = []
        for c in ctrls:
            d = os.path.realpath(c) + self.rel
            if d in self.dirs:
                continue  # cpu and cpuacct may be one mount
            os.mkdir(d)
            self.dirs.append(d)

    def add(self, pid):
        for d in self.dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def pids(self):
        out = set()
        for d in self.dirs:
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    out |= {int(x) for x in f.read().split()}
            except OSError:
                pass
        return out

    def remove(self):
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        for d in self.dirs:
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.1)


@pytest.fixture
def cgroup(request):
    cg = TempCgroup(request.node.name[5:20].replace("_", "-"))
    yield cg
    cg.remove()


def metrics_rounds(count, config=None, interval=None):
    cmd = [BIN, "metrics", "--json", "--count", str(count)]
    if config:
        cmd += ["-c", config]
    if interval:
        cmd += ["--interval", interval]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def values(rounds, name, **labels):
    """The metric's value in each round (None where absent)."""
    out = []
    for r in rounds:
        v = None
        for m in r["metrics"]:
            if m["name"] == name and all(m["labels"].get(k) == x for k, x in labels.items()) \
                    and (labels or not m["labels"]):
                v = m["value"]
        out.append(v)
    return out


def private_config(tmp_path, text):
    d = tmp_path / "cfg"
    d.mkdir(mode=0o700)
    return write_private(str(d / "autotrace.yaml"), text)


# Waits for a byte on stdin (the test moves it into its cgroup first), then
# vforks: the child sleeps, the parent waits for it in D.
VFORK = r"""
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char c;
    if (read(0, &c, 1) != 1) return 1;
    pid_t p = vfork();
    if (p == 0) { sleep(atoi(argv[1])); _exit(0); }
    waitpid(p, NULL, 0);
    return 0;
}
"""


def test_vfork_parent_in_dstate(tmp_path, cgroup):
    exe = compile_c(VFORK, "at_vfork_d", str(tmp_path))
    p = subprocess.Popen([exe, "8"], stdin=subprocess.PIPE)
    try:
        cgroup.add(p.pid)
        p.stdin.write(b"x")
        p.stdin.flush()
        time.sleep(0.5)
        rounds = metrics_rounds(4)
    finally:
        p.kill()
        p.wait()
    host = values(rounds, "sched.dstate_tasks")
    mine = values(rounds, "cgroup.dstate_tasks", cgroup=cgroup.rel)
    dur = values(rounds, "cgroup.dstate_max_ms", cgroup=cgroup.rel)
    print("host D", host, "cgroup D", mine, "cgroup D ms", dur)
    assert all(v is not None and v >= 1 for v in host)
    assert all(v is not None and v >= 1 for v in mine)
    # the D time grows with time: about a second per round
    assert all(b > a for a, b in zip(dur, dur[1:])), dur
    assert dur[-1] - dur[0] >= 0.8 * 1000 * (len(dur) - 1)
    assert max(values(rounds, "sched.dstate_max_ms")) >= dur[-1]


SPIN_RULES = """
rules:
  - name: e2e-runq-in-cgroup
    description: tasks of a cgroup wait for CPUs
    metric: cgroup.runq_max_us
    scope: cgroup
    match: {{ cgroup: "{rel}" }}
    above: 1000
    for: 2s
    dry_run: true
    cooldown: 1h
"""


def spinners(n, cgroup):
    """n shell loops spinning in one process group, forked inside cgroup."""
    p = subprocess.Popen(["sh", "-c", "read go; " + " ".join(["(while :; do :; done) &"] * n)
                          + " wait"], stdin=subprocess.PIPE, start_new_session=True)
    cgroup.add(p.pid)
    p.stdin.write(b"go\n")
    p.stdin.close()
    return p


def test_spinners_wait_in_their_cgroup(cgroup):
    n = 3 * os.cpu_count()
    agent = Agent(rules_yaml=SPIN_RULES.format(rel=cgroup.rel),
                  config_extra="watch:\n  cgroup_scan: 1s\n")
    spin = None
    doc = None
    try:
        agent.start()
        holder = subprocess.Popen(["sleep", "60"])
        cgroup.add(holder.pid)  # the cgroup is watched, quiet, before the load
        time.sleep(3)
        spin = spinners(n, cgroup)
        rounds = metrics_rounds(3)
        incidents = agent.wait_incidents(1, timeout=30)
        if incidents:
            doc = agent.incident_doc(incidents[0]["id"])
    finally:
        if spin:
            os.killpg(spin.pid, signal.SIGKILL)
            spin.wait()
        rc, _ = agent.stop()
        log = agent.read_log()
        agent.cleanup()
    mx = [v for v in values(rounds, "cgroup.runq_max_us", cgroup=cgroup.rel) if v is not None]
    avg = [v for v in values(rounds, "cgroup.runq_avg_us", cgroup=cgroup.rel) if v is not None]
    print(f"{n} spinners: cgroup runq max {mx} avg {avg}")
    assert mx and max(mx) >= 1000
    assert avg and max(avg) > 0
    assert max(v for v in values(rounds, "sched.runq_max_us") if v is not None) >= 1000
    # the cgroup's own CPU use shows the spinners too
    usage = [v for v in values(rounds, "cgroup.cpu.usage_cores", cgroup=cgroup.rel) if v]
    assert usage and max(usage) > 0.2, usage
    # a cgroup-scoped rule fired for exactly that cgroup, with the history before
    assert rc == 0, log
    assert doc, log
    assert doc["trigger"]["scope"] == cgroup.rel
    assert doc["trigger"]["metric"] == "cgroup.runq_max_us"
    assert doc["trigger"]["value"] >= 1000
    series = [s for s in doc["history"]["series"] if s["metric"] == "cgroup.runq_max_us"]
    assert series and series[0]["labels"]["cgroup"] == cgroup.rel
    pts = series[0]["points"]
    assert any(v >= 1000 for _, v in pts)
    assert any(v < 1000 for _, v in pts), pts  # the quiet seconds before the load
    # the cgroup's other series ride along as context
    assert any(s["metric"].startswith("cgroup.") and s["metric"] != "cgroup.runq_max_us"
               for s in doc["history"]["series"])


ODIRECT = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0600);
    void *buf;
    if (fd < 0 || posix_memalign(&buf, 4096, 1 << 16)) return 1;
    memset(buf, 0x5a, 1 << 16);
    for (int pass = 0; pass < atoi(argv[2]); pass++)
        for (int i = 0; i < 256; i++)
            if (pwrite(fd, buf, 1 << 16, (off_t)i << 16) != 1 << 16) return 2;
    return 0;
}
"""


def disk_dir():
    """A directory on a real block device (tmpfs has no block layer), and the
    name of its whole disk as /proc/diskstats has it."""
    for d in (os.environ.get("AUTOTRACE_BUILD_DIR"), "/var/tmp", tempfile.gettempdir(),
              os.path.expanduser("~")):
        if not d or not os.path.isdir(d):
            continue
        dev = os.stat(d).st_dev
        major, minor = os.major(dev), os.minor(dev)
        sys = f"/sys/dev/block/{major}:{minor}"
        if major == 0 or not os.path.exists(sys):
            continue
        real = os.path.realpath(sys)
        if os.path.exists(os.path.join(sys, "partition")):
            real = os.path.dirname(real)
        return d, os.path.basename(real)
    return None, None


class LoopDisk:
    """Fallback when no directory is on a block device: a loop device over a
    file, written raw."""

    def __init__(self, tmp_path):
        self.backing = str(tmp_path / "loop.img")
        with open(self.backing, "wb") as f:
            f.truncate(64 << 20)
        self.dev = subprocess.run(["losetup", "--find", "--show", self.backing],
                                  capture_output=True, text=True, check=True).stdout.strip()

    def close(self):
        subprocess.run(["losetup", "-d", self.dev], check=False)


def odirect_target(tmp_path):
    d, disk = disk_dir()
    if d:
        return os.path.join(tempfile.mkdtemp(prefix="autotrace-e2e-io-", dir=d), "data"), disk, None
    loop = LoopDisk(tmp_path)
    return loop.dev, os.path.basename(loop.dev), loop


@pytest.mark.parametrize("hooks", [False, True], ids=["diskstats", "block_hooks"])
def test_odirect_writes_show_on_their_disk(tmp_path, hooks):
    exe = compile_c(ODIRECT, "at_odirect", str(tmp_path))
    target, disk, loop = odirect_target(tmp_path)
    cfg = private_config(tmp_path, "watch:\n  block_hooks: true\n") if hooks else None
    writer = subprocess.Popen(["sh", "-c", f"while :; do {exe} {target} 4 || exit 1; done"])
    try:
        time.sleep(0.3)
        rounds = metrics_rounds(3, config=cfg)
    finally:
        writer.kill()
        writer.wait()
        if loop:
            loop.close()
        elif os.path.exists(target):
            os.unlink(target)
            os.rmdir(os.path.dirname(target))
    wbps = [v for v in values(rounds, "io.write_bps", device=disk) if v is not None]
    wiops = [v for v in values(rounds, "io.write_iops", device=disk) if v is not None]
    await_ = [v for v in values(rounds, "io.await_ms", device=disk) if v is not None]
    util = [v for v in values(rounds, "io.util_pct", device=disk) if v is not None]
    print(disk, "write B/s", wbps, "await", await_, "util", util)
    assert wbps and max(wbps) > 1 << 20  # our 64 KiB writes, at least a MiB per second
    assert wiops and max(wiops) > 10
    assert await_ and max(await_) > 0
    assert util and max(util) > 0
    if hooks:
        p99 = [v for v in values(rounds, "io.latency_p99_us", device=disk) if v is not None]
        p50 = [v for v in values(rounds, "io.latency_p50_us", device=disk) if v is not None]
        cost = [v for v in values(rounds, "watch.hook_ns_per_event", hook="biolat")
                if v is not None]
        print("latency p50", p50, "p99", p99, "ns/event", cost)
        assert p99 and max(p99) > 0 and min(p50) > 0
        assert cost and max(cost) > 0
    else:
        assert not any(values(rounds, "io.latency_p99_us", device=disk))


BURST = r"""
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    size_t chunk = 32ul << 20;
    struct timespec t = { 0, 62 * 1000 * 1000 };
    for (int i = 0; i < 32; i++) {              /* 1 GiB in ~2 s */
        char *p = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        madvise(p, chunk, MADV_NOHUGEPAGE);
        memset(p, 1, chunk);
        nanosleep(&t, NULL);
    }
    sleep(8);
    return 0;
}
"""


def test_anon_burst_raises_growth(tmp_path):
    exe = compile_c(BURST, "at_anon_burst", str(tmp_path))
    with open("/proc/meminfo") as f:
        total = int(next(l for l in f if l.startswith("MemTotal:")).split()[1]) * 1024
    mc = subprocess.Popen([BIN, "metrics", "--json", "--count", "9"], stdout=subprocess.PIPE,
                          text=True)
    time.sleep(2.5)  # a baseline before the burst
    burst = subprocess.Popen([exe])
    try:
        out, _ = mc.communicate(timeout=60)
    finally:
        burst.kill()
        burst.wait()
    rounds = [json.loads(l) for l in out.splitlines() if l.strip()]
    growth = [v for v in values(rounds, "mem.anon_growth_pct") if v is not None]
    grown = [v for v in values(rounds, "mem.anon_growth_bytes") if v is not None]
    expect = 100.0 * (1 << 30) / total
    print(f"anon growth % {growth} (1 GiB is {expect:.2f}% here), bytes {grown}")
    assert growth and grown
    # most of the GiB shows, whatever else the shared machine frees meanwhile
    assert max(growth) >= 0.5 * expect
    assert max(grown) >= 0.5 * (1 << 30)
    assert max(growth) > growth[0] + 0.4 * expect


def test_cgroup_appears_and_disappears(cgroup):
    holder = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    cgroup.add(holder.pid)
    try:
        rounds = metrics_rounds(2)
    finally:
        holder.kill()
        holder.wait()
    names = {m["name"] for r in rounds for m in r["metrics"]
             if m["labels"].get("cgroup") == cgroup.rel}
    print(sorted(names))
    for want in ("cgroup.cpu.usage_pct", "cgroup.cpu.user_pct", "cgroup.cpu.sys_pct",
                 "cgroup.cpu.limit_cores", "cgroup.mem.usage_bytes", "cgroup.mem.usage_pct",
                 "cgroup.dstate_tasks", "cgroup.runq_max_us"):
        assert want in names, want
    usage = values(rounds, "cgroup.cpu.usage_cores", cgroup=cgroup.rel)
    assert usage[-1] is not None and usage[-1] > 0.1  # its spinning shell
    cgroup.remove()
    rounds = metrics_rounds(1)
    assert not any(m["labels"].get("cgroup") == cgroup.rel for r in rounds for m in r["metrics"])


def test_default_has_no_hooks_and_hook_mode_reports_cost(tmp_path):
    # default: the only watch programs are the task and cgroup iterators, attached to no
    # event, the task pass's two on cgroup migration (a count of tasks moved, so that busy
    # tasks look their cgroup up again), and with the one-run task walk (6.7+) its program
    # on task free, which drops a freed task's per-task state as task storage would
    agent = Agent()
    try:
        agent.start()
        time.sleep(2.5)
        st = control_call(agent.socket, "status")["result"]
        log = agent.read_log()
        watch_progs = {int(i): name for line in log.splitlines()
                       if "watch." in line and "BPF programs loaded" in line
                       for name, i in re.findall(r"(\w+)#(\d+)", line)}
        watch_ids = set(watch_progs)
        links = json.loads(subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True,
                                          text=True, check=True).stdout or "[]")
        progs = {p["id"]: p.get("name", "") for p in json.loads(subprocess.run(
            ["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
            check=True).stdout or "[]")}
    finally:
        agent.stop()
        agent.cleanup()
    assert watch_ids
    watch_links = [x for x in links if x.get("prog_id") in watch_ids]
    hooks = [x for x in watch_links if x["type"] != "iter"]
    tracepoints = {"taskwatch_free": "sched_process_free",
                   "taskwatch_moved": "cgroup_attach_task",
                   "taskwatch_transferred": "cgroup_transfer_tasks"}
    hooked = sorted(watch_progs[x["prog_id"]].removesuffix("_raw") for x in hooks)
    assert all(tracepoints.get(watch_progs[x["prog_id"]].removesuffix("_raw")) ==
               x.get("tp_name") for x in hooks), (hooks, watch_progs, progs)
    tw = {w["name"]: w for w in st["watchers"]}["taskwatch"] if st else {}
    walk = tw.get("walk") == "one run"
    assert hooked == ["taskwatch_free"] * walk + ["taskwatch_moved", "taskwatch_transferred"], \
        hooks
    w = {x["name"]: x for x in st["watchers"]}
    assert w["runqlat"]["state"] == "off" and "watch.runq_hooks" in w["runqlat"]["reason"]
    assert w["biolat"]["state"] == "off"
    assert w["taskwatch"]["state"] == "ok" and w["taskwatch"]["tasks"] > 10
    assert w["cgroups"]["state"] == "ok"
    # the kernel-side passes are the ones in use where the kernel has them: a
    # refused attach falls back, quietly but for a log line, to the costlier
    # cgroupfs files and per-task visits
    release = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())
    if release >= (6, 1):
        assert w["cgroups"]["reader"] == "iterator", w["cgroups"]
    if release >= (6, 7):
        assert w["taskwatch"]["walk"] == "one run", w["taskwatch"]
    assert "watch.runqlat" not in log and "watch.biolat" not in log
    for line in log.splitlines():
        if "watch." in line and "BPF programs loaded" in line:
            assert "watch.taskwatch:" in line or "watch.cgroups:" in line, line

    # opt-in: the hooks report their cost per event, and go away at exit
    agent = Agent(config_extra="watch:\n  runq_hooks: true\n  block_hooks: true\n")
    try:
        agent.start()
        time.sleep(3.5)
        st = control_call(agent.socket, "status")["result"]
        ids = agent_prog_ids(agent.read_log())
        text = subprocess.run([BIN, "status", "--socket", agent.socket], capture_output=True,
                              text=True).stdout
    finally:
        rc, _ = agent.stop()
        log = agent.read_log()
        agent.cleanup()
    w = {x["name"]: x for x in st["watchers"]}
    assert w["runqlat"]["state"] == "ok", w["runqlat"]
    assert w["runqlat"]["ns_per_event"] > 0 and w["runqlat"]["events"] > 0
    assert w["runqlat"]["cpu_pct"] > 0
    assert w["biolat"]["state"] == "ok"
    assert "sched.runq_p99_us" in w["runqlat"]["values"]
    assert "runqlat" in text, text
    assert rc == 0, log
    assert ids and not any(prog_exists(i) for i in ids), log


def test_reload_turns_a_hook_mode_on_and_off():
    agent = Agent()
    try:
        agent.start()
        st = control_call(agent.socket, "status")["result"]
        assert {w["name"]: w for w in st["watchers"]}["runqlat"]["state"] == "off"
        # SIGHUP with watch.runq_hooks on: the watchers start over with the hooks
        with open(agent.config, "a") as f:
            f.write("watch:\n  runq_hooks: true\n")
        agent.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 15
        w = None
        while time.time() < deadline:
            st = control_call(agent.socket, "status")["result"]
            w = {x["name"]: x for x in st["watchers"]}["runqlat"]
            if w["state"] == "ok" and w.get("events", 0) > 0:
                break
            time.sleep(0.5)
        assert w and w["state"] == "ok" and w["events"] > 0, w
        ids = agent_prog_ids(agent.read_log())
        # and off again: its programs are gone while the agent keeps running
        with open(agent.config) as f:
            text = f.read()
        with open(agent.config, "w") as f:
            f.write(text.replace("runq_hooks: true", "runq_hooks: false"))
        agent.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 15
        while time.time() < deadline:
            st = control_call(agent.socket, "status")["result"]
            if {x["name"]: x for x in st["watchers"]}["runqlat"]["state"] == "off":
                break
            time.sleep(0.5)
        assert {x["name"]: x for x in st["watchers"]}["runqlat"]["state"] == "off"
        runq_ids = [int(m) for line in agent.read_log().splitlines()
                    if "watch.runqlat: BPF programs loaded" in line
                    for m in re.findall(r"#(\d+)", line)]
        assert runq_ids and not any(prog_exists(i) for i in runq_ids)
        assert agent.proc.poll() is None
    finally:
        rc, _ = agent.stop()
        log = agent.read_log()
        agent.cleanup()
    assert rc == 0, log
    assert ids and not any(prog_exists(i) for i in ids)


PINGPONG = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
/* Two processes bounce a byte over two pipes on one CPU for argv[1] seconds:
 * a context-switch storm, every switch a wakeup and a run-queue wait. */
int main(int argc, char **argv)
{
	int ab[2], ba[2];
	char c = 0;
	cpu_set_t set;
	time_t end = time(NULL) + atoi(argv[1]);

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	if (pipe(ab) || pipe(ba))
		return 1;
	if (fork() == 0) {
		/* only its own ends open: the parent killed, it reads EOF and exits */
		close(ab[1]);
		close(ba[0]);
		while (read(ab[0], &c, 1) == 1 && write(ba[1], &c, 1) == 1)
			;
		return 0;
	}
	close(ab[0]);
	close(ba[1]);
	while (time(NULL) < end)
		for (int i = 0; i < 10000; i++)
			if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1)
				return 1;
	return 0;
}
"""


def runqlat_and_guard(agent):
    st = control_call(agent.socket, "status")["result"]
    w = {x["name"]: x for x in st["watchers"]}["runqlat"]
    g = {h["name"]: h for h in st["guard"]["hooks"]}.get("runqlat", {})
    return w, g


def wait_runqlat_state(agent, state, timeout=20):
    deadline = time.time() + timeout
    while True:
        w, g = runqlat_and_guard(agent)
        if w["state"] == state or time.time() > deadline:
            return w, g
        time.sleep(0.5)


def test_guard_switches_a_costly_hook_mode_off_and_back_on(tmp_path):
    """A context-switch storm makes the run-queue hooks cost more than
    guard.hook_cpu_pct: the guard detaches them (status: throttled, with why),
    keeps them off while the storm lasts, and attaches them again after it."""
    exe = compile_c(PINGPONG, "at_pingpong", str(tmp_path))
    agent = Agent(config_extra="watch:\n  runq_hooks: true\n"
                               "guard:\n  hook_cpu_pct: 1\n  hook_hold: 2s\n")
    storm = None
    try:
        agent.start()
        time.sleep(2.5)
        w, _ = runqlat_and_guard(agent)
        assert w["state"] == "ok", w
        storm = subprocess.Popen([exe, "40"])
        w, g = wait_runqlat_state(agent, "throttled")
        assert w["state"] == "throttled", (w, g)
        assert "guard.hook_cpu_pct 1%" in w["throttled_reason"], w
        assert g["state"] == "throttled" and g["throttles"] >= 1, g
        text = subprocess.run([BIN, "status", "--socket", agent.socket], capture_output=True,
                              text=True).stdout
        assert "hook mode runqlat: throttled" in text, text
        # the storm goes on past the hold: the estimate keeps the hooks off
        time.sleep(5)
        w, g = runqlat_and_guard(agent)
        assert w["state"] == "throttled", (w, g)
        assert g.get("estimated_cpu_pct", 0) > 0.5, g
        storm.kill()
        storm.wait()
        storm = None
        w, g = wait_runqlat_state(agent, "ok")
        assert w["state"] == "ok", (w, g)
        assert "hooks attached again" in agent.read_log()
    finally:
        if storm:
            storm.kill()
            storm.wait()
        rc, _ = agent.stop()
        log = agent.read_log()
        agent.cleanup()
    assert rc == 0, log
    ids = agent_prog_ids(log)
    assert ids and not any(prog_exists(i) for i in ids)


def test_guard_widens_the_watch_layer_and_says_so(tmp_path):
    # a budget the passes cannot meet: 1 ms of agent CPU per second at ten rounds
    # a second is 100 us a round, under what the cgroup and task passes cost
    port = free_port()
    agent = Agent(interval="100ms", config_extra=(
        "guard:\n  watch_cpu: 1ms\n"
        f"metrics:\n  listen: 127.0.0.1:{port}\n"))
    try:
        agent.start()
        time.sleep(12)
        st = control_call(agent.socket, "status")["result"]
        text = subprocess.run([BIN, "status", "--socket", agent.socket], capture_output=True,
                              text=True, check=True).stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            expo = r.read().decode()
        log = agent.read_log()
    finally:
        agent.stop()
        agent.cleanup()
    gw = st["guard"]["watch"]
    w = {x["name"]: x for x in st["watchers"]}
    print(json.dumps(gw), {n: (w[n].get("every"), w[n].get("sample_us_recent"))
                           for n in ("cgroups", "taskwatch")})
    assert gw["cpu_per_s_limit_ms"] == 1.0
    assert gw["us_per_round"] > 0 and gw["widenings"] >= 1
    assert "guard.watch_cpu 1.0ms per second" in gw["last_widen_reason"]
    widened = [n for n in ("cgroups", "taskwatch") if w[n]["every"] > 1]
    assert widened, w
    for n in widened:
        assert gw["every"][n] == w[n]["every"]
        assert "guard.watch_cpu" in w[n]["widened_reason"] and w[n]["widened"] >= 1
        assert w[n]["sample_us_recent"] > 0
        assert f"watcher {n}: sampled every" in log
        assert re.search(rf'^autotrace_watcher_sample_every\{{watcher="{n}"\}} ([0-9]+)$',
                         expo, re.M).group(1) == str(w[n]["every"])
    # the human status says it too
    assert "watch layer:" in text and "widened" in text
    assert re.search(r"every \d+ rounds \(values held in between\): the watch layer used", text)
    # held values keep the series going every round: the task pass's metrics are there
    assert "sched.dstate_tasks" in w["taskwatch"]["values"]
    assert re.search(r"^autotrace_guard_watch_cpu_ratio [0-9.e+-]+$", expo, re.M)
