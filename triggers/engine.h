/* SPDX-License-Identifier: GPL-2.0-only */
/* The trigger engine: one state machine per rule x scope, evaluated once per
 * watcher round against the metric history. */
#pragma once
#include <jansson.h>
#include <stdint.h>

#include "triggers/rules.h"

struct tsdb;
struct engine;

enum trigger_state { TS_OK, TS_PENDING, TS_FIRING, TS_CAPTURING, TS_COOLDOWN };

struct engine_fire {
	const struct rule *rule;
	const char *series_key; /* canonical labels of the series that tripped ("" = host) */
	double value;
	uint64_t since_ms;      /* monotonic ms the condition started holding */
};

/* Asked to start the rule's captures: 0 = started (state -> capturing until
 * engine_capture_done), -EBUSY = budget says not now (retried next round while
 * the condition holds), other errors drop this firing (cooldown applies). */
typedef int (*engine_fire_cb)(void *ctx, const struct engine_fire *f);

/* Takes ownership of rules. */
int engine_new(struct engine **out, struct ruleset *rules, uint64_t interval_ms);
void engine_free(struct engine **e);
/* Swaps the rule set (ownership taken); state of rules kept by name. */
void engine_set_rules(struct engine *e, struct ruleset *rules);
void engine_set_interval(struct engine *e, uint64_t interval_ms);
const struct ruleset *engine_rules(const struct engine *e);

void engine_evaluate(struct engine *e, const struct tsdb *db, uint64_t now_ms, engine_fire_cb cb,
		     void *ctx);
void engine_capture_done(struct engine *e, const char *rule, const char *series_key,
			 uint64_t now_ms);
const char *trigger_state_name(enum trigger_state s);
json_t *engine_status(const struct engine *e, uint64_t now_ms);
