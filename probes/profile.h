/* SPDX-License-Identifier: GPL-2.0-only */
/* profile: on-CPU stacks sampled by a perf cpu-clock event. ABI with profile.bpf.c. */
#pragma once
#include "filter.h"

#define PROFILE_MAX_DEPTH 127 /* frames per stack, each side (kernel, user) */
#define TASK_COMM_LEN_	  16

struct profile_key {
	u32 tgid;
	u32 pid;
	u64 cgroup_id;
	s32 user_stack_id; /* < 0: none (kernel thread) or lost */
	s32 kern_stack_id;
	char comm[TASK_COMM_LEN_];
};

enum profile_stat {
	PROFILE_STAT_SAMPLES,	      /* samples counted into a key */
	PROFILE_STAT_IDLE,	      /* idle samples skipped */
	PROFILE_STAT_KEYS_FULL,	      /* samples lost: counts map full */
	PROFILE_STAT_STACK_LOST,      /* stacks lost: the stack store full (stackstore.bpf.h) */
	PROFILE_STAT_USER_UNREADABLE, /* user stacks of one frame: user memory unreadable then */
	PROFILE_STAT_MAX
};

_Static_assert(sizeof(struct profile_key) == 40, "profile_key ABI");
