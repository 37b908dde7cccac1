// SPDX-License-Identifier: GPL-2.0-only
/* The dstate capture on the real kernel: a thread of this test vforks a child
 * that sleeps, so the thread sits in D fx.state in the kernel's vfork wait; the
 * capture must find it with that stack, for how long, in its start and end
 * snapshots, and label it. */
#include "bpftest.h"
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "probes/capture.h"

static struct capture_fixture fx;

static atomic_int vfork_tid;
static atomic_uint_least64_t vfork_at_ns;
static int child_sleep_ms;
static uint64_t stopped_at_ns;

static void *vforker(void *arg)
{
	pid_t child;

	vfork_tid = (int)gettid();
	vfork_at_ns = now_mono_ns();
	child = vfork();
	if (child == 0) {
		struct timespec ts = {child_sleep_ms / 1000, (child_sleep_ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
		_exit(0);
	}
	if (child > 0)
		waitpid(child, NULL, 0);
	return arg;
}

static int setup(void **s)
{
	capture_fixture_init(&fx, "bpf/dstate", "dstate");
	capture_fixture_prepare(&fx);
	return 0;
}

static int teardown(void **s)
{
	capture_fixture_fini(&fx);
	return 0;
}

/* vfork a child sleeping child_ms; capture pid for window_ms from 300 ms in. */
static void run_target(const struct capture_target *target, const struct capture_params *p,
		       int child_ms, int window_ms, struct capture_result *res);

static void run(int pid, const struct capture_params *p, int child_ms, int window_ms,
		struct capture_result *res)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = pid};

	run_target(&t, p, child_ms, window_ms, res);
}

static void run_target(const struct capture_target *target, const struct capture_params *p,
		       int child_ms, int window_ms, struct capture_result *res)
{
	const struct capture_target t = *target;
	pthread_t th;
	int waited = 0;

	child_sleep_ms = child_ms;
	assert_int_equal(pthread_create(&th, NULL, vforker, NULL), 0);
	usleep(300 * 1000);
	assert_int_equal(fx.ops->start(fx.state, &t, p), 0);
	/* what the agent's event loop does with the snapshot timer */
	while (waited < window_ms) {
		usleep(50 * 1000);
		waited += 50;
		fx.ops->ring_ready(fx.state);
	}
	fx.ops->stop(fx.state);
	stopped_at_ns = now_mono_ns();
	memset(res, 0, sizeof(*res));
	assert_int_equal(fx.ops->collect(fx.state, res), 0);
	pthread_join(th, NULL);
}

static json_t *task_of(json_t *data, int tid)
{
	json_t *t;
	size_t i;

	json_array_foreach(json_object_get(data, "tasks"), i,
			   t) if (json_integer_value(json_object_get(t, "tid")) == tid) return t;
	return NULL;
}

static bool frames_have(json_t *frames, const char *name)
{
	json_t *f;
	size_t i;

	json_array_foreach(frames, i, f)
	{
		const char *fn = json_string_value(json_object_get(f, "func"));

		if (fn && strcmp(fn, name) == 0)
			return true;
	}
	return false;
}

static void dump(json_t *j)
{
	char *t = json_dumps(j, JSON_INDENT(1));

	print_error("%.8000s\n", t);
	free(t);
}

static void test_vfork_parent_stuck(void **s)
{
	struct capture_params p;
	struct capture_result res;
	json_t *t, *frames;
	uint64_t end_ns, expect_ms;
	json_int_t blocked;

	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "threshold")] = 100;
	p.v[capture_param_index(fx.ops, "interval")] = 200;
	run(getpid(), &p, 2000, 1000, &res);
	end_ns = stopped_at_ns;
	t = task_of(res.data, vfork_tid);
	if (!t)
		dump(res.data);
	assert_non_null(t);
	frames = json_object_get(t, "frames");
	/* the kernel's vfork wait on 6.x: wait_for_vfork_done() is inlined into
	 * kernel_clone <- __do_sys_vfork (an alias of __x64_sys_vfork) */
	if (!frames_have(frames, "kernel_clone"))
		dump(t);
	assert_true(frames_have(frames, "kernel_clone"));
	assert_true(frames_have(frames, "__do_sys_vfork") ||
		    frames_have(frames, "__x64_sys_vfork"));
	/* wchan: the first frame outside the scheduler, as /proc/PID/wchan */
	assert_string_equal(json_string_value(json_object_get(t, "wchan")),
			    json_string_value(json_object_get(json_array_get(frames, 0), "func")));
	assert_non_null(strstr(json_string_value(json_object_get(t, "label")), "vfork"));
	assert_true(json_is_true(json_object_get(t, "at_start")));
	assert_true(json_is_true(json_object_get(t, "at_end")));
	assert_true(json_is_true(json_object_get(t, "stayed_stuck")));
	assert_true(json_integer_value(json_object_get(t, "snapshots")) >= 4);
	assert_true(json_is_true(json_object_get(t, "killable")));
	/* how long: from vfork to the end snapshot, within the clock's tick */
	blocked = json_integer_value(json_object_get(t, "blocked_ms"));
	expect_ms = (end_ns - vfork_at_ns) / 1000000;
	if (blocked + 100 < (json_int_t)expect_ms || blocked > (json_int_t)expect_ms + 20)
		print_error("blocked_ms %lld, expected about %llu\n", (long long)blocked,
			    (unsigned long long)expect_ms);
	assert_true(blocked + 100 >= (json_int_t)expect_ms);
	assert_true(blocked <= (json_int_t)expect_ms + 20);
	assert_int_equal(json_integer_value(json_object_get(res.data, "stayed_stuck")) >= 1, 1);
	assert_true(json_integer_value(json_object_get(res.data, "snapshots")) >= 4);
	assert_int_equal(res.lost_events, 0);
	assert_int_equal(res.nartifacts, 1);
	assert_string_equal(res.artifacts[0].name, "dstate.folded");
	assert_non_null(strstr(res.artifacts[0].data, "kernel_clone_[k]"));
	capture_result_clear(&res);
}

