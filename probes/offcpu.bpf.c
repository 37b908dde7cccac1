// SPDX-License-Identifier: GPL-2.0-only
/* Off-CPU time: a thread of the target switched out blocked gets a start
 * record (time, state, stacks); when it runs again the blocked time is added
 * to its (thread, state, stacks) key. sched_waking runs in the waker's context
 * and records the waker's stack against the sleeping thread. Everything is
 * aggregated here: nothing goes to user space per switch. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "offcpu.h"
#include "sched.bpf.h"
#include "ustack.bpf.h"

#define EFAULT 14

/* max_entries of stacks, counts and wakers are set by user space */
#define STACKSTORE_DEPTH SCHED_MAX_DEPTH
#include "stackstore.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, u32);
	__type(value, struct offcpu_start);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct offcpu_key);
	__type(value, struct offcpu_val);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct offcpu_thread_key);
	__type(value, struct offcpu_val);
} short_time SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct offcpu_waker_key);
	__type(value, struct offcpu_val);
} wakers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct offcpu_config);
} offcpu_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct offcpu_budget);
} budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, struct offcpu_last);
} last SEC(".maps");

/* a waker key is too big for the BPF stack */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct offcpu_waker_key);
} waker_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OFFCPU_STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void stat_inc(u32 which)
{
	u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		(*v)++;
}

static __always_inline s32 stack_id(void *ctx, u64 flags)
{
	s32 id = stack_get(ctx, flags);

	/* -EFAULT for the user stack of a kernel thread is expected, not a loss */
	if (id < 0 && id != -EFAULT)
		stat_inc(OFFCPU_STAT_STACK_LOST);
	return id;
}

/* May this CPU unwind another stack in this tick? */
static __always_inline bool walk_allowed(const struct offcpu_config *cfg, u64 now)
{
	u32 zero = 0;
	struct offcpu_budget *b;
	u64 tick;

	if (!cfg->walks_per_tick)
		return true;
	b = bpf_map_lookup_elem(&budget, &zero);
	if (!b)
		return true;
	tick = now / OFFCPU_TICK_NS;
	if (b->tick != tick) {
		b->tick = tick;
		b->walks = 0;
	}
	if (b->walks >= cfg->walks_per_tick)
		return false;
	b->walks++;
	return true;
}

/*
 * DWARF user stacks (ustack.bpf.h): the blocking thread's stack copy goes to
 * user space under a fresh sequence number kept in the start record; when the
 * block ends, a BLOCK_END record with that number carries its length.
 */
static __always_inline void offcpu_dwarf_block(struct offcpu_start *ns, u32 pid, u32 mode)
{
	struct ustack_meta m = {
		.type = USTACK_REC_BLOCK,
		.mode = mode,
		.tgid = ns->tgid,
		.pid = pid,
		.cgroup_id = ns->cgroup_id,
		.kern_stack_id = ns->kern_stack_id,
		.user_stack_id = ns->user_stack_id,
		.state = ns->state,
		.comm = ns->comm,
	};

	m.seq = ustack_next_seq();
	if (m.seq && ustack_send(&m))
		ns->ustack_seq = m.seq;
}

/* True when user space counts this block (its stack went as a DWARF record). */
static __always_inline bool offcpu_dwarf_end(const struct offcpu_key *key, u64 seq, u64 delta)
{
	struct ustack_meta m = {
		.type = USTACK_REC_BLOCK_END,
		.tgid = key->tgid,
		.pid = key->pid,
		.cgroup_id = key->cgroup_id,
		.kern_stack_id = key->kern_stack_id,
		.user_stack_id = -1,
		.state = key->state,
		.seq = seq,
		.value = delta,
		.comm = key->comm,
	};

	return seq && ustack_send(&m);
}

