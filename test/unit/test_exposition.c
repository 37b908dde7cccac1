// SPDX-License-Identifier: GPL-2.0-only
/* The Prometheus exposition: numbers, escaping, both formats, counters from
 * per-interval counts, the agent's health from a status document, the size
 * bound, and content negotiation. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/exposition.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"

static char *render(const struct tsdb *db, json_t *status, const struct expo_counters *c,
		    enum expo_format f, size_t max, struct expo_result *r)
{
	char *text;

	assert_int_equal(expo_render(db, status, c, f, max, 0, r), 0);
	text = malloc(r->len + 1);
	memcpy(text, r->body, r->len);
	text[r->len] = '\0';
	free(r->body);
	return text;
}

static void test_values(void **s)
{
	static const double values[] = {0,
					1,
					-1,
					0.5,
					123.456,
					0.1 + 0.2,
					1e-7,
					6.76937699318e-07,
					1e20,
					-3.25e-3,
					99.999999999999,
					9007199254740992.0,
					123456789012.5,
					0.1234567891234,
					0.000123456789012345,
					4.2e14 + 0.5,
					1.0 / 3};
	char buf[40];
	size_t n;

	(void)s;
	for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
		double back;

		n = expo_format_value(values[i], buf);
		assert_true(n > 0 && n <= 32);
		buf[n] = '\0';
		back = strtod(buf, NULL);
		if (values[i] == 0)
			assert_true(back == 0);
		else if (fabs(back - values[i]) / fabs(values[i]) > 1e-9) {
			print_error("%.17g printed as %s\n", values[i], buf);
			fail();
		}
	}
	n = expo_format_value(0.5, buf);
	buf[n] = '\0';
	assert_string_equal(buf, "0.5");
	n = expo_format_value(0.1 + 0.2, buf);
	buf[n] = '\0';
	assert_string_equal(buf, "0.3");
	n = expo_format_value(-42, buf);
	buf[n] = '\0';
	assert_string_equal(buf, "-42");
	n = expo_format_value(NAN, buf);
	buf[n] = '\0';
	assert_string_equal(buf, "NaN");
	n = expo_format_value(INFINITY, buf);
	buf[n] = '\0';
	assert_string_equal(buf, "+Inf");
	n = expo_format_value(-INFINITY, buf);
	buf[n] = '\0';
	assert_string_equal(buf, "-Inf");
}

static void put_round(struct tsdb *db, uint64_t ms, double sys, double oom, const char *cg)
{
	struct labels cpu0 = {1, {"cpu"}, {"0"}};
	struct labels cgl = {2, {"cgroup", "container_id"}, {cg, "abc"}};

	tsdb_begin_round(db, ms);
	tsdb_put(db, M_CPU_SYS, NULL, sys);
	tsdb_put(db, M_CPU_SYS, &cpu0, sys * 2);
	tsdb_put(db, M_MEM_OOM_KILLS, NULL, oom);
	tsdb_put(db, M_CG_MEM_OOM_KILLS, &cgl, oom);
	tsdb_put(db, M_CG_CPU_USAGE, &cgl, 50);
	tsdb_end_round(db);
}

static void test_watch_layer_both_formats(void **s)
{
	/* a hostile cgroup name: quote, backslash, newline, a byte that is not UTF-8 */
	static const char evil[] = "/evil\"\\\n\xff\xc3\xa9/x";
	struct tsdb *db = NULL;
	struct expo_counters *c = NULL;
	struct expo_result r;
	char *t;

	(void)s;
	assert_int_equal(tsdb_new(&db, metric_count(), 64, 4), 0);
	assert_int_equal(expo_counters_new(&c, 64), 0);
	put_round(db, 1000, 12.5, 1, evil);
	expo_counters_round(c, db);
	put_round(db, 2000, 12.5, 2, evil);
	expo_counters_round(c, db);

	t = render(db, NULL, c, EXPO_TEXT, 1 << 20, &r);
	assert_non_null(strstr(t, "# TYPE autotrace_cpu_sys_ratio gauge\n"));
	assert_non_null(strstr(t, "\nautotrace_cpu_sys_ratio 0.125\n"));
	assert_non_null(strstr(t, "\nautotrace_cpu_sys_ratio{cpu=\"0\"} 0.25\n"));
	/* the rules' name and unit in HELP */
	assert_non_null(strstr(t, "# HELP autotrace_cpu_sys_ratio time in the kernel (system "
				  "calls, faults) (rules: cpu.sys_pct, in %)\n"));
	/* per-interval counts summed: 1 + 2 */
	assert_non_null(strstr(t, "# TYPE autotrace_mem_oom_kills_total counter\n"));
	assert_non_null(strstr(t, "\nautotrace_mem_oom_kills_total 3\n"));
	assert_non_null(strstr(t, "autotrace_cgroup_mem_oom_kills_total{cgroup=\"/evil\\\"\\\\\\n"
				  "\xef\xbf\xbd\xc3\xa9/x\",container_id=\"abc\"} 3\n"));
	assert_null(strstr(t, "# UNIT"));
	assert_null(strstr(t, "# EOF"));
	free(t);

	t = render(db, NULL, c, EXPO_OPENMETRICS, 1 << 20, &r);
	/* OpenMetrics names counter families without _total, and has units */
	assert_non_null(strstr(t, "# TYPE autotrace_mem_oom_kills counter\n"));
	assert_non_null(strstr(t, "\nautotrace_mem_oom_kills_total 3\n"));
	assert_non_null(strstr(t, "# UNIT autotrace_cpu_sys_ratio ratio\n"));
	assert_non_null(strstr(t, "\nautotrace_cgroup_cpu_usage_ratio{cgroup="));
	assert_int_equal(strcmp(t + strlen(t) - 6, "# EOF\n"), 0);
	assert_int_equal(r.series, 5);
	assert_int_equal(r.skipped, 0);
	free(t);

	/* without counters (or before any round) a counter shows what it has: 0 */
	t = render(db, NULL, NULL, EXPO_TEXT, 1 << 20, &r);
	assert_non_null(strstr(t, "\nautotrace_mem_oom_kills_total 0\n"));
	free(t);
	expo_counters_free(&c);
	tsdb_free(&db);
}

