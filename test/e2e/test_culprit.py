# SPDX-License-Identifier: GPL-2.0-only
"""Issue 14: the incident names who consumed the resource, complete.

- A pre-fork server (6 worker processes of one program, each spreading its CPU
  over thousands of call paths) next to a client with one hot stack: the
  hottest single stack is the client's, but `culprit` is the server program,
  with its process count, and the summary says so.
- The same 10 s host-wide profile is `complete`: many distinct stacks, none
  lost to stack-id collisions.
- An fsync storm with the shipped default rules: the io-stall rule fires and
  the culprit is the writer.
"""
import glob
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from agentlib import BIN, SRC, Agent, compile_c
from workloads import CLIENT, NOFP_FLAGS, SERVER, WRITER

WORKERS = 6

CPU_RULE = """
rules:
  - name: e2e-cpu-busy
    description: test rule
    metric: cpu.user_pct
    above: 60
    for: 2s
    capture:
      - { kind: profile, duration: 10s }
    cooldown: 1h
"""


@pytest.fixture(scope="module")
def server_incident():
    """One real run: server + client burning both CPUs, the rule fires, one
    10 s host-wide profile; yields (agent, incident doc, show text)."""
    agent = Agent(rules_yaml=CPU_RULE)
    procs = []
    try:
        server = compile_c(SERVER, "atserver", agent.dir, flags=NOFP_FLAGS)
        client = compile_c(CLIENT, "atclient", agent.dir, flags=NOFP_FLAGS)
        # Ahead of whatever else runs on a shared machine (builds, other
        # tests): one new session whose autogroup (and nice, where there is no
        # autogroup) weighs more than others; inside it the server's workers
        # and the client share the CPUs as equals.
        both = subprocess.Popen(
            ["setsid", "sh", "-c",
             "echo -15 > /proc/self/autogroup 2>/dev/null; "
             f"nice -n -10 {server} {WORKERS} 25 & nice -n -10 {client} 25 & wait"])
        procs = [both]
        time.sleep(1)
        agent.start()
        incidents = agent.wait_incidents(1, timeout=40)
        assert incidents, "no incident:\n" + agent.read_log()
        doc = agent.incident_doc(incidents[0]["id"])
        show = subprocess.run([BIN, "incidents", "show", incidents[0]["id"], "--dir",
                               agent.incident_dir], capture_output=True, text=True, check=True)
        yield agent, doc, show.stdout
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass
            p.wait()
        agent.cleanup()


def test_prefork_server_is_the_culprit(server_incident):
    _, doc, show = server_incident
    cap = doc["captures"][0]
    assert cap["kind"] == "profile"
    # the scenario: the single hottest stack is the client's one hot loop
    assert cap["top_stacks"][0]["comm"] == "atclient", cap["top_stacks"][:3]

    c = doc["culprit"]
    assert c["program"] == "atserver", c
    assert c["exe"].endswith("/atserver"), c
    assert c["processes"] == WORKERS, c
    assert len(c["pids"]) == WORKERS and c["pid"] in c["pids"], c
    assert c["capture"] == "profile" and c["measure"] == "samples"
    # the server held most of the samples, the client much less
    programs = {p["program"]: p for p in doc["culprits"]}
    assert programs["atserver"]["pct"] > 2 * programs["atclient"]["pct"], doc["culprits"]
    assert programs["atclient"]["processes"] == 1
    # its top stacks are its own, deep through the function tree
    assert c["stacks"] and all(s["stack"].startswith("atserver;") for s in c["stacks"]), c
    assert any(";f" in s["stack"] for s in c["stacks"]), c
    assert c["stack"] == c["stacks"][0]["stack"]
    assert {f["name"] for f in c["functions"]} & {f"f{i}" for i in range(16)}, c
    assert c["kernel_pct"] < 50, c

    # every listing of the capture ranks the same way
    cons = cap["consumers"]
    assert cons["measure"] == "samples" and cons["total"] == cap["samples"], cons
    assert cons["programs"][0]["program"] == "atserver"
    assert sum(1 for p in cons["processes"] if p["comm"] == "atserver") >= WORKERS - 1

    # the summary says who, with the numbers of the incident
    s = doc["summary"]
    assert s.startswith("e2e-cpu-busy fired: cpu.user_pct was"), s
    assert "Culprit: atserver" in s and f"{WORKERS} processes" in s, s
    assert f"{c['pct']:.1f}% of the on-CPU samples recorded by profile" in s, s
    assert "atclient" in s  # listed next
    # and `incidents show` leads with it, then the culprits
    head = show[:show.index("history since")]
    assert "Culprit: atserver" in head and "culprits (by samples, from profile)" in head, show
    assert "#1" in head and "6 processes" in head, head


