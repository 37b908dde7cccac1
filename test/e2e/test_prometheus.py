# SPDX-License-Identifier: GPL-2.0-only
"""The metrics endpoint against a real Prometheus server (issue 18): it scrapes the
agent in both formats, PromQL sees the watch layer and an incident counter move after
a real anomaly, promtool accepts the output, TLS and basic authentication work the way
exporters' web configs do, and the shipped alerts and Grafana dashboard are checked."""
import glob
import json
import os
import re
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import warnings

import pytest

from agentlib import BIN, SRC, SYSLOOP, Agent, compile_c, write_private
from promlib import PROMTOOL, Prometheus, bcrypt_hash, free_port, make_cert
from test_watch import TempCgroup

# The anomaly happens in a cgroup of the test's own: its baseline is zero whatever
# else this (shared) machine runs, so the rule fires on the test's load alone.
RULES = """
rules:
  - name: e2e-cgroup-sys
    description: test rule
    scope: cgroup
    match: { cgroup: "/autotrace-e2e-prom*" }
    metric: cgroup.cpu.sys_pct
    above: 5
    for: 2s
    capture:
      - { kind: profile, duration: 2s, frequency: 49 }
    cooldown: 1s
"""

OPENMETRICS = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
               "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def http(url, headers=None, method="GET", context=None):
    """(status, headers, body) of one request; errors are answers too."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def catalogue():
    out = subprocess.run([BIN, "metrics", "--list", "--prometheus", "--json"],
                         capture_output=True, text=True, check=True).stdout
    return {m["name"]: m for m in json.loads(out)}


@pytest.fixture(scope="module")
def scraped():
    """One agent with the endpoint on loopback, and a Prometheus scraping it every second."""
    port = free_port()
    agent = Agent(rules_yaml=RULES,
                  config_extra=f"metrics:\n  listen: 127.0.0.1:{port}\n"
                  "watch:\n  cgroup_scan: 1s\n")
    prom = Prometheus([{"name": "autotrace", "target": f"127.0.0.1:{port}"}])
    try:
        agent.start()
        prom.start()
        yield agent, prom, f"http://127.0.0.1:{port}"
    finally:
        prom.cleanup()
        agent.cleanup()


def test_prometheus_scrapes_watch_layer_and_incident_counter(scraped):
    agent, prom, url = scraped
    t = prom.wait_target("autotrace")
    assert t["lastError"] == "", t

    # the host's CPU sys series: one, unlabelled but for the target's own labels
    (host,) = prom.wait("autotrace_cpu_sys_ratio{cpu=\"\"}", lambda r: len(r) == 1)
    assert set(host[0]) == {"__name__", "instance", "job"}, host
    assert 0 <= host[1] <= 1
    per_cpu = prom.query("autotrace_cpu_sys_ratio{cpu!=\"\"}")
    assert len(per_cpu) == os.cpu_count(), per_cpu
    (before,) = prom.wait("autotrace_incidents_written_total", lambda r: len(r) == 1)
    assert before[1] == 0
    (fires0,) = prom.query('autotrace_rule_fires_total{rule="e2e-cgroup-sys"}')
    assert fires0[1] == 0

    # a real anomaly: kernel time in a cgroup trips the rule, an incident is written
    exe = compile_c(SYSLOOP, "at_promsys", agent.dir)
    cg = TempCgroup("prom")
    try:
        p = subprocess.Popen([exe, "8"])
        cg.add(p.pid)
        p.wait()
        assert agent.wait_incidents(1, timeout=15), agent.read_log()
        prom.wait("autotrace_incidents_written_total", lambda r: r and r[0][1] >= 1)
        assert prom.wait("increase(autotrace_incidents_written_total[1m]) > 0", lambda r: r)
        prom.wait('autotrace_rule_fires_total{rule="e2e-cgroup-sys"}',
                  lambda r: r and r[0][1] >= 1)
        # the cgroup's own series, its path as a label, and its kernel time
        (peak,) = prom.query(f'max_over_time(autotrace_cgroup_cpu_sys_ratio'
                             f'{{cgroup="{cg.rel}"}}[1m])')
        assert peak[1] > 0.05, peak
    finally:
        cg.remove()
    (runs,) = prom.query('autotrace_capture_runs_total{kind="profile"}')
    assert runs[1] >= 1

    # Prometheus negotiated OpenMetrics and kept HELP, TYPE and UNIT
    meta = prom.api("metadata", metric="autotrace_cpu_sys_ratio")["autotrace_cpu_sys_ratio"][0]
    assert meta["type"] == "gauge" and meta["unit"] == "ratio", meta
    assert "cpu.sys_pct" in meta["help"]
    meta = prom.api("metadata", metric="autotrace_incidents_written")
    assert meta["autotrace_incidents_written"][0]["type"] == "counter", meta
    # the agent's own health is there too, and every scrape was clean
    for expr in ('autotrace_watcher_state{watcher="cpustat",state="ok"}',
                 "autotrace_agent_cpu_seconds_total", "autotrace_metrics_http_cpu_seconds_total",
                 'autotrace_rule_state{rule="e2e-cgroup-sys"}', "autotrace_capture_budget_left_seconds",
                 "autotrace_es_state", "autotrace_metric_series_dropped_total"):
        assert prom.query(expr), expr
    assert prom.query("up")[0][1] == 1
    assert prom.targets()["autotrace"]["lastError"] == ""
    status = json.loads(subprocess.run([BIN, "status", "--json", "-s", agent.socket],
                                       capture_output=True, text=True, check=True).stdout)
    p = status["prometheus"]
    assert p["enabled"] and p["scrapes"]["openmetrics"] >= 5, p
    assert p["last_series_skipped"] == 0 and p["tls"] is False and p["basic_auth"] is False


def test_formats_pass_promtool_and_parsers(scraped):
    agent, prom, url = scraped
    status, headers, text = http(url + "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["Content-Length"]) == len(text)
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == b"" and r.stderr == b"", r.stdout + r.stderr  # no lint findings either

    status, headers, om = http(url + "/metrics", {"Accept": OPENMETRICS})
    assert status == 200
    assert headers["Content-Type"] == \
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert om.endswith(b"# EOF\n")
    assert b"# UNIT autotrace_cpu_sys_ratio ratio\n" in om

    # the reference parsers of both formats (prometheus_client, strict about OpenMetrics)
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
    from prometheus_client.parser import text_string_to_metric_families as text_parse
    om_fams = {f.name: f for f in om_parse(om.decode())}
    text_fams = {f.name: f for f in text_parse(text.decode())}
    assert om_fams["autotrace_incidents_written"].type == "counter"
    assert om_fams["autotrace_build"].type == "info"
    assert om_fams["autotrace_cpu_sys_ratio"].unit == "ratio"
    assert "autotrace_cpu_sys_ratio" in text_fams

    # every name shown is in the catalogue the docs and the CLI come from
    cat = catalogue()
    names = set(re.findall(rb"^# TYPE (\S+)", text, re.M))
    assert {n.decode() for n in names} <= set(cat), {n.decode() for n in names} - set(cat)

    # HEAD: the length without the body; other methods and paths
    status, headers, body = http(url + "/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000
    assert http(url + "/nope")[0] == 404
    status, headers, _ = http(url + "/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert http(url + "/")[0] == 200


def test_dashboard_and_alerts(scraped):
    agent, prom, url = scraped
    cat = catalogue()
    # the alerts: valid rules, their unit tests pass, and docs/prometheus.md shows them
    alerts = os.path.join(SRC, "docs", "prometheus", "alerts.yml")
    r = subprocess.run([PROMTOOL, "check", "rules", alerts], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([PROMTOOL, "test", "rules", "alerts-test.yml"], capture_output=True,
                       text=True, cwd=os.path.dirname(alerts))
    assert r.returncode == 0, r.stdout + r.stderr
    with open(alerts) as f:
        alerts_text = f.read()
    with open(os.path.join(SRC, "docs", "prometheus.md")) as f:
        doc = f.read()
    body = alerts_text.split("\n", 1)[1]  # the file's SPDX line is not in the page
    assert body in doc, "docs/prometheus.md must show docs/prometheus/alerts.yml verbatim"
    # every metric an alert uses exists, and every default rule has its alert
    for name in set(re.findall(r"\bautotrace_[a-z0-9_]+", alerts_text)):
        assert name in cat, name
    mirrored = set(re.findall(r"\brule: ([a-z0-9-]+)", alerts_text))
    for path in glob.glob(os.path.join(SRC, "config", "rules.d", "*.yaml")):
        with open(path) as f:
            for rule in re.findall(r"^  - name: ([a-z0-9-]+)", f.read(), re.M):
                assert rule in mirrored, f"default rule {rule} has no alert in alerts.yml"

    # the dashboard: well-formed, every query parses, uses real names, and runs here
    with open(os.path.join(SRC, "docs", "grafana", "autotrace.json")) as f:
        dash = json.load(f)
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert "datasource" in variables and variables["datasource"]["type"] == "datasource"
    ids, rows, exprs = set(), 0, []
    for p in dash["panels"]:
        assert p["id"] not in ids
        ids.add(p["id"])
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh") and 0 <= g["x"] and g["x"] + g["w"] <= 24
        assert p["type"] in ("row", "timeseries", "stat", "table", "state-timeline", "text",
                             "bargauge", "gauge")
        if p["type"] == "row":
            rows += 1
            continue
        assert p["title"]
        if p["type"] == "text":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            exprs.append((p["title"], t["expr"]))
            assert t["refId"]
    assert rows >= 3  # the watch layer, incidents, the agent's own cost
    titles = " ".join(p.get("title", "") for p in dash["panels"]).lower()
    for want in ("incidents", "cpu", "agent"):
        assert want in titles
    for v in variables.values():
        if v["type"] == "query":
            exprs.append(("variable " + v["name"], re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1",
                                                          v["query"]["query"] if isinstance(
                                                              v["query"], dict) else v["query"])))
    for a in dash["annotations"]["list"]:
        if "expr" in a:
            exprs.append(("annotation " + a["name"], a["expr"]))
    answered = set()
    for title, expr in exprs:
        q = (expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
             .replace("$__range", "1h"))
        q = re.sub(r"\$\{?\w+\}?", ".*", q)
        for name in set(re.findall(r"\bautotrace_[a-z0-9_]+", q)):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert name in cat or base in cat, (title, name)
        r = subprocess.run([PROMTOOL, "query", "instant", prom.url, q], capture_output=True,
                           text=True)
        assert r.returncode == 0, (title, q, r.stderr)
        if r.stdout.strip():
            answered.add(title)
    # the core panels have data from this very agent
    for want in ("CPU (host)", "Incidents written", "Agent CPU"):
        assert want in answered, (want, sorted(answered))


def test_tls_and_basic_auth(tmp_path):
    port = free_port()
    agent = Agent(config_extra="")
    prom = None
    try:
        cert, key = make_cert(agent.dir)
        web = write_private(os.path.join(agent.dir, "web.yml"),
                            "tls_server_config:\n"
                            f"  cert_file: {cert}\n  key_file: {key}\n"
                            "  min_version: TLS12\n"
                            "basic_auth_users:\n"
                            f"  prom: {bcrypt_hash('s3cret')}\n"
                            f"  other: {bcrypt_hash('else')}\n")
        with open(agent.config, "a") as f:
            f.write(f"metrics:\n  listen: 127.0.0.1:{port}\n  web_config: {web}\n")
        agent.start()
        prom = Prometheus([
            {"name": "good", "target": f"127.0.0.1:{port}", "scheme": "https",
             "tls_config": {"ca_file": "CA", "server_name": "localhost"},
             "basic_auth": {"username": "prom", "password_file": "PW"}},
            {"name": "wrong", "target": f"127.0.0.1:{port}", "scheme": "https",
             "tls_config": {"ca_file": "CA", "server_name": "localhost"},
             "basic_auth": {"username": "prom", "password_file": "BAD"}},
        ])
        with open(cert) as f:
            ca = prom.file("ca.crt", f.read(), 0o644)
        pw = prom.file("pw", "s3cret\n")
        bad = prom.file("bad", "guess\n")
        with open(prom.config) as f:
            cfg = f.read().replace('"CA"', json.dumps(ca)).replace('"PW"', json.dumps(pw))
        with open(prom.config, "w") as f:
            f.write(cfg.replace('"BAD"', json.dumps(bad)))
        prom.start()
        prom.wait_target("good")
        t = prom.wait_target("wrong", "down")
        assert "401" in t["lastError"], t
        (sys,) = prom.wait('autotrace_cpu_sys_ratio{job="good",cpu=""}', lambda r: len(r) == 1)

        ctx = ssl.create_default_context(cafile=cert)
        url = f"https://localhost:{port}/metrics"
        status, headers, _ = http(url, context=ctx)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
        import base64
        good = {"Authorization": "Basic " + base64.b64encode(b"prom:s3cret").decode()}
        status, _, body = http(url, good, context=ctx)
        assert status == 200 and b"autotrace_cpu_sys_ratio" in body
        other = {"Authorization": "Basic " + base64.b64encode(b"other:s3cret").decode()}
        assert http(url, other, context=ctx)[0] == 401  # another user's password
        nobody = {"Authorization": "Basic " + base64.b64encode(b"nobody:s3cret").decode()}
        assert http(url, nobody, context=ctx)[0] in (401, 429)
        # an untrusted certificate is refused by the client, plain HTTP by the server
        with pytest.raises(urllib.error.URLError):
            http(url, context=ssl.create_default_context())
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            http(f"http://127.0.0.1:{port}/metrics")

        status = json.loads(subprocess.run([BIN, "status", "--json", "-s", agent.socket],
                                           capture_output=True, text=True,
                                           check=True).stdout)["prometheus"]
        assert status["tls"] and status["basic_auth"] and status["refused"]["auth"] >= 2, status
        assert status["web_config"] == web
    finally:
        if prom:
            prom.cleanup()
        agent.cleanup()


def test_unprotected_beyond_loopback_refused():
    port = free_port()
    agent = Agent(config_extra=f"metrics:\n  listen: 0.0.0.0:{port}\n")
    try:
        r = subprocess.run([BIN, "run", "-c", agent.config], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode != 0
        assert f"metrics.listen 0.0.0.0:{port}: reachable beyond this host without TLS or " \
               "basic authentication" in r.stdout + r.stderr, r.stdout + r.stderr
        # explicitly allowed: it runs, and says what it does
        with open(agent.config, "a") as f:
            f.write("  allow_insecure: true\n")
        agent.start()
        assert "plain HTTP without authentication beyond this host" in agent.read_log()
        assert http(f"http://127.0.0.1:{port}/metrics")[0] == 200
    finally:
        agent.cleanup()

    # a malformed address is a configuration error with its place in the file
    agent = Agent(config_extra="metrics:\n  listen: metrics.example.com:9464\n")
    try:
        r = subprocess.run([BIN, "run", "-c", agent.config], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2, r.stdout + r.stderr
        assert re.search(r"autotrace.yaml:\d+:\d+: metrics.listen: 'metrics.example.com:9464': "
                         r"the host must be an IP address or localhost", r.stdout + r.stderr), \
            r.stdout + r.stderr
    finally:
        agent.cleanup()


def test_reload_turns_auth_on_without_closing_the_port():
    port = free_port()
    agent = Agent(config_extra=f"metrics:\n  listen: 127.0.0.1:{port}\n")
    try:
        agent.start()
        url = f"http://127.0.0.1:{port}/metrics"
        assert http(url)[0] == 200
        web = write_private(os.path.join(agent.dir, "web.yml"),
                            f"basic_auth_users:\n  prom: {bcrypt_hash('pw')}\n")
        with open(agent.config, "a") as f:
            f.write(f"  web_config: {web}\n")
        agent.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while time.time() < deadline and http(url)[0] != 401:
            time.sleep(0.2)
        assert http(url)[0] == 401, agent.read_log()
        import base64
        auth = {"Authorization": "Basic " + base64.b64encode(b"prom:pw").decode()}
        assert http(url, auth)[0] == 200
        # a broken web config: the reload fails, the running endpoint stays as it was
        write_private(web, "basic_auth_users:\n  prom: not-a-hash\n")
        agent.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while time.time() < deadline and "reload failed" not in agent.read_log():
            time.sleep(0.2)
        log = agent.read_log()
        assert "basic_auth_users.prom: not a bcrypt hash" in log, log
        assert http(url)[0] == 401 and http(url, auth)[0] == 200
        rc, _ = agent.stop()
        assert rc == 0
    finally:
        agent.cleanup()
