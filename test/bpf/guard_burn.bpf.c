// SPDX-License-Identifier: GPL-2.0-only
/* Test-only: a deliberately expensive program on every syscall of one process,
 * so the run-time guard has real kernel time to measure. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile u32 target_tgid = 0;
u64 sink;

SEC("raw_tp/sys_enter")
int guard_burn(void *ctx)
{
	u64 x = bpf_get_current_pid_tgid();

	if ((u32)(x >> 32) != target_tgid)
		return 0;
	/* a few microseconds of work per syscall */
	for (int i = 0; i < 2000; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	sink = x;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
