/* SPDX-License-Identifier: GPL-2.0-only */
/* ABI of the opt-in block latency hook mode (biolat.bpf.c <-> biolat.c). */
#pragma once
#include "lathist.h"

#ifndef __bpf__
#include <linux/types.h>
#endif

#define BIOLAT_DEVICES	256   /* disks followed; more are counted as drops */
#define BIOLAT_INFLIGHT 16384 /* requests in flight tracked at once */

/* Per device (kernel dev_t of the whole disk) and CPU of completion. */
struct bio_hist {
	__u64 slots[LATHIST_BUCKETS];
	__u64 events;
	__u64 max_ns; /* longest in interval `epoch` */
	__u64 epoch;
};
_Static_assert(sizeof(struct bio_hist) == (LATHIST_BUCKETS + 3) * 8, "bio_hist ABI");

struct bio_globals {
	__u64 epoch;	      /* interval number, set by user space */
	__u64 drops_inflight; /* issues not tracked: too many requests in flight */
	__u64 drops_devices;  /* completions on disks beyond BIOLAT_DEVICES */
	__u64 pad;
};