static void test_unstuck_before_end(void **s)
{
	struct capture_params p;
	struct capture_result res;
	json_t *t;

	/* the child exits mid-window: seen at the start, gone at the end */
	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "threshold")] = 100;
	p.v[capture_param_index(fx.ops, "interval")] = 0;
	run(getpid(), &p, 700, 1000, &res);
	t = task_of(res.data, vfork_tid);
	assert_non_null(t);
	assert_true(json_is_true(json_object_get(t, "at_start")));
	assert_false(json_is_true(json_object_get(t, "at_end")));
	assert_false(json_is_true(json_object_get(t, "stayed_stuck")));
	assert_int_equal(json_integer_value(json_object_get(res.data, "snapshots")), 2);
	capture_result_clear(&res);
}

static void test_rule_patterns_first(void **s)
{
	const char *const pats[] = {"not-this=no_such_function_*", "our wait=kernel_clone"};
	struct capture_params p;
	struct capture_result res;
	char why[256];
	json_t *t;

	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "threshold")] = 100;
	assert_int_equal(
		capture_param_set_strings(fx.ops, (unsigned)capture_param_index(fx.ops, "patterns"),
					  &p, pats, 2, why, sizeof(why)),
		0);
	run(getpid(), &p, 800, 400, &res);
	t = task_of(res.data, vfork_tid);
	assert_non_null(t);
	assert_string_equal(json_string_value(json_object_get(t, "label")), "our wait");
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(res.data, "labels"), 0), "label")),
		"our wait");
	capture_result_clear(&res);
}

static void test_threshold_and_filter(void **s)
{
	struct capture_params p;
	struct capture_result res;

	/* 10 s threshold: seen, too short, not reported */
	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "threshold")] = 10000;
	run(getpid(), &p, 800, 300, &res);
	assert_null(task_of(res.data, vfork_tid));
	assert_true(json_integer_value(json_object_get(res.data, "short_sightings")) >= 2);
	capture_result_clear(&res);

	/* another process as the target: our thread is filtered out in the kernel */
	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "threshold")] = 0;
	run(1, &p, 800, 300, &res);
	assert_null(task_of(res.data, vfork_tid));
	capture_result_clear(&res);
}

static void test_cgroup_target(void **s)
{
	struct capture_target t = {.kind = TARGET_CGROUP};
	struct capture_params p;
	struct capture_result res;
	struct test_cgroup c;
	json_t *task;
	pid_t child;
	int waited = 0;

	/* this process in a fresh cgroup of the hierarchy the BPF side reports;
	 * the D task is a child (the agent's own process is never reported for
	 * a cgroup target, and this test plays the agent) */
	test_cgroup_make(&c, fx.cgroups, "autotrace-dstate");
	test_cgroup_enter(c.dir, getpid());
	snprintf(t.cgroup, sizeof(t.cgroup), "%s", c.rel);
	t.cgroup_id = c.id;
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		if (vfork() == 0) {
			usleep(1500 * 1000);
			_exit(0);
		}
		_exit(0);
	}
	usleep(300 * 1000);
	test_cgroup_enter(cgroups_id_root(fx.cgroups), getpid()); /* the child stays */

	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "threshold")] = 100;
	assert_int_equal(fx.ops->start(fx.state, &t, &p), 0);
	while (waited < 300) {
		usleep(50 * 1000);
		waited += 50;
		fx.ops->ring_ready(fx.state);
	}
	fx.ops->stop(fx.state);
	memset(&res, 0, sizeof(res));
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	waitpid(child, NULL, 0);

	task = task_of(res.data, child);
	if (!task)
		dump(res.data);
	assert_non_null(task);
	assert_string_equal(json_string_value(json_object_get(task, "cgroup")), t.cgroup);
	/* only the cgroup's tasks */
	assert_int_equal(json_array_size(json_object_get(res.data, "tasks")), 1);
	capture_result_clear(&res);
	test_cgroup_remove(&c, fx.cgroups);
}

static void test_pattern_syntax(void **s)
{
	static const char *const bad[] = {"=glob", "label=", "a=b||c", "a=b|"};
	struct capture_params p;
	unsigned idx = (unsigned)capture_param_index(fx.ops, "patterns");
	char why[256];

	capture_params_defaults(fx.ops, &p);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		why[0] = '\0';
		assert_int_not_equal(
			capture_param_set_strings(fx.ops, idx, &p, &bad[i], 1, why, sizeof(why)),
			0);
		assert_non_null(strstr(why, bad[i]));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vfork_parent_stuck),
		cmocka_unit_test(test_unstuck_before_end),
		cmocka_unit_test(test_rule_patterns_first),
		cmocka_unit_test(test_threshold_and_filter),
		cmocka_unit_test(test_cgroup_target),
		cmocka_unit_test(test_pattern_syntax),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
