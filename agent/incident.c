// SPDX-License-Identifier: GPL-2.0-only
#include "agent/incident.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent/capmgr.h"
#include "agent/culprit.h"
#include "base/cgroups.h"
#include "base/config.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "base/sanitize.h"
#include "probes/catalogue.h"
#include "triggers/rules.h"
#include "version.h"

void incident_host_read(struct incident_host *h, const struct agent_config *cfg)
{
	struct utsname u;

	memset(h, 0, sizeof(*h));
	if (uname(&u) == 0) {
		snprintf(h->kernel, sizeof(h->kernel), "%s", u.release);
		snprintf(h->name, sizeof(h->name), "%s", u.nodename);
	}
	if (cfg && cfg->agent.hostname[0])
		snprintf(h->name, sizeof(h->name), "%s", cfg->agent.hostname);
}

/* History is kept as float: print what it holds, not float noise. */
static double metric_round(double v)
{
	return round(v * 1000.0) / 1000.0;
}

static void label_to_json(const char *k, const char *v, void *ctx)
{
	json_object_set_new(ctx, k, json_string_clean(v));
}

static json_t *labels_json(const char *key)
{
	json_t *o = json_object();

	labels_foreach(key, label_to_json, o);
	return o;
}

static json_t *series_points(const struct tsdb *db, const struct tsdb_series *s,
			     uint64_t from_real_ms)
{
	json_t *pts = json_array();
	unsigned max = tsdb_points(db);

	for (unsigned ago = max; ago-- > 0;) {
		uint64_t t = tsdb_round_time(db, ago);
		double v;

		if (!t || t < from_real_ms || !tsdb_value(db, s, ago, &v))
			continue;
		json_t *p = json_array();

		json_array_append_new(p, json_integer((json_int_t)t));
		json_array_append_new(p, json_real(metric_round(v)));
		json_array_append_new(pts, p);
	}
	return pts;
}

json_t *incident_history(const struct tsdb *db, int metric, const char *series_key,
			 uint64_t from_real_ms)
{
	json_t *arr = json_array();
	const struct metric_desc *md = metric >= 0 ? metric_at((size_t)metric) : NULL;
	const char *dot;
	size_t family_len;

	if (!md)
		return arr;
	/* the tripped metric first, then its family (cpu.sys_pct -> cpu.*) for context */
	dot = strchr(md->name, '.');
	family_len = dot ? (size_t)(dot - md->name) + 1 : strlen(md->name);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t m = 0; m < metric_count(); m++) {
			const struct metric_desc *d = metric_at(m);
			struct tsdb_series *s;

			if (pass == 0
				    ? (int)m != metric
				    : ((int)m == metric || strncmp(d->name, md->name, family_len)))
				continue;
			s = tsdb_find_key(db, (unsigned)m, series_key);
			if (!s)
				continue;
			json_t *o = json_object();

			json_object_set_new(o, "metric", json_string_clean(d->name));
			json_object_set_new(o, "unit", json_string_clean(d->unit));
			json_object_set_new(o, "labels", labels_json(series_key));
			json_object_set_new(o, "points", series_points(db, s, from_real_ms));
			json_array_append_new(arr, o);
		}
	}
	return arr;
}

static json_t *capture_json(const struct capture_outcome *o)
{
	json_t *c = json_object();
	char ts[40];

	/* common fields first, so every capture reads the same way */
	format_iso8601(o->started_real_ms, ts, sizeof(ts));
	json_object_set_new(c, "kind", json_string_clean(o->kind));
	json_object_set_new(c, "started", json_string_clean(ts));
	json_object_set_new(c, "duration_ms", json_integer((json_int_t)o->duration_ms));
	json_object_set_new(c, "status", json_string_clean(o->status));
	json_object_set_new(c, "lost_events", json_integer((json_int_t)o->result.lost_events));
	if (o->truncated_reason[0])
		json_object_set_new(c, "truncated_reason", json_string_clean(o->truncated_reason));
	if (o->result.error[0])
		json_object_set_new(c, "error", json_string_clean(o->result.error));
	if (o->result.nartifacts) {
		json_t *arts = json_array();

		for (unsigned i = 0; i < o->result.nartifacts; i++)
			json_array_append_new(arts, json_string_clean(o->result.artifacts[i].name));
		json_object_set_new(c, "artifacts", arts);
	}
	if (o->result.data)
		json_object_update_missing(c, o->result.data);
	return c;
}