static void test_size_bound(void **s)
{
	struct tsdb *db = NULL;
	struct expo_result r, full;
	char *t, *all;

	(void)s;
	assert_int_equal(tsdb_new(&db, metric_count(), 4096, 4), 0);
	tsdb_begin_round(db, 1000);
	tsdb_put(db, M_CPU_IDLE, NULL, 90);
	for (int i = 0; i < 500; i++) {
		char cg[64];
		struct labels l = {1, {"cgroup"}, {cg}};

		snprintf(cg, sizeof(cg), "/cgroup-number-%04d", i);
		tsdb_put(db, M_CG_MEM_USAGE_BYTES, &l, 1e6 + i);
	}
	tsdb_put(db, M_WATCH_HOOK_CPU, &(struct labels){1, {"hook"}, {"runqlat"}}, 0.5);
	tsdb_end_round(db);

	all = render(db, NULL, NULL, EXPO_OPENMETRICS, 1 << 20, &full);
	assert_int_equal(full.series, 502);
	/* room for the small families but not the cgroup one: it goes whole */
	t = render(db, NULL, NULL, EXPO_OPENMETRICS, 4096, &r);
	assert_true(r.len <= 4096);
	assert_int_equal(r.skipped, 500);
	assert_int_equal(r.series, 2);
	assert_non_null(strstr(t, "autotrace_cpu_idle_ratio 0.9\n"));
	assert_non_null(strstr(t, "autotrace_watch_hook_cpu_ratio{hook=\"runqlat\"} 0.005\n"));
	assert_null(strstr(t, "autotrace_cgroup_mem_usage_bytes"));
	assert_int_equal(strcmp(t + strlen(t) - 6, "# EOF\n"), 0);
	free(t);
	free(all);
	tsdb_free(&db);
}

static void test_health_from_status(void **s)
{
	json_error_t e;
	json_t *st = json_loads(
		"{\"agent\": {\"version\": \"1.2.3\", \"uptime_ms\": 1500, \"cpu_seconds\": 0.25,"
		"  \"dry_run\": false},"
		" \"watchers\": [{\"name\": \"cpustat\", \"state\": \"ok\", \"samples\": 10,"
		"   \"sample_us_total\": 500, \"sample_us_max\": 90},"
		"  {\"name\": \"cgroups\", \"state\": \"degraded\", \"samples\": 9,"
		"   \"cgroups\": 3, \"cgroups_dropped\": 7}],"
		" \"rules\": [{\"name\": \"r\\\"1\", \"state\": \"firing\", \"fires_total\": 4,"
		"   \"enabled\": true, \"errors\": 1}],"
		" \"captures\": {\"running\": [{}, {}], \"sessions\": [{}],"
		"   \"refused_busy\": 5, \"refused_budget\": 6, \"budget_left_seconds\": 570},"
		" \"incidents\": {\"written\": 2, \"failed\": 0},"
		" \"elasticsearch\": {\"enabled\": false, \"state\": \"disabled\"},"
		" \"prometheus\": {\"enabled\": true, \"refused\": {\"full\": 1, \"auth\": 2}}}",
		0, &e);
	struct expo_result r;
	char *t;

	(void)s;
	assert_non_null(st);
	t = render(NULL, st, NULL, EXPO_OPENMETRICS, 1 << 20, &r);
	assert_non_null(
		strstr(t, "# TYPE autotrace_build info\nautotrace_build_info{version=\"1.2.3\"} "
			  "1\n"));
	assert_non_null(strstr(t, "\nautotrace_agent_uptime_seconds 1.5\n"));
	assert_non_null(strstr(t, "# UNIT autotrace_agent_cpu_seconds seconds\n"
				  "autotrace_agent_cpu_seconds_total 0.25\n"));
	assert_non_null(strstr(t, "\nautotrace_agent_dry_run 0\n"));
	/* no last_reload_error: the reload did not fail */
	assert_non_null(strstr(t, "\nautotrace_agent_reload_failed 0\n"));
	assert_non_null(strstr(t, "autotrace_watcher_state{watcher=\"cgroups\",state=\"degraded\"} "
				  "1\n"));
	assert_non_null(strstr(t, "autotrace_watcher_state{watcher=\"cgroups\",state=\"ok\"} 0\n"));
	assert_non_null(strstr(t, "autotrace_watcher_sample_seconds_total{watcher=\"cpustat\"} "
				  "0.0005\n"));
	assert_non_null(strstr(t, "\nautotrace_cgroups_dropped 7\n"));
	assert_non_null(strstr(t, "autotrace_rule_state{rule=\"r\\\"1\",state=\"firing\"} 1\n"));
	assert_non_null(strstr(t, "autotrace_rule_fires_total{rule=\"r\\\"1\"} 4\n"));
	assert_non_null(strstr(t, "autotrace_rule_enabled{rule=\"r\\\"1\"} 1\n"));
	assert_non_null(strstr(t, "\nautotrace_captures_running 2\n"));
	assert_non_null(strstr(t, "\nautotrace_capture_sessions_running 1\n"));
	/* two entries, one family: one TYPE line */
	assert_non_null(strstr(t, "# TYPE autotrace_captures_refused counter\n"
				  "autotrace_captures_refused_total{reason=\"busy\"} 5\n"
				  "autotrace_captures_refused_total{reason=\"budget\"} 6\n"));
	assert_non_null(strstr(t, "\nautotrace_incidents_written_total 2\n"));
	assert_non_null(strstr(t, "autotrace_metrics_http_refused_total{reason=\"full\"} 1\n"));
	assert_non_null(strstr(t, "autotrace_metrics_http_refused_total{reason=\"auth\"} 2\n"));
	/* Elasticsearch disabled: it says so, and has no spool */
	assert_non_null(strstr(t, "autotrace_es_state{state=\"disabled\"} 1\n"));
	assert_non_null(strstr(t, "autotrace_es_state{state=\"ok\"} 0\n"));
	assert_null(strstr(t, "autotrace_es_spool_depth "));
	free(t);
	json_decref(st);
}

