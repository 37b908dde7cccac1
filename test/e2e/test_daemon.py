# SPDX-License-Identifier: GPL-2.0-only
"""The daemon's lifecycle as systemd and an SRE see it: unit file, notify
protocol, signals, reload, and the CLI's exit codes."""
import os
import re
import signal
import subprocess
import time

import pytest

from agentlib import BIN, SRC, Agent, write_private

# A dry-run rule that fires on every sample: incidents without attaching anything.
ALWAYS = """
rules:
  - name: {name}
    metric: cpu.idle_pct
    above: -1
    dry_run: true
    cooldown: 1s
"""


def run_cli(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True)


@pytest.fixture
def agent():
    a = Agent(rules_yaml=ALWAYS.format(name="first-rule"))
    yield a
    a.cleanup()


def test_unit_file_verifies(tmp_path):
    unit = open(os.path.join(SRC, "config", "autotrace.service")).read()
    assert "Type=notify" in unit and "WatchdogSec=" in unit
    # verify needs the binary it names: point it at the build
    (tmp_path / "autotrace.service").write_text(unit.replace("/usr/sbin/autotrace", BIN))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no",
                          str(tmp_path / "autotrace.service")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", out.stderr


def test_notify_ready_status_watchdog_stopping():
    a = Agent(rules_yaml=ALWAYS.format(name="n"), env={"WATCHDOG_USEC": "600000"})
    try:
        a.start()
        assert a.notify.wait_for("STATUS=", 5)
        # watchdog pings at half the period, from the event loop
        a.notify.messages.clear()
        assert a.notify.wait_for("WATCHDOG=1", 3)
        rc, took = a.stop()
        assert rc == 0
        assert took < 1.0
        assert a.notify.wait_for("STOPPING=1", 1)
    finally:
        a.cleanup()


def test_sigint_exits_cleanly(agent):
    agent.start()
    rc, took = agent.stop(signal.SIGINT)
    assert rc == 0 and took < 1.0


def incident_rules(agent):
    return [i["rule"] for i in agent.incidents()]


def test_sighup_reload_is_atomic(agent):
    agent.start()
    assert agent.wait_incidents(1, timeout=10)
    assert set(incident_rules(agent)) == {"first-rule"}

    # a broken rule file: the reload fails, the running rules keep firing
    bad = write_private(os.path.join(agent.rules_dir, "zz-bad.yaml"),
                        "rules:\n  - name: broken\n    metric: no.such_metric\n    above: 1\n")
    agent.notify.messages.clear()
    agent.proc.send_signal(signal.SIGHUP)
    assert agent.notify.wait_for("RELOADING=1", 5)
    assert agent.notify.wait_for("READY=1", 5)
    n = len(agent.incidents())
    deadline = time.time() + 10
    while time.time() < deadline and len(agent.incidents()) <= n:
        time.sleep(0.2)
    assert len(agent.incidents()) > n, "old rules stopped after a failed reload"
    log = agent.read_log()
    assert re.search(r"zz-bad\.yaml:3:13: metric: unknown metric 'no.such_metric'", log), log
    assert "previous configuration and rules keep running" in log
    assert set(incident_rules(agent)) == {"first-rule"}

    # a good file replaces the set atomically
    os.unlink(bad)
    write_private(os.path.join(agent.rules_dir, "test.yaml"), ALWAYS.format(name="second-rule"))
    agent.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline and "second-rule" not in incident_rules(agent):
        time.sleep(0.2)
    assert "second-rule" in incident_rules(agent), agent.read_log()
    rc, _ = agent.stop()
    assert rc == 0


def test_bad_config_refuses_to_start(tmp_path):
    cfg = write_private(str(tmp_path / "a.yaml"), "agent:\n  interval: fast\n")
    out = run_cli("run", "-c", cfg)
    assert out.returncode == 2
    assert f"{cfg}:2:13: agent.interval: 'fast' is not a duration" in out.stderr

    os.chmod(cfg, 0o666)
    out = run_cli("run", "-c", cfg)
    assert out.returncode == 2
    assert "writable by group or others" in out.stderr


def test_rules_check(tmp_path):
    good = write_private(str(tmp_path / "good.yaml"), ALWAYS.format(name="ok"))
    out = run_cli("rules", "check", good)
    assert out.returncode == 0, out.stderr
    assert "1 rule OK" in out.stdout

    bad = write_private(str(tmp_path / "bad.yaml"),
                        "rules:\n  - name: x\n    metric: cpu.sys_pct\n    above: lots\n"
                        "    capture:\n      - { kind: profile, duration: 10s }\n")
    out = run_cli("rules", "check", bad)
    assert out.returncode == 2
    assert f"{bad}:4:12: above: 'lots' is not a number" in out.stderr

    syntax = write_private(str(tmp_path / "syntax.yaml"), "rules:\n  - name: [x\n")
    out = run_cli("rules", "check", syntax)
    assert out.returncode == 2
    assert re.search(re.escape(str(syntax)) + r":\d+:\d+: YAML syntax error", out.stderr)

    os.chmod(good, 0o646)
    out = run_cli("rules", "check", good)
    assert out.returncode == 2 and "writable by group or others" in out.stderr

    # the shipped default rules are valid
    out = run_cli("rules", "check", os.path.join(SRC, "config", "rules.d"))
    assert out.returncode == 0, out.stderr


def test_cli_help_version_and_exit_codes():
    out = run_cli("--version")
    assert out.returncode == 0 and re.match(r"autotrace \d+\.\d+\.\d+", out.stdout)
    top = run_cli("--help")
    assert top.returncode == 0
    commands = re.findall(r"^  (\w+(?: \w+)?)\s{2,}", top.stdout, re.M)
    assert {"run", "rules check", "metrics", "incidents list", "incidents show"} <= set(commands)
    for cmd in commands:
        out = run_cli(*cmd.split(), "--help")
        assert out.returncode == 0, (cmd, out.stderr)
        assert out.stdout.startswith(f"usage: autotrace {cmd}"), (cmd, out.stdout)
    assert run_cli("frobnicate").returncode == 2
    assert run_cli("metrics", "--count", "0").returncode == 2
    assert run_cli("metrics", "--bogus").returncode == 2
    assert run_cli("incidents", "show", "../../etc/passwd").returncode == 2
    assert run_cli("incidents", "show").returncode == 2
    assert run_cli().returncode == 2


def test_metrics_json():
    out = run_cli("metrics", "--json", "--count", "2", "--interval", "200ms")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().split("\n")
    assert len(lines) == 2
    import json
    doc = json.loads(lines[0])
    assert doc["timestamp"].endswith("Z")
    names = {m["name"] for m in doc["metrics"]}
    assert {"cpu.sys_pct", "cpu.idle_pct", "cpu.user_pct"} <= names
    host_idle = [m for m in doc["metrics"] if m["name"] == "cpu.idle_pct" and not m["labels"]]
    assert len(host_idle) == 1 and 0 <= host_idle[0]["value"] <= 100
