// SPDX-License-Identifier: GPL-2.0-only
/* The rule state machine with an injected clock: for, cooldown, hysteresis,
 * max_per_hour, budget refusals, top-N, relative and combined conditions,
 * match globs, rule cooldown and state kept across reloads. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/tsdb.h"
#include "probes/catalogue.h"
#include "triggers/engine.h"

static const struct rules_limits lim = {.max_capture_ms = 60000, .max_window_ms = 300000};

struct recorder {
	char fired[64][160]; /* "rule@key" */
	unsigned n;
	unsigned calls;
	unsigned max_batch;
	int result; /* what the "capture manager" answers */
};

static void record(void *ctx, struct engine_fire *f, unsigned n)
{
	struct recorder *r = ctx;

	r->calls++;
	if (n > r->max_batch)
		r->max_batch = n;
	for (unsigned i = 0; i < n; i++) {
		if (r->n < 64)
			snprintf(r->fired[r->n++], sizeof(r->fired[0]), "%s@%s", f[i].rule->name,
				 f[i].series_key);
		f[i].result = r->result;
	}
}

static struct engine *make_engine(const char *yaml)
{
	struct ruleset *rs = NULL;
	struct diag diag = {0};
	struct engine *e = NULL;

	if (ruleset_load_string("t.yaml", yaml, &lim, &rs, &diag)) {
		print_error("%s\n", diag.n ? diag.msgs[0] : "?");
		fail();
	}
	diag_clear(&diag);
	assert_int_equal(engine_new(&e, rs, 1000), 0);
	return e;
}

static struct tsdb *db;
static uint64_t now;

static int setup(void **s)
{
	now = 1000000;
	return tsdb_new(&db, metric_count(), 256, 600);
}

static int teardown(void **s)
{
	tsdb_free(&db);
	return 0;
}

/* One watcher round: host value v for metric m (NAN: no value). */
static void round1(unsigned m, double v)
{
	now += 1000;
	tsdb_begin_round(db, now);
	if (v == v)
		tsdb_put(db, m, NULL, v);
	tsdb_end_round(db);
}

static unsigned step(struct engine *e, struct recorder *r, unsigned m, double v)
{
	unsigned before = r->n;

	round1(m, v);
	engine_evaluate(e, db, now, record, r);
	return r->n - before;
}

static const char *state(struct engine *e, const char *rule, const char *key)
{
	return trigger_state_name(engine_state(e, rule, key));
}

#define SYS_RULE(extra)                                                                            \
	"rules:\n  - name: sys\n    metric: cpu.sys_pct\n    above: 50\n    dry_run: true\n" extra

static void test_for_and_cooldown(void **s)
{
	struct engine *e = make_engine(SYS_RULE("    for: 3s\n    cooldown: 10s\n"));
	struct recorder r = {0};

	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 0);
	assert_string_equal(state(e, "sys", ""), "pending");
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 0);
	/* three samples of one second each: held for 3 s */
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	assert_string_equal(r.fired[0], "sys@");
	assert_string_equal(state(e, "sys", ""), "capturing");
	/* capturing: no new firing however long it holds */
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 0);
	engine_capture_done(e, "sys", "", now);
	assert_string_equal(state(e, "sys", ""), "cooldown");
	for (int i = 0; i < 9; i++)
		assert_int_equal(step(e, &r, M_CPU_SYS, 60), 0);
	/* cooldown over, still holding, no clear level: it fires again, after `for` */
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 0);
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 0);
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	/* a dip resets `for` */
	engine_capture_done(e, "sys", "", now - 20000);
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 0);
	assert_int_equal(step(e, &r, M_CPU_SYS, 40), 0);
	assert_string_equal(state(e, "sys", ""), "ok");
	engine_free(&e);
}

static void test_hysteresis(void **s)
{
	struct engine *e = make_engine(SYS_RULE("    clear_below: 30\n    cooldown: 1s\n"));
	struct recorder r = {0};

	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	engine_capture_done(e, "sys", "", now);
	step(e, &r, M_CPU_SYS, 60);
	/* still above 50, between clear and threshold: stays quiet */
	for (int i = 0; i < 5; i++)
		assert_int_equal(step(e, &r, M_CPU_SYS, i % 2 ? 60 : 40), 0);
	assert_int_equal(step(e, &r, M_CPU_SYS, 25), 0); /* cleared */
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	engine_free(&e);
}

