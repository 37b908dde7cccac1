# SPDX-License-Identifier: GPL-2.0-only
"""A real Elasticsearch for the `es` tests, and nginx in front of it for TLS and
authentication. Elasticsearch comes from test/es/setup-es.sh (Maven Central
integ-test-zip); each Elasticsearch instance runs as the unprivileged user
autotrace-es, on 127.0.0.1 only, on a free port, with a small heap, in its own
temporary directory, and is stopped by the fixture that started it."""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

SRC = os.environ.get("AUTOTRACE_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
ES_USER = "autotrace-es"
START_TIMEOUT = float(os.environ.get("AUTOTRACE_ES_START_TIMEOUT", "240"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def es_home():
    """Installs the test Elasticsearch when missing (idempotent) and returns its home."""
    out = subprocess.run([os.path.join(SRC, "test", "es", "setup-es.sh"), "home"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("test/es/setup-es.sh home failed:\n" + out.stderr)
    return out.stdout.strip().splitlines()[-1]


def java_home():
    java = shutil.which("java")
    if not java:
        raise RuntimeError("no java: setup.sh installs openjdk-17-jre-headless")
    return os.path.dirname(os.path.dirname(os.path.realpath(java)))


class Elasticsearch:
    """One single-node cluster; stop() and start() again keep its data and port."""

    def __init__(self, heap="256m"):
        self.home = es_home()
        self.user = pwd.getpwnam(ES_USER)
        self.dir = tempfile.mkdtemp(prefix="autotrace-es-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.transport_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.heap = heap
        self.proc = None
        self.conf = os.path.join(self.dir, "config")
        shutil.copytree(os.path.join(self.home, "config"), self.conf)
        for sub in ("data", "logs", "tmp"):
            os.mkdir(os.path.join(self.dir, sub))
        with open(os.path.join(self.conf, "elasticsearch.yml"), "w") as f:
            f.write(f"""cluster.name: autotrace-test
node.name: autotrace-test
path.data: {self.dir}/data
path.logs: {self.dir}/logs
network.host: 127.0.0.1
http.port: {self.port}
transport.port: {self.transport_port}
discovery.type: single-node
xpack.security.enabled: false
action.destructive_requires_name: false
cluster.routing.allocation.disk.threshold_enabled: false
""")
        for root, dirs, files in os.walk(self.dir):
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.user.pw_uid, self.user.pw_gid)
        os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)

    def start(self):
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "ES_JAVA_HOME": java_home(),
            "ES_PATH_CONF": self.conf,
            "ES_TMPDIR": os.path.join(self.dir, "tmp"),
            "ES_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap} -XX:ActiveProcessorCount=1",
            "HOME": self.dir,
            "LANG": "C.UTF-8",
        }
        self.out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.home, "bin", "elasticsearch")], cwd=self.dir, env=env,
            stdout=self.out, stderr=subprocess.STDOUT, user=self.user.pw_uid,
            group=self.user.pw_gid, extra_groups=[], start_new_session=True)
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("Elasticsearch exited with %d:\n%s" %
                                   (self.proc.returncode, self.log_tail()))
            try:
                st, _ = self.request("GET", "/_cluster/health?wait_for_status=yellow&timeout=2s",
                                     timeout=5)
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError("Elasticsearch did not start within %ds:\n%s" %
                           (START_TIMEOUT, self.log_tail()))

    def log_tail(self, n=40):
        try:
            with open(os.path.join(self.dir, "stdout.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        self.out.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- HTTP ---

    def request(self, method, path, body=None, timeout=30, ndjson=False):
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/x-ndjson" if ndjson else "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw = e.read()
            status = e.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def ok(self, method, path, body=None):
        st, doc = self.request(method, path, body)
        assert 200 <= st < 300, f"{method} {path}: HTTP {st}: {doc}"
        return doc

    def refresh(self, pattern):
        self.request("POST", f"/{pattern}/_refresh?ignore_unavailable=true&allow_no_indices=true")

    def search(self, pattern, query, size=100, refresh=True):
        if refresh:
            self.refresh(pattern)
        st, doc = self.request("POST", f"/{pattern}/_search?ignore_unavailable=true"
                               "&allow_no_indices=true",
                               {"query": query, "size": size, "track_total_hits": True})
        assert st == 200, doc
        return doc["hits"]

    def ids(self, pattern):
        """incident.id -> number of documents carrying it."""
        self.refresh(pattern)
        st, doc = self.request("POST", f"/{pattern}/_search?ignore_unavailable=true"
                               "&allow_no_indices=true",
                               {"size": 0, "aggs": {"ids": {"terms": {
                                   "field": "incident.id", "size": 10000}}}})
        if st != 200:
            return {}
        return {b["key"]: b["doc_count"]
                for b in doc.get("aggregations", {}).get("ids", {}).get("buckets", [])}

    def wait_ids(self, pattern, want, timeout):
        deadline = time.time() + timeout
        got = {}
        while time.time() < deadline:
            got = self.ids(pattern)
            if set(want) <= set(got):
                return got
            time.sleep(1)
        return got


def wait_for(fn, timeout, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    return last


# --- TLS and authentication in front of Elasticsearch ---

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate
    signed by the same CA, and an unrelated CA (untrusted)."""
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN=autotrace test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.pem", cwd=d)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o600)
    return {k: os.path.join(d, v) for k, v in {
        "ca": "ca.pem", "other_ca": "other-ca.pem", "server_cert": "server.pem",
        "server_key": "server.key", "client_cert": "client.pem",
        "client_key": "client.key"}.items()}


def htpasswd_line(user, password):
    out = subprocess.run(["openssl", "passwd", "-apr1", password], capture_output=True,
                         text=True, check=True).stdout.strip()
    return f"{user}:{out}\n"


class Nginx:
    """nginx terminating TLS in front of Elasticsearch, asking for basic auth, an
    API key (checked as a fixed Authorization header) or a client certificate."""

    def __init__(self, es_url, pki, auth="basic", user="autotrace", password="s3cret",
                 api_key=None):
        self.dir = tempfile.mkdtemp(prefix="autotrace-nginx-")
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        with open(os.path.join(self.dir, "htpasswd"), "w") as f:
            f.write(htpasswd_line(user, password))
        os.chmod(os.path.join(self.dir, "htpasswd"), 0o644)
        access = ""
        client = ""
        if auth == "basic":
            access = (f'auth_basic "autotrace-test";\n'
                      f'      auth_basic_user_file {self.dir}/htpasswd;')
        elif auth == "api_key":
            expect = "ApiKey " + api_key
            access = f'if ($http_authorization != "{expect}") {{ return 401; }}'
        elif auth == "client_cert":
            client = (f"ssl_client_certificate {pki['ca']};\n"
                      f"    ssl_verify_client on;")
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.mkdir(os.path.join(self.dir, d))
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log info;
events {{ worker_connections 64; }}
http {{
  log_format conn '$connection $connection_requests $remote_user "$request" $status '
                  '$http_content_encoding';
  access_log {self.dir}/access.log conn;
  client_body_temp_path {self.dir}/client_body;
  proxy_temp_path {self.dir}/proxy;
  fastcgi_temp_path {self.dir}/fastcgi;
  uwsgi_temp_path {self.dir}/uwsgi;
  scgi_temp_path {self.dir}/scgi;
  client_max_body_size 100m;
  server {{
    listen 127.0.0.1:{self.port} ssl;
    ssl_certificate {pki['server_cert']};
    ssl_certificate_key {pki['server_key']};
    {client}
    location / {{
      {access}
      proxy_pass {es_url};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
    }}
  }}
}}
""")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-c", self.conf, "-p", self.dir, "-e",
                                      os.path.join(self.dir, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: " + self.proc.stderr.read().decode())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("nginx did not listen")

    def access_log(self):
        try:
            with open(os.path.join(self.dir, "access.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the agent, shipping to Elasticsearch ---

# A dry-run rule that fires on every sample: incidents without attaching anything.
ALWAYS = """rules:
  - name: {name}
    metric: cpu.idle_pct
    above: -1
    dry_run: true
    cooldown: 1s
"""


def es_agent(urls, prefix, rules_yaml=None, es_extra="", interval="250ms", hostname=None,
             env=None, timeout="10s"):
    """An agentlib.Agent whose incidents go to Elasticsearch under `prefix`, with
    its own spool, and host.name = hostname (default h-PREFIX)."""
    from agentlib import Agent, write_private
    if rules_yaml is None:
        rules_yaml = ALWAYS.format(name="r-" + prefix)
    a = Agent(rules_yaml=rules_yaml, interval=interval, env=env)
    a.spool_dir = os.path.join(a.dir, "spool")
    a.hostname = hostname or "h-" + prefix
    a.prefix = prefix
    url_list = ", ".join(json.dumps(u) for u in urls)
    a.config_base = (
        f"agent:\n  interval: {interval}\n  rules_dir: {a.rules_dir}\n"
        f"  control_socket: {a.socket}\n  hostname: {a.hostname}\n"
        f"storage:\n  local:\n    dir: {a.incident_dir}\n"
        f"  elasticsearch:\n    enabled: true\n    urls: [{url_list}]\n"
        f"    index_prefix: {prefix}\n    spool_dir: {a.spool_dir}\n"
        f"    backoff_initial: 200ms\n    backoff_max: 2s\n    connect_timeout: 2s\n"
        f"    timeout: {timeout}\n")
    a.config_text = a.config_base + es_extra
    write_private(a.config, a.config_text)
    return a


def rewrite_config(agent, es_extra):
    """Same agent, other storage.elasticsearch extras (takes effect on SIGHUP)."""
    from agentlib import write_private
    agent.config_text = agent.config_base + es_extra
    write_private(agent.config, agent.config_text)


def status(agent):
    from agentlib import control_call
    reply = control_call(agent.socket, "status")
    assert reply.get("ok"), reply
    return reply["result"]


def es_status(agent):
    return status(agent)["elasticsearch"]


def local_ids(agent):
    return {i["id"] for i in agent.incidents()}


def spooled_ids(agent):
    try:
        return {f[:-5] for f in os.listdir(agent.spool_dir) if f.endswith(".json")}
    except FileNotFoundError:
        return set()


def parked_ids(agent):
    d = os.path.join(agent.spool_dir, "parked")
    try:
        return {f[:-5] for f in os.listdir(d) if f.endswith(".json")}
    except FileNotFoundError:
        return set()


def restart(agent):
    """Starts a stopped agent again with the same directories. The notify socket
    still holds the first run's messages: drain them, so READY=1 is this run's."""
    s = agent.notify.sock
    s.setblocking(False)
    try:
        while True:
            s.recv(4096)
    except BlockingIOError:
        pass
    s.setblocking(True)
    agent.notify.messages.clear()
    agent.start()
    return agent
