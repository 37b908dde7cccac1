/* SPDX-License-Identifier: GPL-2.0-only */
/* Task states as the scheduler captures (offcpu, dstate, runq, timeline) report
 * them. ABI between their BPF programs and user space. */
#pragma once
#ifndef __VMLINUX_H__
#include <linux/types.h>
typedef __u8 u8;
typedef __u16 u16;
#endif

enum sched_st {
	SCHED_ST_UNKNOWN = 0,
	SCHED_ST_ON_CPU,   /* running */
	SCHED_ST_RUNNABLE, /* R: woken or preempted, waiting in the run queue */
	SCHED_ST_SLEEP,	   /* S: interruptible sleep */
	SCHED_ST_DISK,	   /* D: uninterruptible sleep */
	SCHED_ST_IDLE,	   /* I: TASK_IDLE kernel thread (D that does not count in the load) */
	SCHED_ST_OTHER,	   /* T/t/P: stopped, traced, parked, frozen */
	SCHED_ST_DEAD,	   /* X: exited */
	SCHED_ST_MAX
};

#define SCHED_TASK_COMM_LEN 16
#define SCHED_MAX_DEPTH	    127 /* stack frames, each side */
