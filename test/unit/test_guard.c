// SPDX-License-Identifier: GPL-2.0-only
/* The guard's decisions on the opt-in hook modes: switched off after a streak
 * over budget, kept off while the load that made them costly lasts, back on
 * once the estimated cost at today's load is under half the budget. And on the
 * watch layer's own passes: sampled less often while over guard.watch_cpu,
 * more often again once the estimate is well under it. */
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

/* The watch layer: two watchers that can be widened, as watchers_cost() reports them. */
struct watch_sim {
	double sample_us[2]; /* a full pass */
	double hold_us[2];   /* a held round */
	unsigned every[2];
	unsigned round;
};

/* One round of the simulated layer; applies the guard's decision. Returns
 * true when the guard changed an interval (name and reason set). */
static bool watch_round(struct guard *g, struct watch_sim *w, const char **name, char *why)
{
	static const char *const names[2] = {"cgroups", "taskwatch"};
	struct watch_cost in = {.n = 2};
	unsigned every;

	for (unsigned i = 0; i < 2; i++) {
		bool full = w->round % w->every[i] == 0;

		in.w[i].name = names[i];
		in.w[i].sample_us = w->sample_us[i];
		in.w[i].hold_us = w->hold_us[i];
		in.w[i].every = w->every[i];
		in.round_us += full ? w->sample_us[i] : w->hold_us[i];
	}
	w->round++;
	if (!guard_watch_sample(g, &in, name, &every, why, 200))
		return false;
	for (unsigned i = 0; i < 2; i++)
		if (!strcmp(*name, names[i]))
			w->every[i] = every;
	return true;
}

static void test_watch_widened_over_budget_then_narrowed(void **s)
{
	struct guard_opts o = opts;
	struct guard *g = NULL;
	/* cgroups 12 ms a pass, tasks 2 ms: 14 ms a round against 5 ms per second */
	struct watch_sim w = {.sample_us = {12000, 2000}, .hold_us = {50, 20}, .every = {1, 1}};
	const char *name = NULL;
	char why[200] = "";
	json_t *st, *ws;
	unsigned changes = 0;

	o.watch_cpu_us = 5000;
	o.interval_ms = 1000;
	assert_int_equal(guard_new(&g, &o), 0);
	/* nothing before the average has seen a few rounds */
	for (int i = 0; i < 8; i++)
		assert_false(watch_round(g, &w, &name, why));
	for (int i = 0; i < 2000 && changes < 10; i++)
		if (watch_round(g, &w, &name, why)) {
			changes++;
			/* the costliest one goes first, each time twice as wide */
			if (changes == 1) {
				assert_string_equal(name, "cgroups");
				assert_int_equal(w.every[0], 2);
				assert_non_null(strstr(why, "guard.watch_cpu 5.0ms per second"));
				assert_non_null(strstr(why, "cgroups sampled every 2 intervals"));
			}
		}
	/* settled within budget: 12 ms every 4 rounds and 2 ms every round is 5 ms;
	 * the guard stops where the average is under 5 ms */
	{
		double per_round = w.sample_us[0] / w.every[0] + w.sample_us[1] / w.every[1];

		assert_true(per_round <= 5000 + 50 + 20);
		assert_true(w.every[0] >= 2 && w.every[0] <= 16);
	}
	st = guard_status(g);
	ws = json_object_get(st, "watch");
	assert_non_null(ws);
	assert_true(json_integer_value(json_object_get(ws, "widenings")) >= 1);
	assert_non_null(json_object_get(ws, "last_widen_reason"));
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(ws, "every"), "cgroups")),
		w.every[0]);
	json_decref(st);

	/* the node calms down: passes cost a tenth; the guard narrows back to every round */
	w.sample_us[0] = 1200;
	w.sample_us[1] = 200;
	for (int i = 0; i < 2000 && (w.every[0] > 1 || w.every[1] > 1); i++)
		watch_round(g, &w, &name, why);
	assert_int_equal(w.every[0], 1);
	assert_int_equal(w.every[1], 1);
	guard_free(&g);
}

static void test_watch_never_wider_than_16(void **s)
{
	struct guard_opts o = opts;
	struct guard *g = NULL;
	/* hopeless: even every 16 rounds both are over budget */
	struct watch_sim w = {.sample_us = {400000, 400000}, .hold_us = {10, 10}, .every = {1, 1}};
	const char *name = NULL;
	char why[200] = "";

	o.watch_cpu_us = 5000;
	o.interval_ms = 1000;
	assert_int_equal(guard_new(&g, &o), 0);
	for (int i = 0; i < 3000; i++)
		watch_round(g, &w, &name, why);
	assert_int_equal(w.every[0], 16);
	assert_int_equal(w.every[1], 16);
	guard_free(&g);
}

static void test_watch_budget_off_samples_every_round(void **s)
{
	struct guard_opts o = opts;
	struct guard *g = NULL;
	struct watch_sim w = {.sample_us = {12000, 2000}, .hold_us = {50, 20}, .every = {8, 2}};
	const char *name = NULL;
	char why[200] = "";

	o.watch_cpu_us = 0; /* guard.watch_cpu: 0ms */
	o.interval_ms = 1000;
	assert_int_equal(guard_new(&g, &o), 0);
	assert_true(watch_round(g, &w, &name, why));
	assert_true(watch_round(g, &w, &name, why));
	assert_int_equal(w.every[0], 1);
	assert_int_equal(w.every[1], 1);
	assert_false(watch_round(g, &w, &name, why));
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
		cmocka_unit_test(test_watch_widened_over_budget_then_narrowed),
		cmocka_unit_test(test_watch_never_wider_than_16),
		cmocka_unit_test(test_watch_budget_off_samples_every_round),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
