// SPDX-License-Identifier: GPL-2.0-only
#include "triggers/engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "agent/tsdb.h"
#include "agent/util.h"
#include "probes/catalogue.h"

#define SCOPES_PER_RULE_MAX 1024
#define FIRES_KEPT          64 /* fire times remembered per scope, for max_per_hour */
#define HOUR_MS             3600000ull

struct scope_state {
	char *key;
	enum trigger_state state;
	uint64_t since_ms;         /* condition holding since (pending) */
	uint64_t cooldown_until;
	bool armed;                /* hysteresis: false until the value clears */
	double last_value;
	uint64_t fires[FIRES_KEPT]; /* ring of fire times */
	unsigned nfires;
	uint64_t last_fired;
	uint64_t last_seen_round;
};

struct rule_state {
	char name[128];
	struct scope_state *scopes;
	unsigned n, cap;
	uint64_t total_fires;
	uint64_t skipped; /* firings refused for max_per_hour or scope cap */
};

struct engine {
	struct ruleset *rules;
	struct rule_state *states; /* parallel to rules->rules */
	uint64_t interval_ms;
};

const char *trigger_state_name(enum trigger_state s)
{
	static const char *const names[] = { "ok", "pending", "firing", "capturing", "cooldown" };

	return s <= TS_COOLDOWN ? names[s] : "?";
}

static void rule_state_clear(struct rule_state *rs)
{
	for (unsigned i = 0; i < rs->n; i++)
		free(rs->scopes[i].key);
	free(rs->scopes);
	memset(rs, 0, sizeof(*rs));
}

int engine_new(struct engine **out, struct ruleset *rules, uint64_t interval_ms)
{
	struct engine *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->interval_ms = interval_ms;
	engine_set_rules(e, rules);
	*out = e;
	return 0;
}

void engine_free(struct engine **pe)
{
	struct engine *e = pe ? *pe : NULL;

	if (!e)
		return;
	for (unsigned i = 0; e->rules && i < e->rules->n; i++)
		rule_state_clear(&e->states[i]);
	free(e->states);
	ruleset_free(&e->rules);
	free(e);
	*pe = NULL;
}

void engine_set_rules(struct engine *e, struct ruleset *rules)
{
	struct rule_state *states = calloc(rules->n ? rules->n : 1, sizeof(*states));

	if (!states) {
		log_error("engine: out of memory swapping rules; keeping the old set");
		ruleset_free(&rules);
		return;
	}
	for (unsigned i = 0; i < rules->n; i++) {
		snprintf(states[i].name, sizeof(states[i].name), "%s", rules->rules[i].name);
		/* carry state (cooldowns, fire history) over by rule name */
		for (unsigned j = 0; e->rules && j < e->rules->n; j++) {
			if (strcmp(e->states[j].name, states[i].name) == 0) {
				states[i] = e->states[j];
				memset(&e->states[j], 0, sizeof(e->states[j]));
				break;
			}
		}
	}
	for (unsigned j = 0; e->rules && j < e->rules->n; j++)
		rule_state_clear(&e->states[j]);
	free(e->states);
	ruleset_free(&e->rules);
	e->rules = rules;
	e->states = states;
}

void engine_set_interval(struct engine *e, uint64_t interval_ms)
{
	e->interval_ms = interval_ms;
}

const struct ruleset *engine_rules(const struct engine *e)
{
	return e->rules;
}

static struct scope_state *scope_get(struct rule_state *rs, const char *key, bool create)
{
	for (unsigned i = 0; i < rs->n; i++)
		if (strcmp(rs->scopes[i].key, key) == 0)
			return &rs->scopes[i];
	if (!create || rs->n >= SCOPES_PER_RULE_MAX)
		return NULL;
	if (rs->n == rs->cap) {
		unsigned cap = rs->cap ? rs->cap * 2 : 4;
		struct scope_state *p = realloc(rs->scopes, cap * sizeof(*p));

		if (!p)
			return NULL;
		rs->scopes = p;
		rs->cap = cap;
	}
	memset(&rs->scopes[rs->n], 0, sizeof(rs->scopes[0]));
	rs->scopes[rs->n].key = strdup(key);
	if (!rs->scopes[rs->n].key)
		return NULL;
	rs->scopes[rs->n].armed = true;
	return &rs->scopes[rs->n++];
}

static unsigned fires_last_hour(const struct scope_state *s, uint64_t now)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->nfires && i < FIRES_KEPT; i++)
		if (now - s->fires[i] < HOUR_MS)
			n++;
	return n;
}

static bool holds(const struct rule *r, double v)
{
	return r->cmp == RULE_ABOVE ? v > r->threshold : v < r->threshold;
}

/* Hysteresis: the value must come back past clear (or the threshold) to re-arm. */
static bool cleared(const struct rule *r, double v)
{
	double level = r->has_clear ? r->clear : r->threshold;

	return r->cmp == RULE_ABOVE ? v <= level : v >= level;
}

static void step(struct engine *e, const struct rule *r, struct rule_state *rs,
		 struct scope_state *s, double v, uint64_t now, engine_fire_cb cb, void *ctx)
{
	bool cond = holds(r, v);

	s->last_value = v;
	if (!s->armed && cleared(r, v))
		s->armed = true;
	if (s->state == TS_COOLDOWN && now >= s->cooldown_until)
		s->state = TS_OK;

