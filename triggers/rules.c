// SPDX-License-Identifier: GPL-2.0-only
#include "triggers/rules.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/config.h"
#include "base/util.h"
#include "base/value.h"
#include "probes/catalogue.h"

#define RULES_MAX_FILES 128

struct parse_ctx {
	const char *file;
	struct diag *diag;
	const struct rules_limits *lim;
};

static const char *const rule_keys[] = {
	"name",	    "description",   "enabled",	     "dry_run",	 "labels",	"metric",
	"above",    "below",	     "increase",     "decrease", "all",		"any",
	"scope",    "match",	     "top",	     "for",	 "clear_below", "clear_above",
	"cooldown", "rule_cooldown", "max_per_hour", "capture",	 NULL,
};
static const char *const cond_keys[] = {"metric", "above", "below", "increase", "decrease", NULL};
static const char *const change_keys[] = {"by", "by_pct", "over", NULL};
static const char *const match_keys_cgroup[] = {"cgroup", "container_id", "pod_uid", NULL};
static const char *const match_keys_device[] = {"device", NULL};

static bool key_in(const char *const *keys, const char *k)
{
	for (; *keys; keys++)
		if (strcmp(*keys, k) == 0)
			return true;
	return false;
}

/* Reports every key of map not in keys; returns the number of unknown keys. */
static unsigned check_keys(struct parse_ctx *c, const struct ynode *map, const char *const *keys,
			   const char *what)
{
	unsigned bad = 0;

	for (size_t i = 0; i < map->n; i++) {
		if (key_in(keys, map->keys[i]->scalar))
			continue;
		diag_at(c->diag, c->file, map->keys[i], "unknown %s key '%s'", what,
			map->keys[i]->scalar);
		bad++;
	}
	return bad;
}

static const char *scalar(struct parse_ctx *c, const struct ynode *n, const char *what)
{
	if (n->type != YNODE_SCALAR) {
		diag_at(c->diag, c->file, n, "%s: expected a scalar, got %s", what,
			ynode_type_name(n->type));
		return NULL;
	}
	return n->scalar;
}

static int get_string(struct parse_ctx *c, const struct ynode *n, const char *what, char *dst,
		      size_t len)
{
	const char *s = scalar(c, n, what);

	if (!s)
		return -EINVAL;
	if (strlen(s) >= len) {
		diag_at(c->diag, c->file, n, "%s: longer than %zu characters", what, len - 1);
		return -EINVAL;
	}
	strcpy(dst, s);
	return 0;
}

static int get_number(struct parse_ctx *c, const struct ynode *n, const char *what, double *out)
{
	const char *s = scalar(c, n, what);

	if (!s)
		return -EINVAL;
	if (parse_double(s, out)) {
		diag_at(c->diag, c->file, n, "%s: '%s' is not a number", what, s);
		return -EINVAL;
	}
	return 0;
}

/* A typed scalar, through the parser config and capture parameters use. */
static int get_value(struct parse_ctx *c, const struct ynode *n, const char *what,
		     const struct value_spec *spec, uint64_t *out)
{
	const char *s = scalar(c, n, what);
	char why[256];
	int err;

	if (!s)
		return -EINVAL;
	err = value_parse(spec, s, out, why, sizeof(why));
	if (err)
		diag_at(c->diag, c->file, n, "%s: %s", what, why);
	return err;
}

static int get_uint(struct parse_ctx *c, const struct ynode *n, const char *what, uint64_t max,
		    uint64_t *out)
{
	return get_value(c, n, what, &(struct value_spec){VALUE_UINT, 0, max}, out);
}

static int get_duration(struct parse_ctx *c, const struct ynode *n, const char *what,
			uint64_t max_ms, uint64_t *out)
{
	return get_value(c, n, what, &(struct value_spec){VALUE_DURATION, 0, max_ms}, out);
}

static int get_bool(struct parse_ctx *c, const struct ynode *n, const char *what, bool *out)
{
	uint64_t v;
	int err = get_value(c, n, what, &(struct value_spec){VALUE_BOOL}, &v);

	if (!err)
		*out = v;
	return err;
}

static const char *cmp_name(enum rule_cmp cmp)
{
	static const char *const names[] = {"above", "below", "increase", "decrease"};

	return cmp <= RULE_DECREASE ? names[cmp] : "?";
}

