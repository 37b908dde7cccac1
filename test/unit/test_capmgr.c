// SPDX-License-Identifier: GPL-2.0-only
/* The capture manager with capture kinds of the test's own (they record what they are asked
 * to do; no BPF): sessions run their windows on the event loop and complete once, a busy
 * kind, the concurrent-session limit and the per-hour budget refuse with their reason, dry
 * runs and kinds that cannot load or attach, shutdown (interrupted) and the guard (cut
 * short), and every kind released at the end. */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "agent/capmgr.h"
#include "base/config.h"
#include "base/loop.h"
#include "base/util.h"

/* ---- fake kinds ---- */

struct fake {
	const char *kind;
	int prepare_err, start_err;
	unsigned prepared, released, starts, stops, collects, ticks;
	struct capture_target last_target;
	uint64_t last_duration_ms;
	bool attached;
};

static struct fake fakes[4] = {
	{.kind = "alpha"},
	{.kind = "beta"},
	{.kind = "broken", .prepare_err = -ENOENT},
	{.kind = "refuses", .start_err = -EPERM},
};

static int fake_prepare(void **state, struct fake *f)
{
	f->prepared++;
	if (f->prepare_err)
		return f->prepare_err;
	*state = f;
	return 0;
}

static int fake_start(void *state, const struct capture_target *t, const struct capture_params *p)
{
	struct fake *f = state;

	f->starts++;
	f->last_target = *t;
	f->last_duration_ms = p->duration_ms;
	if (f->start_err)
		return f->start_err;
	f->attached = true;
	return 0;
}

static void fake_stop(void *state)
{
	struct fake *f = state;

	f->stops++;
	f->attached = false;
}

static int fake_collect(void *state, struct capture_result *out)
{
	struct fake *f = state;

	f->collects++;
	out->data = json_pack("{s:s,s:i}", "kind", f->kind, "collects", (int)f->collects);
	return 0;
}

static void fake_release(void *state)
{
	((struct fake *)state)->released++;
}

static void fake_tick(void *state)
{
	((struct fake *)state)->ticks++;
}

#define FAKE_PREPARE(i)                                                                            \
	static int fake_prepare_##i(void **state, const struct capture_env *env)                   \
	{                                                                                          \
		return fake_prepare(state, &fakes[i]);                                             \
	}
FAKE_PREPARE(0)
FAKE_PREPARE(1)
FAKE_PREPARE(2)
FAKE_PREPARE(3)

#define FAKE_OPS(i)                                                                                \
	{                                                                                          \
		.kind = NULL, .prepare = fake_prepare_##i, .start = fake_start, .stop = fake_stop, \
		.collect = fake_collect, .release = fake_release, .tick = fake_tick                \
	}

static struct capture_ops ops[4] = {FAKE_OPS(0), FAKE_OPS(1), FAKE_OPS(2), FAKE_OPS(3)};
static const struct capture_ops *const kinds[] = {&ops[0], &ops[1], &ops[2], &ops[3], NULL};
enum { ALPHA, BETA, BROKEN, REFUSES };

/* ---- fixture ---- */

static struct agent_config cfg;
static struct loop *loop;
static struct capmgr *mgr;
static struct capture_session *done[16];
static unsigned ndone;

static void on_done(void *ctx, struct capture_session *s)
{
	assert_true(ndone < ARRAY_SIZE(done));
	assert_ptr_equal(capture_session_ctx(s), ctx);
	done[ndone++] = s;
}

static int setup(void **s)
{
	struct capmgr_opts o = {.cfg = &cfg, .kinds = kinds};

	for (unsigned i = 0; i < 4; i++) {
		ops[i].kind = fakes[i].kind;
		fakes[i] = (struct fake){.kind = fakes[i].kind,
					 .prepare_err = fakes[i].prepare_err,
					 .start_err = fakes[i].start_err};
	}
	config_defaults(&cfg);
	cfg.capture.max_concurrent = 2;
	/* room for two kinds' 60 s windows at once (each kind's window counts) */
	cfg.capture.max_seconds_per_hour = 300;
	assert_int_equal(loop_new(&loop), 0);
	o.loop = loop;
	assert_int_equal(capmgr_new(&mgr, &o), 0);
	ndone = 0;
	return 0;
}

