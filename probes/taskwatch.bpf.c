// SPDX-License-Identifier: GPL-2.0-only
/*
 * One pass over every task per interval (iter/task), hooked to nothing: D-state
 * tasks and how long they have been in D, and run-queue waits from each task's
 * scheduler accounting (sched_info run_delay/pcount deltas, last_queued for
 * tasks waiting right now, max_run_delay), summed per CPU, per watched cgroup
 * and for the host. User space drives the passes and reads the sums.
 */
#include "core_fixes.bpf.h"
#include <bpf/bpf_tracing.h>
#include "taskwatch.h"

char LICENSE[] SEC("license") = "GPL";

#define TASK_UNINTERRUPTIBLE_ 0x0002
#define TASK_NOLOAD_	      0x0400
/* a task that last got a CPU this long before the previous pass began has
 * done nothing since (covers run-queue clocks a tick stale or a little apart) */
#define IDLE_MARGIN_NS 20000000ull

const volatile int cgroup_subsys = -1; /* hierarchy of the cgroup ids (core_fixes task_cgroup) */

struct tw_globals g;
/* The walk's table: odd while a pass moves entries (table_take); and the
 * freed tasks the free hook did not find while one did, whose entry may stay
 * (until a new task needs the place). User space reports the latter. */
__u64 move_seq, free_raced;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tw_task);
} tasks SEC(".maps");

/*
 * Before 5.11 (no task storage) the same per-task state lives in an LRU hash
 * keyed by thread id; the task's start time tells a reused id from its
 * previous owner. Every task takes an entry at the first pass, later only
 * tasks that did something since a pass; entries of exited tasks age out.
 * Tasks that sleep through intervals are not looked up and so are the ones
 * evicted first when the map is full: one seen again starts a new baseline
 * (its numbers then, as at its first visit), which loses what it waited in
 * the interval it came back in. (The 6.7+ walk keeps its own table.)
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768); /* set at load */
	__type(key, __u32);
	__type(value, struct tw_task);
} tasks_by_pid SEC(".maps");

/*
 * The walk's per-task state (6.7+): a table keyed by the task's address, one
 * cache line an entry, where each task has two places (cuckoo hashing).
 * Both are found by arithmetic on the address the walk already holds, so a
 * busy thread's entry loads at once, alongside its other lines; the hash
 * would first load the thread's id, then its bucket, then the entry, one
 * miss after another. An entry goes when its task is freed (taskwatch_free).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE); /* page aligned: an entry is one line */
	__uint(max_entries, 8192);	   /* a power of two, set at load */
	__type(key, __u32);
	__type(value, struct tw_task);
} task_table SEC(".maps");

const volatile __u32 table_mask = 8191; /* entries - 1, set at load */

/* cgroup id -> slot in cg_acc, for the watched cgroups only */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256); /* watch.max_cgroups, set at load */
	__type(key, __u64);
	__type(value, __u32);
} cg_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 256); /* watch.max_cgroups, set at load */
	__type(key, __u32);
	__type(value, struct tw_acc);
} cg_acc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1); /* possible CPUs, set at load */
	__type(key, __u32);
	__type(value, struct tw_acc);
} cpu_acc SEC(".maps");

struct tw_sample {
	__u64 d_rd, d_pc, wait_max;
	__u64 d_ns, reclaim;
	bool waiting, dstate;
};

/* One pass runs in one thread (the reader of the iterator): plain adds suffice. */
static __always_inline void add(struct tw_acc *a, const struct tw_sample *s)
{
	a->run_delay_ns += s->d_rd;
	a->timeslices += s->d_pc;
	if (s->wait_max > a->runq_max_ns)
		a->runq_max_ns = s->wait_max;
	a->waiting_tasks += s->waiting;
	if (s->dstate) {
		a->dstate_tasks++;
		if (s->d_ns > a->dstate_max_ns)
			a->dstate_max_ns = s->d_ns;
	}
	a->reclaim_ns += s->reclaim;
}

