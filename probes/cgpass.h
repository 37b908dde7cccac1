/* SPDX-License-Identifier: GPL-2.0-only */
/* ABI of the cgroup pass (cgpass.bpf.c <-> cgpass.c). */
#pragma once
#ifndef __bpf__
#include <linux/types.h>
#endif

#define CGP_NAME_MAX	 255 /* a kernfs name; longer ones are cut and flagged */
#define CGP_MAX_CPUS	 1024
#define CGP_MAX_DEPTH	 16 /* ancestors looked at for a limit */
#define CGP_NO_SLOT	 0xffffffffu
#define CGP_CPUSET_WORDS 64 /* cpumask words looked at: 4096 CPUs */

/* A cgroup of one hierarchy. Hierarchy ids are those of /proc/PID/cgroup
 * (0: the v2 hierarchy); cgroup ids are kernfs ids (the directory's inode). */
struct cgp_key {
	__u64 id;
	__u32 hier;
	__u32 pad;
};

/* What user space knows of a cgroup: where the pass stamps it (seen[idx]) and
 * the counter slot of its watched cgroup (acc[slot]), or CGP_NO_SLOT. */
struct cgp_known {
	__u32 idx;
	__u32 slot;
};

#define CGP_SEEN_POPULATED 1u

struct cgp_seen {
	__u32 pass;
	__u32 flags;
};

/* The pass writes a record for each populated cgroup it does not know yet
 * (pre-order: a parent before its children), then the name's bytes. A cgroup
 * iterator cannot resume a walk in a second read() (it holds cgroup_mutex
 * for one), so what one pass writes must fit the kernel's seq_file buffer
 * (8 pages): past CGP_EMIT_ROOM bytes, new cgroups wait for the next pass. */
#define CGP_EMIT_ROOM	 24576
#define CGP_REC_NAME_CUT 1u

struct cgp_rec {
	__u64 id;
	__u64 parent_id; /* 0 for the hierarchy's root */
	__u32 hier;
	__u32 level;
	__u16 name_len;
	__u16 flags;
	__u32 pad;
};
_Static_assert(sizeof(struct cgp_rec) == 32, "cgp_rec ABI");

/* What a watched cgroup's hierarchies hold, one slot per watched cgroup. Each
 * hierarchy's pass fills the fields of the controllers it has; `have` says
 * which were filled by this pass. Units as the kernel keeps them. */
#define CGP_HAVE_CPUACCT  (1u << 0) /* usage/user/sys: v1 cpuacct */
#define CGP_HAVE_BSTAT	  (1u << 1) /* usage/user/sys: v2 base stats */
#define CGP_HAVE_CFS	  (1u << 2) /* throttling counters */
#define CGP_HAVE_MEM	  (1u << 3)
#define CGP_HAVE_PSI	  (1u << 4)
#define CGP_HAVE_QUOTA	  (1u << 5) /* cores limit (quota/period of the tightest ancestor) */
#define CGP_HAVE_MEM_MAX  (1u << 6)
#define CGP_HAVE_CPUSET	  (1u << 7)
#define CGP_HAVE_OOM	  (1u << 8)
#define CGP_HAVE_V1MEMMAX (1u << 9)

struct cgp_acc {
	__u64 usage_ns;
	__u64 user_ns; /* v1: nanoseconds; v2: tick-sampled, scaled against usage */
	__u64 sys_ns;
	__u64 nr_periods;
	__u64 nr_throttled;
	__u64 throttled_ns;
	__u64 mem_pages;
	__u64 oom_kills;
	__u64 psi_ns[6];   /* some/full of io, memory, cpu (the kernel's order) */
	__u64 psi_time_ns; /* when the kernel last updated those totals */
	/* limits, read on the first pass of a slot and when user space asks */
	__u64 quota_milli; /* tightest quota / period of the cgroup and its ancestors, x1000 */
	__u64 mem_max_pages;
	__u32 cpuset_cpus;
	__u32 have;
	__u32 limits_pass; /* pass that read the limits; 0: read them */
	__u32 pass;
	__u32 limits_due; /* this pass reads them, in every hierarchy */
	__u32 pad32;
	__u64 pad[4];
};
_Static_assert(sizeof(struct cgp_acc) == 192, "cgp_acc ABI");

struct cgp_globals {
	__u64 pass;	   /* set by user space before each pass, from 1 */
	__u64 limits_pass; /* read limits when acc.limits_pass is older than this */
	__u64 visited;	   /* cgroups visited, all passes */
	__u64 emitted;	   /* records written for unknown cgroups */
	__u64 flushes;
	__u64 pcpu_pass; /* pass that read the per-CPU offsets */
	__u64 emit_used; /* bytes written by this read of the iterator */
	__u64 emit_room; /* at most (set by user space) */
	__u64 deferred;	 /* new cgroups left for a later pass for lack of room */
	__u64 pad[3];
};

#ifndef __bpf__
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cgroups;
struct cgroup_found;
struct cgpass;

struct cgpass_stats {
	unsigned hierarchies;
	uint64_t passes;
	uint64_t visited; /* cgroups visited by the last pass, all hierarchies */
	unsigned known;	  /* cgroups the pass keeps track of */
	unsigned known_max;
	uint64_t known_full; /* cgroups left unknown for lack of room (last pass) */
	uint64_t deferred;   /* new cgroups left for the next pass (last pass) */
	uint64_t unsafe;     /* cgroups with names that cannot be labels (and below them) */
	uint64_t appeared, vanished;
	uint64_t last_pass_us;
};

/* -EOPNOTSUPP (why says so) when this kernel has no cgroup iterator (6.1+) or
 * the v2 flush; the caller then reads cgroupfs files. max_slots: watched
 * cgroups at most. */
int cgpass_new(struct cgpass **out, struct cgroups *cg, unsigned max_slots, char *why,
	       size_t why_len);
void cgpass_free(struct cgpass **p);
/* One pass over every hierarchy; limits: read the limits of every watched
 * cgroup again. Returns 1 when the populated cgroups changed (new, gone,
 * emptied), 0 when not, or a negative errno. */
int cgpass_run(struct cgpass *p, bool limits);
/* The populated cgroups of the hierarchies that name containers, now (valid
 * until the next run). */
unsigned cgpass_candidates(struct cgpass *p, const struct cgroup_found **out);
/* Points the counters of the cgroup at path (in every hierarchy) at slot,
 * zeroed; slot CGP_NO_SLOT stops them. */
int cgpass_map(struct cgpass *p, const char *path, uint32_t slot);
/* The counters of a slot, as the last pass left them. */
const struct cgp_acc *cgpass_acc(const struct cgpass *p, uint32_t slot);
uint64_t cgpass_pass(const struct cgpass *p);
void cgpass_stats(const struct cgpass *p, struct cgpass_stats *out);
#endif
