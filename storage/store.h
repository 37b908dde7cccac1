/* SPDX-License-Identifier: GPL-2.0-only */
/* The local incident store: DIR/YYYY-MM-DD/ID/incident.json + artifacts,
 * written whole or not at all, with size and age retention. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probes/capture.h"

struct store;

struct store_opts {
	const char *dir;
	uint64_t max_size; /* bytes, all incidents together */
	uint64_t max_age_ms;
};

struct store_retention {
	unsigned removed_age;
	unsigned removed_size;
	unsigned removed_leftovers; /* half-written .ID.tmp directories of a crash */
	uint64_t leftover_bytes;    /* what they held */
	uint64_t bytes;		    /* total after enforcement */
	unsigned incidents;	    /* count after enforcement */
};

/* Leftovers cleaned, and incidents kept in memory because the disk was full
 * when they were written. */
#define STORE_PENDING_MAX	16
#define STORE_PENDING_BYTES_MAX (64ull << 20)

struct store_stats {
	uint64_t leftovers_removed; /* half-written incidents of a crash, cleaned */
	uint64_t leftover_bytes;
	unsigned pending; /* waiting in memory now */
	uint64_t pending_bytes;
	uint64_t kept;	       /* ever kept for a retry */
	uint64_t written_late; /* written by a retry */
	uint64_t dropped;      /* lost: memory bound reached, or failed for another reason */
	char last_error[128];
};

struct store_entry {
	char id[64];
	char path[4096]; /* the incident directory */
	uint64_t bytes;
};

#define INCIDENT_ID_LEN 36

/* Time-sortable id: 20261122T113347123Z-0123456789abcdef */
void incident_id_new(uint64_t real_ms, char *buf, size_t len);
/* True for strings shaped like an incident id (safe as a path component). */
int incident_id_valid(const char *id);

int store_open(struct store **out, const struct store_opts *opts);
void store_free(struct store **s);
const char *store_dir(const struct store *s);

/* Writes one incident atomically; out_dir receives its directory. When the
 * disk is full (ENOSPC, EDQUOT) the incident is kept in memory, within
 * STORE_PENDING_MAX incidents and STORE_PENDING_BYTES_MAX bytes, for
 * store_retry(): then -EAGAIN, and out_dir names where it will go. */
int store_write(struct store *s, const char *id, uint64_t real_ms, const char *json, size_t len,
		const struct capture_artifact *arts, unsigned nart, char *out_dir, size_t out_len);
/* Writes the incidents kept in memory, oldest first, at most every few
 * seconds (force: now); returns how many were written. */
unsigned store_retry(struct store *s, uint64_t now_mono_ms, bool force);
void store_stats_get(const struct store *s, struct store_stats *out);
/* The same as status shows it. */
json_t *store_stats_json(const struct store *s);
/* Removes incidents past max_age, then the oldest until under max_size. */
int store_enforce_retention(struct store *s, uint64_t now_real_ms, struct store_retention *st);

/* Every incident under dir, oldest first (no daemon needed). */
int store_list(const char *dir, struct store_entry **out, size_t *n);
/* The directory of one incident; -ENOENT when absent. */
int store_find(const char *dir, const char *id, char *path, size_t len);
