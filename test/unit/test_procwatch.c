// SPDX-License-Identifier: GPL-2.0-only
/* The procfs and sysfs watchers (/proc/stat extras, loadavg, schedstat, PSI,
 * meminfo + vmstat, diskstats) against crafted trees, hostile contents
 * included, on an injected clock. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/config.h"
#include "base/tsdb.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "probes/watchutil.h"

extern const struct watcher_ops cpustat_watcher;
extern const struct watcher_ops schedstat_watcher;
extern const struct watcher_ops psi_watcher;
extern const struct watcher_ops memstat_watcher;
extern const struct watcher_ops diskstats_watcher;

static uint64_t fake_ns;

static uint64_t fake_clock(void)
{
	return fake_ns;
}

struct fixture {
	const char *root;
	char procfs[256], sysfs[256];
	struct agent_config cfg;
	struct tsdb *db;
	const struct watcher_ops *ops;
	void *state;
	char why[256];
};

static struct fixture fx;

/* Writes root/rel, creating directories on the way. */
static void put_file(const char *rel, const char *text)
{
	char path[512], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fx.root, rel);
	for (slash = strchr(path + strlen(fx.root) + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	/* rewrite in place: the watcher keeps the file open and preads it */
	f = fopen(path, "r+");
	if (!f)
		f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 0), 0);
	fputs(text, f);
	fclose(f);
}

static int setup(void **s)
{
	(void)s;
	memset(&fx, 0, sizeof(fx));
	fx.root = test_tmpdir(0);
	snprintf(fx.procfs, sizeof(fx.procfs), "%s/proc", fx.root);
	snprintf(fx.sysfs, sizeof(fx.sysfs), "%s/sys", fx.root);
	mkdir(fx.procfs, 0700);
	mkdir(fx.sysfs, 0700);
	config_defaults(&fx.cfg);
	assert_int_equal(tsdb_new(&fx.db, metric_count(), 256, 16), 0);
	fake_ns = 1000000000ull;
	watch_clock_override(fake_clock);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	if (fx.state && fx.ops)
		fx.ops->close(fx.state);
	tsdb_free(&fx.db);
	test_rmtree(fx.root);
	watch_clock_override(NULL);
	return 0;
}

static int open_watcher(const struct watcher_ops *ops)
{
	struct watcher_env env = {.cfg = &fx.cfg,
				  .procfs = fx.procfs,
				  .sysfs = fx.sysfs,
				  .why = fx.why,
				  .why_len = sizeof(fx.why)};
	int err = ops->open(&fx.state, &env);

	fx.ops = err ? NULL : ops;
	if (err)
		fx.state = NULL;
	return err;
}

/* One round one second after the previous one. */
static int round_(void)
{
	int err;

	fake_ns += 1000000000ull;
	tsdb_begin_round(fx.db, tsdb_rounds(fx.db) + 1);
	err = fx.ops->sample(fx.state, fx.db);
	tsdb_end_round(fx.db);
	return err;
}

static double value(unsigned metric, const char *k, const char *v)
{
	struct labels l = {.n = k ? 1 : 0, .k = {k}, .v = {v}};
	struct tsdb_series *s = tsdb_find(fx.db, metric, k ? &l : NULL);
	double out;

	if (!s || !tsdb_value(fx.db, s, 0, &out))
		return NAN;
	return out;
}

#define HOST(m) value(m, NULL, NULL)

static void assert_near(double got, double want)
{
	if (!(fabs(got - want) <= 1e-6 * fmax(1.0, fabs(want)))) {
		print_error("got %.9g, want %.9g\n", got, want);
		fail();
	}
}

static void test_stat_extras_and_loadavg(void **s)
{
	(void)s;
	put_file("proc/stat", "cpu  1 0 1 8 0 0 0 0\nctxt 1000\nprocesses 50\n"
			      "procs_running 3\nprocs_blocked 1\n");
	put_file("proc/loadavg", "1.50 0.70 0.20 2/300 4242\n");
	assert_int_equal(open_watcher(&cpustat_watcher), 0);
	assert_int_equal(round_(), 0);
	/* gauges from the first round, rates from the second */
	assert_near(HOST(M_SCHED_PROCS_RUNNING), 3);
	assert_near(HOST(M_SCHED_PROCS_BLOCKED), 1);
	assert_near(HOST(M_SCHED_LOAD1), 1.5);
	assert_true(isnan(HOST(M_SCHED_CTXSW)));
	put_file("proc/stat", "cpu  2 0 2 16 0 0 0 0\nintr 5 6 7\nctxt 3500\nprocesses 60\n"
			      "procs_running 4\nprocs_blocked 0\n");
	assert_int_equal(round_(), 0);
	assert_near(HOST(M_SCHED_CTXSW), 2500);
	assert_near(HOST(M_SCHED_FORKS), 10);
	/* hostile: counters going backwards, garbage, a NaN load */
	put_file("proc/stat", "cpu  3 0 3 24 0 0 0 0\nctxt 10\nprocesses x\nprocs_running -1\n");
	put_file("proc/loadavg", "nan 0 0\n");
	assert_int_equal(round_(), 0);
	assert_near(HOST(M_SCHED_CTXSW), 0);
	assert_true(isnan(HOST(M_SCHED_FORKS)));
	assert_true(isnan(HOST(M_SCHED_PROCS_RUNNING)));
	assert_true(isnan(HOST(M_SCHED_LOAD1)));
}

