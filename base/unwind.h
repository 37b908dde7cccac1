/* SPDX-License-Identifier: GPL-2.0-only */
/* User stacks from DWARF call frame information (CFI), for code built without
 * frame pointers: a bounded copy of a thread's user stack and its registers,
 * taken in BPF at sample time, is unwound frame by frame with the .eh_frame
 * (else .debug_frame) of each mapped file, read through libdw.
 *
 * Self-contained and serialisable on purpose, so that it can run in a
 * separate unprivileged process: the input is plain data (registers, stack
 * bytes, the process's executable mappings), the output is return addresses
 * and a status, and files reach it only as descriptors the caller opened
 * (unwinder_add_file after UNWIND_NEED_FILE). No global state; the per-file
 * CFI cache is bounded by opts.cache_bytes. Every file is hostile input:
 * section sizes are checked before anything is read, expressions run with a
 * bounded stack and step count, memory reads never leave the stack copy. */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* DWARF register numbers. x86_64: 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi,
 * 6 rbp, 7 rsp, 8-15 r8-r15, 16 the return address (rip). aarch64: 0-30
 * x0-x30 (29 fp, 30 lr), 31 sp. */
#define UNWIND_MAX_REGS 33

#if defined(__x86_64__)
#define UNWIND_REG_SP 7
#define UNWIND_REG_FP 6
#define UNWIND_NREGS  17
#elif defined(__aarch64__)
#define UNWIND_REG_SP 31
#define UNWIND_REG_FP 29
#define UNWIND_NREGS  32
#else
#define UNWIND_REG_SP 0
#define UNWIND_REG_FP 0
#define UNWIND_NREGS  0
#endif

/* dev/ino of the agent's own [vdso] image (every process maps the same one) */
#define UNWIND_VDSO_DEV UINT64_MAX
#define UNWIND_VDSO_INO UINT64_MAX

enum unwind_status {
	UNWIND_OK,	  /* reached the outermost frame (its return address is undefined) */
	UNWIND_TRUNCATED, /* the stack copy or the frame limit ended the walk */
	UNWIND_NEED_FILE, /* add the file of maps[need_map] (unwinder_add_file), then retry */
	UNWIND_NO_MAP,	  /* a pc outside every executable mapping */
	UNWIND_NO_CFI,	  /* no CFI for a pc, and no frame pointer to fall back on */
	UNWIND_BAD_CFI,	  /* CFI that could not be evaluated, or a frame that did not advance */
	UNWIND_STATUS_MAX
};

/* An executable file mapping of the process. */
struct unwind_map {
	uint64_t start, end, pgoff;
	uint64_t dev, ino; /* the file's identity: what the cache is keyed by */
};

struct unwind_input {
	uint64_t regs[UNWIND_MAX_REGS]; /* DWARF numbering */
	uint64_t regs_valid;		/* bit n: regs[n] is known */
	uint64_t pc;			/* where the thread was */
	const uint8_t *stack;		/* stack_len bytes copied from stack_addr up */
	size_t stack_len;
	uint64_t stack_addr;
	const struct unwind_map *maps; /* sorted by start, not overlapping */
	unsigned nmaps;
};

struct unwind_result {
	unsigned n; /* return addresses written, leaf (pc) first */
	enum unwind_status status;
	int need_map;	    /* UNWIND_NEED_FILE: index in maps */
	unsigned fp_frames; /* frames stepped by frame pointer (no CFI there) */
};

struct unwinder_opts {
	uint64_t cache_bytes; /* cap for cached CFI (estimated from what was read) */
	unsigned max_files;   /* files cached, 0: 1024 */
};

struct unwinder_stats {
	uint64_t files_cached, cache_bytes, cache_cap;
	uint64_t files_added;	/* files read */
	uint64_t files_refused; /* unreadable, not ELF, no CFI, or CFI over the size cap */
	uint64_t evictions;	/* files dropped to make room (LRU) */
	uint64_t unwinds;	/* unwinder_unwind calls that produced a result */
	uint64_t frames;	/* return addresses produced */
	uint64_t by_status[UNWIND_STATUS_MAX];
};

struct unwinder;

int unwinder_new(struct unwinder **out, const struct unwinder_opts *opts);
void unwinder_free(struct unwinder **u);

/* Unwinds in->regs/in->stack into at most max return addresses. 0 with
 * res->status saying how it ended, or -errno for bad arguments. */
int unwinder_unwind(struct unwinder *u, const struct unwind_input *in, uint64_t *pcs, unsigned max,
		    struct unwind_result *res);
/* Reads the CFI of map m's file from fd (the caller keeps and closes fd;
 * nothing reads it after this returns). fd < 0, or a file without usable
 * CFI, is remembered as such so it is not asked for again. */
int unwinder_add_file(struct unwinder *u, const struct unwind_map *m, int fd);
/* The same from an image in memory (the vDSO); copied. */
int unwinder_add_image(struct unwinder *u, const struct unwind_map *m, const void *image,
		       size_t len);
/* Drops every cached file (after an incident, or when files may have changed). */
void unwinder_flush(struct unwinder *u);
void unwinder_get_stats(const struct unwinder *u, struct unwinder_stats *out);
const char *unwind_status_name(enum unwind_status s);
