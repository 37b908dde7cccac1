# SPDX-License-Identifier: GPL-2.0-only
"""The rule engine end to end: rules firing together share one capture session
and one incident, captures aimed at the top process, and the agent-wide dry run."""
import subprocess
import time

import pytest

from agentlib import SYSLOOP, Agent, compile_c


def run_agent(rules, seconds=7, config_extra="", settle=10, quiet=0):
    a = Agent(rules_yaml=rules, config_extra=config_extra)
    try:
        exe = compile_c(SYSLOOP, "at_rules_load", a.dir)
        a.start()
        time.sleep(quiet)  # history before the load, for increase-over-a-window rules
        load = subprocess.Popen([exe, str(seconds)])
        incidents = a.wait_incidents(1, timeout=seconds + settle)
        load.wait()
        # give anything else that could fire a chance to show up
        incidents = a.wait_incidents(len(incidents) + 1, timeout=2)
        rc, _ = a.stop()
        assert rc == 0, a.read_log()
        return a, incidents, load.pid
    except Exception:
        a.cleanup()
        raise


def test_rules_firing_together_share_one_capture():
    # both conditions become true in the same watcher round when the load starts;
    # the thresholds sit well above what background work on a shared machine makes
    rules = """
rules:
  - name: sys-high
    metric: cpu.sys_pct
    above: 40
    capture:
      - { kind: profile, duration: 3s }
    cooldown: 1h
  - name: sys-very-high
    metric: cpu.sys_pct
    above: 35
    capture:
      - { kind: profile, duration: 2s, frequency: 49 }
    cooldown: 1h
"""
    a, incidents, _ = run_agent(rules, quiet=2)
    try:
        assert len(incidents) == 1, (incidents, a.read_log())
        doc = a.incident_doc(incidents[0]["id"])
        names = [t["rule"] for t in doc["triggers"]]
        assert sorted(names) == ["sys-high", "sys-very-high"], (doc["triggers"], a.read_log())
        assert doc["rule"]["name"] == names[0]
        # one capture of the kind, for the longest window either rule asked
        (cap,) = doc["captures"]
        assert cap["kind"] == "profile"
        assert cap["duration_ms"] >= 2900
        log = a.read_log()
        # the same round ("shared"), or the second joined the first's running capture
        assert "captures shared" in log or "joins the running capture" in log, log
    finally:
        a.cleanup()


def test_rule_firing_later_joins_the_running_capture():
    rules = """
rules:
  - name: sys-high
    metric: cpu.sys_pct
    above: 20
    capture:
      - { kind: profile, duration: 4s }
    cooldown: 1h
  - name: sys-sustained
    metric: cpu.sys_pct
    above: 20
    for: 3s
    capture:
      - { kind: profile, duration: 1s }
    cooldown: 1h
"""
    a, incidents, _ = run_agent(rules)
    try:
        assert len(incidents) == 1, (incidents, a.read_log())
        doc = a.incident_doc(incidents[0]["id"])
        assert [t["rule"] for t in doc["triggers"]] == ["sys-high", "sys-sustained"]
        assert len(doc["captures"]) == 1
        assert "sys-sustained fired" in a.read_log()
        assert "joins the running capture of rule sys-high" in a.read_log()
    finally:
        a.cleanup()


def test_capture_targets_the_top_process():
    rules = """
rules:
  - name: sys-top-process
    metric: cpu.sys_pct
    above: 20
    capture:
      - { kind: profile, duration: 2s, target: process }
    cooldown: 1h
"""
    a, incidents, load_pid = run_agent(rules)
    try:
        assert len(incidents) == 1, a.read_log()
        doc = a.incident_doc(incidents[0]["id"])
        (cap,) = doc["captures"]
        assert cap["target"] == {"kind": "process", "pid": load_pid}, (cap["target"], load_pid)
        assert cap["top_stacks"], cap
        assert {s["pid"] for s in cap["top_stacks"]} == {load_pid}
        assert doc["trigger"]["target"]["kind"] == "process"
        assert f"(pid {load_pid})" in a.read_log()
    finally:
        a.cleanup()


def test_agent_wide_dry_run_attaches_nothing():
    rules = """
rules:
  - name: sys-would-capture
    metric: cpu.sys_pct
    above: 20
    capture:
      - { kind: profile, duration: 2s }
    cooldown: 1h
"""
    a = Agent(rules_yaml=rules)
    try:
        # the same rule with agent.dry_run: the config lives in the agent section
        cfg = open(a.config).read().replace("agent:\n", "agent:\n  dry_run: true\n", 1)
        with open(a.config, "w") as f:
            f.write(cfg)
        exe = compile_c(SYSLOOP, "at_rules_load", a.dir)
        a.start()
        subprocess.run([exe, "5"], check=True)
        got = a.wait_incidents(1, timeout=8)
        rc, _ = a.stop()
        log = a.read_log()
        assert rc == 0
        assert len(got) == 1, log
        doc = a.incident_doc(got[0]["id"])
        assert doc["incident"]["status"] == "dry_run"
        assert [c["status"] for c in doc["captures"]] == ["dry_run"]
        assert [c["kind"] for c in doc["captures"]] == ["profile"]
        assert "capture profile attached" not in log, log
        assert "dry run: nothing attached" in log
    finally:
        a.cleanup()