/* sched_switch runs in prev's context: these are its stacks */
static __always_inline void blocked_stacks(void *ctx, const struct offcpu_config *cfg, u32 pid,
					   u64 now, struct offcpu_start *ns)
{
	struct offcpu_last *l = bpf_map_lookup_elem(&last, &pid), fresh = {};
	struct pt_regs *regs = current_user_regs();

	/* no user registers (see current_user_regs): nothing tells the same
	 * place from another, so the last walk is never reused */
	if (regs) {
		fresh.user_ip = PT_REGS_IP_CORE(regs);
		fresh.user_sp = PT_REGS_SP_CORE(regs);
	}
	fresh.state = ns->state;
	if (regs && l && now - l->walked_ns < OFFCPU_REWALK_NS && l->state == fresh.state &&
	    l->user_ip == fresh.user_ip && l->user_sp == fresh.user_sp && !walk_allowed(cfg, now)) {
		ns->kern_stack_id = l->kern_stack_id;
		ns->user_stack_id = l->user_stack_id;
		ns->ustack_seq = l->ustack_seq;
		stat_inc(OFFCPU_STAT_REUSED);
		return;
	}
	ns->kern_stack_id = stack_id(ctx, 0);
	ns->user_stack_id = -1;
	ns->ustack_seq = 0;
	if (cfg->flags & OFFCPU_F_USER_STACK) {
		u32 mode = ustack_mode(ns->tgid);

		if (mode != USTACK_DWARF)
			ns->user_stack_id = stack_id(ctx, BPF_F_USER_STACK);
		if (mode != USTACK_FP)
			offcpu_dwarf_block(ns, pid, mode);
		/* no room in the ring: walk by frame pointer after all */
		if (mode == USTACK_DWARF && !ns->ustack_seq)
			ns->user_stack_id = stack_id(ctx, BPF_F_USER_STACK);
	}
	fresh.walked_ns = now;
	fresh.kern_stack_id = ns->kern_stack_id;
	fresh.user_stack_id = ns->user_stack_id;
	fresh.ustack_seq = ns->ustack_seq;
	bpf_map_update_elem(&last, &pid, &fresh, BPF_ANY);
}

static __always_inline void add(void *map, void *key, u64 delta, u32 full_stat)
{
	struct offcpu_val *v = bpf_map_lookup_elem(map, key);
	struct offcpu_val init = {.total_ns = delta, .count = 1, .max_ns = delta};

	if (!v) {
		if (!bpf_map_update_elem(map, key, &init, BPF_NOEXIST))
			return;
		/* a racing insert on another CPU: add to it; else the map is full */
		v = bpf_map_lookup_elem(map, key);
		if (!v) {
			stat_inc(full_stat);
			return;
		}
	}
	__sync_fetch_and_add(&v->total_ns, delta);
	__sync_fetch_and_add(&v->count, 1);
	if (delta > v->max_ns)
		v->max_ns = delta;
}

static __always_inline int on_switch(void *ctx, bool preempt, struct task_struct *prev,
				     struct task_struct *next)
{
	struct capture_filter *f = get_filter();
	u32 zero = 0, prev_pid, next_pid;
	struct offcpu_config *cfg = bpf_map_lookup_elem(&offcpu_cfg, &zero);
	struct offcpu_waker_key *wk = NULL;
	struct offcpu_start *s;
	u64 now, delta, seq;

	if (!f || !cfg)
		return 0;
	now = bpf_ktime_get_ns();

	/* prev goes off CPU: remember how, if it blocks and is ours */
	prev_pid = BPF_CORE_READ(prev, pid);
	if (prev_pid && !preempt) {
		u32 state = switch_out_state(false, task_state(prev));

		if (state >= SCHED_ST_SLEEP && state <= SCHED_ST_OTHER && task_in_target(f, prev)) {
			struct offcpu_start ns = {
				.ts = now,
				.cgroup_id = task_cgid(f, prev),
				.state = state,
				.tgid = BPF_CORE_READ(prev, tgid),
			};

			bpf_get_current_comm(ns.comm, sizeof(ns.comm));
			blocked_stacks(ctx, cfg, prev_pid, now, &ns);
			if (bpf_map_update_elem(&start, &prev_pid, &ns, BPF_ANY))
				stat_inc(OFFCPU_STAT_START_FULL);
		}
	}

	/* next comes back: only threads of the target have a start record */
	next_pid = BPF_CORE_READ(next, pid);
	s = bpf_map_lookup_elem(&start, &next_pid);
	if (!s)
		return 0;
	delta = now - s->ts;
	if (delta < cfg->min_block_ns) {
		struct offcpu_thread_key tk = {
			.tgid = s->tgid,
			.pid = next_pid,
			.cgroup_id = s->cgroup_id,
			.state = s->state,
		};

		__builtin_memcpy(tk.comm, s->comm, sizeof(tk.comm));
		bpf_map_delete_elem(&start, &next_pid);
		add(&short_time, &tk, delta, OFFCPU_STAT_SHORT_FULL);
		stat_inc(OFFCPU_STAT_SHORT);
		return 0;
	}

