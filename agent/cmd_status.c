// SPDX-License-Identifier: GPL-2.0-only
/* `autotrace status`: what the running agent is doing, from its control socket. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "agent/cli.h"
#include "base/sanitize.h"
#include "agent/ctlclient.h"
#include "base/util.h"

#define STATUS_TIMEOUT_MS 10000

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static double jnum(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static const char *jstring(json_t *o, const char *k, const char *def)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : def;
}

static void ago_text(json_t *o, const char *k, char *buf, size_t len)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_integer(v)) {
		snprintf(buf, len, "never");
		return;
	}
	format_duration((uint64_t)json_integer_value(v), buf, len);
	strncat(buf, " ago", len - strlen(buf) - 1);
}

static void print_agent(json_t *a)
{
	char up[32], rss[32], peak[32];

	format_duration((uint64_t)jint(a, "uptime_ms") / 1000 * 1000, up, sizeof(up));
	cli_human_size((uint64_t)jint(a, "rss_bytes"), rss, sizeof(rss));
	cli_human_size((uint64_t)jint(a, "rss_peak_bytes"), peak, sizeof(peak));
	printf("autotrace %s, pid %lld, up %s (since %s)%s\n", jstring(a, "version", "?"),
	       (long long)jint(a, "pid"), up, jstring(a, "started", "?"),
	       json_is_true(json_object_get(a, "dry_run")) ? ", DRY RUN" : "");
	printf("config %s; rules from %s; interval %lldms\n", jstring(a, "config", "?"),
	       jstring(a, "rules_source", "?"), (long long)jint(a, "interval_ms"));
	printf("agent cost: CPU %.2f%% now, %.2f%% average (%.1fs in all); RSS %s (peak %s); "
	       "%lld metric series\n",
	       jnum(a, "cpu_pct_recent"), jnum(a, "cpu_pct"), jnum(a, "cpu_seconds"), rss, peak,
	       (long long)jint(a, "metric_series"));
	if (json_object_get(a, "last_reload_error"))
		printf("LAST RELOAD FAILED: %s\n", jstring(a, "last_reload_error", ""));
}

static void print_kernel(json_t *k)
{
	json_t *f;
	size_t i, n = json_array_size(json_object_get(k, "fallbacks"));

	if (!n) {
		printf("kernel %s: no fallbacks in use\n", jstring(k, "release", "?"));
		return;
	}
	printf("kernel %s: %zu fallback%s in use (docs/compatibility.md)\n",
	       jstring(k, "release", "?"), n, n == 1 ? "" : "s");
	json_array_foreach(json_object_get(k, "fallbacks"), i, f)
		printf("  %s: %s\n", jstring(f, "component", "?"), jstring(f, "fallback", "?"));
}

static void print_watchers(json_t *arr)
{
	json_t *w;
	size_t i;

	printf("\n%-16s %-12s %10s %9s  %s\n", "WATCHER", "STATE", "COST", "SAMPLES", "LATEST");
	json_array_foreach(arr, i, w)
	{
		json_t *values = json_object_get(w, "values"), *v;
		char cost[32], latest[160] = "";
		const char *k;
		size_t off = 0;
		unsigned shown = 0, total = (unsigned)json_object_size(values);

		snprintf(cost, sizeof(cost), "%.0fus", jnum(w, "sample_us_avg"));
		json_object_foreach(values, k, v)
		{
			int n = snprintf(latest + off, sizeof(latest) - off, "%s%s=%.4g",
					 off ? " " : "", k, json_number_value(v));

			if (n < 0 || off + (size_t)n >= sizeof(latest) - 24)
				break;
			off += (size_t)n;
			shown++;
		}
		if (shown < total)
			off += (size_t)snprintf(latest + off, sizeof(latest) - off, " (+%u more)",
						total - shown);
		if (jint(w, "labeled_series"))
			snprintf(latest + off, sizeof(latest) - off, "%s+%lld labeled series",
				 off ? " " : "", (long long)jint(w, "labeled_series"));
		printf("%-16s %-12s %10s %9lld  %s\n", jstring(w, "name", "?"),
		       jstring(w, "state", "?"), cost, (long long)jint(w, "samples"), latest);
		if (json_object_get(w, "error"))
			printf("%-16s   error: %s\n", "", jstring(w, "error", ""));
		/* opt-in hook modes: what they cost the node, per event */
		if (json_object_get(w, "ns_per_event"))
			printf("%-16s   hooks: %.0f ns per event (%.0f since on), %.3f%% of all "
			       "CPUs, "
			       "%lld events\n",
			       "", jnum(w, "ns_per_event"), jnum(w, "ns_per_event_avg"),
			       jnum(w, "cpu_pct"), (long long)jint(w, "events"));
		if (json_object_get(w, "throttled_reason"))
			printf("%-16s   throttled: %s\n", "", jstring(w, "throttled_reason", ""));
		if (json_object_get(w, "cgroups_found"))
			printf("%-16s   %lld cgroups watched of %lld found, %lld dropped\n", "",
			       (long long)jint(w, "cgroups"), (long long)jint(w, "cgroups_found"),
			       (long long)jint(w, "cgroups_dropped"));
		/* watchers the guard can widen: what a full pass costs, how often it runs */
		if (jint(w, "every") > 1)
			printf("%-16s   full pass %.0fus, every %lld rounds (values held in "
			       "between): %s\n",
			       "", jnum(w, "sample_us_recent"), (long long)jint(w, "every"),
			       jstring(w, "widened_reason", ""));
	}
}

