// SPDX-License-Identifier: GPL-2.0-only
/* The /proc/diskstats watcher (whole disks only, rates, utilisation, await) against
 * crafted, hostile contents included, on an injected clock. */
#include "testutil.h"
#include "watchtest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "probes/catalogue.h"

extern const struct watcher_ops diskstats_watcher;

static void test_diskstats(void **s)
{
	(void)s;
	watch_put("sys/block/vda/size", "1\n");
	watch_put("sys/block/loop0/size", "1\n");
	watch_put("sys/block/cciss!c0d0/size", "1\n");
	watch_put("proc/diskstats", " 254 0 vda 100 0 800 50 200 0 1600 150 0 300 400 0 0 0 0\n"
				    " 254 1 vda1 100 0 800 50 200 0 1600 150 0 300 400\n"
				    "   7 0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
				    " 104 0 cciss/c0d0 1 0 8 1 0 0 0 0 0 1 1\n");
	assert_int_equal(watch_open(&diskstats_watcher, NULL), 0);
	assert_int_equal(watch_round(), 0);
	watch_put("proc/diskstats", " 254 0 vda 150 0 1800 150 300 0 3600 250 2 800 1400 0 0 0 0\n"
				    " 254 1 vda1 150 0 1800 150 300 0 3600 250 2 800 1400\n"
				    "   7 0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
				    " 104 0 cciss/c0d0 1 0 8 1 0 0 0 0 0 1 1\n");
	assert_int_equal(watch_round(), 0);
	assert_near(watch_value(M_IO_READ_IOPS, "device", "vda"), 50);
	assert_near(watch_value(M_IO_WRITE_IOPS, "device", "vda"), 100);
	assert_near(watch_value(M_IO_READ_BPS, "device", "vda"), 1000.0 * 512);
	assert_near(watch_value(M_IO_WRITE_BPS, "device", "vda"), 2000.0 * 512);
	assert_near(watch_value(M_IO_UTIL, "device", "vda"), 50);
	assert_near(watch_value(M_IO_AWAIT, "device", "vda"), 200.0 / 150.0);
	assert_near(watch_value(M_IO_QUEUE, "device", "vda"), 1.0);
	/* partitions and devices that never did IO have no series */
	assert_true(isnan(watch_value(M_IO_UTIL, "device", "vda1")));
	assert_true(isnan(watch_value(M_IO_UTIL, "device", "loop0")));
	/* '/' in a name is '!' in sysfs: still a whole disk */
	assert_near(watch_value(M_IO_UTIL, "device", "cciss/c0d0"), 0);
	/* hostile: counters backwards, a busy time beyond the interval, bad names,
	 * short lines, a name longer than any device's */
	watch_put("proc/diskstats",
		  " 254 0 vda 10 0 1800 150 300 0 3600 250 2 999999 1400\n"
		  " 1 2 a=b 1 1 1 1 1 1 1 1 1 1 1\n"
		  " 1 3 xx 1 2 3\n"
		  " 1 4 averyveryveryveryveryverylongdevicename 1 1 1 1 1 1 1 1 1 1 1\n"
		  "garbage\n");
	assert_int_equal(watch_round(), 0);
	assert_near(watch_value(M_IO_READ_IOPS, "device", "vda"), 0);
	assert_near(watch_value(M_IO_UTIL, "device", "vda"), 100);
	assert_true(isnan(watch_value(M_IO_UTIL, "device", "a=b")));
	/* an empty file is no error: every device went away */
	watch_put("proc/diskstats", "");
	assert_int_equal(watch_round(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_diskstats, watch_setup, watch_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
