/* SPDX-License-Identifier: GPL-2.0-only */
/* Metric history: one bounded ring per series (metric + labels), all rings
 * advancing together one "round" per watcher interval. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LABELS_MAX     4
#define LABELS_KEY_MAX 512 /* canonical "k=v\x1fk=v" form, longer label sets are refused */

struct labels {
	unsigned n;
	const char *k[LABELS_MAX];
	const char *v[LABELS_MAX];
};

struct tsdb;
struct tsdb_series;

/* Metric ids are 0..nmetrics-1 (the catalogue's); max_series bounds memory;
 * points = rounds kept (history / interval). */
int tsdb_new(struct tsdb **out, unsigned nmetrics, unsigned max_series, unsigned points);
void tsdb_free(struct tsdb **db);

/* Starts a round stamped with wall-clock real_ms; puts go into it. */
void tsdb_begin_round(struct tsdb *db, uint64_t real_ms);
/*
 * This round, the series of `source` (tsdb_set_source) hold their values: a
 * series without a value here reads as the last value put before the rounds
 * its source held (at most TSDB_HOLD_MAX back). What a watcher the guard
 * widened does between its passes: nothing per series. Sources from 1 to
 * TSDB_HOLD_SOURCES - 1.
 */
#define TSDB_HOLD_SOURCES 32
#define TSDB_HOLD_MAX	  64
void tsdb_hold_source(struct tsdb *db, unsigned source);
/* -ENOSPC (and counted) when max_series is reached, -E2BIG for oversized labels. */
int tsdb_put(struct tsdb *db, unsigned metric, const struct labels *labels, double value);
/* A caller's handle on a label set: puts through it skip building and hashing
 * the labels' key. Zero-initialised; a handle of another tsdb, or of a label
 * set forgotten since, is refreshed from the labels given with it. */
struct tsdb_ref {
	uint64_t db_id, serial;
	unsigned slot;
};
int tsdb_put_ref(struct tsdb *db, unsigned metric, struct tsdb_ref *ref,
		 const struct labels *labels, double value);
/* Closes the round: series without a value have a gap there; series silent for
 * a whole history window are forgotten (cgroups that went away) within a few
 * rounds. */
void tsdb_end_round(struct tsdb *db);

uint64_t tsdb_rounds(const struct tsdb *db); /* rounds completed or in progress */
unsigned tsdb_points(const struct tsdb *db); /* ring length */
unsigned tsdb_series_count(const struct tsdb *db);
uint64_t tsdb_dropped(const struct tsdb *db);		       /* puts refused for lack of room */
uint64_t tsdb_round_time(const struct tsdb *db, unsigned ago); /* real_ms, 0 if none */
/* Chunks of 32 rounds kept as arrays; the rest (a value that did not change,
 * or none) take one word each. */
uint64_t tsdb_chunk_arrays(const struct tsdb *db);

/* Series of one metric, in creation order; NULL at the end. */
struct tsdb_series *tsdb_first(const struct tsdb *db, unsigned metric);
struct tsdb_series *tsdb_next(const struct tsdb_series *s);
struct tsdb_series *tsdb_find(const struct tsdb *db, unsigned metric, const struct labels *labels);
/* A cache hint before s is read: its key, its latest value and the series after
 * it. A walk over tens of thousands of series waits on memory otherwise (the
 * series of one metric are far apart: they are created cgroup by cgroup). */
void tsdb_prefetch(const struct tsdb *db, const struct tsdb_series *s);
struct tsdb_series *tsdb_find_key(const struct tsdb *db, unsigned metric, const char *key);

unsigned tsdb_series_metric(const struct tsdb_series *s);
/* Tags the puts that follow (the watcher index + 1 while a watcher samples),
 * so `autotrace status` can show each watcher's latest values; 0 = untagged. */
void tsdb_set_source(struct tsdb *db, unsigned source);
unsigned tsdb_series_source(const struct tsdb_series *s);
/* The series of another metric with the same labels, or NULL. */
struct tsdb_series *tsdb_sibling(const struct tsdb_series *s, unsigned metric);
/* Kept with a label set for one caller (the rules engine) to remember what it
 * derived from the labels, per generation of its own; zeroed for a new set. */
struct tsdb_memo {
	uint64_t gen, known, bits;
};
struct tsdb_memo *tsdb_series_memo(const struct tsdb_series *s);
/* Canonical label key (stable identity of the series within its metric). */
const char *tsdb_series_key(const struct tsdb_series *s);
/* Value `ago` rounds back (0 = current round); false when no value. */
bool tsdb_value(const struct tsdb *db, const struct tsdb_series *s, unsigned ago, double *out);
/* Did the series' source hold its values that round (tsdb_hold_source)? Then
 * tsdb_value() repeats an earlier value: per-interval counts are not new. */
bool tsdb_held(const struct tsdb *db, const struct tsdb_series *s, unsigned ago);
/* Looks up one label of a series; returns length copied or -ENOENT. */
int tsdb_series_label(const struct tsdb_series *s, const char *name, char *buf, size_t len);
/* Calls fn for each label of a canonical key. */
void labels_foreach(const char *key, void (*fn)(const char *k, const char *v, void *ctx),
		    void *ctx);
/* Builds the canonical key; -E2BIG when too long. */
int labels_key(const struct labels *labels, char *buf, size_t len);
