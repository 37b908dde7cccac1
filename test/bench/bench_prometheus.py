#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""What the Prometheus endpoint costs the agent on a dense node (issue 18).

1000 container cgroups (docker-<id>.scope, one sleeping process each, in the
cpu, cpuacct and memory hierarchies on v1/hybrid hosts, or the v2 tree) are
watched by the agent with its default rules (dry run), and the endpoint is
scraped as Prometheus does (OpenMetrics, keep-alive). For each variant:

- per scrape: the endpoint's own CPU (autotrace_metrics_http_cpu_seconds_total,
  the loop thread's CPU time around every endpoint callback: rendering, TLS,
  sending), the exposition's size and series, wall time;
- the same cost seen from outside: the agent process' CPU time (its exact
  CPU-time clock) over windows with scrapes every --burst-interval seconds
  against windows without, interleaved, divided by the scrapes (noisier: the
  agent's own 1,000-cgroup rounds cost ~50 times more than a scrape);
- both scaled to a 15 s scrape interval, as % of one core (target <= 0.05%);
- the agent's RSS before and after the scrapes (the endpoint's memory).

Variants: plain HTTP on loopback, and TLS with basic authentication.

    sudo AUTOTRACE_BIN=build/autotrace test/bench/bench_prometheus.py \\
        [--cgroups 1000] [--scrapes 40] [--windows 6] [--window 20]

