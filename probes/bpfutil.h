/* SPDX-License-Identifier: GPL-2.0-only */
/* User-space helpers shared by the probe loaders. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct btf;
struct bpf_map;
struct bpf_link;
struct bpf_program;
struct capture_filter;
struct capture_target;
struct cgroups;
struct symbolizer;
struct bpf_object;

/* Sums a per-CPU array of u64 counters: out[i] for key i < n. */
int percpu_counters_read(const struct bpf_map *map, uint64_t *out, unsigned n);
int percpu_counters_zero(const struct bpf_map *map, unsigned n);
/* Deletes every key of a hash or stack map. */
void map_clear(const struct bpf_map *map);

/* Builds the kernel-side filter for a capture target. */
int capture_filter_fill(struct capture_filter *f, const struct capture_target *t,
			struct cgroups *cg);
int capture_filter_set(const struct bpf_map *filter_map, const struct capture_filter *f);

/* One perf cpu-clock event per online CPU at freq Hz, each running prog.
 * Fills links/fds arrays of length *n (possible CPUs); returns events opened. */
int perf_clock_attach(struct bpf_program *prog, uint64_t freq, struct bpf_link **links, int *fds,
		      int n);
void perf_clock_detach(struct bpf_link **links, int *fds, int n);
/* A kernel CPU list ("0-3,5\n", as in /sys/devices/system/cpu/online): on[c]
 * for each CPU c < n it names. -EINVAL on malformed text. */
int cpu_list_parse(const char *text, bool *on, int n);
/* Opens events on CPUs that came online since (fds[cpu] < 0 and online now) and
 * closes those on CPUs that went offline (the kernel does not resume them).
 * Returns CPUs newly attached. */
int perf_clock_refresh(struct bpf_program *prog, uint64_t freq, struct bpf_link **links, int *fds,
		       int n);

/* Reads stack id of a stack-trace map into frames (leaf first, at most max);
 * *n = 0 for a negative id (none recorded). -ENOENT when the id is gone. */
int stack_map_read(const struct bpf_map *map, int32_t id, uint64_t *frames, unsigned max,
		   unsigned *n);
/* A kernel stack taken from a tracepoint program starts in the program and
 * the tracing glue (bpf_prog_*, bpf_trace_run*, __bpf_trace_*): how many
 * leading frames are those, to leave out of what a person reads. */
unsigned stack_bpf_frames(struct symbolizer *sym, const uint64_t *kframes, unsigned n);
/* Tracks every process among a map's keys while it is alive (symbolizer_track),
 * for keys of key_size bytes holding a u32 tgid and an s32 user stack id at
 * these offsets; keys without a user stack are passed by. */
void track_key_tgids(struct symbolizer *sym, const struct bpf_map *map, size_t key_size,
		     size_t tgid_off, size_t ustack_off);
/* Frames a stack map may hold on this kernel: want, capped by the
 * kernel.perf_event_max_stack sysctl (the kernel refuses deeper stack maps). */
unsigned stack_depth_limit(unsigned want);

/* Does the kernel have tracepoint `name` (a btf_trace_<name> type in its BTF)? */
bool btf_has_tracepoint(const struct btf *vmlinux, const char *name);
/* Programs come in pairs, one in a "tp_btf/X" section and one in "raw_tp/X":
 * loads the tp_btf one of each pair (use_btf) or the raw_tp one. */
void bpf_object_choose_tp_btf(struct bpf_object *obj, bool use_btf);

/* Logs "what: BPF programs loaded: name#id ..." so operators (and tests) can
 * match the agent's programs in `bpftool prog`, and registers the programs
 * under `what` for run-time accounting. */
void bpf_object_log_ids(const char *what, const struct bpf_object *obj);
/* Forgets the programs registered under `what` (before its object is destroyed). */
void bpf_owner_forget(const char *what);
/* Kernel run time and run count of the programs registered under `what`
 * (counted only while bpf_stats_hold() is held). */
int bpf_owner_runtime(const char *what, uint64_t *run_ns, uint64_t *run_cnt);
/* Turns kernel BPF run-time statistics on (refcounted; they cost two clock
 * reads per program run, so they are held only while needed). */
int bpf_stats_hold(void);
void bpf_stats_release(void);