static void test_max_per_hour(void **s)
{
	struct engine *e = make_engine(SYS_RULE("    cooldown: 0s\n    max_per_hour: 2\n"));
	struct recorder r = {0};
	json_t *st;

	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	engine_capture_done(e, "sys", "", now);
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	engine_capture_done(e, "sys", "", now);
	for (int i = 0; i < 10; i++)
		assert_int_equal(step(e, &r, M_CPU_SYS, 60), 0);
	st = engine_status(e, now);
	assert_int_equal(
		json_integer_value(json_object_get(json_array_get(st, 0), "fires_last_hour")), 2);
	assert_true(json_integer_value(json_object_get(json_array_get(st, 0), "skipped")) >= 1);
	json_decref(st);
	now += 3600000; /* an hour later */
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	engine_free(&e);
}

static void test_budget_refusal_retries(void **s)
{
	struct engine *e = make_engine(SYS_RULE(""));
	struct recorder r = {.result = -EBUSY};
	json_t *st;

	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	assert_string_equal(state(e, "sys", ""), "firing");
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1); /* asked again */
	r.result = 0;
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	assert_string_equal(state(e, "sys", ""), "capturing");
	st = engine_status(e, now);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(st, 0), "refused")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(st, 0), "fires_total")),
			 1);
	json_decref(st);
	/* refused and then the condition went away: back to ok, nothing fired */
	engine_free(&e);
	e = make_engine(SYS_RULE(""));
	r.result = -EBUSY;
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	assert_int_equal(step(e, &r, M_CPU_SYS, 10), 0);
	assert_string_equal(state(e, "sys", ""), "ok");
	engine_free(&e);
}

static void put_cgroup(unsigned m, const char *cg, const char *cid, double v)
{
	struct labels l = {.n = cid ? 2 : 1, .k = {"cgroup", "container_id"}, .v = {cg, cid}};

	tsdb_put(db, m, &l, v);
}

static int metric(const char *name)
{
	int m = metric_index(name);

	assert_true(m >= 0);
	return m;
}

static void test_top_n_and_match(void **s)
{
	const char *name = "cgroup.cpu.usage_pct";
	char yaml[1024];
	struct engine *e;
	struct recorder r = {0};
	static const char *const cid =
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	assert_true(metric_index(name) >= 0);
	snprintf(yaml, sizeof(yaml),
		 "rules:\n  - name: hot\n    metric: %s\n    scope: cgroup\n    top: 2\n"
		 "    match: { cgroup: \"/kubepods*\" }\n    above: 80\n    dry_run: true\n"
		 "  - name: one\n    metric: %s\n    scope: cgroup\n    above: 80\n"
		 "    match: { container_id: \"0123*\" }\n    dry_run: true\n",
		 name, name);
	e = make_engine(yaml);
	now += 1000;
	tsdb_begin_round(db, now);
	put_cgroup((unsigned)metric(name), "/kubepods/a", NULL, 85);
	put_cgroup((unsigned)metric(name), "/kubepods/b", NULL, 99);
	put_cgroup((unsigned)metric(name), "/kubepods/c", NULL, 90);
	put_cgroup((unsigned)metric(name), "/kubepods/d", NULL, 10);
	put_cgroup((unsigned)metric(name), "/system.slice/x", cid, 100);
	tsdb_end_round(db);
	engine_evaluate(e, db, now, record, &r);
	/* one batch with every firing of the round */
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.fired[0], "hot@cgroup=/kubepods/b");
	assert_string_equal(r.fired[1], "hot@cgroup=/kubepods/c");
	assert_non_null(strstr(r.fired[2], "one@cgroup=/system.slice/x"));
	engine_free(&e);
}

static void test_relative_conditions(void **s)
{
	struct engine *e = make_engine(
		"rules:\n  - name: rose\n    metric: cpu.sys_pct\n    increase: { by: 20, over: 3s "
		"}\n"
		"    dry_run: true\n    cooldown: 0s\n"
		"  - name: doubled\n    metric: cpu.sys_pct\n    increase: { by_pct: 100, over: 2s "
		"}\n"
		"    dry_run: true\n    cooldown: 0s\n"
		"  - name: fell\n    metric: cpu.sys_pct\n    decrease: { by: 30, over: 1s }\n"
		"    dry_run: true\n    cooldown: 0s\n");
	struct recorder r = {0};

	step(e, &r, M_CPU_SYS, 10);
	step(e, &r, M_CPU_SYS, 12);
	assert_int_equal(step(e, &r, M_CPU_SYS, 19), 0); /* +90% over 2s; no 3s history yet */
	assert_int_equal(r.n, 0);
	assert_int_equal(step(e, &r, M_CPU_SYS, 35), 2); /* +25 over 3s; 12 -> 35 doubled */
	assert_string_equal(r.fired[0], "rose@");
	assert_string_equal(r.fired[1], "doubled@");
	engine_capture_done(e, "rose", "", now);
	engine_capture_done(e, "doubled", "", now);
	assert_int_equal(step(e, &r, M_CPU_SYS, 2), 1); /* -33 in one second */
	assert_string_equal(r.fired[2], "fell@");
	engine_free(&e);
}