def test_host_profile_is_complete_under_many_stacks(server_incident):
    """10 s, host-wide, 2 CPUs, thousands of distinct stacks: nothing lost."""
    _, doc, _ = server_incident
    cap = doc["captures"][0]
    assert doc["trigger"]["target"]["kind"] == "host"
    assert cap["duration_ms"] >= 9500
    assert cap["distinct_stacks"] > 1000, cap["distinct_stacks"]
    assert cap["lost"]["stacks"] == 0, cap["lost"]
    assert not any(cap["lost"].values()), cap["lost"]
    assert cap["lost_events"] == 0 and cap["status"] == "ok", cap["status"]
    assert doc["incident"]["status"] == "complete"
    assert "nothing lost" in doc["summary"]


def test_fsync_storm_with_shipped_defaults():
    """The shipped rules, untouched, catch a sustained fsync storm that neither
    saturates the device nor makes it slow, and name the writer."""
    agent = Agent()
    for f in glob.glob(os.path.join(SRC, "config", "rules.d", "*.yaml")):
        shutil.copy(f, agent.rules_dir)
        os.chmod(os.path.join(agent.rules_dir, os.path.basename(f)), 0o600)
    # on the disk: /var/tmp, never tmpfs
    data = tempfile.mkdtemp(prefix="atwriter-", dir="/var/tmp")
    writer = None
    try:
        exe = compile_c(WRITER, "atwriter", agent.dir)
        agent.start()
        writer = subprocess.Popen([exe, data, "60", "4"])
        doc = None
        deadline = time.time() + 55
        while time.time() < deadline and doc is None:
            for inc in agent.incidents():
                d = agent.incident_doc(inc["id"])
                if d["rule"]["name"] == "io-stall":
                    doc = d
            time.sleep(1)
        assert doc, "no io-stall incident; incidents: %s\n%s" % (
            [agent.incident_doc(i["id"])["rule"]["name"] for i in agent.incidents()],
            agent.read_log()[-4000:])
        assert doc["trigger"]["metric"] in ("psi.io_some_pct", "psi.io_full_pct")
        kinds = [c["kind"] for c in doc["captures"]]
        assert kinds == ["iotrace", "offcpu"], kinds

        c = doc["culprit"]
        assert c["program"] == "atwriter", (c, doc["culprits"])
        assert c["capture"] == "iotrace" and c["measure"] == "io_us", c
        # the processes doing the IO, and their files
        io = doc["captures"][0]
        writer_rows = [p for p in io["processes"] if p["comm"] == "atwriter"]
        assert writer_rows, io["processes"]
        paths = [f["path"] for f in writer_rows[0]["files"]]
        assert any(os.path.basename(p).startswith("atwriter-") for p in paths), paths
        assert writer_rows[0]["disk_write_bytes"] > 0
        # the writer's time went to its syncs: its stacks under the culprit
        assert any("fsync" in s["stack"] for s in c.get("stacks", [])), c
        # the processes stalled: offcpu ranks the writer's blocked threads
        off = doc["captures"][1]
        stalled = {p["program"] for p in off["consumers"]["programs"]}
        assert "atwriter" in stalled, off["consumers"]["programs"]
        s = doc["summary"]
        assert s.startswith("io-stall fired: psi.io_"), s
        assert "Culprit: atwriter" in s and "atwriter-" in s, s
    finally:
        if writer:
            writer.kill()
            writer.wait()
        agent.cleanup()
        shutil.rmtree(data, ignore_errors=True)
