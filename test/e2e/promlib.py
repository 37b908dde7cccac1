# SPDX-License-Identifier: GPL-2.0-only
"""A real Prometheus server (Debian's `prometheus`) for the tests, on loopback,
as the unprivileged `prometheus` user when the suite runs as root."""
import ctypes
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def free_port():
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bcrypt_hash(password, cost=4):
    """A bcrypt hash from the system's libcrypt (libxcrypt), as htpasswd -B makes."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$2y$", cost, None, 0)
    return lib.crypt(password.encode(), salt).decode()


def make_cert(dirname, name="server"):
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert, key)."""
    cert = os.path.join(dirname, name + ".crt")
    key = os.path.join(dirname, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert, key


class Prometheus:
    """One Prometheus server with its own storage, scraping what jobs say."""

    def __init__(self, jobs, interval="1s"):
        self.dir = tempfile.mkdtemp(prefix="autotrace-prom-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("prometheus")
            except KeyError:
                self.user = pwd.getpwnam("nobody")
        scrape = []
        for job in jobs:
            j = {"job_name": job["name"], "scrape_interval": interval,
                 "scrape_timeout": job.get("timeout", "900ms"),
                 "static_configs": [{"targets": [job["target"]]}]}
            for k in ("scheme", "tls_config", "basic_auth", "metrics_path"):
                if k in job:
                    j[k] = job[k]
            scrape.append(j)
        # JSON is YAML: no PyYAML needed
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            json.dump({"global": {"scrape_interval": interval}, "scrape_configs": scrape}, f)
        self.proc = None
        self.log_path = os.path.join(self.dir, "prometheus.log")

    def file(self, name, text, mode=0o600):
        """A file the server can read (CA bundles, password files)."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        if self.user:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)
        return path

    def start(self, timeout=60):
        data = os.path.join(self.dir, "data")
        os.mkdir(data)
        cmd = [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={data}",
               f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
               "--storage.tsdb.retention.time=1h"]
        if self.user:
            for root, dirs, files in os.walk(self.dir):
                for n in dirs + files:
                    os.chown(os.path.join(root, n), self.user.pw_uid, self.user.pw_gid)
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
            cmd = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                   "--clear-groups", *cmd]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited:\n" + self.read_log())
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus never became ready:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def api(self, path, **params):
        url = self.url + "/api/v1/" + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr):
        """Instant vector results as [(labels, value)]."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def wait(self, expr, pred, timeout=30):
        """Polls a query until pred(results) holds; returns the results."""
        deadline = time.time() + timeout
        res = []
        while time.time() < deadline:
            res = self.query(expr)
            if pred(res):
                return res
            time.sleep(0.5)
        raise AssertionError(f"{expr}: never satisfied; last {res}\n" + self.read_log())

    def targets(self):
        return {t["labels"]["job"]: t for t in self.api("targets")["activeTargets"]}

    def wait_target(self, job, health="up", timeout=30):
        deadline = time.time() + timeout
        t = None
        while time.time() < deadline:
            t = self.targets().get(job)
            if t and t["health"] == health:
                return t
            time.sleep(0.3)
        raise AssertionError(f"target {job} never {health}: {t}\n" + self.read_log())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class CgroupSeriesPoller:
    """Polls the agent's Prometheus endpoint in a thread: when each cgroup whose
    name starts with `tag` first and last showed (any autotrace_cgroup_* series
    labelled with it), and how wide the guard had the cgroup passes."""

    # any per-cgroup series: which ones a cgroup has depends on its controllers
    LABEL = re.compile(r'^autotrace_cgroup_\w+\{[^}]*cgroup="([^"]*)"', re.M)
    EVERY = re.compile(r'^autotrace_watcher_sample_every\{watcher="cgroups"\} (\d+)$', re.M)

    def __init__(self, url, tag, period=0.25):
        self.url, self.tag, self.period = url, tag, period
        self.every = []  # (when, rounds between the cgroup passes)
        self.first, self.last, self.polls, self.errors = {}, {}, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    body = r.read().decode("utf-8", "replace")
                now = time.monotonic()
                self.polls += 1
                m = self.EVERY.search(body)
                self.every.append((now, int(m.group(1)) if m else 1))
                for cg in self.LABEL.findall(body):
                    name = cg.rsplit("/", 1)[-1]
                    if name.startswith(self.tag):
                        self.first.setdefault(name, now)
                        self.last[name] = now
            except OSError as e:
                self.errors.append(str(e))
            self.stop.wait(self.period)

    def close(self):
        self.stop.set()
        self.thread.join()

    def every_max(self, t0, t1):
        """The widest the cgroup passes were between t0 and t1 (the guard widens them)."""
        return max([e for t, e in self.every if t0 <= t <= t1 + 1] or [1])
