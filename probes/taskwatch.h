/* SPDX-License-Identifier: GPL-2.0-only */
/* ABI of the task-iterator watcher (taskwatch.bpf.c <-> taskwatch.c). */
#pragma once
#ifndef __bpf__
#include <linux/types.h>
#endif

#define TW_MAX_LEVELS 12 /* cgroup ancestors a task's numbers are added to */
#define TW_NO_SLOT    0xffffffffu
/* bounds of the pid-keyed per-task hash (kernels without task storage) */
#define TW_PIDMAP_MIN 8192
#define TW_PIDMAP_MAX 131072
/* bounds of the walk's per-task table (entries, powers of two) */
#define TW_TABLE_MIN 8192
#define TW_TABLE_MAX 262144
/* free entries an LRU hash's per-CPU list may hold back (the kernel's
 * LOCAL_FREE_TARGET, kernel/bpf/bpf_lru_list.c) */
#define TW_LRU_LOCAL_FREE 128

/* What one pass found, per CPU, per watched cgroup, and for the host. */
struct tw_acc {
	__u64 run_delay_ns;  /* run-queue wait completed since the last pass */
	__u64 timeslices;    /* times tasks got a CPU since the last pass */
	__u64 runq_max_ns;   /* longest wait: finished this interval or going on now */
	__u64 waiting_tasks; /* runnable, queued, not running, now */
	__u64 dstate_tasks;  /* in uninterruptible sleep now (TASK_NOLOAD excluded) */
	__u64 dstate_max_ns; /* longest current uninterruptible sleep */
	__u64 reclaim_ns;    /* direct reclaim stall since the last pass (delay accounting) */
	__u64 pad;
};
_Static_assert(sizeof(struct tw_acc) == 64, "tw_acc ABI");

/* Shared with user space in .bss: user space sets the first three fields
 * before each pass and reads the counters after it. */
struct tw_globals {
	__u64 pass;	    /* pass number, from 1 */
	__u64 prev_pass_ns; /* CLOCK_MONOTONIC start of the previous pass, 0 before */
	__u64 delayacct;    /* delay accounting is on: read reclaim stalls */
	__u64 tasks;	    /* tasks visited this pass */
	__u64 skipped;	    /* of them, idle since the previous pass: not looked at closer */
	__u64 storage_fail; /* tasks without per-task state (allocation failed) */
	__u64 cpu_overflow; /* tasks on CPUs beyond the per-CPU array */
	/* the run-queue clock of the CPU running the pass, at its first task */
	__u64 clock_pass, cur_clock, prev_clock;
	__u64 slot_gen; /* changes whenever the cgroup slot map does, from 1 */
	/* tasks moved between cgroups (the migration hooks; user space bumps
	 * it every pass without them): a busy task's kept slot holds while
	 * slot_gen + cg_moves (the cgroup epoch) is what it was */
	__u64 cg_moves;
	__u64 slot_epoch; /* the cgroup epoch the slot map last changed at */
	/* tasks alive before the previous pass whose state the pid-keyed hash
	 * or the walk's table no longer held (it is full) */
	__u64 state_lost;
	struct tw_acc host;
};
_Static_assert(sizeof(struct tw_globals) == 176, "tw_globals ABI");

/* Per-task state between passes (task-local storage, the pid-keyed hash
 * before 5.11, or the walk's table): one cache line. */
struct tw_task {
	__u64 addr; /* the walk's table: the task's address; 0: a free entry */
	__u64 run_delay;
	__u64 max_run_delay;
	__u64 reclaim_ns;
	__u64 d_start_ns; /* CLOCK_MONOTONIC estimate of when its D episode began */
	__u32 pcount;	  /* low 32 bits: deltas are taken modulo 2^32 */
	__u32 d_switches; /* context switches + 1 then (low 32 bits, never 0); 0: not in D */
	__u32 start;	  /* low 32 bits of its start time: tells a reused id or address */
	/* its nearest watched cgroup's slot (TW_NO_SLOT16: none), found for the
	 * cgroup whose id's low 32 bits are cg_id under cgroup epoch cg_epoch
	 * (slot_gen + cg_moves; 0: never) */
	__u32 cg_epoch;
	__u32 cg_id;
	__u16 cg_slot;
	__u16 seen; /* a pass has set its baseline */
};
_Static_assert(sizeof(struct tw_task) == 64, "tw_task ABI");
#define TW_NO_SLOT16 0xffffu
