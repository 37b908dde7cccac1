// SPDX-License-Identifier: GPL-2.0-only
/* The /proc/schedstat watcher (run-queue wait per CPU and host) against crafted,
 * hostile contents included, on an injected clock. */
#include "testutil.h"
#include "watchtest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "probes/catalogue.h"

extern const struct watcher_ops schedstat_watcher;

static void test_schedstat(void **s)
{
	(void)s;
	/* absent (CONFIG_SCHEDSTATS off): unavailable with a reason */
	assert_int_equal(watch_open(&schedstat_watcher, NULL), -ENOENT);
	assert_non_null(strstr(wfx.why, "CONFIG_SCHEDSTATS"));
	watch_put("proc/schedstat", "version 15\ntimestamp 100\n"
				    "cpu0 0 0 10 5 7 3 900000000 100000000 50\n"
				    "domain0 3 1 2 3\n"
				    "cpu1 0 0 10 5 7 3 900000000 0 50\n");
	assert_int_equal(watch_open(&schedstat_watcher, NULL), 0);
	assert_int_equal(watch_round(), 0);
	assert_true(isnan(WATCH_HOST(M_SCHED_RUNQ_WAIT)));
	watch_put("proc/schedstat", "version 15\ntimestamp 350\n"
				    "cpu0 0 0 10 5 7 3 900000000 600000000 90\n"
				    "cpu1 0 0 10 5 7 3 900000000 1500000000 70\n");
	assert_int_equal(watch_round(), 0);
	assert_near(watch_value(M_SCHED_RUNQ_WAIT, "cpu", "0"), 50);
	assert_near(watch_value(M_SCHED_RUNQ_WAIT, "cpu", "1"), 150);
	assert_near(WATCH_HOST(M_SCHED_RUNQ_WAIT), 200);
	/* hostile: no version line, short and absurd cpu lines */
	watch_put("proc/schedstat", "cpu0 1 2\ncpu99999999 0 0 0 0 0 0 0 0 0\n");
	assert_int_equal(watch_round(), -EPROTO);
	watch_put("proc/schedstat", "version 15\ncpu0 0 0 10 5 7 3 9 x 90\n");
	assert_int_equal(watch_round(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_schedstat, watch_setup, watch_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
