// SPDX-License-Identifier: GPL-2.0-only
#include "unwind_chain.h"

/* pad: a frame size of its own per link, so CFA offsets differ between frames */
#define LINK(n, size, call)                                                                        \
	UNWIND_NOIPA long unwind_chain_##n(unwind_chain_leaf leaf, void *arg, long x)              \
	{                                                                                          \
		volatile long pad[size + 1];                                                       \
		long r;                                                                            \
                                                                                                   \
		pad[0] = x;                                                                        \
		pad[size] = x + size;                                                              \
		r = call;                                                                          \
		return r * 3 + pad[0] + pad[size];                                                 \
	}

long unwind_chain_02(unwind_chain_leaf leaf, void *arg, long x);
long unwind_chain_03(unwind_chain_leaf leaf, void *arg, long x);
long unwind_chain_04(unwind_chain_leaf leaf, void *arg, long x);
long unwind_chain_05(unwind_chain_leaf leaf, void *arg, long x);
long unwind_chain_06(unwind_chain_leaf leaf, void *arg, long x);
long unwind_chain_07(unwind_chain_leaf leaf, void *arg, long x);
long unwind_chain_08(unwind_chain_leaf leaf, void *arg, long x);
long unwind_chain_09(unwind_chain_leaf leaf, void *arg, long x);
long unwind_chain_10(unwind_chain_leaf leaf, void *arg, long x);
long unwind_chain_11(unwind_chain_leaf leaf, void *arg, long x);
long unwind_chain_12(unwind_chain_leaf leaf, void *arg, long x);

LINK(12, 12, leaf(arg))
LINK(11, 11, unwind_chain_12(leaf, arg, x + 1))
LINK(10, 10, unwind_chain_11(leaf, arg, x + 1))
LINK(09, 9, unwind_chain_10(leaf, arg, x + 1))
LINK(08, 8, unwind_chain_09(leaf, arg, x + 1))
LINK(07, 7, unwind_chain_08(leaf, arg, x + 1))
LINK(06, 6, unwind_chain_07(leaf, arg, x + 1))
LINK(05, 5, unwind_chain_06(leaf, arg, x + 1))
LINK(04, 4, unwind_chain_05(leaf, arg, x + 1))
LINK(03, 3, unwind_chain_04(leaf, arg, x + 1))
LINK(02, 2, unwind_chain_03(leaf, arg, x + 1))
LINK(01, 1, unwind_chain_02(leaf, arg, x + 1))

#if defined(__x86_64__)
/* Not instrumented (no sanitizer in this file): the stack holds redzones a
 * sanitizer's memcpy would refuse to read. */
static void copy_stack(uint8_t *dst, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((volatile uint8_t *)dst)[i] = ((const volatile uint8_t *)src)[i];
}

UNWIND_NOIPA long unwind_chain_snapshot(void *arg)
{
	struct unwind_chain_snap *s = arg;
	uint64_t r[9];
	size_t n;

	/* one asm statement: rip and rsp of the same instruction */
	__asm__ volatile("lea 0(%%rip), %%rax\n\t"
			 "mov %%rax, 0(%0)\n\t"
			 "mov %%rsp, 8(%0)\n\t"
			 "mov %%rbp, 16(%0)\n\t"
			 "mov %%rbx, 24(%0)\n\t"
			 "mov %%r12, 32(%0)\n\t"
			 "mov %%r13, 40(%0)\n\t"
			 "mov %%r14, 48(%0)\n\t"
			 "mov %%r15, 56(%0)\n\t"
			 :
			 : "r"(r)
			 : "rax", "memory");
	s->pc = r[0];
	s->regs[16] = r[0];
	s->regs[7] = r[1];
	s->regs[6] = r[2];
	s->regs[3] = r[3];
	s->regs[12] = r[4];
	s->regs[13] = r[5];
	s->regs[14] = r[6];
	s->regs[15] = r[7];
	s->stack_addr = r[1];
	n = s->stack_end > r[1] ? (size_t)(s->stack_end - r[1]) : 0;
	if (n > s->cap)
		n = s->cap;
	copy_stack(s->stack, (const uint8_t *)(uintptr_t)r[1], n);
	s->len = n;
	return (long)n;
}
#endif
