/* SPDX-License-Identifier: GPL-2.0-only */
/* timeline: every thread's intervals on CPU, runnable, and off CPU (S/D), with
 * the stack at each switch-out. ABI with timeline.bpf.c. */
#pragma once
#include "filter.h"
#include "sched.h"

enum timeline_iter_mode {
	TL_ITER_SEED = 0,  /* window start: record each thread's state now */
	TL_ITER_CLOSE = 1, /* window end: emit each thread's open interval */
};

#define TL_F_USER_STACK 1u

struct timeline_config {
	u64 window_start_ns; /* CLOCK_MONOTONIC */
	u64 wakeup_bytes;    /* wake user space once this much is queued */
	u32 mode;	     /* enum timeline_iter_mode */
	u32 flags;	     /* TL_F_* */
};

/* A thread's current state, since when, and the stacks it left the CPU with. */
struct tl_thread {
	u64 since;
	u32 state; /* enum sched_st */
	s32 kern_stack_id;
	s32 user_stack_id;
	u32 pad;
};

enum tl_rec_type { TL_REC_INTERVAL = 1 };

/* [start, end): what one thread did; then it does `next`. */
struct tl_interval {
	u32 type; /* enum tl_rec_type */
	u32 tgid;
	u32 pid;
	u16 cpu;
	u8 state; /* enum sched_st */
	u8 next;
	u64 start_ns;
	u64 end_ns;
	s32 kern_stack_id; /* the stack it went off CPU with (on-CPU: at the end) */
	s32 user_stack_id;
	char comm[SCHED_TASK_COMM_LEN];
};

enum timeline_stat {
	TL_STAT_INTERVALS,    /* intervals sent */
	TL_STAT_RB_FULL,      /* intervals lost: ring buffer full */
	TL_STAT_THREADS_FULL, /* state changes lost: thread map full */
	TL_STAT_STACK_LOST,   /* stacks lost: the stack store full (stackstore.bpf.h) */
	TL_STAT_MAX
};

_Static_assert(sizeof(struct timeline_config) == 24, "timeline_config ABI");
_Static_assert(sizeof(struct tl_thread) == 24, "tl_thread ABI");
_Static_assert(sizeof(struct tl_interval) == 56, "tl_interval ABI");
