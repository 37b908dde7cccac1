/* SPDX-License-Identifier: GPL-2.0-only */
/* runq: run-queue waits (wakeup or preemption to running) above a threshold,
 * with the tasks that held the CPU meanwhile. ABI with runq.bpf.c. */
#pragma once
#include "filter.h"
#include "sched.h"

#define RUNQ_HIST_SLOTS	  16 /* switches remembered per CPU (a power of two) */
#define RUNQ_MAX_CULPRITS 4  /* distinct tasks named per wait */
#define RUNQ_WAIT_SLOTS	  32 /* log2 microsecond buckets of every wait */
#define RUNQ_QLEN_SLOTS	  32 /* run-queue length buckets; the last is "31 or more" */

struct runq_config {
	u64 threshold_ns; /* waits at least this long become events */
	u64 wakeup_bytes; /* wake user space once this much is queued */
};

enum runq_reason { RUNQ_WAKEUP = 1, RUNQ_WAKEUP_NEW, RUNQ_PREEMPTED };

/* A task of the target became runnable: when, and why. */
struct runq_enqueue {
	u64 ts;
	u32 reason; /* enum runq_reason */
	u32 pad;
};

/* Who a CPU switched to, and when. */
struct runq_slot {
	u64 ts;
	u32 pid;
	u32 tgid;
	char comm[SCHED_TASK_COMM_LEN];
};

struct runq_cpu_hist {
	u64 head; /* next slot to write */
	struct runq_slot slots[RUNQ_HIST_SLOTS];
};

struct runq_culprit {
	u32 pid;
	u32 tgid;
	u64 ns; /* time it held the CPU during the wait */
	char comm[SCHED_TASK_COMM_LEN];
};

enum runq_rec_type { RUNQ_REC_WAIT = 1 };

/* A wait above the threshold, sent when the victim finally runs. */
struct runq_event {
	u32 type; /* enum runq_rec_type */
	u32 cpu;
	u32 pid;
	u32 tgid;
	u64 cgroup_id;
	u64 wait_ns;
	u64 ts;		/* when it got the CPU (CLOCK_MONOTONIC) */
	u32 reason;	/* enum runq_reason */
	u32 nr_running; /* tasks runnable on the CPU then, itself included */
	u32 nculprits;
	u32 complete; /* the CPU's history reached back to the wakeup */
	char comm[SCHED_TASK_COMM_LEN];
	u64 other_ns; /* CPU time of tasks beyond the named culprits */
	struct runq_culprit culprits[RUNQ_MAX_CULPRITS];
};

enum runq_stat {
	RUNQ_STAT_WAITS,    /* waits measured (any length) */
	RUNQ_STAT_EVENTS,   /* waits above the threshold sent */
	RUNQ_STAT_RB_FULL,  /* events lost: ring buffer full */
	RUNQ_STAT_ENQ_FULL, /* waits lost: enqueue map full */
	RUNQ_STAT_QLEN,	    /* run-queue length samples */
	RUNQ_STAT_MAX
};

_Static_assert(sizeof(struct runq_enqueue) == 16, "runq_enqueue ABI");
_Static_assert(sizeof(struct runq_slot) == 32, "runq_slot ABI");
_Static_assert(sizeof(struct runq_culprit) == 32, "runq_culprit ABI");
_Static_assert(sizeof(struct runq_event) == 80 + RUNQ_MAX_CULPRITS * 32, "runq_event ABI");
