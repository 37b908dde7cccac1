// SPDX-License-Identifier: GPL-2.0-only
/* The offcpu capture on the real kernel: this test's own threads block in
 * nanosleep (S), in a futex woken by the main thread (S, with a waker), and
 * in vfork (D); the capture must name each path, filtered to this process,
 * with tp_btf and with the raw_tp fallback. */
#include "bpftest.h"
#include "testutil.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/symbolize.h"
#include "probes/capture.h"

static struct capture_fixture fx;

static atomic_int futex_word, park_word;
static atomic_int sleeper_tid, futex_tid, vfork_tid, park_tid;

__attribute__((noinline)) static void offcpu_test_nap(void)
{
	struct timespec ts = {0, 20 * 1000 * 1000};

	nanosleep(&ts, NULL);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void *offcpu_test_sleeper(void *arg)
{
	sleeper_tid = (int)gettid();
	for (int i = 0; i < 25; i++)
		offcpu_test_nap();
	__asm__ volatile("" ::: "memory");
	return arg;
}

__attribute__((noinline)) static void *offcpu_test_futex_waiter(void *arg)
{
	futex_tid = (int)gettid();
	for (int round = 1; round <= 3; round++) {
		/* wait until the main thread bumps the word to this round */
		while (atomic_load(&futex_word) < round)
			syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, round - 1, NULL, NULL,
				0);
	}
	return arg;
}

