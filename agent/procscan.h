/* SPDX-License-Identifier: GPL-2.0-only */
/* Finds "the top process" of a scope when a rule fires, for captures that
 * target one process. Runs only at fire time, never per interval. */
#pragma once
#include <stdint.h>

enum procscan_by {
	PROCSCAN_CPU,	 /* most CPU time over a short sample */
	PROCSCAN_DSTATE, /* most threads in uninterruptible sleep */
	PROCSCAN_RSS,	 /* largest resident set */
	PROCSCAN_IO,	 /* most bytes read + written over a short sample */
};

struct top_process {
	int pid;
	char comm[16];
	double score; /* CPU %, D threads, RSS bytes or IO bytes/s */
};

/* Picks the top process on the host (cgroup NULL) or inside a cgroup (a path
 * in the hierarchy the capture filters use: v2, or v1's cpu controller).
 * Samples for sample_ms where the criterion is a rate. -ESRCH when none. */
int procscan_top(const char *procfs, const char *cgroup, enum procscan_by by, unsigned sample_ms,
		 struct top_process *out);
/* Criterion matching a metric: sched.dstate* -> D state, mem.* -> RSS, io.* -> IO, else CPU. */
enum procscan_by procscan_by_for_metric(const char *metric);
const char *procscan_by_name(enum procscan_by by);
