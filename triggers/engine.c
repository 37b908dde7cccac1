// SPDX-License-Identifier: GPL-2.0-only
#include "triggers/engine.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"

#define SCOPES_PER_RULE_MAX 1024
#define HOUR_MS		    3600000ull

struct scope_state {
	char *key;
	enum trigger_state state;
	uint64_t since_ms; /* condition holding since (pending) */
	uint64_t cooldown_until;
	bool armed; /* hysteresis: false until the value clears */
	double last_value;
	uint64_t last_fired;
	uint64_t last_seen_round;
	bool candidate; /* ready to fire this round */
};

struct rule_state {
	char name[128];
	struct scope_state *scopes;
	unsigned n, cap;
	uint64_t *fires; /* ring of fire times, max_per_hour long */
	unsigned fires_cap, nfires;
	uint64_t rule_cooldown_until;
	uint64_t last_fired;
	uint64_t total_fires;
	uint64_t skipped; /* firings held back by max_per_hour, top or scope cap */
	uint64_t refused; /* firings the capture budget refused (retried) */
};

struct engine {
	struct ruleset *rules;
	struct rule_state *states; /* parallel to rules->rules */
	uint64_t interval_ms;
	struct engine_fire *fires; /* one round's firings */
	struct {
		unsigned rule, scope;
	} * fire_at;
	unsigned fires_cap;
	uint64_t memo_gen; /* which rule set the scope choices remembered in the tsdb are for */
};

const char *trigger_state_name(enum trigger_state s)
{
	static const char *const names[] = {"ok", "pending", "firing", "capturing", "cooldown"};

	return s <= TS_COOLDOWN ? names[s] : "?";
}

static void rule_state_clear(struct rule_state *rs)
{
	for (unsigned i = 0; i < rs->n; i++)
		free(rs->scopes[i].key);
	free(rs->scopes);
	free(rs->fires);
	memset(rs, 0, sizeof(*rs));
}

int engine_new(struct engine **out, struct ruleset *rules, uint64_t interval_ms)
{
	struct engine *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->interval_ms = interval_ms ? interval_ms : 1000;
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
	free(e->fires);
	free(e->fire_at);
	ruleset_free(&e->rules);
	free(e);
	*pe = NULL;
}

/* The fire-time ring must hold max_per_hour entries; keep the newest ones. */
static int fires_resize(struct rule_state *rs, unsigned want)
{
	uint64_t *ring;
	unsigned keep = 0;

	if (want == rs->fires_cap)
		return 0;
	ring = want ? calloc(want, sizeof(*ring)) : NULL;
	if (want && !ring)
		return -ENOMEM;
	for (unsigned i = 0; i < rs->nfires && i < rs->fires_cap && keep < want; i++) {
		unsigned idx = (rs->nfires - 1 - i) % rs->fires_cap;

		ring[want - 1 - keep++] = rs->fires[idx];
	}
	free(rs->fires);
	rs->fires = ring;
	rs->fires_cap = want;
	rs->nfires = keep;
	/* the ring is consumed as (nfires - k) % cap: place the kept ones at the end */
	if (keep && keep < want)
		memmove(ring, ring + want - keep, keep * sizeof(*ring));
	return 0;
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
		if (fires_resize(&states[i], rules->rules[i].max_per_hour))
			log_error("engine: out of memory for rule %s's fire history",
				  states[i].name);
	}
	for (unsigned j = 0; e->rules && j < e->rules->n; j++)
		rule_state_clear(&e->states[j]);
	free(e->states);
	ruleset_free(&e->rules);
	e->rules = rules;
	/* new rules (or a new engine): what series they select is not known yet */
	{
		static uint64_t memo_gens;

		e->memo_gen = ++memo_gens;
	}
	e->states = states;
}

void engine_set_interval(struct engine *e, uint64_t interval_ms)
{
	e->interval_ms = interval_ms ? interval_ms : 1000;
}

const struct ruleset *engine_rules(const struct engine *e)
{
	return e->rules;
}

