// SPDX-License-Identifier: GPL-2.0-only
/* The runq capture on the real kernel: two child processes spin on CPU 0 while
 * a thread of this test, pinned there too, wakes every few milliseconds. Its
 * waits must be reported with the children as the culprits, filtered to this
 * process, and CPU 0's run queue must show the crowd. */
#include "bpftest.h"
#include "testutil.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
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
#include "probes/capture.h"

static struct capture_fixture fx;

static atomic_int victim_tid, stop_victim;
static pid_t hogs[2];

static void pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	assert_int_equal(sched_setaffinity(0, sizeof(set), &set), 0);
}

static void *victim(void *arg)
{
	pin_cpu0();
	victim_tid = (int)gettid();
	while (!stop_victim) {
		struct timespec ts = {0, 2 * 1000 * 1000};
		volatile unsigned long x = 0;

		nanosleep(&ts, NULL);
		for (int i = 0; i < 200000; i++)
			x++;
	}
	return arg;
}

static void start_hogs(void)
{
	for (int i = 0; i < 2; i++) {
		hogs[i] = fork();
		assert_true(hogs[i] >= 0);
		if (hogs[i] == 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(0, &set);
			sched_setaffinity(0, sizeof(set), &set);
			for (;;)
				__asm__ volatile("" ::: "memory");
		}
	}
}

static void stop_hogs(void)
{
	for (int i = 0; i < 2; i++) {
		kill(hogs[i], SIGKILL);
		waitpid(hogs[i], NULL, 0);
	}
}

static int setup(void **s)
{
	capture_fixture_init(&fx, "bpf/runq", "runq");
	return 0;
}

static int teardown(void **s)
{
	capture_fixture_fini(&fx);
	return 0;
}

static void run(struct capture_result *res)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = getpid()};
	struct capture_params p;
	pthread_t th;

	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "threshold_us")] = 1000;
	start_hogs();
	stop_victim = 0;
	assert_int_equal(fx.ops->start(fx.state, &t, &p), 0);
	{
		/* born on CPU 0: pinning itself once running left a window in which
		 * it could be preempted, and wait, elsewhere (wide on a slow CPU) */
		pthread_attr_t attr;
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(0, &set);
		assert_int_equal(pthread_attr_init(&attr), 0);
		assert_int_equal(pthread_attr_setaffinity_np(&attr, sizeof(set), &set), 0);
		assert_int_equal(pthread_create(&th, &attr, victim, NULL), 0);
		pthread_attr_destroy(&attr);
	}
	/* what the agent's event loop does with the ring buffer */
	for (int i = 0; i < 15; i++) {
		usleep(100 * 1000);
		fx.ops->ring_ready(fx.state);
	}
	stop_victim = 1;
	pthread_join(th, NULL);
	fx.ops->stop(fx.state);
	fx.ops->ring_ready(fx.state);
	stop_hogs();
	memset(res, 0, sizeof(*res));
	assert_int_equal(fx.ops->collect(fx.state, res), 0);
}

static void dump(json_t *j)
{
	char *t = json_dumps(j, JSON_INDENT(1));

	print_error("%.8000s\n", t);
	free(t);
}

static bool is_hog(json_int_t pid)
{
	return pid == hogs[0] || pid == hogs[1];
}

static void check(json_t *data)
{
	json_t *e, *c, *v;
	size_t i, j;
	bool victim_seen = false, hog_culprit = false, hog_in_culprits = false;

	if (json_integer_value(json_object_get(data, "events")) < 5)
		dump(data);
	assert_true(json_integer_value(json_object_get(data, "events")) >= 5);
	json_array_foreach(json_object_get(data, "worst"), i, e)
	{
		/* filtered in the kernel: only our threads are victims */
		assert_int_equal(json_integer_value(json_object_get(e, "pid")), getpid());
		assert_true(json_integer_value(json_object_get(e, "wait_us")) >= 1000);
		if (json_integer_value(json_object_get(e, "tid")) != victim_tid)
			continue;
		victim_seen = true;
		/* pinned to CPU 0 once running: its first wait (new) may be elsewhere */
		if (strcmp(json_string_value(json_object_get(e, "reason")), "new"))
			assert_int_equal(json_integer_value(json_object_get(e, "cpu")), 0);
		json_array_foreach(json_object_get(e, "culprits"), j, c) hog_culprit |=
			is_hog(json_integer_value(json_object_get(c, "pid")));
	}
	if (!victim_seen || !hog_culprit)
		dump(data);
	assert_true(victim_seen);
	assert_true(hog_culprit);
	json_array_foreach(json_object_get(data, "culprits"), i, c) hog_in_culprits |=
		is_hog(json_integer_value(json_object_get(c, "pid")));
	assert_true(hog_in_culprits);
	victim_seen = false;
	json_array_foreach(json_object_get(data, "victims"), i, v) victim_seen |=
		json_integer_value(json_object_get(v, "tid")) == victim_tid &&
		json_integer_value(json_object_get(v, "waits")) >= 5;
	assert_true(victim_seen);
	/* CPU 0 held at least the two hogs most of the time */
	json_array_foreach(json_object_get(data, "runq_length"), i, v)
	{
		if (json_integer_value(json_object_get(v, "cpu")) != 0)
			continue;
		assert_true(json_integer_value(json_object_get(v, "samples")) > 50);
		assert_true(json_integer_value(json_object_get(v, "max")) >= 2);
		assert_true(json_real_value(json_object_get(v, "mean")) > 1.5);
	}
	assert_true(json_array_size(json_object_get(data, "runq_length")) >= 1);
	assert_true(json_array_size(json_object_get(data, "wait_histogram")) >= 1);
}

static void test_waits_and_culprits(void **s)
{
	struct capture_result res;

	capture_fixture_prepare_tp(&fx, false);
	run(&res);
	assert_string_equal(json_string_value(json_object_get(res.data, "tracepoints")), "tp_btf");
	check(res.data);
	assert_int_equal(res.lost_events, 0);
	capture_result_clear(&res);
}

static void test_raw_tp_fallback(void **s)
{
	struct capture_result res;

	capture_fixture_prepare_tp(&fx, true);
	run(&res);
	assert_string_equal(json_string_value(json_object_get(res.data, "tracepoints")), "raw_tp");
	check(res.data);
	capture_result_clear(&res);
}

static void test_nothing_outside_window(void **s)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = getpid()};
	struct capture_params p;
	struct capture_result res = {0};
	pthread_t th;
	json_t *v;
	size_t i;

	capture_fixture_prepare_tp(&fx, false);
	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "threshold_us")] = 1000;
	assert_int_equal(fx.ops->start(fx.state, &t, &p), 0);
	fx.ops->stop(fx.state);
	start_hogs();
	stop_victim = 0;
	assert_int_equal(pthread_create(&th, NULL, victim, NULL), 0);
	usleep(300 * 1000);
	stop_victim = 1;
	pthread_join(th, NULL);
	stop_hogs();
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	/* the instant between start and stop may have seen a wait of ours; the
	 * victim, created after the stop, must not be seen at all */
	assert_true(json_integer_value(json_object_get(res.data, "waits")) <= 3);
	json_array_foreach(json_object_get(res.data, "victims"), i, v)
		assert_int_not_equal(json_integer_value(json_object_get(v, "tid")), victim_tid);
	capture_result_clear(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waits_and_culprits),
		cmocka_unit_test(test_raw_tp_fallback),
		cmocka_unit_test(test_nothing_outside_window),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
