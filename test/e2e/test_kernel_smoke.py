# SPDX-License-Identifier: GPL-2.0-only
"""The kernel matrix's smoke (docs/compatibility.md): the agent on its
built-in defaults (no configuration file, the default rules) on whatever
kernel runs this, a CPU-sys storm and a D-state pile-up made here, and an
incident for each with kernel stacks. It runs in the host suite (the host's
cgroup layout) and in every guest of test/kernels (cgroup v2)."""
import json
import os
import signal
import subprocess
import time

import pytest

from agentlib import BIN, SYSLOOP, compile_c


# N processes each waiting in vfork() for a child that sleeps (and does not
# exec, which would release it): N tasks in D, the vfork wait being
# uninterruptible, for as long as the children sleep.
VFORKERS = r"""
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20, secs = argc > 2 ? atoi(argv[2]) : 8;
    for (int i = 0; i < n; i++) {
        if (fork() == 0) {
            pid_t c = vfork();
            if (c == 0) { sleep(secs); _exit(0); }
            waitpid(c, NULL, 0);
            _exit(0);
        }
    }
    while (wait(NULL) > 0)
        ;
    return 0;
}
"""

FORKERS = 20  # the default dstate-pileup rule fires above 16 tasks in D
# under TCG emulation (test/kernels) everything is ~10x slower
SLOW = float(os.environ.get("AUTOTRACE_TEST_SLOWDOWN", "1"))


def wait_for(pred, timeout, step=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(step)
    return pred()


def incidents(store):
    docs = []
    for f in sorted(store.glob("*/*/incident.json")):
        try:
            docs.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            pass  # being written
    return docs


def by_rule(docs, rule):
    return [d for d in docs if rule in [t["rule"] for t in d.get("triggers", [])]]


def kernel_frames(frames):
    return [f for f in frames if f.get("kernel") and f.get("func")]


def storm(exe, args, done, timeout):
    """Runs exe (its last argument: seconds) until done() or the timeout."""
    p = subprocess.Popen([exe, *args, str(int(timeout) + 5)], start_new_session=True)
    try:
        return wait_for(done, timeout)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def status(socket):
    out = subprocess.run([BIN, "status", "--json", "--socket", str(socket)],
                         capture_output=True, text=True, timeout=30 * SLOW)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def idle(socket):
    """No capture session running: a new firing will not be refused as busy."""
    return not status(socket)["captures"]["sessions"]


def fail(what, store, log_path):
    pytest.fail(f"{what}\nincidents: {[d['triggers'] for d in incidents(store)]}\n"
                f"agent log:\n{log_path.read_text()}", pytrace=False)


def test_defaults_catch_a_sys_storm_and_a_dstate_pileup(tmp_path):
    varlib = tmp_path / "varlib"
    run = tmp_path / "run"
    empty_etc = tmp_path / "etc-autotrace"
    for d in (varlib, run, empty_etc):
        d.mkdir(mode=0o700)
    sysloop = compile_c(SYSLOOP, "at_smoke_sys", str(tmp_path))
    vforkers = compile_c(VFORKERS, "at_smoke_dstate", str(tmp_path))
    # built-in defaults, in a private mount namespace: this host's /etc/autotrace,
    # /var/lib and /run stay untouched
    script = f"""
set -e
mount --make-rprivate /
mount --bind {varlib} /var/lib
mkdir -p /run/autotrace && mount --bind {run} /run/autotrace
if [ -d /etc/autotrace ]; then mount --bind {empty_etc} /etc/autotrace; fi
exec {BIN} run
"""
    log_path = tmp_path / "agent.log"
    log = open(log_path, "w")
    agent = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdout=log,
                             stderr=subprocess.STDOUT)
    store = varlib / "autotrace" / "incidents"
    socket = run / "control.sock"
    try:
        assert wait_for(lambda: "ready:" in log_path.read_text(), 60 * SLOW), \
            log_path.read_text()
        assert "(built-in defaults)" in log_path.read_text()

        # status names the kernel and every fallback in use
        st = status(socket)
        assert st["kernel"]["release"] == os.uname().release
        for f in st["kernel"]["fallbacks"]:
            assert f["component"] and f["fallback"], f

        # 1. kernel time takes over the CPUs: host-cpu-sys-high, a profile.
        # The storm may trip other default rules first (run-queue latency);
        # while their capture runs a firing is refused as busy and retried,
        # so the storm lasts until the incident is there
        # four threads a CPU ("0"), to hold the CPUs against whatever else runs
        sys_docs = storm(sysloop, ["0"], lambda: by_rule(incidents(store), "host-cpu-sys-high"),
                         90 * SLOW)
        if not sys_docs:
            fail("no host-cpu-sys-high incident", store, log_path)

        # 2. tasks pile up in D: dstate-pileup, the dstate capture
        if not wait_for(lambda: idle(socket), 60 * SLOW, step=1):
            fail("captures still running a minute after the storm", store, log_path)
        d_docs = storm(vforkers, [str(FORKERS)], lambda: by_rule(incidents(store),
                                                                   "dstate-pileup"), 90 * SLOW)
        if not d_docs:
            fail("no dstate-pileup incident", store, log_path)
    finally:
        agent.send_signal(signal.SIGTERM)
        rc = agent.wait(30 * SLOW)
        log.close()
    text = log_path.read_text()
    assert rc == 0, text

    # the profile holds the storm's threads with the kernel frames of read(2)
    prof = [c for d in sys_docs for c in d["captures"] if c["kind"] == "profile"]
    # under an emulated CPU the guard may cut the window short (truncated): the
    # stacks it holds must still be the storm's
    assert prof and prof[0]["status"] in ("ok", "partial", "truncated"), \
        [(c["status"], c.get("truncated_reason")) for c in prof]
    ours = [s for c in prof for s in c["top_stacks"] if s["comm"] == "at_smoke_sys"]
    assert ours, [s["comm"] for c in prof for s in c["top_stacks"]]
    funcs = {f["func"] for s in ours for f in kernel_frames(s["frames"])}
    assert funcs & {"ksys_read", "vfs_read", "__x64_sys_read", "do_syscall_64"}, funcs

    # the dstate capture names the stuck parents, each with its kernel stack
    dst = [c for d in d_docs for c in d["captures"] if c["kind"] == "dstate"]
    assert dst and dst[0]["status"] in ("ok", "partial", "truncated"), \
        [(c["status"], c.get("truncated_reason")) for c in dst]
    tasks = [t for c in dst for t in c.get("tasks", []) if t.get("comm") == "at_smoke_dstate"]
    assert len(tasks) >= FORKERS // 2, [c.get("tasks") for c in dst]
    funcs = {f["func"] for t in tasks for f in kernel_frames(t.get("frames", []))}
    assert funcs & {"kernel_clone", "_do_fork", "__do_sys_vfork", "__x64_sys_vfork"}, funcs
