// SPDX-License-Identifier: GPL-2.0-only
/* Per-thread timeline of the target: each thread's state (on CPU, runnable, S,
 * D, ...) and since when is kept here; every change closes an interval that
 * goes to user space through a batched ring buffer. A task iterator records
 * every thread's state at the window's start and closes the open intervals at
 * its end, so each lane covers the whole window. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "sched.bpf.h"
#include "timeline.h"

#define EFAULT 14

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct tl_thread);
} threads SEC(".maps");

/* max_entries set by user space */
#define STACKSTORE_DEPTH SCHED_MAX_DEPTH
#include "stackstore.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct timeline_config);
} tl_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TL_STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void stat_inc(u32 which)
{
	u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		(*v)++;
}

static __always_inline struct timeline_config *tl_config(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&tl_cfg, &zero);
}

static __always_inline void emit(struct timeline_config *cfg, struct task_struct *task, u32 state,
				 u32 next, u64 start, u64 end, s32 kstack, s32 ustack)
{
	struct tl_interval *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);

	if (!r) {
		stat_inc(TL_STAT_RB_FULL);
		return;
	}
	r->type = TL_REC_INTERVAL;
	r->tgid = BPF_CORE_READ(task, tgid);
	r->pid = BPF_CORE_READ(task, pid);
	r->cpu = (u16)bpf_get_smp_processor_id();
	r->state = (u8)state;
	r->next = (u8)next;
	r->start_ns = start;
	r->end_ns = end;
	r->kern_stack_id = kstack;
	r->user_stack_id = ustack;
	BPF_CORE_READ_STR_INTO(&r->comm, task, comm);
	stat_inc(TL_STAT_INTERVALS);
	bpf_ringbuf_submit(r, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg->wakeup_bytes
				      ? BPF_RB_FORCE_WAKEUP
				      : BPF_RB_NO_WAKEUP);
}

static __always_inline void set_state(u32 pid, u64 since, u32 state, s32 kstack, s32 ustack)
{
	struct tl_thread t = {
		.since = since, .state = state, .kern_stack_id = kstack, .user_stack_id = ustack};

	if (bpf_map_update_elem(&threads, &pid, &t, BPF_ANY))
		stat_inc(TL_STAT_THREADS_FULL);
}

static __always_inline s32 stack_id(void *ctx, u64 flags)
{
	s32 id = stack_get(ctx, flags);

	if (id < 0 && id != -EFAULT)
		stat_inc(TL_STAT_STACK_LOST);
	return id;
}

static __always_inline int on_switch(void *ctx, bool preempt, struct task_struct *prev,
				     struct task_struct *next)
{
	struct capture_filter *f = get_filter();
	struct timeline_config *cfg = tl_config();
	struct tl_thread *t;
	u32 pid;
	u64 now;

	if (!f || !cfg)
		return 0;
	now = bpf_ktime_get_ns();

	/* prev leaves the CPU: its on-CPU interval ends, with its stacks */
	pid = BPF_CORE_READ(prev, pid);
	t = pid ? bpf_map_lookup_elem(&threads, &pid) : NULL;
	if (pid && (t || task_in_target(f, prev))) {
		u32 state = switch_out_state(preempt, task_state(prev));
		u64 since = t ? t->since : cfg->window_start_ns;
		s32 k = stack_id(ctx, 0);
		s32 u = (cfg->flags & TL_F_USER_STACK) ? stack_id(ctx, BPF_F_USER_STACK) : -1;

		emit(cfg, prev, SCHED_ST_ON_CPU, state, since, now, k, u);
		if (state == SCHED_ST_DEAD)
			bpf_map_delete_elem(&threads, &pid);
		else
			set_state(pid, now, state, k, u);
	}

	/* next gets the CPU: its wait (or a sleep whose wakeup we missed) ends */
	pid = BPF_CORE_READ(next, pid);
	t = pid ? bpf_map_lookup_elem(&threads, &pid) : NULL;
	if (t) {
		emit(cfg, next, t->state, SCHED_ST_ON_CPU, t->since, now, t->kern_stack_id,
		     t->user_stack_id);
		set_state(pid, now, SCHED_ST_ON_CPU, -1, -1);
	} else if (pid && task_in_target(f, next)) {
		emit(cfg, next, SCHED_ST_RUNNABLE, SCHED_ST_ON_CPU, cfg->window_start_ns, now, -1,
		     -1);
		set_state(pid, now, SCHED_ST_ON_CPU, -1, -1);
	}
	return 0;
}

static __always_inline int on_wakeup(struct task_struct *p, bool new_task)
{
	struct capture_filter *f = get_filter();
	struct timeline_config *cfg = tl_config();
	u32 pid = BPF_CORE_READ(p, pid);
	struct tl_thread *t = bpf_map_lookup_elem(&threads, &pid);
	u64 now;

	if (!f || !cfg)
		return 0;
	now = bpf_ktime_get_ns();
	if (!t) {
		if (!task_in_target(f, p))
			return 0;
		/* a new thread starts here; an old one slept since before the window */
		if (!new_task)
			emit(cfg, p, SCHED_ST_UNKNOWN, SCHED_ST_RUNNABLE, cfg->window_start_ns, now,
			     -1, -1);
		set_state(pid, now, SCHED_ST_RUNNABLE, -1, -1);
		return 0;
	}
	if (t->state == SCHED_ST_ON_CPU || t->state == SCHED_ST_RUNNABLE)
		return 0;
	emit(cfg, p, t->state, SCHED_ST_RUNNABLE, t->since, now, t->kern_stack_id,
	     t->user_stack_id);
	set_state(pid, now, SCHED_ST_RUNNABLE, -1, -1);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(timeline_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(ctx, preempt, prev, next);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(timeline_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(ctx, preempt, prev, next);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(timeline_wakeup, struct task_struct *p)
{
	return on_wakeup(p, false);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(timeline_wakeup_raw, struct task_struct *p)
{
	return on_wakeup(p, false);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(timeline_wakeup_new, struct task_struct *p)
{
	return on_wakeup(p, true);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(timeline_wakeup_new_raw, struct task_struct *p)
{
	return on_wakeup(p, true);
}

/* Window start: each thread's state now. Window end: each open interval. */
SEC("iter/task")
int timeline_iter(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct capture_filter *f = get_filter();
	struct timeline_config *cfg = tl_config();
	struct tl_thread *t;
	u32 pid;

	if (!task || !f || !cfg || !task_in_target(f, task))
		return 0;
	pid = BPF_CORE_READ(task, pid);
	t = bpf_map_lookup_elem(&threads, &pid);
	if (cfg->mode == TL_ITER_CLOSE) {
		if (t) {
			emit(cfg, task, t->state, SCHED_ST_UNKNOWN, t->since, bpf_ktime_get_ns(),
			     t->kern_stack_id, t->user_stack_id);
			bpf_map_delete_elem(&threads, &pid);
		}
		return 0;
	}
	if (!t) {
		u32 state = BPF_CORE_READ(task, on_cpu) ? SCHED_ST_ON_CPU
							: switch_out_state(false, task_state(task));
		struct tl_thread nt = {.since = cfg->window_start_ns,
				       .state = state,
				       .kern_stack_id = -1,
				       .user_stack_id = -1};

		/* events since the window opened win over this guess */
		bpf_map_update_elem(&threads, &pid, &nt, BPF_NOEXIST);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