static __always_inline __u64 delta(__u64 now, __u64 prev)
{
	return now >= prev ? now - prev : 0;
}

/*
 * Direct loads through the iterator's BTF task pointer (CO-RE relocated, a
 * plain memory access each) instead of bpf_probe_read calls: this program
 * visits every task every interval, and most of them only to find nothing new.
 */
struct task_struct___state_old {
	long state;
} __attribute__((preserve_access_index)); /* relocated, see core_fixes.bpf.h */

static __always_inline unsigned int tw_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return t->__state;
	return (unsigned int)((struct task_struct___state_old *)t)->state;
}

static __always_inline struct rq *tw_rq(struct task_struct *t)
{
	struct cfs_rq *cfs;

	if (!bpf_core_field_exists(struct cfs_rq, rq))
		return NULL;
	cfs = t->se.cfs_rq;
	return cfs ? cfs->rq : NULL;
}

static __always_inline __u32 tw_cpu(struct task_struct *t)
{
	if (bpf_core_field_exists(t->thread_info.cpu))
		return t->thread_info.cpu;
	return task_last_cpu(t);
}

static __always_inline __u64 tw_max_run_delay(struct task_struct *t)
{
	if (bpf_core_field_exists(t->sched_info.max_run_delay))
		return t->sched_info.max_run_delay;
	return 0;
}

static __always_inline __u64 tw_reclaim_ns(struct task_struct *t)
{
	struct task_delay_info *di = t->delays;

	if (!di || !bpf_core_field_exists(di->freepages_delay))
		return 0;
	return di->freepages_delay;
}

/* When did the D episode of a task first seen in it begin? The task stopped
 * running at se.exec_start, in its run queue's clock_task; that run queue's
 * clock_task now tells how long ago (a little short when that CPU idles). */
static __always_inline __u64 d_start_estimate(struct task_struct *t, __u64 now)
{
	struct rq *rq = tw_rq(t);
	__u64 clock = rq ? rq->clock_task : 0;
	__u64 stopped = t->se.exec_start;

	if (clock > stopped && clock - stopped < now)
		return now - (clock - stopped);
	return now;
}

static __always_inline struct tw_task *pid_state(struct task_struct *t)
{
	__u32 pid = t->pid;
	__u64 start = t->start_time;
	struct tw_task *ts = bpf_map_lookup_elem(&tasks_by_pid, &pid), fresh = {};

	if (ts && ts->start == (__u32)start)
		return ts;
	/* every task alive at the previous pass got an entry by then (the
	 * first pass gives each one, a task born since gets one when it
	 * first runs): one without has lost it to the LRU, and what it
	 * waited this interval with it */
	if (g.pass > 1 && g.prev_pass_ns && start < g.prev_pass_ns)
		g.state_lost++;
	fresh.start = (__u32)start;
	if (bpf_map_update_elem(&tasks_by_pid, &pid, &fresh, BPF_ANY))
		return NULL;
	return bpf_map_lookup_elem(&tasks_by_pid, &pid);
}

/* The run-queue clock of the CPU running the pass, at its start. */
static __always_inline void pass_clock(void)
{
	/* not a BTF pointer before 5.11: read through BPF_CORE_READ */
	struct rq *rq = task_cpu_rq(current_task());

	g.prev_clock = g.cur_clock;
	g.cur_clock = rq ? BPF_CORE_READ(rq, clock) : 0;
	g.clock_pass = g.pass;
}

/*
 * Most tasks sleep through an interval. One that is not in D, not queued, and
 * last got a CPU well before the previous pass has no new wait: skip the
 * per-task state (its lookup is most of a visit's cost). Its numbers in the
 * task state stay those of its last visit, so if a skip is ever wrong the wait
 * is counted at its next visit, not lost. TASK_IDLE (D with NOLOAD: kernel
 * threads waiting for work, left out of the D numbers) is asleep like any
 * other sleeper.
 */