/* blocks as the window opens and stays blocked past its end */
static void *offcpu_test_parked(void *arg)
{
	park_tid = (int)gettid();
	while (!atomic_load(&park_word))
		syscall(SYS_futex, &park_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	return arg;
}

__attribute__((noinline)) static void *offcpu_test_vforker(void *arg)
{
	pid_t child;

	vfork_tid = (int)gettid();
	child = vfork();
	if (child == 0) {
		struct timespec ts = {0, 300 * 1000 * 1000};

		nanosleep(&ts, NULL);
		_exit(0);
	}
	if (child > 0)
		waitpid(child, NULL, 0);
	return arg;
}

static int setup(void **s)
{
	capture_fixture_init(&fx, "bpf/offcpu", "offcpu");
	fx.cfg.capture.max_stacks = 4096;
	fx.cfg.capture.top_stacks = 50;
	return 0;
}

static int teardown(void **s)
{
	capture_fixture_fini(&fx);
	return 0;
}

/* Runs the three blockers under a capture of this process. */
static void run_capture(struct capture_params *p, struct capture_result *res)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = getpid()};
	pthread_t th[3], parked;

	futex_word = 0;
	park_word = 0;
	assert_int_equal(fx.ops->start(fx.state, &t, p), 0);
	assert_int_equal(pthread_create(&parked, NULL, offcpu_test_parked, NULL), 0);
	assert_int_equal(pthread_create(&th[0], NULL, offcpu_test_sleeper, NULL), 0);
	assert_int_equal(pthread_create(&th[1], NULL, offcpu_test_futex_waiter, NULL), 0);
	assert_int_equal(pthread_create(&th[2], NULL, offcpu_test_vforker, NULL), 0);
	for (int round = 1; round <= 3; round++) {
		usleep(150 * 1000);
		atomic_store(&futex_word, round);
		syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	fx.ops->stop(fx.state);
	memset(res, 0, sizeof(*res));
	assert_int_equal(fx.ops->collect(fx.state, res), 0);
	park_word = 1;
	syscall(SYS_futex, &park_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_join(parked, NULL);
}

static bool frames_have(json_t *frames, const char *const *names, bool kernel)
{
	json_t *f;
	size_t i;

	json_array_foreach(frames, i, f)
	{
		const char *fn = json_string_value(json_object_get(f, "func"));

		if (!fn || json_is_true(json_object_get(f, "kernel")) != kernel)
			continue;
		for (const char *const *n = names; *n; n++)
			if (strstr(fn, *n))
				return true;
	}
	return false;
}

/* The largest stack of thread tid, in this state. */
static json_t *top_of(json_t *data, int tid, const char *state_name)
{
	json_t *st;
	size_t i;

	json_array_foreach(json_object_get(data, "top_stacks"), i,
			   st) if (json_integer_value(json_object_get(st, "tid")) == tid &&
				   strcmp(json_string_value(json_object_get(st, "state")),
					  state_name) == 0) return st;
	return NULL;
}

static void dump(json_t *data)
{
	char *t = json_dumps(data, JSON_INDENT(1));

	print_error("%.6000s\n", t);
	free(t);
}

static void check_blockers_seen(json_t *data, const struct capture_result *res)
{
	static const char *const nsleep[] = {"do_nanosleep", "hrtimer_nanosleep", NULL};
	static const char *const futex[] = {"futex_wait", NULL};
	static const char *const vfork_wait[] = {"kernel_clone", "__do_sys_vfork",
						 "wait_for_vfork_done", NULL};
	static const char *const user_sleeper[] = {"offcpu_test_", NULL};
	json_t *st, *w;
	size_t i;
	bool waker_seen = false;

	json_array_foreach(json_object_get(data, "top_stacks"), i, st)
		assert_int_equal(json_integer_value(json_object_get(st, "pid")), getpid());

	st = top_of(data, sleeper_tid, "S");
	if (!st || !frames_have(json_object_get(st, "frames"), nsleep, true))
		dump(data);
	assert_non_null(st);
	assert_true(frames_have(json_object_get(st, "frames"), nsleep, true));
	assert_true(frames_have(json_object_get(st, "frames"), user_sleeper, false));
	/* 25 naps of 20 ms */
	assert_true(json_integer_value(json_object_get(st, "blocked_us")) > 400000);

	st = top_of(data, futex_tid, "S");
	if (!st)
		dump(data);
	assert_non_null(st);
	assert_true(frames_have(json_object_get(st, "frames"), futex, true));

	st = top_of(data, vfork_tid, "D");
	if (!st)
		dump(data);
	assert_non_null(st);
	assert_true(frames_have(json_object_get(st, "frames"), vfork_wait, true));
	assert_true(json_integer_value(json_object_get(st, "blocked_us")) > 250000);

	/* the futex waiter was woken by the main thread, in futex_wake */
	json_array_foreach(json_object_get(data, "wakers"), i, w)
	{
		static const char *const wake[] = {"futex_wake", NULL};

		if (json_integer_value(json_object_get(w, "tid")) == futex_tid &&
		    json_integer_value(json_object_get(w, "waker_tid")) == getpid() &&
		    frames_have(json_object_get(w, "frames"), wake, true))
			waker_seen = true;
	}
	if (!waker_seen)
		dump(json_object_get(data, "wakers"));
	assert_true(waker_seen);

	/* the napper's timer fires in an interrupt: its waker is "[interrupt]"
	 * with the timer's stack, not whichever task the interrupt landed on */
	{
		static const char *const timer[] = {"hrtimer_wakeup", NULL};
		/* under emulation (AUTOTRACE_TEST_SLOWDOWN, the kernel matrix's TCG
		 * guests) a wake-up now and then comes from a task: 0.9 of them from
		 * the interrupt there, every one here */
		bool slow = getenv("AUTOTRACE_TEST_SLOWDOWN") != NULL;
		json_int_t wakeups = 0, others = 0;
		size_t rows = 0;

		json_array_foreach(json_object_get(data, "wakers"), i, w)
		{
			/* its nanosleeps; it may also wait, rarely, for another
			 * thread of this process: mmap_lock in a page fault, a
			 * futex in the allocator (more often on a slow CPU) */
			const char *in = json_string_value(json_object_get(w, "blocked_in"));

			if (json_integer_value(json_object_get(w, "tid")) != sleeper_tid || !in ||
			    !strstr(in, "nanosleep"))
				continue;
			if (strcmp(json_string_value(json_object_get(w, "waker_comm")),
				   "[interrupt]"))
				dump(w);
			if (slow && strcmp(json_string_value(json_object_get(w, "waker_comm")),
					   "[interrupt]")) {
				others += json_integer_value(json_object_get(w, "wakeups"));
				continue;
			}
			rows++;
			assert_string_equal(json_string_value(json_object_get(w, "waker_comm")),
					    "[interrupt]");
			assert_int_equal(json_integer_value(json_object_get(w, "waker_tid")), 0);
			assert_true(frames_have(json_object_get(w, "frames"), timer, true));
			wakeups += json_integer_value(json_object_get(w, "wakeups"));
		}
		if (rows == 0 || rows > 2 || wakeups < 20)
			dump(json_object_get(data, "wakers"));
		assert_true(rows >= 1 && rows <= 2);
		assert_true(wakeups >= 20);
		assert_true(others * 10 <= wakeups + others);
	}

	/* still blocked when the window ended: counted up to its end */
	st = top_of(data, park_tid, "S");
	if (!st)
		dump(data);
	assert_non_null(st);
	assert_true(frames_have(json_object_get(st, "frames"), futex, true));
	assert_true(json_integer_value(json_object_get(st, "blocked_us")) > 400000);
	assert_true(json_integer_value(json_object_get(data, "blocks_ongoing")) >= 1);
	json_array_foreach(json_object_get(data, "threads"), i,
			   w) if (json_integer_value(json_object_get(w, "tid")) == park_tid)
		assert_true(json_is_true(json_object_get(w, "still_blocked")));

	assert_true(json_integer_value(json_object_get(json_object_get(data, "blocked_us_by_state"),
						       "D")) > 250000);
	assert_int_equal(res->nartifacts, 1);
	assert_string_equal(res->artifacts[0].name, "offcpu.folded");
	assert_non_null(strstr(res->artifacts[0].data, ";[S];"));
	assert_non_null(strstr(res->artifacts[0].data, ";[D];"));
	assert_non_null(strstr(res->artifacts[0].data, "do_nanosleep_[k]"));
}

static void test_blocking_paths(void **s)
{
	struct capture_params p;
	struct capture_result res;

	capture_fixture_prepare_tp(&fx, false);
	capture_params_defaults(fx.ops, &p);
	run_capture(&p, &res);
	assert_string_equal(json_string_value(json_object_get(res.data, "tracepoints")), "tp_btf");
	check_blockers_seen(res.data, &res);
	capture_result_clear(&res);
}

static void test_raw_tp_fallback(void **s)
{
	struct capture_params p;
	struct capture_result res;

	capture_fixture_prepare_tp(&fx, true);
	capture_params_defaults(fx.ops, &p);
	run_capture(&p, &res);
	assert_string_equal(json_string_value(json_object_get(res.data, "tracepoints")), "raw_tp");
	check_blockers_seen(res.data, &res);
	capture_result_clear(&res);
	capture_fixture_prepare_tp(&fx, false);
}

static void test_min_block(void **s)
{
	struct capture_params p;
	struct capture_result res;
	bool sleeper_seen = false;
	json_int_t us = 0;
	json_t *procs, *e;
	size_t i;

	capture_fixture_prepare_tp(&fx, false);
	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "min_block_us")] = 10 * 1000 * 1000;
	run_capture(&p, &res);
	/* every block was shorter than 10 s: counted, none kept by stack */
	assert_int_equal(json_integer_value(json_object_get(res.data, "blocks")), 0);
	assert_true(json_integer_value(json_object_get(res.data, "short_blocks")) > 25);
	assert_int_equal(json_array_size(json_object_get(res.data, "top_stacks")), 0);
	/* but their time still counts for the thread and its process: the
	 * sleeper's 25 naps of 20 ms */
	assert_true(json_integer_value(json_object_get(res.data, "short_blocked_us")) >= 500000);
	assert_int_equal(json_integer_value(
				 json_object_get(json_object_get(res.data, "lost"), "short_full")),
			 0);
	json_array_foreach(json_object_get(res.data, "threads"), i, e)
	{
		if (json_integer_value(json_object_get(e, "tid")) != sleeper_tid)
			continue;
		assert_true(json_integer_value(json_object_get(e, "sleep_us")) >= 500000);
		assert_true(json_integer_value(json_object_get(e, "blocks")) >= 25);
		sleeper_seen = true;
	}
	if (!sleeper_seen)
		dump(res.data);
	assert_true(sleeper_seen);
	procs = json_object_get(json_object_get(res.data, "consumers"), "processes");
	json_array_foreach(procs, i, e)
	{
		if (json_integer_value(json_object_get(e, "pid")) == getpid())
			us = json_integer_value(json_object_get(e, "blocked_us"));
	}
	if (us < 500000)
		dump(res.data);
	assert_true(us >= 500000);
	capture_result_clear(&res);
}

