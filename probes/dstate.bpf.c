// SPDX-License-Identifier: GPL-2.0-only
/* D-state snapshot: one pass of a task iterator over every task, writing the
 * target's tasks in uninterruptible sleep with their kernel stacks. Nothing is
 * hooked: the pass runs only when user space reads the iterator. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "dstate.h"
#include "sched.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct dstate_config);
} dstate_cfg SEC(".maps");

/* a record is too big for the BPF stack */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct dstate_rec);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DSTATE_STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void stat_inc(u32 which)
{
	u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		(*v)++;
}

SEC("iter/task")
int dstate_iter(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct capture_filter *f;
	struct dstate_config *cfg;
	struct dstate_rec *r;
	unsigned int state;
	u32 zero = 0;
	u64 now, arrival;
	long n;

	if (!task)
		return 0;
	state = task_state(task);
	/* TASK_IDLE (D | NOLOAD) is a kernel thread waiting for work, not a stuck task */
	if (!(state & TASK_UNINTERRUPTIBLE_) || (state & TASK_NOLOAD_))
		return 0;
	f = get_filter();
	cfg = bpf_map_lookup_elem(&dstate_cfg, &zero);
	r = bpf_map_lookup_elem(&scratch, &zero);
	if (!f || !cfg || !r || !task_in_target(f, task))
		return 0;
	stat_inc(DSTATE_STAT_SEEN);

	/*
	 * How long: sched_info.last_arrival is the run-queue clock when the task
	 * last got a CPU; it has not run since. This CPU's run-queue clock is
	 * the same clock (sched_clock), updated at least every tick.
	 */
	now = this_cpu_rq_clock();
	arrival = BPF_CORE_READ(task, sched_info.last_arrival);
	r->blocked_ns = now > arrival ? now - arrival : 0;
	if (r->blocked_ns < cfg->threshold_ns) {
		stat_inc(DSTATE_STAT_SHORT);
		return 0;
	}
	r->type = DSTATE_REC_TASK;
	r->tgid = BPF_CORE_READ(task, tgid);
	r->pid = BPF_CORE_READ(task, pid);
	r->state = state;
	r->cgroup_id = task_cgid(f, task);
	r->last_arrival = arrival;
	BPF_CORE_READ_STR_INTO(&r->comm, task, comm);
	n = bpf_get_task_stack(task, r->frames, sizeof(r->frames), 0);
	if (n < 0) {
		stat_inc(DSTATE_STAT_STACK_LOST);
		r->nframes = (s32)n;
	} else {
		r->nframes = (s32)(n / sizeof(u64));
	}
	if (bpf_seq_write(seq, r, sizeof(*r)))
		stat_inc(DSTATE_STAT_WRITE_LOST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