static __always_inline bool idle_since_last_pass(struct task_struct *t, unsigned int state,
						 __u64 lq)
{
	__u64 arrived = t->sched_info.last_arrival;

	/* The fields looked at sit in two cache lines of the task (its state,
	 * its scheduler statistics): on a dense node most of a pass is these
	 * misses. A task born since the previous pass has either not run
	 * (arrived 0) or ran after it, so its birth needs no look of its own. */
	return (state & (TASK_UNINTERRUPTIBLE_ | TASK_NOLOAD_)) != TASK_UNINTERRUPTIBLE_ && !lq &&
	       g.prev_clock && arrived && arrived + IDLE_MARGIN_NS < g.prev_clock;
}

/*
 * The id of the task's cgroup, as core_fixes' task_cgroup_id finds it, by
 * direct loads instead of one probe-read call a pointer: it is read for
 * every busy task, and its calls were an eighth of a dense node's pass.
 * (iter/task needs 5.8+, where kernfs ids are the plain u64 read here.)
 */
static __always_inline __u64 tw_cgroup_id(struct task_struct *t)
{
	struct css_set *cs = t->cgroups;
	struct cgroup_subsys_state *css;
	struct cgroup *cg;
	struct kernfs_node *kn;

	if (!cs)
		return 0;
	if (cgroup_subsys < 0) {
		cg = cs->dfl_cgrp;
	} else {
		css = cs->subsys[cgroup_subsys & 15];
		cg = css ? css->cgroup : NULL;
	}
	kn = cg ? cg->kn : NULL;
	return kn ? kn->id : 0;
}

/*
 * The slot of the task's nearest watched cgroup, TW_NO_SLOT for none: the
 * task's numbers count there, and user space adds each watched cgroup's sums
 * into its watched ancestors. Found by climbing from the task's cgroup with
 * one hash look-up a level, then kept in the task's state. Most busy tasks
 * are busy every pass, and the cgroup pointer is a cache line of the task
 * of its own, a miss for every busy task: while the cgroup epoch is the same
 * (no task moved between cgroups, the slot map unchanged) the kept slot
 * holds without it. After a move somewhere, the task's cgroup id tells
 * whether it was this task (the climb again) or another (the slot holds, if
 * the slot map has not changed since it was found).
 */
static __always_inline __u32 tw_slot(struct task_struct *t, struct tw_task *ts)
{
	/* read before the cgroup: a move after it changes the epoch */
	__u32 epoch = (__u32)(g.slot_gen + g.cg_moves);
	__u64 id, level_id;
	__u32 found = TW_NO_SLOT;
	struct cgroup *cg;

	if (ts && ts->cg_epoch == epoch)
		goto kept;
	id = tw_cgroup_id(t);
	if (ts && ts->cg_epoch && (__s32)(ts->cg_epoch - (__u32)g.slot_epoch) >= 0 &&
	    ts->cg_id == (__u32)id) {
		ts->cg_epoch = epoch;
		goto kept;
	}
	cg = task_cgroup(t, cgroup_subsys);
	level_id = id;
	for (int i = 0; i < TW_MAX_LEVELS && cg; i++) {
		struct cgroup_subsys_state *parent;
		__u32 *slot = bpf_map_lookup_elem(&cg_slot, &level_id);

		if (slot) {
			found = *slot;
			break;
		}
		parent = BPF_CORE_READ(cg, self.parent);
		cg = parent ? BPF_CORE_READ(parent, cgroup) : NULL;
		level_id = cgroup_node_id(cg);
	}
	found = found < TW_NO_SLOT16 ? found : TW_NO_SLOT;
	if (ts) {
		ts->cg_epoch = epoch;
		ts->cg_id = (__u32)id;
		ts->cg_slot = found == TW_NO_SLOT ? TW_NO_SLOT16 : (__u16)found;
	}
	return found;
kept:
	return ts->cg_slot == TW_NO_SLOT16 ? TW_NO_SLOT : ts->cg_slot;
}

/* A task that may have waited or blocked: its deltas against its state, summed
 * for the host, its CPU and its watched cgroups. ts is NULL when its state
 * could not be had. */
