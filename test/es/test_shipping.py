# SPDX-License-Identifier: GPL-2.0-only
"""Incidents reach a real Elasticsearch: searchable by rule and host, with the
template's field types, the incident id as _id, and the same document as on disk."""
import json
import os
import subprocess
import time

from agentlib import BIN, compile_c
from eslib import es_agent, es_status, local_ids, status, wait_for


def day_index(prefix, incident_id):
    # ids start with the UTC time of the incident: 20261122T...
    return f"{prefix}-{incident_id[0:4]}.{incident_id[4:6]}.{incident_id[6:8]}"


def test_incident_shipped_and_found_by_rule_and_host(es, prefix):
    rule = "ship-" + prefix
    a = es_agent([es.url], prefix, rules_yaml=f"""rules:
  - name: {rule}
    description: fires on every sample
    metric: cpu.idle_pct
    above: -1
    dry_run: true
    cooldown: 1s
""")
    try:
        a.start()
        assert len(a.wait_incidents(3, timeout=30)) >= 3, a.read_log()
        ids = sorted(local_ids(a))[:3]
        got = es.wait_ids(f"{prefix}-*", ids, timeout=60)
        assert set(ids) <= set(got), (got, a.read_log())

        # found through the search API by rule.name and host.name (keyword terms)
        hits = es.search(f"{prefix}-*", {"bool": {"filter": [
            {"term": {"rule.name": rule}}, {"term": {"host.name": a.hostname}}]}}, size=500)
        found = {h["_id"]: h for h in hits["hits"]}
        assert set(ids) <= set(found)
        for i in ids:
            h = found[i]
            # incident.id is the _id; daily index of the incident's own day
            assert h["_source"]["incident"]["id"] == i
            assert h["_index"] == day_index(prefix, i)
            # exactly the document written to the local store
            assert h["_source"] == a.incident_doc(i)
        # a term on another host finds none of ours
        other = es.search(f"{prefix}-*", {"term": {"host.name": "no-such-host"}})
        assert other["total"]["value"] == 0

        # the index took its mapping from the template, field by field
        idx = day_index(prefix, ids[0])
        mapping = es.ok("GET", f"/{idx}/_mapping")[idx]["mappings"]
        props = mapping["properties"]
        assert mapping["dynamic"] in (False, "false")
        assert props["@timestamp"]["type"] == "date"
        assert props["rule"]["properties"]["name"]["type"] == "keyword"
        assert props["host"]["properties"]["name"]["type"] == "keyword"
        assert props["incident"]["properties"]["id"]["type"] == "keyword"
        assert props["trigger"]["properties"]["value"]["type"] == "double"
        assert props["trigger"]["properties"]["labels"]["type"] == "flattened"
        assert props["history"]["properties"]["from"]["type"] == "date"
        assert props["history"]["properties"]["series"]["properties"]["points"]["enabled"] in (
            False, "false")
        assert props["captures"]["properties"]["duration_ms"]["type"] == "long"
        # nothing was mapped on the fly from the documents (history labels, points...)
        with open(os.path.join(os.environ["AUTOTRACE_SOURCE_DIR"], "config",
                               "es-index-template.json")) as f:
            tmpl = json.load(f)
        assert props.keys() == tmpl["template"]["mappings"]["properties"].keys()
        # a range query works because trigger.value is numeric, @timestamp a date
        rng = es.search(f"{prefix}-*", {"bool": {"filter": [
            {"range": {"trigger.value": {"gte": 0}}},
            {"range": {"@timestamp": {"gte": "now-1h"}}}]}})
        assert rng["total"]["value"] >= 3

        # the template: versioned, installed by the agent
        t = es.ok("GET", f"/_index_template/{prefix}")["index_templates"][0]["index_template"]
        assert t["version"] == tmpl["version"]
        assert t["index_patterns"] == [f"{prefix}-*"]
        assert f"index template {prefix} version {tmpl['version']} installed" in a.read_log()

        st = wait_for(lambda: (lambda s: s if s["shipped"] >= 3 else None)(es_status(a)), 10)
        assert st["state"] in ("ok", "shipping"), st
        assert st["mode"] == "daily_indices"
        assert st["template"]["name"] == prefix
        assert st["rejected"] == 0 and st["evicted"] == 0
        # bodies go gzip-compressed
        assert 0 < st["bytes_sent"] < st["bytes_uncompressed"]
        # `autotrace status` shows it in words
        out = subprocess.run([BIN, "status", "--socket", a.socket], capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr
        assert "elasticsearch: " in out.stdout and es.url in out.stdout
        # clean exit (the sanitizers find no leak in the client's paths)
        rc, took = a.stop()
        assert rc == 0 and took < 2, a.read_log()
    finally:
        a.cleanup()


def test_template_is_left_alone_when_current(es, prefix):
    """Idempotent: a second agent finds the template current and does not rewrite it."""
    first = es_agent([es.url], prefix)
    try:
        first.start()
        assert wait_for(lambda: es_status(first)["template"]["state"] == "installed", 30), \
            first.read_log()
    finally:
        first.cleanup()
    before = es.ok("GET", f"/_index_template/{prefix}")
    second = es_agent([es.url], prefix, env={"AUTOTRACE_LOG_LEVEL": "debug"})
    try:
        second.start()
        assert wait_for(lambda: es_status(second)["template"]["state"] == "current", 30), \
            second.read_log()
        assert f"index template {prefix} is current" in second.read_log()
        assert f"index template {prefix} version" not in second.read_log()
    finally:
        second.cleanup()
    assert es.ok("GET", f"/_index_template/{prefix}") == before


def test_data_stream_falls_back_to_daily_indices(es, prefix):
    """The test cluster has no data stream API: the agent says so and writes daily indices."""
    a = es_agent([es.url], prefix, es_extra="    data_stream: true\n")
    try:
        a.start()
        assert a.wait_incidents(1, timeout=30)
        i = sorted(local_ids(a))[0]
        assert set(es.wait_ids(f"{prefix}-*", [i], timeout=60)) >= {i}, a.read_log()
        log = a.read_log()
        assert "storage.elasticsearch.data_stream is set but" in log
        assert f"writing daily indices {prefix}-YYYY.MM.DD instead" in log
        st = es_status(a)
        assert st["mode"] == "daily_indices"
        hit = es.search(f"{prefix}-*", {"ids": {"values": [i]}})["hits"][0]
        assert hit["_index"] == day_index(prefix, i)
    finally:
        a.cleanup()


NEVER = """rules:
  - name: never
    metric: cpu.idle_pct
    below: -1
    dry_run: true
"""

SPIN = r"""
#include <pthread.h>
#include <sys/prctl.h>
static void *spin(void *a) { volatile unsigned long x = 0; for (;;) x++; return a; }
int main(void)
{
	pthread_t t;
	prctl(PR_SET_NAME, "atculprit");
	pthread_create(&t, 0, spin, 0);
	spin(0);
}
"""


def test_culprit_summary_from_a_real_profile(es, prefix, tmp_path):
    """A manual profile of our own spinning process: the incident names it as the
    culprit, and Kibana can aggregate on culprit.comm."""
    exe = compile_c(SPIN, "atculprit", str(tmp_path))
    spinner = subprocess.Popen([exe])
    a = es_agent([es.url], prefix, rules_yaml=NEVER)
    try:
        a.start()
        out = subprocess.run([BIN, "trigger", "--capture", "profile", "--pid", str(spinner.pid),
                              "--duration", "2s", "--socket", a.socket],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr + a.read_log()
        incident_id = out.stdout.split()[1].rstrip(":")
        got = es.wait_ids(f"{prefix}-*", [incident_id], timeout=60)
        assert incident_id in got, a.read_log()
        src = es.search(f"{prefix}-*", {"ids": {"values": [incident_id]}})["hits"][0]["_source"]
        c = src["culprit"]
        assert c["comm"] == "atculprit"
        assert c["pid"] == spinner.pid
        assert c["capture"] == "profile"
        assert c["pct"] > 0
        assert c["stack"].startswith("atculprit;")
        # the culprit is a keyword: aggregations work on it
        st, agg = es.request("POST", f"/{prefix}-*/_search", {
            "size": 0, "aggs": {"c": {"terms": {"field": "culprit.comm"}}}})
        assert st == 200
        assert [b["key"] for b in agg["aggregations"]["c"]["buckets"]] == ["atculprit"]
        # the folded stack is stored but not indexed
        st, _ = es.request("POST", f"/{prefix}-*/_search",
                           {"query": {"match": {"culprit.stack": "atculprit"}}})
        assert st == 400
        # the culprit is a program with its process count; Kibana aggregates on it
        assert c["program"] == "atculprit" and c["processes"] == 1 and c["pids"] == [spinner.pid]
        st, agg = es.request("POST", f"/{prefix}-*/_search", {
            "size": 0, "aggs": {"c": {"terms": {"field": "culprit.program"}}}})
        assert st == 200
        assert [b["key"] for b in agg["aggregations"]["c"]["buckets"]] == ["atculprit"]
        # the diagnosis: full text on summary, exact on summary.keyword
        assert "Culprit: atculprit" in src["summary"], src["summary"]
        hits = es.search(f"{prefix}-*", {"match": {"summary": "culprit atculprit"}})["hits"]
        assert [h["_id"] for h in hits] == [incident_id]
        hits = es.search(f"{prefix}-*", {"term": {"summary.keyword": src["summary"]}})["hits"]
        assert [h["_id"] for h in hits] == [incident_id]
    finally:
        spinner.kill()
        spinner.wait()
        a.cleanup()


def test_a_different_template_is_replaced(es, prefix):
    """Same version number but not what this agent installs (edited by hand, or
    other options): the agent puts its own back."""
    first = es_agent([es.url], prefix)
    try:
        first.start()
        assert wait_for(lambda: es_status(first)["template"]["state"] == "installed", 30)
    finally:
        first.cleanup()
    t = es.ok("GET", f"/_index_template/{prefix}")["index_templates"][0]["index_template"]
    good_hash = t["_meta"]["autotrace_body_hash"]
    t["_meta"]["autotrace_body_hash"] = "edited"
    del t["template"]["mappings"]["properties"]["culprit"]
    es.ok("PUT", f"/_index_template/{prefix}", t)
    second = es_agent([es.url], prefix)
    try:
        second.start()
        assert wait_for(lambda: es_status(second)["template"]["state"] == "installed", 30), \
            second.read_log()
    finally:
        second.cleanup()
    t = es.ok("GET", f"/_index_template/{prefix}")["index_templates"][0]["index_template"]
    assert t["_meta"]["autotrace_body_hash"] == good_hash
    assert "culprit" in t["template"]["mappings"]["properties"]


def test_ilm_policy_on_a_cluster_without_ilm(es, prefix):
    """The test cluster has no ILM: asking for a policy is a clear error, shipping
    waits (nothing lost) rather than creating indices without the template."""
    a = es_agent([es.url], prefix, es_extra="    ilm_policy: autotrace-30d\n")
    try:
        a.start()
        st = wait_for(lambda: (lambda s: s if s.get("last_error") and s["spool_depth"] >= 2
                               else None)(es_status(a)), 60)
        assert st, es_status(a)
        assert "installing the index template" in st["last_error"]
        assert "index.lifecycle.name" in st["last_error"]
        assert st["template"]["state"].startswith("failed")
        assert st["shipped"] == 0
        assert es.ids(f"{prefix}-*") == {}
    finally:
        a.cleanup()


WORKLOAD = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
static const char *path;
static void *spin(void *a) { volatile unsigned long x = 0; for (;;) x++; return a; }
static void *io(void *a)
{
	char buf[65536];
	memset(buf, 'x', sizeof(buf));
	for (;;) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		for (int i = 0; i < 16; i++)
			if (write(fd, buf, sizeof(buf)) < 0)
				break;
		fsync(fd);
		close(fd);
		usleep(2000);
	}
	return a;
}
static void *mem(void *a)
{
	for (;;) {
		char *p = malloc(32 << 20);
		for (size_t i = 0; p && i < (32u << 20); i += 4096)
			p[i] = 1;
		usleep(50000);
		free(p);
	}
	return a;
}
int main(int argc, char **argv)
{
	pthread_t t[3];
	path = argv[1];
	prctl(PR_SET_NAME, "atworkload");
	pthread_create(&t[0], 0, spin, 0);
	pthread_create(&t[1], 0, io, 0);
	pthread_create(&t[2], 0, mem, 0);
	pause();
}
"""


def test_every_capture_kind_fits_the_mapping(es, prefix, tmp_path):
    """A real incident with every capture kind this kernel runs, while a workload
    spins, writes and allocates: Elasticsearch takes it whole (no mapping
    conflict), and each kind is searchable."""
    exe = compile_c(WORKLOAD, "atworkload", str(tmp_path))
    work = subprocess.Popen([exe, str(tmp_path / "data")])
    a = es_agent([es.url], prefix, rules_yaml=NEVER)
    try:
        a.start()
        kinds = [k["kind"] for k in status(a)["captures"]["kinds"] if k["state"] == "ready"]
        assert "profile" in kinds, kinds
        out = subprocess.run([BIN, "trigger", "--capture", ",".join(kinds), "--pid",
                              str(work.pid), "--duration", "3s", "--socket", a.socket],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr + a.read_log()
        incident_id = out.stdout.split()[1].rstrip(":")
        got = es.wait_ids(f"{prefix}-*", [incident_id], timeout=90)
        st = es_status(a)
        assert incident_id in got, (st, a.read_log())
        assert st["rejected"] == 0, st
        doc = a.incident_doc(incident_id)
        ran = {c["kind"] for c in doc["captures"]}
        assert ran == set(kinds)
        for k in kinds:
            hits = es.search(f"{prefix}-*", {"bool": {"filter": [
                {"term": {"captures.kind": k}}, {"term": {"incident.id": incident_id}}]}})
            assert hits["total"]["value"] == 1, k
        # capture data the mapping does not know stays out of the mapping
        idx = day_index(prefix, incident_id)
        mapping = es.ok("GET", f"/{idx}/_mapping")[idx]["mappings"]
        with open(os.path.join(os.environ["AUTOTRACE_SOURCE_DIR"], "config",
                               "es-index-template.json")) as f:
            tmpl = json.load(f)
        want = set(tmpl["template"]["mappings"]["properties"]["captures"]["properties"])
        assert set(mapping["properties"]["captures"]["properties"]) == want
    finally:
        work.kill()
        work.wait()
        a.cleanup()
