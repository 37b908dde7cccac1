# SPDX-License-Identifier: GPL-2.0-only
"""`autotrace probes`: every feature really tested on this kernel, the answers
consistent with independent evidence, and nothing left loaded afterwards."""
import gzip
import json
import os
import subprocess

import pytest

from agentlib import BIN, Agent, write_private

FEATURES = ("privileges", "bpf", "btf", "tp_btf", "raw_tp", "tracefs", "tracepoints", "kprobes",
            "fentry", "perf_events", "task_iter", "ringbuf", "task_storage", "task_helpers",
            "uprobes", "psi", "cgroups")


def probes(*args):
    out = subprocess.run([BIN, "probes", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def feature_progs():
    """Ids of loaded programs named like the probe programs (feat_*): ours only."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    return {p["id"] for p in json.loads(out.stdout or "[]")
            if p.get("name", "").startswith("feat_")}


def kernel_config():
    """The running kernel's build options ({"CONFIG_X": "y"}), or None when it does not
    publish them (the guests of test/kernels have /boot/config-RELEASE, the CI host
    /proc/config.gz)."""
    for path in ("/proc/config.gz", f"/boot/config-{os.uname().release}"):
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rt") as f:
                    text = f.read()
            else:
                with open(path) as f:
                    text = f.read()
        except OSError:
            continue
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line
                    and line.startswith("CONFIG_"))
    return None


def test_probes_json_is_complete_and_consistent():
    before = feature_progs()
    doc = json.loads(probes("--json").stdout)
    assert doc["root"] is True
    assert doc["kernel"]["release"] == os.uname().release
    feats = {f["name"]: f for f in doc["features"]}
    for name in FEATURES:
        assert name in feats, name
        assert feats[name]["state"] in ("yes", "no", "partial"), feats[name]
        assert feats[name]["detail"], name
    # independent evidence for what the answers claim
    assert (feats["btf"]["state"] == "yes") == os.path.exists("/sys/kernel/btf/vmlinux")
    assert (feats["psi"]["state"] == "yes") == os.path.exists("/proc/pressure/cpu")
    # a "yes" for a BPF hook means the program was attached *and ran*
    for name in ("tp_btf", "raw_tp", "tracepoints", "kprobes", "fentry", "perf_events",
                 "uprobes"):
        if feats[name]["state"] == "yes":
            assert "ran" in feats[name]["detail"] or "sampled" in feats[name]["detail"], \
                feats[name]
        else:
            assert feats[name]["detail"], feats[name]  # and a "no" says why
    # kprobes: the kernel's build options tell; on the kernel matrix's Debian guests
    # (which have both) kprobes and fentry must really attach and run
    cfg = kernel_config()
    if cfg is not None:
        want = all(cfg.get(o) == "y" for o in ("CONFIG_KPROBES", "CONFIG_KPROBE_EVENTS",
                                                 "CONFIG_BPF_EVENTS"))
        assert (feats["kprobes"]["state"] == "yes") == want, (feats["kprobes"], want)
    if os.environ.get("AUTOTRACE_TEST_KERNEL_MATRIX"):
        assert feats["kprobes"]["state"] == "yes", feats["kprobes"]
        assert feats["fentry"]["state"] == "yes", feats["fentry"]
    # the profile capture needs perf events: the two answers must agree
    caps = {c["kind"]: c for c in doc["captures"]}
    assert (caps["profile"]["state"] == "ready") == (feats["perf_events"]["state"] == "yes")
    # watchers report what they produce here
    w = {x["name"]: x for x in doc["watchers"]}
    assert w["cpustat"]["state"] == "ok" and "cpu.sys_pct" in w["cpustat"]["metrics"]
    # the default rules are checked against this host
    assert doc["rules"] and all(r["state"] in ("ok", "degraded") for r in doc["rules"])
    # the fallbacks the probes took here agree with what the kernel lacks
    fallbacks = {f["component"]: f["fallback"] for f in doc["fallbacks"]}
    assert all(fallbacks.values()), fallbacks
    if feats["task_storage"]["state"] == "no" and doc["watchers"] and \
            {w["name"]: w for w in doc["watchers"]}["taskwatch"]["state"] == "ok":
        assert "task storage" in fallbacks.get("taskwatch", ""), fallbacks
    if feats["task_storage"]["state"] == "yes":
        assert "taskwatch" not in fallbacks, fallbacks
    if feats["task_helpers"]["state"] == "yes":
        assert not [c for c in fallbacks if "offcpu" in c], fallbacks
    # nothing stays loaded
    assert feature_progs() <= before


def test_probes_text():
    out = probes().stdout
    for want in ("kernel ", "FEATURE", "tp_btf", "kprobes", "task_iter", "ringbuf", "psi",
                 "cgroups", "WATCHER", "cpustat", "CAPTURE", "profile", "FALLBACK",
                 "RULE"):
        assert want in out, (want, out)


def test_probes_reports_degraded_rules(tmp_path):
    rules = tmp_path / "rules.d"
    rules.mkdir(mode=0o700)
    write_private(str(rules / "r.yaml"), "rules:\n  - name: fine\n    metric: cpu.sys_pct\n"
                  "    above: 50\n    capture:\n      - { kind: profile, duration: 1s }\n")
    cfg = write_private(str(tmp_path / "a.yaml"), f"agent:\n  rules_dir: {rules}\n")
    doc = json.loads(probes("--json", "-c", cfg).stdout)
    assert [r["name"] for r in doc["rules"]] == ["fine"]
    assert doc["rules"][0]["state"] == "ok" and doc["rules"][0]["why"] == []


def test_probes_as_non_root_says_why():
    import pwd
    nobody = pwd.getpwnam("nobody")
    out = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                          "--clear-groups", BIN, "probes", "--json"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["root"] is False
    feats = {f["name"]: f for f in doc["features"]}
    assert feats["tp_btf"]["state"] == "no"
    assert feats["privileges"]["state"] == "no"
