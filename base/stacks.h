/* SPDX-License-Identifier: GPL-2.0-only */
/* A set of (task, kernel stack, user stack) -> value, rendered as folded stacks
 * and as the top stacks of an incident. Shared by every stack-bearing capture. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct symbolizer;
struct cgroups;
struct consumers;

struct stack_sample {
	uint32_t tgid, pid;
	uint64_t cgroup_id;
	const char *comm;
	const uint64_t *kstack; /* leaf first */
	unsigned nk;
	const uint64_t *ustack; /* leaf first */
	unsigned nu;
	uint64_t value;
};

struct stackset;

struct stackset_render_opts {
	unsigned top_n;	       /* stacks listed in the JSON */
	size_t folded_max;     /* bytes of folded text; smallest stacks dropped beyond */
	const char *value_key; /* JSON name of the value: "samples", "blocked_us", ... */
	struct symbolizer *sym;
	struct cgroups *cgroups;
	/* optional: every stack is also charged to its process here, with its
	 * folded line, for the capture's consumers (base/consumers.h) */
	struct consumers *consumers;
};

struct stackset_render {
	json_t *top;  /* array of stacks, largest first */
	char *folded; /* "comm;outer;...;leaf value\n" lines, malloc'd */
	size_t folded_len;
	uint64_t total;		 /* sum of values */
	uint64_t folded_dropped; /* stacks left out of the folded text for size */
};

int stackset_new(struct stackset **out, unsigned max_entries);
void stackset_free(struct stackset **ss);
/* Copies the sample; -ENOSPC (counted in stackset_dropped) when full. */
int stackset_add(struct stackset *ss, const struct stack_sample *s);
uint64_t stackset_dropped(const struct stackset *ss);
size_t stackset_count(const struct stackset *ss);
int stackset_render(struct stackset *ss, const struct stackset_render_opts *o,
		    struct stackset_render *out);
void stackset_render_clear(struct stackset_render *r);

/* Frames as incidents carry them (func, offset, module, kernel, addr...):
 * nk kernel frames then nu user frames of process tgid, leaf first. */
json_t *stack_frames_json(struct symbolizer *sym, int tgid, const uint64_t *kframes, unsigned nk,
			  const uint64_t *uframes, unsigned nu);
/* One frame as short text: "func" or "module+0xoff" or "0xaddr". */
void stack_frame_text(struct symbolizer *sym, int tgid, uint64_t addr, bool kernel, char *buf,
		      size_t len);
