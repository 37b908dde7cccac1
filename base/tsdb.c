// SPDX-License-Identifier: GPL-2.0-only
#include "base/tsdb.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define LABEL_SEP '\x1f'
/*
 * Memory is what bounds how many series a node can afford (a dense node has
 * tens of thousands: 20-odd per watched cgroup), so values are kept in chunks
 * of CHUNK rounds, and a chunk whose values are all the same (a limit, a
 * count that stays 0, a series absent) is one tagged word, not an array.
 * Series of one label set share one interned key.
 */
#define CHUNK	 32u
#define UNIFORM	 1u /* tag bit of a chunk word holding one value for the chunk */
#define NO_CHUNK UINT64_MAX

/* An interned label key, shared by every series with these labels. */
struct tsdb_key {
	char *str;
	size_t len;
	uint64_t hash;
	unsigned refs; /* series using it */
	struct tsdb_key *next;
	/* its series by metric, for metrics base..base+nwin-1: the metrics of one
	 * label set sit close together in the catalogue (per cgroup, per CPU) */
	unsigned base, nwin;
	struct tsdb_series **win;
	struct tsdb_memo memo;
	uint64_t serial; /* never reused: what a tsdb_ref checks */
	unsigned slot;	 /* in tsdb.slots */
};

struct tsdb_series {
	unsigned metric;
	unsigned source; /* tsdb_set_source() tag of the latest put */
	struct tsdb_key *key;
	uint64_t last_round; /* round of the latest put */
	uint64_t first_round;
	uint64_t cur_chunk; /* the newest chunk written (round / CHUNK) */
	struct tsdb_series *next_in_metric, *prev_in_metric;
	/* nchunks words, the chunk of round r at (r / CHUNK) % nchunks: 0 (no
	 * value yet), a float with UNIFORM (every value written so far in the
	 * chunk), or a float[CHUNK] */
	uintptr_t chunk[];
};

struct tsdb {
	unsigned max_series;
	unsigned points;
	unsigned nchunks;
	unsigned nseries;
	uint64_t round; /* current round number, starting at 1 */
	uint64_t dropped;
	unsigned source;
	uint64_t *times; /* ring of round wall-clock stamps */
	uint32_t *held;	 /* ring: bit src set when source src held its values that round */
	unsigned nbuckets;
	struct tsdb_key **keys; /* by key string */
	unsigned nkeys;
	struct tsdb_key *last_key; /* the latest put's: watchers put many metrics per label set */
	uint64_t id;		   /* which tsdb a tsdb_ref belongs to */
	uint64_t next_serial;
	struct tsdb_key **slots; /* keys by slot, for tsdb_ref */
	unsigned nslots, slots_cap, *free_slots, nfree;
	unsigned nmetrics;
	struct tsdb_series **by_metric; /* head per metric */
	struct tsdb_series **tail_by_metric;
	uint64_t chunk_arrays; /* chunks held as arrays (for tests and status) */
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

/* Eight bytes at a time: keys are 20 to 500 bytes, hashed on every put. */
static uint64_t hash_bytes(const char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;

	while (n >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t w = 0;

		memcpy(&w, p, n);
		h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
		h ^= h >> 29;
	}
	return h;
}

static struct tsdb_key *key_find(const struct tsdb *db, const char *str, size_t len, uint64_t hash)
{
	for (struct tsdb_key *k = db->keys[hash & (db->nbuckets - 1)]; k; k = k->next)
		if (k->hash == hash && k->len == len && memcmp(k->str, str, len) == 0)
			return k;
	return NULL;
}

/* A slot (and a serial) by which a tsdb_ref finds the key again. */
static int slot_alloc(struct tsdb *db, struct tsdb_key *k)
{
	if (!db->nfree && db->nslots == db->slots_cap) {
		unsigned cap = db->slots_cap ? db->slots_cap * 2 : 64;
		struct tsdb_key **sl = realloc(db->slots, cap * sizeof(*sl));
		unsigned *fr;

		if (!sl)
			return -ENOMEM;
		db->slots = sl;
		fr = realloc(db->free_slots, cap * sizeof(*fr));
		if (!fr)
			return -ENOMEM;
		db->free_slots = fr;
		db->slots_cap = cap;
	}
	k->slot = db->nfree ? db->free_slots[--db->nfree] : db->nslots++;
	k->serial = ++db->next_serial;
	db->slots[k->slot] = k;
	return 0;
}

/* The interned key for str (created with no user), or NULL. */
static struct tsdb_key *key_get(struct tsdb *db, const char *str, size_t len, bool create)
{
	struct tsdb_key *k = db->last_key;
	uint64_t hash;