static void print_rules(json_t *arr)
{
	json_t *r;
	size_t i;

	printf("\n%-28s %-10s %-14s %9s %6s  %s\n", "RULE", "STATE", "LAST FIRED", "THIS HOUR",
	       "TOTAL", "LAST ERROR");
	if (!json_array_size(arr))
		printf("(no rules loaded)\n");
	json_array_foreach(arr, i, r)
	{
		char ago[48], state[32];

		ago_text(r, "last_fired_ago_ms", ago, sizeof(ago));
		snprintf(state, sizeof(state), "%s%s", jstring(r, "state", "?"),
			 !json_is_true(json_object_get(r, "enabled"))  ? " (off)"
			 : json_is_true(json_object_get(r, "dry_run")) ? " (dry)"
								       : "");
		printf("%-28s %-10s %-14s %9lld %6lld  %s\n", jstring(r, "name", "?"), state, ago,
		       (long long)jint(r, "fires_last_hour"), (long long)jint(r, "fires_total"),
		       jstring(r, "last_error", "-"));
	}
}

static void print_captures(json_t *c)
{
	json_t *s, *k;
	size_t i;

	printf("\ncaptures: %zu session%s running (max %lld at once), budget %llds per hour\n",
	       json_array_size(json_object_get(c, "sessions")),
	       json_array_size(json_object_get(c, "sessions")) == 1 ? "" : "s",
	       (long long)jint(c, "max_concurrent"), (long long)jint(c, "max_seconds_per_hour"));
	json_array_foreach(json_object_get(c, "sessions"), i, s)
	{
		char ends[32];

		format_duration((uint64_t)jint(s, "ends_in_ms"), ends, sizeof(ends));
		printf("  incident %s  %s%s, ends in %s\n", jstring(s, "incident_id", "?"),
		       jstring(s, "rule", "?"),
		       json_is_true(json_object_get(s, "manual")) ? " (manual)" : "", ends);
	}
	json_array_foreach(json_object_get(c, "running"), i, k)
	{
		char ran[32];

		format_duration((uint64_t)jint(k, "running_ms"), ran, sizeof(ran));
		printf("  %-12s attached for %s\n", jstring(k, "kind", "?"), ran);
	}
	printf("  kinds:");
	json_array_foreach(json_object_get(c, "kinds"), i, k)
	{
		printf("%s %s %s", i ? "," : "", jstring(k, "kind", "?"), jstring(k, "state", "?"));
		if (json_object_get(k, "error"))
			printf(" (%s)", jstring(k, "error", ""));
	}
	printf("\n");
}