static int teardown(void **s)
{
	capmgr_free(&mgr);
	for (unsigned i = 0; i < ndone; i++)
		capture_session_free(&done[i]);
	loop_free(&loop);
	return 0;
}

/* A request for the kinds given (-1 ends the list), each for duration_ms, on a process. */
static struct capture_request request(uint64_t duration_ms, int k0, int k1)
{
	struct capture_request r = {.target = {.kind = TARGET_PID, .pid = 4242}};

	for (int k = 0, idx[2] = {k0, k1}; k < 2; k++) {
		if (idx[k] < 0)
			continue;
		capture_params_defaults(&ops[idx[k]], &r.items[r.n].params);
		r.items[r.n].params.duration_ms = duration_ms;
		r.items[r.n++].ops = &ops[idx[k]];
	}
	return r;
}

/* Runs the loop until n sessions completed, for at most timeout_ms. */
static void run_until_done(unsigned n, unsigned timeout_ms)
{
	uint64_t end = now_mono_ns() / 1000000 + timeout_ms;

	while (ndone < n && now_mono_ns() / 1000000 < end)
		assert_true(loop_once(loop, 50) >= 0);
	assert_int_equal(ndone, n);
}

static struct capture_outcome *outcome(unsigned session, unsigned i)
{
	assert_true(session < ndone);
	return capture_session_outcome(done[session], i);
}

static json_int_t status_int(const char *key)
{
	json_t *st = capmgr_status(mgr);
	json_int_t v = json_integer_value(json_object_get(st, key));

	json_decref(st);
	return v;
}

/* ---- tests ---- */

static void test_session_runs_and_completes_once(void **s)
{
	struct capture_request r = request(150, ALPHA, BETA);
	struct capmgr_start_result res;
	const char *running[4];
	uint64_t t0 = now_mono_ns();
	json_t *st;
	int ctx;

	/* the second capture has a target of its own */
	r.items[1].own_target = true;
	r.items[1].target = (struct capture_target){.kind = TARGET_HOST};
	assert_int_equal(capmgr_start(mgr, &r, on_done, &ctx, &res), 0);
	assert_int_equal(res.refusal, CAPMGR_STARTED);
	assert_int_equal(capmgr_running(mgr), 1);
	assert_int_equal(capmgr_running_kinds(mgr, running, 4), 2);
	assert_true(fakes[ALPHA].attached && fakes[BETA].attached);
	assert_int_equal(fakes[ALPHA].last_target.kind, TARGET_PID);
	assert_int_equal(fakes[ALPHA].last_target.pid, 4242);
	assert_int_equal(fakes[BETA].last_target.kind, TARGET_HOST);
	assert_int_equal(fakes[ALPHA].last_duration_ms, 150);
	st = capmgr_status(mgr);
	assert_int_equal(json_array_size(json_object_get(st, "running")), 2);
	json_decref(st);
	/* the agent's interval: ticks reach the running kinds only */
	capmgr_tick(mgr);
	assert_int_equal(fakes[ALPHA].ticks + fakes[BETA].ticks, 2);
	assert_int_equal(fakes[BROKEN].ticks + fakes[REFUSES].ticks, 0);
	/* nothing completes from inside the caller */
	assert_int_equal(ndone, 0);

	run_until_done(1, 5000);
	assert_true(now_mono_ns() - t0 >= 150 * 1000000ull);
	assert_int_equal(capture_session_count(done[0]), 2);
	for (unsigned i = 0; i < 2; i++) {
		struct capture_outcome *o = outcome(0, i);

		assert_string_equal(o->status, "ok");
		assert_true(o->duration_ms >= 150 && o->duration_ms < 5000);
		assert_non_null(o->result.data);
	}
	assert_string_equal(outcome(0, 0)->kind, "alpha");
	assert_int_equal(outcome(0, 1)->target.kind, TARGET_HOST);
	assert_int_equal(capture_session_target(done[0])->pid, 4242);
	assert_int_equal(fakes[ALPHA].stops, 1);
	assert_int_equal(fakes[ALPHA].collects, 1);
	assert_false(fakes[ALPHA].attached || fakes[BETA].attached);
	assert_int_equal(capmgr_running(mgr), 0);
	assert_int_equal(capmgr_running_kinds(mgr, running, 4), 0);
	/* once: more loop turns complete nothing again */
	loop_once(loop, 100);
	assert_int_equal(ndone, 1);
}

