// SPDX-License-Identifier: GPL-2.0-only
#include "agent/exposition.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"

#define LABEL_SEP      '\x1f' /* between k=v pairs of a tsdb series key */
#define TRAILER_BYTES  64     /* "# EOF\n" always fits */
#define PRUNE_EVERY    64     /* rounds between sweeps of counters whose series went away */
#define PREFETCH_AHEAD 4      /* series asked for before they are rendered */

/* ---- output buffer: grows up to max, then refuses (full) ---- */

struct obuf {
	char *p;
	size_t len, cap, max;
	bool full;
};

static bool ob_reserve(struct obuf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->full || n > b->max - b->len) {
		b->full = true;
		return false;
	}
	if (b->len + n <= b->cap)
		return true;
	cap = b->cap ? b->cap : 64 * 1024;
	while (cap < b->len + n)
		cap *= 2;
	cap = MIN(cap, b->max);
	p = realloc(b->p, cap);
	if (!p) {
		b->full = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void ob_put(struct obuf *b, const char *s, size_t n)
{
	if (ob_reserve(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

static void ob_puts(struct obuf *b, const char *s)
{
	ob_put(b, s, strlen(s));
}

/* ---- numbers ---- */

static size_t put_u64(char *out, uint64_t v)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static const double pow10_tab[] = {1e0,	 1e1,  1e2,  1e3,  1e4,	 1e5,  1e6,  1e7,
				   1e8,	 1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
				   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#define SIG	10	       /* significant digits of a non-integral value */
#define SIG_MIN 1000000000ull  /* 10^(SIG-1) */
#define SIG_MAX 10000000000ull /* 10^SIG */

/* SIG significant digits of a as an integer d in [SIG_MIN, SIG_MAX), a ~ d x 10^(e-SIG+1). */
static bool digits(double a, int e, uint64_t *d)
{
	int k = SIG - 1 - e;
	double x;

	if (k >= 0 && k < (int)ARRAY_SIZE(pow10_tab))
		x = a * pow10_tab[k];
	else if (k < 0 && -k < (int)ARRAY_SIZE(pow10_tab))
		x = a / pow10_tab[-k];
	else
		return false;
	*d = (uint64_t)llround(x);
	return true;
}

/* Integers are written exactly; other values with 10 significant digits,
 * more than the history keeps (it stores floats, good for 7) and as many as
 * the agent's own counters need, several times cheaper than %g on the tens
 * of thousands of series a dense node has. */
size_t expo_format_value(double v, char *out)
{
	char dig[32];
	uint64_t d;
	size_t n = 0;
	double a;
	int e;

	if (isnan(v)) {
		memcpy(out, "NaN", 3);
		return 3;
	}
	if (isinf(v)) {
		memcpy(out, v > 0 ? "+Inf" : "-Inf", 4);
		return 4;
	}
	a = fabs(v);
	if (v < 0)
		out[n++] = '-';
	if (a < 9007199254740992.0 && a == floor(a))
		return n + put_u64(out + n, (uint64_t)a);
	if (a < 1e-6 || a >= 1e15) {
		int len = snprintf(dig, sizeof(dig), "%.10g", a);

		memcpy(out + n, dig, (size_t)len);
		return n + (size_t)len;
	}
	e = (int)floor(log10(a));
	if (!digits(a, e, &d))
		return n + put_u64(out + n, 0);
	if (d >= SIG_MAX) {
		e++;
		digits(a, e, &d);
	} else if (d < SIG_MIN) {
		e--;
		digits(a, e, &d);
	}
	if (d >= SIG_MAX) /* rounding carried into one more digit */
		d /= 10, e++;
	put_u64(dig, d); /* SIG digits */
	if (e >= 0) {
		/* e + 1 integer digits; a >= 1e15 went to %g, so e <= 14 */
		size_t intd = (size_t)e + 1, last = SIG;

		while (last > intd && dig[last - 1] == '0')
			last--;
		memcpy(out + n, dig, MIN(intd, (size_t)SIG));
		n += MIN(intd, (size_t)SIG);
		for (size_t z = SIG; z < intd; z++)
			out[n++] = '0';
		if (last > intd) {
			out[n++] = '.';
			memcpy(out + n, dig + intd, last - intd);
			n += last - intd;
		}
	} else {
		size_t last = SIG;

		while (last > 1 && dig[last - 1] == '0')
			last--;
		out[n++] = '0';
		out[n++] = '.';
		for (int z = 0; z < -e - 1; z++)
			out[n++] = '0';
		memcpy(out + n, dig, last);
		n += last;
	}
	return n;
}

/* ---- escaping ---- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f))
			return 0; /* overlong, or a surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

/*
 * A label value or HELP text as both formats want it: backslash, newline and
 * (in label values, and in OpenMetrics HELP) double quote escaped. Bytes that
 * are not UTF-8 become U+FFFD: Prometheus refuses a whole scrape over one bad
 * byte, and cgroup names are chosen by tenants. Writes at most 3 x n bytes.
 */
static size_t escape_slow(char *out, const unsigned char *p, size_t n, bool quote)
{
	size_t o = 0, i = 0;

	while (i < n) {
		unsigned char c = p[i];
		size_t l;

		if (c == '\\' || c == '\n' || (c == '"' && quote)) {
			out[o++] = '\\';
			out[o++] = c == '\n' ? 'n' : (char)c;
			i++;
			continue;
		}
		if (c < 0x80) {
			out[o++] = (char)c;
			i++;
			continue;
		}
		l = utf8_len(p + i, n - i);
		if (!l) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, p + i, l);
		o += l;
		i += l;
	}
	return o;
}

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Some byte of x is c (the classic zero-byte test on x ^ c). */
static inline uint64_t has_byte(uint64_t x, unsigned char c)
{
	uint64_t y = x ^ (ONES * c);

	return (y - ONES) & ~y & HIGHS;
}

static size_t escape(char *out, const char *s, size_t n, bool quote)
{
	size_t i = 0;

	/* label values are nearly always plain ASCII: check 8 bytes at a time
	 * and copy them as they are (a third of the exposition's time otherwise) */
	for (; i + 8 <= n; i += 8) {
		uint64_t x;

		memcpy(&x, s + i, 8);
		if ((x & HIGHS) || has_byte(x, '\\') || has_byte(x, '\n') ||
		    (quote && has_byte(x, '"')))
			break;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80 || c == '\\' || c == '\n' || (c == '"' && quote))
			break;
	}
	memcpy(out, s, i);
	if (i == n)
		return n;
	return i + escape_slow(out + i, (const unsigned char *)s + i, n - i, quote);
}

/* ---- families ---- */

struct label {
	const char *k, *v;
};

struct render {
	struct obuf b;
	enum expo_format f;
	unsigned series;
	unsigned skipped;
};

static void family_header(struct render *r, const char *name, enum prom_type type, const char *unit,
			  const char *help, const char *rule_name, const char *rule_unit)
{
	size_t nl = strlen(name), hl = strlen(help);
	const char *tname = type == PROM_COUNTER ? "counter" : type == PROM_INFO ? "info" : "gauge";
	char fam[160];
	size_t need;

	/* OpenMetrics names the family without the sample suffix */
	if (r->f == EXPO_OPENMETRICS && type == PROM_COUNTER && nl > 6 &&
	    !strcmp(name + nl - 6, "_total"))
		nl -= 6;
	else if (r->f == EXPO_OPENMETRICS && type == PROM_INFO && nl > 5 &&
		 !strcmp(name + nl - 5, "_info"))
		nl -= 5;
	if (r->f == EXPO_TEXT && type == PROM_INFO)
		tname = "gauge";
	snprintf(fam, sizeof(fam), "%.*s", (int)nl, name);
	need = 3 * nl + 3 * hl + 3 * 160 + 64;
	if (!ob_reserve(&r->b, need))
		return;
	{
		char *o = r->b.p + r->b.len;
		size_t len = 0;

		len += (size_t)sprintf(o + len, "# HELP %s ", fam);
		len += escape(o + len, help, hl, r->f == EXPO_OPENMETRICS);
		if (rule_name) {
			len += (size_t)sprintf(o + len, " (rules: %s", rule_name);
			if (rule_unit && rule_unit[0])
				len += (size_t)sprintf(o + len, ", in %s", rule_unit);
			o[len++] = ')';
		}
		o[len++] = '\n';
		len += (size_t)sprintf(o + len, "# TYPE %s %s\n", fam, tname);
		if (r->f == EXPO_OPENMETRICS && unit && unit[0])
			len += (size_t)sprintf(o + len, "# UNIT %s %s\n", fam, unit);
		r->b.len += len;
	}
}

/* name{labels} value, labels from a tsdb key plus extra pairs. */
static void sample(struct render *r, const char *name, size_t nl, const char *key,
		   const struct label *extra, unsigned nextra, double v)
{
	size_t kl = key ? strlen(key) : 0, need = nl + 3 * kl + 4 * kl + 48;
	char *o;
	size_t len = 0;
	bool any = false;

	for (unsigned i = 0; i < nextra; i++)
		need += strlen(extra[i].k) + 3 * strlen(extra[i].v) + 4;
	if (!ob_reserve(&r->b, need))
		return;
	o = r->b.p + r->b.len;
	memcpy(o, name, nl);
	len = nl;
	for (const char *p = key; p && *p;) {
		const char *eq = strchr(p, '='), *end;

		if (!eq)
			break;
		end = strchr(eq + 1, LABEL_SEP);
		if (!end)
			end = eq + 1 + strlen(eq + 1);
		o[len++] = any ? ',' : '{';
		any = true;
		memcpy(o + len, p, (size_t)(eq - p));
		len += (size_t)(eq - p);
		o[len++] = '=';
		o[len++] = '"';
		len += escape(o + len, eq + 1, (size_t)(end - eq - 1), true);
		o[len++] = '"';
		p = *end ? end + 1 : end;
	}
	for (unsigned i = 0; i < nextra; i++) {
		o[len++] = any ? ',' : '{';
		any = true;
		len += (size_t)sprintf(o + len, "%s=\"", extra[i].k);
		len += escape(o + len, extra[i].v, strlen(extra[i].v), true);
		o[len++] = '"';
	}
	if (any)
		o[len++] = '}';
	o[len++] = ' ';
	len += expo_format_value(v, o + len);
	o[len++] = '\n';
	r->b.len += len;
	r->series++;
}

/* ---- the agent's health, from the status document ---- */

struct health_walk {
	struct render *r;
	const struct agent_metric *m;
	struct label labels[3];
	unsigned nlabels;
	bool header_done;
	bool *family_started; /* a previous entry of the same family wrote its header */
};

static void health_header(struct health_walk *w)
{
	if (w->header_done || *w->family_started)
		return;
	family_header(w->r, w->m->name, w->m->type, w->m->unit, w->m->help, NULL, NULL);
	w->header_done = true;
	*w->family_started = true;
}

static void health_sample(struct health_walk *w, const char *k, const char *v, double value)
{
	struct label l[4];
	unsigned n = w->nlabels;

	memcpy(l, w->labels, sizeof(w->labels[0]) * n);
	if (k)
		l[n++] = (struct label){k, v};
	health_header(w);
	sample(w->r, w->m->name, strlen(w->m->name), NULL, l, n, value);
}

static void health_leaf(struct health_walk *w, json_t *parent, const char *field)
{
	const struct agent_metric *m = w->m;
	json_t *v = json_object_get(parent, field);
	double scale = m->scale != 0 ? m->scale : 1;

	switch (m->value) {
	case AV_NUMBER:
		if (json_is_number(v))
			health_sample(w, NULL, NULL, json_number_value(v) * scale);
		else if (json_is_boolean(v))
			health_sample(w, NULL, NULL, json_is_true(v));
		break;
	case AV_PRESENT:
		health_sample(w, NULL, NULL, v && !json_is_null(v));
		break;
	case AV_COUNT:
		if (json_is_array(v))
			health_sample(w, NULL, NULL, (double)json_array_size(v));
		break;
	case AV_STATE:
		if (!json_is_string(v))
			break;
		for (const char *const *s = m->states; s && *s; s++)
			health_sample(w, "state", *s, !strcmp(*s, json_string_value(v)));
		break;
	case AV_INFO:
		if (json_is_string(v))
			health_sample(w, m->info_label, json_string_value(v), 1);
		break;
	}
}

/* Walks path (dotted, with name[] / name[k=v] / name{} segments) below node. */
static void health_walk(struct health_walk *w, json_t *node, const char *path)
{
	const char *dot = strchr(path, '.'), *br;
	size_t seglen = dot ? (size_t)(dot - path) : strlen(path);
	char seg[96], sel[96] = "";
	json_t *child, *el;
	const char *key;
	size_t i;

	if (!json_is_object(node) || seglen >= sizeof(seg))
		return;
	memcpy(seg, path, seglen);
	seg[seglen] = '\0';
	br = strpbrk(seg, "[{");
	if (!br) {
		if (!dot) {
			health_leaf(w, node, seg);
			return;
		}
		health_walk(w, json_object_get(node, seg), dot + 1);
		return;
	}
	snprintf(sel, sizeof(sel), "%s", br);
	seg[br - seg] = '\0';
	child = json_object_get(node, seg);
	if (!strcmp(sel, "{}")) {
		/* the members themselves are the leaves */
		if (dot || w->nlabels >= ARRAY_SIZE(w->labels))
			return;
		json_object_foreach(child, key, el)
		{
			w->labels[w->nlabels++] = (struct label){w->m->label, key};
			health_leaf(w, child, key);
			w->nlabels--;
		}
		return;
	}
	if (!dot)
		return; /* an array walk always ends in a field of its elements */
	if (!json_is_array(child))
		return;
	if (!strcmp(sel, "[]")) {
		if (w->nlabels >= ARRAY_SIZE(w->labels))
			return;
		json_array_foreach(child, i, el)
		{
			const char *lv = json_string_value(json_object_get(el, w->m->label_from));

			if (!lv)
				continue;
			w->labels[w->nlabels++] = (struct label){w->m->label, lv};
			health_walk(w, el, dot + 1);
			w->nlabels--;
		}
		return;
	}
	/* [key=value] */
	{
		char *eq = strchr(sel, '='), *close = strchr(sel, ']');

		if (!eq || !close)
			return;
		*eq = *close = '\0';
		json_array_foreach(child, i, el)
		{
			const char *v = json_string_value(json_object_get(el, sel + 1));

			if (v && !strcmp(v, eq + 1))
				health_walk(w, el, dot + 1);
		}
	}
}

static void render_health(struct render *r, json_t *status)
{
	bool started = false;
	const char *prev = "";

	for (size_t i = 0; i < agent_metric_count(); i++) {
		const struct agent_metric *m = agent_metric_at(i);
		struct health_walk w = {.r = r, .m = m, .family_started = &started};
		char k[64], v[64];

		if (strcmp(prev, m->name))
			started = false;
		prev = m->name;
		if (m->fixed_label) {
			const char *eq = strchr(m->fixed_label, '=');

			if (eq && (size_t)(eq - m->fixed_label) < sizeof(k)) {
				snprintf(k, sizeof(k), "%.*s", (int)(eq - m->fixed_label),
					 m->fixed_label);
				snprintf(v, sizeof(v), "%s", eq + 1);
				w.labels[w.nlabels++] = (struct label){k, v};
			}
		}
		health_walk(&w, status, m->status);
	}
}

/* ---- per-interval counts summed into counters ---- */

struct counter_entry {
	char *key; /* NULL: free slot */
	unsigned metric;
	double total;
};

struct expo_counters {
	struct counter_entry *slots;
	unsigned cap, n, max;
	uint64_t rounds;
};

static uint32_t entry_hash(unsigned metric, const char *key)
{
	uint32_t h = 2166136261u ^ metric;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

int expo_counters_new(struct expo_counters **out, unsigned max_entries)
{
	struct expo_counters *c = calloc(1, sizeof(*c));
	unsigned cap = 64;

	if (!c)
		return -ENOMEM;
	while (cap < 2 * max_entries && cap < (1u << 24))
		cap *= 2;
	c->slots = calloc(cap, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return -ENOMEM;
	}
	c->cap = cap;
	c->max = MIN(max_entries, cap / 2);
	*out = c;
	return 0;
}

void expo_counters_free(struct expo_counters **pc)
{
	struct expo_counters *c = pc ? *pc : NULL;

	if (!c)
		return;
	for (unsigned i = 0; i < c->cap; i++)
		free(c->slots[i].key);
	free(c->slots);
	free(c);
	*pc = NULL;
}

unsigned expo_counters_count(const struct expo_counters *c)
{
	return c ? c->n : 0;
}

static struct counter_entry *counter_find(const struct expo_counters *c, unsigned metric,
					  const char *key, bool create)
{
	uint32_t i;

	if (!create && !c->n)
		return NULL; /* most nodes never see an OOM kill: no hashing for them */
	i = entry_hash(metric, key) & (c->cap - 1);
	for (;; i = (i + 1) & (c->cap - 1)) {
		struct counter_entry *e = &c->slots[i];

		if (!e->key) {
			if (!create || c->n >= c->max)
				return NULL;
			e->key = strdup(key);
			if (!e->key)
				return NULL;
			e->metric = metric;
			e->total = 0;
			((struct expo_counters *)c)->n++;
			return e;
		}
		if (e->metric == metric && !strcmp(e->key, key))
			return e;
	}
}

/* Counters of series the history forgot (cgroups gone for a whole window) go too. */
static void counters_prune(struct expo_counters *c, const struct tsdb *db)
{
	struct counter_entry *old = c->slots;
	unsigned cap = c->cap;

	c->slots = calloc(cap, sizeof(*c->slots));
	if (!c->slots) {
		c->slots = old;
		return;
	}
	c->n = 0;
	for (unsigned i = 0; i < cap; i++) {
		struct counter_entry *e = &old[i], *ne;

		if (!e->key)
			continue;
		if (!tsdb_find_key(db, e->metric, e->key)) {
			free(e->key);
			continue;
		}
		ne = &c->slots[entry_hash(e->metric, e->key) & (cap - 1)];
		while (ne->key)
			ne = ne + 1 < c->slots + cap ? ne + 1 : c->slots;
		*ne = *e;
		c->n++;
	}
	free(old);
}

void expo_counters_round(struct expo_counters *c, const struct tsdb *db)
{
	if (!c || !db)
		return;
	for (size_t m = 0; m < metric_count(); m++) {
		if (metric_prom_at(m)->type != PROM_COUNTER)
			continue;
		for (struct tsdb_series *s = tsdb_first(db, (unsigned)m); s; s = tsdb_next(s)) {
			struct counter_entry *e;
			double v;

			/* a held round repeats the count of an earlier one */
			if (!tsdb_value(db, s, 0, &v) || !(v > 0) || tsdb_held(db, s, 0))
				continue;
			e = counter_find(c, (unsigned)m, tsdb_series_key(s), true);
			if (e)
				e->total += v;
		}
	}
	if (++c->rounds % PRUNE_EVERY == 0)
		counters_prune(c, db);
}

/* ---- the watch layer ---- */

static void render_metric(struct render *r, const struct tsdb *db, size_t m,
			  const struct expo_counters *c)
{
	const struct metric_desc *d = metric_at(m);
	const struct metric_prom *p = metric_prom_at(m);
	size_t nl = strlen(p->name);
	bool header = false;

	struct tsdb_series *ahead = tsdb_first(db, (unsigned)m);

	/* memory, not arithmetic, is what a dense node's exposition costs: the
	 * series of a metric are far apart, so ask for a few ahead of time */
	for (int i = 0; i < PREFETCH_AHEAD && ahead; i++, ahead = tsdb_next(ahead))
		tsdb_prefetch(db, ahead);
	for (struct tsdb_series *s = tsdb_first(db, (unsigned)m); s; s = tsdb_next(s)) {
		const char *key = tsdb_series_key(s);
		double v;

		if (ahead) {
			tsdb_prefetch(db, ahead);
			ahead = tsdb_next(ahead);
		}
		if (p->type == PROM_COUNTER) {
			const struct counter_entry *e =
				c ? counter_find(c, (unsigned)m, key, false) : NULL;

			/* a series with no value yet has counted nothing */
			if (!e && !tsdb_value(db, s, 0, &v))
				continue;
			v = e ? e->total : 0;
		} else if (tsdb_value(db, s, 0, &v)) {
			v *= p->scale;
		} else {
			continue;
		}
		if (!header) {
			family_header(r, p->name, p->type, p->unit, d->help, d->name, d->unit);
			header = true;
		}
		sample(r, p->name, nl, key, NULL, 0, v);
	}
}

static unsigned metric_series(const struct tsdb *db, size_t m)
{
	unsigned n = 0;

	for (struct tsdb_series *s = tsdb_first(db, (unsigned)m); s; s = tsdb_next(s))
		n++;
	return n;
}

int expo_render(const struct tsdb *db, json_t *status, const struct expo_counters *counters,
		enum expo_format f, size_t max_bytes, size_t size_hint, struct expo_result *out)
{
	struct render r = {.f = f};

	memset(out, 0, sizeof(*out));
	if (max_bytes < 2 * TRAILER_BYTES)
		return -EINVAL;
	r.b.max = max_bytes - TRAILER_BYTES;
	/* growing by doubling would copy the body several times over */
	if (size_hint)
		ob_reserve(&r.b, MIN(size_hint + size_hint / 8, r.b.max));
	if (status) {
		render_health(&r, status);
		if (r.b.full) {
			/* even the agent's own metrics do not fit: say nothing rather than half */
			r.b.len = 0;
			r.b.full = false;
			r.series = 0;
		}
	}
	for (size_t m = 0; db && m < metric_count(); m++) {
		size_t mark = r.b.len;
		unsigned before = r.series;

		render_metric(&r, db, m, counters);
		if (r.b.full) {
			/* a family is whole or absent: roll back and count it */
			r.b.len = mark;
			r.b.full = false;
			r.series = before;
			r.skipped += metric_series(db, m);
		}
	}
	r.b.max = max_bytes;
	if (f == EXPO_OPENMETRICS)
		ob_puts(&r.b, "# EOF\n");
	if (r.b.full || !r.b.p) {
		/* only an allocation failure gets here: the trailer always fits */
		if (!ob_reserve(&r.b, 1)) {
			free(r.b.p);
			return -ENOMEM;
		}
	}
	out->body = r.b.p;
	out->len = r.b.len;
	out->series = r.series;
	out->skipped = r.skipped;
	return 0;
}

/* ---- content negotiation ---- */

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

static bool token_is(const char *s, const char *e, const char *want)
{
	size_t n = strlen(want);

	return (size_t)(e - s) == n && !strncasecmp(s, want, n);
}

/* One media range: its type and the q and version parameters. */
static void media_range(const char *s, const char *e, double *q_om, double *q_text)
{
	const char *semi = memchr(s, ';', (size_t)(e - s)), *te = semi ? semi : e, *ts = s;
	char version[32] = "";
	double q = 1;

	trim(&ts, &te);
	for (const char *p = semi; p && p < e;) {
		const char *next = memchr(p + 1, ';', (size_t)(e - p - 1)), *pe = next ? next : e;
		const char *ps = p + 1, *eq;

		trim(&ps, &pe);
		eq = memchr(ps, '=', (size_t)(pe - ps));
		if (eq) {
			const char *ks = ps, *ke = eq, *vs = eq + 1, *ve = pe;

			trim(&ks, &ke);
			trim(&vs, &ve);
			if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"')
				vs++, ve--;
			if (token_is(ks, ke, "q")) {
				char num[16];

				snprintf(num, sizeof(num), "%.*s", (int)MIN(ve - vs, 15), vs);
				if (parse_double(num, &q) || q < 0 || q > 1)
					q = 0;
			} else if (token_is(ks, ke, "version")) {
				snprintf(version, sizeof(version), "%.*s", (int)MIN(ve - vs, 31),
					 vs);
			}
		}
		p = next;
	}
	if (token_is(ts, te, "application/openmetrics-text")) {
		/* only 1.0.0 is written; an unversioned range takes the latest */
		if (!version[0] || !strcmp(version, "1.0.0"))
			*q_om = MAX(*q_om, q);
	} else if (token_is(ts, te, "text/plain")) {
		if (!version[0] || !strcmp(version, "0.0.4"))
			*q_text = MAX(*q_text, q);
	} else if (token_is(ts, te, "*/*") || token_is(ts, te, "text/*")) {
		*q_text = MAX(*q_text, q);
	} else if (token_is(ts, te, "application/*")) {
		*q_om = MAX(*q_om, q);
	}
}

enum expo_format expo_negotiate(const char *accept)
{
	double q_om = 0, q_text = 0;
	const char *p = accept;

	if (!accept || !accept[0])
		return EXPO_TEXT;
	while (p && *p) {
		const char *comma = strchr(p, ','), *e = comma ? comma : p + strlen(p);

		media_range(p, e, &q_om, &q_text);
		p = comma ? comma + 1 : NULL;
	}
	return q_om > 0 && q_om >= q_text ? EXPO_OPENMETRICS : EXPO_TEXT;
}

const char *expo_content_type(enum expo_format f)
{
	return f == EXPO_OPENMETRICS ? EXPO_CONTENT_TYPE_OPENMETRICS : EXPO_CONTENT_TYPE_TEXT;
}
