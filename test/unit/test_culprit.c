// SPDX-License-Identifier: GPL-2.0-only
/* The incident's culprit comes from the capture that explains the tripped
 * metric, and the summary says only what the numbers say. */
#include "testutil.h"

#include <string.h>

#include "agent/culprit.h"

static json_t *capture(const char *kind, const char *measure, const char *program, double pct,
		       unsigned nprocs)
{
	json_t *prog = json_pack("{s:s,s:s,s:i,s:[i,i],s:f,s:f,s:s}", "program", program, "comm",
				 program, "processes", nprocs, "pids", 10, 11, measure, 500.0,
				 "pct", pct, "cgroup", "/");

	return json_pack("{s:s,s:s,s:I,s:{s:s,s:f,s:i,s:[o]}}", "kind", kind, "status", "ok",
			 "lost_events", (json_int_t)0, "consumers", "measure", measure, "total",
			 1000.0, "processes_seen", 9, "programs", prog);
}

static json_t *incident(const char *metric, json_t *caps)
{
	return json_pack("{s:{s:s},s:{s:s,s:s},s:{s:s,s:f,s:s},s:o}", "incident", "status",
			 "complete", "rule", "name", "r1", "condition", "m above 1 for 1s",
			 "trigger", "metric", metric, "value", 42.5, "scope", "host", "captures",
			 caps);
}

static void test_explaining_kinds(void **state)
{
	assert_string_equal(culprit_explaining_kinds("cpu.sys_pct")[0], "profile");
	assert_string_equal(culprit_explaining_kinds("cpu.iowait_pct")[0], "iotrace");
	assert_string_equal(culprit_explaining_kinds("cgroup.cpu.usage_pct")[0], "profile");
	assert_string_equal(culprit_explaining_kinds("psi.io_full_pct")[0], "iotrace");
	assert_string_equal(culprit_explaining_kinds("cgroup.psi.io_some_pct")[0], "iotrace");
	assert_string_equal(culprit_explaining_kinds("sched.dstate_tasks")[0], "dstate");
	assert_string_equal(culprit_explaining_kinds("sched.runq_max_us")[0], "runq");
	assert_string_equal(culprit_explaining_kinds("mem.anon_growth_pct")[0], "memtrace");
	assert_null(culprit_explaining_kinds("watch.hook_cpu_pct")[0]);
	assert_null(culprit_explaining_kinds(NULL)[0]);
}

/* An IO rule: iotrace answers, though offcpu ran first. */
static void test_culprit_from_explaining_capture(void **state)
{
	json_t *doc = incident("psi.io_some_pct",
			       json_pack("[o,o]", capture("offcpu", "blocked_us", "jbd2", 70, 1),
					 capture("iotrace", "io_us", "writer", 60, 3)));
	json_t *c;
	const char *s;

	incident_set_culprits(doc);
	c = json_object_get(doc, "culprit");
	assert_string_equal(json_string_value(json_object_get(c, "program")), "writer");
	assert_string_equal(json_string_value(json_object_get(c, "capture")), "iotrace");
	assert_string_equal(json_string_value(json_object_get(c, "measure")), "io_us");
	assert_int_equal(json_integer_value(json_object_get(c, "pid")), 10);
	assert_true(json_number_value(json_object_get(c, "value")) == 500.0);
	assert_int_equal(json_array_size(json_object_get(doc, "culprits")), 1);

	incident_set_summary(doc);
	s = json_string_value(json_object_get(doc, "summary"));
	assert_non_null(s);
	assert_non_null(strstr(s, "r1 fired: psi.io_some_pct was 42.5 (m above 1 for 1s)."));
	assert_non_null(strstr(s, "Culprit: writer, 3 processes (pids 10, 11)"));
	assert_non_null(strstr(s, "with 60.0% of the IO time"));
	assert_non_null(strstr(s, "recorded by iotrace (0.5 ms of 1.0 ms)"));
	assert_non_null(strstr(s, "Status complete"));
	assert_non_null(strstr(s, "nothing lost"));
	json_decref(doc);
}

/* A CPU rule without a profile: the first capture that ranked anyone. */
static void test_fallback_and_nobody(void **state)
{
	json_t *doc = incident("cpu.sys_pct",
			       json_pack("[o]", capture("dstate", "stuck_ms", "stuck", 100, 1)));

	incident_set_culprits(doc);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(doc, "culprit"), "program")),
		"stuck");
	json_decref(doc);

	doc = incident("cpu.sys_pct", json_array());
	incident_set_culprits(doc);
	assert_null(json_object_get(doc, "culprit"));
	incident_set_summary(doc);
	assert_non_null(strstr(json_string_value(json_object_get(doc, "summary")),
			       "No capture ranked a process."));
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_explaining_kinds),
		cmocka_unit_test(test_culprit_from_explaining_capture),
		cmocka_unit_test(test_fallback_and_nobody),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
