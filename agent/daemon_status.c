// SPDX-License-Identifier: GPL-2.0-only
/* The status document: what the running agent is doing and what it costs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent/control.h"
#include "agent/daemon_priv.h"
#include "agent/guard.h"
#include "agent/metrics_http.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/kcompat.h"
#include "probes/watcher.h"
#include "storage/essink.h"
#include "triggers/engine.h"
#include "version.h"

static void read_self_memory(uint64_t *rss, uint64_t *peak)
{
	char *text = NULL, *line;
	size_t len;

	*rss = *peak = 0;
	if (read_file("/proc/self/status", 65536, &text, &len))
		return;
	for (line = text; line; line = strchr(line, '\n')) {
		unsigned long long kb;

		line += *line == '\n';
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			*rss = kb * 1024;
		else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
			*peak = kb * 1024;
	}
	free(text);
}

static json_t *status_agent(struct daemon *d)
{
	uint64_t now = now_mono_ns(), cpu = process_cpu_ns(), rss, peak;
	uint64_t up_ns = now - d->started_mono_ns;
	json_t *o = json_object();
	char ts[40];

	read_self_memory(&rss, &peak);
	format_iso8601(now_real_ms() - up_ns / 1000000, ts, sizeof(ts));
	json_object_set_new(o, "version", json_string(AUTOTRACE_VERSION));
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "started", json_string(ts));
	json_object_set_new(o, "uptime_ms", json_integer((json_int_t)(up_ns / 1000000)));
	json_object_set_new(o, "config", json_string(d->cfg.source));
	json_object_set_new(o, "rules_source", json_string(engine_rules(d->engine)->source));
	json_object_set_new(o, "interval_ms", json_integer((json_int_t)d->cfg.agent.interval_ms));
	json_object_set_new(o, "dry_run", json_boolean(d->cfg.agent.dry_run));
	json_object_set_new(o, "cpu_seconds", json_real((double)cpu / 1e9));
	json_object_set_new(o, "cpu_pct",
			    json_real(up_ns ? 100.0 * (double)cpu / (double)up_ns : 0));
	/* the last 10-20 intervals: what the agent costs now, not on average */
	if (now > d->cpu_prev.mono_ns)
		json_object_set_new(o, "cpu_pct_recent",
				    json_real(100.0 * (double)(cpu - d->cpu_prev.cpu_ns) /
					      (double)(now - d->cpu_prev.mono_ns)));
	json_object_set_new(o, "rss_bytes", json_integer((json_int_t)rss));
	json_object_set_new(o, "rss_peak_bytes", json_integer((json_int_t)peak));
	json_object_set_new(o, "metric_series", json_integer(tsdb_series_count(d->db)));
	if (d->last_reload_error[0])
		json_object_set_new(o, "last_reload_error", json_string(d->last_reload_error));
	return o;
}

/* watchers_status() plus the latest host-level value of every series each wrote:
 * one pass over the series (a dense node has tens of thousands, and the
 * metrics endpoint builds this document on every scrape). */
static json_t *status_watchers(struct daemon *d)
{
	json_t *arr = watchers_status(d->watchers), *w;
	size_t n = json_array_size(arr), i;
	unsigned *labeled = calloc(n ? n : 1, sizeof(*labeled));

	json_array_foreach(arr, i, w) json_object_set_new(w, "values", json_object());
	for (size_t m = 0; labeled && m < metric_count(); m++) {
		for (struct tsdb_series *s = tsdb_first(d->db, (unsigned)m); s; s = tsdb_next(s)) {
			unsigned src = tsdb_series_source(s);
			double v;

			if (src < 1 || src > n)
				continue;
			if (tsdb_series_key(s)[0])
				labeled[src - 1]++;
			else if (tsdb_value(d->db, s, 0, &v))
				json_object_set_new(
					json_object_get(json_array_get(arr, src - 1), "values"),
					metric_at(m)->name, json_real(round(v * 1000) / 1000));
		}
	}
	json_array_foreach(arr, i, w)
		json_object_set_new(w, "labeled_series", json_integer(labeled ? labeled[i] : 0));
	free(labeled);
	return arr;
}

/* engine_status() with per-rule totals over scopes and what the daemon noted. */
static json_t *status_rules(struct daemon *d, uint64_t *skipped)
{
	json_t *arr = engine_status(d->engine, now_mono_ns() / 1000000), *r;
	size_t i;

	json_array_foreach(arr, i, r)
	{
		const char *name = json_string_value(json_object_get(r, "name"));
		struct rule_note *n = name ? daemon_rule_note(d, name) : NULL;
		json_int_t hour = 0, ago = -1;
		json_t *sc;
		size_t k;

		json_array_foreach(json_object_get(r, "scopes"), k, sc)
		{
			json_t *a = json_object_get(sc, "last_fired_ago_ms");

			hour += json_integer_value(json_object_get(sc, "fires_last_hour"));
			if (json_is_integer(a) && (ago < 0 || json_integer_value(a) < ago))
				ago = json_integer_value(a);
		}
		*skipped += (uint64_t)json_integer_value(json_object_get(r, "skipped"));
		json_object_set_new(r, "fires_last_hour", json_integer(hour));
		if (ago >= 0)
			json_object_set_new(r, "last_fired_ago_ms", json_integer(ago));
		json_object_set_new(r, "errors", json_integer(n ? (json_int_t)n->errors : 0));
		if (n && n->last_incident[0])
			json_object_set_new(r, "last_incident", json_string(n->last_incident));
		if (n && n->last_error[0]) {
			char ts[40];

			format_iso8601(n->last_error_real_ms, ts, sizeof(ts));
			json_object_set_new(r, "last_error", json_string(n->last_error));
			json_object_set_new(r, "last_error_at", json_string(ts));
		}
	}
	return arr;
}

