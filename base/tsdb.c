// SPDX-License-Identifier: GPL-2.0-only
#include "base/tsdb.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_SEP '\x1f'

struct tsdb_series {
	unsigned metric;
	char *key;
	uint64_t last_round; /* round of the latest put */
	uint64_t first_round;
	unsigned source; /* tsdb_set_source() tag of the latest put */
	float *values;	 /* ring of tsdb.points; NaN = no value */
	struct tsdb_series *next_in_metric, *prev_in_metric;
	struct tsdb_series *next_in_bucket;
	const struct tsdb *db;
};

struct tsdb {
	unsigned max_series;
	unsigned points;
	unsigned nseries;
	uint64_t round; /* current round number, starting at 1 */
	uint64_t dropped;
	unsigned source;
	uint64_t *times; /* ring of round wall-clock stamps */
	unsigned nbuckets;
	struct tsdb_series **buckets;
	unsigned nmetrics;
	struct tsdb_series **by_metric; /* head per metric */
	struct tsdb_series **tail_by_metric;
};

int labels_key(const struct labels *labels, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; labels && i < labels->n; i++) {
		size_t kl = strlen(labels->k[i]), vl = strlen(labels->v[i]);

		if (off + kl + vl + 3 > len)
			return -E2BIG;
		if (i)
			buf[off++] = LABEL_SEP;
		memcpy(buf + off, labels->k[i], kl);
		off += kl;
		buf[off++] = '=';
		memcpy(buf + off, labels->v[i], vl);
		off += vl;
		buf[off] = '\0';
	}
	return 0;
}

void labels_foreach(const char *key, void (*fn)(const char *k, const char *v, void *ctx), void *ctx)
{
	char buf[LABELS_KEY_MAX];
	char *p = buf;

	if (!key || !*key || strlen(key) >= sizeof(buf))
		return;
	strcpy(buf, key);
	while (p) {
		char *sep = strchr(p, LABEL_SEP);
		char *eq;

		if (sep)
			*sep = '\0';
		eq = strchr(p, '=');
		if (eq) {
			*eq = '\0';
			fn(p, eq + 1, ctx);
		}
		p = sep ? sep + 1 : NULL;
	}
}

