// SPDX-License-Identifier: GPL-2.0-only
/* The profile capture on the real kernel: loads, samples this test's own busy
 * loop (pid and cgroup filters), symbolizes it, and detaches cleanly. */
#include "bpftest.h"
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "probes/bpfutil.h"
#include "probes/capture.h"
#include "probes/profile.h"
#include "profile.skel.h"
#include <bpf/libbpf.h>

static struct capture_fixture fx;

static volatile int stop_spinning;

/* noinline + frame pointers (the test build keeps them): its name must show up */
__attribute__((noinline)) static void profile_test_spin(void)
{
	volatile unsigned long x = 0;

	while (!stop_spinning)
		x++;
}

static void *spinner(void *arg)
{
	profile_test_spin();
	return arg;
}

static int setup(void **s)
{
	capture_fixture_init(&fx, "bpf/profile", "profile");
	fx.cfg.capture.max_stacks = 1024;
	capture_fixture_prepare(&fx);
	return 0;
}

static int teardown(void **s)
{
	capture_fixture_fini(&fx);
	return 0;
}

static json_t *run_capture(const struct capture_target *t, struct capture_result *res)
{
	struct capture_params p;
	pthread_t th;

	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "frequency")] = 499;
	stop_spinning = 0;
	assert_int_equal(fx.ops->start(fx.state, t, &p), 0);
	assert_int_equal(pthread_create(&th, NULL, spinner, NULL), 0);
	sleep(1);
	stop_spinning = 1;
	pthread_join(th, NULL);
	fx.ops->stop(fx.state);
	memset(res, 0, sizeof(*res));
	assert_int_equal(fx.ops->collect(fx.state, res), 0);
	return res->data;
}

static void check_only_us_and_spin_seen(json_t *data, const struct capture_result *res)
{
	json_t *top = json_object_get(data, "top_stacks"), *st;
	bool spin_seen = false;
	size_t i;

	assert_true(json_integer_value(json_object_get(data, "samples")) > 100);
	assert_true(json_array_size(top) > 0);
	json_array_foreach(top, i, st)
	{
		/* filtered in the kernel: nothing but this process */
		assert_int_equal(json_integer_value(json_object_get(st, "pid")), getpid());
		assert_true(json_array_size(json_object_get(st, "frames")) > 0);
	}
	assert_int_equal(res->nartifacts, 1);
	assert_string_equal(res->artifacts[0].name, "profile.folded");
	spin_seen = strstr(res->artifacts[0].data, "profile_test_spin") != NULL;
	if (!spin_seen)
		print_error("folded:\n%.2000s\n", res->artifacts[0].data);
	assert_true(spin_seen);
}

static void test_pid_filter(void **s)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = getpid()};
	struct capture_result res;
	json_t *data = run_capture(&t, &res);

	assert_int_equal(json_integer_value(json_object_get(data, "frequency_hz")), 499);
	check_only_us_and_spin_seen(data, &res);
	/* a stack-map bucket collision loses a stack now and then, counted: on
	 * a slow (emulated) CPU samples land in more distinct places */
	if (res.lost_events)
		print_message("lost %" PRIu64 " of %" PRId64 " samples' stacks\n", res.lost_events,
			      (int64_t)json_integer_value(json_object_get(data, "samples")));
	assert_true(res.lost_events * 100 <=
		    (uint64_t)json_integer_value(json_object_get(data, "samples")));
	capture_result_clear(&res);
}

static void test_cgroup_filter(void **s)
{
	struct capture_target t = {.kind = TARGET_CGROUP};
	struct capture_result res;
	struct test_cgroup c;
	json_t *data;

	/* move into a fresh cgroup of the hierarchy the BPF side reports */
	test_cgroup_make(&c, fx.cgroups, "autotrace-test");
	test_cgroup_enter(c.dir, getpid());
	snprintf(t.cgroup, sizeof(t.cgroup), "%s", c.rel);
	t.cgroup_id = c.id;

	data = run_capture(&t, &res);
	check_only_us_and_spin_seen(data, &res);
	/* stacks are attributed to the cgroup by path */
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(data, "top_stacks"), 0), "cgroup")),
		c.rel);
	capture_result_clear(&res);
	test_cgroup_remove(&c, fx.cgroups);
}

/* 150 frames of recursion, spinning at the bottom */
__attribute__((noinline)) static unsigned long profile_test_deep(int depth)
{
	volatile unsigned long x = 0;

	if (depth > 0)
		return profile_test_deep(depth - 1) + 1;
	while (!stop_spinning)
		x++;
	return x;
}

static void *deep_spinner(void *arg)
{
	profile_test_deep(150);
	return arg;
}