static void print_guard(json_t *g)
{
	json_t *h, *wl;
	const char *k;
	size_t i;

	if (!g)
		return;
	if (!json_is_true(json_object_get(g, "enabled"))) {
		printf("guard: off\n");
		return;
	}
	printf("guard: captures %.1f%% of all CPUs (limit %.0f%%), %lld cut short",
	       jnum(g, "capture_cpu_pct"), jnum(g, "capture_cpu_pct_limit"),
	       (long long)jint(g, "captures_cut_short"));
	if (json_object_get(g, "last_cut_reason"))
		printf(" (last: %s)", jstring(g, "last_cut_reason", ""));
	printf("\n");
	if ((wl = json_object_get(g, "watch"))) {
		printf("  watch layer: %.0fus per round, %.3f%% of a CPU (limit %.1fms per "
		       "second), widened %lld time%s",
		       jnum(wl, "us_per_round"), jnum(wl, "cpu_pct"),
		       jnum(wl, "cpu_per_s_limit_ms"), (long long)jint(wl, "widenings"),
		       jint(wl, "widenings") == 1 ? "" : "s");
		json_object_foreach(json_object_get(wl, "every"), k,
				    h) if (json_integer_value(h) > 1)
			printf(", %s every %lld rounds", k, (long long)json_integer_value(h));
		if (json_object_get(wl, "last_widen_reason"))
			printf(" (last: %s)", jstring(wl, "last_widen_reason", ""));
		printf("\n");
	}
	json_array_foreach(json_object_get(g, "hooks"), i, h)
	{
		printf("  hook mode %s: %s, %.3f%% of all CPUs (limit %.0f%%), throttled %lld "
		       "time%s",
		       jstring(h, "name", "?"), jstring(h, "state", "?"), jnum(h, "cpu_pct"),
		       jnum(g, "hook_cpu_pct_limit"), (long long)jint(h, "throttles"),
		       jint(h, "throttles") == 1 ? "" : "s");
		if (json_object_get(h, "estimated_cpu_pct"))
			printf(", would cost %.2f%% now", jnum(h, "estimated_cpu_pct"));
		printf("\n");
	}
}

static void print_incidents(json_t *o, json_t *es)
{
	json_t *last = json_object_get(o, "last");
	char bytes[32];

	cli_human_size((uint64_t)jint(o, "stored_bytes"), bytes, sizeof(bytes));
	printf("\nincidents: %lld written, %lld failed since start; %lld stored (%s) in %s\n",
	       (long long)jint(o, "written"), (long long)jint(o, "failed"),
	       (long long)jint(o, "stored"), bytes, jstring(o, "dir", "?"));
	{
		json_t *st = json_object_get(o, "store");

		if (jint(st, "pending") || jint(st, "written_late") || jint(st, "dropped"))
			printf("  disk full (%s): %lld waiting in memory, %lld written late, %lld "
			       "lost\n",
			       jstring(st, "last_error", "?"), (long long)jint(st, "pending"),
			       (long long)jint(st, "written_late"), (long long)jint(st, "dropped"));
		if (jint(st, "leftovers_removed"))
			printf("  %lld half-written incidents of a crash removed\n",
			       (long long)jint(st, "leftovers_removed"));
	}
	if (last)
		printf("  last: %s (%s) %s%s\n", jstring(last, "id", "?"),
		       jstring(last, "rule", "?"),
		       json_is_true(json_object_get(last, "ok")) ? "" : "FAILED: ",
		       jstring(last, "where", ""));
	printf("elasticsearch: %s", jstring(es, "state", "?"));
	if (json_object_get(es, "url"))
		printf(" (%s -> %s)", jstring(es, "url", "?"), jstring(es, "index", "?"));
	if (json_object_get(es, "spool_depth"))
		printf(", spool %lld incidents", (long long)jint(es, "spool_depth"));
	if (json_object_get(es, "shipped"))
		printf(", %lld shipped, %lld rejected (%lld parked), %lld evicted since start",
		       (long long)jint(es, "shipped"), (long long)jint(es, "rejected"),
		       (long long)jint(es, "parked"), (long long)jint(es, "evicted"));
	if (json_object_get(es, "last_error"))
		printf(", last error: %s", jstring(es, "last_error", ""));
	printf("\n");
}

