// SPDX-License-Identifier: GPL-2.0-only
/* Run-queue latency with culprits. A task of the target that becomes runnable
 * (woken, new, or preempted) gets an enqueue time; when it is switched in, the
 * wait goes into a histogram and, above the threshold, becomes one ring-buffer
 * event naming the tasks that held this CPU meanwhile, taken from a per-CPU
 * history of the last switches. A perf timer samples each CPU's run-queue
 * length. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "runq.h"
#include "sched.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, u32);
	__type(value, struct runq_enqueue);
} enq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct runq_cpu_hist);
} cpu_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 512 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RUNQ_WAIT_SLOTS);
	__type(key, u32);
	__type(value, u64);
} wait_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RUNQ_QLEN_SLOTS);
	__type(key, u32);
	__type(value, u64);
} qlen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct runq_config);
} runq_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RUNQ_STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void inc(void *map, u32 key)
{
	u64 *v = bpf_map_lookup_elem(map, &key);

	if (v)
		(*v)++;
}

static __always_inline u32 log2_slot(u64 v)
{
	u32 slot = 0;

	for (int i = 0; i < RUNQ_WAIT_SLOTS - 1 && v > 1; i++) {
		v >>= 1;
		slot++;
	}
	return slot;
}

static __always_inline void enqueued(struct task_struct *p, u32 reason, u64 now)
{
	struct runq_enqueue e = {.ts = now, .reason = reason};
	u32 pid = BPF_CORE_READ(p, pid);

	if (pid && bpf_map_update_elem(&enq, &pid, &e, BPF_ANY))
		inc(&stats, RUNQ_STAT_ENQ_FULL);
}

static __always_inline int on_wakeup(struct task_struct *p, u32 reason)
{
	struct capture_filter *f = get_filter();

	if (f && task_in_target(f, p))
		enqueued(p, reason, bpf_ktime_get_ns());
	return 0;
}

/* Adds [start, end) of task s to the event's culprits. */
static __always_inline void add_culprit(struct runq_event *ev, struct runq_slot *s, u64 ns)
{
	u32 n = ev->nculprits;

	for (int i = 0; i < RUNQ_MAX_CULPRITS; i++) {
		if (i >= n)
			break;
		if (ev->culprits[i].pid == s->pid) {
			ev->culprits[i].ns += ns;
			return;
		}
	}
	if (n < RUNQ_MAX_CULPRITS) {
		ev->culprits[n].pid = s->pid;
		ev->culprits[n].tgid = s->tgid;
		ev->culprits[n].ns = ns;
		__builtin_memcpy(ev->culprits[n].comm, s->comm, sizeof(s->comm));
		ev->nculprits = n + 1;
	} else {
		ev->other_ns += ns;
	}
}

static __always_inline int on_switch(bool preempt, struct task_struct *prev,
				     struct task_struct *next)
{
	struct capture_filter *f = get_filter();
	u32 zero = 0, next_pid;
	struct runq_config *cfg = bpf_map_lookup_elem(&runq_cfg, &zero);
	struct runq_cpu_hist *h = bpf_map_lookup_elem(&cpu_hist, &zero);
	struct runq_enqueue *e;
	struct runq_event *ev;
	struct runq_slot *slot;
	u64 now, t0, delta, end, head;
	u32 reason;

	if (!f || !cfg || !h)
		return 0;
	now = bpf_ktime_get_ns();

	/* a preempted task of the target waits in the run queue from now */
	if (BPF_CORE_READ(prev, pid) &&
	    switch_out_state(preempt, task_state(prev)) == SCHED_ST_RUNNABLE &&
	    task_in_target(f, prev))
		enqueued(prev, RUNQ_PREEMPTED, now);

	/* this CPU's history: next holds it from now (every switch, any task) */
	next_pid = BPF_CORE_READ(next, pid);
	head = h->head;
	slot = &h->slots[head & (RUNQ_HIST_SLOTS - 1)];
	slot->ts = now;
	slot->pid = next_pid;
	slot->tgid = BPF_CORE_READ(next, tgid);
	BPF_CORE_READ_STR_INTO(&slot->comm, next, comm);
	h->head = head + 1;

	e = bpf_map_lookup_elem(&enq, &next_pid);
	if (!e)
		return 0;
	t0 = e->ts;
	reason = e->reason;
	bpf_map_delete_elem(&enq, &next_pid);
	delta = now > t0 ? now - t0 : 0;
	inc(&stats, RUNQ_STAT_WAITS);
	inc(&wait_hist, log2_slot(delta / 1000));
	if (delta < cfg->threshold_ns)
		return 0;

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		inc(&stats, RUNQ_STAT_RB_FULL);
		return 0;
	}
	ev->type = RUNQ_REC_WAIT;
	ev->cpu = bpf_get_smp_processor_id();
	ev->pid = next_pid;
	ev->tgid = slot->tgid;
	ev->cgroup_id = task_cgid(f, next);
	ev->wait_ns = delta;
	ev->ts = now;
	ev->reason = reason;
	ev->nr_running = this_cpu_nr_running();
	ev->nculprits = 0;
	ev->complete = 0;
	ev->other_ns = 0;
	__builtin_memcpy(ev->comm, slot->comm, sizeof(ev->comm));

	/* walk back over the tasks this CPU ran since the wait began */
	end = now;
	for (int k = 1; k < RUNQ_HIST_SLOTS; k++) {
		struct runq_slot *s = &h->slots[(head - k) & (RUNQ_HIST_SLOTS - 1)];
		u64 start;

		if (!s->ts)
			break;
		start = s->ts > t0 ? s->ts : t0;
		if (end > start)
			add_culprit(ev, s, end - start);
		if (s->ts <= t0) {
			ev->complete = 1;
			break;
		}
		end = s->ts;
	}
	inc(&stats, RUNQ_STAT_EVENTS);
	/* batch: wake the agent only once a good amount is queued */
	bpf_ringbuf_submit(ev, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg->wakeup_bytes
				       ? BPF_RB_FORCE_WAKEUP
				       : BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(runq_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(preempt, prev, next);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(runq_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(preempt, prev, next);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(runq_wakeup, struct task_struct *p)
{
	return on_wakeup(p, RUNQ_WAKEUP);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(runq_wakeup_raw, struct task_struct *p)
{
	return on_wakeup(p, RUNQ_WAKEUP);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(runq_wakeup_new, struct task_struct *p)
{
	return on_wakeup(p, RUNQ_WAKEUP_NEW);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(runq_wakeup_new_raw, struct task_struct *p)
{
	return on_wakeup(p, RUNQ_WAKEUP_NEW);
}

/* Run-queue length of this CPU, sampled by a perf timer. */
SEC("perf_event")
int runq_qlen(struct bpf_perf_event_data *ctx)
{
	u32 n = this_cpu_nr_running();

	inc(&qlen, n < RUNQ_QLEN_SLOTS ? n : RUNQ_QLEN_SLOTS - 1);
	inc(&stats, RUNQ_STAT_QLEN);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
