// SPDX-License-Identifier: GPL-2.0-only
/* The pressure stall watcher (exact totals over the interval, not the kernel's
 * averages) against crafted, hostile contents included, on an injected clock. */
#include "testutil.h"
#include "watchtest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "probes/catalogue.h"

extern const struct watcher_ops psi_watcher;

static void test_psi(void **s)
{
	(void)s;
	assert_int_equal(watch_open(&psi_watcher, NULL), -ENOENT);
	assert_non_null(strstr(wfx.why, "CONFIG_PSI"));
	watch_put("proc/pressure/cpu", "some avg10=1.00 avg60=0.00 avg300=0.00 total=1000000\n"
				       "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	watch_put("proc/pressure/memory", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
					  "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	watch_put("proc/pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=500\n"
				      "full avg10=0.00 avg60=0.00 avg300=0.00 total=100\n");
	assert_int_equal(watch_open(&psi_watcher, NULL), 0);
	assert_int_equal(watch_round(), 0);
	assert_true(isnan(WATCH_HOST(M_PSI_CPU_SOME)));
	/* the exact totals over the interval, not the kernel's 10 s average */
	watch_put("proc/pressure/cpu", "some avg10=1.00 avg60=0.00 avg300=0.00 total=1250000\n"
				       "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	watch_put("proc/pressure/memory", "some avg10=0.00 avg60=0.00 avg300=0.00 total=100000\n"
					  "full avg10=0.00 avg60=0.00 avg300=0.00 total=50000\n");
	watch_put("proc/pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=900500\n"
				      "full avg10=0.00 avg60=0.00 avg300=0.00 total=3000100\n");
	assert_int_equal(watch_round(), 0);
	assert_near(WATCH_HOST(M_PSI_CPU_SOME), 25);
	assert_near(WATCH_HOST(M_PSI_MEM_SOME), 10);
	assert_near(WATCH_HOST(M_PSI_MEM_FULL), 5);
	assert_near(WATCH_HOST(M_PSI_IO_SOME), 90);
	assert_near(WATCH_HOST(M_PSI_IO_FULL), 100); /* more stall than wall time is clamped */
	/* hostile: a missing total, a negative one, a truncated line */
	watch_put("proc/pressure/cpu", "some avg10=1.00\n");
	watch_put("proc/pressure/memory", "some avg10=0 avg60=0 avg300=0 total=-5\nfull\n");
	assert_int_equal(watch_round(), -EPROTO);
	assert_true(isnan(WATCH_HOST(M_PSI_CPU_SOME)));
	assert_true(isnan(WATCH_HOST(M_PSI_MEM_SOME)));
	assert_near(WATCH_HOST(M_PSI_IO_SOME), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_psi, watch_setup, watch_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