static __always_inline int account(struct task_struct *t, struct tw_task *ts, unsigned int state,
				   __u64 lq)
{
	struct tw_sample s = {};
	__u64 rd, pc, mrd, rec = 0;
	bool fresh;
	__u32 cpu;

	rd = t->sched_info.run_delay;
	pc = t->sched_info.pcount;
	mrd = tw_max_run_delay(t);
	if (g.delayacct)
		rec = tw_reclaim_ns(t);

	fresh = ts && !ts->seen;
	if (fresh) {
		/* born since the last pass: everything it waited is this interval's;
		 * older: its history is the baseline */
		bool born = g.prev_pass_ns && t->start_time > g.prev_pass_ns;

		ts->run_delay = born ? 0 : rd;
		ts->pcount = born ? 0 : pc;
		ts->max_run_delay = born ? 0 : mrd;
		ts->reclaim_ns = born ? 0 : rec;
	}
	if (ts) {
		s.d_rd = delta(rd, ts->run_delay);
		s.d_pc = (__u32)pc - ts->pcount; /* modulo 2^32: it wraps */
		s.reclaim = delta(rec, ts->reclaim_ns);
		if (s.d_pc)
			s.wait_max = s.d_rd / s.d_pc;
		/* a new lifetime maximum was set this interval: that wait is exact */
		if (mrd > ts->max_run_delay && mrd > s.wait_max)
			s.wait_max = mrd;
	}
	if (lq) {
		/* queued and not running yet: its wait so far, in its run queue's clock */
		struct rq *rq = tw_rq(t);
		__u64 clock = rq ? rq->clock : 0;

		s.waiting = true;
		if (clock > lq && clock - lq > s.wait_max)
			s.wait_max = clock - lq;
	}
	s.dstate = (state & TASK_UNINTERRUPTIBLE_) && !(state & TASK_NOLOAD_);
	if (s.dstate) {
		__u64 now = bpf_ktime_get_ns();
		__u32 sw = (__u32)(t->nvcsw + t->nivcsw + 1) ?: 1;

		if (ts && ts->d_switches != sw) {
			/* a new episode (no context switch since means the same one) */
			__u64 start = d_start_estimate(t, now);

			/* the previous pass saw this task out of this episode (awake,
			 * or in an earlier one): it cannot have begun before it */
			if (!fresh && start < g.prev_pass_ns)
				start = g.prev_pass_ns;
			ts->d_switches = sw;
			ts->d_start_ns = start;
		}
		s.d_ns = delta(now, ts ? ts->d_start_ns : d_start_estimate(t, now));
	} else if (ts) {
		ts->d_switches = 0;
	}
	if (ts) {
		ts->run_delay = rd;
		ts->pcount = pc;
		ts->max_run_delay = mrd;
		ts->reclaim_ns = rec;
		ts->seen = 1;
	}
	/* most tasks sleep through the interval: nothing to add */
	if (!s.d_pc && !s.d_rd && !s.waiting && !s.dstate && !s.reclaim)
		return 0;

	add(&g.host, &s);
	cpu = tw_cpu(t);
	{
		struct tw_acc *a = bpf_map_lookup_elem(&cpu_acc, &cpu);

		if (a)
			add(a, &s);
		else
			g.cpu_overflow++;
	}
	{
		__u32 slot = tw_slot(t, ts);
		struct tw_acc *a = slot != TW_NO_SLOT ? bpf_map_lookup_elem(&cg_acc, &slot) : NULL;

		if (a)
			add(a, &s);
	}
	return 0;
}

/* storage: task-local storage (5.11+), else the pid-keyed hash; a constant
 * in each program, so each keeps only its own branch */
static __always_inline int tw_visit(struct task_struct *t, const bool storage)
{
	struct tw_task *ts;
	unsigned int state;
	__u64 lq;

	if (!t)
		return 0;
	if (g.clock_pass != g.pass)
		pass_clock(); /* the first task of this pass */
	g.tasks++;
	state = tw_state(t);
	lq = t->sched_info.last_queued;
	if (idle_since_last_pass(t, state, lq)) {
		g.skipped++;
		return 0;
	}
	if (t->exit_state)
		return 0;
	ts = storage ? bpf_task_storage_get(&tasks, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE)
		     : pid_state(t);
	if (!ts)
		g.storage_fail++;
	return account(t, ts, state, lq);
}

