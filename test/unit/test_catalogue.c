// SPDX-License-Identifier: GPL-2.0-only
/* The metric catalogue is a contract: complete entries, stable first names,
 * unique names, and every metric documented in docs/metrics.md. */
#include "testutil.h"

#include <ctype.h>
#include <stdbool.h>
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

static void test_contract_names_present(void **s)
{
	/* the names docs/metrics.md promises: stable, none renamed without a migration note */
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

static bool valid_name(const char *n)
{
	if (!*n || !(isalpha((unsigned char)*n) || *n == '_'))
		return false;
	for (; *n; n++)
		if (!isalnum((unsigned char)*n) && *n != '_')
			return false;
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/* Prometheus' naming rules, and the ones docs/prometheus.md promises. */
static void check_prom_name(const char *name, enum prom_type type, const char *unit)
{
	char fam[160];

	if (!valid_name(name) || strncmp(name, "autotrace_", 10)) {
		print_error("%s: not an autotrace_ metric name\n", name);
		fail();
	}
	snprintf(fam, sizeof(fam), "%s", name);
	if (type == PROM_COUNTER) {
		assert_true(ends_with(name, "_total"));
		fam[strlen(fam) - 6] = '\0';
	} else if (type == PROM_INFO) {
		assert_true(ends_with(name, "_info"));
		fam[strlen(fam) - 5] = '\0';
	} else {
		/* suffixes OpenMetrics reserves for other types */
		static const char *const reserved[] = {"_total",  "_created", "_count",	 "_sum",
						       "_bucket", "_info",    "_gcount", "_gsum"};

		for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
			if (ends_with(name, reserved[i])) {
				print_error("gauge %s ends in %s\n", name, reserved[i]);
				fail();
			}
	}
	/* OpenMetrics: a family with a unit ends in _<unit> */
	if (unit[0]) {
		char suffix[32];

		snprintf(suffix, sizeof(suffix), "_%s", unit);
		if (!ends_with(fam, suffix)) {
			print_error("%s: unit %s is not its suffix\n", name, unit);
			fail();
		}
		assert_true(!strcmp(unit, "seconds") || !strcmp(unit, "bytes") ||
			    !strcmp(unit, "ratio"));
	}
	/* no non-base units */
	assert_null(strstr(name, "_milliseconds"));
	assert_null(strstr(name, "_microseconds"));
	assert_null(strstr(name, "_percent"));
	assert_null(strstr(name, "_pct"));
}

static void test_prometheus_names(void **s)
{
	(void)s;
	for (size_t i = 0; i < metric_count(); i++) {
		const struct metric_desc *m = metric_at(i);
		const struct metric_prom *p = metric_prom_at(i);

		check_prom_name(p->name, p->type, p->unit);
		/* base units: percentages are ratios, ms and us are seconds */
		if (!strcmp(m->unit, "%")) {
			assert_true(p->scale == 0.01);
			assert_string_equal(p->unit, "ratio");
		} else if (!strcmp(m->unit, "ms")) {
			assert_true(p->scale == 1e-3);
			assert_string_equal(p->unit, "seconds");
		} else if (!strcmp(m->unit, "us")) {
			assert_true(p->scale == 1e-6);
			assert_string_equal(p->unit, "seconds");
		} else if (!strcmp(m->unit, "ms/s")) {
			assert_true(p->scale == 1e-3);
			assert_true(ends_with(p->name, "_seconds_per_second"));
		} else if (!strcmp(m->unit, "ns")) {
			assert_true(p->scale == 1e-9);
		} else {
			assert_true(p->scale == 1);
		}
		if (!strcmp(m->unit, "bytes"))
			assert_true(ends_with(p->name, "_bytes"));
		if (strstr(m->unit, "/s"))
			assert_true(ends_with(p->name, "_per_second"));
		/* per-interval counts are counters (summed), nothing else is */
		assert_int_equal(p->type == PROM_COUNTER, !strcmp(m->unit, "kills"));
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(p->name, metric_prom_at(j)->name);
	}
	assert_null(metric_prom_at(metric_count()));
	assert_string_equal(metric_prom_at(M_CPU_SYS)->name, "autotrace_cpu_sys_ratio");
}

static void test_agent_metrics(void **s)
{
	(void)s;
	for (size_t i = 0; i < agent_metric_count(); i++) {
		const struct agent_metric *a = agent_metric_at(i);
		bool walks = strstr(a->status, "[]") || strstr(a->status, "{}");

		check_prom_name(a->name, a->type, a->unit);
		assert_true(a->help[0] && a->status[0]);
		assert_null(strpbrk(a->help, "\"\\\n"));
		assert_int_equal(walks, a->label != NULL);
		if (strstr(a->status, "[]"))
			assert_non_null(a->label_from);
		if (a->label)
			assert_true(valid_name(a->label));
		assert_int_equal(a->value == AV_STATE, a->states != NULL);
		assert_int_equal(a->value == AV_INFO, a->type == PROM_INFO);
		if (a->value == AV_INFO)
			assert_true(valid_name(a->info_label));
		if (a->fixed_label)
			assert_non_null(strchr(a->fixed_label, '='));
		/* a name again is the same family: right after, same type and help */
		for (size_t j = 0; j < i; j++) {
			const struct agent_metric *b = agent_metric_at(j);

			if (strcmp(a->name, b->name))
				continue;
			assert_int_equal(j, i - 1);
			assert_int_equal(a->type, b->type);
			assert_string_equal(a->help, b->help);
			assert_non_null(a->fixed_label);
		}
		for (size_t j = 0; j < metric_count(); j++)
			assert_string_not_equal(a->name, metric_prom_at(j)->name);
	}
	assert_null(agent_metric_at(agent_metric_count()));
}

static void test_every_prometheus_name_documented(void **s)
{
	char path[4096], row[256];
	char *text = NULL;
	int missing = 0;

	(void)s;
	snprintf(path, sizeof(path), "%s/docs/prometheus.md", getenv("AUTOTRACE_SOURCE_DIR"));
	assert_int_equal(read_file(path, 1 << 20, &text, NULL), 0);
	for (size_t i = 0; i < metric_count(); i++) {
		snprintf(row, sizeof(row), "| `%s` | `%s` |", metric_prom_at(i)->name,
			 metric_at(i)->name);
		if (!strstr(text, row)) {
			print_error("docs/prometheus.md has no row \"%s\"\n", row);
			missing++;
		}
	}
	for (size_t i = 0; i < agent_metric_count(); i++) {
		snprintf(row, sizeof(row), "| `%s` |", agent_metric_at(i)->name);
		if (!strstr(text, row)) {
			print_error("docs/prometheus.md has no row \"%s\"\n", row);
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
		cmocka_unit_test(test_contract_names_present),
		cmocka_unit_test(test_every_metric_documented),
		cmocka_unit_test(test_scope_text),
		cmocka_unit_test(test_prometheus_names),
		cmocka_unit_test(test_agent_metrics),
		cmocka_unit_test(test_every_prometheus_name_documented),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
