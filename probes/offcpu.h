/* SPDX-License-Identifier: GPL-2.0-only */
/* offcpu: blocked time by (thread, state, kernel + user stack), and who woke the
 * thread. ABI with offcpu.bpf.c. */
#pragma once
#include "filter.h"
#include "sched.h"

struct offcpu_config {
	u64 min_block_ns;   /* shorter blocks are counted, not recorded by stack */
	u32 flags;	    /* OFFCPU_F_* */
	u32 walks_per_tick; /* stack walks per CPU per OFFCPU_TICK_NS; 0: no limit */
};

/* The walk budget's accounting period. Over budget, a blocking thread reuses
 * the stacks walked at its previous block if it blocks the same way from the
 * same place (a thread in a switch storm does, again and again) and they are
 * younger than OFFCPU_REWALK_NS, and a wakeup names its waker without a stack: the
 * cost of a storm stays that of the bookkeeping, not of unwinding, while a
 * one-off block (often the interesting one) still gets its own stacks. */
#define OFFCPU_TICK_NS	 10000000ull
#define OFFCPU_REWALK_NS 100000000ull

struct offcpu_budget {
	u64 tick;  /* now / OFFCPU_TICK_NS */
	u32 walks; /* in this tick */
	u32 pad;
};

/* A thread's stacks from its last walked block, and where it blocked then:
 * reused only for a block in the same state from the same user call site
 * (user instruction and stack pointer). */
struct offcpu_last {
	u64 walked_ns;
	u64 user_ip;
	u64 user_sp;
	s32 kern_stack_id;
	s32 user_stack_id;
	u32 state;
	u32 pad;
	u64 ustack_seq; /* DWARF user stack record of that block (ustack_abi.h); 0: none */
};

#define OFFCPU_F_WAKER 1u /* record who woke each blocked thread */
/* Waker stacks are kept inline (not in the stack map), short: a wakeup from an
 * interrupt carries the interrupted task's frames below it, which would make
 * every such stack distinct and crowd out the others. */
#define OFFCPU_WAKER_DEPTH  20
#define OFFCPU_F_USER_STACK 2u /* record user stacks too */

/* A thread switched out blocked: when and where, kept until it runs again. */
struct offcpu_start {
	u64 ts;
	u64 cgroup_id;
	s32 kern_stack_id;
	s32 user_stack_id;
	u32 state; /* enum sched_st */
	u32 tgid;  /* so a thread still blocked at the window's end can be named */
	char comm[SCHED_TASK_COMM_LEN];
	/* filled by sched_waking, which runs in the waker's context */
	u32 waker_tgid;
	u32 waker_pid;
	u32 waker_nframes; /* 0: no wakeup seen */
	char waker_comm[SCHED_TASK_COMM_LEN];
	u64 waker_frames[OFFCPU_WAKER_DEPTH];
	/* DWARF user stack: the record user space unwinds (ustack_abi.h); 0: none,
	 * user_stack_id holds the frame-pointer walk if any */
	u64 ustack_seq;
};

struct offcpu_key {
	u32 tgid;
	u32 pid;
	u64 cgroup_id;
	s32 user_stack_id; /* < 0: none (kernel thread, not asked) or lost */
	s32 kern_stack_id;
	u32 state;
	u32 pad;
	char comm[SCHED_TASK_COMM_LEN];
};

/* Blocks shorter than min_block, per thread and state: no stacks, but a thread
 * that blocks 10,000 times for 400 us still ranks by its 4 s. */
struct offcpu_thread_key {
	u32 tgid;
	u32 pid;
	u64 cgroup_id;
	u32 state;
	u32 pad;
	char comm[SCHED_TASK_COMM_LEN];
};

struct offcpu_val {
	u64 total_ns;
	u64 count;
	u64 max_ns;
};

/* (blocked thread, its kernel stack, the waker and its kernel stack) */
struct offcpu_waker_key {
	u32 tgid;
	u32 pid;
	u32 waker_tgid;
	u32 waker_pid;
	s32 kern_stack_id;
	u32 waker_nframes;
	u32 state;
	u32 pad;
	char comm[SCHED_TASK_COMM_LEN];
	char waker_comm[SCHED_TASK_COMM_LEN];
	u64 waker_frames[OFFCPU_WAKER_DEPTH]; /* leaf first, zero-padded */
};

enum offcpu_stat {
	OFFCPU_STAT_BLOCKS,	    /* blocks recorded by stack */
	OFFCPU_STAT_SHORT,	    /* blocks under min_block, recorded by thread only */
	OFFCPU_STAT_START_FULL,	    /* switch-outs lost: start map full */
	OFFCPU_STAT_KEYS_FULL,	    /* blocks lost: counts map full */
	OFFCPU_STAT_WAKERS_FULL,    /* waker records lost: wakers map full */
	OFFCPU_STAT_STACK_LOST,	    /* stacks lost: the stack store full (stackstore.bpf.h) */
	OFFCPU_STAT_REUSED,	    /* over the walk budget: the thread's previous stacks */
	OFFCPU_STAT_WAKER_UNWALKED, /* over the walk budget: waker named, no stack */
	OFFCPU_STAT_SHORT_FULL,	    /* short blocks lost: short_time map full */
	OFFCPU_STAT_MAX
};

_Static_assert(sizeof(struct offcpu_config) == 16, "offcpu_config ABI");
_Static_assert(sizeof(struct offcpu_start) == 88 + OFFCPU_WAKER_DEPTH * 8, "offcpu_start ABI");
_Static_assert(sizeof(struct offcpu_key) == 48, "offcpu_key ABI");
_Static_assert(sizeof(struct offcpu_thread_key) == 40, "offcpu_thread_key ABI");
_Static_assert(sizeof(struct offcpu_val) == 24, "offcpu_val ABI");
_Static_assert(sizeof(struct offcpu_waker_key) == 64 + OFFCPU_WAKER_DEPTH * 8,
	       "offcpu_waker_key ABI");
