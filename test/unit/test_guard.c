// SPDX-License-Identifier: GPL-2.0-only
/* The guard's decisions on the opt-in hook modes: switched off after a streak
 * over budget, kept off while the load that made them costly lasts, back on
 * once the estimated cost at today's load is under half the budget. */
#include "testutil.h"

#include <string.h>

#include "agent/guard.h"

/* hold 0: the decisions follow the samples, not the wall clock */
static const struct guard_opts opts = {.enabled = true,
				       .capture_cpu_pct = 5,
				       .agent_cpu_pct = 50,
				       .strikes = 2,
				       .hook_cpu_pct = 1,
				       .hook_hold_ms = 0};

static enum guard_hook_action sample(struct guard *g, bool throttled, double cpu_pct, double ns,
				     double load, char *why)
{
	struct guard_hook h = {.name = "runqlat",
			       .throttled = throttled,
			       .cpu_pct = cpu_pct,
			       .ns_per_event = ns,
			       .load_per_s = load};

	return guard_hook_sample(g, &h, why, 200);
}

static json_t *hook_status(struct guard *g, json_t **st)
{
	*st = guard_status(g);
	return json_array_get(json_object_get(*st, "hooks"), 0);
}

static void test_throttle_then_resume_when_load_passes(void **s)
{
	struct guard *g = NULL;
	char why[200] = "";
	json_t *st, *h;

	assert_int_equal(guard_new(&g, &opts), 0);
	/* cheap: kept */
	assert_int_equal(sample(g, false, 0.2, 300, 10000, why), GUARD_HOOK_KEEP);
	/* one interval over budget is a burst; the second in a row switches it off */
	assert_int_equal(sample(g, false, 3.0, 300, 150000, why), GUARD_HOOK_KEEP);
	assert_int_equal(sample(g, false, 3.0, 300, 150000, why), GUARD_HOOK_THROTTLE);
	assert_non_null(strstr(why, "runqlat hooks used 3.00% of all CPUs"));
	assert_non_null(strstr(why, "guard.hook_cpu_pct 1%"));

	/* the storm goes on: the estimate at this load stays over half the budget */
	for (int i = 0; i < 5; i++)
		assert_int_equal(sample(g, true, 0, 0, 150000, why), GUARD_HOOK_KEEP);
	h = hook_status(g, &st);
	assert_string_equal(json_string_value(json_object_get(h, "state")), "throttled");
	assert_true(json_real_value(json_object_get(h, "estimated_cpu_pct")) > 1.0);
	assert_int_equal(json_integer_value(json_object_get(h, "throttles")), 1);
	json_decref(st);

	/* the load passes: two calm samples in a row bring it back */
	assert_int_equal(sample(g, true, 0, 0, 5000, why), GUARD_HOOK_KEEP);
	assert_int_equal(sample(g, true, 0, 0, 5000, why), GUARD_HOOK_RESUME);
	h = hook_status(g, &st);
	assert_string_equal(json_string_value(json_object_get(h, "state")), "on");
	json_decref(st);
	assert_int_equal(sample(g, false, 0.1, 300, 5000, why), GUARD_HOOK_KEEP);
	guard_free(&g);
}

static void test_calm_streak_must_be_consecutive(void **s)
{
	struct guard *g = NULL;
	char why[200];

	assert_int_equal(guard_new(&g, &opts), 0);
	sample(g, false, 2.0, 200, 100000, why);
	assert_int_equal(sample(g, false, 2.0, 200, 100000, why), GUARD_HOOK_THROTTLE);
	assert_int_equal(sample(g, true, 0, 0, 1000, why), GUARD_HOOK_KEEP);
	assert_int_equal(sample(g, true, 0, 0, 100000, why), GUARD_HOOK_KEEP); /* back up */
	assert_int_equal(sample(g, true, 0, 0, 1000, why), GUARD_HOOK_KEEP);
	assert_int_equal(sample(g, true, 0, 0, 1000, why), GUARD_HOOK_RESUME);
	guard_free(&g);
}

static void test_unknown_load_retries_after_the_hold(void **s)
{
	struct guard *g = NULL;
	char why[200];

	/* no load proxy (load < 0): after the hold it is tried again, and measured */
	assert_int_equal(guard_new(&g, &opts), 0);
	sample(g, false, 2.0, 200, -1, why);
	assert_int_equal(sample(g, false, 2.0, 200, -1, why), GUARD_HOOK_THROTTLE);
	assert_int_equal(sample(g, true, 0, 0, -1, why), GUARD_HOOK_KEEP);
	assert_int_equal(sample(g, true, 0, 0, -1, why), GUARD_HOOK_RESUME);
	guard_free(&g);
}

static void test_disabled_guard_gives_hooks_back(void **s)
{
	struct guard *g = NULL;
	struct guard_opts off = opts;
	char why[200];

	assert_int_equal(guard_new(&g, &opts), 0);
	sample(g, false, 5.0, 200, 100000, why);
	assert_int_equal(sample(g, false, 5.0, 200, 100000, why), GUARD_HOOK_THROTTLE);
	off.enabled = false;
	guard_set_opts(g, &off);
	assert_int_equal(sample(g, true, 0, 0, 100000, why), GUARD_HOOK_RESUME);
	/* and never throttles while off, whatever the cost */
	for (int i = 0; i < 4; i++)
		assert_int_equal(sample(g, false, 50.0, 200, 100000, why), GUARD_HOOK_KEEP);
	guard_free(&g);
}

static void test_hold_keeps_it_off(void **s)
{
	struct guard *g = NULL;
	struct guard_opts held = opts;
	char why[200];

	held.hook_hold_ms = 3600000;
	assert_int_equal(guard_new(&g, &held), 0);
	sample(g, false, 2.0, 200, 100000, why);
	assert_int_equal(sample(g, false, 2.0, 200, 100000, why), GUARD_HOOK_THROTTLE);
	/* the load is gone at once, but the hold has not passed */
	for (int i = 0; i < 5; i++)
		assert_int_equal(sample(g, true, 0, 0, 0, why), GUARD_HOOK_KEEP);
	guard_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_throttle_then_resume_when_load_passes),
		cmocka_unit_test(test_calm_streak_must_be_consecutive),
		cmocka_unit_test(test_unknown_load_retries_after_the_hold),
		cmocka_unit_test(test_disabled_guard_gives_hooks_back),
		cmocka_unit_test(test_hold_keeps_it_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
