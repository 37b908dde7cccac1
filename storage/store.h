/* SPDX-License-Identifier: GPL-2.0-only */
/* The local incident store: DIR/YYYY-MM-DD/ID/incident.json + artifacts,
 * written whole or not at all, with size and age retention. */
#pragma once
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
	uint64_t bytes;	    /* total after enforcement */
	unsigned incidents; /* count after enforcement */
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

/* Writes one incident atomically; out_dir receives its directory. */
int store_write(struct store *s, const char *id, uint64_t real_ms, const char *json, size_t len,
		const struct capture_artifact *arts, unsigned nart, char *out_dir, size_t out_len);
/* Removes incidents past max_age, then the oldest until under max_size. */
int store_enforce_retention(struct store *s, uint64_t now_real_ms, struct store_retention *st);

/* Every incident under dir, oldest first (no daemon needed). */
int store_list(const char *dir, struct store_entry **out, size_t *n);
/* The directory of one incident; -ENOENT when absent. */
int store_find(const char *dir, const char *id, char *path, size_t len);
