// SPDX-License-Identifier: GPL-2.0-only
/* The metric catalogue is a contract: complete entries, stable first names,
 * unique names, and every metric documented in docs/metrics.md. */
#include "testutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "probes/catalogue.h"

static void test_entries_complete_and_unique(void **s)
{
	(void)s;
	assert_int_equal(metric_count(), M_METRIC_COUNT);
	for (size_t i = 0; i < metric_count(); i++) {
		const struct metric_desc *m = metric_at(i);

		assert_non_null(m->name);
		assert_non_null(m->unit);
		assert_non_null(m->source);
		assert_non_null(m->help);
		assert_non_null(m->cost);
		assert_true(m->scopes != 0);
		assert_true(m->unit[0] && m->source[0] && m->help[0] && m->cost[0]);
		for (const char *p = m->name; *p; p++)
			assert_true(islower((unsigned char)*p) || isdigit((unsigned char)*p) ||
				    *p == '.' || *p == '_');
		assert_int_equal(metric_index(m->name), (int)i);
		/* cgroup metrics are named so, and only they have the cgroup scope */
		assert_int_equal(!strncmp(m->name, "cgroup.", 7), !!(m->scopes & MSCOPE_CGROUP));
		/* an opt-in metric says which key turns it on */
		if (m->opt_in && strncmp(m->name, "watch.", 6))
			assert_non_null(strstr(m->help, "watch."));
	}
	assert_int_equal(metric_index("no.such_metric"), -1);
	assert_null(metric_at(metric_count()));
}

static void test_first_names_stable(void **s)
{
	static const char *const first[] = {"cpu.user_pct",    "cpu.nice_pct",	 "cpu.sys_pct",
					    "cpu.idle_pct",    "cpu.iowait_pct", "cpu.irq_pct",
					    "cpu.softirq_pct", "cpu.steal_pct"};

	(void)s;
	for (size_t i = 0; i < ARRAY_SIZE(first); i++)
		assert_string_equal(metric_at(i)->name, first[i]);
	assert_int_equal(metric_index("cpu.sys_pct"), M_CPU_SYS);
}

static void test_design_names_present(void **s)
{
	/* the names DESIGN.md and the issue promise */
	static const char *const names[] = {
		"sched.dstate_tasks",
		"sched.dstate_max_ms",
		"sched.runq_avg_us",
		"sched.runq_max_us",
		"sched.runq_p50_us",
		"sched.runq_p99_us",
		"psi.cpu_some_pct",
		"psi.mem_some_pct",
		"psi.mem_full_pct",
		"psi.io_some_pct",
		"psi.io_full_pct",
		"mem.available_pct",
		"mem.anon_bytes",
		"mem.anon_growth_pct",
		"mem.direct_reclaim_ms",
		"io.util_pct",
		"io.read_bps",
		"io.write_bps",
		"io.read_iops",
		"io.write_iops",
		"io.await_ms",
		"io.latency_p99_us",
		"cgroup.cpu.usage_pct",
		"cgroup.cpu.sys_pct",
		"cgroup.cpu.throttled_pct",
		"cgroup.dstate_tasks",
		"cgroup.runq_max_us",
		"cgroup.mem.usage_pct",
		"cgroup.mem.growth_pct",
		"cgroup.mem.direct_reclaim_ms",
		"mem.file_bytes",
		"mem.allocstall_per_s",
		"mem.oom_kills",
		"cgroup.cpu.user_pct",
		"cgroup.cpu.throttled_ms",
		"cgroup.mem.oom_kills",
	};

	(void)s;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (metric_index(names[i]) < 0) {
			print_error("missing metric %s\n", names[i]);
			fail();
		}
	}
	assert_true(metric_at((size_t)metric_index("sched.runq_p99_us"))->opt_in);
	assert_true(metric_at((size_t)metric_index("io.latency_p99_us"))->opt_in);
	assert_false(metric_at((size_t)metric_index("sched.runq_max_us"))->opt_in);
}

static void test_every_metric_documented(void **s)
{
	char path[4096], row[256];
	char *text = NULL;
	int missing = 0;

	(void)s;
	snprintf(path, sizeof(path), "%s/docs/metrics.md", getenv("AUTOTRACE_SOURCE_DIR"));
	assert_int_equal(read_file(path, 1 << 20, &text, NULL), 0);
	for (size_t i = 0; i < metric_count(); i++) {
		const struct metric_desc *m = metric_at(i);
		char scope[64];

		/* a table row with the name, unit and scope as the binary has them */
		metric_scope_text(m->scopes, scope, sizeof(scope));
		snprintf(row, sizeof(row), "| `%s` | %s | %s |", m->name, m->unit, scope);
		if (!strstr(text, row)) {
			print_error("docs/metrics.md has no row \"%s\"\n", row);
			missing++;
		}
	}
	free(text);
	assert_int_equal(missing, 0);
}

static void test_scope_text(void **s)
{
	char buf[64];

	(void)s;
	metric_scope_text(MSCOPE_HOST | MSCOPE_CPU, buf, sizeof(buf));
	assert_string_equal(buf, "host, per cpu");
	metric_scope_text(MSCOPE_HOOK, buf, sizeof(buf));
	assert_string_equal(buf, "per hook");
	metric_scope_text(MSCOPE_HOST | MSCOPE_DEVICE | MSCOPE_CGROUP, buf, 12);
	assert_true(strlen(buf) < 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entries_complete_and_unique),
		cmocka_unit_test(test_first_names_stable),
		cmocka_unit_test(test_design_names_present),
		cmocka_unit_test(test_every_metric_documented),
		cmocka_unit_test(test_scope_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
