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

/* Attaches iterator program prog with link info li (its whole union read by
 * the kernel). The options are zeroed byte by byte: libbpf refuses options
 * whose bytes past the last field, padding included, are not zero, and a
 * LIBBPF_OPTS initializer leaves that padding to the compiler. */
union bpf_iter_link_info;
struct bpf_link *iter_attach(struct bpf_program *prog, union bpf_iter_link_info *li);

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

/* Reads stack id of a stack map (stackstore.bpf.h, or a stack-trace map) into
 * frames (leaf first, at most max); *n = 0 for a negative id (none recorded).
 * -ENOENT when the id is gone. */
int stack_map_read(const struct bpf_map *map, int32_t id, uint64_t *frames, unsigned max,
		   unsigned *n);
/* Is `name` a function of the BPF program or of the tracing glue that runs it
 * (bpf_prog_*, bpf_trace_run*, __bpf_trace_*, trampolines, dispatchers)? */
bool stack_is_glue(const char *name);
/* A kernel stack taken from a tracing program starts in the program and the
 * tracing glue: how many leading frames are those, to leave out of what a
 * person reads. One rule for every capture; 0 without a symbolizer. */
unsigned stack_bpf_frames(struct symbolizer *sym, const uint64_t *kframes, unsigned n);
/* Was this kernel stack taken in interrupt context (a hard or soft irq run on
 * the back of whatever task was current)? Returns how many leaf frames belong
 * to the interrupt (through its entry point), or 0. */
unsigned stack_irq_frames(struct symbolizer *sym, const uint64_t *kframes, unsigned n);
/* Tracks every process among a map's keys while it is alive (symbolizer_track),
 * for keys of key_size bytes holding a u32 tgid and an s32 user stack id at
 * these offsets; keys without a user stack are passed by. */
void track_key_tgids(struct symbolizer *sym, const struct bpf_map *map, size_t key_size,
		     size_t tgid_off, size_t ustack_off);
/* Frames a stack map may hold on this kernel: want, capped by the
 * kernel.perf_event_max_stack sysctl (the kernel refuses deeper stack maps). */
unsigned stack_depth_limit(unsigned want);

/* The running kernel's BTF, parsed on first use and shared by every check
 * before a load (NULL with errno when the kernel has none). Parsing it costs
 * megabytes: bpf_skel_load() frees it before libbpf parses its own copy for
 * the load, and the daemon calls kernel_btf_release() once start-up is over.
 * A pointer from kernel_btf() is good until the next bpf_skel_load(). */
const struct btf *kernel_btf(void);
void kernel_btf_release(void);
/* Whether kernel_btf() holds a parsed copy now (a caller that parsed it only
 * for itself releases it again). */
bool kernel_btf_parsed(void);
/* Does the kernel have tracepoint `name` (a btf_trace_<name> type in its BTF)? */
bool btf_has_tracepoint(const struct btf *vmlinux, const char *name);
/* Programs come in pairs, one in a "tp_btf/X" section and one in "raw_tp/X":
 * loads the tp_btf one of each pair (use_btf) or the raw_tp one. */
void bpf_object_choose_tp_btf(struct bpf_object *obj, bool use_btf);

/* ---- one load sequence for every BPF object ----
 *
 * A generated skeleton seen through four functions, so one loader serves all:
 * BPF_SKEL_OPS(offcpu) defines offcpu_skel_ops for offcpu.skel.h. */
struct bpf_skel_ops {
	void *(*open)(void);
	int (*load)(void *skel);
	void (*destroy)(void *skel);
	struct bpf_object *(*object)(const void *skel);
};

