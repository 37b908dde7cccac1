// SPDX-License-Identifier: GPL-2.0-only
/* List-of-strings capture parameters (dstate.patterns): set, iterate, bounds,
 * and in rules: a YAML list parsed, bad entries reported at FILE:LINE:COL. */
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "probes/capture.h"
#include "triggers/rules.h"

static const struct rules_limits lim = {.max_capture_ms = 60000};

static void test_set_and_iterate(void **s)
{
	const struct capture_ops *ops = capture_kind_lookup("dstate");
	const char *const entries[] = {"a=x_*", "b=y|z", "plain_glob*"};
	struct capture_params p;
	unsigned idx;
	const char *e;
	char why[256];
	int n = 0;

	assert_non_null(ops);
	idx = (unsigned)capture_param_index(ops, "patterns");
	capture_params_defaults(ops, &p);
	assert_null(capture_param_next_string(&p, idx, NULL));
	assert_int_equal(capture_param_set_strings(ops, idx, &p, entries, 3, why, sizeof(why)), 0);
	assert_int_equal(p.v[idx], 3);
	for (e = capture_param_next_string(&p, idx, NULL); e;
	     e = capture_param_next_string(&p, idx, e))
		assert_string_equal(e, entries[n++]);
	assert_int_equal(n, 3);
	/* not a list parameter */
	assert_int_not_equal(
		capture_param_set_strings(ops, (unsigned)capture_param_index(ops, "threshold"), &p,
					  entries, 1, why, sizeof(why)),
		0);
}

static void test_bounds(void **s)
{
	const struct capture_ops *ops = capture_kind_lookup("dstate");
	unsigned idx = (unsigned)capture_param_index(ops, "patterns");
	struct capture_params p;
	const char *many[40];
	char longest[CAPTURE_PARAM_ENTRY + 8], why[256];
	const char *one[1] = {longest};

	for (int i = 0; i < 40; i++)
		many[i] = "x=y";
	capture_params_defaults(ops, &p);
	assert_int_equal(capture_param_set_strings(ops, idx, &p, many, 40, why, sizeof(why)),
			 -ERANGE);
	assert_non_null(strstr(why, "40 entries"));
	memset(longest, 'a', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	assert_int_equal(capture_param_set_strings(ops, idx, &p, one, 1, why, sizeof(why)),
			 -EINVAL);
	/* a failed set leaves the parameter as it was */
	assert_int_equal(p.v[idx], 0);
}

static void test_rules_yaml(void **s)
{
	static const char *const good =
		"rules:\n"
		"  - name: stuck\n"
		"    metric: cpu.sys_pct\n"
		"    above: 50\n"
		"    capture:\n"
		"      - kind: dstate\n"
		"        threshold: 2s\n"
		"        patterns: [\"raid resync=md_do_sync|raid*\", \"drbd_*\"]\n";
	static const char *const bad = "rules:\n"
				       "  - name: stuck\n"
				       "    metric: cpu.sys_pct\n"
				       "    above: 50\n"
				       "    capture:\n"
				       "      - kind: dstate\n"
				       "        patterns: [\"=nolabel\"]\n";
	static const char *const notlist = "rules:\n"
					   "  - name: stuck\n"
					   "    metric: cpu.sys_pct\n"
					   "    above: 50\n"
					   "    capture:\n"
					   "      - kind: dstate\n"
					   "        patterns: {a: b}\n";
	struct ruleset *rs = NULL;
	struct diag d = {0};
	const struct capture_ops *ops = capture_kind_lookup("dstate");
	unsigned idx = (unsigned)capture_param_index(ops, "patterns");
	const char *e;

	assert_int_equal(ruleset_load_string("r.yaml", good, &lim, &rs, &d), 0);
	assert_int_equal(rs->n, 1);
	assert_int_equal(rs->rules[0].captures[0].params.v[idx], 2);
	e = capture_param_next_string(&rs->rules[0].captures[0].params, idx, NULL);
	assert_string_equal(e, "raid resync=md_do_sync|raid*");
	e = capture_param_next_string(&rs->rules[0].captures[0].params, idx, e);
	assert_string_equal(e, "drbd_*");
	assert_int_equal(rs->rules[0].captures[0].params.v[capture_param_index(ops, "threshold")],
			 2000);
	ruleset_free(&rs);

	assert_int_not_equal(ruleset_load_string("r.yaml", bad, &lim, &rs, &d), 0);
	assert_true(d.n >= 1);
	assert_non_null(strstr(d.msgs[0], "r.yaml:7:19"));
	assert_non_null(strstr(d.msgs[0], "empty label"));
	diag_clear(&d);
	assert_int_not_equal(ruleset_load_string("r.yaml", notlist, &lim, &rs, &d), 0);
	assert_non_null(strstr(d.msgs[0], "expected a list"));
	diag_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_and_iterate),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_rules_yaml),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