	if (k && k->len == len && memcmp(k->str, str, len) == 0)
		return k;
	hash = hash_bytes(str, len);
	k = key_find(db, str, len, hash);
	if (!k && create) {
		k = calloc(1, sizeof(*k));
		if (!k || !(k->str = malloc(len + 1))) {
			free(k);
			return NULL;
		}
		memcpy(k->str, str, len + 1);
		k->len = len;
		k->hash = hash;
		if (slot_alloc(db, k)) {
			free(k->str);
			free(k);
			return NULL;
		}
		k->next = db->keys[hash & (db->nbuckets - 1)];
		db->keys[hash & (db->nbuckets - 1)] = k;
		db->nkeys++;
	}
	if (k)
		db->last_key = k;
	return k;
}

static void key_unref(struct tsdb *db, struct tsdb_key *k)
{
	struct tsdb_key **pp;

	if (--k->refs)
		return;
	for (pp = &db->keys[k->hash & (db->nbuckets - 1)]; *pp && *pp != k; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = k->next;
	if (db->last_key == k)
		db->last_key = NULL;
	db->slots[k->slot] = NULL;
	db->free_slots[db->nfree++] = k->slot;
	db->nkeys--;
	free(k->win);
	free(k->str);
	free(k);
}

/* Makes room in k's window for metric. */
static int key_window(struct tsdb_key *k, unsigned metric)
{
	unsigned lo, hi;
	struct tsdb_series **w;

	if (k->nwin && metric >= k->base && metric < k->base + k->nwin)
		return 0;
	lo = k->nwin ? MIN(k->base, metric) : metric;
	hi = k->nwin ? MAX(k->base + k->nwin, metric + 1) : metric + 1;
	w = calloc(hi - lo, sizeof(*w));
	if (!w)
		return -ENOMEM;
	if (k->nwin)
		memcpy(w + (k->base - lo), k->win, k->nwin * sizeof(*w));
	free(k->win);
	k->win = w;
	k->base = lo;
	k->nwin = hi - lo;
	return 0;
}

static bool is_array(uintptr_t w)
{
	return w && !(w & UNIFORM);
}

static float word_value(uintptr_t w)
{
	uint32_t bits = (uint32_t)(w >> 32);
	float v;

	memcpy(&v, &bits, sizeof(v));
	return v;
}

static uintptr_t uniform_word(float v)
{
	uint32_t bits;

	memcpy(&bits, &v, sizeof(bits));
	return ((uintptr_t)bits << 32) | UNIFORM;
}

static void chunk_free(struct tsdb *db, uintptr_t *w)
{
	if (is_array(*w)) {
		free((float *)*w);
		db->chunk_arrays--;
	}
	*w = 0;
}

/* A finished chunk whose values all came out the same becomes one word. */
static void chunk_settle(struct tsdb *db, uintptr_t *w)
{
	const float *a = (const float *)*w;
	uint32_t first, bits;

	if (!is_array(*w))
		return;
	memcpy(&first, &a[0], sizeof(first));
	for (unsigned i = 1; i < CHUNK; i++) {
		memcpy(&bits, &a[i], sizeof(bits));
		if (bits != first)
			return;
	}
	{
		float v = a[0];

		chunk_free(db, w);
		*w = uniform_word(v);
	}
}

/* Stores the value of round r (NaN: none). -ENOMEM leaves a gap. */
static int series_set(struct tsdb *db, struct tsdb_series *s, uint64_t r, float v)
{
	uint64_t c = r / CHUNK;
	unsigned off = (unsigned)(r % CHUNK);
	uintptr_t *w;
	float *a;

	if (s->cur_chunk == NO_CHUNK || c > s->cur_chunk) {
		/* the slots of the chunks starting now held chunks out of history */
		uint64_t from = s->cur_chunk == NO_CHUNK || c - s->cur_chunk >= db->nchunks
					? c - MIN(c, (uint64_t)db->nchunks - 1)
					: s->cur_chunk + 1;

		if (s->cur_chunk != NO_CHUNK)
			chunk_settle(db, &s->chunk[s->cur_chunk % db->nchunks]);
		for (uint64_t x = from; x <= c; x++)
			chunk_free(db, &s->chunk[x % db->nchunks]);
		s->cur_chunk = c;
	}
	w = &s->chunk[c % db->nchunks];
	if (!is_array(*w)) {
		uint32_t nb, ub;

		if (*w == 0 && isnan(v))
			return 0; /* a gap in a chunk of gaps */
		if (*w == 0 && off == 0) {
			*w = uniform_word(v);
			return 0;
		}
		if (*w) {
			float u = word_value(*w);

			memcpy(&nb, &v, sizeof(nb));
			memcpy(&ub, &u, sizeof(ub));
			if (nb == ub)
				return 0;
		}
		a = malloc(CHUNK * sizeof(*a));
		if (!a)
			return -ENOMEM;
		for (unsigned i = 0; i < CHUNK; i++)
			a[i] = *w ? word_value(*w) : NAN;
		*w = (uintptr_t)a;
		db->chunk_arrays++;
	}
	((float *)*w)[off] = v;
	return 0;
}

int tsdb_new(struct tsdb **out, unsigned nmetrics, unsigned max_series, unsigned points)
{
	struct tsdb *db;

	if (!nmetrics || !max_series || !points)
		return -EINVAL;
	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	static uint64_t ids;

	db->max_series = max_series;
	db->points = points;
	db->id = ++ids;
	/* the chunks of the last `points` rounds, the newest one partly written */
	db->nchunks = (points + CHUNK - 1) / CHUNK + 1;
	/* label sets: about one per 20 series on a dense node (a cgroup's) */
	db->nbuckets = 64;
	while (db->nbuckets < max_series / 8)
		db->nbuckets <<= 1;
	db->nmetrics = nmetrics;
	db->times = calloc(points, sizeof(*db->times));
	db->held = calloc(points, sizeof(*db->held));
	db->keys = calloc(db->nbuckets, sizeof(*db->keys));
	db->by_metric = calloc(db->nmetrics, sizeof(*db->by_metric));
	db->tail_by_metric = calloc(db->nmetrics, sizeof(*db->tail_by_metric));
	if (!db->times || !db->held || !db->keys || !db->by_metric || !db->tail_by_metric) {
		tsdb_free(&db);
		return -ENOMEM;
	}
	*out = db;
	return 0;
}

static void series_unlink(struct tsdb *db, struct tsdb_series *s)
{
	s->key->win[s->metric - s->key->base] = NULL;
	if (s->prev_in_metric)
		s->prev_in_metric->next_in_metric = s->next_in_metric;
	else
		db->by_metric[s->metric] = s->next_in_metric;
	if (s->next_in_metric)
		s->next_in_metric->prev_in_metric = s->prev_in_metric;
	else
		db->tail_by_metric[s->metric] = s->prev_in_metric;
	db->nseries--;
	for (unsigned i = 0; i < db->nchunks; i++)
		chunk_free(db, &s->chunk[i]);
	key_unref(db, s->key);
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
	/* keys created by a put that found no room for its series */
	for (unsigned b = 0; db->keys && b < db->nbuckets; b++)
		while (db->keys[b]) {
			struct tsdb_key *k = db->keys[b];

			db->keys[b] = k->next;
			free(k->win);
			free(k->str);
			free(k);
		}
	free(db->times);
	free(db->held);
	free(db->slots);
	free(db->free_slots);
	free(db->keys);
	free(db->by_metric);
	free(db->tail_by_metric);
	free(db);
	*pdb = NULL;
}

void tsdb_begin_round(struct tsdb *db, uint64_t real_ms)
{
	db->round++;
	db->times[db->round % db->points] = real_ms;
	db->held[db->round % db->points] = 0;
}

void tsdb_hold_source(struct tsdb *db, unsigned source)
{
	if (db->round && source && source < TSDB_HOLD_SOURCES)
		db->held[db->round % db->points] |= 1u << source;
}

static bool round_held(const struct tsdb *db, unsigned source, uint64_t r)
{
	return source && source < TSDB_HOLD_SOURCES && r && r <= db->round &&
	       db->round - r < db->points && (db->held[r % db->points] >> source & 1u);
}

bool tsdb_held(const struct tsdb *db, const struct tsdb_series *s, unsigned ago)
{
	return ago < db->round && round_held(db, s->source, db->round - ago);
}

static struct tsdb_series *series_find(const struct tsdb_key *k, unsigned metric)
{
	return k->nwin && metric >= k->base && metric < k->base + k->nwin ? k->win[metric - k->base]
									  : NULL;
}

struct tsdb_series *tsdb_find_key(const struct tsdb *db, unsigned metric, const char *key)
{
	size_t len = strlen(key);
	const struct tsdb_key *k;

	if (metric >= db->nmetrics)
		return NULL;
	k = key_find(db, key, len, hash_bytes(key, len));
	return k ? series_find(k, metric) : NULL;
}

struct tsdb_series *tsdb_find(const struct tsdb *db, unsigned metric, const struct labels *labels)
{
	char key[LABELS_KEY_MAX];

	if (labels_key(labels, key, sizeof(key)))
		return NULL;
	return tsdb_find_key(db, metric, key);
}

static struct tsdb_series *series_new(struct tsdb *db, unsigned metric, struct tsdb_key *k)
{
	struct tsdb_series *s;

	if (key_window(k, metric))
		return NULL;
	s = calloc(1, sizeof(*s) + db->nchunks * sizeof(s->chunk[0]));
	if (!s)
		return NULL;
	s->metric = metric;
	s->key = k;
	k->refs++;
	k->win[metric - k->base] = s;
	s->first_round = db->round;
	s->last_round = db->round - 1;
	s->cur_chunk = NO_CHUNK;
	/* append to the metric's list so iteration follows creation order */
	s->prev_in_metric = db->tail_by_metric[metric];
	if (s->prev_in_metric)
		s->prev_in_metric->next_in_metric = s;
	else
		db->by_metric[metric] = s;
	db->tail_by_metric[metric] = s;
	db->nseries++;
	return s;
}

/* The value of this round, after gaps for the rounds it was silent in. */
static int series_put(struct tsdb *db, struct tsdb_series *s, double value)
{
	int err;

	if (s->last_round == db->round) {
		err = series_set(db, s, db->round, (float)value);
	} else {
		uint64_t from = MAX(s->last_round + 1, db->round - MIN(db->round, db->points - 1));

		for (uint64_t r = from; r < db->round; r++)
			series_set(db, s, r, NAN);
		err = series_set(db, s, db->round, (float)value);
	}
	s->last_round = db->round;
	s->source = db->source;
	return err;
}

static void sweep(struct tsdb *db);

/* A new series for k (refused past max_series). */
static int series_add(struct tsdb *db, unsigned metric, struct tsdb_key *k,
		      struct tsdb_series **out)
{
	struct tsdb_series *s;
	int err = 0;

	if (db->nseries >= db->max_series)
		sweep(db); /* forgotten ones may not have been swept yet */
	if (db->nseries >= db->max_series) {
		db->dropped++;
		err = -ENOSPC;
	} else if (!(s = series_new(db, metric, k))) {
		err = -ENOMEM;
	}
	if (err) {
		if (!k->refs) {
			k->refs = 1;
			key_unref(db, k);
		}
		return err;
	}
	*out = s;
	return 0;
}

int tsdb_put(struct tsdb *db, unsigned metric, const struct labels *labels, double value)
{
	char key[LABELS_KEY_MAX];
	struct tsdb_series *s;
	struct tsdb_key *k;
	int err;

	if (metric >= db->nmetrics || db->round == 0)
		return -EINVAL;
	if (labels_key(labels, key, sizeof(key))) {
		db->dropped++;
		return -E2BIG;
	}
	k = key_get(db, key, strlen(key), true);
	if (!k)
		return -ENOMEM;
	s = series_find(k, metric);
	if (!s && (err = series_add(db, metric, k, &s)))
		return err;
	return series_put(db, s, value);
}

int tsdb_put_ref(struct tsdb *db, unsigned metric, struct tsdb_ref *ref,
		 const struct labels *labels, double value)
{
	struct tsdb_key *k = NULL;
	struct tsdb_series *s;
	int err;

	if (metric >= db->nmetrics || db->round == 0)
		return -EINVAL;
	if (ref->db_id == db->id && ref->slot < db->nslots && db->slots[ref->slot] &&
	    db->slots[ref->slot]->serial == ref->serial)
		k = db->slots[ref->slot];
	if (!k) {
		char key[LABELS_KEY_MAX];

		if (labels_key(labels, key, sizeof(key))) {
			db->dropped++;
			return -E2BIG;
		}
		k = key_get(db, key, strlen(key), true);
		if (!k)
			return -ENOMEM;
		ref->db_id = db->id;
		ref->slot = k->slot;
		ref->serial = k->serial;
	}
	s = series_find(k, metric);
	if (!s && (err = series_add(db, metric, k, &s)))
		return err;
	return series_put(db, s, value);
}

/* Series silent for a whole history window are forgotten (cgroups that went
 * away); looked for every SWEEP rounds, not every round: walking every
 * series of a dense node each round would cost more than writing them. */
#define SWEEP 8

static void sweep(struct tsdb *db)
{
	for (unsigned m = 0; m < db->nmetrics; m++) {
		struct tsdb_series *s = db->by_metric[m];

		while (s) {
			struct tsdb_series *next = s->next_in_metric;

			if (db->round - s->last_round >= db->points)
				series_unlink(db, s);
			s = next;
		}
	}
}

void tsdb_end_round(struct tsdb *db)
{
	if (db->round % SWEEP == 0)
		sweep(db);
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
	uintptr_t w;

	if (!s)
		return;
	__builtin_prefetch(s->key);
	/* the newest chunk: an array when its values differ */
	w = s->cur_chunk == NO_CHUNK ? 0 : s->chunk[s->cur_chunk % db->nchunks];
	if (w && !(w & UNIFORM))
		__builtin_prefetch((const void *)w);
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

struct tsdb_series *tsdb_sibling(const struct tsdb_series *s, unsigned metric)
{
	return series_find(s->key, metric);
}

struct tsdb_memo *tsdb_series_memo(const struct tsdb_series *s)
{
	return &s->key->memo;
}

const char *tsdb_series_key(const struct tsdb_series *s)
{
	return s->key->str;
}

/* The value stored for round r, if any. */
static bool value_at(const struct tsdb *db, const struct tsdb_series *s, uint64_t r, double *out)
{
	uint64_t c;
	uintptr_t w;
	float v;

	if (r > s->last_round || r < s->first_round)
		return false; /* silent since, or not yet */
	c = r / CHUNK;
	if (s->cur_chunk == NO_CHUNK || c > s->cur_chunk || c + db->nchunks <= s->cur_chunk)
		return false;
	w = s->chunk[c % db->nchunks];
	if (!w)
		return false;
	v = is_array(w) ? ((const float *)w)[r % CHUNK] : word_value(w);
	if (isnan(v))
		return false;
	*out = v;
	return true;
}

bool tsdb_value(const struct tsdb *db, const struct tsdb_series *s, unsigned ago, double *out)
{
	uint64_t r;

	if (ago >= db->points || ago >= db->round || db->round - ago < s->first_round)
		return false;
	r = db->round - ago;
	if (value_at(db, s, r, out))
		return true;
	/* rounds its watcher held (tsdb_hold_source) read as the last value put
	 * before them: a held round costs the watcher nothing per series */
	for (unsigned n = 0;
	     n < TSDB_HOLD_MAX && round_held(db, s->source, r) && r > s->first_round; n++) {
		r--;
		if (value_at(db, s, r, out))
			return true;
	}
	return false;
}

uint64_t tsdb_chunk_arrays(const struct tsdb *db)
{
	return db->chunk_arrays;
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

	labels_foreach(s->key->str, label_find_cb, &f);
	return f.found;
}
