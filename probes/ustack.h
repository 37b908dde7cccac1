/* SPDX-License-Identifier: GPL-2.0-only */
/* DWARF user stacks for the profile and offcpu captures, the user-space half
 * (ustack.bpf.h is the other): consumes the stack copies BPF sends, decides
 * per process whether its stacks need DWARF (unwind.mode auto), unwinds them
 * with base/unwind within a CPU budget, and aggregates the samples the way the
 * capture's own BPF maps do. docs/symbolization.md#user-stacks-without-frame-pointers.
 *
 * The unwinding itself is one call, ustack_unwind_one(), fed with plain data
 * (registers, stack bytes, mappings) and file descriptors this module opened:
 * the call that moves into a sandboxed helper process. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct agent_config;
struct bpf_map;
struct symbolizer;
struct ustack_shared;
struct ustack_capture;

#define USTACK_MAX_FRAMES 127

/* One per agent: the unwinder and its file cache, the processes' mappings,
 * totals for status. NULL *out (and 0) when unwind.mode is off. */
int ustack_shared_new(struct ustack_shared **out, const struct agent_config *cfg,
		      struct symbolizer *sym);
void ustack_shared_free(struct ustack_shared **s);
/* status: captures.unwind */
json_t *ustack_shared_status(const struct ustack_shared *s);

/* Before a capture's BPF object is loaded: sizes its ustack maps and says what
 * its rodata must hold. With s NULL (unwind off) the maps get their smallest
 * sizes and *enabled is false. */
int ustack_size_maps(const struct ustack_shared *s, struct bpf_map *rb, struct bpf_map *scratch,
		     bool *enabled, bool *always, uint32_t *stack_bytes, uint32_t *cpu_stride);

/* The maps of one loaded capture object. */
struct ustack_capture_maps {
	struct bpf_map *rb, *modes, *stats;
	volatile uint32_t *paused; /* the object's ustack_paused (its .bss) */
	const struct bpf_map
		*user_stacks; /* the capture's stack map: probes' frame-pointer walks */
};

/* NULL *out (and 0) when s is NULL. */
int ustack_capture_new(struct ustack_capture **out, struct ustack_shared *s, const char *kind,
		       const struct ustack_capture_maps *maps);
void ustack_capture_free(struct ustack_capture **c);
/* A window begins: tables and the BPF modes cleared, the budget reset. */
int ustack_capture_start(struct ustack_capture *c);
/* The window ends: drains the ring. */
void ustack_capture_stop(struct ustack_capture *c);
/* Readable when records or the budget timer are ready; -1 when off. */
int ustack_capture_fd(const struct ustack_capture *c);
/* Adds another descriptor to what ustack_capture_fd waits on (the capture's own timer). */
int ustack_capture_watch_fd(struct ustack_capture *c, int fd);
void ustack_capture_poll(struct ustack_capture *c);

/* Samples aggregated in user space, with their unwound user stacks. */
struct ustack_row {
	uint32_t tgid, pid;
	uint64_t cgroup_id;
	const char *comm;
	int32_t kern_stack_id;
	uint32_t state;
	uint64_t value, count, max; /* profile: samples; offcpu: ns blocked, blocks, longest */
	const uint64_t *frames;	    /* leaf first */
	unsigned nframes;
};
int ustack_capture_foreach(struct ustack_capture *c,
			   int (*fn)(void *ctx, const struct ustack_row *r), void *ctx);
/* offcpu: the user stack recorded for block seq (a thread still blocked at the end). */
bool ustack_capture_block(struct ustack_capture *c, uint64_t seq, const uint64_t **frames,
			  unsigned *n);
/* Adds the capture's unwind fields to its data (unwind_failed, unwind_truncated,
 * unwind{}); returns the samples lost for the capture's lost_events. */
uint64_t ustack_capture_report(struct ustack_capture *c, json_t *data);