static void test_busy_kind_and_session_limit(void **s)
{
	struct capture_request a = request(300, ALPHA, -1), b = request(300, BETA, -1);
	struct capmgr_start_result res;

	assert_int_equal(capmgr_start(mgr, &a, on_done, NULL, &res), 0);
	/* the same kind again: busy, and which kind */
	assert_int_equal(capmgr_start(mgr, &a, on_done, NULL, &res), -EBUSY);
	assert_int_equal(res.refusal, CAPMGR_BUSY_KIND);
	assert_string_equal(res.kind, "alpha");
	/* another kind runs beside it, up to capture.max_concurrent sessions */
	assert_int_equal(capmgr_start(mgr, &b, on_done, NULL, &res), 0);
	assert_int_equal(capmgr_running(mgr), 2);
	{
		struct capture_request c = request(300, REFUSES, -1);

		assert_int_equal(capmgr_start(mgr, &c, on_done, NULL, &res), -EBUSY);
		assert_int_equal(res.refusal, CAPMGR_BUSY_SESSIONS);
		assert_null(res.kind);
	}
	/* refused requests started nothing, and were counted */
	assert_int_equal(fakes[ALPHA].starts, 1);
	assert_int_equal(fakes[REFUSES].starts, 0);
	assert_int_equal(status_int("refused_busy"), 2);
	/* the reason is optional */
	assert_int_equal(capmgr_start(mgr, &a, on_done, NULL, NULL), -EBUSY);

	run_until_done(2, 5000);
	/* free again once the windows ended */
	assert_int_equal(capmgr_start(mgr, &a, on_done, NULL, &res), 0);
	assert_int_equal(res.refusal, CAPMGR_STARTED);
	run_until_done(3, 5000);
	assert_int_equal(fakes[ALPHA].starts, 2);
}

static void test_budget(void **s)
{
	struct capture_request big = request(5000, ALPHA, -1), small = request(100, ALPHA, BETA);
	struct capture_request mid = request(600, BETA, -1), more = request(300, ALPHA, -1);
	struct capmgr_start_result res;

	/* every kind's window counts to the millisecond: 100 ms costs 0.1 s, not 1 s */
	cfg.capture.max_seconds_per_hour = 1;
	/* a request that alone would pass the budget never starts */
	assert_int_equal(capmgr_start(mgr, &big, on_done, NULL, &res), -EBUSY);
	assert_int_equal(res.refusal, CAPMGR_BUDGET);
	assert_int_equal(fakes[ALPHA].starts, 0);
	/* two kinds for 100 ms: about 0.2 s spent */
	assert_int_equal(capmgr_start(mgr, &small, on_done, NULL, &res), 0);
	run_until_done(1, 5000);
	/* 0.2 spent + 0.6 wanted fits 1 s (whole seconds would have refused it) */
	assert_int_equal(capmgr_start(mgr, &mid, on_done, NULL, &res), 0);
	/* a running capture's window is promised: 0.2 + 0.6 + 0.3 passes 1 s */
	assert_int_equal(capmgr_start(mgr, &more, on_done, NULL, &res), -EBUSY);
	assert_int_equal(res.refusal, CAPMGR_BUDGET);
	run_until_done(2, 5000);
	/* and once spent, whatever the kind */
	assert_int_equal(capmgr_start(mgr, &more, on_done, NULL, &res), -EBUSY);
	assert_int_equal(res.refusal, CAPMGR_BUDGET);
	assert_int_equal(status_int("refused_budget"), 3);
	/* a dry run attaches nothing, so costs nothing: always allowed */
	more.dry_run = true;
	assert_int_equal(capmgr_start(mgr, &more, on_done, NULL, &res), 0);
	run_until_done(3, 5000);
	assert_string_equal(outcome(2, 0)->status, "dry_run");
	assert_int_equal(fakes[ALPHA].starts, 1); /* the real window, not the dry run */
	assert_int_equal(fakes[BETA].starts, 2);
}