/* What made a capture partial, by name: the nonzero counters of its `lost`
 * object (each a documented bound) and stacks left out of its folded file. */
static void partial_reasons(json_t *caps, json_t *out)
{
	json_t *cap, *v;
	const char *key;
	size_t i;
	char buf[160];

	json_array_foreach(caps, i, cap)
	{
		const char *kind = json_string_value(json_object_get(cap, "kind"));

		if (strcmp(json_string_value(json_object_get(cap, "status")) ?: "", "partial"))
			continue;
		json_object_foreach(json_object_get(cap, "lost"), key, v)
		{
			if (!json_is_integer(v) || json_integer_value(v) <= 0)
				continue;
			snprintf(buf, sizeof(buf), "%s: lost.%s=%" JSON_INTEGER_FORMAT, kind ?: "?",
				 key, json_integer_value(v));
			json_array_append_new(out, json_string_clean(buf));
		}
		v = json_object_get(cap, "folded_stacks_dropped");
		if (json_integer_value(v) > 0) {
			snprintf(buf, sizeof(buf),
				 "%s: folded_stacks_dropped=%" JSON_INTEGER_FORMAT, kind ?: "?",
				 json_integer_value(v));
			json_array_append_new(out, json_string_clean(buf));
		}
		if (json_object_get(cap, "error")) {
			snprintf(buf, sizeof(buf), "%s: error", kind ?: "?");
			json_array_append_new(out, json_string_clean(buf));
		}
	}
}

static const char *target_kind_name(enum capture_target_kind k)
{
	return k == TARGET_PID ? "process" : k == TARGET_CGROUP ? "cgroup" : "host";
}

static json_t *target_json(const struct capture_target *t)
{
	json_t *o = json_object();

	json_object_set_new(o, "kind", json_string_clean(target_kind_name(t->kind)));
	if (t->kind == TARGET_PID)
		json_object_set_new(o, "pid", json_integer(t->pid));
	if (t->kind == TARGET_CGROUP)
		json_object_set_new(o, "cgroup", json_string_clean(t->cgroup));
	return o;
}

/* One trigger as the `triggers` list reports it. */
static json_t *trigger_json(const struct incident_trigger *t)
{
	json_t *o = json_object();
	char cond[512], cg[512] = "";

	json_object_set_new(o, "rule", json_string_clean(t->name));
	if (t->rule) {
		rule_condition_text(t->rule, cond, sizeof(cond));
		json_object_set_new(o, "condition", json_string_clean(cond));
		json_object_set_new(o, "threshold", json_real(t->rule->threshold));
	}
	if (t->metric >= 0) {
		json_object_set_new(o, "metric",
				    json_string_clean(metric_at((size_t)t->metric)->name));
		json_object_set_new(o, "value", json_real(metric_round(t->value)));
	}
	if (t->series_key && t->series_key[0]) {
		json_t *labels = labels_json(t->series_key);
		json_t *cgv = json_object_get(labels, "cgroup");

		if (json_is_string(cgv))
			snprintf(cg, sizeof(cg), "%s", json_string_value(cgv));
		json_object_set_new(o, "labels", labels);
	}
	json_object_set_new(o, "scope", json_string_clean(cg[0] ? cg : "host"));
	return o;
}