static int scope_index(struct rule_state *rs, const char *key, bool create)
{
	for (unsigned i = 0; i < rs->n; i++)
		if (strcmp(rs->scopes[i].key, key) == 0)
			return (int)i;
	if (!create || rs->n >= SCOPES_PER_RULE_MAX)
		return -ENOSPC;
	if (rs->n == rs->cap) {
		unsigned cap = rs->cap ? rs->cap * 2 : 4;
		struct scope_state *p = realloc(rs->scopes, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		rs->scopes = p;
		rs->cap = cap;
	}
	memset(&rs->scopes[rs->n], 0, sizeof(rs->scopes[0]));
	rs->scopes[rs->n].key = strdup(key);
	if (!rs->scopes[rs->n].key)
		return -ENOMEM;
	rs->scopes[rs->n].armed = true;
	return (int)rs->n++;
}

static unsigned fires_last_hour(const struct rule_state *rs, uint64_t now)
{
	unsigned n = 0;

	for (unsigned i = 0; i < rs->nfires && i < rs->fires_cap; i++)
		if (now - rs->fires[i] < HOUR_MS)
			n++;
	return n;
}

/* Does one condition hold for the scope of series `scope`? *v gets its value now. */
static bool cond_holds(const struct engine *e, const struct tsdb *db,
		       const struct rule_condition *c, const struct tsdb_series *scope, double *v)
{
	/* the same labels, the condition's metric (one look-up, no key hashing) */
	struct tsdb_series *s = tsdb_sibling(scope, (unsigned)c->metric);
	double then, delta;
	unsigned ago;

	if (!s || !tsdb_value(db, s, 0, v))
		return false;
	switch (c->cmp) {
	case RULE_ABOVE:
		return *v > c->threshold;
	case RULE_BELOW:
		return *v < c->threshold;
	case RULE_INCREASE:
	case RULE_DECREASE:
		ago = (unsigned)((c->window_ms + e->interval_ms / 2) / e->interval_ms);
		if (ago == 0)
			ago = 1;
		/* a missing sample at exactly the window start: take the nearest older one */
		while (!tsdb_value(db, s, ago, &then))
			if (++ago >= tsdb_points(db) ||
			    ago > 2 * (c->window_ms / e->interval_ms + 1))
				return false;
		delta = c->cmp == RULE_INCREASE ? *v - then : then - *v;
		if (!c->pct)
			return delta >= c->threshold;
		if (then == 0)
			return delta > 0; /* from nothing: any growth is infinitely many % */
		return delta / fabs(then) * 100.0 >= c->threshold;
	}
	return false;
}

static bool rule_holds(const struct engine *e, const struct tsdb *db, const struct rule *r,
		       const struct tsdb_series *scope, double *primary)
{
	bool any = false, all = true;

	*primary = NAN;
	for (unsigned i = 0; i < r->nconds; i++) {
		double v = NAN;
		bool h = cond_holds(e, db, &r->conds[i], scope, &v);

		if (i == 0)
			*primary = v;
		any |= h;
		all &= h;
	}
	return r->combine == RULE_ALL ? all : any;
}

/* Hysteresis: the primary value must come back past clear (or the threshold). */
static bool cleared(const struct rule *r, double v)
{
	double level = r->has_clear ? r->clear : r->threshold;

	if (isnan(v))
		return false;
	return r->cmp == RULE_BELOW ? v >= level : v <= level;
}

struct label_ctx {
	char cgroup[512], container[80], pod[48], device[64];
	bool cpu;
};

static void collect_labels(const char *k, const char *v, void *ctx)
{
	struct label_ctx *l = ctx;

	if (!strcmp(k, "device"))
		snprintf(l->device, sizeof(l->device), "%s", v);
	else if (!strcmp(k, "cpu"))
		l->cpu = true;
	else if (!strcmp(k, "cgroup"))
		snprintf(l->cgroup, sizeof(l->cgroup), "%s", v);
	else if (!strcmp(k, "container_id"))
		snprintf(l->container, sizeof(l->container), "%s", v);
	else if (!strcmp(k, "pod_uid"))
		snprintf(l->pod, sizeof(l->pod), "%s", v);
}

/* Which scopes of the primary metric a rule is evaluated on. */
static bool scope_selected(const struct rule *r, const char *key)
{
	struct label_ctx l = {"", "", "", "", false};

	if (r->scope == RULE_SCOPE_HOST)
		return key[0] == '\0';
	labels_foreach(key, collect_labels, &l);
	if (r->scope == RULE_SCOPE_DEVICE)
		return l.device[0] &&
		       (!r->match_device[0] || !fnmatch(r->match_device, l.device, 0));
	if (r->scope == RULE_SCOPE_CPU)
		return l.cpu && !l.cgroup[0];
	if (!l.cgroup[0])
		return false;
	if (r->match_cgroup[0] && fnmatch(r->match_cgroup, l.cgroup, 0))
		return false;
	if (r->match_container[0] &&
	    (!l.container[0] || fnmatch(r->match_container, l.container, 0)))
		return false;
	if (r->match_pod[0] && (!l.pod[0] || fnmatch(r->match_pod, l.pod, 0)))
		return false;
	return true;
}

/* scope_selected, remembered with the series' label set: a dense node has a
 * thousand cgroup series per metric, and their labels do not change. */
static bool scope_selected_memo(const struct engine *e, unsigned ri, const struct rule *r,
				const struct tsdb_series *ser)
{
	struct tsdb_memo *m;
	uint64_t bit;
	bool sel;

	if (ri >= 64)
		return scope_selected(r, tsdb_series_key(ser));
	m = tsdb_series_memo(ser);
	bit = 1ull << ri;
	if (m->gen != e->memo_gen) {
		m->gen = e->memo_gen;
		m->known = m->bits = 0;
	}
	if (m->known & bit)
		return m->bits & bit;
	sel = scope_selected(r, tsdb_series_key(ser));
	m->known |= bit;
	if (sel)
		m->bits |= bit;
	return sel;
}

/* Advances one scope; returns true when it is ready to fire this round. */
static bool step(struct engine *e, const struct rule *r, struct rule_state *rs,
		 struct scope_state *s, bool cond, double v, uint64_t now)
{
	s->last_value = v;
	if (!s->armed && cleared(r, v))
		s->armed = true;
	if (s->state == TS_COOLDOWN && now >= s->cooldown_until)
		s->state = TS_OK;

	switch (s->state) {
	case TS_CAPTURING:
	case TS_COOLDOWN:
		return false;
	case TS_OK:
		if (!cond || !s->armed)
			return false;
		s->state = TS_PENDING;
		s->since_ms = now;
		/* with for == 0 the first holding sample fires */
		__attribute__((fallthrough));
	case TS_PENDING:
	case TS_FIRING:
		if (!cond) {
			s->state = TS_OK;
			return false;
		}
		/* each sample stands for the interval before it */
		if (now - s->since_ms + e->interval_ms < r->for_ms)
			return false;
		if (now < rs->rule_cooldown_until)
			return false;
		return true;
	}
	return false;
}

/* Worst first: highest value for above/increase rules, lowest for below/decrease. */
static const struct rule *sort_rule;

static int severity_cmp(const void *a, const void *b)
{
	const struct engine_fire *x = a, *y = b;
	bool low_bad = sort_rule->cmp == RULE_BELOW || sort_rule->cmp == RULE_DECREASE;

	if (x->value == y->value)
		return 0;
	return (x->value > y->value) ^ low_bad ? -1 : 1;
}

static int fires_reserve(struct engine *e, unsigned n)
{
	void *p, *q;

	if (n <= e->fires_cap)
		return 0;
	n = MAX(n, 2 * e->fires_cap);
	p = realloc(e->fires, n * sizeof(*e->fires));
	if (p)
		e->fires = p;
	q = realloc(e->fire_at, n * sizeof(*e->fire_at));
	if (q)
		e->fire_at = q;
	if (!p || !q)
		return -ENOMEM;
	e->fires_cap = n;
	return 0;
}

void engine_evaluate(struct engine *e, const struct tsdb *db, uint64_t now_ms, engine_fire_cb cb,
		     void *ctx)
{
	unsigned nfires = 0;

	for (unsigned ri = 0; ri < e->rules->n; ri++) {
		const struct rule *r = &e->rules->rules[ri];
		struct rule_state *rs = &e->states[ri];
		unsigned first = nfires, ready;

		if (!r->enabled || r->nconds == 0)
			continue;
		for (struct tsdb_series *ser = tsdb_first(db, (unsigned)r->metric); ser;
		     ser = tsdb_next(ser)) {
			const char *key = tsdb_series_key(ser);
			struct scope_state *s;
			double v;
			bool cond;
			int si;

			if (!scope_selected_memo(e, ri, r, ser))
				continue;
			cond = rule_holds(e, db, r, ser, &v);
			si = scope_index(rs, key, cond);
			if (si < 0) {
				if (si == -ENOSPC && cond)
					rs->skipped++;
				continue;
			}
			s = &rs->scopes[si];
			s->last_seen_round = tsdb_rounds(db);
			if (!step(e, r, rs, s, cond, v, now_ms))
				continue;
			if (fires_reserve(e, nfires + 1))
				break;
			e->fires[nfires] = (struct engine_fire){r, NULL, v, s->since_ms, 0};
			e->fire_at[nfires].rule = ri;
			e->fire_at[nfires].scope = (unsigned)si;
			nfires++;
		}
		/* top: only the worst N scopes of this rule fire this round */
		ready = nfires - first;
		if (r->top && ready > r->top) {
			/* sort fires and their positions together */
			struct {
				struct engine_fire f;
				unsigned rule, scope;
			} *tmp = malloc(ready * sizeof(*tmp));

			if (tmp) {
				for (unsigned i = 0; i < ready; i++) {
					tmp[i].f = e->fires[first + i];
					tmp[i].rule = e->fire_at[first + i].rule;
					tmp[i].scope = e->fire_at[first + i].scope;
				}
				sort_rule = r;
				qsort(tmp, ready, sizeof(*tmp), severity_cmp);
				for (unsigned i = 0; i < ready; i++) {
					e->fires[first + i] = tmp[i].f;
					e->fire_at[first + i].rule = tmp[i].rule;
					e->fire_at[first + i].scope = tmp[i].scope;
				}
				free(tmp);
			}
			rs->skipped += ready - r->top;
			nfires = first + r->top;
		}
		/* max_per_hour: the rule as a whole */
		if (r->max_per_hour) {
			unsigned used = fires_last_hour(rs, now_ms);
			unsigned room = used >= r->max_per_hour ? 0 : r->max_per_hour - used;

			if (nfires - first > room) {
				rs->skipped += nfires - first - room;
				for (unsigned i = first + room; i < nfires; i++)
					rs->scopes[e->fire_at[i].scope].state = TS_FIRING;
				nfires = first + room;
			}
		}
	}

	/* keys are stable now: no scope is added or removed until the end */
	for (unsigned i = 0; i < nfires; i++)
		e->fires[i].series_key =
			e->states[e->fire_at[i].rule].scopes[e->fire_at[i].scope].key;
	if (nfires)
		cb(ctx, e->fires, nfires);

	for (unsigned i = 0; i < nfires; i++) {
		const struct rule *r = e->fires[i].rule;
		struct rule_state *rs = &e->states[e->fire_at[i].rule];
		struct scope_state *s = &rs->scopes[e->fire_at[i].scope];
		int err = e->fires[i].result;

		if (err == -EBUSY) {
			if (s->state != TS_FIRING)
				rs->refused++;
			s->state = TS_FIRING;
			continue;
		}
		if (rs->fires_cap)
			rs->fires[rs->nfires++ % rs->fires_cap] = now_ms;
		s->last_fired = rs->last_fired = now_ms;
		/* with a clear level it must clear first; without one the cooldown alone
		 * spaces out firings of a condition that persists */
		s->armed = !r->has_clear;
		rs->total_fires++;
		if (r->rule_cooldown_ms)
			rs->rule_cooldown_until = now_ms + r->rule_cooldown_ms;
		if (err) {
			s->state = TS_COOLDOWN;
			s->cooldown_until = now_ms + r->cooldown_ms;
		} else {
			s->state = TS_CAPTURING;
		}
	}

	/* forget idle scopes whose cgroup went away (keep host and busy ones) */
	for (unsigned ri = 0; ri < e->rules->n; ri++) {
		struct rule_state *rs = &e->states[ri];

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
		struct rule_state *rs = &e->states[i];
		int si;

		if (strcmp(e->rules->rules[i].name, rule))
			continue;
		si = scope_index(rs, series_key, false);
		if (si >= 0 && rs->scopes[si].state == TS_CAPTURING) {
			rs->scopes[si].state = TS_COOLDOWN;
			rs->scopes[si].cooldown_until = now_ms + e->rules->rules[i].cooldown_ms;
		}
		return;
	}
}

enum trigger_state engine_state(const struct engine *e, const char *rule, const char *series_key)
{
	for (unsigned i = 0; i < e->rules->n; i++) {
		struct rule_state *rs = &e->states[i];
		int si;

		if (strcmp(e->rules->rules[i].name, rule))
			continue;
		si = scope_index(rs, series_key, false);
		return si >= 0 ? rs->scopes[si].state : TS_OK;
	}
	return TS_OK;
}

json_t *engine_status(const struct engine *e, uint64_t now_ms)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < e->rules->n; i++) {
		const struct rule *r = &e->rules->rules[i];
		const struct rule_state *rs = &e->states[i];
		json_t *o = json_object(), *scopes = json_array();
		enum trigger_state worst = TS_OK;
		char cond[512];

		rule_condition_text(r, cond, sizeof(cond));
		json_object_set_new(o, "name", json_string(r->name));
		json_object_set_new(o, "condition", json_string(cond));
		json_object_set_new(o, "scope", json_string(rule_scope_name(r->scope)));
		json_object_set_new(o, "enabled", json_boolean(r->enabled));
		json_object_set_new(o, "dry_run", json_boolean(r->dry_run));
		json_object_set_new(o, "fires_total", json_integer((json_int_t)rs->total_fires));
		json_object_set_new(o, "fires_last_hour",
				    json_integer(fires_last_hour(rs, now_ms)));
		if (r->max_per_hour)
			json_object_set_new(o, "max_per_hour", json_integer(r->max_per_hour));
		if (rs->last_fired)
			json_object_set_new(o, "last_fired_ago_ms",
					    json_integer((json_int_t)(now_ms - rs->last_fired)));
		if (now_ms < rs->rule_cooldown_until)
			json_object_set_new(
				o, "rule_cooldown_left_ms",
				json_integer((json_int_t)(rs->rule_cooldown_until - now_ms)));
		json_object_set_new(o, "skipped", json_integer((json_int_t)rs->skipped));
		json_object_set_new(o, "refused", json_integer((json_int_t)rs->refused));
		for (unsigned k = 0; k < rs->n; k++) {
			const struct scope_state *s = &rs->scopes[k];
			json_t *so = json_object();

			if (s->state > worst)
				worst = s->state;
			json_object_set_new(so, "scope", json_string(s->key[0] ? s->key : "host"));
			json_object_set_new(so, "state", json_string(trigger_state_name(s->state)));
			if (!isnan(s->last_value))
				json_object_set_new(so, "value",
						    json_real(round(s->last_value * 1000) / 1000));
			if (s->state == TS_PENDING || s->state == TS_FIRING)
				json_object_set_new(
					so, "holding_ms",
					json_integer((json_int_t)(now_ms - s->since_ms)));
			if (s->state == TS_COOLDOWN && s->cooldown_until > now_ms)
				json_object_set_new(
					so, "cooldown_left_ms",
					json_integer((json_int_t)(s->cooldown_until - now_ms)));
			if (!s->armed)
				json_object_set_new(so, "waiting_to_clear", json_true());
			if (s->last_fired)
				json_object_set_new(
					so, "last_fired_ago_ms",
					json_integer((json_int_t)(now_ms - s->last_fired)));
			json_array_append_new(scopes, so);
		}
		json_object_set_new(o, "state", json_string(trigger_state_name(worst)));
		json_object_set_new(o, "scopes", scopes);
		json_array_append_new(arr, o);
	}
	return arr;
}
