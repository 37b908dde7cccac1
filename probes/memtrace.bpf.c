// SPDX-License-Identifier: GPL-2.0-only
/*
 * memtrace: page faults per process (exceptions:page_fault_user/kernel), and
 * stalls in direct reclaim, memory-cgroup reclaim and direct compaction, timed
 * between their begin and end tracepoints in the stalled task's own context,
 * with the kernel and user stacks taken at the begin.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "filter.bpf.h"
#include "memtrace.h"

#define EEXIST_ 17
#define EFAULT_ 14

/* max_entries: set by user space */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct mem_faults);
} faults SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct mem_proc_info);
} procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mem_stall_start_key);
	__type(value, struct mem_stall_start);
} stall_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__type(key, struct mem_stall_key);
	__type(value, struct mem_stall_val);
} stalls SEC(".maps");

#define STACKSTORE_DEPTH MEMTRACE_STACK_DEPTH
#include "stackstore.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MEM_STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void stat_inc(u32 which)
{
	u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		(*v)++;
}

static __always_inline void note_proc(struct task_struct *task, u32 tgid, u64 cgid)
{
	struct mem_proc_info pi = {.cgroup_id = cgid};

	if (bpf_map_lookup_elem(&procs, &tgid))
		return;
	BPF_CORE_READ_STR_INTO(&pi.comm, task, group_leader, comm);
	if (bpf_map_update_elem(&procs, &tgid, &pi, BPF_NOEXIST) == -7 /* E2BIG: full */)
		stat_inc(MEM_STAT_PROCS_FULL);
}

/* ---- page faults: on every fault of the host while attached ---- */

static __always_inline int fault(bool user)
{
	struct capture_filter *f = get_filter();
	struct task_struct *task;
	struct mem_faults *v;
	u32 tgid;
	u64 cgid;

	if (!f)
		return 0;
	tgid = bpf_get_current_pid_tgid() >> 32;
	if (f->mode == FILTER_TGID && tgid != f->tgid)
		return 0;
	task = current_task();
	if (f->mode == FILTER_CGROUP && !filter_match(f, task, tgid, task_cgid(f, task)))
		return 0;
	v = bpf_map_lookup_elem(&faults, &tgid);
	if (!v) {
		struct mem_faults zero = {};
		long err = bpf_map_update_elem(&faults, &tgid, &zero, BPF_NOEXIST);

		if (err && err != -EEXIST_) {
			stat_inc(MEM_STAT_FAULT_KEYS_FULL);
			return 0;
		}
		v = bpf_map_lookup_elem(&faults, &tgid);
		if (!v)
			return 0;
		cgid = task_cgid(f, task);
		note_proc(task, tgid, cgid);
	}
	/* per-CPU value: plain adds */
	if (user)
		v->user++;
	else
		v->kernel++;
	stat_inc(MEM_STAT_FAULTS);
	return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(mem_fault_user_btf)
{
	return fault(true);
}

SEC("raw_tp/page_fault_user")
int BPF_PROG(mem_fault_user_raw)
{
	return fault(true);
}

SEC("tp_btf/page_fault_kernel")
int BPF_PROG(mem_fault_kernel_btf)
{
	return fault(false);
}

SEC("raw_tp/page_fault_kernel")
int BPF_PROG(mem_fault_kernel_raw)
{
	return fault(false);
}

/* ---- stalls: rare, expensive events; a stack each ---- */

static __always_inline int stall_begin(void *ctx, u32 type)
{
	struct capture_filter *f = get_filter();
	struct task_struct *task;
	struct mem_stall_start s = {};
	struct mem_stall_start_key k;
	u64 id;
	u32 tgid;

	if (!f)
		return 0;
	id = bpf_get_current_pid_tgid();
	tgid = id >> 32;
	if (f->mode == FILTER_TGID && tgid != f->tgid)
		return 0;
	task = current_task();
	/* kcompactd and kswapd compact and reclaim in the background: no one waits */
	if (type != MEM_STALL_DIRECT_RECLAIM && task_is_kthread(task))
		return 0;
	if (!filter_match(f, task, tgid, task_cgid(f, task)))
		return 0;
	k.pid = (u32)id;
	k.type = type;
	s.kern_stack_id = stack_get(ctx, 0);
	s.user_stack_id = task_is_kthread(task) ? -EFAULT_ : stack_get(ctx, BPF_F_USER_STACK);
	if ((s.kern_stack_id < 0 && s.kern_stack_id != -EFAULT_) ||
	    (s.user_stack_id < 0 && s.user_stack_id != -EFAULT_))
		stat_inc(MEM_STAT_STACK_LOST);
	s.ts = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&stall_start, &k, &s, BPF_ANY))
		stat_inc(MEM_STAT_STALL_START_FULL);
	return 0;
}