/* increase: / decrease: {by: N | by_pct: P, over: DURATION} */
static int parse_change(struct parse_ctx *c, const struct ynode *n, const char *what,
			struct rule_condition *cond)
{
	const struct ynode *by = ynode_get(n, "by"), *pct = ynode_get(n, "by_pct");
	const struct ynode *over = ynode_get(n, "over");
	int err = 0;

	if (n->type != YNODE_MAP) {
		diag_at(c->diag, c->file, n, "%s: expected a mapping {by: N | by_pct: P, over: D}",
			what);
		return -EINVAL;
	}
	if (check_keys(c, n, change_keys, what))
		err = -EINVAL;
	if (!by == !pct) {
		diag_at(c->diag, c->file, n, "%s: needs exactly one of 'by' or 'by_pct'", what);
		return -EINVAL;
	}
	if (get_number(c, by ? by : pct, by ? "by" : "by_pct", &cond->threshold))
		return -EINVAL;
	cond->pct = pct != NULL;
	if (cond->threshold <= 0) {
		diag_at(c->diag, c->file, by ? by : pct, "%s: must be greater than 0", what);
		err = -ERANGE;
	}
	if (!over) {
		diag_at(c->diag, c->file, n, "%s: missing 'over' (the window compared against)",
			what);
		return -EINVAL;
	}
	if (get_duration(c, over, "over", c->lim->max_window_ms, &cond->window_ms))
		return -EINVAL;
	if (cond->window_ms == 0) {
		diag_at(c->diag, c->file, over, "over: must be longer than 0s");
		err = -ERANGE;
	}
	return err;
}

static int parse_metric(struct parse_ctx *c, const struct ynode *map, struct rule_condition *cond)
{
	const struct ynode *m = ynode_get(map, "metric");

	cond->metric = -1;
	if (!m) {
		diag_at(c->diag, c->file, map, "condition without 'metric'");
		return -EINVAL;
	}
	if (!scalar(c, m, "metric"))
		return -EINVAL;
	cond->metric = metric_index(m->scalar);
	if (cond->metric < 0) {
		diag_at(c->diag, c->file, m,
			"metric: unknown metric '%s' (see `autotrace metrics --list`)", m->scalar);
		return -EINVAL;
	}
	return 0;
}

/* The comparisons of one mapping (a rule, or an all:/any: item). With `single`
 * exactly one is allowed; otherwise one of above/below and/or one of
 * increase/decrease, all of which must hold. */
static int parse_comparisons(struct parse_ctx *c, const struct ynode *map, bool single, int metric,
			     struct rule *r)
{
	static const enum rule_cmp order[] = {RULE_ABOVE, RULE_BELOW, RULE_INCREASE, RULE_DECREASE};
	unsigned found = 0, levels = 0, changes = 0;
	int err = 0;

	for (size_t i = 0; i < 4; i++) {
		const char *key = cmp_name(order[i]);
		const struct ynode *v = ynode_get(map, key);
		struct rule_condition *cond;

		if (!v)
			continue;
		found++;
		if (order[i] <= RULE_BELOW)
			levels++;
		else
			changes++;
		if (r->nconds >= RULE_MAX_CONDS) {
			diag_at(c->diag, c->file, v, "more than %d conditions", RULE_MAX_CONDS);
			return -E2BIG;
		}
		cond = &r->conds[r->nconds++];
		memset(cond, 0, sizeof(*cond));
		cond->metric = metric;
		cond->cmp = order[i];
		if (order[i] <= RULE_BELOW) {
			if (get_number(c, v, key, &cond->threshold))
				err = -EINVAL;
		} else if (parse_change(c, v, key, cond)) {
			err = -EINVAL;
		}
	}
	if (found == 0) {
		diag_at(c->diag, c->file, map,
			"condition needs one of 'above', 'below', 'increase' or 'decrease'");
		return -EINVAL;
	}
	if (single && found > 1) {
		diag_at(c->diag, c->file, map,
			"each all:/any: entry takes exactly one of above, below, increase, "
			"decrease");
		return -EINVAL;
	}
	if (levels > 1 || changes > 1) {
		diag_at(c->diag, c->file, map, "%s",
			levels > 1 ? "'above' and 'below' together can never both hold; use any:"
				   : "'increase' and 'decrease' together can never both hold; use "
				     "any:");
		return -EINVAL;
	}
	return err;
}