json_t *incident_build(const char *id, const struct incident_host *host,
		       const struct incident_trigger *trigs, unsigned ntrig, const struct tsdb *db,
		       uint64_t history_before_ms, struct capture_session *session,
		       const char *agent_status)
{
	const struct incident_trigger *trig = &trigs[0];
	json_t *doc = json_object(), *o, *caps = json_array(), *list;
	const struct rule *r = trig->rule;
	const struct capture_target *tgt = session ? capture_session_target(session) : NULL;
	const char *status = agent_status;
	char ts[40];
	const char *cg;
	bool all_dry = true;

	format_iso8601(trig->fired_real_ms, ts, sizeof(ts));
	json_object_set_new(doc, "@timestamp", json_string_clean(ts));

	o = json_object();
	json_object_set_new(o, "id", json_string_clean(id));
	json_object_set_new(doc, "incident", o);

	o = json_object();
	json_object_set_new(o, "name", json_string_clean(host->name));
	json_object_set_new(o, "os", json_pack("{s:s}", "kernel", host->kernel));
	json_object_set_new(doc, "host", o);
	json_object_set_new(
		doc, "agent",
		json_pack("{s:s,s:s}", "name", "autotrace", "version", AUTOTRACE_VERSION));

	o = json_object();
	json_object_set_new(o, "name", json_string_clean(trig->name));
	if (r) {
		char cond[512];
		json_t *labels = json_object();

		rule_condition_text(r, cond, sizeof(cond));
		json_object_set_new(o, "description", json_string_clean(r->description));
		json_object_set_new(o, "condition", json_string_clean(cond));
		json_object_set_new(o, "file", json_string_clean(r->file));
		for (unsigned i = 0; i < r->nlabels; i++)
			json_object_set_new(labels, r->label_keys[i],
					    json_string_clean(r->label_values[i]));
		json_object_set_new(o, "labels", labels);
		json_object_set_new(o, "dry_run", json_boolean(r->dry_run));
	}
	json_object_set_new(doc, "rule", o);

	/* trigger: the primary trigger, with the capture target */
	o = trigger_json(trig);
	json_object_del(o, "rule");
	json_object_del(o, "condition");
	if (!r)
		json_object_del(o, "threshold");
	if (tgt)
		json_object_set_new(o, "target", target_json(tgt));
	json_object_set_new(doc, "trigger", o);

	/* triggers: every rule that fired for this scope and shares these captures */
	list = json_array();
	for (unsigned i = 0; i < ntrig; i++) {
		json_array_append_new(list, trigger_json(&trigs[i]));
		all_dry &= trigs[i].rule && trigs[i].rule->dry_run;
	}
	json_object_set_new(doc, "triggers", list);

	cg = json_string_value(json_object_get(json_object_get(doc, "trigger"), "scope"));
	if (cg && strcmp(cg, "host")) {
		char cid[65], pod[37];

		cgroup_path_identity(cg, cid, sizeof(cid), pod, sizeof(pod));
		if (cid[0])
			json_object_set_new(doc, "container", json_pack("{s:s}", "id", cid));
		if (pod[0])
			json_object_set_new(doc, "orchestrator",
					    json_pack("{s:{s:s}}", "resource", "id", pod));
	}

	o = json_object();
	{
		uint64_t from = trig->fired_real_ms > history_before_ms
					? trig->fired_real_ms - history_before_ms
					: 0;
		const char *key = trig->series_key ? trig->series_key : "";
		json_t *series = incident_history(db, trig->metric, key, from);

		/* the other triggers' metrics, when not already there */
		for (unsigned i = 1; i < ntrig; i++) {
			json_t *more, *m;
			size_t k;

			if (trigs[i].metric < 0 || trigs[i].metric == trig->metric)
				continue;
			more = incident_history(db, trigs[i].metric,
						trigs[i].series_key ? trigs[i].series_key : "",
						from);
			json_array_foreach(more, k, m)
			{
				bool dup = false;
				json_t *have;
				size_t h;

				json_array_foreach(series, h, have) dup |=
					json_equal(json_object_get(have, "metric"),
						   json_object_get(m, "metric")) &&
					json_equal(json_object_get(have, "labels"),
						   json_object_get(m, "labels"));
				if (!dup)
					json_array_append(series, m);
			}
			json_decref(more);
		}
		format_iso8601(from, ts, sizeof(ts));
		json_object_set_new(o, "from", json_string_clean(ts));
		json_object_set_new(o, "series", series);
	}
	json_object_set_new(doc, "history", o);

	for (unsigned i = 0; session && i < capture_session_count(session); i++) {
		struct capture_outcome *co = capture_session_outcome(session, i);
		json_t *cj = capture_json(co);

		json_object_set_new(cj, "target", target_json(&co->target));
		json_array_append_new(caps, cj);
		/* the agent-wide dry run marks the captures, not the rules */
		if (strcmp(co->status, "dry_run"))
			all_dry = false;
		else if (i == 0)
			all_dry = true;
		if (strcmp(co->status, "truncated") == 0 && (!status || !strcmp(status, "partial")))
			status = "truncated";
		else if (!status && strcmp(co->status, "ok") && strcmp(co->status, "dry_run"))
			status = "partial";
	}
	json_object_set_new(doc, "captures", caps);
	incident_set_culprits(doc);
	if (!status)
		status = all_dry ? "dry_run" : "complete";
	json_object_set_new(json_object_get(doc, "incident"), "status", json_string_clean(status));
	if (!strcmp(status, "partial")) {
		json_t *why = json_array();

		partial_reasons(caps, why);
		json_object_set_new(json_object_get(doc, "incident"), "partial_reasons", why);
	}
	incident_set_summary(doc);
	return doc;
}

