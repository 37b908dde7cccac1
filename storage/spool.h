/* SPDX-License-Identifier: GPL-2.0-only */
/* The Elasticsearch spool: incidents waiting to be acknowledged, one fsync'd
 * file per incident (DIR/<incident-id>.json), bounded by size and age. What a
 * cluster refuses for good is parked in DIR/parked/ rather than retried. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_MAX_ENTRIES 100000 /* files indexed at once, whatever max_size says */
#define SPOOL_PARKED_MAX  1000	 /* parked incidents kept; the oldest go first */

struct spool;

struct spool_opts {
	const char *dir;
	uint64_t max_size;   /* bytes of queued documents */
	uint64_t max_age_ms; /* by incident time (the id's timestamp) */
};

/* One queued incident; the document stays on disk until it is shipped. */
struct spool_item {
	char id[40];
	uint64_t bytes;
	uint64_t real_ms;	/* incident time */
	unsigned attempts;	/* failed deliveries so far */
	uint64_t not_before_ms; /* monotonic ms: retry no earlier */
	bool inflight;
};

struct spool_evicted {
	unsigned by_age, by_size;
	char oldest[40], newest[40]; /* range of ids evicted, for the log */
};

struct spool_stats {
	uint64_t queued; /* items */
	uint64_t bytes;
	uint64_t parked;
	uint64_t evicted_age, evicted_size; /* since open */
	uint64_t parked_total;		    /* since open */
	uint64_t write_errors;
	uint64_t oldest_real_ms; /* incident time of the oldest queued item, 0 when empty */
};

/* Creates dir (0700) and parked/, removes temporaries of an interrupted
 * write, and indexes every queued incident (oldest first). */
int spool_open(struct spool **out, const struct spool_opts *opts);
void spool_free(struct spool **s);
const char *spool_dir(const struct spool *s);

/* Writes the document durably (temp file, fsync, rename, fsync dir), then
 * enforces the bounds; ev (may be NULL) says what that evicted. */
int spool_put(struct spool *s, const char *id, const char *doc, size_t len, uint64_t now_real_ms,
	      struct spool_evicted *ev);
/* Evicts by age, then oldest first while over max_size or SPOOL_MAX_ENTRIES. */
void spool_enforce(struct spool *s, uint64_t now_real_ms, struct spool_evicted *ev);

size_t spool_count(const struct spool *s);
/* i-th queued item, oldest first; NULL past the end. */
struct spool_item *spool_item_at(struct spool *s, size_t i);
struct spool_item *spool_find(struct spool *s, const char *id);
/* The document of a queued item (malloc'd, NUL-terminated). */
int spool_read(struct spool *s, const char *id, char **doc, size_t *len);
/* Delivered: the file goes. */
int spool_ack(struct spool *s, const char *id);
/* Refused for good: moved to parked/ with a .reason file beside it. */
int spool_park(struct spool *s, const char *id, const char *reason);
void spool_stats(const struct spool *s, struct spool_stats *st);
