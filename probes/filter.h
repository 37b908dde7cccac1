/* SPDX-License-Identifier: GPL-2.0-only */
/* ABI shared by every capture program and user space: the target filter. */
#pragma once
#ifndef __VMLINUX_H__
#include <linux/types.h>
typedef __u32 u32;
typedef __s32 s32;
typedef __u64 u64;
#endif

enum filter_mode { FILTER_ALL = 0, FILTER_TGID = 1, FILTER_CGROUP = 2 };

#define FILTER_MAX_LEVEL 16
/* include the idle task (pid 0) in samples */
#define FILTER_F_IDLE 1u

struct capture_filter {
	u32 mode;	   /* enum filter_mode */
	u32 tgid;	   /* FILTER_TGID */
	u64 cgroup_id;	   /* FILTER_CGROUP */
	s32 cgroup_subsys; /* hierarchy for cgroup ids: -1 = v2, else v1 controller index */
	u32 flags;	   /* FILTER_F_* */
};

_Static_assert(sizeof(struct capture_filter) == 24, "capture_filter ABI");