static int parse_combination(struct parse_ctx *c, const struct ynode *list, enum rule_combine how,
			     struct rule *r)
{
	const char *what = how == RULE_ALL ? "all" : "any";
	int err = 0;

	r->combine = how;
	if (list->type != YNODE_SEQ || list->n == 0) {
		diag_at(c->diag, c->file, list, "%s: expected a non-empty list of conditions",
			what);
		return -EINVAL;
	}
	if (list->n > RULE_MAX_CONDS) {
		diag_at(c->diag, c->file, list, "%s: more than %d conditions", what,
			RULE_MAX_CONDS);
		return -E2BIG;
	}
	for (size_t i = 0; i < list->n; i++) {
		const struct ynode *item = list->items[i];
		struct rule_condition m;

		if (item->type != YNODE_MAP) {
			diag_at(c->diag, c->file, item,
				"%s: each entry is a mapping {metric, above|"
				"below|increase|decrease}",
				what);
			err = -EINVAL;
			continue;
		}
		if (check_keys(c, item, cond_keys, "condition"))
			err = -EINVAL;
		if (parse_metric(c, item, &m)) {
			err = -EINVAL;
			continue;
		}
		if (parse_comparisons(c, item, true, m.metric, r))
			err = -EINVAL;
	}
	return err;
}

/* A list parameter: a sequence of strings (or one string). */
static int parse_capture_strings(struct parse_ctx *c, const struct capture_ops *ops, unsigned idx,
				 const struct ynode *v, struct capture_params *p)
{
	const char *entries[64];
	size_t n = 0;
	char why[256];

	if (v->type == YNODE_SCALAR) {
		entries[n++] = v->scalar;
	} else if (v->type == YNODE_SEQ && v->n <= ARRAY_SIZE(entries)) {
		for (size_t i = 0; i < v->n; i++)
			if (!(entries[n++] = scalar(c, v->items[i], ops->params[idx].name)))
				return -EINVAL;
	} else {
		diag_at(c->diag, c->file, v,
			"capture %s.%s: expected a list of at most %zu strings", ops->kind,
			ops->params[idx].name, ARRAY_SIZE(entries));
		return -EINVAL;
	}
	if (capture_param_set_strings(ops, idx, p, entries, n, why, sizeof(why))) {
		diag_at(c->diag, c->file, v, "capture %s.%s: %s", ops->kind, ops->params[idx].name,
			why);
		return -EINVAL;
	}
	return 0;
}

static int parse_capture(struct parse_ctx *c, const struct ynode *n, struct rule_capture *rc)
{
	const struct ynode *kind = ynode_get(n, "kind");
	const struct capture_ops *ops;
	int err = 0;

	if (n->type != YNODE_MAP) {
		diag_at(c->diag, c->file, n, "capture: each entry must be a mapping with 'kind'");
		return -EINVAL;
	}
	if (!kind) {
		diag_at(c->diag, c->file, n, "capture: missing 'kind'");
		return -EINVAL;
	}
	if (!scalar(c, kind, "capture.kind"))
		return -EINVAL;
	ops = capture_kind_lookup(kind->scalar);
	if (!ops) {
		char known[256] = "";
		size_t off = 0;

		for (const struct capture_ops *const *k = capture_kinds; *k; k++)
			off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s",
						off ? ", " : "", (*k)->kind);
		diag_at(c->diag, c->file, kind, "capture: unknown kind '%s' (known: %s)",
			kind->scalar, known);
		return -EINVAL;
	}
	rc->ops = ops;
	rc->target = RTARGET_DEFAULT;
	capture_params_defaults(ops, &rc->params);
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *k = n->keys[i], *v = n->items[i];
		char why[256];
		int idx, err2;

		if (strcmp(k->scalar, "kind") == 0)
			continue;
		if (strcmp(k->scalar, "duration") == 0) {
			struct value_spec spec = {VALUE_DURATION, 100, c->lim->max_capture_ms};
			uint64_t ms;

			if (!scalar(c, v, "capture.duration")) {
				err = -EINVAL;
				continue;
			}
			err2 = value_parse(&spec, v->scalar, &ms, why, sizeof(why));
			if (err2) {
				/* the upper bound is the agent's, not the rule's: say which key */
				diag_at(c->diag, c->file, v, "capture.duration: %s%s", why,
					err2 == -ERANGE ? " (capture.max_duration)" : "");
				err = err2;
				continue;
			}
			rc->params.duration_ms = ms;
			continue;
		}
		if (strcmp(k->scalar, "target") == 0) {
			const char *t = scalar(c, v, "capture.target");

			if (!t)
				err = -EINVAL;
			else if (!strcmp(t, "host"))
				rc->target = RTARGET_HOST;
			else if (!strcmp(t, "cgroup"))
				rc->target = RTARGET_CGROUP;
			else if (!strcmp(t, "process"))
				rc->target = RTARGET_PROCESS;
			else {
				diag_at(c->diag, c->file, v,
					"capture.target: '%s' is not host, cgroup or process", t);
				err = -EINVAL;
			}
			continue;
		}
		idx = capture_param_index(ops, k->scalar);
		if (idx < 0) {
			diag_at(c->diag, c->file, k, "capture %s: unknown parameter '%s'",
				ops->kind, k->scalar);
			err = -EINVAL;
			continue;
		}
		if (ops->params[idx].type == CPARAM_STRINGS) {
			if (parse_capture_strings(c, ops, (unsigned)idx, v, &rc->params))
				err = -EINVAL;
			continue;
		}
		if (!scalar(c, v, k->scalar)) {
			err = -EINVAL;
			continue;
		}
		if (capture_param_parse(&ops->params[idx], v->scalar, &rc->params.v[idx], why,
					sizeof(why))) {
			diag_at(c->diag, c->file, v, "capture %s.%s: %s", ops->kind, k->scalar,
				why);
			err = -EINVAL;
		}
	}
	if (rc->params.duration_ms > c->lim->max_capture_ms)
		rc->params.duration_ms = c->lim->max_capture_ms;
	return err;
}

