/* SPDX-License-Identifier: GPL-2.0-only */
/* dstate: tasks in uninterruptible sleep, found by a task iterator. ABI with
 * dstate.bpf.c. */
#pragma once
#include "filter.h"
#include "sched.h"

struct dstate_config {
	u64 threshold_ns; /* tasks blocked for less are not reported */
};

enum dstate_rec_type { DSTATE_REC_TASK = 1 };

/* One task in D state, written by the iterator into its seq file. */
struct dstate_rec {
	u32 type; /* enum dstate_rec_type */
	u32 tgid;
	u32 pid;
	u32 state; /* task->__state */
	u64 cgroup_id;
	u64 blocked_ns;	  /* run-queue clock now - sched_info.last_arrival */
	u64 last_arrival; /* identifies this sleep: unchanged while the task stays off CPU */
	char comm[SCHED_TASK_COMM_LEN];
	s32 nframes; /* kernel frames, or a negative errno from bpf_get_task_stack */
	u32 pad;
	u64 frames[SCHED_MAX_DEPTH];
};

enum dstate_stat {
	DSTATE_STAT_SEEN,	/* tasks in D state seen (target, any duration) */
	DSTATE_STAT_SHORT,	/* ... blocked for less than the threshold */
	DSTATE_STAT_STACK_LOST, /* stacks bpf_get_task_stack could not take */
	DSTATE_STAT_WRITE_LOST, /* records the seq file refused */
	DSTATE_STAT_MAX
};

_Static_assert(sizeof(struct dstate_config) == 8, "dstate_config ABI");
_Static_assert(sizeof(struct dstate_rec) == 64 + SCHED_MAX_DEPTH * 8, "dstate_rec ABI");