/* Keeps an incident within storage.local.max_incident_size: artifacts go first
 * (largest first), then capture details; the incident says what was dropped. */
char *incident_serialize_fit(json_t *doc, struct capture_artifact *arts, unsigned *nart,
			     uint64_t max)
{
	json_t *inc = json_object_get(doc, "incident"), *dropped = json_array();
	uint64_t art_bytes = 0;
	char *text;
	size_t i;

	for (unsigned a = 0; a < *nart; a++)
		art_bytes += arts[a].len;
	text = json_dumps(doc, JSON_COMPACT);
	while (text && strlen(text) + art_bytes > max && *nart) {
		unsigned big = 0;

		for (unsigned a = 1; a < *nart; a++)
			if (arts[a].len > arts[big].len)
				big = a;
		json_array_append_new(dropped, json_string_clean(arts[big].name));
		art_bytes -= arts[big].len;
		arts[big] = arts[--*nart];
		json_object_set(inc, "dropped", dropped);
		free(text);
		text = json_dumps(doc, JSON_COMPACT);
	}
	if (text && strlen(text) > max) {
		json_t *cap;

		/* keep what every capture has in common, drop its kind-specific data */
		json_array_foreach(json_object_get(doc, "captures"), i, cap)
		{
			static const char *const keep[] = {"kind",   "started",	    "duration_ms",
							   "status", "lost_events", "error"};
			const char *key;
			json_t *v, *tmp;

			json_object_foreach_safe(cap, tmp, key, v)
			{
				bool k = false;

				for (size_t j = 0; j < ARRAY_SIZE(keep); j++)
					k |= strcmp(key, keep[j]) == 0;
				if (!k)
					json_object_del(cap, key);
			}
		}
		json_array_append_new(dropped, json_string("captures.details"));
		json_object_set(inc, "dropped", dropped);
		free(text);
		text = json_dumps(doc, JSON_COMPACT);
	}
	if (json_array_size(dropped)) {
		json_object_set_new(inc, "status", json_string("truncated"));
		json_object_set_new(inc, "truncated_reason",
				    json_string("storage.local.max_incident_size"));
		free(text);
		text = json_dumps(doc, JSON_COMPACT);
	}
	json_decref(dropped);
	return text;
}