static void test_schedstat(void **s)
{
	(void)s;
	/* absent (CONFIG_SCHEDSTATS off): unavailable with a reason */
	assert_int_equal(open_watcher(&schedstat_watcher), -ENOENT);
	assert_non_null(strstr(fx.why, "CONFIG_SCHEDSTATS"));
	put_file("proc/schedstat", "version 15\ntimestamp 100\n"
				   "cpu0 0 0 10 5 7 3 900000000 100000000 50\n"
				   "domain0 3 1 2 3\n"
				   "cpu1 0 0 10 5 7 3 900000000 0 50\n");
	assert_int_equal(open_watcher(&schedstat_watcher), 0);
	assert_int_equal(round_(), 0);
	assert_true(isnan(HOST(M_SCHED_RUNQ_WAIT)));
	put_file("proc/schedstat", "version 15\ntimestamp 350\n"
				   "cpu0 0 0 10 5 7 3 900000000 600000000 90\n"
				   "cpu1 0 0 10 5 7 3 900000000 1500000000 70\n");
	assert_int_equal(round_(), 0);
	assert_near(value(M_SCHED_RUNQ_WAIT, "cpu", "0"), 50);
	assert_near(value(M_SCHED_RUNQ_WAIT, "cpu", "1"), 150);
	assert_near(HOST(M_SCHED_RUNQ_WAIT), 200);
	/* hostile: no version line, short and absurd cpu lines */
	put_file("proc/schedstat", "cpu0 1 2\ncpu99999999 0 0 0 0 0 0 0 0 0\n");
	assert_int_equal(round_(), -EPROTO);
	put_file("proc/schedstat", "version 15\ncpu0 0 0 10 5 7 3 9 x 90\n");
	assert_int_equal(round_(), 0);
}

static void test_psi(void **s)
{
	(void)s;
	assert_int_equal(open_watcher(&psi_watcher), -ENOENT);
	assert_non_null(strstr(fx.why, "CONFIG_PSI"));
	put_file("proc/pressure/cpu", "some avg10=1.00 avg60=0.00 avg300=0.00 total=1000000\n"
				      "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	put_file("proc/pressure/memory", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
					 "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	put_file("proc/pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=500\n"
				     "full avg10=0.00 avg60=0.00 avg300=0.00 total=100\n");
	assert_int_equal(open_watcher(&psi_watcher), 0);
	assert_int_equal(round_(), 0);
	assert_true(isnan(HOST(M_PSI_CPU_SOME)));
	/* the exact totals over the interval, not the kernel's 10 s average */
	put_file("proc/pressure/cpu", "some avg10=1.00 avg60=0.00 avg300=0.00 total=1250000\n"
				      "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	put_file("proc/pressure/memory", "some avg10=0.00 avg60=0.00 avg300=0.00 total=100000\n"
					 "full avg10=0.00 avg60=0.00 avg300=0.00 total=50000\n");
	put_file("proc/pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=900500\n"
				     "full avg10=0.00 avg60=0.00 avg300=0.00 total=3000100\n");
	assert_int_equal(round_(), 0);
	assert_near(HOST(M_PSI_CPU_SOME), 25);
	assert_near(HOST(M_PSI_MEM_SOME), 10);
	assert_near(HOST(M_PSI_MEM_FULL), 5);
	assert_near(HOST(M_PSI_IO_SOME), 90);
	assert_near(HOST(M_PSI_IO_FULL), 100); /* more stall than wall time is clamped */
	/* hostile: a missing total, a negative one, a truncated line */
	put_file("proc/pressure/cpu", "some avg10=1.00\n");
	put_file("proc/pressure/memory", "some avg10=0 avg60=0 avg300=0 total=-5\nfull\n");
	assert_int_equal(round_(), -EPROTO);
	assert_true(isnan(HOST(M_PSI_CPU_SOME)));
	assert_true(isnan(HOST(M_PSI_MEM_SOME)));
	assert_near(HOST(M_PSI_IO_SOME), 0);
}

