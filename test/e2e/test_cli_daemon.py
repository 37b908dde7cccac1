# SPDX-License-Identifier: GPL-2.0-only
"""The SRE's commands against a running agent: status, trigger (by kinds and by
rule, with pid and cgroup targets, within the budget), and incidents show."""
import json
import os
import signal
import subprocess
import time

import pytest

from agentlib import BIN, Agent, compile_c

RULES = """
rules:
  - name: sys-very-high
    description: Kernel time dominates
    metric: cpu.sys_pct
    above: 1000
    for: 2s
    capture:
      - { kind: profile, duration: 2s, frequency: 199 }
    cooldown: 1m
"""

# Two spinning threads: a strong, unmistakable user-space CPU consumer.
SPINNER = r"""
#include <pthread.h>
#include <unistd.h>
static volatile unsigned long sink;
__attribute__((noinline)) static void autotrace_spin_leaf(void) { for (int i = 0; i < 1000; i++) sink += i; }
__attribute__((noinline)) static void *spin(void *a) { for (;;) autotrace_spin_leaf(); return a; }
int main(void) {
	pthread_t t;
	pthread_create(&t, 0, spin, 0);
	spin(0);
}
"""


def cli(*args, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def agent():
    a = Agent(rules_yaml=RULES, config_extra="capture:\n  max_seconds_per_hour: 40\n").start()
    yield a
    a.cleanup()


@pytest.fixture
def spinner(agent, tmp_path):
    # -O0: every function keeps its frame, so the frame-pointer walk names the leaf's caller
    # too (optimizing, gcc drops leaf functions' frames even with -fno-omit-frame-pointer)
    exe = compile_c(SPINNER, "atspin", str(tmp_path), flags=("-O0", "-g", "-pthread",
                                                             "-fno-omit-frame-pointer"))
    p = subprocess.Popen([exe])
    yield p
    p.kill()
    p.wait()


def status(agent):
    out = cli("status", "--json", "-c", agent.config)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_status_json(agent):
    time.sleep(2.5)
    st = status(agent)
    a = st["agent"]
    assert a["pid"] == agent.proc.pid and a["version"]
    assert a["uptime_ms"] > 0 and a["interval_ms"] == 1000
    assert a["rss_bytes"] > 1 << 20 and a["rss_peak_bytes"] >= a["rss_bytes"]
    assert a["cpu_seconds"] > 0 and 0 <= a["cpu_pct"] < 100
    w = {x["name"]: x for x in st["watchers"]}
    assert w["cpustat"]["state"] == "ok" and w["cpustat"]["samples"] >= 2
    assert 0 <= w["cpustat"]["values"]["cpu.sys_pct"] <= 100
    assert w["cpustat"]["labeled_series"] > 0  # per-cpu series
    assert w["cpustat"]["sample_us_avg"] > 0
    r = {x["name"]: x for x in st["rules"]}
    assert r["sys-very-high"]["state"] == "ok"
    assert r["sys-very-high"]["fires_last_hour"] == 0
    assert "last_fired_ago_ms" not in r["sys-very-high"]
    kinds = {k["kind"]: k for k in st["captures"]["kinds"]}
    assert kinds["profile"]["state"] == "ready"
    assert st["incidents"]["dir"] == agent.incident_dir
    assert st["elasticsearch"]["state"] == "disabled"
    assert set(st["dropped"]) >= {"metric_series", "capture_lost_events",
                                  "captures_refused_busy", "captures_refused_budget",
                                  "rule_firings_skipped", "incidents_failed"}
    assert st["control"]["socket"] == agent.socket


def kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def test_status_keeps_no_start_up_memory():
    """Start-up memory stays released: the first status used to parse the kernel
    BTF (for the fallbacks it lists) and keep it, 5 MiB and more for good; and an
    agent without an Elasticsearch sink never maps libcurl and its libraries."""
    a = Agent(rules_yaml=RULES).start()
    try:
        time.sleep(2.5)
        pid = a.proc.pid
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read()
        assert "libcurl" not in maps
        rss, hwm = kib(pid, "VmRSS"), kib(pid, "VmHWM")
        for _ in range(2):
            out = cli("status", "--json", "-c", a.config)
            assert out.returncode == 0, out.stderr
        assert kib(pid, "VmRSS") - rss < 2048, (rss, kib(pid, "VmRSS"))
        assert kib(pid, "VmHWM") - hwm < 2048, (hwm, kib(pid, "VmHWM"))
    finally:
        a.cleanup()


def test_status_text(agent):
    out = cli("status", "-c", agent.config)
    assert out.returncode == 0, out.stderr
    for want in ("autotrace ", "agent cost: CPU", "RSS", "WATCHER", "cpustat", "cpu.sys_pct=",
                 "RULE", "sys-very-high", "captures:", "profile ready", "incidents:",
                 "elasticsearch: disabled", "dropped:"):
        assert want in out.stdout, (want, out.stdout)


def test_status_without_agent(tmp_path):
    out = cli("status", "--socket", str(tmp_path / "none.sock"))
    assert out.returncode == 1
    assert "no agent is listening" in out.stderr


def test_trigger_capture_pid_produces_incident(agent, spinner):
    time.sleep(0.5)
    out = cli("trigger", "-c", agent.config, "--capture", "profile", "--duration", "2s",
              "--pid", str(spinner.pid))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "capturing profile on process %d for 2s" % spinner.pid in out.stdout
    iid = out.stdout.split()[1].rstrip(":")
    assert "written to" in out.stdout
    doc = agent.incident_doc(iid)
    assert doc["rule"]["name"] == "manual"
    assert doc["trigger"]["manual"] is True
    assert doc["trigger"]["target"] == {"kind": "process", "pid": spinner.pid}
    cap = doc["captures"][0]
    assert cap["kind"] == "profile" and cap["status"] in ("ok", "partial")
    assert 1500 <= cap["duration_ms"] <= 4000
    # filtered in the kernel: only our process, and our hot function on top
    assert {s["pid"] for s in cap["top_stacks"]} == {spinner.pid}
    assert cap["top_stacks"][0]["comm"] == "atspin"
    # the heaviest stack is the hot loop itself: its innermost user frame is the leaf
    # both threads spin in, in the spinner's own binary, called from the thread function
    user = [f for f in cap["top_stacks"][0]["frames"] if not f["kernel"]]
    assert len(user) >= 2, cap["top_stacks"][0]
    assert user[0].get("func") == "autotrace_spin_leaf", user
    assert user[0].get("module", "").endswith("/atspin"), user[0]
    assert user[1].get("func") == "spin", user
    # a manual incident still has context: the host's CPU history
    assert doc["history"]["series"][0]["metric"] == "cpu.sys_pct"

    show = cli("incidents", "show", iid, "--dir", agent.incident_dir)
    assert show.returncode == 0, show.stderr
    for want in ("incident " + iid, "rule       manual", "triggered by hand",
                 "captured   process %d" % spinner.pid, "history since", "cpu.sys_pct",
                 "capture profile", "top stacks:", "#1  atspin pid %d" % spinner.pid):
        assert want in show.stdout, (want, show.stdout)
    assert any(ch in show.stdout for ch in "▁▂▃▄▅▆▇█")  # the sparkline

    listed = cli("incidents", "list", "-q", "--dir", agent.incident_dir).stdout.split()
    assert iid in listed


def cgroup_root():
    """The hierarchy the agent's BPF side reports cgroup ids from."""
    for d in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        if os.path.isdir(d) and os.path.exists(os.path.join(d, "cgroup.procs")):
            return d
    return "/sys/fs/cgroup"


def test_trigger_capture_cgroup(agent, spinner, tmp_path):
    root = cgroup_root()
    name = "autotrace-cli-test-%d" % os.getpid()
    cg = os.path.join(root, name)
    os.mkdir(cg)
    try:
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(spinner.pid))
        out = cli("trigger", "-c", agent.config, "--capture", "profile", "--duration", "2s",
                  "--cgroup", "/" + name, "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        res = json.loads(out.stdout)
        assert res["state"] == "written" and os.path.isdir(res["path"])
        assert res["target"] == {"kind": "cgroup", "cgroup": "/" + name}
        doc = agent.incident_doc(res["incident_id"])
        assert doc["trigger"]["target"]["cgroup"] == "/" + name
        assert {s["pid"] for s in doc["captures"][0]["top_stacks"]} == {spinner.pid}
        # the full path under the mount works too
        out = cli("trigger", "-c", agent.config, "--capture", "profile", "--duration", "1s",
                  "--cgroup", cg, "--no-wait", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["target"]["cgroup"] == "/" + name
        time.sleep(3)
    finally:
        spinner.kill()
        spinner.wait()
        time.sleep(0.2)
        os.rmdir(cg)


def test_trigger_rule_and_status_while_running(agent):
    out = cli("trigger", "-c", agent.config, "--rule", "sys-very-high", "--no-wait", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["rule"] == "sys-very-high"
    assert res["captures"] == [{"kind": "profile", "duration_ms": 2000}]
    st = status(agent)
    sessions = st["captures"]["sessions"]
    assert [s["incident_id"] for s in sessions] == [res["incident_id"]]
    assert sessions[0]["manual"] is True and sessions[0]["ends_in_ms"] <= 2000
    assert [k["kind"] for k in st["captures"]["running"]] == ["profile"]
    text = cli("status", "-c", agent.config).stdout
    assert res["incident_id"] in text and "(manual)" in text

    # the budget says one capture at a time: a second one now is refused, exit 1
    busy = cli("trigger", "-c", agent.config, "--capture", "profile")
    assert busy.returncode == 1
    assert "busy" in busy.stderr and "max_concurrent" in busy.stderr

    deadline = time.time() + 30
    while time.time() < deadline and status(agent)["captures"]["sessions"]:
        time.sleep(0.3)
    doc = agent.incident_doc(res["incident_id"])
    assert doc["rule"]["name"] == "sys-very-high"
    assert doc["rule"]["condition"].startswith("cpu.sys_pct above 1000")
    assert doc["trigger"]["manual"] is True
    assert doc["captures"][0]["frequency_hz"] == 199  # the rule's parameters
    st = status(agent)
    rule = {r["name"]: r for r in st["rules"]}["sys-very-high"]
    assert rule["last_incident"] == res["incident_id"]
    assert st["dropped"]["captures_refused_busy"] >= 1
    assert st["incidents"]["last"]["id"] == res["incident_id"]


def test_trigger_usage_errors(agent):
    cases = [
        (["--rule", "x", "--capture", "profile"], "exactly one"),
        ([], "exactly one"),
        (["--capture", "profile", "--pid", "1", "--cgroup", "/"], "at most one"),
        (["--capture", "profile", "--duration", "soon"], "--duration"),
        (["--capture", "profile", "--pid", "0"], "--pid"),
        (["--rule", "no-such-rule"], "no rule named 'no-such-rule'"),
        (["--capture", "nope"], "unknown capture kind 'nope'"),
        (["--capture", "profile", "--duration", "30m"], "capture.max_duration"),
        (["--capture", "profile", "--pid", "4194000"], "no process with pid"),
        (["--capture", "profile", "--cgroup", "/no/such/cgroup"], "no cgroup"),
        (["extra-arg", "--capture", "profile"], "unexpected argument"),
    ]
    for args, msg in cases:
        out = cli("trigger", "-c", agent.config, *args)
        assert out.returncode == 2, (args, out.returncode, out.stderr)
        assert msg in out.stderr, (args, out.stderr)


def test_trigger_budget_spent(agent):
    # this module's agent allows 40 capture-seconds an hour; ask for more
    spent = 0
    for _ in range(10):
        out = cli("trigger", "-c", agent.config, "--capture", "profile", "--duration", "10s",
                  "--no-wait")
        if out.returncode:
            break
        spent += 10
        deadline = time.time() + 30
        while time.time() < deadline and status(agent)["captures"]["sessions"]:
            time.sleep(0.3)
    assert out.returncode == 1
    assert "capture budget spent" in out.stderr and "max_seconds_per_hour" in out.stderr
    assert spent <= 40
    assert status(agent)["dropped"]["captures_refused_budget"] >= 1


def test_sigterm_during_manual_capture_writes_interrupted_incident(tmp_path):
    a = Agent(rules_yaml=RULES).start()
    try:
        out = cli("trigger", "-c", a.config, "--capture", "profile", "--duration", "30s",
                  "--no-wait", "--json")
        assert out.returncode == 0, out.stderr
        iid = json.loads(out.stdout)["incident_id"]
        time.sleep(0.5)
        rc, took = a.stop(signal.SIGTERM)
        assert rc == 0 and took < 1.5
        doc = a.incident_doc(iid)
        assert doc["incident"]["status"] == "interrupted"
        assert doc["rule"]["name"] == "manual"
    finally:
        a.cleanup()
