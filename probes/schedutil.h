/* SPDX-License-Identifier: GPL-2.0-only */
/* User-space helpers shared by the scheduler captures (offcpu, dstate, runq,
 * timeline): tp_btf/raw_tp selection, attaching, stacks and task fields as JSON. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probes/sched.h"

struct bpf_object;
struct bpf_link;
struct bpf_map;
struct symbolizer;
struct cgroups;
struct capture_target;

/* Tests set this to load the raw_tp flavour even where tp_btf works. */
extern bool sched_force_raw_tp;

/* Makes exactly one flavour of every tracepoint program load: the tp_btf/
 * programs when btf, else their raw_tp/ twins. */
void sched_select_flavor(struct bpf_object *obj, bool btf);

/* Leaves the agent's own process out of the target (the sched_self map of
 * sched.bpf.h) unless the target is the agent itself. */
int sched_set_self(const struct bpf_map *self_map, const struct capture_target *t);

#define SCHED_MAX_LINKS 8

/* Attaches every loaded tp_btf/ or raw_tp/ program of obj. On failure nothing
 * stays attached. */
int sched_attach(struct bpf_object *obj, struct bpf_link **links, unsigned *nlinks);
void sched_detach(struct bpf_link **links, unsigned *nlinks);

/* Frames of a stack id (leaf first, zero-terminated by the kernel); n = 0 for
 * a negative id. -ENOENT when the id is gone. */
int sched_stack_read(const struct bpf_map *stacks, int32_t id, uint64_t *frames, unsigned *n);

/* Leading frames of a kernel stack taken in a tracepoint that belong to the
 * BPF program and the tracing glue, not to the traced task: skip them. */
unsigned sched_trace_frames(struct symbolizer *sym, const uint64_t *frames, unsigned n);

/* Was this kernel stack taken in interrupt context (a hard or soft irq run on
 * the back of whatever task was current)? Returns how many leaf frames belong
 * to the interrupt (through its entry point), or 0. */
unsigned sched_stack_irq_frames(struct symbolizer *sym, const uint64_t *frames, unsigned n);

/* Frames as stacks.c renders them (func, offset, module, kernel, addr...). */
json_t *sched_frames_json(struct symbolizer *sym, int tgid, const uint64_t *kframes, unsigned nk,
			  const uint64_t *uframes, unsigned nu);
/* One frame as short text: "func" or "module+0xoff" or "0xaddr". */
void sched_frame_text(struct symbolizer *sym, int tgid, uint64_t addr, bool kernel, char *buf,
		      size_t len);
/* cgroup, container_id and pod_uid of a cgroup id, when known. */
void sched_json_set_cgroup(json_t *o, struct cgroups *cg, uint64_t cgroup_id);
/* "R", "S", "D", "I", "T", "X", "on_cpu", "?" */
const char *sched_state_name(unsigned state);
/* NUL-terminated copy of a kernel comm. */
void sched_comm(char *dst, const char *comm);