static void parse_match(struct parse_ctx *c, const struct ynode *v, struct rule *r)
{
	const struct ynode *m;

	if (r->scope != RULE_SCOPE_CGROUP && r->scope != RULE_SCOPE_DEVICE) {
		diag_at(c->diag, c->file, v, "match: only with scope: cgroup or scope: device");
		return;
	}
	if (v->type != YNODE_MAP) {
		diag_at(c->diag, c->file, v, "match: expected a mapping of globs (%s)",
			r->scope == RULE_SCOPE_CGROUP ? "cgroup, container_id, pod_uid" : "device");
		return;
	}
	check_keys(c, v, r->scope == RULE_SCOPE_CGROUP ? match_keys_cgroup : match_keys_device,
		   "match");
	if ((m = ynode_get(v, "cgroup")))
		get_string(c, m, "match.cgroup", r->match_cgroup, sizeof(r->match_cgroup));
	if ((m = ynode_get(v, "container_id")))
		get_string(c, m, "match.container_id", r->match_container,
			   sizeof(r->match_container));
	if ((m = ynode_get(v, "pod_uid")))
		get_string(c, m, "match.pod_uid", r->match_pod, sizeof(r->match_pod));
	if ((m = ynode_get(v, "device")))
		get_string(c, m, "match.device", r->match_device, sizeof(r->match_device));
}

static void parse_labels(struct parse_ctx *c, const struct ynode *v, struct rule *r)
{
	if (v->type != YNODE_MAP) {
		diag_at(c->diag, c->file, v, "labels: expected a mapping of strings");
		return;
	}
	if (v->n > RULE_MAX_LABELS) {
		diag_at(c->diag, c->file, v, "labels: more than %d labels", RULE_MAX_LABELS);
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		if (get_string(c, v->keys[i], "labels key", r->label_keys[r->nlabels],
			       sizeof(r->label_keys[0])) ||
		    get_string(c, v->items[i], "labels value", r->label_values[r->nlabels],
			       sizeof(r->label_values[0])))
			continue;
		r->nlabels++;
	}
}

static void parse_captures(struct parse_ctx *c, const struct ynode *v, struct rule *r)
{
	if (v->type != YNODE_SEQ) {
		diag_at(c->diag, c->file, v, "capture: expected a list");
		return;
	}
	if (v->n > RULE_MAX_CAPTURES) {
		diag_at(c->diag, c->file, v, "capture: more than %d entries", RULE_MAX_CAPTURES);
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		struct rule_capture *rc = &r->captures[r->ncaptures];

		if (parse_capture(c, v->items[i], rc))
			continue;
		for (unsigned j = 0; j < r->ncaptures; j++)
			if (r->captures[j].ops == rc->ops)
				diag_at(c->diag, c->file, v->items[i],
					"capture: kind '%s' listed twice", rc->ops->kind);
		r->ncaptures++;
	}
}