SEC("iter/task")
int taskwatch(struct bpf_iter__task *ctx)
{
	return tw_visit(ctx->task, true);
}

/* Before 5.11: no task storage, the pid-keyed hash instead. */
SEC("iter/task")
int taskwatch_pidmap(struct bpf_iter__task *ctx)
{
	return tw_visit(ctx->task, false);
}

/*
 * Linux 6.7+: one run of the program walks every task itself, instead of the
 * kernel calling it once per task through the seq_file iterator, whose
 * per-task look-up, reference counting and call were most of a visit's cost.
 *
 * A thread list is a chain of dependent loads, each a cache miss on a dense
 * node (a thread's task_struct is seldom cached): followed one thread after
 * another, every thread costs a full memory latency whatever the program
 * reads of it (bench_task_walk). So the walk takes the processes from the
 * kernel's process iterator and follows the thread lists of TW_LANES of them
 * side by side ("lanes"), one step of each per loop step: the next links of
 * all lanes are loaded first, then their threads are looked at, and the CPU
 * waits for several misses at once. A lane whose list ends takes the next
 * process, so processes of one thread interleave too.
 *
 * The lists are followed by plain loads through read-only casts (a fault
 * reads zero, and the program runs in one RCU read section, as the kernel's
 * own thread iterator does), so nothing is held from one step to the next.
 * Everything a step hands to the next lives in global data, not in
 * registers: every step then starts from one state, and the verifier checks
 * a step once instead of once per combination of the lanes' branches.
 *
 * Task storage takes only referenced or RCU-trusted tasks, which read-only
 * casts are not, so the walk keeps its per-task state in a table of its own
 * keyed by the task's address (task_table).
 */
extern int bpf_iter_task_new(struct bpf_iter_task *it, struct task_struct *task,
			     unsigned int flags) __weak __ksym;
extern struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it) __weak __ksym;
extern void bpf_iter_task_destroy(struct bpf_iter_task *it) __weak __ksym;
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __weak __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __weak __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __weak __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __weak __ksym;

#define TW_LANES 4 /* eight did no better here (docs/performance.md) */
/* loop steps; each visits a thread of every lane that has one, so this is
 * more threads than pid_max can ever number (4M), and the lists hold no
 * cycle (nothing they link is freed while the walk's RCU section lasts) */
#define TW_MAX_STEPS (1 << 22)

static struct {
	__u64 cur[TW_LANES];  /* address of the thread the lane visits next, 0: free */
	__u64 head[TW_LANES]; /* address of its process's thread list head */
	__u64 at[TW_LANES];   /* the thread this step visits, 0: none */
	__u32 lanes_busy;
	__u32 procs_done; /* the process iterator has ended */
} walk;

static __always_inline struct task_struct *task_at(__u64 addr)
{
	return bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct task_struct));
}

/* The two places of the task at addr in the table. */
static __always_inline __u32 table_place(__u64 addr, int which)
{
	__u64 k = which ? 0xc2b2ae3d27d4eb4full : 0x9e3779b97f4a7c15ull;

	return (__u32)((addr * k) >> 32) & table_mask;
}

static __always_inline struct tw_task *table_at(__u32 i)
{
	return bpf_map_lookup_elem(&task_table, &i);
}

/* The index of the task's entry, table_mask + 1 for none. */
static __always_inline __u32 table_find(__u64 addr, __u32 start)
{
#pragma unroll
	for (int w = 0; w < 2; w++) {
		__u32 i = table_place(addr, w);
		struct tw_task *e = table_at(i);

		if (e && e->addr == addr && e->start == start)
			return i;
	}
	return table_mask + 1;
}

