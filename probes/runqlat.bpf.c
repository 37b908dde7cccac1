// SPDX-License-Identifier: GPL-2.0-only
/*
 * Opt-in always-on run-queue latency (watch.runq_hooks): stamps a task when it
 * becomes runnable (wakeup, new task, preempted at a switch) and measures the
 * wait when it gets a CPU, into a per-CPU histogram. Nothing goes to user
 * space per event. tp_btf programs keep the stamp in task-local storage; the
 * raw_tp fallback (kernels without tp_btf) keys a hash by pid.
 */
#include "core_fixes.bpf.h"
#include <bpf/bpf_tracing.h>
#include "runqlat.h"

char LICENSE[] SEC("license") = "GPL";

#define TASK_RUNNING_ 0

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} queued_at SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u64);
} queued_at_pid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct runq_hist);
} hist SEC(".maps");

static __always_inline struct runq_hist *this_cpu_hist(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&hist, &zero);
}

static __always_inline void record(__u64 queued)
{
	struct runq_hist *h = this_cpu_hist();
	__u64 now = bpf_ktime_get_ns();
	unsigned int b;

	if (!h || now < queued)
		return;
	b = lathist_bucket(now - queued);
	barrier_var(b); /* keep the bound check the verifier needs */
	if (b >= LATHIST_BUCKETS)
		return;
	h->slots[b]++;
	h->events++;
}

static __always_inline void dropped(void)
{
	struct runq_hist *h = this_cpu_hist();

	if (h)
		h->drops++;
}

/* ---- tp_btf: task-local storage ---- */

static __always_inline void stamp_task(struct task_struct *p)
{
	__u64 *ts;

	if (!BPF_CORE_READ(p, pid))
		return; /* the idle task does not queue */
	ts = bpf_task_storage_get(&queued_at, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (ts)
		*ts = bpf_ktime_get_ns();
	else
		dropped();
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(runq_wakeup, struct task_struct *p)
{
	stamp_task(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(runq_wakeup_new, struct task_struct *p)
{
	stamp_task(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(runq_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 *ts;

	/* preempted (or yielding) while runnable: it queues again */
	if (preempt || task_state(prev) == TASK_RUNNING_)
		stamp_task(prev);
	ts = bpf_task_storage_get(&queued_at, next, 0, 0);
	if (ts && *ts) {
		record(*ts);
		*ts = 0;
	}
	return 0;
}

/* ---- raw_tp fallback: a pid-keyed hash ---- */

static __always_inline void stamp_pid(struct task_struct *p)
{
	__u32 pid = BPF_CORE_READ(p, pid);
	__u64 now = bpf_ktime_get_ns();

	if (pid && bpf_map_update_elem(&queued_at_pid, &pid, &now, BPF_ANY))
		dropped();
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(runq_wakeup_raw, struct task_struct *p)
{
	stamp_pid(p);
	return 0;
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(runq_wakeup_new_raw, struct task_struct *p)
{
	stamp_pid(p);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(runq_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 pid = BPF_CORE_READ(next, pid);
	__u64 *ts;

	if (preempt || task_state(prev) == TASK_RUNNING_)
		stamp_pid(prev);
	ts = bpf_map_lookup_elem(&queued_at_pid, &pid);
	if (ts) {
		record(*ts);
		bpf_map_delete_elem(&queued_at_pid, &pid);
	}
	return 0;
}