static atomic_int storm_stop;

/* one end of a pipe ping-pong: a block and a wakeup per byte */
static void *offcpu_test_storm(void *arg)
{
	int *fds = arg; /* read end, write end */
	char c = 0;

	while (!atomic_load(&storm_stop))
		if (write(fds[1], &c, 1) != 1 || read(fds[0], &c, 1) != 1)
			break;
	return NULL;
}

static void test_walk_budget_under_a_storm(void **s)
{
	struct capture_params p;
	struct capture_result res;
	int ab[2], ba[2], a_end[2], b_end[2];
	pthread_t a, b;
	json_t *st;
	static const char *const nsleep[] = {"do_nanosleep", NULL};
	static const char *const vfork_wait[] = {"kernel_clone", "__do_sys_vfork",
						 "wait_for_vfork_done", NULL};

	capture_fixture_prepare_tp(&fx, false);
	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "max_walks_per_s")] = 100;
	assert_int_equal(pipe(ab), 0);
	assert_int_equal(pipe(ba), 0);
	a_end[0] = ba[0];
	a_end[1] = ab[1];
	b_end[0] = ab[0];
	b_end[1] = ba[1];
	storm_stop = 0;
	assert_int_equal(pthread_create(&a, NULL, offcpu_test_storm, a_end), 0);
	assert_int_equal(pthread_create(&b, NULL, offcpu_test_storm, b_end), 0);
	run_capture(&p, &res);
	storm_stop = 1;
	close(ab[1]);
	close(ba[1]);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	close(ab[0]);
	close(ba[0]);

	/* the storm's blocks reused their stacks instead of walking them */
	assert_int_equal(json_integer_value(json_object_get(res.data, "max_walks_per_s")), 100);
	assert_true(json_integer_value(json_object_get(res.data, "stacks_reused")) > 1000);
	/* and the one-off blocks still got their own */
	st = top_of(res.data, sleeper_tid, "S");
	if (!st)
		dump(res.data);
	assert_non_null(st);
	assert_true(frames_have(json_object_get(st, "frames"), nsleep, true));
	st = top_of(res.data, vfork_tid, "D");
	if (!st)
		dump(res.data);
	assert_non_null(st);
	assert_true(frames_have(json_object_get(st, "frames"), vfork_wait, true));
	capture_result_clear(&res);
}