static __always_inline int stall_end(u32 type)
{
	u64 id = bpf_get_current_pid_tgid();
	struct mem_stall_start_key k = {.pid = (u32)id, .type = type};
	struct mem_stall_start *s = bpf_map_lookup_elem(&stall_start, &k);
	struct capture_filter *f = get_filter();
	struct mem_stall_key key = {};
	struct mem_stall_val *v;
	struct task_struct *task;
	u64 delta;

	if (!s || !f)
		return 0;
	delta = bpf_ktime_get_ns() - s->ts;
	task = current_task();
	key.tgid = id >> 32;
	key.pid = (u32)id;
	key.kern_stack_id = s->kern_stack_id;
	key.user_stack_id = s->user_stack_id;
	key.type = type;
	key.cgroup_id = task_cgid(f, task);
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	bpf_map_delete_elem(&stall_start, &k);
	v = bpf_map_lookup_elem(&stalls, &key);
	if (!v) {
		struct mem_stall_val zero = {};

		bpf_map_update_elem(&stalls, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&stalls, &key);
		if (!v) {
			stat_inc(MEM_STAT_STALLS_FULL);
			return 0;
		}
	}
	__sync_fetch_and_add(&v->count, 1);
	__sync_fetch_and_add(&v->total_ns, delta);
	if (delta > v->max_ns)
		v->max_ns = delta; /* racy by design: understates one maximum at worst */
	note_proc(task, key.tgid, key.cgroup_id);
	stat_inc(MEM_STAT_STALLS);
	return 0;
}

/* The arguments differ between kernels and are not needed: only who and when. */
#define STALL_PROGS(name, tp, type)                                                                \
	SEC("tp_btf/" #tp "_begin")                                                                \
	int BPF_PROG(mem_##name##_begin_btf)                                                       \
	{                                                                                          \
		return stall_begin(ctx, type);                                                     \
	}                                                                                          \
	SEC("raw_tp/" #tp "_begin")                                                                \
	int BPF_PROG(mem_##name##_begin_raw)                                                       \
	{                                                                                          \
		return stall_begin(ctx, type);                                                     \
	}                                                                                          \
	SEC("tp_btf/" #tp "_end")                                                                  \
	int BPF_PROG(mem_##name##_end_btf)                                                         \
	{                                                                                          \
		return stall_end(type);                                                            \
	}                                                                                          \
	SEC("raw_tp/" #tp "_end")                                                                  \
	int BPF_PROG(mem_##name##_end_raw)                                                         \
	{                                                                                          \
		return stall_end(type);                                                            \
	}

STALL_PROGS(reclaim, mm_vmscan_direct_reclaim, MEM_STALL_DIRECT_RECLAIM)
STALL_PROGS(memcg, mm_vmscan_memcg_reclaim, MEM_STALL_MEMCG_RECLAIM)
STALL_PROGS(compact, mm_compaction, MEM_STALL_COMPACTION)

char LICENSE[] SEC("license") = "GPL";
