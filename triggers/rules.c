// SPDX-License-Identifier: GPL-2.0-only
#include "triggers/rules.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/util.h"
#include "probes/catalogue.h"

#define RULES_MAX_FILES 128

struct parse_ctx {
	const char *file;
	struct diag *diag;
	const struct rules_limits *lim;
};

static const char *const rule_keys[] = {
	"name",      "description", "metric",  "scope",        "above",   "below",
	"for",       "clear_below", "clear_above", "cooldown", "max_per_hour", "capture",
	"enabled",   "dry_run",     "labels",  NULL,
};

static bool key_allowed(const char *const *keys, const char *k)
{
	for (; *keys; keys++)
		if (strcmp(*keys, k) == 0)
			return true;
	return false;
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

static int get_duration(struct parse_ctx *c, const struct ynode *n, const char *what,
			uint64_t *out)
{
	const char *s = scalar(c, n, what);

	if (!s)
		return -EINVAL;
	if (parse_duration_ms(s, out)) {
		diag_at(c->diag, c->file, n, "%s: '%s' is not a duration (e.g. 500ms, 3s, 10m)",
			what, s);
		return -EINVAL;
	}
	return 0;
}

static int get_bool(struct parse_ctx *c, const struct ynode *n, const char *what, bool *out)
{
	const char *s = scalar(c, n, what);

	if (!s)
		return -EINVAL;
	if (parse_bool(s, out)) {
		diag_at(c->diag, c->file, n, "%s: '%s' is not a boolean (true or false)", what, s);
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
	capture_params_defaults(ops, &rc->params);
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *k = n->keys[i], *v = n->items[i];
		char why[256];
		int idx;

		if (strcmp(k->scalar, "kind") == 0)
			continue;
		if (strcmp(k->scalar, "duration") == 0) {
			uint64_t ms;

			if (get_duration(c, v, "capture.duration", &ms)) {
				err = -EINVAL;
				continue;
			}
			if (ms < 100 || ms > c->lim->max_capture_ms) {
				char hi[32];

				format_duration(c->lim->max_capture_ms, hi, sizeof(hi));
				diag_at(c->diag, c->file, v,
					"capture.duration: '%s' is out of range [100ms, %s] "
					"(capture.max_duration)", v->scalar, hi);
				err = -ERANGE;
				continue;
			}
			rc->params.duration_ms = ms;
			continue;
		}
		idx = capture_param_index(ops, k->scalar);
		if (idx < 0) {
			diag_at(c->diag, c->file, k, "capture %s: unknown parameter '%s'", ops->kind,
				k->scalar);
			err = -EINVAL;
			continue;
		}
		if (!scalar(c, v, k->scalar)) {
			err = -EINVAL;
			continue;
		}
		if (capture_param_parse(&ops->params[idx], v->scalar, &rc->params.v[idx], why,
					sizeof(why))) {
			diag_at(c->diag, c->file, v, "capture %s.%s: %s", ops->kind, k->scalar, why);
			err = -EINVAL;
		}
	}
	if (rc->params.duration_ms > c->lim->max_capture_ms)
		rc->params.duration_ms = c->lim->max_capture_ms;
	return err;
}

static int parse_rule(struct parse_ctx *c, const struct ynode *n, struct rule *r)
{
	const struct ynode *v;
	unsigned before = c->diag->errors;
	bool has_above, has_below;

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
	for (size_t i = 0; i < n->n; i++)
		if (!key_allowed(rule_keys, n->keys[i]->scalar))
			diag_at(c->diag, c->file, n->keys[i], "unknown rule key '%s'",
				n->keys[i]->scalar);

	if (!(v = ynode_get(n, "name")))
		diag_at(c->diag, c->file, n, "rule without 'name'");
	else if (!get_string(c, v, "name", r->name, sizeof(r->name)) && !r->name[0])
		diag_at(c->diag, c->file, v, "name: must not be empty");
	if ((v = ynode_get(n, "description")))
		get_string(c, v, "description", r->description, sizeof(r->description));

	if (!(v = ynode_get(n, "metric"))) {
		diag_at(c->diag, c->file, n, "rule '%s' without 'metric'", r->name);
	} else if (scalar(c, v, "metric")) {
		r->metric = metric_index(v->scalar);
		if (r->metric < 0)
			diag_at(c->diag, c->file, v,
				"metric: unknown metric '%s' (see `autotrace metrics`)", v->scalar);
	}

	if ((v = ynode_get(n, "scope")) && scalar(c, v, "scope")) {
		if (strcmp(v->scalar, "host") == 0)
			r->scope = RULE_SCOPE_HOST;
		else if (strcmp(v->scalar, "cgroup") == 0)
			r->scope = RULE_SCOPE_CGROUP;
		else
			diag_at(c->diag, c->file, v, "scope: '%s' is not host or cgroup", v->scalar);
	}
	if (r->metric >= 0) {
		const struct metric_desc *md = metric_at((size_t)r->metric);
		unsigned need = r->scope == RULE_SCOPE_HOST ? MSCOPE_HOST : MSCOPE_CGROUP;

		if (!(md->scopes & need))
			diag_at(c->diag, c->file, ynode_get(n, "scope") ? ynode_get(n, "scope") : n,
				"metric %s has no %s scope", md->name,
				r->scope == RULE_SCOPE_HOST ? "host" : "cgroup");
	}

	has_above = ynode_get(n, "above") != NULL;
	has_below = ynode_get(n, "below") != NULL;
	if (has_above == has_below) {
		diag_at(c->diag, c->file, n, "rule '%s' needs exactly one of 'above' or 'below'",
			r->name);
	} else {
		r->cmp = has_above ? RULE_ABOVE : RULE_BELOW;
		get_number(c, ynode_get(n, has_above ? "above" : "below"),
			   has_above ? "above" : "below", &r->threshold);
	}
	if ((v = ynode_get(n, "clear_below"))) {
		if (r->cmp != RULE_ABOVE || !has_above)
			diag_at(c->diag, c->file, v, "clear_below only goes with 'above'");
		else if (!get_number(c, v, "clear_below", &r->clear)) {
			r->has_clear = true;
			if (r->clear > r->threshold)
				diag_at(c->diag, c->file, v,
					"clear_below (%g) must not exceed above (%g)", r->clear,
					r->threshold);
		}
	}
	if ((v = ynode_get(n, "clear_above"))) {
		if (!has_below)
			diag_at(c->diag, c->file, v, "clear_above only goes with 'below'");
		else if (!get_number(c, v, "clear_above", &r->clear)) {
			r->has_clear = true;
			if (r->clear < r->threshold)
				diag_at(c->diag, c->file, v,
					"clear_above (%g) must not be under below (%g)", r->clear,
					r->threshold);
		}
	}
	if ((v = ynode_get(n, "for")) && !get_duration(c, v, "for", &r->for_ms) &&
	    r->for_ms > 3600000)
		diag_at(c->diag, c->file, v, "for: longer than 1h");
	if ((v = ynode_get(n, "cooldown")) && !get_duration(c, v, "cooldown", &r->cooldown_ms) &&
	    r->cooldown_ms > 7 * 86400000ull)
		diag_at(c->diag, c->file, v, "cooldown: longer than 7d");
	if ((v = ynode_get(n, "max_per_hour")) && scalar(c, v, "max_per_hour")) {
		uint64_t m;

		if (parse_u64(v->scalar, &m) || m > 3600)
			diag_at(c->diag, c->file, v, "max_per_hour: '%s' is not an integer in [0, 3600]",
				v->scalar);
		else
			r->max_per_hour = (unsigned)m;
	}
	if ((v = ynode_get(n, "enabled")))
		get_bool(c, v, "enabled", &r->enabled);
	if ((v = ynode_get(n, "dry_run")))
		get_bool(c, v, "dry_run", &r->dry_run);
	if ((v = ynode_get(n, "labels"))) {
		if (v->type != YNODE_MAP) {
			diag_at(c->diag, c->file, v, "labels: expected a mapping of strings");
		} else if (v->n > RULE_MAX_LABELS) {
			diag_at(c->diag, c->file, v, "labels: more than %d labels", RULE_MAX_LABELS);
		} else {
			for (size_t i = 0; i < v->n; i++) {
				if (get_string(c, v->keys[i], "labels key", r->label_keys[i],
					       sizeof(r->label_keys[i])) ||
				    get_string(c, v->items[i], "labels value", r->label_values[i],
					       sizeof(r->label_values[i])))
					continue;
				r->nlabels++;
			}
		}
	}
	if ((v = ynode_get(n, "capture"))) {
		if (v->type != YNODE_SEQ) {
			diag_at(c->diag, c->file, v, "capture: expected a list");
		} else if (v->n > RULE_MAX_CAPTURES) {
			diag_at(c->diag, c->file, v, "capture: more than %d entries",
				RULE_MAX_CAPTURES);
		} else {
			for (size_t i = 0; i < v->n; i++) {
				if (parse_capture(c, v->items[i], &r->captures[r->ncaptures]) == 0)
					r->ncaptures++;
				for (unsigned j = 0; j + 1 < r->ncaptures; j++)
					if (r->captures[j].ops ==
					    r->captures[r->ncaptures - 1].ops)
						diag_at(c->diag, c->file, v->items[i],
							"capture: kind '%s' listed twice",
							r->captures[j].ops->kind);
			}
		}
	} else if (!r->dry_run) {
		diag_at(c->diag, c->file, n, "rule '%s' has no 'capture' list (use dry_run: true "
			"to only record that it fired)", r->name);
	}
	return c->diag->errors == before ? 0 : -EINVAL;
}

static int parse_doc(const struct ydoc *doc, const struct rules_limits *lim, struct ruleset *rs,
		     struct diag *diag)
{
	struct parse_ctx c = { .file = doc->file, .diag = diag, .lim = lim };
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
		rs->rules[rs->n++] = r;
next:;
	}
	return diag->errors == before ? 0 : -EINVAL;
}

static struct ruleset *ruleset_alloc(const char *source)
{
	struct ruleset *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return NULL;
	rs->rules = calloc(RULES_MAX, sizeof(*rs->rules));
	if (!rs->rules) {
		free(rs);
		return NULL;
	}
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

void rule_condition_text(const struct rule *r, char *buf, size_t len)
{
	const struct metric_desc *md = r->metric >= 0 ? metric_at((size_t)r->metric) : NULL;
	char dur[32];
	int off;

	off = snprintf(buf, len, "%s %s %g", md ? md->name : "?",
		       r->cmp == RULE_ABOVE ? "above" : "below", r->threshold);
	if (r->for_ms && off > 0 && (size_t)off < len) {
		format_duration(r->for_ms, dur, sizeof(dur));
		snprintf(buf + off, len - (size_t)off, " for %s", dur);
	}
}
