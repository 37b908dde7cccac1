// SPDX-License-Identifier: GPL-2.0-only
/* Feature probes: each program only counts that it ran (and the ring-buffer one
 * sends a record). User space enables one program per load. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "features.h"

/* only the probing process counts: other tasks' events are not evidence */
const volatile u32 target_tgid = 0;

u64 hits[FHIT_MAX];
u64 iter_tasks;
u64 iter_stacks;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ring SEC(".maps");

static __always_inline bool mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(feat_tp_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	if (BPF_CORE_READ(prev, tgid) == target_tgid)
		__sync_fetch_and_add(&hits[FHIT_TP_BTF], 1);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(feat_raw_tp, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	if (BPF_CORE_READ(prev, tgid) == target_tgid)
		__sync_fetch_and_add(&hits[FHIT_RAW_TP], 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int feat_tracepoint(void *ctx)
{
	if (mine())
		__sync_fetch_and_add(&hits[FHIT_TRACEPOINT], 1);
	return 0;
}

/* the target function is chosen at run time (bpf_program__attach_kprobe) */
SEC("kprobe")
int feat_kprobe(void *ctx)
{
	if (mine())
		__sync_fetch_and_add(&hits[FHIT_KPROBE], 1);
	return 0;
}

/* the target is set before load (bpf_program__set_attach_target) */
SEC("fentry/hrtimer_nanosleep")
int feat_fentry(void *ctx)
{
	if (mine())
		__sync_fetch_and_add(&hits[FHIT_FENTRY], 1);
	return 0;
}

SEC("perf_event")
int feat_perf_event(void *ctx)
{
	__sync_fetch_and_add(&hits[FHIT_PERF_EVENT], 1);
	return 0;
}

SEC("iter/task")
int feat_task_iter(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	u64 stack[8];

	if (!task)
		return 0;
	__sync_fetch_and_add(&hits[FHIT_TASK_ITER], 1);
	iter_tasks++;
	/* D-state snapshots need the stack of a task that is not running */
	if (bpf_get_task_stack(task, stack, sizeof(stack), 0) > 0)
		iter_stacks++;
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(feat_ringbuf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct feature_record *r;

	if (BPF_CORE_READ(prev, tgid) != target_tgid)
		return 0;
	r = bpf_ringbuf_reserve(&ring, sizeof(*r), 0);
	if (!r)
		return 0;
	r->type = FEATURE_RECORD_HELLO;
	r->pid = target_tgid;
	r->magic = FEATURE_MAGIC;
	bpf_ringbuf_submit(r, 0);
	__sync_fetch_and_add(&hits[FHIT_RINGBUF], 1);
	return 0;
}

SEC("uprobe")
int feat_uprobe(void *ctx)
{
	if (mine())
		__sync_fetch_and_add(&hits[FHIT_UPROBE], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