static void test_nothing_outside_window(void **s)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = getpid()};
	struct capture_params p;
	struct capture_result res = {0};
	pthread_t th;
	json_t *th_json;
	size_t i;

	capture_params_defaults(fx.ops, &p);
	assert_int_equal(fx.ops->start(fx.state, &t, &p), 0);
	fx.ops->stop(fx.state);
	assert_int_equal(pthread_create(&th, NULL, offcpu_test_sleeper, NULL), 0);
	pthread_join(th, NULL);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	/* the instant between start and stop may have seen a block of ours; the
	 * sleeper, created after the stop, must not be seen at all */
	assert_true(json_integer_value(json_object_get(res.data, "blocks")) <= 3);
	json_array_foreach(json_object_get(res.data, "threads"), i, th_json) assert_int_not_equal(
		json_integer_value(json_object_get(th_json, "tid")), sleeper_tid);
	capture_result_clear(&res);
}

static void test_host_target_leaves_the_agent_out(void **s)
{
	struct capture_target t = {.kind = TARGET_HOST};
	struct capture_params p;
	struct capture_result res = {0};
	pthread_t th;
	pid_t other;
	int status;
	json_t *e;
	size_t i;

	/* this test plays the agent: a host-wide capture must not list it */
	capture_params_defaults(fx.ops, &p);
	assert_int_equal(fx.ops->start(fx.state, &t, &p), 0);
	/* the rest of the host: another process napping the same way (a quiet
	 * guest kernel may have nothing else that blocks in the window) */
	other = fork();
	assert_true(other >= 0);
	if (other == 0) {
		offcpu_test_sleeper(NULL);
		_exit(0);
	}
	assert_int_equal(pthread_create(&th, NULL, offcpu_test_sleeper, NULL), 0);
	pthread_join(th, NULL);
	assert_int_equal(waitpid(other, &status, 0), other);
	fx.ops->stop(fx.state);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	assert_true(json_integer_value(json_object_get(res.data, "blocks")) > 0);
	assert_true(json_array_size(json_object_get(res.data, "threads")) > 0);
	json_array_foreach(json_object_get(res.data, "threads"), i, e)
		assert_int_not_equal(json_integer_value(json_object_get(e, "pid")), getpid());
	json_array_foreach(json_object_get(res.data, "top_stacks"), i, e)
		assert_int_not_equal(json_integer_value(json_object_get(e, "pid")), getpid());
	capture_result_clear(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocking_paths),
		cmocka_unit_test(test_raw_tp_fallback),
		cmocka_unit_test(test_min_block),
		cmocka_unit_test(test_walk_budget_under_a_storm),
		cmocka_unit_test(test_nothing_outside_window),
		cmocka_unit_test(test_host_target_leaves_the_agent_out),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