static json_t *status_captures(struct daemon *d)
{
	json_t *o = capmgr_status(d->caps), *sessions = json_array();
	uint64_t now = now_mono_ns() / 1000000;

	for (struct pending_incident *p = d->pending; p; p = p->next)
		json_array_append_new(
			sessions,
			json_pack("{s:s,s:s,s:b,s:I}", "incident_id", p->id, "rule", p->name,
				  "manual", p->manual, "ends_in_ms",
				  (json_int_t)(p->ends_mono_ms > now ? p->ends_mono_ms - now : 0)));
	json_object_set_new(o, "sessions", sessions);
	json_object_set_new(o, "max_concurrent",
			    json_integer((json_int_t)d->cfg.capture.max_concurrent));
	json_object_set_new(o, "max_seconds_per_hour",
			    json_integer((json_int_t)d->cfg.capture.max_seconds_per_hour));
	return o;
}

static json_t *status_incidents(struct daemon *d)
{
	json_t *o = json_object();

	json_object_set_new(o, "dir", json_string(store_dir(d->store)));
	json_object_set_new(o, "written", json_integer((json_int_t)d->incidents_written));
	json_object_set_new(o, "failed", json_integer((json_int_t)d->incidents_failed));
	json_object_set_new(o, "stored", json_integer(d->store_stats.incidents));
	json_object_set_new(o, "stored_bytes", json_integer((json_int_t)d->store_stats.bytes));
	json_object_set_new(o, "store",
			    store_stats_json(d->store)); /* crash leftovers, full disk */
	if (d->nrecent) {
		const struct recent_incident *r = &d->recent[(d->nrecent - 1) % RECENT_INCIDENTS];

		json_object_set_new(o, "last",
				    json_pack("{s:s,s:s,s:b,s:s}", "id", r->id, "rule", r->rule,
					      "ok", r->ok, "where", r->where));
	}
	return o;
}

static json_t *status_elasticsearch(struct daemon *d)
{
	if (d->es)
		return essink_status(d->es);
	return json_pack("{s:b,s:s}", "enabled", false, "state", "disabled");
}

/* A field of the watcher `name` in the watchers array (0 when absent). */
static json_int_t watcher_int(json_t *arr, const char *name, const char *field)
{
	json_t *w;
	size_t i;

	json_array_foreach(arr, i, w)
	{
		if (!strcmp(json_string_value(json_object_get(w, "name")) ?: "", name))
			return json_integer_value(json_object_get(w, field));
	}
	return 0;
}

/* The kernel, and the fallbacks the probes took on it (docs/compatibility.md). */
static json_t *status_kernel(void)
{
	struct utsname u;

	uname(&u);
	return json_pack("{s:s,s:o}", "release", u.release, "fallbacks", kcompat_notes_json());
}

json_t *daemon_status(struct daemon *d)
{
	json_t *o = json_object(), *caps, *watchers, *dropped;
	uint64_t skipped = 0;

	json_object_set_new(o, "agent", status_agent(d));
	json_object_set_new(o, "kernel", status_kernel());
	watchers = status_watchers(d);
	json_object_set_new(o, "watchers", watchers);
	json_object_set_new(o, "rules", status_rules(d, &skipped));
	caps = status_captures(d);
	json_object_set_new(o, "incidents", status_incidents(d));
	json_object_set_new(o, "elasticsearch", status_elasticsearch(d));
	dropped = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "metric_series",
			    (json_int_t)tsdb_dropped(d->db), "capture_lost_events",
			    (json_int_t)d->capture_lost_events, "captures_refused_busy",
			    json_integer_value(json_object_get(caps, "refused_busy")),
			    "captures_refused_budget",
			    json_integer_value(json_object_get(caps, "refused_budget")),
			    "rule_firings_skipped", (json_int_t)skipped, "incidents_failed",
			    (json_int_t)d->incidents_failed, "es_spool_evicted",
			    (json_int_t)(d->es ? essink_evicted(d->es) : 0), "es_rejected",
			    (json_int_t)(d->es ? essink_rejected(d->es) : 0));
	/* the watch layer: populated cgroups without their own series now */
	json_object_set_new(dropped, "cgroups_unwatched",
			    json_integer(watcher_int(watchers, "cgroups", "cgroups_dropped") +
					 watcher_int(watchers, "cgroups", "cgroups_unsafe_names")));
	json_object_set_new(o, "dropped", dropped);
	json_object_set_new(o, "captures", caps);
	json_object_set_new(o, "guard", guard_status(d->guard));
	json_object_set_new(o, "symbolizer", symbolizer_stats_json(d->sym));
	json_object_set_new(o, "control", d->ctl ? control_stats(d->ctl) : json_null());
	json_object_set_new(o, "prometheus", metrics_http_status(d->prom));
	return o;
}
