# SPDX-License-Identifier: GPL-2.0-only
"""Adversarial end to end (ctest label security): hostile processes do their
worst to the agent while a real capture runs.

- a process in its own mount namespace whose /tmp/perf-PID.map is a symlink
  to a host-only file (shaped like a perf map naming its JIT code), and an
  unprivileged one whose perf map points at a root-owned file of its own root;
- a sparse ELF whose note section claims 1.5 GiB, mapped executable;
- a shared library truncated and rewritten over and over while the agent reads it;
- a process name and function names full of terminal escapes, newlines,
  folded-stack separators and invalid UTF-8.

Passes when the agent stays up and answers status throughout, its RSS stays
under the unit's MemoryMax, no host file content reaches any incident,
`incidents show` prints no control bytes, every SVG parses as XML, and the
symbolizer's helper ran unprivileged.
"""
import json
import os
import pathlib
import re
import secrets
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from agentlib import BIN, Agent, compile_c

MEMORY_MAX = 512 << 20  # config/autotrace.service MemoryMax
SECRET = "HOSTSECRET" + secrets.token_hex(6)
JIT_ADDR = 0x7E0000000000
PLACEHOLDER = b"EVILNAMEPLACEHOLDER_0123456789"
HOSTILE_NAME = b"evil\x1b]52;c;aGk=\x07\n\xff\xfe;x y\r\xc2\x9b[2J\x7f!"[:len(PLACEHOLDER)]
HOSTILE_NAME += b"_" * (len(PLACEHOLDER) - len(HOSTILE_NAME))

