// SPDX-License-Identifier: GPL-2.0-only
/* User-space helpers of the probe loaders that need no BPF: the CPU list the
 * profile capture reads to follow CPUs coming online. */
#include "testutil.h"

#include <errno.h>
#include <stdbool.h>

#include "probes/bpfutil.h"

static void test_cpu_lists(void **s)
{
	bool on[8];

	assert_int_equal(cpu_list_parse("0-3,5\n", on, 8), 0);
	assert_true(on[0] && on[1] && on[2] && on[3] && !on[4] && on[5] && !on[6] && !on[7]);
	assert_int_equal(cpu_list_parse("7", on, 8), 0);
	assert_true(on[7] && !on[0]);
	/* CPUs beyond the possible ones are ignored, not written */
	assert_int_equal(cpu_list_parse("0,6-63", on, 8), 0);
	assert_true(on[0] && on[6] && on[7] && !on[5]);
	assert_int_equal(cpu_list_parse("\n", on, 8), 0);
	for (int i = 0; i < 8; i++)
		assert_false(on[i]);
}

static void test_malformed_cpu_lists(void **s)
{
	bool on[4];

	assert_int_equal(cpu_list_parse("x", on, 4), -EINVAL);
	assert_int_equal(cpu_list_parse("3-1", on, 4), -EINVAL);
	assert_int_equal(cpu_list_parse("1-", on, 4), -EINVAL);
	assert_int_equal(cpu_list_parse("1;2", on, 4), -EINVAL);
	assert_int_equal(cpu_list_parse("-1", on, 4), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_lists),
		cmocka_unit_test(test_malformed_cpu_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
