# SPDX-License-Identifier: GPL-2.0-only
"""Helpers for driving the real autotrace binary in tests."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BIN = os.environ.get("AUTOTRACE_BIN", "autotrace")
SRC = os.environ.get("AUTOTRACE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def write_private(path, text):
    """Root-owned, mode 0600: the agent refuses group/world-writable files."""
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def agent_prog_ids(log_text):
    """BPF program ids the agent reported loading ("name#id")."""
    import re
    return {int(m) for m in re.findall(r"BPF programs loaded:.*", log_text)
            for m in re.findall(r"#(\d+)", m)}


def prog_exists(prog_id):
    return subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)],
                          capture_output=True).returncode == 0


# Threads reading /dev/zero: almost all of their time is kernel time.
# Arguments: [THREADS] SECONDS; THREADS 2 by default, 0 for four per CPU (to
# hold the CPUs against whatever else runs).
SYSLOOP = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static int seconds;
static void *spin(void *arg) {
    static __thread char buf[65536];
    int fd = open("/dev/zero", O_RDONLY);
    time_t end = time(NULL) + seconds;
    while (time(NULL) < end)
        for (int i = 0; i < 100; i++)
            if (read(fd, buf, sizeof(buf)) < 0) abort();
    return arg;
}
int main(int argc, char **argv) {
    pthread_t t[256];
    long n = argc > 2 ? atol(argv[1]) : 2;
    seconds = argc > 1 ? atoi(argv[argc - 1]) : 8;
    if (n <= 0) n = 4 * sysconf(_SC_NPROCESSORS_ONLN);
    if (n > 256) n = 256;
    for (long i = 0; i < n; i++) pthread_create(&t[i], NULL, spin, NULL);
    for (long i = 0; i < n; i++) pthread_join(t[i], NULL);
    return 0;
}
"""


def compile_c(source, name, workdir, flags=("-O1", "-pthread")):
    """Builds a small workload program; name becomes its comm."""
    src = os.path.join(workdir, name + ".c")
    with open(src, "w") as f:
        f.write(source)
    exe = os.path.join(workdir, name)
    subprocess.run(["gcc", *flags, "-o", exe, src], check=True)
    return exe


class NotifySocket:
    """Plays systemd: a datagram socket the agent reports READY=1 etc. to."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []

    def wait_for(self, text, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for m in self.messages:
                if text in m:
                    return m
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.messages.extend(data.split("\n"))
        for m in self.messages:
            if text in m:
                return m
        return None

    def close(self):
        self.sock.close()


class Agent:
    """One `autotrace run` with its own config, rules dir and incident store."""

    def __init__(self, rules_yaml=None, config_extra="", interval="1s", env=None):
        self.dir = tempfile.mkdtemp(prefix="autotrace-e2e-")
        os.chmod(self.dir, 0o700)
        self.rules_dir = os.path.join(self.dir, "rules.d")
        os.mkdir(self.rules_dir, 0o700)
        self.incident_dir = os.path.join(self.dir, "incidents")
        self.socket = os.path.join(self.dir, "control.sock")
        if rules_yaml is not None:
            write_private(os.path.join(self.rules_dir, "test.yaml"), rules_yaml)
        self.config = write_private(os.path.join(self.dir, "autotrace.yaml"), (
            f"agent:\n  interval: {interval}\n  rules_dir: {self.rules_dir}\n"
            f"  control_socket: {self.dir}/control.sock\n"
            f"storage:\n  local:\n    dir: {self.incident_dir}\n" + config_extra))
        self.log_path = os.path.join(self.dir, "agent.log")
        self.notify = NotifySocket(os.path.join(self.dir, "notify.sock"))
        self.env = dict(os.environ, NOTIFY_SOCKET=self.notify.path, **(env or {}))
        self.proc = None
        self.log = None

    def start(self, ready_timeout=30, args=None):
        self.log = open(self.log_path, "w")
        cmd = [BIN, "run", "-c", self.config] if args is None else [BIN, *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        ready = self.notify.wait_for("READY=1", ready_timeout)
        if not ready:
            self.stop()
            raise AssertionError("agent never sent READY=1; log:\n" + self.read_log())
        return self

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Returns (exit code, seconds it took to exit)."""
        if not self.proc:
            return None, 0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        took = time.monotonic() - t0
        self.proc = None
        self.log.close()
        return rc, took

    def incidents(self):
        out = subprocess.run([BIN, "incidents", "list", "--json", "--dir", self.incident_dir],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    def incident_doc(self, incident_id):
        out = subprocess.run([BIN, "incidents", "show", incident_id, "--json", "--dir",
                              self.incident_dir], capture_output=True, text=True,
                             check=True).stdout
        return json.loads(out)

    def wait_incidents(self, n, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.incidents()
            if len(got) >= n:
                return got
            time.sleep(0.2)
        return self.incidents()

    def cleanup(self):
        if self.proc:
            self.stop()
        self.notify.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ControlClient:
    """A raw connection to the agent's control socket (docs/control-protocol.md)."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        deadline = time.time() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                # the listen backlog is full while the agent accepts a burst
                if time.time() > deadline:
                    raise
                time.sleep(0.01)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def recv(self):
        """The next reply line as an object; None when the agent closed the connection."""
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, command, args=None, **extra):
        req = {"command": command, **extra}
        if args is not None:
            req["args"] = args
        self.send(req)
        return self.recv()

    def closed_by_peer(self):
        """True once the agent has closed its end (EOF after any pending replies)."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def control_call(path, command, args=None, timeout=10):
    c = ControlClient(path, timeout)
    try:
        return c.call(command, args)
    finally:
        c.close()