	switch (s->state) {
	case TS_CAPTURING:
	case TS_COOLDOWN:
		return;
	case TS_OK:
		if (!cond || !s->armed)
			return;
		s->state = TS_PENDING;
		s->since_ms = now;
		/* with for == 0 the first holding sample fires */
		__attribute__((fallthrough));
	case TS_PENDING:
	case TS_FIRING:
		if (!cond) {
			s->state = TS_OK;
			return;
		}
		/* each sample stands for the interval before it */
		if (now - s->since_ms + e->interval_ms < r->for_ms)
			return;
		if (r->max_per_hour && fires_last_hour(s, now) >= r->max_per_hour) {
			if (s->state != TS_FIRING)
				rs->skipped++;
			s->state = TS_FIRING;
			return;
		}
		{
			struct engine_fire f = { r, s->key, v, s->since_ms };
			int err = cb(ctx, &f);

			if (err == -EBUSY) {
				s->state = TS_FIRING;
				return;
			}
			s->fires[s->nfires++ % FIRES_KEPT] = now;
			s->last_fired = now;
			/* with a clear level it must clear first; without one the cooldown alone
			 * spaces out firings of a condition that persists */
			s->armed = !r->has_clear;
			rs->total_fires++;
			if (err) {
				s->state = TS_COOLDOWN;
				s->cooldown_until = now + r->cooldown_ms;
			} else {
				s->state = TS_CAPTURING;
			}
		}
		return;
	}
}

void engine_evaluate(struct engine *e, const struct tsdb *db, uint64_t now_ms, engine_fire_cb cb,
		     void *ctx)
{
	for (unsigned i = 0; i < e->rules->n; i++) {
		const struct rule *r = &e->rules->rules[i];
		struct rule_state *rs = &e->states[i];

		if (!r->enabled || r->metric < 0)
			continue;
		for (struct tsdb_series *ser = tsdb_first(db, (unsigned)r->metric); ser;
		     ser = tsdb_next(ser)) {
			const char *key = tsdb_series_key(ser);
			struct scope_state *s;
			char cg[8];
			double v;

			if (r->scope == RULE_SCOPE_HOST && key[0])
				continue;
			if (r->scope == RULE_SCOPE_CGROUP &&
			    tsdb_series_label(ser, "cgroup", cg, sizeof(cg)) < 0)
				continue;
			if (!tsdb_value(db, ser, 0, &v))
				continue;
			s = scope_get(rs, key, true);
			if (!s) {
				rs->skipped++;
				continue;
			}
			s->last_seen_round = tsdb_rounds(db);
			step(e, r, rs, s, v, now_ms, cb, ctx);
		}
		/* forget idle scopes whose cgroup went away (keep host and busy ones) */
		for (unsigned k = 0; k < rs->n;) {
			struct scope_state *s = &rs->scopes[k];

			if (s->state == TS_OK && s->key[0] &&
			    tsdb_rounds(db) - s->last_seen_round > tsdb_points(db)) {
				free(s->key);
				rs->scopes[k] = rs->scopes[--rs->n];
				continue;
			}
			k++;
		}
	}
}

void engine_capture_done(struct engine *e, const char *rule, const char *series_key,
			 uint64_t now_ms)
{
	for (unsigned i = 0; i < e->rules->n; i++) {
		struct scope_state *s;

		if (strcmp(e->rules->rules[i].name, rule))
			continue;
		s = scope_get(&e->states[i], series_key, false);
		if (s && s->state == TS_CAPTURING) {
			s->state = TS_COOLDOWN;
			s->cooldown_until = now_ms + e->rules->rules[i].cooldown_ms;
		}
		return;
	}
}

json_t *engine_status(const struct engine *e, uint64_t now_ms)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < e->rules->n; i++) {
		const struct rule *r = &e->rules->rules[i];
		const struct rule_state *rs = &e->states[i];
		json_t *o = json_object(), *scopes = json_array();
		enum trigger_state worst = TS_OK;
		char cond[256];

		rule_condition_text(r, cond, sizeof(cond));
		json_object_set_new(o, "name", json_string(r->name));
		json_object_set_new(o, "condition", json_string(cond));
		json_object_set_new(o, "enabled", json_boolean(r->enabled));
		json_object_set_new(o, "dry_run", json_boolean(r->dry_run));
		json_object_set_new(o, "fires_total", json_integer((json_int_t)rs->total_fires));
		json_object_set_new(o, "skipped", json_integer((json_int_t)rs->skipped));
		for (unsigned k = 0; k < rs->n; k++) {
			const struct scope_state *s = &rs->scopes[k];
			json_t *so = json_object();

			if (s->state > worst)
				worst = s->state;
			json_object_set_new(so, "scope", json_string(s->key[0] ? s->key : "host"));
			json_object_set_new(so, "state", json_string(trigger_state_name(s->state)));
			json_object_set_new(so, "value", json_real(s->last_value));
			json_object_set_new(so, "fires_last_hour",
					    json_integer(fires_last_hour(s, now_ms)));
			if (s->last_fired)
				json_object_set_new(so, "last_fired_ago_ms",
						    json_integer((json_int_t)(now_ms - s->last_fired)));
			json_array_append_new(scopes, so);
		}
		json_object_set_new(o, "state", json_string(trigger_state_name(worst)));
		json_object_set_new(o, "scopes", scopes);
		json_array_append_new(arr, o);
	}
	return arr;
}
