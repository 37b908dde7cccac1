/* SPDX-License-Identifier: GPL-2.0-only */
/* ABI of the opt-in run-queue latency hook mode (runqlat.bpf.c <-> runqlat.c). */
#pragma once
#include "lathist.h"

#ifndef __bpf__
#include <linux/types.h>
#endif

/* One per CPU: waits that ended on that CPU (the wakee got it). */
struct runq_hist {
	__u64 slots[LATHIST_BUCKETS];
	__u64 events; /* waits measured */
	__u64 drops;  /* wakeups not stamped: no room for the task's start time */
};
_Static_assert(sizeof(struct runq_hist) == (LATHIST_BUCKETS + 2) * 8, "runq_hist ABI");
