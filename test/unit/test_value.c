// SPDX-License-Identifier: GPL-2.0-only
/* The typed-value parser config keys, capture parameters and rule keys share: each type,
 * the inclusive range, hostile text, the wording of the errors, and the three users
 * agreeing on it. */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "base/config.h"
#include "base/value.h"
#include "probes/capture.h"

static uint64_t ok(enum value_type t, uint64_t min, uint64_t max, const char *s)
{
	struct value_spec spec = {t, min, max};
	uint64_t v = 12345;
	char why[128] = "";

	assert_int_equal(value_parse(&spec, s, &v, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	return v;
}

static void bad(enum value_type t, uint64_t min, uint64_t max, const char *s, int want_err,
		const char *want_why)
{
	struct value_spec spec = {t, min, max};
	uint64_t v = 777;
	char why[128] = "";

	assert_int_equal(value_parse(&spec, s, &v, why, sizeof(why)), want_err);
	assert_string_equal(why, want_why);
	/* a failed parse leaves the destination alone */
	assert_int_equal(v, 777);
	/* why may be left out */
	assert_int_equal(value_parse(&spec, s, &v, NULL, 0), want_err);
}

static void test_types(void **s)
{
	assert_int_equal(ok(VALUE_UINT, 0, 100, "0"), 0);
	assert_int_equal(ok(VALUE_UINT, 0, UINT64_MAX, "18446744073709551615"), UINT64_MAX);
	assert_int_equal(ok(VALUE_DURATION, 0, UINT64_MAX, "500ms"), 500);
	assert_int_equal(ok(VALUE_DURATION, 0, UINT64_MAX, "3s"), 3000);
	assert_int_equal(ok(VALUE_DURATION, 0, UINT64_MAX, "10m"), 600000);
	assert_int_equal(ok(VALUE_DURATION, 0, UINT64_MAX, "7d"), 7 * 86400000ull);
	assert_int_equal(ok(VALUE_SIZE, 0, UINT64_MAX, "512MiB"), 512ull << 20);
	assert_int_equal(ok(VALUE_SIZE, 0, UINT64_MAX, "4096"), 4096);
	assert_int_equal(ok(VALUE_BOOL, 0, 0, "true"), 1);
	assert_int_equal(ok(VALUE_BOOL, 0, 0, "false"), 0);
	assert_string_equal(value_type_name(VALUE_UINT), "integer");
	assert_string_equal(value_type_name(VALUE_DURATION), "duration");
	assert_string_equal(value_type_name(VALUE_SIZE), "size");
	assert_string_equal(value_type_name(VALUE_BOOL), "boolean");
}

static void test_range_is_inclusive(void **s)
{
	assert_int_equal(ok(VALUE_UINT, 1, 16, "1"), 1);
	assert_int_equal(ok(VALUE_UINT, 1, 16, "16"), 16);
	bad(VALUE_UINT, 1, 16, "0", -ERANGE, "'0' is out of range [1, 16]");
	bad(VALUE_UINT, 1, 16, "17", -ERANGE, "'17' is out of range [1, 16]");
	assert_int_equal(ok(VALUE_DURATION, 100, 60000, "100ms"), 100);
	assert_int_equal(ok(VALUE_DURATION, 100, 60000, "1m"), 60000);
	bad(VALUE_DURATION, 100, 60000, "99ms", -ERANGE, "'99ms' is out of range [100ms, 1m]");
	bad(VALUE_DURATION, 0, 3600000, "2h", -ERANGE, "'2h' is out of range [0s, 1h]");
	bad(VALUE_SIZE, 1 << 20, 1ull << 40, "1KiB", -ERANGE,
	    "'1KiB' is out of range [1MiB, 1TiB]");
	/* booleans have no range */
	assert_int_equal(ok(VALUE_BOOL, 5, 6, "true"), 1);
}

static void test_malformed(void **s)
{
	bad(VALUE_UINT, 0, 10, "2.5", -EINVAL, "'2.5' is not a non-negative integer");
	bad(VALUE_UINT, 0, 10, "-1", -EINVAL, "'-1' is not a non-negative integer");
	bad(VALUE_UINT, 0, 10, "", -EINVAL, "'' is not a non-negative integer");
	bad(VALUE_UINT, 0, UINT64_MAX, "18446744073709551616", -EINVAL,
	    "'18446744073709551616' is not a non-negative integer");
	bad(VALUE_UINT, 0, 10, "1 ", -EINVAL, "'1 ' is not a non-negative integer");
	bad(VALUE_DURATION, 0, 10, "soon", -EINVAL,
	    "'soon' is not a duration (e.g. 500ms, 3s, 10m, 7d)");
	bad(VALUE_DURATION, 0, 10, "-1s", -EINVAL,
	    "'-1s' is not a duration (e.g. 500ms, 3s, 10m, 7d)");
	bad(VALUE_DURATION, 0, 10, "1y", -EINVAL,
	    "'1y' is not a duration (e.g. 500ms, 3s, 10m, 7d)");
	bad(VALUE_SIZE, 0, 10, "lots", -EINVAL, "'lots' is not a size (e.g. 512MiB, 1GiB)");
	bad(VALUE_BOOL, 0, 0, "maybe", -EINVAL, "'maybe' is not a boolean (true or false)");
	bad(VALUE_BOOL, 0, 0, "1", -EINVAL, "'1' is not a boolean (true or false)");
}

static void test_hostile_text(void **s)
{
	char long_text[600], why[64];
	struct value_spec spec = {VALUE_UINT, 0, 10};
	uint64_t v;

	/* a value longer than the message buffer: cut, still a string, never overrun */
	memset(long_text, '9', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	assert_int_equal(value_parse(&spec, long_text, &v, why, sizeof(why)), -EINVAL);
	assert_int_equal(strlen(why), sizeof(why) - 1);
	assert_int_equal(strncmp(why, "'999", 4), 0);
	/* format characters are text */
	bad(VALUE_UINT, 0, 10, "%s%n", -EINVAL, "'%s%n' is not a non-negative integer");
}

static void test_format(void **s)
{
	char buf[32];

	value_format(VALUE_DURATION, 1500, buf, sizeof(buf));
	assert_string_equal(buf, "1500ms");
	value_format(VALUE_DURATION, 600000, buf, sizeof(buf));
	assert_string_equal(buf, "10m");
	value_format(VALUE_SIZE, 512ull << 20, buf, sizeof(buf));
	assert_string_equal(buf, "512MiB");
	value_format(VALUE_UINT, 42, buf, sizeof(buf));
	assert_string_equal(buf, "42");
	value_format(VALUE_BOOL, 1, buf, sizeof(buf));
	assert_string_equal(buf, "true");
}

/* Config and capture parameters say the same thing of the same mistake. */
static void test_users_agree(void **s)
{
	const struct capture_ops *ops = capture_kind_lookup("profile");
	struct agent_config cfg;
	struct diag diag = {0};
	char why[256];
	uint64_t v;
	int idx;

	assert_non_null(ops);
	idx = capture_param_index(ops, "frequency");
	assert_true(idx >= 0);
	assert_int_equal(capture_param_parse(&ops->params[idx], "5000", &v, why, sizeof(why)),
			 -ERANGE);
	assert_string_equal(why, "'5000' is out of range [1, 1000]");
	assert_int_equal(capture_param_parse(&ops->params[idx], "fast", &v, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "'fast' is not a non-negative integer");
	idx = capture_param_index(ops, "include_idle");
	assert_int_equal(capture_param_parse(&ops->params[idx], "sometimes", &v, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "'sometimes' is not a boolean (true or false)");

	config_defaults(&cfg);
	assert_int_not_equal(
		config_load_string("t.yaml", "capture:\n  max_concurrent: fast\n", &cfg, &diag), 0);
	assert_int_equal(diag.n, 1);
	assert_non_null(strstr(diag.msgs[0], "'fast' is not a non-negative integer"));
	diag_clear(&diag);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),	  cmocka_unit_test(test_range_is_inclusive),
		cmocka_unit_test(test_malformed), cmocka_unit_test(test_hostile_text),
		cmocka_unit_test(test_format),	  cmocka_unit_test(test_users_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
