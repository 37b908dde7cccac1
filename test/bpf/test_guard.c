// SPDX-License-Identifier: GPL-2.0-only
/* The run-time guard against real kernel BPF run time: a costly program on this
 * process's syscalls trips the budget; a generous budget does not. */
#include "testutil.h"

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/guard.h"
#include "base/log.h"
#include "base/util.h"
#include "probes/filter.h" /* u32, u64 for the skeleton */
#include "guard_burn.skel.h"
#include "probes/bpfutil.h"

static struct guard_burn_bpf *skel;

static int setup(void **s)
{
	require_root_or_exit("bpf/guard");
	log_route_libbpf();
	skel = guard_burn_bpf__open();
	assert_non_null(skel);
	skel->rodata->target_tgid = (u32)getpid();
	assert_int_equal(guard_burn_bpf__load(skel), 0);
	assert_int_equal(guard_burn_bpf__attach(skel), 0);
	bpf_object_log_ids("guardtest", skel->obj);
	return 0;
}

static int teardown(void **s)
{
	bpf_owner_forget("guardtest");
	guard_burn_bpf__destroy(skel);
	return 0;
}

/* ~300 ms of syscalls: the program runs on each */
static void syscalls(void)
{
	uint64_t end = now_mono_ns() + 300000000ull;

	while (now_mono_ns() < end)
		for (int i = 0; i < 100; i++)
			syscall(SYS_getppid);
}

static void test_over_budget_cuts_after_strikes(void **s)
{
	struct guard_opts o = {
		.enabled = true, .capture_cpu_pct = 1, .agent_cpu_pct = 1000, .strikes = 2};
	const char *kinds[] = {"guardtest"};
	struct guard *g;
	char why[200] = "";

	assert_int_equal(guard_new(&g, &o), 0);
	assert_false(guard_sample(g, kinds, 1, why, sizeof(why))); /* baseline */
	syscalls();
	assert_false(guard_sample(g, kinds, 1, why, sizeof(why))); /* first strike */
	syscalls();
	assert_true(guard_sample(g, kinds, 1, why, sizeof(why)));
	assert_non_null(strstr(why, "guard.capture_cpu_pct 1%"));
	{
		json_t *st = guard_status(g);

		assert_int_equal(json_integer_value(json_object_get(st, "captures_cut_short")), 1);
		assert_true(json_real_value(json_object_get(st, "capture_cpu_pct")) > 1.0);
		json_decref(st);
	}
	guard_free(&g);
}

static void test_within_budget_and_idle(void **s)
{
	struct guard_opts o = {
		.enabled = true, .capture_cpu_pct = 100, .agent_cpu_pct = 1000, .strikes = 1};
	const char *kinds[] = {"guardtest"};
	struct guard *g;
	char why[200];

	assert_int_equal(guard_new(&g, &o), 0);
	assert_false(guard_sample(g, kinds, 1, why, sizeof(why)));
	syscalls();
	assert_false(guard_sample(g, kinds, 1, why, sizeof(why)));
	/* no capture running: nothing measured, statistics released */
	assert_false(guard_sample(g, NULL, 0, why, sizeof(why)));
	guard_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_over_budget_cuts_after_strikes),
		cmocka_unit_test(test_within_budget_and_idle),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