#define TW_MAX_KICKS 16 /* occupants moved to their other place, at most, per new task */

/*
 * An entry for a task the table does not hold, cleared and keyed to it: a
 * free one of its two places (or one an earlier task at this address left),
 * else its first, whose occupant moves to its own other place, whose
 * occupant moves on in turn, until one lands in a free place (cuckoo
 * hashing). After TW_MAX_KICKS moves the last one moved
 * loses its entry (counted when it comes back, as a lost state). The table
 * has four entries a thread of the node when sized, so nearly every new task
 * finds a free place at once. Returns the entry's index, or table_mask + 1
 * when the moves came round to the new entry and it was the one that lost.
 */
__noinline __u32 table_take(__u64 addr, __u32 start)
{
	__u32 ia = table_place(addr, 0), ib = table_place(addr, 1), at = ia;
	struct tw_task *a = table_at(ia), *b = table_at(ib), carry, next;

	if (!a || !b)
		return table_mask + 1;
	/* an entry with this address is an earlier task's (its free was
	 * missed): the place to take, and the entry goes */
	if ((b->addr == addr && a->addr != addr) || (a->addr && a->addr != addr && !b->addr)) {
		a = b;
		at = ib;
	}
	carry = *a;
	__builtin_memset(a, 0, sizeof(*a));
	a->addr = addr;
	a->start = start;
	if (!carry.addr || carry.addr == addr)
		return at;
	ia = at;
	__sync_fetch_and_add(&move_seq, 1);
	for (int i = 0; i < TW_MAX_KICKS; i++) {
		__u32 p0 = table_place(carry.addr, 0);
		__u32 other = p0 == ia ? table_place(carry.addr, 1) : p0;
		struct tw_task *dst;

		if (other == ia) /* its two places are one */
			break;
		dst = table_at(other);
		if (!dst)
			break;
		next = *dst;
		*dst = carry;
		if (!next.addr)
			break;
		carry = next;
		ia = other;
	}
	__sync_fetch_and_add(&move_seq, 1);
	/* where it is now: the moves may have passed through its place */
	return table_find(addr, start);
}

/* One busy thread: its deltas against its state in the table. A function of
 * its own, so that the verifier checks it once, not in each lane's visit. */
__noinline int taskwatch_busy(__u64 addr, unsigned int state, __u64 lq)
{
	struct task_struct *t = task_at(addr);
	struct tw_task *ts;
	__u32 start;

	if (!t)
		return 0;
	start = (__u32)t->start_time;
	ts = table_at(table_find(addr, start));
	if (!ts) {
		/* every task alive at the previous pass got an entry by then */
		if (g.pass > 1 && g.prev_pass_ns && t->start_time < g.prev_pass_ns)
			g.state_lost++;
		ts = table_at(table_take(addr, start));
	}
	if (!ts) {
		g.storage_fail++;
		return 0;
	}
	return account(t, ts, state, lq);
}

/* Lane l takes the next process; false when there is none left. */
static __always_inline bool lane_fill(struct bpf_iter_task *procs, __u32 l)
{
	struct task_struct *p;
	struct signal_struct *sig;

	if (walk.procs_done)
		return false;
	p = bpf_iter_task_next(procs);
	if (!p) {
		walk.procs_done = 1;
		return false;
	}
	sig = p->signal;
	if (!sig)
		return false;
	walk.cur[l] = (__u64)p;
	walk.head[l] = (__u64)&sig->thread_head;
	walk.lanes_busy++;
	return true;
}

/* Lane l moves to the next thread of its list; the one it was on is this
 * step's to visit (walk.at, 0 when the lane has nothing left). */
static __always_inline void lane_advance(struct bpf_iter_task *procs, __u32 l)
{
	__u64 addr, next;

	walk.at[l] = 0;
	if (!walk.cur[l] && !lane_fill(procs, l))
		return;
	/* a load the compiler cannot skip: the verifier must see a number
	 * read from memory, not the task pointer lane_fill just stored */
	addr = *(volatile __u64 *)&walk.cur[l];
	next = (__u64)task_at(addr)->thread_node.next;
	if (!next || next == walk.head[l]) {
		walk.cur[l] = 0;
		walk.lanes_busy--;
	} else {
		walk.cur[l] = next - bpf_core_field_offset(struct task_struct, thread_node);
	}
	walk.at[l] = addr;
}

