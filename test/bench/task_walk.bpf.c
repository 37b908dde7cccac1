// SPDX-License-Identifier: GPL-2.0-only
/* Benchmark floor of the task pass: one program run walks every task with the
 * open-coded task iterator (Linux 6.7+, as taskwatch_walk does) and reads
 * what the variant says, nothing more. What the walk alone costs per thread
 * bounds what any change to what the pass reads can save. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum { WALK_ONLY, WALK_SCHED_INFO, WALK_BOTH, WALK_STATE, WALK_PROCS, WALK_INTERLEAVED };

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

extern struct task_struct *bpf_task_from_pid(s32 pid) __weak __ksym;
extern void bpf_task_release(struct task_struct *p) __weak __ksym;

#define STEP(it)                                                                                   \
	if ((t = bpf_iter_task_next(&it))) {                                                       \
		n++;                                                                               \
		s += t->sched_info.last_arrival + t->__state;                                      \
	}

#define WALK1(r)                                                                                   \
	if (r) {                                                                                   \
		bpf_iter_task_new(&a, r, BPF_TASK_ITER_PROC_THREADS);                              \
		while ((t = bpf_iter_task_next(&a))) {                                             \
			n++;                                                                       \
			s += t->sched_info.last_arrival + t->__state;                              \
		}                                                                                  \
		bpf_iter_task_destroy(&a);                                                         \
	}

/* Four processes' thread lists walked in step: each list is a chain of
 * dependent loads (one cache miss a thread), four chains give the CPU four
 * misses to wait for at once instead of one. The iterator wants a referenced
 * process to start from: one pid lookup a process. */
SEC("iter/task")
int task_walk_interleaved(struct bpf_iter__task *ctx)
{
	struct bpf_iter_task procs, a, b, c, d;
	struct task_struct *p, *t;
	__u64 n = 0, s = 0;

	if (!ctx->task)
		return 0;
	bpf_iter_task_new(&procs, NULL, BPF_TASK_ITER_ALL_PROCS);
	while ((p = bpf_iter_task_next(&procs))) {
		s32 pid0 = p->pid, pid1 = -1, pid2 = -1, pid3 = -1;
		struct task_struct *r0, *r1, *r2, *r3;

		if ((p = bpf_iter_task_next(&procs)))
			pid1 = p->pid;
		if (p && (p = bpf_iter_task_next(&procs)))
			pid2 = p->pid;
		if (p && (p = bpf_iter_task_next(&procs)))
			pid3 = p->pid;
		r0 = bpf_task_from_pid(pid0);
		r1 = pid1 >= 0 ? bpf_task_from_pid(pid1) : NULL;
		r2 = pid2 >= 0 ? bpf_task_from_pid(pid2) : NULL;
		r3 = pid3 >= 0 ? bpf_task_from_pid(pid3) : NULL;
		if (r0 && r1 && r2 && r3) {
			bpf_iter_task_new(&a, r0, BPF_TASK_ITER_PROC_THREADS);
			bpf_iter_task_new(&b, r1, BPF_TASK_ITER_PROC_THREADS);
			bpf_iter_task_new(&c, r2, BPF_TASK_ITER_PROC_THREADS);
			bpf_iter_task_new(&d, r3, BPF_TASK_ITER_PROC_THREADS);
			/* in step while the first has threads, then the others' rests */
			while ((t = bpf_iter_task_next(&a))) {
				n++;
				s += t->sched_info.last_arrival + t->__state;
				STEP(b)
				STEP(c)
				STEP(d)
			}
			while ((t = bpf_iter_task_next(&b))) {
				n++;
				s += t->sched_info.last_arrival + t->__state;
				STEP(c)
				STEP(d)
			}
			while ((t = bpf_iter_task_next(&c))) {
				n++;
				s += t->sched_info.last_arrival + t->__state;
				STEP(d)
			}
			while ((t = bpf_iter_task_next(&d))) {
				n++;
				s += t->sched_info.last_arrival + t->__state;
			}
			bpf_iter_task_destroy(&a);
			bpf_iter_task_destroy(&b);
			bpf_iter_task_destroy(&c);
			bpf_iter_task_destroy(&d);
		} else {
			/* the last few processes (or one gone meanwhile): one at a time */
			WALK1(r0)
			WALK1(r1)
			WALK1(r2)
			WALK1(r3)
		}
		if (r0)
			bpf_task_release(r0);
		if (r1)
			bpf_task_release(r1);
		if (r2)
			bpf_task_release(r2);
		if (r3)
			bpf_task_release(r3);
		if (pid3 < 0)
			break;
	}
	bpf_iter_task_destroy(&procs);
	tasks = n;
	sink = s;
	return 0;
}
