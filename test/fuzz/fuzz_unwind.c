// SPDX-License-Identifier: GPL-2.0-only
/* The DWARF unwinder on hostile input: the input is registers, a stack copy and
 * a whole ELF file (a tenant's binary, as the unwinder would read it), mapped at
 * 0x400000. Any crash, sanitizer report, leak or endless loop fails. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/unwind.h"

#define HDR   (8 + 17 * 8)
#define STACK 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct unwinder_opts o = {.cache_bytes = 16 << 20};
	struct unwind_input in = {0};
	struct unwind_result r;
	struct unwind_map m;
	struct unwinder *u;
	uint64_t pcs[64], off;
	uint8_t stack[STACK];
	size_t image;

	if (size < HDR + STACK + 64)
		return 0;
	image = size - HDR - STACK;
	memcpy(&off, data, 8);
	memcpy(in.regs, data + 8, 17 * 8);
	memcpy(stack, data + HDR, STACK);
	m = (struct unwind_map){0x400000, 0x400000 + ((image + 4095) & ~4095ull), 0, 1, 1};
	in.regs_valid = (1ull << 17) - 1;
	in.pc = m.start + off % (m.end - m.start);
	in.stack = stack;
	in.stack_len = STACK;
	/* the stack copy sits where the fuzzer's sp says, or at sp's page */
	in.stack_addr = in.regs[UNWIND_REG_SP] & ~7ull;
	in.maps = &m;
	in.nmaps = 1;
	if (unwinder_new(&u, &o))
		return 0;
	for (int tries = 0; tries < 2; tries++) {
		if (unwinder_unwind(u, &in, pcs, 64, &r) || r.status != UNWIND_NEED_FILE)
			break;
		unwinder_add_image(u, &m, data + HDR + STACK, image);
	}
	unwinder_free(&u);
	return 0;
}