/* The idle test of lane l's thread; a busy one is accounted at once. */
static __always_inline void walk_visit(__u32 l)
{
	__u64 addr = *(volatile __u64 *)&walk.at[l];
	struct task_struct *t = task_at(addr);
	unsigned int state;
	__u64 lq;

	if (!addr)
		return;
	g.tasks++;
	state = tw_state(t);
	lq = t->sched_info.last_queued;
	if (idle_since_last_pass(t, state, lq)) {
		g.skipped++;
		return;
	}
	taskwatch_busy(addr, state, lq);
}

SEC("iter/task")
int taskwatch_walk(struct bpf_iter__task *ctx)
{
	struct bpf_iter_task procs;
	struct bpf_iter_num steps;

	/* attached to one task (the agent's): one run per pass */
	if (!ctx->task)
		return 0;
	pass_clock();
	__builtin_memset(&walk, 0, sizeof(walk));
	bpf_iter_task_new(&procs, NULL, BPF_TASK_ITER_ALL_PROCS);
	bpf_iter_num_new(&steps, 0, TW_MAX_STEPS);
	while (bpf_iter_num_next(&steps)) {
#pragma unroll
		for (int l = 0; l < TW_LANES; l++)
			lane_advance(&procs, l);
#pragma unroll
		for (int l = 0; l < TW_LANES; l++)
			walk_visit(l);
		if (walk.procs_done && !walk.lanes_busy)
			break;
	}
	bpf_iter_num_destroy(&steps);
	bpf_iter_task_destroy(&procs);
	return 0;
}

/*
 * With the walk, a task's entry in the table goes when the task is freed, as
 * its task storage would: the walk cannot tell the entries of exited tasks
 * from those of tasks asleep. Freed, not exiting: a walk that saw the task
 * (it runs in one RCU read section) has ended by then, so none can bring the
 * entry back. An entry this misses (a move of the walk's in between, a run
 * the kernel skipped) stays until a new task needs its place; a task that
 * later gets the same address has another start time.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} free_addr SEC(".maps"); /* the address as a number: stored, read back */

SEC("tp_btf/sched_process_free")
int BPF_PROG(taskwatch_free, struct task_struct *p)
{
	__u32 zero = 0, start = (__u32)p->start_time;
	__u64 *slot = bpf_map_lookup_elem(&free_addr, &zero), addr, seq;
	struct tw_task *e;

	if (!slot)
		return 0;
	*slot = (__u64)p; /* no arithmetic on a trusted pointer: a number from memory */
	addr = *(volatile __u64 *)slot;
	seq = *(volatile __u64 *)&move_seq;
	e = table_at(table_find(addr, start));
	if (e)
		e->addr = 0;
	/* none: it exited before a pass saw it busy, or a pass was moving it */
	else if (seq & 1 || seq != *(volatile __u64 *)&move_seq)
		__sync_fetch_and_add(&free_raced, 1);
	return 0;
}

/* A task moved between cgroups: the slots busy tasks keep are checked again.
 * Twins for kernels whose tracepoints take no BTF programs. */
static __always_inline int moved(void)
{
	__sync_fetch_and_add(&g.cg_moves, 1);
	return 0;
}

SEC("tp_btf/cgroup_attach_task")
int taskwatch_moved(void *ctx)
{
	return moved();
}

SEC("tp_btf/cgroup_transfer_tasks")
int taskwatch_transferred(void *ctx)
{
	return moved();
}

SEC("raw_tp/cgroup_attach_task")
int taskwatch_moved_raw(void *ctx)
{
	return moved();
}

SEC("raw_tp/cgroup_transfer_tasks")
int taskwatch_transferred_raw(void *ctx)
{
	return moved();
}
