// SPDX-License-Identifier: GPL-2.0-only
/* User-space helpers of the probe loaders that need no BPF: the CPU list the
 * profile capture reads to follow CPUs coming online, and the one rule every
 * capture uses to trim the tracing glue off the leaf end of kernel stacks. */
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

static void test_tracing_glue(void **s)
{
	/* what runs a tracing program, on kernels with and without trampolines */
	const char *glue[] = {"bpf_prog_6deef7357e7b4530_offcpu_switch",
			      "bpf_trace_run4",
			      "__bpf_trace_sched_switch",
			      "__traceiter_sched_switch",
			      "__bpf_prog_run",
			      "trace_call_bpf",
			      "bpf_dispatcher_xdp_func",
			      "bpf_trampoline_6442536655",
			      "perf_trace_sched_switch"};
	/* what the traced task was doing */
	const char *task[] = {"__schedule",
			      "schedule",
			      "do_nanosleep",
			      "io_schedule",
			      "bpf_map_lookup_elem",
			      "perf_event_output",
			      "__x64_sys_bpf",
			      "",
			      "trace_event_raw_event_sched_switch"};

	for (size_t i = 0; i < sizeof(glue) / sizeof(glue[0]); i++)
		assert_true(stack_is_glue(glue[i]));
	for (size_t i = 0; i < sizeof(task) / sizeof(task[0]); i++)
		assert_false(stack_is_glue(task[i]));
	/* without a symbolizer nothing can be told apart: nothing is trimmed */
	assert_int_equal(stack_bpf_frames(NULL, (const uint64_t[]){1, 2}, 2), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_lists),
		cmocka_unit_test(test_malformed_cpu_lists),
		cmocka_unit_test(test_tracing_glue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
