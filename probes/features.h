/* SPDX-License-Identifier: GPL-2.0-only */
/* features: tiny programs `autotrace probes` loads and attaches, one at a time,
 * to learn what this kernel really supports. ABI with features.bpf.c. */
#pragma once
#ifndef __VMLINUX_H__
#include <linux/types.h>
typedef __u32 u32;
typedef __u64 u64;
#endif

/* Slots of features.bpf.c's hits[]: each program counts its own runs there. */
enum feature_hit {
	FHIT_TP_BTF,
	FHIT_RAW_TP,
	FHIT_TRACEPOINT,
	FHIT_KPROBE,
	FHIT_FENTRY,
	FHIT_PERF_EVENT,
	FHIT_TASK_ITER,
	FHIT_RINGBUF,
	FHIT_UPROBE,
	FHIT_MAX
};

/* One ring-buffer record, to prove the ring carries data end to end. */
struct feature_record {
	u32 type; /* FEATURE_RECORD_HELLO */
	u32 pid;
	u64 magic;
};

#define FEATURE_RECORD_HELLO 1
#define FEATURE_MAGIC	     0x6175746f74726163ull /* "autotrac" */

_Static_assert(sizeof(struct feature_record) == 16, "feature_record ABI");
