// SPDX-License-Identifier: GPL-2.0-only
/* Benchmark floor: programs that do nothing, on the tracepoints the agent's
 * hooks use. Whatever they cost is the price of being attached at all. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tp_btf/sched_switch")
int BPF_PROG(empty_sched_switch)
{
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(empty_sched_wakeup)
{
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(empty_sched_wakeup_new)
{
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(empty_block_rq_issue)
{
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(empty_block_rq_complete)
{
	return 0;
}

SEC("raw_tp/sys_enter")
int empty_sys_enter(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
