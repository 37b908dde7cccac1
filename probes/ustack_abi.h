/* SPDX-License-Identifier: GPL-2.0-only */
/* ABI between ustack.bpf.h (in profile.bpf.c and offcpu.bpf.c) and probes/ustack.c:
 * user stacks unwound with DWARF CFI in user space from a copy of the user
 * stack and registers taken at sample time (docs/symbolization.md). */
#pragma once
#include "filter.h"

/* A process's user stacks are walked by frame pointer (FP) in the kernel, or
 * copied for DWARF unwinding; undecided processes send both until user space
 * has compared them (mode auto). */
enum ustack_mode { USTACK_UNDECIDED = 0, USTACK_FP = 1, USTACK_DWARF = 2 };

enum ustack_rec_type {
	USTACK_REC_SAMPLE = 1,	  /* profile: one sample, counted by user space */
	USTACK_REC_BLOCK = 2,	  /* offcpu: a block's user stack, joined by seq */
	USTACK_REC_BLOCK_END = 3, /* offcpu: the block ended after value ns; no stack */
};

#define USTACK_F_PROBE 1u /* undecided process: user_stack_id is the FP walk to compare */

#define USTACK_MAX_BYTES 65536u /* largest stack copy unwind.stack_size allows */
#define USTACK_PAGE	 4096u
#define USTACK_NREGS	 33 /* DWARF numbering; x86_64 uses 0..16, aarch64 0..31 */
#define USTACK_COMM_LEN	 16

struct ustack_hdr {
	u32 type;  /* enum ustack_rec_type */
	u32 flags; /* USTACK_F_* */
	u32 tgid;
	u32 pid;
	u64 cgroup_id;
	s32 kern_stack_id;
	s32 user_stack_id; /* probes: the frame-pointer walk, in the capture's stack map */
	u32 state;	   /* offcpu: enum sched_st */
	u32 stack_len;	   /* bytes of stack after the header */
	u64 seq;	   /* offcpu: the block's id */
	u64 value;	   /* profile: 1; BLOCK_END: ns blocked */
	char comm[USTACK_COMM_LEN];
	u64 regs_valid; /* bit n: regs[n] */
	u64 pc;
	u64 regs[USTACK_NREGS];
	/* then stack_len bytes copied from regs[sp] up */
};

enum ustack_stat {
	USTACK_STAT_SENT,      /* records with a stack copy */
	USTACK_STAT_RING_FULL, /* records the ring buffer could not take (sample fell back to FP) */
	USTACK_STAT_PAUSED,    /* samples walked by FP: user space was over its CPU budget */
	USTACK_STAT_SHORT_COPY, /* copies cut at the end of the stack's mapping */
	USTACK_STAT_NO_STACK,	/* no user stack could be read at all */
	USTACK_STAT_MAX
};

_Static_assert(sizeof(struct ustack_hdr) == 88 + USTACK_NREGS * 8, "ustack_hdr ABI");
