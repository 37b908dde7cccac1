/* SPDX-License-Identifier: GPL-2.0-only */
/* Scheduler helpers shared by the offcpu, dstate, runq and timeline programs:
 * task states as the captures classify them, the target check, and the
 * per-CPU run queue. */
#pragma once
#include "filter.bpf.h"
#include "sched.h"

/* include/linux/sched.h; the values are ABI (they show in /proc and tracepoints) */
#define TASK_INTERRUPTIBLE_   0x0001
#define TASK_UNINTERRUPTIBLE_ 0x0002
#define TASK_STOPPED_	      0x0004
#define TASK_TRACED_	      0x0008
#define EXIT_DEAD_	      0x0010
#define EXIT_ZOMBIE_	      0x0020
#define TASK_PARKED_	      0x0040
#define TASK_DEAD_	      0x0080
#define TASK_NOLOAD_	      0x0400
#define TASK_RTLOCK_WAIT_     0x1000
#define TASK_FROZEN_	      0x8000

/*
 * What a task switched out at sched_switch is now doing. A preempted task is
 * still runnable whatever its state says (the kernel reports it as R+ too).
 */
static __always_inline u32 switch_out_state(bool preempt, unsigned int state)
{
	if (preempt || state == 0)
		return SCHED_ST_RUNNABLE;
	if (state & (TASK_DEAD_ | EXIT_DEAD_ | EXIT_ZOMBIE_))
		return SCHED_ST_DEAD;
	if (state & TASK_NOLOAD_)
		return SCHED_ST_IDLE; /* TASK_IDLE: an idle kernel thread, not in the load */
	if (state & (TASK_UNINTERRUPTIBLE_ | TASK_RTLOCK_WAIT_))
		return SCHED_ST_DISK;
	if (state & TASK_INTERRUPTIBLE_)
		return SCHED_ST_SLEEP;
	return SCHED_ST_OTHER; /* stopped, traced, parked, frozen */
}

/* The agent's own process, left out of the target unless it is the target
 * (its reading and writing while capturing is not what the SRE looks for). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} sched_self SEC(".maps");

/* Is the task part of the capture's target? The cgroup is only looked up when
 * the filter needs it: this runs on the scheduler's hot path. */
static __always_inline bool task_in_target(struct capture_filter *f, struct task_struct *task)
{
	u32 zero = 0, tgid, *self = bpf_map_lookup_elem(&sched_self, &zero);

	tgid = BPF_CORE_READ(task, tgid);
	if (self && *self && tgid == *self)
		return false;
	if (f->mode == FILTER_ALL)
		return true;
	if (f->mode == FILTER_TGID)
		return tgid == f->tgid;
	return filter_match(f, task, tgid, task_cgid(f, task));
}

/*
 * The run queue a task is on (or last was on). The per-CPU `runqueues`
 * symbol would be simpler, but kernels without CONFIG_KALLSYMS_ALL cannot
 * resolve it; the task's CFS run queue points back to its rq whenever group
 * scheduling is built in (every distribution kernel).
 */
static __always_inline struct rq *task_rq_of(struct task_struct *t)
{
	struct cfs_rq *cfs;

	if (!bpf_core_field_exists(struct cfs_rq, rq))
		return NULL;
	cfs = BPF_CORE_READ(t, se.cfs_rq);
	return cfs ? BPF_CORE_READ(cfs, rq) : NULL;
}

/* Tasks runnable on this CPU now, the running one included. */
static __always_inline u32 this_cpu_nr_running(void)
{
	struct rq *rq = task_rq_of((struct task_struct *)bpf_get_current_task());

	return rq ? BPF_CORE_READ(rq, nr_running) : 0;
}

/* This CPU's run-queue clock (sched_clock, ns): the clock of sched_info
 * times. Falls back to the monotonic clock, which runs at the same rate. */
static __always_inline u64 this_cpu_rq_clock(void)
{
	struct rq *rq = task_rq_of((struct task_struct *)bpf_get_current_task());
	u64 clock = rq ? BPF_CORE_READ(rq, clock) : 0;

	return clock ? clock : bpf_ktime_get_ns();
}