# Spins in a function whose name is patched into hostile bytes afterwards; its
# comm is hostile too; with argv[1] its JIT code sits at a fixed address.
SPINNER = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>
static volatile unsigned long sink;
__attribute__((noinline)) void EVILNAMEPLACEHOLDER_0123456789(void)
{
	for (;;)
		sink++;
}
int main(int argc, char **argv)
{
	prctl(PR_SET_NAME, "\x1b]0;pwn\x07\n\xff\xe2\x80");
	if (argc > 1 && !strcmp(argv[1], "jit")) {
		unsigned char *code = mmap((void *)0x7e0000000000, 4096,
					   PROT_READ | PROT_WRITE | PROT_EXEC,
					   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		static const unsigned char spin[] = {0xeb, 0xfe};
		if (code == MAP_FAILED)
			return 1;
		memcpy(code, spin, sizeof(spin));
		printf("ready\n");
		fflush(stdout);
		((void (*)(void))code)();
	}
	if (argc > 2 && !strcmp(argv[1], "lib") && !dlopen(argv[2], RTLD_NOW))
		return 2;
	printf("ready\n");
	fflush(stdout);
	EVILNAMEPLACEHOLDER_0123456789();
	return 0;
}
"""

# A library with many symbols: reading it takes a while, long enough to be
# truncated underneath.
def big_library_source(n=20000):
    return "".join(f"int libfn_{i:05d}(int x) {{ return x * {i} + 1; }}\n" for i in range(n))


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, timeout=kw.pop("timeout", 120), **kw)


def patch_name(path):
    data = open(path, "rb").read()
    assert PLACEHOLDER in data
    open(path, "wb").write(data.replace(PLACEHOLDER, HOSTILE_NAME))


def giant_note(path):
    """Makes a note section header claim 1.5 GiB at 1 GiB into a 3 GiB sparse
    file: the program still runs (sections do not matter to exec)."""
    data = bytearray(open(path, "rb").read())
    assert data[:4] == b"\x7fELF" and data[4] == 2  # 64-bit
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    patched = 0
    for i in range(shnum):
        off = shoff + i * shentsize
        sh_type, = struct.unpack_from("<I", data, off + 4)
        if sh_type == 7:  # SHT_NOTE
            struct.pack_into("<QQ", data, off + 0x18, 1 << 30, 3 << 29)  # offset, size
            patched += 1
    assert patched
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(3 << 30)


class Hostile:
    def __init__(self, cmd, env=None):
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=False, env=env,
                                  start_new_session=True)
        line = self.p.stdout.readline()
        assert b"ready" in line, (cmd, line)

    def kill(self):
        try:
            os.killpg(self.p.pid, 9)
        except ProcessLookupError:
            pass
        self.p.wait()


def spinner_pid(session_leader):
    """The spinner itself under `unshare ... sh -c`: the deepest child."""
    pid = session_leader
    for _ in range(5):
        kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        if not kids:
            return pid
        pid = int(kids[0])
    return pid


@pytest.fixture(scope="module")
def work():
    # binaries outside /tmp (the first hostile process hides /tmp behind its
    # own tmpfs); the host-only secret inside /tmp, where it cannot see it
    d = pathlib.Path(tempfile.mkdtemp(prefix="autotrace-hostile-", dir="/var/tmp"))
    os.chmod(d, 0o755)
    host_tmp = pathlib.Path(tempfile.mkdtemp(prefix="autotrace-hostsecret-", dir="/tmp"))
    os.chmod(host_tmp, 0o755)
    spinner = compile_c(SPINNER, "spinner", str(d), flags=("-O1", "-g", "-ldl"))
    patch_name(spinner)
    lib_src = d / "libbig.c"
    lib_src.write_text(big_library_source())
    lib = str(d / "libbig.so")
    subprocess.run(["gcc", "-O0", "-shared", "-fPIC", "-o", lib, str(lib_src)], check=True)
    note = str(d / "giantnote")
    shutil.copy(spinner, note)
    giant_note(note)
    # the host-only file, shaped like a perf map naming the JIT code
    secret = host_tmp / "host-secret.map"
    secret.write_text(f"{JIT_ADDR:x} 1000 {SECRET}_jit\n{SECRET} in a host file\n")
    os.chmod(secret, 0o644)
    yield {"dir": str(d), "spinner": spinner, "lib": lib, "note": note, "secret": str(secret)}
    shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(host_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def agent():
    a = Agent(config_extra="capture:\n  max_seconds_per_hour: 600\n"
                           "symbolizer:\n  helper_timeout: 2s\n").start()
    yield a
    a.cleanup()


def truncating(path, stop):
    """Truncates path and writes it back, over and over."""
    data = open(path, "rb").read()
    while not stop.is_set():
        with open(path, "r+b") as f:
            f.truncate(4096)
            f.flush()
            time.sleep(0.002)
            f.seek(0)
            f.write(data)
        time.sleep(0.002)


def no_control_bytes(raw):
    text = raw.decode("utf-8")  # raises on invalid UTF-8
    bad = [c for c in text if (ord(c) < 0x20 and c not in "\n") or 0x7F <= ord(c) <= 0x9F
           or 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069]
    assert not bad, [hex(ord(c)) for c in bad[:10]]


def test_hostile_processes_during_a_capture(agent, work):
    procs = []
    stop = threading.Event()
    status_times = []
    status_errors = []

    def poll_status():
        while not stop.is_set():
            t0 = time.monotonic()
            r = run(BIN, "status", "--json", "-c", agent.config, timeout=30)
            status_times.append(time.monotonic() - t0)
            if r.returncode != 0:
                status_errors.append(r.stderr.decode(errors="replace"))
            time.sleep(0.3)

    try:
        # 1. its own mount namespace, a private /tmp, the perf map a symlink to
        #    a host file that names its JIT code (root: the owner check alone
        #    would let it through, only resolving inside its root stops it)
        procs.append(Hostile(["unshare", "-m", "--propagation", "private", "sh", "-c",
                              "mount -t tmpfs none /tmp && "
                              f"ln -s {work['secret']} /tmp/perf-$$.map && "
                              f"exec {work['spinner']} jit"]))
        # 2. unprivileged: its perf map a symlink to a root-owned file of its root
        rootfile = os.path.join(work["dir"], "rootowned.map")
        with open(rootfile, "w") as f:
            f.write(f"{JIT_ADDR:x} 1000 {SECRET}_rootowned\n")
        procs.append(Hostile(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "sh", "-c", f"ln -sf {rootfile} /tmp/perf-$$.map && "
                              f"exec {work['spinner']} jit"]))
        # 3. a binary whose note claims 1.5 GiB, mapped executable
        procs.append(Hostile([work["note"]]))
        # 4. a library truncated and rewritten while it is read
        procs.append(Hostile([work["spinner"], "lib", work["lib"]]))
        trunc = threading.Thread(target=truncating, args=(work["lib"], stop))
        trunc.start()
        poller = threading.Thread(target=poll_status)
        poller.start()
        out = run(BIN, "trigger", "-c", agent.config, "--capture", "profile,offcpu",
                  "--duration", "6s", timeout=180)
        assert out.returncode == 0, out.stdout + out.stderr
        iid = out.stdout.decode().split()[1].rstrip(":")
        status = json.loads(run(BIN, "status", "--json", "-c", agent.config).stdout)
    finally:
        stop.set()
        for p in procs:
            p.kill()
        for f in os.listdir("/tmp"):
            if f.startswith("perf-") and os.path.islink(os.path.join("/tmp", f)):
                os.unlink(os.path.join("/tmp", f))
    trunc.join()
    poller.join()

    # the agent stayed up and answered throughout
    assert agent.proc.poll() is None, agent.read_log()[-4000:]
    assert not status_errors, status_errors[:3]
    assert status_times and max(status_times) < 10, status_times
    # its RSS under the unit's cap
    with open(f"/proc/{agent.proc.pid}/status") as f:
        hwm = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024
    assert hwm < MEMORY_MAX, hwm
    # the helper ran as somebody else, sandboxed
    helper = status["symbolizer"]["helper"]
    assert helper["sandboxed"] is True and helper["starts"] >= 1, helper
    assert helper["uid"] != 0, helper

    path = next(i["path"] for i in agent.incidents() if i["id"] == iid)
    # no host file content anywhere in the incident
    for name in os.listdir(path):
        data = open(os.path.join(path, name), "rb").read()
        assert SECRET.encode() not in data, name
    doc = json.load(open(os.path.join(path, "incident.json")))
    assert SECRET not in json.dumps(doc)
    # the hostile names arrived, inert: in JSON as valid strings, in folded
    # stacks without their separators, in SVG as XML
    profile = next(c for c in doc["captures"] if c["kind"] == "profile")
    funcs = [f.get("func", "") for s in profile["top_stacks"] for f in s["frames"]]
    assert any(f.startswith("evil") for f in funcs), funcs[:40]
    for f in funcs + [s.get("comm", "") for s in profile["top_stacks"]]:
        assert not re.search(r"[\x00-\x1f\x7f-\x9f]", f), repr(f)
    folded = open(os.path.join(path, "profile.folded"), "rb").read()
    no_control_bytes(folded)
    for line in folded.decode().splitlines():
        assert re.fullmatch(r"[^;]+(;[^;]+)* \d+", line), line
    svgs = [n for n in os.listdir(path) if n.endswith(".svg")]
    assert svgs
    for n in svgs:
        ET.parse(os.path.join(path, n))  # raises on invalid XML or UTF-8
    # `incidents show` prints no control bytes, whatever the tenants named things
    shown = run(BIN, "incidents", "show", iid, "--dir", agent.incident_dir)
    assert shown.returncode == 0, shown.stderr
    no_control_bytes(shown.stdout)
    assert b"evil\\x1b]52" in shown.stdout or b"evil?" in shown.stdout
    listed = run(BIN, "incidents", "list", "--dir", agent.incident_dir)
    no_control_bytes(listed.stdout)
    # and the agent's own log carries nothing a terminal or journald would act on
    no_control_bytes(open(agent.log_path, "rb").read())


def test_tls_material_writable_by_others_is_refused(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    os.chmod(ca, 0o666)
    a = Agent(config_extra="  elasticsearch:\n    enabled: true\n"
                           "    urls: [\"https://127.0.0.1:1\"]\n"
                           f"    ca_file: {ca}\n")
    try:
        with pytest.raises(AssertionError):
            a.start(ready_timeout=10)
        log = a.read_log()
        assert "ca_file" in log and "writable by group or others" in log, log[-2000:]
    finally:
        a.cleanup()


def test_delayacct_put_back_after_sigkill():
    """watch.delayacct turns kernel.task_delayacct on and records what it was;
    an agent killed with SIGKILL cannot turn it off, so `autotrace cleanup`
    (the unit's ExecStopPost) and the next start put it back."""
    knob = "/proc/sys/kernel/task_delayacct"
    before = open(knob).read().strip()
    a = Agent(config_extra="watch:\n  delayacct: true\n")
    record = os.path.join(a.dir, "sysctl-kernel.task_delayacct")
    try:
        with open(knob, "w") as f:
            f.write("0")
        a.start()
        assert open(knob).read().strip() == "1"
        assert open(record).read().startswith("0\n")
        a.stop(sig=9)
        assert open(knob).read().strip() == "1"  # nobody left to turn it off
        out = run(BIN, "cleanup", "-c", a.config)
        assert out.returncode == 0, out.stderr
        assert b"1 kernel setting put back" in out.stdout, out.stdout
        assert open(knob).read().strip() == "0"
        assert not os.path.exists(record)
        # the same through a restart: the new agent puts it back before
        # turning it on again itself, and a clean stop leaves nothing
        a.notify.messages.clear()  # READY=1 of the first start is no answer
        a.start()
        assert open(knob).read().strip() == "1"
        a.stop(sig=9)
        with open(a.config) as f:
            text = f.read()
        with open(a.config, "w") as f:
            f.write(text.replace("delayacct: true", "delayacct: false"))
        a.notify.messages.clear()
        a.start()
        assert open(knob).read().strip() == "0"
        assert "put back to 0" in a.read_log()
        a.stop()
        assert not os.path.exists(record)
    finally:
        a.cleanup()
        with open(knob, "w") as f:
            f.write(before)
