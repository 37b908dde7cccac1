# SPDX-License-Identifier: GPL-2.0-only
"""Symbolization end to end, through real profile captures of real processes:
JIT code named from its perf map (jit: true, _[j] in the folded stacks), a
process that exits and whose binary is deleted before the window ends still
named, and `autotrace symbolize` on a live process."""
import json
import os
import subprocess
import time

import pytest

from agentlib import BIN, Agent, compile_c

# A thread spinning in JIT code: `jmp .` in anonymous executable memory, named
# in /tmp/perf-PID.map the way V8 or the JVM's perf-map-agent name theirs.
JIT = r"""
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void)
{
	static const unsigned char spin[] = {0xeb, 0xfe};
	unsigned char *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char path[64];
	FILE *f;

	memcpy(code, spin, sizeof(spin));
	snprintf(path, sizeof(path), "/tmp/perf-%d.map", getpid());
	f = fopen(path, "w");
	fprintf(f, "%lx %zx at_jit_spin\n", (unsigned long)code, sizeof(spin));
	fclose(f);
	printf("%p\n", (void *)code);
	fflush(stdout);
	((void (*)(void))code)();
	return 0;
}
"""

# Spins for argv[1] ms, then exits.
SHORT = r"""
#include <stdlib.h>
#include <time.h>
static volatile unsigned long sink;
__attribute__((noinline)) static void at_short_lived_leaf(void) { for (int i = 0; i < 1000; i++) sink += i; }
int main(int argc, char **argv)
{
	struct timespec t0, t;
	long ms = atol(argv[1]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		at_short_lived_leaf();
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
	return 0;
}
"""

# Naps 20 ms at a time for argv[1] ms, then exits.
NAPPER = r"""
#include <stdlib.h>
#include <time.h>
__attribute__((noinline)) static void at_short_lived_nap(void)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	__asm__ volatile("" ::: "memory");
}
int main(int argc, char **argv)
{
	for (long i = 0; i < atol(argv[1]) / 20; i++)
		at_short_lived_nap();
	return 0;
}
"""

FLAGS = ("-O1", "-g", "-fno-omit-frame-pointer")


def cli(*args, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def agent():
    a = Agent(config_extra="capture:\n  max_seconds_per_hour: 60\n").start()
    yield a
    a.cleanup()


@pytest.fixture
def jit(tmp_path):
    exe = compile_c(JIT, "atjit", str(tmp_path), flags=FLAGS)
    p = subprocess.Popen([exe], stdout=subprocess.PIPE, text=True)
    addr = int(p.stdout.readline(), 16)
    yield p, addr
    p.kill()
    p.wait()
    try:
        os.unlink(f"/tmp/perf-{p.pid}.map")
    except FileNotFoundError:
        pass


def trigger_profile(agent, *target):
    out = cli("trigger", "-c", agent.config, "--capture", "profile", "--duration", "3s", *target)
    assert out.returncode == 0, out.stdout + out.stderr
    iid = out.stdout.split()[1].rstrip(":")
    return iid, agent.incident_doc(iid)


def test_jit_frames_named_from_the_perf_map(agent, jit):
    p, addr = jit
    iid, doc = trigger_profile(agent, "--pid", str(p.pid))
    cap = doc["captures"][0]
    frames = [f for s in cap["top_stacks"] for f in s["frames"]]
    hits = [f for f in frames if f.get("func") == "at_jit_spin"]
    assert hits, json.dumps(cap["top_stacks"][:2], indent=1)
    assert all(f["jit"] is True and f["module"] == "[jit]" for f in hits)
    path = next(i["path"] for i in agent.incidents() if i["id"] == iid)
    folded = open(os.path.join(path, "profile.folded")).read()
    assert "at_jit_spin_[j]" in folded, folded[:2000]

    # the same frame by hand
    out = cli("symbolize", "--pid", str(p.pid), hex(addr + 1))
    assert out.returncode == 0, out.stderr
    assert f"{hex(addr + 1)} at_jit_spin+0x1 [jit]" in out.stdout, out.stdout
    out = cli("symbolize", "--pid", str(p.pid), "--json", hex(addr))
    assert json.loads(out.stdout)["jit"] is True


def stacks_of_a_process_gone_before_the_end(agent, exe, kind, *target):
    """Runs exe for 1.6 s under a 3 s capture, deletes exe while it runs, and
    returns the capture's stacks of that (by then exited) process."""
    p = subprocess.Popen([exe, "1600"])
    time.sleep(0.2)
    trig = subprocess.Popen([BIN, "trigger", "-c", agent.config, "--capture", kind,
                             "--duration", "3s", *(a.format(pid=p.pid) for a in target)],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    os.unlink(exe)  # deleted while it runs: nothing left on disk to read later
    assert p.wait(10) == 0
    out, _ = trig.communicate(timeout=60)
    assert trig.returncode == 0, out
    iid = out.split()[1].rstrip(":")
    cap = agent.incident_doc(iid)["captures"][0]
    stacks = [s for s in cap["top_stacks"] if s["pid"] == p.pid]
    assert stacks, [(s["pid"], s["comm"]) for s in cap["top_stacks"]]
    return stacks


def test_process_gone_before_the_window_ends(agent, tmp_path):
    """profile: the processes sampled so far are read while they live."""
    exe = compile_c(SHORT, "atshort", str(tmp_path), flags=FLAGS)
    stacks = stacks_of_a_process_gone_before_the_end(agent, exe, "profile")
    funcs = [f.get("func", "") for s in stacks for f in s["frames"]]
    assert "at_short_lived_leaf" in funcs or "main" in funcs, stacks[0]


def test_blocked_process_gone_before_the_window_ends(agent, tmp_path):
    """offcpu: the maps of threads seen blocking are read while they live."""
    exe = compile_c(NAPPER, "atnapper", str(tmp_path), flags=FLAGS)
    stacks = stacks_of_a_process_gone_before_the_end(agent, exe, "offcpu", "--pid", "{pid}")
    # through libc (built without frame pointers) by frame pointer the caller
    # seen may be main; by DWARF (unwind.mode auto) the whole chain to _start
    ours = [f for s in stacks for f in s["frames"] if "atnapper" in f.get("module", "")]
    # (the module path says "(deleted)" only when the maps were read after the
    # unlink: the agent's interval decides, so it is not asserted)
    assert ours and all(f.get("func") in ("at_short_lived_nap", "main", "_start")
                        for f in ours), json.dumps(stacks[0]["frames"])
