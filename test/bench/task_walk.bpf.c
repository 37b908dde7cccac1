// SPDX-License-Identifier: GPL-2.0-only
/* Benchmark floor of the task pass: one program run walks every task with the
 * open-coded task iterator (Linux 6.7+, as taskwatch_walk does) and reads
 * what the variant says, nothing more. What the walk alone costs per thread
 * bounds what any change to what the pass reads can save. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum { WALK_ONLY, WALK_SCHED_INFO, WALK_BOTH, WALK_STATE, WALK_PROCS };

extern int bpf_iter_task_new(struct bpf_iter_task *it, struct task_struct *task,
			     unsigned int flags) __weak __ksym;
extern struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it) __weak __ksym;
extern void bpf_iter_task_destroy(struct bpf_iter_task *it) __weak __ksym;

const volatile int variant = WALK_ONLY;
__u64 tasks, sink;

SEC("iter/task")
int task_walk(struct bpf_iter__task *ctx)
{
	struct bpf_iter_task it;
	struct task_struct *t;
	__u64 n = 0, s = 0;

	if (!ctx->task) /* attached to one task: one run per read */
		return 0;
	bpf_iter_task_new(&it, NULL,
			  variant == WALK_PROCS ? BPF_TASK_ITER_ALL_PROCS
						: BPF_TASK_ITER_ALL_THREADS);
	while ((t = bpf_iter_task_next(&it))) {
		n++;
		/* the pass's idle test: its scheduler statistics (beside the
		 * task list) and its state (the task's first cache line) */
		if (variant == WALK_SCHED_INFO || variant == WALK_BOTH)
			s += t->sched_info.last_arrival + t->sched_info.last_queued;
		if (variant == WALK_STATE || variant == WALK_BOTH)
			s += t->__state;
	}
	bpf_iter_task_destroy(&it);
	tasks = n;
	sink = s; /* keeps the loads */
	return 0;
}