static void test_dry_run_unavailable_and_failed(void **s)
{
	struct capture_request dry = request(60000, ALPHA, BETA);
	struct capture_request bad = request(100, BROKEN, REFUSES);
	const char *why = NULL;

	assert_false(capmgr_kind_ready(mgr, "broken", &why));
	assert_string_equal(why, strerror(ENOENT));
	assert_true(capmgr_kind_ready(mgr, "alpha", &why));
	assert_false(capmgr_kind_ready(mgr, "nonesuch", &why));
	assert_string_equal(why, "unknown kind");

	dry.dry_run = true;
	assert_int_equal(capmgr_start(mgr, &dry, on_done, NULL, NULL), 0);
	run_until_done(1, 2000);
	assert_string_equal(outcome(0, 0)->status, "dry_run");
	assert_string_equal(outcome(0, 1)->status, "dry_run");
	assert_int_equal(fakes[ALPHA].starts + fakes[BETA].starts, 0);

	/* nothing attached: the session still completes, from the loop, saying why */
	assert_int_equal(capmgr_start(mgr, &bad, on_done, NULL, NULL), 0);
	assert_int_equal(ndone, 1);
	run_until_done(2, 2000);
	assert_string_equal(outcome(1, 0)->status, "unavailable");
	assert_non_null(strstr(outcome(1, 0)->result.error, "not loaded"));
	assert_string_equal(outcome(1, 1)->status, "failed");
	assert_non_null(strstr(outcome(1, 1)->result.error, "attaching failed"));
	/* a failed attach is detached all the same and the kind stays usable */
	assert_int_equal(fakes[REFUSES].stops, 1);
	assert_true(capmgr_kind_ready(mgr, "refuses", NULL));
	assert_int_equal(capmgr_running(mgr), 0);
}

static void test_stop_all_interrupts(void **s)
{
	struct capture_request r = request(60000, ALPHA, BETA);

	assert_int_equal(capmgr_start(mgr, &r, on_done, NULL, NULL), 0);
	capmgr_stop_all(mgr);
	/* at once, not after the window: detached and not read out */
	assert_int_equal(ndone, 1);
	assert_string_equal(outcome(0, 0)->status, "interrupted");
	assert_string_equal(outcome(0, 1)->status, "interrupted");
	assert_int_equal(fakes[ALPHA].stops, 1);
	assert_int_equal(fakes[ALPHA].collects, 0);
	assert_false(fakes[ALPHA].attached || fakes[BETA].attached);
	assert_int_equal(capmgr_running(mgr), 0);
}

static void test_cut_short_reads_out(void **s)
{
	struct capture_request a = request(60000, ALPHA, -1), b = request(60000, BETA, -1);

	assert_int_equal(capmgr_start(mgr, &a, on_done, NULL, NULL), 0);
	assert_int_equal(capmgr_start(mgr, &b, on_done, NULL, NULL), 0);
	capmgr_cut_short(mgr, "captures cost 9% of the CPUs");
	assert_int_equal(ndone, 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_string_equal(outcome(i, 0)->status, "truncated");
		assert_string_equal(outcome(i, 0)->truncated_reason,
				    "captures cost 9% of the CPUs");
		assert_non_null(outcome(i, 0)->result.data);
	}
	assert_int_equal(fakes[ALPHA].collects + fakes[BETA].collects, 2);
	assert_int_equal(capmgr_running(mgr), 0);
}

static void test_free_releases_every_loaded_kind(void **s)
{
	struct capture_request r = request(60000, ALPHA, -1);

	assert_int_equal(fakes[ALPHA].prepared, 1);
	assert_int_equal(fakes[BROKEN].prepared, 1);
	/* freed with a capture running: it is detached first */
	assert_int_equal(capmgr_start(mgr, &r, on_done, NULL, NULL), 0);
	capmgr_free(&mgr);
	assert_null(mgr);
	assert_int_equal(ndone, 1);
	assert_string_equal(outcome(0, 0)->status, "interrupted");
	assert_false(fakes[ALPHA].attached);
	assert_int_equal(fakes[ALPHA].released, 1);
	assert_int_equal(fakes[BETA].released, 1);
	assert_int_equal(fakes[REFUSES].released, 1);
	assert_int_equal(fakes[BROKEN].released, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_session_runs_and_completes_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_busy_kind_and_session_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run_unavailable_and_failed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_all_interrupts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_short_reads_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_releases_every_loaded_kind, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
