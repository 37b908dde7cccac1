/* SPDX-License-Identifier: GPL-2.0-only */
/* Stacks stored by content, without collisions (docs/captures.md#stacks).
 *
 * BPF_MAP_TYPE_STACK_TRACE keeps one stack per hash bucket and refuses a
 * second stack whose 32-bit hash lands in an occupied bucket: a 10 s host-wide
 * profile on 2 CPUs lost ~4% of its stacks that way with 16384 buckets, and
 * still ~1.3% with 65536. Here a stack is walked into a per-CPU buffer
 * (bpf_get_stack) and hashed to 64 bits with a per-window seed; its id is 31
 * bits of that hash, claimed in `stack_hash` (id -> the full hash). An id
 * already claimed by another stack (the 64-bit hashes differ) is probed with
 * other bits of the hash, so two stacks never share an id. Ids stay
 * non-negative s32 and `stacks` is read by id as a stack-trace map was; the
 * only bound is the maps' size (capture.max_stacks distinct stacks per
 * window), and reaching it is counted by the caller. No atomics: runs on
 * kernels without BPF fetch-and-add (5.10).
 *
 * Include once per BPF object, in place of a stack-trace map named `stacks`.
 * User space sizes the maps and resets them per window (probes/stackstore.h). */
#pragma once

#ifndef STACKSTORE_DEPTH
#define STACKSTORE_DEPTH 127
#endif
#define STACKSTORE_PROBES 4

struct stackstore_frames {
	u64 ip[STACKSTORE_DEPTH];
};

/* the window's hash seed, drawn by user space */
struct stackstore_state {
	u64 seed;
};

/* max_entries of stacks and stack_hash (and stacks' value size) are set by user space */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, struct stackstore_frames);
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, u64);
} stack_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct stackstore_state);
} stack_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct stackstore_frames);
} stack_scratch SEC(".maps");

#define STACKSTORE_EFAULT 14
#define STACKSTORE_ENOSPC 28
#define STACKSTORE_ENOMEM 12
#define STACKSTORE_EEXIST 17

/*
 * The id of the current kernel (flags 0) or user (BPF_F_USER_STACK) stack:
 * >= 0, or -EFAULT when there is none (a kernel thread's user stack, a
 * user-mode sample's kernel stack), -ENOSPC when the store is full, -EEXIST
 * when every probed id belongs to another stack (odds ~2^-120), another
 * negative errno when the walk failed. *frames: how many frames it holds.
 */
static __always_inline s32 stack_get_n(void *ctx, u64 flags, u32 *frames)
{
	struct stackstore_frames *buf;
	struct stackstore_state *st;
	u32 zero = 0, id;
	long len;
	u64 h, *have;

	buf = bpf_map_lookup_elem(&stack_scratch, &zero);
	st = bpf_map_lookup_elem(&stack_state, &zero);
	if (!buf || !st)
		return -STACKSTORE_ENOMEM;
	/* zeroes the rest of buf: unused frames read as 0 */
	len = bpf_get_stack(ctx, buf->ip, sizeof(buf->ip), flags);
	if (len <= 0)
		return len < 0 ? (s32)len : -STACKSTORE_EFAULT;
	*frames = (u32)(len / 8);
	/* seeded in every round, so colliding stacks cannot be made without the seed */
	h = st->seed ^ (flags & BPF_F_USER_STACK ? 0x9e3779b97f4a7c15ull : 0) ^ (u64)len;
	for (int i = 0; i < STACKSTORE_DEPTH; i++) {
		if (i >= len / 8)
			break;
		h = (h ^ buf->ip[i] ^ st->seed) * 0xff51afd7ed558ccdull;
		h ^= h >> 29;
	}
	h |= 1; /* never 0: a claimed id always holds a nonzero hash */
	for (int p = 0; p < STACKSTORE_PROBES; p++) {
		id = (u32)(h >> (p * 11)) & 0x7fffffff;
		have = bpf_map_lookup_elem(&stack_hash, &id);
		if (have) {
			if (*have == h)
				return (s32)id;
			continue; /* another stack's id: probe further */
		}
		if (bpf_map_update_elem(&stack_hash, &id, &h, BPF_NOEXIST) == 0) {
			if (bpf_map_update_elem(&stacks, &id, buf, BPF_ANY)) {
				bpf_map_delete_elem(&stack_hash, &id);
				return -STACKSTORE_ENOSPC;
			}
			return (s32)id;
		}
		/* claimed on another CPU meanwhile (same stack, or not), or full */
		have = bpf_map_lookup_elem(&stack_hash, &id);
		if (!have)
			return -STACKSTORE_ENOSPC;
		if (*have == h)
			return (s32)id;
	}
	return -STACKSTORE_EEXIST;
}

/* stack_get_n without the frame count */
static __always_inline s32 stack_get(void *ctx, u64 flags)
{
	u32 frames;

	return stack_get_n(ctx, flags, &frames);
}
