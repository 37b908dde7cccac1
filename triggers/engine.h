/* SPDX-License-Identifier: GPL-2.0-only */
/* The trigger engine: one state machine per rule x scope, evaluated once per
 * watcher round against the metric history. */
#pragma once
#include <jansson.h>
#include <stdint.h>

#include "triggers/rules.h"

struct tsdb;
struct engine;

/*
 * ok -> pending (condition holds, waiting for `for`) -> firing (asked for
 * captures; stays here while the budget says not now) -> capturing -> cooldown
 * -> ok. Hysteresis (clear_below/clear_above) keeps a fired scope from firing
 * again until its value has cleared.
 */
enum trigger_state { TS_OK, TS_PENDING, TS_FIRING, TS_CAPTURING, TS_COOLDOWN };

struct engine_fire {
	const struct rule *rule;
	const char *series_key; /* canonical labels of the scope ("" = host) */
	double value;		/* the primary condition's metric, now */
	uint64_t since_ms;	/* monotonic ms the condition started holding */
	/* set by the callback: 0 = captures started or joined (state -> capturing
	 * until engine_capture_done), -EBUSY = the budget says not now (retried next
	 * round while the condition holds), other = this firing is dropped (cooldown) */
	int result;
};

/* Every firing of one round at once, so firings for the same scope can share
 * one capture session. */
typedef void (*engine_fire_cb)(void *ctx, struct engine_fire *fires, unsigned n);

/* Takes ownership of rules. */
int engine_new(struct engine **out, struct ruleset *rules, uint64_t interval_ms);
void engine_free(struct engine **e);
/* Swaps the rule set (ownership taken); state of rules kept by name. */
void engine_set_rules(struct engine *e, struct ruleset *rules);
void engine_set_interval(struct engine *e, uint64_t interval_ms);
const struct ruleset *engine_rules(const struct engine *e);

/* One round; now_ms is a monotonic clock (injected by tests). */
void engine_evaluate(struct engine *e, const struct tsdb *db, uint64_t now_ms, engine_fire_cb cb,
		     void *ctx);
void engine_capture_done(struct engine *e, const char *rule, const char *series_key,
			 uint64_t now_ms);
const char *trigger_state_name(enum trigger_state s);
/* The state of one rule x scope (TS_OK when unknown). */
enum trigger_state engine_state(const struct engine *e, const char *rule, const char *series_key);
json_t *engine_status(const struct engine *e, uint64_t now_ms);