#define BPF_SKEL_OPS(n)                                                                            \
	static void *n##_skel_open(void)                                                           \
	{                                                                                          \
		return n##_bpf__open();                                                            \
	}                                                                                          \
	static int n##_skel_load(void *s)                                                          \
	{                                                                                          \
		return n##_bpf__load(s);                                                           \
	}                                                                                          \
	static void n##_skel_destroy(void *s)                                                      \
	{                                                                                          \
		n##_bpf__destroy(s);                                                               \
	}                                                                                          \
	static struct bpf_object *n##_skel_object(const void *s)                                   \
	{                                                                                          \
		return ((const struct n##_bpf *)s)->obj;                                           \
	}                                                                                          \
	static const struct bpf_skel_ops n##_skel_ops = {n##_skel_open, n##_skel_load,             \
							 n##_skel_destroy, n##_skel_object}

/* Tests set this to load the raw_tp twins even where tp_btf works. */
extern bool bpf_force_raw_tp;

struct bpf_load_opts {
	const char *owner; /* log prefix and run-time accounting owner: "offcpu", "watch.biolat" */
	/* Between open and load: rodata, map sizes, which programs load. 0 or -errno. */
	int (*configure)(void *skel, void *ctx);
	void *ctx;
	bool no_tp_btf;	       /* load the raw_tp twins only (a tp_btf tracepoint is missing) */
	bool drop_missing_tps; /* programs whose tracepoint this kernel lacks stay unloaded */
	char *why;	       /* optional: what failed, for `autotrace probes` */
	size_t why_len;
};

/* Opens the skeleton, configures it and loads it: the tp_btf programs first
 * and, when they do not load, their raw_tp twins. Logs the loaded programs'
 * ids under the owner and registers them for run-time accounting. On success
 * *skel is the loaded skeleton and *btf whether the tp_btf flavour loaded. */
int bpf_skel_load(void **skel, bool *btf, const struct bpf_skel_ops *ops,
		  const struct bpf_load_opts *o);
/* Destroys a skeleton bpf_skel_load returned (NULL-safe) and forgets its
 * programs' accounting. */
void bpf_skel_unload(void *skel, const struct bpf_skel_ops *ops, const char *owner);

/* The attached links of one object's tracing programs. */
#define BPF_LINKS_MAX 24
struct bpf_links {
	struct bpf_link *v[BPF_LINKS_MAX];
	unsigned n;
	char note[160]; /* the first optional program that did not attach, and why */
};

enum bpf_attach_choice { BPF_ATTACH_SKIP, BPF_ATTACH_REQUIRED, BPF_ATTACH_OPTIONAL };

/* Attaches every loaded tracing program of obj (iterators and perf-event
 * programs are attached by their owners), asking choose (NULL: all required)
 * about each. An optional program that fails is noted in l->note and passed
 * by; a required one that fails detaches everything and returns its error. */
int bpf_links_attach(struct bpf_links *l, struct bpf_object *obj,
		     enum bpf_attach_choice (*choose)(const struct bpf_program *p, void *ctx),
		     void *ctx, const char *owner);
void bpf_links_detach(struct bpf_links *l);

/* ---- scheduler captures (offcpu, dstate, runq, timeline): probes/sched.h ---- */

/* Leaves the agent's own process out of the target (the sched_self map of
 * sched.bpf.h) unless the target is the agent itself. */
int sched_set_self(const struct bpf_map *self_map, const struct capture_target *t);
/* "R", "S", "D", "I", "T", "X", "on_cpu", "?" */
const char *sched_state_name(unsigned state);
/* NUL-terminated copy of a kernel comm. */
void sched_comm(char *dst, const char *comm);

/* The arguments tracepoint `name` passes (its btf_trace_ typedef, less the
 * context); -ENOENT when the kernel lacks it. */
int btf_tracepoint_nargs(const struct btf *vmlinux, const char *name);
/* Programs named NAME_old stand in for NAME where a kernel's tracepoint `tp`
 * passes other arguments: of each such pair attached to tp, loads the _old
 * one (old) or NAME. Call after bpf_object_choose_tp_btf: it only turns
 * programs off. */
void bpf_object_choose_old(struct bpf_object *obj, const char *tp, bool old);

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
