/* SPDX-License-Identifier: GPL-2.0-only */
/* A known call chain built with -O2 -fomit-frame-pointer (test/CMakeLists.txt):
 * unwind_chain_01 -> ... -> unwind_chain_12 -> leaf. Each link keeps a frame of
 * its own size and does work after the call, so none is inlined or turned into
 * a tail call, and none keeps a frame pointer: a frame-pointer walk cannot get
 * through it, a CFI walk must. */
#pragma once

#define UNWIND_CHAIN_DEPTH 12

/* Keeps a function a real call with a frame of its own. gcc's noipa also stops it being
 * cloned or its callers specialised; clang has no noipa (and under -Werror fails on it),
 * and noinline does the same there for functions whose address escapes or that are
 * extern, as every user of this is. */
#if defined(__clang__)
#define UNWIND_NOIPA __attribute__((noinline))
#else
#define UNWIND_NOIPA __attribute__((noipa))
#endif

typedef long (*unwind_chain_leaf)(void *arg);

long unwind_chain_01(unwind_chain_leaf leaf, void *arg, long x);

#include <stddef.h>
#include <stdint.h>

/* What BPF takes at sample time, taken by the thread itself (x86_64 only):
 * registers in DWARF numbering and a copy of its stack up to stack_end. */
struct unwind_chain_snap {
	uint64_t regs[17];
	uint64_t pc;
	uint64_t stack_addr, stack_end; /* stack_end: set by the caller */
	uint8_t *stack;			/* cap bytes, owned by the caller */
	size_t cap, len;
};

/* A leaf for the chain: arg is a struct unwind_chain_snap. */
long unwind_chain_snapshot(void *arg);
