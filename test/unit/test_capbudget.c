// SPDX-License-Identifier: GPL-2.0-only
/* capture.max_seconds_per_hour counts every millisecond of the last rolling
 * hour: a thousand short captures add up (a ring of 256 windows forgot them),
 * concurrent captures add up, and the hour rolls by the second. */
#include "testutil.h"

#include <stdlib.h>

#include "agent/capbudget.h"

static void test_many_short_captures_add_up(void **state)
{
	struct capbudget *b = calloc(1, sizeof(*b));
	uint64_t t = 5000000; /* any monotonic origin */

	/* 1000 captures of 1.5 s, one every 3 s: 1500 s within 3000 s */
	for (int i = 0; i < 1000; i++)
		capbudget_add(b, t + (uint64_t)i * 3000, t + (uint64_t)i * 3000 + 1500);
	assert_int_equal(capbudget_used_ms(b, t + 999 * 3000 + 1500), 1000 * 1500);
	free(b);
}

static void test_concurrent_and_partial_seconds(void **state)
{
	struct capbudget *b = calloc(1, sizeof(*b));

	capbudget_add(b, 10250, 12750); /* 2.5 s across three seconds */
	capbudget_add(b, 10000, 11000); /* another kind at the same time */
	assert_int_equal(capbudget_used_ms(b, 13000), 3500);
	/* at 10.999 s only second 10 has passed: 750 + 1000 ms */
	assert_int_equal(capbudget_used_ms(b, 10999), 1750);
	free(b);
}

static void test_rolling_hour(void **state)
{
	struct capbudget *b = calloc(1, sizeof(*b));
	uint64_t h = 3600000;

	capbudget_add(b, 1000, 61000);	/* 60 s at the start */
	capbudget_add(b, h, h + 30000); /* 30 s an hour later */
	/* the hour back from 3630 s starts at 31 s: 30 s of the first window left */
	assert_int_equal(capbudget_used_ms(b, h + 30000), 30000 + 30000);
	assert_int_equal(capbudget_used_ms(b, h + 61000), 30000);
	assert_int_equal(capbudget_used_ms(b, 3 * h), 0);
	/* a window longer than the hour charges its last hour only */
	capbudget_add(b, 4 * h, 6 * h);
	assert_int_equal(capbudget_used_ms(b, 6 * h - 1), h);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_short_captures_add_up),
		cmocka_unit_test(test_concurrent_and_partial_seconds),
		cmocka_unit_test(test_rolling_hour),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
