// SPDX-License-Identifier: GPL-2.0-only
/* The /proc/stat watcher (CPU percentages, context switches, forks, runnable and
 * blocked tasks) and /proc/loadavg against crafted, including hostile, contents. */
#include "testutil.h"
#include "watchtest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/tsdb.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"

extern const struct watcher_ops cpustat_watcher;

static const char *procfs;
static void *state;
static struct tsdb *db;
static struct agent_config cfg;

static int setup(void **s)
{
	struct watcher_env env = {.cfg = &cfg};

	config_defaults(&cfg);
	procfs = test_tmpdir(0);
	test_write_file(procfs, "stat", "cpu  0 0 0 0 0 0 0 0 0 0\n", 0600);
	env.procfs = procfs;
	assert_int_equal(cpustat_watcher.open(&state, &env), 0);
	assert_int_equal(tsdb_new(&db, metric_count(), 64, 8), 0);
	return 0;
}

static int teardown(void **s)
{
	cpustat_watcher.close(state);
	tsdb_free(&db);
	test_rmtree(procfs);
	return 0;
}

/* Rewrites /proc/stat in place (the watcher keeps its fd open and preads). */
static int sample(const char *text)
{
	FILE *f;
	char path[256];
	int err;

	snprintf(path, sizeof(path), "%s/stat", procfs);
	f = fopen(path, "r+");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 0), 0);
	fputs(text, f);
	fclose(f);
	tsdb_begin_round(db, tsdb_rounds(db) + 1);
	err = cpustat_watcher.sample(state, db);
	tsdb_end_round(db);
	return err;
}

static double host(unsigned metric)
{
	double v = -1;
	struct tsdb_series *s = tsdb_find(db, metric, NULL);

	if (!s || !tsdb_value(db, s, 0, &v))
		return -1;
	return v;
}

static void test_percentages_from_deltas(void **s)
{
	assert_int_equal(sample("cpu  100 0 100 800 0 0 0 0 0 0\n"
				"cpu0 50 0 50 400 0 0 0 0 0 0\n"
				"cpu1 50 0 50 400 0 0 0 0 0 0\nintr 1 2 3\n"),
			 0);
	/* first sample only primes */
	assert_true(host(M_CPU_SYS) < 0);
	assert_int_equal(sample("cpu  130 0 160 910 0 0 0 0 0 0\n"
				"cpu0 80 0 110 410 0 0 0 0 0 0\n"
				"cpu1 50 0 50 500 0 0 0 0 0 0\nintr 1 2 3\n"),
			 0);
	assert_true(host(M_CPU_USER) == 15.0);
	assert_true(host(M_CPU_SYS) == 30.0);
	assert_true(host(M_CPU_IDLE) == 55.0);
	{
		struct labels l = {.n = 1, .k = {"cpu"}, .v = {"0"}};
		double v;

		assert_true(tsdb_value(db, tsdb_find(db, M_CPU_SYS, &l), 0, &v));
		assert_true(v == 60.0);
	}
}

static void test_hostile_contents(void **s)
{
	/* garbage lines, an absurd cpu number, negative and overflowing fields */
	assert_int_equal(sample("cpu  200 0 200 1000 0 0 0 0\n"
				"cpu99999999 1 1 1 1\ncpuX 1 2 3\ncpu0 -5 1 1 1\n"
				"cpu1 99999999999999999999999 1 1 1\nbogus line\n"),
			 0);
	/* counters going backwards (cpu hot-unplug): no negative percentages */
	assert_int_equal(sample("cpu  100 0 100 500 0 0 0 0\n"), 0);
	assert_true(host(M_CPU_SYS) < 0);
	/* no host line at all is a protocol error, not a crash */
	assert_int_equal(sample("intr 1\n"), -EPROTO);
	assert_int_equal(sample(""), -EPROTO);
	/* old kernels with only four columns */
	assert_int_equal(sample("cpu  10 0 10 80\n"), 0);
	assert_int_equal(sample("cpu  20 0 20 160\n"), 0);
	assert_true(host(M_CPU_IDLE) == 80.0);
	assert_true(host(M_CPU_STEAL) == 0.0);
}

/* The scheduler counters of /proc/stat and the load average, on the shared crafted tree. */
static void test_stat_extras_and_loadavg(void **s)
{
	(void)s;
	watch_put("proc/stat", "cpu  1 0 1 8 0 0 0 0\nctxt 1000\nprocesses 50\n"
			       "procs_running 3\nprocs_blocked 1\n");
	watch_put("proc/loadavg", "1.50 0.70 0.20 2/300 4242\n");
	assert_int_equal(watch_open(&cpustat_watcher, NULL), 0);
	assert_int_equal(watch_round(), 0);
	/* gauges from the first round, rates from the second */
	assert_near(WATCH_HOST(M_SCHED_PROCS_RUNNING), 3);
	assert_near(WATCH_HOST(M_SCHED_PROCS_BLOCKED), 1);
	assert_near(WATCH_HOST(M_SCHED_LOAD1), 1.5);
	assert_true(isnan(WATCH_HOST(M_SCHED_CTXSW)));
	watch_put("proc/stat", "cpu  2 0 2 16 0 0 0 0\nintr 5 6 7\nctxt 3500\nprocesses 60\n"
			       "procs_running 4\nprocs_blocked 0\n");
	assert_int_equal(watch_round(), 0);
	assert_near(WATCH_HOST(M_SCHED_CTXSW), 2500);
	assert_near(WATCH_HOST(M_SCHED_FORKS), 10);
	/* hostile: counters going backwards, garbage, a NaN load */
	watch_put("proc/stat", "cpu  3 0 3 24 0 0 0 0\nctxt 10\nprocesses x\nprocs_running -1\n");
	watch_put("proc/loadavg", "nan 0 0\n");
	assert_int_equal(watch_round(), 0);
	assert_near(WATCH_HOST(M_SCHED_CTXSW), 0);
	assert_true(isnan(WATCH_HOST(M_SCHED_FORKS)));
	assert_true(isnan(WATCH_HOST(M_SCHED_PROCS_RUNNING)));
	assert_true(isnan(WATCH_HOST(M_SCHED_LOAD1)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_percentages_from_deltas),
		cmocka_unit_test(test_hostile_contents),
		cmocka_unit_test_setup_teardown(test_stat_extras_and_loadavg, watch_setup,
						watch_teardown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