static void test_all_any(void **s)
{
	struct engine *e = make_engine(
		"rules:\n  - name: both\n    all:\n      - { metric: cpu.sys_pct, above: 30 }\n"
		"      - { metric: cpu.sys_pct, increase: { by: 20, over: 2s } }\n"
		"      - { metric: cpu.idle_pct, below: 50 }\n    dry_run: true\n"
		"  - name: either\n    any:\n      - { metric: cpu.iowait_pct, above: 50 }\n"
		"      - { metric: cpu.idle_pct, below: 5 }\n    dry_run: true\n");
	struct recorder r = {0};

	for (int i = 0; i < 3; i++) {
		now += 1000;
		tsdb_begin_round(db, now);
		tsdb_put(db, M_CPU_SYS, NULL, i == 2 ? 45 : 20);
		tsdb_put(db, M_CPU_IDLE, NULL, i == 2 ? 40 : 70);
		tsdb_put(db, M_CPU_IOWAIT, NULL, 0);
		tsdb_end_round(db);
		engine_evaluate(e, db, now, record, &r);
	}
	assert_int_equal(r.n, 1);
	assert_string_equal(r.fired[0], "both@");
	now += 1000;
	tsdb_begin_round(db, now);
	tsdb_put(db, M_CPU_SYS, NULL, 45);
	tsdb_put(db, M_CPU_IDLE, NULL, 3);
	tsdb_put(db, M_CPU_IOWAIT, NULL, 0);
	tsdb_end_round(db);
	engine_evaluate(e, db, now, record, &r);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.fired[1], "either@");
	engine_free(&e);
}

static void test_rule_cooldown_and_reload(void **s)
{
	const char *yaml = SYS_RULE("    cooldown: 0s\n    rule_cooldown: 1m\n");
	struct engine *e = make_engine(yaml);
	struct recorder r = {0};
	struct ruleset *rs = NULL;
	struct diag diag = {0};

	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	engine_capture_done(e, "sys", "", now);
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 0);
	/* a reload keeps the rule's state (by name): the rule cooldown still runs */
	assert_int_equal(ruleset_load_string("t.yaml", yaml, &lim, &rs, &diag), 0);
	engine_set_rules(e, rs);
	for (int i = 0; i < 50; i++)
		assert_int_equal(step(e, &r, M_CPU_SYS, 60), 0);
	now += 10000;
	assert_int_equal(step(e, &r, M_CPU_SYS, 60), 1);
	engine_free(&e);
}

static void test_cpu_scope(void **s)
{
	struct engine *e = make_engine(
		"rules:\n  - name: hot-cpu\n    metric: cpu.softirq_pct\n    scope: cpu\n"
		"    above: 50\n    top: 1\n    dry_run: true\n");
	struct recorder r = {0};
	static const char *const cpus[] = {"0", "1", "2"};
	static const double vals[] = {60, 90, 10};

	now += 1000;
	tsdb_begin_round(db, now);
	tsdb_put(db, M_CPU_SOFTIRQ, NULL, 99); /* the host series is not a cpu scope */
	for (int i = 0; i < 3; i++) {
		struct labels l = {.n = 1, .k = {"cpu"}, .v = {cpus[i]}};

		tsdb_put(db, M_CPU_SOFTIRQ, &l, vals[i]);
	}
	tsdb_end_round(db);
	engine_evaluate(e, db, now, record, &r);
	/* two CPUs over, top 1: the worst */
	assert_int_equal(r.n, 1);
	assert_string_equal(r.fired[0], "hot-cpu@cpu=1");
	engine_free(&e);
}

static void test_disabled_and_missing_data(void **s)
{
	struct engine *e = make_engine(SYS_RULE("    enabled: false\n"));
	struct recorder r = {0};

	assert_int_equal(step(e, &r, M_CPU_SYS, 99), 0);
	engine_free(&e);
	e = make_engine(SYS_RULE(""));
	/* no sample this round: nothing to evaluate, nothing fires */
	assert_int_equal(step(e, &r, M_CPU_SYS, 0.0 / 0.0), 0);
	engine_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_for_and_cooldown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hysteresis, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_per_hour, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_refusal_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_top_n_and_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_conditions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_any, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_cooldown_and_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cpu_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disabled_and_missing_data, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
