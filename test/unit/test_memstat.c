// SPDX-License-Identifier: GPL-2.0-only
/* The /proc/meminfo + /proc/vmstat watcher (availability, anonymous growth over its
 * window, reclaim and OOM counters, old kernels' fields) against crafted, hostile contents
 * included, on an injected clock. */
#include "testutil.h"
#include "watchtest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "probes/catalogue.h"

extern const struct watcher_ops memstat_watcher;

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
	wfx.cfg.watch.growth_window_ms = 4000;
	watch_put("proc/meminfo", meminfo(100000, 500000));
	watch_put("proc/vmstat",
		  "allocstall_dma 0\nallocstall_normal 10\nallocstall_movable 5\n"
		  "pgscan_kswapd 1000\npgscan_direct 200\npgscan_direct_throttle 99\n"
		  "oom_kill 1\n");
	assert_int_equal(watch_open(&memstat_watcher, NULL), 0);
	assert_int_equal(watch_round(), 0);
	assert_near(WATCH_HOST(M_MEM_AVAILABLE_PCT), 50);
	assert_near(WATCH_HOST(M_MEM_AVAILABLE_BYTES), 500000.0 * 1024);
	assert_near(WATCH_HOST(M_MEM_ANON_BYTES), 100000.0 * 1024);
	assert_near(WATCH_HOST(M_MEM_FILE_BYTES), 300000.0 * 1024);
	assert_near(WATCH_HOST(M_MEM_SWAP_USED_PCT), 25);
	assert_true(isnan(WATCH_HOST(M_MEM_ANON_GROWTH_PCT))); /* no history yet */
	watch_put("proc/vmstat", "allocstall_dma 0\nallocstall_normal 13\nallocstall_movable 6\n"
				 "pgscan_kswapd 1500\npgscan_direct 260\npgscan_direct_throttle 5\n"
				 "oom_kill 3\n");
	assert_int_equal(watch_round(), 0);
	assert_near(WATCH_HOST(M_MEM_ALLOCSTALL), 4);
	assert_near(WATCH_HOST(M_MEM_PGSCAN_KSWAPD), 500);
	assert_near(WATCH_HOST(M_MEM_PGSCAN_DIRECT), 60); /* pgscan_direct_throttle is not a scan */
	assert_near(WATCH_HOST(M_MEM_OOM_KILLS), 2);
	/* a burst: anon grows by 10% of MemTotal within the window */
	watch_put("proc/meminfo", meminfo(150000, 450000));
	assert_int_equal(watch_round(), 0);
	watch_put("proc/meminfo", meminfo(200000, 400000));
	assert_int_equal(watch_round(), 0);
	assert_near(WATCH_HOST(M_MEM_ANON_GROWTH_BYTES), 100000.0 * 1024);
	assert_near(WATCH_HOST(M_MEM_ANON_GROWTH_PCT), 10);
	/* the window slides: flat for longer than it, growth goes back to 0 */
	for (int i = 0; i < 6; i++)
		assert_int_equal(watch_round(), 0);
	assert_near(WATCH_HOST(M_MEM_ANON_GROWTH_PCT), 0);
	/* old kernels: per-zone pgscan counters, no MemAvailable, no swap */
	watch_put("proc/meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 100 kB\n"
				  "AnonPages: 10 kB\nSwapTotal: 0 kB\n");
	watch_put("proc/vmstat", "allocstall 7\npgscan_direct_normal 5\npgscan_direct_dma32 5\n"
				 "pgscan_kswapd_normal 1\n");
	assert_int_equal(watch_round(), 0);
	assert_near(WATCH_HOST(M_MEM_AVAILABLE_PCT), 20);
	assert_true(isnan(WATCH_HOST(M_MEM_SWAP_USED_PCT)));
	watch_put("proc/vmstat", "allocstall 9\npgscan_direct_normal 15\npgscan_direct_dma32 5\n"
				 "pgscan_kswapd_normal 1\n");
	assert_int_equal(watch_round(), 0);
	assert_near(WATCH_HOST(M_MEM_ALLOCSTALL), 2);
	assert_near(WATCH_HOST(M_MEM_PGSCAN_DIRECT), 10);
	/* hostile: available above total, garbage numbers, no MemTotal */
	watch_put("proc/meminfo",
		  "MemTotal: 1000 kB\nMemAvailable: 99999999 kB\nAnonPages: x kB\n");
	assert_int_equal(watch_round(), 0);
	assert_near(WATCH_HOST(M_MEM_AVAILABLE_PCT), 100);
	assert_true(isnan(WATCH_HOST(M_MEM_ANON_BYTES)));
	watch_put("proc/meminfo", "MemTotal: 0 kB\n");
	assert_int_equal(watch_round(), 0);
	assert_true(isnan(WATCH_HOST(M_MEM_AVAILABLE_PCT)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_memstat, watch_setup, watch_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
