# SPDX-License-Identifier: GPL-2.0-only
"""Side-by-side benchmark helpers: interleaved A/B repetitions, medians, ratios.

Benchmarks measure; they never pass or fail on wall-clock time. Every variant
runs in the same session, interleaved (A B C A B C ...), with the workload
pinned to one CPU, because on small VMs an unpinned `perf bench sched pipe`
varies by +-40% between runs.
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("AUTOTRACE_BIN") or next(
    (p for p in (os.path.join(SRC, "build", "autotrace"), os.path.join(SRC, "build-test", "autotrace"))
     if os.path.exists(p)), "autotrace")
WORK_CPU = os.environ.get("BENCH_CPU", "1")


def need_root():
    if os.geteuid() != 0:
        sys.exit("benchmarks need root (BPF, perf, taskset)")


def ensure_tracefs():
    """bpftrace and bcc find tracepoints through tracefs."""
    if not os.path.exists("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=False)


def pinned(cmd):
    return ["taskset", "-c", WORK_CPU, *cmd]


# --- workloads: each returns one number where lower is better ----------------

def sched_pipe(loops=200000):
    """Context-switch heavy: usecs per pipe round trip."""
    out = subprocess.run(pinned(["perf", "bench", "sched", "pipe", "-l", str(loops)]),
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"([\d.]+)\s+usecs/op", out).group(1))


def hackbench(groups=4, loops=200):
    """Many processes messaging over sockets: seconds."""
    out = subprocess.run(pinned(["perf", "bench", "sched", "messaging", "-g", str(groups),
                                 "-l", str(loops)]),
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Total time:\s+([\d.]+)", out).group(1))


SYSCALL_LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    return 0;
}
"""

_built = {}


def build_c(name, source, libs=()):
    if name in _built:
        return _built[name]
    d = tempfile.mkdtemp(prefix="autotrace-bench-")
    src = os.path.join(d, name + ".c")
    with open(src, "w") as f:
        f.write(source)
    exe = os.path.join(d, name)
    subprocess.run(["gcc", "-O2", "-o", exe, src, *libs], check=True)
    _built[name] = exe
    return exe


def syscall_loop(n=2000000):
    """Syscall heavy: ns per getppid()."""
    exe = build_c("bench_syscall", SYSCALL_LOOP)
    out = subprocess.run(pinned([exe, str(n)]), capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


# the runqlat one-liner; bpftrace 0.17 spells tracepoint arguments args->x
RUNQLAT_BT = ("tracepoint:sched:sched_wakeup,tracepoint:sched:sched_wakeup_new "
              "{ @qtime[args->pid] = nsecs; } "
              "tracepoint:sched:sched_switch { if (args->prev_state == 0) "
              "{ @qtime[args->prev_pid] = nsecs; } $ns = @qtime[args->next_pid]; "
              "if ($ns) { @usecs = hist((nsecs - $ns) / 1000); } delete(@qtime[args->next_pid]); }")


# --- variants: context managers that set something up around the workload --

class Variant:
    name = "off"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Off(Variant):
    name = "off"


class AgentOn(Variant):
    """The real agent with its default rules, or the given rules/config."""

    def __init__(self, name="autotrace", rules=None, config_extra="", interval="1s",
                 dry_run=False, wrap=(), agent_extra="", bin=None):
        self.name = name
        self.bin = bin or BIN  # another build of the agent: a before/after comparison
        self.wrap = list(wrap)  # command prefix: unshare, a private mount
        self.agent_extra = agent_extra  # more keys of the agent: section
        self.rules = rules
        self.config_extra = config_extra
        self.interval = interval
        self.dry_run = dry_run  # rules evaluate and log, nothing is attached
        self.proc = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="autotrace-bench-agent-")
        os.chmod(self.dir, 0o700)
        if self.rules is not None:
            rules_dir = os.path.join(self.dir, "rules.d")
            os.mkdir(rules_dir, 0o700)
            _write_private(os.path.join(rules_dir, "bench.yaml"), self.rules)
        else:
            rules_dir = os.path.join(SRC, "config", "rules.d")
        cfg = _write_private(os.path.join(self.dir, "autotrace.yaml"), (
            f"agent:\n  interval: {self.interval}\n  rules_dir: {rules_dir}\n"
            f"  control_socket: {self.dir}/control.sock\n"
            + ("  dry_run: true\n" if self.dry_run else "") + self.agent_extra +
            f"storage:\n  local:\n    dir: {self.dir}/incidents\n" + self.config_extra))
        notify = os.path.join(self.dir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify)
        sock.settimeout(30)
        self.log = open(os.path.join(self.dir, "agent.log"), "w")
        self.proc = subprocess.Popen([*self.wrap, self.bin, "run", "-c", cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, NOTIFY_SOCKET=notify))
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
        except OSError:
            self.proc.kill()
            self.proc.wait()
            self.log.close()
            with open(os.path.join(self.dir, "agent.log")) as f:
                tail = f.read()[-2000:]
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"the agent did not start:\n{tail}")
        finally:
            sock.close()
        time.sleep(1.5)  # let a couple of watcher rounds pass
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


class Background(Variant):
    """A peer tool running in the background (bpftrace, bcc, perf record)."""

    def __init__(self, name, cmd, settle=3.0):
        self.name = name
        self.cmd = cmd
        self.settle = settle

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        time.sleep(self.settle)  # compile + attach
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited early: {' '.join(self.cmd)}")
        return self

    def __exit__(self, *exc):
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return False


def build_dir():
    """The build tree next to the binary under test (for helper executables)."""
    return os.path.dirname(os.path.abspath(BIN))


def built(*rel):
    """The path of a helper executable of the build tree; exits if it is not built."""
    exe = os.path.join(build_dir(), *rel)
    if not os.path.exists(exe):
        sys.exit(f"{exe} not built (configure with tests enabled)")
    return exe


class EmptyTp(Background):
    """Empty tp_btf programs on the given tracepoints: the floor of attaching anything."""

    def __init__(self, tracepoints, name=None):
        exe = built("test", "bench", "bench_empty_tp")
        super().__init__(name or "empty tp_btf " + "+".join(tracepoints), [exe, *tracepoints],
                         settle=0.5)


def _write_private(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def interleave(variants, workload, reps=7, warmup=1):
    """Runs every variant reps times, interleaved; returns {name: [values]}."""
    results = {v.name: [] for v in variants}
    for r in range(warmup + reps):
        for v in variants:
            with v:
                value = workload()
            if r >= warmup:
                results[v.name].append(value)
    return results


def report(title, results, baseline="off", unit=""):
    """Prints medians and ratios against the baseline; returns them as a dict."""
    base = statistics.median(results[baseline])
    print(f"\n## {title}")
    print(f"| variant | median {unit} | min | max | vs {baseline} |")
    print("|---|---|---|---|---|")
    summary = {}
    for name, vals in results.items():
        med = statistics.median(vals)
        ratio = med / base
        summary[name] = {"median": med, "ratio": ratio, "values": vals}
        print(f"| {name} | {med:.3f} | {min(vals):.3f} | {max(vals):.3f} | "
              f"{(ratio - 1) * 100:+.1f}% |")
    sys.stdout.flush()
    return summary


def machine():
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s+(.*)", cpu)
    return {"kernel": os.uname().release, "cpus": os.cpu_count(),
            "model": model.group(1).strip() if model else "?"}


def save(name, data):
    path = os.environ.get("BENCH_OUT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"bench": name, "machine": machine(), **data}) + "\n")
