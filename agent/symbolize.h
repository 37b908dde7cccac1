/* SPDX-License-Identifier: GPL-2.0-only */
/* Kernel and user-space address -> symbol. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

struct symbolizer;

struct symbolizer_opts {
	uint64_t cache_bytes; /* cap for cached symbol tables */
	const char *procfs;   /* "/proc" unless testing */
};

struct sym_frame {
	uint64_t addr;
	char name[256];    /* function; empty when unresolved */
	uint64_t offset;   /* addr - function start */
	char module[256];  /* "[kernel]", "[ext4]", or the binary's path */
	char build_id[41]; /* hex, user frames, when the binary has one */
	uint64_t file_offset; /* user frames: offset in the binary, for offline symbolization */
	bool kernel;
};

int symbolizer_new(struct symbolizer **out, const struct symbolizer_opts *opts);
void symbolizer_free(struct symbolizer **s);

int symbolizer_kernel(struct symbolizer *s, uint64_t addr, struct sym_frame *out);
/* Records pid's executable mappings now, so its frames resolve even if it exits
 * before the capture is read out. Cheap when already tracked. */
int symbolizer_track(struct symbolizer *s, int pid);
int symbolizer_user(struct symbolizer *s, int pid, uint64_t addr, struct sym_frame *out);
/* Drops per-process state (after an incident is written). */
void symbolizer_forget_processes(struct symbolizer *s);
/* Bytes currently held by caches. */
uint64_t symbolizer_cache_bytes(const struct symbolizer *s);
