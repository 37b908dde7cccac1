/* SPDX-License-Identifier: GPL-2.0-only */
/* User-space helpers shared by the probe loaders. */
#pragma once
#include <stdint.h>

struct bpf_map;
struct bpf_link;
struct bpf_program;
struct capture_filter;
struct capture_target;
struct cgroups;

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
int perf_clock_attach(struct bpf_program *prog, uint64_t freq, struct bpf_link **links,
		      int *fds, int n);
void perf_clock_detach(struct bpf_link **links, int *fds, int n);

struct bpf_object;
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