It prints Markdown tables (docs/performance.md keeps the results) and never
fails on the numbers. The cgroups and processes it creates are removed on exit.
"""
import argparse
import base64
import ctypes
import http.client
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import BIN, AgentOn, machine, need_root, save

CG = "/sys/fs/cgroup"
V1_CTRLS = ("cpu", "cpuacct", "memory")
PARENT = "autotrace-bench-prom.slice"
ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
          "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def layout():
    out = subprocess.run(["stat", "-f", "-c", "%T", CG], capture_output=True, text=True).stdout
    return "v2" if out.strip() == "cgroup2fs" else "v1"


def cgroup_dirs(name):
    if layout() == "v2":
        return [os.path.join(CG, PARENT, name)]
    return [os.path.join(CG, c, PARENT, name) for c in V1_CTRLS]


class Population:
    """n container cgroups with one sleeping process each."""

    def __init__(self, n):
        self.n = n
        self.procs = []
        self.dirs = []

    def __enter__(self):
        if layout() == "v2":
            with open(os.path.join(CG, "cgroup.subtree_control")) as f:
                have = f.read().split()
            parent = os.path.join(CG, PARENT)
            os.makedirs(parent, exist_ok=True)
            with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
                f.write(" ".join("+" + c for c in ("cpu", "memory") if c in have))
        for i in range(self.n):
            cid = f"{i:08x}" + "b" * 56
            dirs = cgroup_dirs(f"docker-{cid}.scope")
            p = subprocess.Popen(["sleep", "100000"])
            self.procs.append(p)
            for d in dirs:
                os.makedirs(d, exist_ok=True)
                self.dirs.append(d)
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(p.pid))
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        for d in reversed(self.dirs):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.05)
        parents = [os.path.join(CG, PARENT)] if layout() == "v2" else \
            [os.path.join(CG, c, PARENT) for c in V1_CTRLS]
        for d in parents:
            try:
                os.rmdir(d)
            except OSError:
                pass
        return False


def bcrypt_hash(password):
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib.crypt(password.encode(), lib.crypt_gensalt(b"$2y$", 10, None, 0)).decode()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_cpu_s(pid):
    """The process' exact CPU time (its CPU-time clock, as clock_getcpuclockid gives it;
    /proc/PID/stat's ticks are too coarse for a few ms)."""
    return time.clock_gettime(((~pid) << 3) | 2)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def status(agent):
    out = subprocess.run([BIN, "status", "--json",
                          "-s", os.path.join(agent.dir, "control.sock")],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


class Scraper:
    """One kept-alive connection, as Prometheus holds it."""

    def __init__(self, port, tls_ca=None, auth=None):
        self.port, self.ca, self.auth = port, tls_ca, auth
        self.conn = None

    def scrape(self):
        if self.conn is None:
            if self.ca:
                ctx = ssl.create_default_context(cafile=self.ca)
                self.conn = http.client.HTTPSConnection("localhost", self.port, context=ctx,
                                                        timeout=30)
            else:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Accept": ACCEPT}
        if self.auth:
            headers["Authorization"] = "Basic " + base64.b64encode(self.auth.encode()).decode()
        try:
            self.conn.request("GET", "/metrics", headers=headers)
            r = self.conn.getresponse()
            body = r.read()
        except (http.client.HTTPException, OSError):
            # the endpoint closes connections idle past metrics.timeout: reconnect
            self.conn.close()
            self.conn = None
            return self.scrape()
        assert r.status == 200, (r.status, body[:200])
        return body

    def close(self):
        if self.conn:
            self.conn.close()


def endpoint_cpu(agent):
    return status(agent)["prometheus"]["cpu_seconds"]


def run_variant(name, args, tls):
    port = free_port()
    extra = f"metrics:\n  listen: 127.0.0.1:{port}\n"
    workdir = tempfile.mkdtemp(prefix="autotrace-bench-prom-")
    ca = auth = None
    if tls:
        cert, key = os.path.join(workdir, "c.crt"), os.path.join(workdir, "c.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost"], check=True, capture_output=True)
        os.chmod(key, 0o600)
        web = os.path.join(workdir, "web.yml")
        with open(web, "w") as f:
            f.write(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
                    f"basic_auth_users:\n  prom: {bcrypt_hash('pw')}\n")
        os.chmod(web, 0o600)
        extra += f"  web_config: {web}\n"
        ca, auth = cert, "prom:pw"
    extra += f"watch:\n  max_cgroups: {args.cgroups + 64}\n"
    try:
        with AgentOn(name, config_extra=extra, dry_run=True) as agent:
            pid = agent.proc.pid
            # the cgroup scan (5 s) must have found every container
            deadline = time.time() + 60
            while time.time() < deadline:
                cg = next(w for w in status(agent)["watchers"] if w["name"] == "cgroups")
                if cg.get("cgroups", 0) >= args.cgroups:
                    break
                time.sleep(1)
            time.sleep(3)
            watched = cg.get("cgroups", 0)
            s = Scraper(port, ca, auth)
            s.scrape()  # first: connection, TLS handshake, password check; not counted
            rss0 = rss_kb(pid)
            cpu0, wall0 = endpoint_cpu(agent), time.monotonic()
            sizes = []
            for _ in range(args.scrapes):
                sizes.append(len(s.scrape()))
            cpu1, wall1 = endpoint_cpu(agent), time.monotonic()
            rss1 = rss_kb(pid)
            st = status(agent)["prometheus"]
            per_scrape_ms = (cpu1 - cpu0) / args.scrapes * 1000

            # the same from outside: the whole process, windows with and without scrapes
            on, off = [], []
            for w in range(args.windows):
                # alternate which goes first, so a drift in the background cancels
                for scraping in ((True, False) if w % 2 == 0 else (False, True)):
                    c0, t0, n = agent_cpu_s(pid), time.monotonic(), 0
                    while time.monotonic() - t0 < args.window:
                        if scraping:
                            s.scrape()
                            n += 1
                        time.sleep(args.burst_interval)
                    c = (agent_cpu_s(pid) - c0) / (time.monotonic() - t0)
                    (on if scraping else off).append((c, n / (time.monotonic() - t0)))
            s.close()
            off_cpu = statistics.median(c for c, _ in off)
            on_cpu = statistics.median(c for c, _ in on)
            rate = statistics.median(r for _, r in on)
            outside_ms = (on_cpu - off_cpu) / rate * 1000 if rate else 0
            return {
                "variant": name, "cgroups_watched": watched,
                "series": st["last_series"], "body_bytes": statistics.median(sizes),
                "scrape_cpu_ms": per_scrape_ms,
                "scrape_wall_ms": (wall1 - wall0) / args.scrapes * 1000,
                "core_pct_at_15s": per_scrape_ms / 15000 * 100,
                "outside_cpu_ms": outside_ms,
                "outside_core_pct_at_15s": outside_ms / 15000 * 100,
                "agent_core_pct_idle": off_cpu * 100,
                "rss_before_kb": rss0, "rss_after_kb": rss1,
                "windows_on": on, "windows_off": off,
                "skipped": st["last_series_skipped"],
            }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cgroups", type=int, default=1000)
    ap.add_argument("--scrapes", type=int, default=40)
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--burst-interval", type=float, default=1.0,
                    help="seconds between scrapes in the outside measurement")
    ap.add_argument("--variants", default="plain,tls")
    args = ap.parse_args()
    need_root()
    results = []
    with Population(args.cgroups):
        for v in args.variants.split(","):
            results.append(run_variant({"plain": "HTTP, loopback",
                                        "tls": "TLS + basic auth"}[v], args, v == "tls"))
    print(f"\n## Prometheus endpoint, {args.cgroups} container cgroups "
          f"({layout()}, {os.cpu_count()} CPUs)\n")
    print("| variant | cgroups watched | series | body | endpoint CPU per scrape | "
          "% of a core at 15 s | process CPU per scrape (A/B) | % of a core at 15 s (A/B) | "
          "agent idle | RSS before, after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['cgroups_watched']} | {r['series']} | "
              f"{r['body_bytes'] / 1e6:.2f} MB | {r['scrape_cpu_ms']:.2f} ms | "
              f"{r['core_pct_at_15s']:.4f}% | {r['outside_cpu_ms']:.2f} ms | "
              f"{r['outside_core_pct_at_15s']:.4f}% | {r['agent_core_pct_idle']:.2f}% | "
              f"{r['rss_before_kb'] / 1024:.0f}, {r['rss_after_kb'] / 1024:.0f} MiB |")
    print("\nA/B windows (agent CPU, % of a core; scrapes a second): " + "; ".join(
        f"{r['variant']}: off " + ", ".join(f"{c * 100:.2f}" for c, _ in r["windows_off"]) +
        " / on " + ", ".join(f"{c * 100:.2f}" for c, _ in r["windows_on"]) for r in results))
    save("prometheus", {"cgroups": args.cgroups, "results": results})


if __name__ == "__main__":
    main()