static uint32_t hash_key(unsigned metric, const char *key)
{
	uint32_t h = 2166136261u ^ metric;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

int tsdb_new(struct tsdb **out, unsigned nmetrics, unsigned max_series, unsigned points)
{
	struct tsdb *db;

	if (!nmetrics || !max_series || !points)
		return -EINVAL;
	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->max_series = max_series;
	db->points = points;
	db->nbuckets = 1;
	while (db->nbuckets < max_series)
		db->nbuckets <<= 1;
	db->nmetrics = nmetrics;
	db->times = calloc(points, sizeof(*db->times));
	db->buckets = calloc(db->nbuckets, sizeof(*db->buckets));
	db->by_metric = calloc(db->nmetrics, sizeof(*db->by_metric));
	db->tail_by_metric = calloc(db->nmetrics, sizeof(*db->tail_by_metric));
	if (!db->times || !db->buckets || !db->by_metric || !db->tail_by_metric) {
		tsdb_free(&db);
		return -ENOMEM;
	}
	*out = db;
	return 0;
}

static void series_unlink(struct tsdb *db, struct tsdb_series *s)
{
	uint32_t b = hash_key(s->metric, s->key) & (db->nbuckets - 1);
	struct tsdb_series **pp = &db->buckets[b];

	while (*pp && *pp != s)
		pp = &(*pp)->next_in_bucket;
	if (*pp)
		*pp = s->next_in_bucket;
	if (s->prev_in_metric)
		s->prev_in_metric->next_in_metric = s->next_in_metric;
	else
		db->by_metric[s->metric] = s->next_in_metric;
	if (s->next_in_metric)
		s->next_in_metric->prev_in_metric = s->prev_in_metric;
	else
		db->tail_by_metric[s->metric] = s->prev_in_metric;
	db->nseries--;
	free(s->values);
	free(s->key);
	free(s);
}

void tsdb_free(struct tsdb **pdb)
{
	struct tsdb *db = pdb ? *pdb : NULL;

	if (!db)
		return;
	for (unsigned m = 0; db->by_metric && m < db->nmetrics; m++)
		while (db->by_metric[m])
			series_unlink(db, db->by_metric[m]);
	free(db->times);
	free(db->buckets);
	free(db->by_metric);
	free(db->tail_by_metric);
	free(db);
	*pdb = NULL;
}

void tsdb_begin_round(struct tsdb *db, uint64_t real_ms)
{
	db->round++;
	db->times[db->round % db->points] = real_ms;
}

struct tsdb_series *tsdb_find_key(const struct tsdb *db, unsigned metric, const char *key)
{
	uint32_t b;

	if (metric >= db->nmetrics)
		return NULL;
	b = hash_key(metric, key) & (db->nbuckets - 1);
	for (struct tsdb_series *s = db->buckets[b]; s; s = s->next_in_bucket)
		if (s->metric == metric && strcmp(s->key, key) == 0)
			return s;
	return NULL;
}

struct tsdb_series *tsdb_find(const struct tsdb *db, unsigned metric, const struct labels *labels)
{
	char key[LABELS_KEY_MAX];

	if (labels_key(labels, key, sizeof(key)))
		return NULL;
	return tsdb_find_key(db, metric, key);
}

int tsdb_put(struct tsdb *db, unsigned metric, const struct labels *labels, double value)
{
	char key[LABELS_KEY_MAX];
	struct tsdb_series *s;

	if (metric >= db->nmetrics || db->round == 0)
		return -EINVAL;
	if (labels_key(labels, key, sizeof(key))) {
		db->dropped++;
		return -E2BIG;
	}
	s = tsdb_find_key(db, metric, key);
	if (!s) {
		uint32_t b;

		if (db->nseries >= db->max_series) {
			db->dropped++;
			return -ENOSPC;
		}
		s = calloc(1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		s->values = malloc(db->points * sizeof(*s->values));
		s->key = strdup(key);
		if (!s->values || !s->key) {
			free(s->values);
			free(s->key);
			free(s);
			return -ENOMEM;
		}
		for (unsigned i = 0; i < db->points; i++)
			s->values[i] = NAN;
		s->metric = metric;
		s->db = db;
		s->first_round = db->round;
		b = hash_key(metric, key) & (db->nbuckets - 1);
		s->next_in_bucket = db->buckets[b];
		db->buckets[b] = s;
		/* append to the metric's list so iteration follows creation order */
		s->prev_in_metric = db->tail_by_metric[metric];
		if (s->prev_in_metric)
			s->prev_in_metric->next_in_metric = s;
		else
			db->by_metric[metric] = s;
		db->tail_by_metric[metric] = s;
		db->nseries++;
	}
	s->values[db->round % db->points] = (float)value;
	s->last_round = db->round;
	s->source = db->source;
	return 0;
}

void tsdb_end_round(struct tsdb *db)
{
	for (unsigned m = 0; m < db->nmetrics; m++) {
		struct tsdb_series *s = db->by_metric[m];

		while (s) {
			struct tsdb_series *next = s->next_in_metric;

			if (s->last_round != db->round)
				s->values[db->round % db->points] = NAN;
			if (db->round - s->last_round >= db->points)
				series_unlink(db, s);
			s = next;
		}
	}
}

uint64_t tsdb_rounds(const struct tsdb *db)
{
	return db->round;
}

unsigned tsdb_points(const struct tsdb *db)
{
	return db->points;
}

unsigned tsdb_series_count(const struct tsdb *db)
{
	return db->nseries;
}

uint64_t tsdb_dropped(const struct tsdb *db)
{
	return db->dropped;
}

uint64_t tsdb_round_time(const struct tsdb *db, unsigned ago)
{
	if (ago >= db->points || ago >= db->round)
		return 0;
	return db->times[(db->round - ago) % db->points];
}

struct tsdb_series *tsdb_first(const struct tsdb *db, unsigned metric)
{
	return metric < db->nmetrics ? db->by_metric[metric] : NULL;
}

struct tsdb_series *tsdb_next(const struct tsdb_series *s)
{
	return s->next_in_metric;
}

void tsdb_prefetch(const struct tsdb *db, const struct tsdb_series *s)
{
	if (!s)
		return;
	__builtin_prefetch(s->key);
	__builtin_prefetch(&s->values[db->round % db->points]);
	if (s->next_in_metric)
		__builtin_prefetch(s->next_in_metric);
}

void tsdb_set_source(struct tsdb *db, unsigned source)
{
	db->source = source;
}

unsigned tsdb_series_source(const struct tsdb_series *s)
{
	return s->source;
}

unsigned tsdb_series_metric(const struct tsdb_series *s)
{
	return s->metric;
}

const char *tsdb_series_key(const struct tsdb_series *s)
{
	return s->key;
}

bool tsdb_value(const struct tsdb *db, const struct tsdb_series *s, unsigned ago, double *out)
{
	float v;

	if (ago >= db->points || ago >= db->round || db->round - ago < s->first_round)
		return false;
	v = s->values[(db->round - ago) % db->points];
	if (isnan(v))
		return false;
	*out = v;
	return true;
}

struct label_find {
	const char *name;
	char *buf;
	size_t len;
	int found;
};

static void label_find_cb(const char *k, const char *v, void *ctx)
{
	struct label_find *f = ctx;

	if (f->found < 0 && strcmp(k, f->name) == 0) {
		snprintf(f->buf, f->len, "%s", v);
		f->found = (int)strlen(f->buf);
	}
}

int tsdb_series_label(const struct tsdb_series *s, const char *name, char *buf, size_t len)
{
	struct label_find f = {.name = name, .buf = buf, .len = len, .found = -ENOENT};

	labels_foreach(s->key, label_find_cb, &f);
	return f.found;
}
