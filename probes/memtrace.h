/* SPDX-License-Identifier: GPL-2.0-only */
/* memtrace: page faults per process, and the time processes stall in direct
 * reclaim, memory-cgroup reclaim and direct compaction, with the stacks that
 * stalled. ABI with memtrace.bpf.c. RSS growth and cgroup memory events come
 * from procfs and cgroupfs (memtrace.c). */
#pragma once
#include "filter.h"

#define MEMTRACE_STACK_DEPTH 127
#define MEMTRACE_COMM_LEN    16

enum mem_stall_type {
	MEM_STALL_DIRECT_RECLAIM = 0, /* the page allocator reclaiming for this task */
	MEM_STALL_MEMCG_RECLAIM = 1,  /* reclaim to stay under the cgroup's memory limit */
	MEM_STALL_COMPACTION = 2,     /* direct compaction for a higher-order allocation */
	MEM_STALL_TYPES
};

/* per process, per CPU */
struct mem_faults {
	u64 user;   /* exceptions:page_fault_user */
	u64 kernel; /* exceptions:page_fault_kernel (faults on user memory from the kernel) */
};

struct mem_proc_info {
	u64 cgroup_id;
	char comm[MEMTRACE_COMM_LEN];
};

struct mem_stall_start_key {
	u32 pid;
	u32 type; /* enum mem_stall_type */
};

struct mem_stall_start {
	u64 ts;
	s32 kern_stack_id;
	s32 user_stack_id;
};

struct mem_stall_key {
	u32 tgid;
	u32 pid;
	s32 kern_stack_id;
	s32 user_stack_id;
	u32 type;
	u32 pad;
	u64 cgroup_id;
	char comm[MEMTRACE_COMM_LEN];
};

struct mem_stall_val {
	u64 count;
	u64 total_ns;
	u64 max_ns;
};

enum mem_stat {
	MEM_STAT_FAULTS,	   /* faults counted */
	MEM_STAT_FAULT_KEYS_FULL,  /* faults lost: process map full */
	MEM_STAT_STALLS,	   /* stalls timed */
	MEM_STAT_STALLS_FULL,	   /* stalls lost: stack-key map full */
	MEM_STAT_STALL_START_FULL, /* stalls not timed: start map full */
	MEM_STAT_STACK_LOST,	   /* stacks lost: the stack store full (stackstore.bpf.h) */
	MEM_STAT_PROCS_FULL,	   /* processes left unnamed: process map full */
	MEM_STAT_MAX
};

_Static_assert(sizeof(struct mem_faults) == 16, "mem_faults ABI");
_Static_assert(sizeof(struct mem_proc_info) == 24, "mem_proc_info ABI");
_Static_assert(sizeof(struct mem_stall_start_key) == 8, "mem_stall_start_key ABI");
_Static_assert(sizeof(struct mem_stall_start) == 16, "mem_stall_start ABI");
_Static_assert(sizeof(struct mem_stall_key) == 48, "mem_stall_key ABI");
_Static_assert(sizeof(struct mem_stall_val) == 24, "mem_stall_val ABI");
