/* SPDX-License-Identifier: GPL-2.0-only */
/* The unwinder (base/unwind.h) run in the sandboxed helper: the same calls,
 * answered by the helper (base/unwproto.h), so the CFI of tenants' binaries
 * is parsed there and never in the agent. Each call waits for its answer,
 * bounded by the helper's deadline and the caller's max_wait_ms; a helper that
 * fails makes the call fail (-EIO) and that stack is lost, nothing else. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "base/unwind.h"

struct sandbox;
struct unwind_remote;

/* timeout_ms: the helper's deadline per request; max_wait_ms: the longest one
 * unwind or batch holds its caller (the event loop) in all, its round trips
 * together; past it the stacks still unanswered fail with -ETIMEDOUT (0: one
 * request's wait). */
int unwind_remote_new(struct unwind_remote **out, struct sandbox *sb,
		      const struct unwinder_opts *opts, uint64_t timeout_ms, uint64_t max_wait_ms);
void unwind_remote_free(struct unwind_remote **r);

/* unwinder_unwind for process tgid, whose mappings in->maps are reading gen
 * of them (a new gen sends them again). */
int unwind_remote_unwind(struct unwind_remote *r, int tgid, uint64_t gen,
			 const struct unwind_input *in, uint64_t *pcs, unsigned max,
			 struct unwind_result *res);
/* unwinder_add_file: fd is passed to the helper (the caller still closes it). */
int unwind_remote_add_file(struct unwind_remote *r, const struct unwind_map *m, int fd);
int unwind_remote_add_image(struct unwind_remote *r, const struct unwind_map *m, const void *image,
			    size_t len);
/* One stack of a batch: tgid's mappings (reading gen) in in->maps. */
struct unwind_remote_item {
	int tgid;
	uint64_t gen;
	struct unwind_input in;
	uint64_t *pcs;
	unsigned max;
	struct unwind_result res; /* out */
	int err;		  /* out: 0, or the helper failed on it (res.n = 0) */
};

/* Where the files the unwinder asks for come from. */
struct unwind_remote_files {
	/* the file of map m of process tgid as a descriptor the caller closes
	 * after the call returns, or -1 */
	int (*open)(void *ctx, int tgid, const struct unwind_map *m);
	void *ctx;
	const void *vdso; /* the agent's own vDSO image */
	size_t vdso_len;
};

/* Unwinds n stacks in as few round trips as they fit in (one, usually):
 * what the helper needs first (mappings, files) is sent and those stacks
 * are asked again. Returns 0 (each item says how it went) or -errno when
 * the helper could not be asked at all. */
int unwind_remote_batch(struct unwind_remote *r, struct unwind_remote_item *items, unsigned n,
			const struct unwind_remote_files *files);
/* The helper unwinder's counters as of its last answer. */
void unwind_remote_get_stats(const struct unwind_remote *r, struct unwinder_stats *out);
/* Stacks given up because their unwind or batch reached max_wait_ms. */
uint64_t unwind_remote_cut_short(const struct unwind_remote *r);