	struct offcpu_key key = {
		.tgid = BPF_CORE_READ(next, tgid),
		.pid = next_pid,
		.cgroup_id = s->cgroup_id,
		.user_stack_id = s->user_stack_id,
		.kern_stack_id = s->kern_stack_id,
		.state = s->state,
	};

	BPF_CORE_READ_STR_INTO(&key.comm, next, comm);
	if (s->waker_nframes || s->waker_pid || s->waker_tgid)
		wk = bpf_map_lookup_elem(&waker_scratch, &zero);
	if (wk) {
		wk->tgid = key.tgid;
		wk->pid = key.pid;
		wk->waker_tgid = s->waker_tgid;
		wk->waker_pid = s->waker_pid;
		wk->kern_stack_id = s->kern_stack_id;
		wk->waker_nframes = s->waker_nframes;
		wk->state = s->state;
		wk->pad = 0;
		__builtin_memcpy(wk->comm, key.comm, sizeof(wk->comm));
		__builtin_memcpy(wk->waker_comm, s->waker_comm, sizeof(wk->waker_comm));
		__builtin_memcpy(wk->waker_frames, s->waker_frames, sizeof(wk->waker_frames));
	}
	seq = s->ustack_seq;
	/* copied out: the record may be reused as soon as it is deleted */
	bpf_map_delete_elem(&start, &next_pid);
	if (!offcpu_dwarf_end(&key, seq, delta))
		add(&counts, &key, delta, OFFCPU_STAT_KEYS_FULL);
	stat_inc(OFFCPU_STAT_BLOCKS);
	if (wk)
		add(&wakers, wk, delta, OFFCPU_STAT_WAKERS_FULL);
	return 0;
}

/* Runs in the waker's context (task or interrupt), before the wakee can run. */
static __always_inline int on_waking(void *ctx, struct task_struct *p)
{
	u32 zero = 0, pid = BPF_CORE_READ(p, pid);
	struct offcpu_config *cfg = bpf_map_lookup_elem(&offcpu_cfg, &zero);
	struct offcpu_start *s = bpf_map_lookup_elem(&start, &pid);
	u64 id;
	long n;

	if (!s || !cfg || !(cfg->flags & OFFCPU_F_WAKER))
		return 0;
	id = bpf_get_current_pid_tgid();
	s->waker_tgid = id >> 32;
	s->waker_pid = (u32)id;
	bpf_get_current_comm(s->waker_comm, sizeof(s->waker_comm));
	if (!walk_allowed(cfg, bpf_ktime_get_ns())) {
		s->waker_nframes = 0;
		__builtin_memset(s->waker_frames, 0, sizeof(s->waker_frames));
		stat_inc(OFFCPU_STAT_WAKER_UNWALKED);
		return 0;
	}
	n = bpf_get_stack(ctx, s->waker_frames, sizeof(s->waker_frames), 0);
	if (n > 0) {
		s->waker_nframes = (u32)(n / sizeof(u64));
		/* a shorter stack leaves older frames behind: zero them, they are keys */
		for (int i = 0; i < OFFCPU_WAKER_DEPTH; i++)
			if (i >= s->waker_nframes)
				s->waker_frames[i] = 0;
	} else {
		/* no stack, but the wakeup still names the waker */
		s->waker_nframes = 0;
		stat_inc(OFFCPU_STAT_STACK_LOST);
	}
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(offcpu_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(ctx, preempt, prev, next);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(offcpu_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(ctx, preempt, prev, next);
}

SEC("tp_btf/sched_waking")
int BPF_PROG(offcpu_waking, struct task_struct *p)
{
	return on_waking(ctx, p);
}

SEC("raw_tp/sched_waking")
int BPF_PROG(offcpu_waking_raw, struct task_struct *p)
{
	return on_waking(ctx, p);
}

char LICENSE[] SEC("license") = "GPL";
