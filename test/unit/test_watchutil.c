// SPDX-License-Identifier: GPL-2.0-only
/* probes/watchutil: bounded reads of kernel files, growth over a sliding window, and
 * the field parsers the watchers share. */
#include "testutil.h"
#include "watchtest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "probes/watchutil.h"

static void test_kfile_growth_and_parsers(void **s)
{
	struct kfile f;
	struct growth g = {0};
	char big[20000];
	size_t len;
	double d;

	(void)s;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	watch_put("big", big);
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/big", wfx.root);
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
		cmocka_unit_test_setup_teardown(test_kfile_growth_and_parsers, watch_setup,
						watch_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
