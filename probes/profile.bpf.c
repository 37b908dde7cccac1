// SPDX-License-Identifier: GPL-2.0-only
/* On-CPU profile: one perf cpu-clock sample per CPU at N Hz -> (task, stacks) counts. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "filter.bpf.h"
#include "profile.h"
#include "ustack.bpf.h"

#define EFAULT 14
#define ENOENT 2

#define STACKSTORE_DEPTH PROFILE_MAX_DEPTH
#include "stackstore.bpf.h"

/* max_entries set by user space from capture.max_stacks */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct profile_key);
	__type(value, u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PROFILE_STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void stat_inc(u32 which)
{
	u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		(*v)++;
}

/* The user stack's id by frame pointers. One of the sampled address alone
 * from a task whose user memory could not be read then is counted: the
 * profile says how many of its user stacks stop at their first frame so. */
static __always_inline s32 user_stack_get(struct bpf_perf_event_data *ctx)
{
	u32 frames = 0;
	s32 id = stack_get_n(ctx, BPF_F_USER_STACK, &frames);

	if (frames == 1 && !user_stack_readable())
		stat_inc(PROFILE_STAT_USER_UNREADABLE);
	return id;
}

/*
 * DWARF user stacks (ustack.bpf.h): a process in DWARF mode sends its stack
 * copy to user space, which counts the sample; an undecided one sends it with
 * the frame-pointer walk to compare. True when user space counts the sample.
 * Otherwise key->user_stack_id is the walk already done, or -ENOENT.
 */
static __always_inline bool profile_dwarf_sample(struct bpf_perf_event_data *ctx,
						 struct profile_key *key)
{
	u32 mode = ustack_mode(key->tgid);
	struct ustack_meta m = {
		.type = USTACK_REC_SAMPLE,
		.mode = mode,
		.tgid = key->tgid,
		.pid = key->pid,
		.cgroup_id = key->cgroup_id,
		.kern_stack_id = key->kern_stack_id,
		.user_stack_id = -1,
		.value = 1,
		.comm = key->comm,
	};

	key->user_stack_id = -ENOENT;
	if (mode == USTACK_FP)
		return false;
	if (mode == USTACK_UNDECIDED)
		key->user_stack_id = m.user_stack_id = user_stack_get(ctx);
	if (!ustack_send(&m))
		return false;
	stat_inc(PROFILE_STAT_SAMPLES);
	return true;
}

SEC("perf_event")
int profile_sample(struct bpf_perf_event_data *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct capture_filter *f = get_filter();
	struct profile_key key = {};
	u64 one = 1, *count;
	u64 cgid;

	if (!f)
		return 0;
	key.tgid = id >> 32;
	key.pid = (u32)id;
	if (key.pid == 0 && !(f->flags & FILTER_F_IDLE)) {
		stat_inc(PROFILE_STAT_IDLE);
		return 0;
	}
	cgid = task_cgid(f, task);
	if (!filter_match(f, task, key.tgid, cgid))
		return 0;
	key.cgroup_id = cgid;
	bpf_get_current_comm(&key.comm, sizeof(key.comm));

	key.kern_stack_id = stack_get(ctx, 0);
	if (profile_dwarf_sample(ctx, &key))
		return 0;
	if (key.user_stack_id == -ENOENT)
		key.user_stack_id = user_stack_get(ctx);
	/* -EFAULT for the user stack of a kernel thread is expected, not a loss */
	if (key.kern_stack_id < 0 && key.kern_stack_id != -EFAULT)
		stat_inc(PROFILE_STAT_STACK_LOST);
	if (key.user_stack_id < 0 && key.user_stack_id != -EFAULT)
		stat_inc(PROFILE_STAT_STACK_LOST);

	count = bpf_map_lookup_elem(&counts, &key);
	if (count) {
		__sync_fetch_and_add(count, 1);
	} else if (bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST)) {
		/* map full (or a racing insert on another CPU: retry once) */
		count = bpf_map_lookup_elem(&counts, &key);
		if (!count) {
			stat_inc(PROFILE_STAT_KEYS_FULL);
			return 0;
		}
		__sync_fetch_and_add(count, 1);
	}
	stat_inc(PROFILE_STAT_SAMPLES);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