static void test_negotiation(void **s)
{
	(void)s;
	assert_int_equal(expo_negotiate(NULL), EXPO_TEXT);
	assert_int_equal(expo_negotiate(""), EXPO_TEXT);
	assert_int_equal(expo_negotiate("*/*"), EXPO_TEXT);
	/* what Prometheus 2.x sends */
	assert_int_equal(expo_negotiate("application/openmetrics-text;version=1.0.0,"
					"application/openmetrics-text;version=0.0.1;q=0.75,"
					"text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
			 EXPO_OPENMETRICS);
	assert_int_equal(expo_negotiate("application/openmetrics-text; version=1.0.0"),
			 EXPO_OPENMETRICS);
	assert_int_equal(expo_negotiate("application/openmetrics-text"), EXPO_OPENMETRICS);
	/* a version we do not write is not taken */
	assert_int_equal(expo_negotiate("application/openmetrics-text;version=0.0.1"), EXPO_TEXT);
	assert_int_equal(expo_negotiate("text/plain;version=0.0.4;q=0.9,"
					"application/openmetrics-text;version=1.0.0;q=0.5"),
			 EXPO_TEXT);
	assert_int_equal(expo_negotiate("application/openmetrics-text;q=0"), EXPO_TEXT);
	assert_int_equal(expo_negotiate("application/json"), EXPO_TEXT);
	assert_int_equal(expo_negotiate(" APPLICATION/OpenMetrics-Text ; Version=\"1.0.0\" ; "
					"q=1"),
			 EXPO_OPENMETRICS);
	assert_string_equal(expo_content_type(EXPO_OPENMETRICS),
			    "application/openmetrics-text; version=1.0.0; charset=utf-8");
	assert_string_equal(expo_content_type(EXPO_TEXT),
			    "text/plain; version=0.0.4; charset=utf-8");
}

static void test_counters_forget_gone_series(void **s)
{
	struct tsdb *db = NULL;
	struct expo_counters *c = NULL;

	(void)s;
	/* history of 2 rounds: a series silent that long is forgotten */
	assert_int_equal(tsdb_new(&db, metric_count(), 64, 2), 0);
	assert_int_equal(expo_counters_new(&c, 64), 0);
	put_round(db, 1000, 1, 1, "/gone");
	expo_counters_round(c, db);
	assert_int_equal(expo_counters_count(c), 2);
	for (int i = 0; i < 200; i++) {
		tsdb_begin_round(db, 2000 + (uint64_t)i);
		tsdb_put(db, M_CPU_SYS, NULL, 1);
		tsdb_end_round(db);
		expo_counters_round(c, db);
	}
	assert_int_equal(expo_counters_count(c), 0);
	expo_counters_free(&c);
	tsdb_free(&db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_watch_layer_both_formats),
		cmocka_unit_test(test_size_bound),
		cmocka_unit_test(test_health_from_status),
		cmocka_unit_test(test_negotiation),
		cmocka_unit_test(test_counters_forget_gone_series),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