/* Scopes a metric can be evaluated on, checked for every condition. */
static void check_scope(struct parse_ctx *c, const struct ynode *at, struct rule *r)
{
	static const unsigned need_of[] = {[RULE_SCOPE_HOST] = MSCOPE_HOST,
					   [RULE_SCOPE_CGROUP] = MSCOPE_CGROUP,
					   [RULE_SCOPE_DEVICE] = MSCOPE_DEVICE,
					   [RULE_SCOPE_CPU] = MSCOPE_CPU};
	unsigned need = need_of[r->scope];

	for (unsigned i = 0; i < r->nconds; i++) {
		const struct metric_desc *md;

		if (r->conds[i].metric < 0)
			continue;
		md = metric_at((size_t)r->conds[i].metric);
		if (!(md->scopes & need))
			diag_at(c->diag, c->file, at, "metric %s has no %s scope", md->name,
				rule_scope_name(r->scope));
	}
}

static int parse_rule(struct parse_ctx *c, const struct ynode *n, struct rule *r)
{
	const struct ynode *v, *all, *any, *scope_node;
	unsigned before = c->diag->errors;
	uint64_t u;

	memset(r, 0, sizeof(*r));
	snprintf(r->file, sizeof(r->file), "%s", c->file);
	r->line = n->line;
	r->col = n->col;
	r->enabled = true;
	r->cooldown_ms = 600000;
	r->metric = -1;
	if (n->type != YNODE_MAP) {
		diag_at(c->diag, c->file, n, "each rule must be a mapping");
		return -EINVAL;
	}
	check_keys(c, n, rule_keys, "rule");

	if (!(v = ynode_get(n, "name")))
		diag_at(c->diag, c->file, n, "rule without 'name'");
	else if (!get_string(c, v, "name", r->name, sizeof(r->name)) && !r->name[0])
		diag_at(c->diag, c->file, v, "name: must not be empty");
	if ((v = ynode_get(n, "description")))
		get_string(c, v, "description", r->description, sizeof(r->description));
	if ((v = ynode_get(n, "enabled")))
		get_bool(c, v, "enabled", &r->enabled);
	if ((v = ynode_get(n, "dry_run")))
		get_bool(c, v, "dry_run", &r->dry_run);
	if ((v = ynode_get(n, "labels")))
		parse_labels(c, v, r);

	/* the condition: metric + comparisons, or all:/any: of single comparisons */
	all = ynode_get(n, "all");
	any = ynode_get(n, "any");
	if (all && any) {
		diag_at(c->diag, c->file, any, "a rule takes 'all' or 'any', not both");
	} else if (all || any) {
		static const char *const inline_keys[] = {"metric", "above", "below", "increase",
							  "decrease"};

		for (size_t i = 0; i < 5; i++)
			if ((v = ynode_get(n, inline_keys[i])))
				diag_at(c->diag, c->file, v,
					"'%s' goes inside the %s: list, not beside it",
					inline_keys[i], all ? "all" : "any");
		parse_combination(c, all ? all : any, all ? RULE_ALL : RULE_ANY, r);
	} else {
		struct rule_condition m;

		if (!ynode_get(n, "metric"))
			diag_at(c->diag, c->file, n,
				"rule '%s' needs a condition: 'metric' with above/below/increase/"
				"decrease, or an all:/any: list",
				r->name);
		else if (parse_metric(c, n, &m) == 0)
			parse_comparisons(c, n, false, m.metric, r);
		r->combine = RULE_ALL;
	}
	if (r->nconds) {
		r->metric = r->conds[0].metric;
		r->cmp = r->conds[0].cmp;
		r->threshold = r->conds[0].threshold;
	}

	scope_node = ynode_get(n, "scope");
	if (scope_node && scalar(c, scope_node, "scope")) {
		bool known = false;

		for (int sc = RULE_SCOPE_HOST; sc <= RULE_SCOPE_CPU; sc++) {
			if (strcmp(scope_node->scalar, rule_scope_name(sc)) == 0) {
				r->scope = sc;
				known = true;
			}
		}
		if (!known)
			diag_at(c->diag, c->file, scope_node,
				"scope: '%s' is not host, cgroup, device or cpu",
				scope_node->scalar);
	}
	check_scope(c, scope_node ? scope_node : n, r);
	if ((v = ynode_get(n, "match")))
		parse_match(c, v, r);
	if ((v = ynode_get(n, "top")) && !get_uint(c, v, "top", 1000, &u)) {
		if (r->scope == RULE_SCOPE_HOST)
			diag_at(c->diag, c->file, v, "top: only with scope cgroup, device or cpu");
		else if (u == 0)
			diag_at(c->diag, c->file, v, "top: must be at least 1");
		r->top = (unsigned)u;
	}

	if ((v = ynode_get(n, "clear_below"))) {
		if (!r->nconds || r->cmp != RULE_ABOVE)
			diag_at(c->diag, c->file, v,
				"clear_below only goes with a primary 'above' condition");
		else if (!get_number(c, v, "clear_below", &r->clear)) {
			r->has_clear = true;
			if (r->clear > r->threshold)
				diag_at(c->diag, c->file, v,
					"clear_below (%g) must not exceed above (%g)", r->clear,
					r->threshold);
		}
	}
	if ((v = ynode_get(n, "clear_above"))) {
		if (r->has_clear)
			diag_at(c->diag, c->file, v, "clear_above and clear_below together");
		else if (!r->nconds || r->cmp != RULE_BELOW)
			diag_at(c->diag, c->file, v,
				"clear_above only goes with a primary 'below' condition");
		else if (!get_number(c, v, "clear_above", &r->clear)) {
			r->has_clear = true;
			if (r->clear < r->threshold)
				diag_at(c->diag, c->file, v,
					"clear_above (%g) must not be under below (%g)", r->clear,
					r->threshold);
		}
	}
	if ((v = ynode_get(n, "for")))
		get_duration(c, v, "for", 3600000, &r->for_ms);
	if ((v = ynode_get(n, "cooldown")))
		get_duration(c, v, "cooldown", 7 * 86400000ull, &r->cooldown_ms);
	if ((v = ynode_get(n, "rule_cooldown")))
		get_duration(c, v, "rule_cooldown", 7 * 86400000ull, &r->rule_cooldown_ms);
	if ((v = ynode_get(n, "max_per_hour")) && !get_uint(c, v, "max_per_hour", 3600, &u))
		r->max_per_hour = (unsigned)u;

	if ((v = ynode_get(n, "capture")))
		parse_captures(c, v, r);
	else if (!r->dry_run)
		diag_at(c->diag, c->file, n,
			"rule '%s' has no 'capture' list (use dry_run: true "
			"to only record that it fired)",
			r->name);
	for (unsigned i = 0; i < r->ncaptures; i++) {
		if (r->captures[i].target == RTARGET_CGROUP && r->scope != RULE_SCOPE_CGROUP)
			diag_at(c->diag, c->file, ynode_get(n, "capture"),
				"capture %s: target cgroup needs scope: cgroup",
				r->captures[i].ops->kind);
	}
	return c->diag->errors == before ? 0 : -EINVAL;
}