static void test_deep_stacks_kept_to_the_limit(void **s)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = getpid()};
	struct capture_result res = {0};
	struct capture_params p;
	unsigned limit = stack_depth_limit(PROFILE_MAX_DEPTH), most = 0;
	json_int_t one_frame = 0;
	json_t *top, *st;
	pthread_t th;
	size_t i;

	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "frequency")] = 499;
	stop_spinning = 0;
	assert_int_equal(fx.ops->start(fx.state, &t, &p), 0);
	assert_int_equal(pthread_create(&th, NULL, deep_spinner, NULL), 0);
	sleep(1);
	stop_spinning = 1;
	pthread_join(th, NULL);
	fx.ops->stop(fx.state);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	assert_int_equal(json_integer_value(json_object_get(res.data, "max_stack_depth")), limit);
	top = json_object_get(res.data, "top_stacks");
	json_array_foreach(top, i, st)
	{
		json_t *f;
		size_t j;
		unsigned user = 0, deep = 0;
		bool whole = false, prologue = false;

		json_array_foreach(json_object_get(st, "frames"), j, f)
		{
			const char *fn = json_string_value(json_object_get(f, "func"));

			if (deep == 0 && user == 0 && fn && strcmp(fn, "profile_test_deep") == 0)
				prologue = json_integer_value(json_object_get(f, "offset")) < 8;
			user += !json_is_true(json_object_get(f, "kernel"));
			deep += fn && strcmp(fn, "profile_test_deep") == 0;
			whole |= fn && strcmp(fn, "deep_spinner") == 0;
		}
		/* a 150-deep stack is cut at the limit, never shorter; a sample taken
		 * on the way down (a slow CPU, an emulator) is whole, down to the
		 * thread's function, unless it caught the first call in its prologue
		 * ([endbr64;] push %rbp; mov %rsp,%rbp), before its frame was set up: the walk
		 * then misses its caller. Emulators (the kernel matrix's TCG guests)
		 * take interrupts at the start of a translated block, often a
		 * function's entry. */
		if (deep == 1 && prologue)
			whole = true;
		/* or the sampled address alone, when the kernel could not read the
		 * thread's user memory at that instant (seen in the TCG guests):
		 * counted, and checked against that count below */
		if (deep == 1 && user == 1) {
			one_frame += json_integer_value(json_object_get(st, "samples"));
			continue;
		}
		if (deep && !whole && user != limit)
			print_error("stack of %u user frames:\n%s\n", user,
				    json_dumps(json_object_get(st, "frames"), JSON_COMPACT));
		if (deep && !whole)
			assert_int_equal(user, limit);
		most = MAX(most, deep);
	}
	assert_true(most >= limit - 1);
	if (one_frame)
		print_message("%lld samples of the sampled address alone\n", (long long)one_frame);
	assert_true(one_frame <= json_integer_value(json_object_get(
					 res.data, "samples_unreadable_user_stacks")));
	assert_true(json_integer_value(json_object_get(res.data, "samples_truncated_stacks")) > 0);
	assert_int_equal(json_integer_value(json_object_get(res.data, "cpus_added")), 0);
	capture_result_clear(&res);
}

/* What the once-a-second check does for a CPU that came online: a CPU without
 * an event gets one (here CPU 0's event is dropped by hand: hotplugging a CPU
 * of a shared machine is not an option). */
static void test_cpu_without_event_gets_one(void **s)
{
	struct profile_bpf *skel = profile_bpf__open_and_load();
	int n = libbpf_num_possible_cpus(), opened;
	struct bpf_link **links;
	int *fds;

	assert_non_null(skel);
	assert_true(n > 0);
	links = calloc((size_t)n, sizeof(*links));
	fds = calloc((size_t)n, sizeof(*fds));
	assert_non_null(links);
	assert_non_null(fds);
	opened = perf_clock_attach(skel->progs.profile_sample, 99, links, fds, n);
	assert_true(opened > 0);
	assert_true(fds[0] >= 0);
	/* nothing to do while every online CPU has its event */
	assert_int_equal(perf_clock_refresh(skel->progs.profile_sample, 99, links, fds, n), 0);
	bpf_link__destroy(links[0]);
	links[0] = NULL;
	close(fds[0]);
	fds[0] = -1;
	assert_int_equal(perf_clock_refresh(skel->progs.profile_sample, 99, links, fds, n), 1);
	assert_true(fds[0] >= 0);
	assert_non_null(links[0]);
	perf_clock_detach(links, fds, n);
	for (int c = 0; c < n; c++)
		assert_int_equal(fds[c], -1);
	free(links);
	free(fds);
	profile_bpf__destroy(skel);
}

static void test_nothing_sampled_outside_window(void **s)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = getpid()};
	struct capture_params p;
	struct capture_result res = {0};
	pthread_t th;

	/* attach + detach at once, then spin: nothing may be recorded */
	capture_params_defaults(fx.ops, &p);
	assert_int_equal(fx.ops->start(fx.state, &t, &p), 0);
	fx.ops->stop(fx.state);
	stop_spinning = 0;
	assert_int_equal(pthread_create(&th, NULL, spinner, NULL), 0);
	usleep(300000);
	stop_spinning = 1;
	pthread_join(th, NULL);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	assert_true(json_integer_value(json_object_get(res.data, "samples")) < 5);
	capture_result_clear(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pid_filter),
		cmocka_unit_test(test_cgroup_filter),
		cmocka_unit_test(test_deep_stacks_kept_to_the_limit),
		cmocka_unit_test(test_cpu_without_event_gets_one),
		cmocka_unit_test(test_nothing_sampled_outside_window),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