static void print_dropped(json_t *o, json_t *ctl)
{
	const char *k;
	json_t *v;
	bool any = false;

	printf("dropped:");
	json_object_foreach(o, k, v)
	{
		if (json_integer_value(v)) {
			printf(" %s %lld", k, (long long)json_integer_value(v));
			any = true;
		}
	}
	printf("%s\n", any ? "" : " nothing");
	printf("control: %s, %lld client%s, %lld requests, %lld errors, %lld refused, %lld "
	       "timed out\n",
	       jstring(ctl, "socket", "?"), (long long)jint(ctl, "clients"),
	       jint(ctl, "clients") == 1 ? "" : "s", (long long)jint(ctl, "requests"),
	       (long long)jint(ctl, "errors"),
	       (long long)(jint(ctl, "rejected_peer") + jint(ctl, "rejected_full")),
	       (long long)jint(ctl, "timed_out"));
}

/* The metrics endpoint: where, how protected, and what it answered. */
static void print_prometheus(json_t *p)
{
	json_t *r = json_object_get(p, "refused");
	char bytes[32];

	if (!p)
		return;
	if (!json_is_true(json_object_get(p, "enabled"))) {
		printf("prometheus: off\n");
		return;
	}
	cli_human_size((uint64_t)jint(p, "last_body_bytes"), bytes, sizeof(bytes));
	printf("prometheus: %s://%s/metrics%s, %lld client%s, %lld requests, refused %lld "
	       "(full %lld, rate %lld, auth %lld, timeout %lld, bad %lld), last %s in %lld series",
	       json_is_true(json_object_get(p, "tls")) ? "https" : "http",
	       jstring(p, "listen", "?"),
	       json_is_true(json_object_get(p, "basic_auth")) ? " (basic auth)" : "",
	       (long long)jint(p, "clients"), jint(p, "clients") == 1 ? "" : "s",
	       (long long)jint(p, "requests"),
	       (long long)(jint(r, "full") + jint(r, "rate") + jint(r, "auth") +
			   jint(r, "timeout") + jint(r, "bad")),
	       (long long)jint(r, "full"), (long long)jint(r, "rate"), (long long)jint(r, "auth"),
	       (long long)jint(r, "timeout"), (long long)jint(r, "bad"), bytes,
	       (long long)jint(p, "last_series"));
	if (jint(p, "last_series_skipped"))
		printf(" (%lld left out: metrics.max_response_size)",
		       (long long)jint(p, "last_series_skipped"));
	printf(", %.3fs CPU\n", jnum(p, "cpu_seconds"));
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"socket", required_argument, NULL, 's'},
					     {"config", required_argument, NULL, 'c'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *config = NULL, *socket_arg = NULL;
	struct control_error err;
	char path[4096];
	json_t *st = NULL;
	bool json = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "js:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 's':
			socket_arg = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			cli_print_help(cli_find("status"), stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("status", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("status", "unexpected argument '%s'", argv[optind]);
	rc = ctl_client_socket_path(socket_arg, config, path, sizeof(path));
	if (rc)
		return rc;
	rc = ctl_client_call(path, "status", NULL, STATUS_TIMEOUT_MS, &st, &err);
	if (rc)
		return ctl_client_report("status", rc, &err);
	if (json) {
		json_dumpf_safe(st, stdout, JSON_INDENT(2));
		printf("\n");
	} else {
		/* cgroup paths, process names, errors: tenants choose some of it */
		json_clean_for_terminal(st);
		print_agent(json_object_get(st, "agent"));
		print_kernel(json_object_get(st, "kernel"));
		print_watchers(json_object_get(st, "watchers"));
		print_rules(json_object_get(st, "rules"));
		print_captures(json_object_get(st, "captures"));
		print_guard(json_object_get(st, "guard"));
		print_incidents(json_object_get(st, "incidents"),
				json_object_get(st, "elasticsearch"));
		print_dropped(json_object_get(st, "dropped"), json_object_get(st, "control"));
		print_prometheus(json_object_get(st, "prometheus"));
	}
	json_decref(st);
	return EXIT_OK;
}