/* The array grows as rules are parsed (most sets hold a handful; RULES_MAX of
 * them are 6 MB), only while parsing: nothing points into it yet. */
static int ruleset_push(struct ruleset *rs, const struct rule *r)
{
	if (rs->n == rs->cap) {
		unsigned cap = rs->cap ? MIN(rs->cap * 2, RULES_MAX) : 8;
		struct rule *p = realloc(rs->rules, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		rs->rules = p;
		rs->cap = cap;
	}
	rs->rules[rs->n++] = *r;
	return 0;
}

static int parse_doc(const struct ydoc *doc, const struct rules_limits *lim, struct ruleset *rs,
		     struct diag *diag)
{
	struct parse_ctx c = {.file = doc->file, .diag = diag, .lim = lim};
	const struct ynode *list;
	unsigned before = diag->errors;

	if (!doc->root)
		return 0; /* an empty file holds no rules */
	if (doc->root->type != YNODE_MAP) {
		diag_at(diag, doc->file, doc->root, "a rule file is a mapping with a 'rules' list");
		return -EINVAL;
	}
	for (size_t i = 0; i < doc->root->n; i++)
		if (strcmp(doc->root->keys[i]->scalar, "rules"))
			diag_at(diag, doc->file, doc->root->keys[i], "unknown top-level key '%s'",
				doc->root->keys[i]->scalar);
	list = ynode_get(doc->root, "rules");
	if (!list) {
		diag_at(diag, doc->file, doc->root, "missing 'rules' list");
		return -EINVAL;
	}
	if (list->type != YNODE_SEQ) {
		diag_at(diag, doc->file, list, "rules: expected a list");
		return -EINVAL;
	}
	for (size_t i = 0; i < list->n; i++) {
		struct rule r;

		if (rs->n >= RULES_MAX) {
			diag_at(diag, doc->file, list->items[i], "more than %d rules", RULES_MAX);
			return -E2BIG;
		}
		if (parse_rule(&c, list->items[i], &r))
			continue;
		for (unsigned j = 0; j < rs->n; j++) {
			if (strcmp(rs->rules[j].name, r.name) == 0) {
				diag_add(diag, doc->file, r.line, r.col,
					 "duplicate rule name '%s' (first defined at %s:%u:%u)",
					 r.name, rs->rules[j].file, rs->rules[j].line,
					 rs->rules[j].col);
				goto next;
			}
		}
		if (ruleset_push(rs, &r)) {
			diag_at(diag, doc->file, list->items[i], "out of memory");
			return -ENOMEM;
		}
	next:;
	}
	return diag->errors == before ? 0 : -EINVAL;
}

static struct ruleset *ruleset_alloc(const char *source)
{
	struct ruleset *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return NULL;
	snprintf(rs->source, sizeof(rs->source), "%s", source);
	return rs;
}

void ruleset_free(struct ruleset **prs)
{
	if (!prs || !*prs)
		return;
	free((*prs)->rules);
	free(*prs);
	*prs = NULL;
}

static int load_file(const char *path, const struct rules_limits *lim, struct ruleset *rs,
		     struct diag *diag)
{
	struct ydoc *doc = NULL;
	char why[256];
	int err;

	err = check_trusted_file(path, why, sizeof(why));
	if (err) {
		diag_add(diag, path, 0, 0, "refusing rule file: %s", why);
		return err;
	}
	err = ydoc_load_file(path, &doc, diag);
	if (err)
		return err;
	err = parse_doc(doc, lim, rs, diag);
	ydoc_free(&doc);
	return err;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_rule_file(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.')
		return false;
	return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
	       (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static int load_dir(const char *dir, const struct rules_limits *lim, struct ruleset *rs,
		    struct diag *diag)
{
	char *names[RULES_MAX_FILES];
	unsigned n = 0;
	struct dirent *de;
	char why[256];
	DIR *d;
	int err = 0;

	/* the directory itself must not let others drop rule files in */
	err = check_trusted_file(dir, why, sizeof(why));
	if (err) {
		diag_add(diag, dir, 0, 0, "refusing rules directory: %s", why);
		return err;
	}
	d = opendir(dir);
	if (!d) {
		err = -errno;
		diag_add(diag, dir, 0, 0, "cannot open: %s", strerror(errno));
		return err;
	}
	while ((de = readdir(d))) {
		if (!is_rule_file(de->d_name))
			continue;
		if (n >= RULES_MAX_FILES) {
			diag_add(diag, dir, 0, 0, "more than %d rule files", RULES_MAX_FILES);
			err = -E2BIG;
			break;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			err = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	for (unsigned i = 0; i < n; i++) {
		char path[PATH_MAX];

		if (!err) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			if (load_file(path, lim, rs, diag) && !err)
				err = -EINVAL;
		}
		free(names[i]);
	}
	return err;
}

int ruleset_load_paths(const char *const *paths, unsigned npaths, const struct rules_limits *lim,
		       struct ruleset **out, struct diag *diag)
{
	struct ruleset *rs = ruleset_alloc(npaths == 1 ? paths[0] : "(several paths)");
	unsigned before = diag->errors;

	*out = NULL;
	if (!rs)
		return -ENOMEM;
	for (unsigned i = 0; i < npaths; i++) {
		struct stat st;

		if (stat(paths[i], &st)) {
			diag_add(diag, paths[i], 0, 0, "%s", strerror(errno));
			continue;
		}
		if (S_ISDIR(st.st_mode))
			load_dir(paths[i], lim, rs, diag);
		else
			load_file(paths[i], lim, rs, diag);
	}
	if (diag->errors != before) {
		ruleset_free(&rs);
		return -EINVAL;
	}
	*out = rs;
	return 0;
}

int ruleset_load_string(const char *name, const char *text, const struct rules_limits *lim,
			struct ruleset **out, struct diag *diag)
{
	struct ruleset *rs = ruleset_alloc(name);
	struct ydoc *doc = NULL;
	int err;

	*out = NULL;
	if (!rs)
		return -ENOMEM;
	err = ydoc_load_string(name, text, strlen(text), &doc, diag);
	if (!err)
		err = parse_doc(doc, lim, rs, diag);
	ydoc_free(&doc);
	if (err) {
		ruleset_free(&rs);
		return err;
	}
	*out = rs;
	return 0;
}

int ruleset_load_builtin(const struct rules_limits *lim, struct ruleset **out, struct diag *diag)
{
	struct ruleset *rs = ruleset_alloc("(built-in)");
	unsigned before = diag->errors;

	*out = NULL;
	if (!rs)
		return -ENOMEM;
	for (const struct builtin_file *f = builtin_rule_files; f->name; f++) {
		struct ydoc *doc = NULL;

		if (ydoc_load_string(f->name, f->text, strlen(f->text), &doc, diag) == 0)
			parse_doc(doc, lim, rs, diag);
		ydoc_free(&doc);
	}
	if (diag->errors != before) {
		ruleset_free(&rs);
		return -EINVAL;
	}
	*out = rs;
	return 0;
}

struct rules_limits rules_limits_from_config(const struct agent_config *cfg)
{
	return (struct rules_limits){.max_capture_ms = cfg->capture.max_duration_ms,
				     .max_window_ms = cfg->agent.history_ms};
}

const struct rule *ruleset_find(const struct ruleset *rs, const char *name)
{
	for (unsigned i = 0; rs && i < rs->n; i++)
		if (strcmp(rs->rules[i].name, name) == 0)
			return &rs->rules[i];
	return NULL;
}

static int cond_text(const struct rule_condition *c, bool with_metric, char *buf, size_t len)
{
	const struct metric_desc *md = c->metric >= 0 ? metric_at((size_t)c->metric) : NULL;
	char win[32];

	if (c->cmp <= RULE_BELOW)
		return snprintf(buf, len, "%s%s%s %g", with_metric && md ? md->name : "",
				with_metric ? " " : "", cmp_name(c->cmp), c->threshold);
	format_duration(c->window_ms, win, sizeof(win));
	return snprintf(buf, len, "%s%s%s %g%s over %s", with_metric && md ? md->name : "",
			with_metric ? " " : "", cmp_name(c->cmp), c->threshold, c->pct ? "%" : "",
			win);
}

void rule_condition_text(const struct rule *r, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < r->nconds && off < len; i++) {
		/* repeat the metric only when it changes: "cpu.sys_pct above 30 and increase 10
		 * over 10s" */
		bool same = i && r->conds[i].metric == r->conds[i - 1].metric;
		int n;

		if (i)
			off += (size_t)snprintf(buf + off, len - off, " %s ",
						r->combine == RULE_ALL ? "and" : "or");
		if (off >= len)
			break;
		n = cond_text(&r->conds[i], !same, buf + off, len - off);
		if (n > 0)
			off += (size_t)n;
	}
	if (r->for_ms && off < len) {
		char dur[32];

		format_duration(r->for_ms, dur, sizeof(dur));
		snprintf(buf + off, len - off, " for %s", dur);
	}
}

enum rule_target rule_capture_target(const struct rule *r, const struct rule_capture *c)
{
	if (c->target != RTARGET_DEFAULT)
		return c->target;
	return r->scope == RULE_SCOPE_CGROUP ? RTARGET_CGROUP : RTARGET_HOST;
}

const char *rule_scope_name(enum rule_scope sc)
{
	static const char *const names[] = {"host", "cgroup", "device", "cpu"};

	return sc <= RULE_SCOPE_CPU ? names[sc] : "?";
}

const char *rule_target_name(enum rule_target t)
{
	switch (t) {
	case RTARGET_DEFAULT:
		return "default";
	case RTARGET_HOST:
		return "host";
	case RTARGET_CGROUP:
		return "cgroup";
	case RTARGET_PROCESS:
		return "process";
	}
	return "?";
}
