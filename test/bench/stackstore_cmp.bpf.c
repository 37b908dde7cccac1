// SPDX-License-Identifier: GPL-2.0-only
/* The two ways of keeping stacks, side by side on the same perf clock: the
 * kernel's stack-trace map (what the captures used before) and the content
 * store the captures use now (probes/stackstore.bpf.h). bench_stackstore. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "stackstore.bpf.h"

#define EFAULT 14

/* max_entries set by user space: the buckets a capture.max_stacks gave */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 4096);
	__uint(key_size, sizeof(u32));
	__uint(value_size, STACKSTORE_DEPTH * sizeof(u64));
} trace_stacks SEC(".maps");

/* 0: trace-map samples, 1: trace-map stacks lost, 2: store samples, 3: store stacks lost */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void stat_inc(u32 which)
{
	u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		(*v)++;
}

SEC("perf_event")
int trace_map_sample(struct bpf_perf_event_data *ctx)
{
	s32 k = bpf_get_stackid(ctx, &trace_stacks, 0);
	s32 u = bpf_get_stackid(ctx, &trace_stacks, BPF_F_USER_STACK);

	stat_inc(0);
	if (k < 0 && k != -EFAULT)
		stat_inc(1);
	if (u < 0 && u != -EFAULT)
		stat_inc(1);
	return 0;
}

SEC("perf_event")
int store_sample(struct bpf_perf_event_data *ctx)
{
	s32 k = stack_get(ctx, 0);
	s32 u = stack_get(ctx, BPF_F_USER_STACK);

	stat_inc(2);
	if (k < 0 && k != -EFAULT)
		stat_inc(3);
	if (u < 0 && u != -EFAULT)
		stat_inc(3);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