static const char *meminfo(unsigned long anon_kb, unsigned long avail_kb)
{
	static char buf[512];

	snprintf(
		buf, sizeof(buf),
		"MemTotal:       1000000 kB\nMemFree:         100000 kB\n"
		"MemAvailable:    %lu kB\nCached:          300000 kB\n"
		"Active(file):    200000 kB\nInactive(file):  100000 kB\n"
		"AnonPages:       %lu kB\nSwapTotal:       100000 kB\nSwapFree:         75000 kB\n",
		avail_kb, anon_kb);
	return buf;
}

static void test_memstat(void **s)
{
	(void)s;
	fx.cfg.watch.growth_window_ms = 4000;
	put_file("proc/meminfo", meminfo(100000, 500000));
	put_file("proc/vmstat", "allocstall_dma 0\nallocstall_normal 10\nallocstall_movable 5\n"
				"pgscan_kswapd 1000\npgscan_direct 200\npgscan_direct_throttle 99\n"
				"oom_kill 1\n");
	assert_int_equal(open_watcher(&memstat_watcher), 0);
	assert_int_equal(round_(), 0);
	assert_near(HOST(M_MEM_AVAILABLE_PCT), 50);
	assert_near(HOST(M_MEM_AVAILABLE_BYTES), 500000.0 * 1024);
	assert_near(HOST(M_MEM_ANON_BYTES), 100000.0 * 1024);
	assert_near(HOST(M_MEM_FILE_BYTES), 300000.0 * 1024);
	assert_near(HOST(M_MEM_SWAP_USED_PCT), 25);
	assert_true(isnan(HOST(M_MEM_ANON_GROWTH_PCT))); /* no history yet */
	put_file("proc/vmstat", "allocstall_dma 0\nallocstall_normal 13\nallocstall_movable 6\n"
				"pgscan_kswapd 1500\npgscan_direct 260\npgscan_direct_throttle 5\n"
				"oom_kill 3\n");
	assert_int_equal(round_(), 0);
	assert_near(HOST(M_MEM_ALLOCSTALL), 4);
	assert_near(HOST(M_MEM_PGSCAN_KSWAPD), 500);
	assert_near(HOST(M_MEM_PGSCAN_DIRECT), 60); /* pgscan_direct_throttle is not a scan */
	assert_near(HOST(M_MEM_OOM_KILLS), 2);
	/* a burst: anon grows by 10% of MemTotal within the window */
	put_file("proc/meminfo", meminfo(150000, 450000));
	assert_int_equal(round_(), 0);
	put_file("proc/meminfo", meminfo(200000, 400000));
	assert_int_equal(round_(), 0);
	assert_near(HOST(M_MEM_ANON_GROWTH_BYTES), 100000.0 * 1024);
	assert_near(HOST(M_MEM_ANON_GROWTH_PCT), 10);
	/* the window slides: flat for longer than it, growth goes back to 0 */
	for (int i = 0; i < 6; i++)
		assert_int_equal(round_(), 0);
	assert_near(HOST(M_MEM_ANON_GROWTH_PCT), 0);
	/* old kernels: per-zone pgscan counters, no MemAvailable, no swap */
	put_file("proc/meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 100 kB\n"
				 "AnonPages: 10 kB\nSwapTotal: 0 kB\n");
	put_file("proc/vmstat", "allocstall 7\npgscan_direct_normal 5\npgscan_direct_dma32 5\n"
				"pgscan_kswapd_normal 1\n");
	assert_int_equal(round_(), 0);
	assert_near(HOST(M_MEM_AVAILABLE_PCT), 20);
	assert_true(isnan(HOST(M_MEM_SWAP_USED_PCT)));
	put_file("proc/vmstat", "allocstall 9\npgscan_direct_normal 15\npgscan_direct_dma32 5\n"
				"pgscan_kswapd_normal 1\n");
	assert_int_equal(round_(), 0);
	assert_near(HOST(M_MEM_ALLOCSTALL), 2);
	assert_near(HOST(M_MEM_PGSCAN_DIRECT), 10);
	/* hostile: available above total, garbage numbers, no MemTotal */
	put_file("proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 99999999 kB\nAnonPages: x kB\n");
	assert_int_equal(round_(), 0);
	assert_near(HOST(M_MEM_AVAILABLE_PCT), 100);
	assert_true(isnan(HOST(M_MEM_ANON_BYTES)));
	put_file("proc/meminfo", "MemTotal: 0 kB\n");
	assert_int_equal(round_(), 0);
	assert_true(isnan(HOST(M_MEM_AVAILABLE_PCT)));
}

