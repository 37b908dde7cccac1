// SPDX-License-Identifier: GPL-2.0-only
/* The timeline capture on the real kernel: one thread of this test spins, one
 * naps in nanosleep, one waits on a futex for the whole window. Each must get
 * a lane covering the window with the right mix of states, the sleeper's off
 * intervals must carry the nanosleep stack, and timeline.svg must draw them. */
#include "bpftest.h"
#include "testutil.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/symbolize.h"
#include "probes/capture.h"

static struct capture_fixture fx;

static atomic_int spin_tid, nap_tid, park_tid, stop_all, park_word;

static void *spinner(void *arg)
{
	volatile unsigned long x = 0;

	spin_tid = (int)gettid();
	while (!stop_all)
		x++;
	return arg;
}

__attribute__((noinline)) static void *timeline_test_napper(void *arg)
{
	nap_tid = (int)gettid();
	while (!stop_all) {
		struct timespec ts = {0, 30 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	return arg;
}

static void *parked(void *arg)
{
	park_tid = (int)gettid();
	while (!atomic_load(&park_word))
		syscall(SYS_futex, &park_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	return arg;
}

static int setup(void **s)
{
	capture_fixture_init(&fx, "bpf/timeline", "timeline");
	return 0;
}

static int teardown(void **s)
{
	capture_fixture_fini(&fx);
	return 0;
}

static void run(const struct capture_params *p, struct capture_result *res)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = getpid()};
	pthread_t th[3];

	stop_all = 0;
	park_word = 0;
	assert_int_equal(pthread_create(&th[0], NULL, spinner, NULL), 0);
	assert_int_equal(pthread_create(&th[1], NULL, timeline_test_napper, NULL), 0);
	assert_int_equal(pthread_create(&th[2], NULL, parked, NULL), 0);
	usleep(200 * 1000); /* everyone settled before the window */
	assert_int_equal(fx.ops->start(fx.state, &t, p), 0);
	for (int i = 0; i < 10; i++) {
		usleep(100 * 1000);
		fx.ops->ring_ready(fx.state);
	}
	fx.ops->stop(fx.state);
	fx.ops->ring_ready(fx.state);
	memset(res, 0, sizeof(*res));
	assert_int_equal(fx.ops->collect(fx.state, res), 0);
	stop_all = 1;
	park_word = 1;
	syscall(SYS_futex, &park_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
}

static json_t *lane_of(json_t *data, int tid)
{
	json_t *l;
	size_t i;

	json_array_foreach(json_object_get(data, "threads"), i,
			   l) if (json_integer_value(json_object_get(l, "tid")) == tid) return l;
	return NULL;
}

static void dump(json_t *j)
{
	char *t = json_dumps(j, JSON_COMPACT);

	print_error("%.6000s\n", t);
	free(t);
}

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* Interval i of a lane: its parallel arrays. */
static size_t iv_count(json_t *lane)
{
	json_t *tl = json_object_get(lane, "timeline");
	size_t n = json_array_size(json_object_get(tl, "start_us"));

	/* every array has one entry per interval */
	assert_int_equal(json_array_size(json_object_get(tl, "dur_us")), n);
	assert_int_equal(json_array_size(json_object_get(tl, "stack")), n);
	assert_int_equal(strlen(json_string_value(json_object_get(tl, "state"))), n);
	return n;
}

static json_int_t iv_int(json_t *lane, const char *key, size_t i)
{
	return json_integer_value(
		json_array_get(json_object_get(json_object_get(lane, "timeline"), key), i));
}

static char iv_state(json_t *lane, size_t i)
{
	return json_string_value(json_object_get(json_object_get(lane, "timeline"), "state"))[i];
}

/* Intervals in order, not overlapping, covering most of the window. */
static void check_lane_shape(json_t *lane, double window_ms)
{
	json_int_t prev_end = 0;

	for (size_t i = 0; i < iv_count(lane); i++) {
		json_int_t start = iv_int(lane, "start_us", i);
		json_int_t dur = iv_int(lane, "dur_us", i);

		assert_true(dur > 0);
		/* 50 us slack: the two ends come from different CPUs' clocks */
		assert_true(start + 50 >= prev_end);
		prev_end = start + dur;
	}
	assert_true(num(lane, "observed_ms") > 0.95 * window_ms);
	assert_true(num(lane, "observed_ms") < 1.02 * window_ms);
}

static void check(json_t *data, const struct capture_result *res, bool bounded)
{
	static const char *const want[] = {"do_nanosleep", "hrtimer_nanosleep"};
	json_t *spin = lane_of(data, spin_tid), *nap = lane_of(data, nap_tid),
	       *park = lane_of(data, park_tid), *l;
	double window_ms = num(data, "window_ms");
	bool nap_stack = false;
	size_t i;

	if (!spin || !nap || !park)
		dump(data);
	assert_non_null(spin);
	assert_non_null(nap);
	assert_non_null(park);
	assert_true(window_ms > 900 && window_ms < 3000);
	json_array_foreach(json_object_get(data, "threads"), i, l)
		assert_int_equal(json_integer_value(json_object_get(l, "pid")), getpid());

	/* the spinner is on CPU, or waiting for one: the machine may be busy */
	if (num(spin, "on_cpu_pct") < 20 || num(spin, "off_cpu_pct") > 5)
		dump(spin);
	assert_true(num(spin, "on_cpu_pct") > 20);
	assert_true(num(spin, "on_cpu_pct") + num(spin, "runnable_pct") > 95);
	assert_true(num(spin, "off_cpu_pct") < 5);
	/* the napper is off CPU, sleeping, nearly all the time. Under emulation
	 * (AUTOTRACE_TEST_SLOWDOWN, the kernel matrix's TCG guests) a woken
	 * thread may wait a while for its virtual CPU to be run: there it is
	 * off CPU or runnable, and asleep for most of the window */
	if (getenv("AUTOTRACE_TEST_SLOWDOWN")) {
		if (num(nap, "off_cpu_pct") + num(nap, "runnable_pct") <= 90)
			dump(nap);
		assert_true(num(nap, "off_cpu_pct") + num(nap, "runnable_pct") > 90);
		assert_true(num(nap, "sleep_ms") > 0.5 * window_ms);
	} else {
		if (num(nap, "off_cpu_pct") <= 90)
			dump(nap);
		assert_true(num(nap, "off_cpu_pct") > 90);
		assert_true(num(nap, "sleep_ms") > 0.9 * window_ms);
	}
	assert_true(json_integer_value(json_object_get(nap, "switches")) >= 20);
	/* the parked thread never ran: one interval from the seed to the end */
	assert_true(num(park, "off_cpu_pct") > 99);
	assert_int_equal(json_integer_value(json_object_get(park, "switches")), 0);
	assert_int_equal(iv_count(park), 1);
	assert_int_equal(iv_state(park, 0), 'S');

	for (i = 0; i < iv_count(nap); i++) {
		json_int_t si = iv_int(nap, "stack", i);
		json_t *names = json_array_get(json_object_get(data, "stacks"), (size_t)si);
		json_t *n;
		size_t j;

		if (si < 0 || iv_state(nap, i) != 'S')
			continue;
		json_array_foreach(names, j, n) for (size_t k = 0; k < 2; k++) nap_stack |=
			strcmp(json_string_value(n), want[k]) == 0;
	}
	if (!nap_stack)
		dump(json_object_get(data, "stacks"));
	assert_true(nap_stack);

	if (bounded) {
		assert_int_equal(iv_count(nap), 10);
		assert_true(json_integer_value(json_object_get(nap, "intervals_dropped")) > 0);
		assert_true(json_integer_value(json_object_get(data, "intervals_dropped")) > 0);
	} else {
		check_lane_shape(spin, window_ms);
		check_lane_shape(nap, window_ms);
		check_lane_shape(park, window_ms);
	}

	assert_int_equal(res->nartifacts, 1);
	assert_string_equal(res->artifacts[0].name, "timeline.svg");
	assert_non_null(strstr(res->artifacts[0].data, "<svg"));
	assert_non_null(strstr(res->artifacts[0].data, "</svg>"));
	assert_non_null(strstr(res->artifacts[0].data, "do_nanosleep"));
}

static void test_three_threads(void **s)
{
	struct capture_params p;
	struct capture_result res;

	capture_fixture_prepare_tp(&fx, false);
	capture_params_defaults(fx.ops, &p);
	run(&p, &res);
	assert_string_equal(json_string_value(json_object_get(res.data, "tracepoints")), "tp_btf");
	check(res.data, &res, false);
	assert_int_equal(res.lost_events, 0);
	capture_result_clear(&res);
}

static void test_raw_tp_fallback(void **s)
{
	struct capture_params p;
	struct capture_result res;

	capture_fixture_prepare_tp(&fx, true);
	capture_params_defaults(fx.ops, &p);
	run(&p, &res);
	assert_string_equal(json_string_value(json_object_get(res.data, "tracepoints")), "raw_tp");
	check(res.data, &res, false);
	capture_result_clear(&res);
}

static void test_bounded_intervals(void **s)
{
	struct capture_params p;
	struct capture_result res;

	capture_fixture_prepare_tp(&fx, false);
	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "max_intervals")] = 10;
	run(&p, &res);
	/* the totals still count every interval */
	check(res.data, &res, true);
	capture_result_clear(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_threads),
		cmocka_unit_test(test_raw_tp_fallback),
		cmocka_unit_test(test_bounded_intervals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
