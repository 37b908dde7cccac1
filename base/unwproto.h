/* SPDX-License-Identifier: GPL-2.0-only */
/* The unwinder (base/unwind.h) in the sandboxed helper: requests and answers
 * of opcode SYMP_OP_UNWIND (base/sandbox.h, base/symproto.h). The helper keeps
 * one unwinder, with its CFI cache, and the executable mappings of the
 * processes it unwinds, each under the generation the agent gave it; a
 * request naming mappings it does not hold is answered UNWR_NEED_MAPS. */
#pragma once
#include <stdint.h>

#include "base/unwind.h"

#define SYMP_OP_UNWIND	  16
#define UNWR_NEED_MAPS	  100 /* status: send the mappings (UNWR_MAPS), ask again */
#define UNWR_MAPS_PER_MSG 1024
#define UNWR_PROCS	  64 /* processes' mappings the helper keeps */

enum unwr_cmd {
	UNWR_MAPS = 1,	 /* maps[first .. first + count) of total: the process's mappings */
	UNWR_UNWIND = 2, /* registers + stack bytes -> return addresses */
	UNWR_FILE = 3,	 /* fds[0]: the file of map */
	UNWR_IMAGE = 4,	 /* image bytes follow: the vDSO */
	UNWR_BATCH = 5,	 /* count unwr_item + their stacks -> count unwr_result + pcs */
};

#define UNWR_BATCH_MAX 64 /* stacks in one batch (and what fits one request) */

/* One stack of a batch; its stack_len bytes follow all the items, in order. */
struct unwr_item {
	uint32_t tgid;
	uint32_t stack_len;
	uint64_t gen;
	uint64_t regs[UNWIND_MAX_REGS];
	uint64_t regs_valid, pc, stack_addr;
};

/* One answer of a batch; its n return addresses follow all the results. */
struct unwr_result {
	uint32_t status; /* enum unwind_status, or UNWR_NEED_MAPS */
	uint32_t n;
	int32_t need_map;
	uint32_t fp_frames;
};

struct unwr_req {
	uint32_t cmd;
	uint32_t tgid;
	uint64_t gen;		      /* which reading of tgid's mappings */
	uint64_t cache_bytes;	      /* the unwinder's cap, from the agent's configuration */
	uint32_t first, count, total; /* UNWR_MAPS; count: stacks of UNWR_BATCH */
	uint32_t max_pcs;	      /* return addresses per stack */
	struct unwind_map map;	      /* UNWR_FILE, UNWR_IMAGE */
	uint64_t regs[UNWIND_MAX_REGS];
	uint64_t regs_valid, pc, stack_addr;
	uint32_t stack_len;
	uint32_t pad;
	/* then: struct unwind_map[count] (UNWR_MAPS), stack_len bytes (UNWR_UNWIND),
	 * the image (UNWR_IMAGE) */
};

struct unwr_reply {
	uint32_t status; /* enum unwind_status, or UNWR_NEED_MAPS */
	uint32_t n;	 /* return addresses that follow */
	int32_t need_map;
	uint32_t fp_frames;
	struct unwinder_stats stats;
	/* then: uint64_t pcs[n] */
};