static void test_diskstats(void **s)
{
	(void)s;
	put_file("sys/block/vda/size", "1\n");
	put_file("sys/block/loop0/size", "1\n");
	put_file("sys/block/cciss!c0d0/size", "1\n");
	put_file("proc/diskstats", " 254 0 vda 100 0 800 50 200 0 1600 150 0 300 400 0 0 0 0\n"
				   " 254 1 vda1 100 0 800 50 200 0 1600 150 0 300 400\n"
				   "   7 0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
				   " 104 0 cciss/c0d0 1 0 8 1 0 0 0 0 0 1 1\n");
	assert_int_equal(open_watcher(&diskstats_watcher), 0);
	assert_int_equal(round_(), 0);
	put_file("proc/diskstats", " 254 0 vda 150 0 1800 150 300 0 3600 250 2 800 1400 0 0 0 0\n"
				   " 254 1 vda1 150 0 1800 150 300 0 3600 250 2 800 1400\n"
				   "   7 0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
				   " 104 0 cciss/c0d0 1 0 8 1 0 0 0 0 0 1 1\n");
	assert_int_equal(round_(), 0);
	assert_near(value(M_IO_READ_IOPS, "device", "vda"), 50);
	assert_near(value(M_IO_WRITE_IOPS, "device", "vda"), 100);
	assert_near(value(M_IO_READ_BPS, "device", "vda"), 1000.0 * 512);
	assert_near(value(M_IO_WRITE_BPS, "device", "vda"), 2000.0 * 512);
	assert_near(value(M_IO_UTIL, "device", "vda"), 50);
	assert_near(value(M_IO_AWAIT, "device", "vda"), 200.0 / 150.0);
	assert_near(value(M_IO_QUEUE, "device", "vda"), 1.0);
	/* partitions and devices that never did IO have no series */
	assert_true(isnan(value(M_IO_UTIL, "device", "vda1")));
	assert_true(isnan(value(M_IO_UTIL, "device", "loop0")));
	/* '/' in a name is '!' in sysfs: still a whole disk */
	assert_near(value(M_IO_UTIL, "device", "cciss/c0d0"), 0);
	/* hostile: counters backwards, a busy time beyond the interval, bad names,
	 * short lines, a name longer than any device's */
	put_file("proc/diskstats",
		 " 254 0 vda 10 0 1800 150 300 0 3600 250 2 999999 1400\n"
		 " 1 2 a=b 1 1 1 1 1 1 1 1 1 1 1\n"
		 " 1 3 xx 1 2 3\n"
		 " 1 4 averyveryveryveryveryverylongdevicename 1 1 1 1 1 1 1 1 1 1 1\n"
		 "garbage\n");
	assert_int_equal(round_(), 0);
	assert_near(value(M_IO_READ_IOPS, "device", "vda"), 0);
	assert_near(value(M_IO_UTIL, "device", "vda"), 100);
	assert_true(isnan(value(M_IO_UTIL, "device", "a=b")));
	/* an empty file is no error: every device went away */
	put_file("proc/diskstats", "");
	assert_int_equal(round_(), 0);
}

static void test_kfile_and_growth(void **s)
{
	struct kfile f;
	struct growth g = {0};
	char big[20000];
	size_t len;
	double d;

	(void)s;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put_file("big", big);
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/big", fx.root);
		assert_int_equal(kfile_open(&f, path, 5000), 0);
	}
	/* a file larger than allowed is cut, not a crash or an unbounded buffer */
	assert_int_equal(kfile_read(&f, &len), 0);
	assert_int_equal(len, 5000);
	assert_true(f.cap <= 5001);
	kfile_close(&f);
	assert_int_equal(kfile_open(&f, "/nonexistent/x", 10), -ENOENT);

	/* growth over a 10 s window with points every interval */
	for (uint64_t t = 0; t <= 20000; t += 1000) {
		if (t >= 3000)
			assert_true(growth_delta(&g, t, (double)t, 10000, &d));
		growth_push(&g, t, (double)t, 10000);
	}
	assert_true(growth_delta(&g, 21000, 21000, 10000, &d));
	assert_true(d >= 10000 && d <= 11000);
	/* a clock going backwards restarts the window */
	growth_push(&g, 100, 5, 10000);
	assert_false(growth_delta(&g, 200, 5, 10000, &d));
	{
		uint64_t v;

		assert_true(text_u64("a 1\nkey: 42 kB\n", "key", &v) && v == 42);
		assert_false(text_u64("keyx 1\n", "key", &v));
		assert_false(text_u64("key 18446744073709551616\n", "key", &v));
		assert_false(text_u64("key -1\n", "key", &v));
		assert_true(psi_total("some avg10=0 total=7\nfull avg10=0 total=9", "full", &v) &&
			    v == 9);
		assert_false(psi_total("some avg10=0\nfull total=9", "some", &v));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stat_extras_and_loadavg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedstat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_psi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memstat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_diskstats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kfile_and_growth, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
