/* SPDX-License-Identifier: GPL-2.0-only */
/* DWARF user stacks, the BPF half (probes/ustack_abi.h): a process in DWARF
 * mode has its user registers and a bounded copy of its user stack sent to
 * user space through a ring buffer instead of a frame-pointer walk. All of it
 * sits behind the rodata flag ustack_enabled: with unwind.mode off the
 * verifier removes it. Included by profile.bpf.c and offcpu.bpf.c. */
#pragma once
#include "core_fixes.bpf.h"
#include "ustack_abi.h"

/* set by user space before load (unwind.* in the configuration); plain C
 * types so every skeleton reads them without the kernel's typedefs */
const volatile bool ustack_enabled = false;
const volatile bool ustack_always = false;	    /* unwind.mode always: no FP comparison */
const volatile unsigned int ustack_stack_bytes = 0; /* <= USTACK_MAX_BYTES */
/* set by user space while a window runs: over its unwinding CPU budget */
volatile unsigned int ustack_paused = 0;
/* a power of two no smaller than the number of CPUs: ustack_next_seq() */
const volatile unsigned int ustack_cpu_stride = 1;

/* sizes set by user space */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ustack_rb SEC(".maps");

/* one record per CPU: header + ustack_stack_bytes + a page of slack for the
 * verifier (value_size set by user space) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(struct ustack_hdr) + 8);
} ustack_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u32);
} ustack_modes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, USTACK_STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} ustack_stats SEC(".maps");

static __always_inline void ustack_stat(u32 which)
{
	u64 *v = bpf_map_lookup_elem(&ustack_stats, &which);

	if (v)
		(*v)++;
}

/* How this process's user stack is taken now. */
static __always_inline u32 ustack_mode(u32 tgid)
{
	u32 *m;

	if (!ustack_enabled)
		return USTACK_FP;
	if (ustack_paused) {
		ustack_stat(USTACK_STAT_PAUSED);
		return USTACK_FP;
	}
	if (ustack_always)
		return USTACK_DWARF;
	m = bpf_map_lookup_elem(&ustack_modes, &tgid);
	return m ? *m : USTACK_UNDECIDED;
}

/* How many blocks (offcpu) each CPU has numbered: ustack_next_seq(). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} ustack_seqs SEC(".maps");

/* A block's id (offcpu), never 0: this CPU's count times ustack_cpu_stride plus
 * the CPU, unique without an atomic fetch-and-add, which kernels before 5.12
 * refuse to load (their verifier rejects BPF_FETCH in any instruction, dead code
 * included). A context switch runs with interrupts off, so nothing on this CPU
 * counts in between. User space's ring of pending blocks (a power of two, at
 * least 512 slots a stride) thus gives each CPU slots of its own. */
static __always_inline u64 ustack_next_seq(void)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(&ustack_seqs, &zero);

	if (!n)
		return 0;
	*n += 1;
	return *n * ustack_cpu_stride + bpf_get_smp_processor_id();
}

struct ustack_buf {
	struct ustack_hdr h;
	u8 stack[];
};

static __always_inline void ustack_regs(struct ustack_hdr *h, struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	h->regs[0] = BPF_CORE_READ(regs, ax);
	h->regs[1] = BPF_CORE_READ(regs, dx);
	h->regs[2] = BPF_CORE_READ(regs, cx);
	h->regs[3] = BPF_CORE_READ(regs, bx);
	h->regs[4] = BPF_CORE_READ(regs, si);
	h->regs[5] = BPF_CORE_READ(regs, di);
	h->regs[6] = BPF_CORE_READ(regs, bp);
	h->regs[7] = BPF_CORE_READ(regs, sp);
	h->regs[8] = BPF_CORE_READ(regs, r8);
	h->regs[9] = BPF_CORE_READ(regs, r9);
	h->regs[10] = BPF_CORE_READ(regs, r10);
	h->regs[11] = BPF_CORE_READ(regs, r11);
	h->regs[12] = BPF_CORE_READ(regs, r12);
	h->regs[13] = BPF_CORE_READ(regs, r13);
	h->regs[14] = BPF_CORE_READ(regs, r14);
	h->regs[15] = BPF_CORE_READ(regs, r15);
	h->pc = BPF_CORE_READ(regs, ip);
	h->regs[16] = h->pc;
	h->regs_valid = (1ull << 17) - 1;
#elif defined(__TARGET_ARCH_arm64)
	bpf_core_read(h->regs, 31 * sizeof(u64), &regs->regs);
	h->regs[31] = BPF_CORE_READ(regs, sp);
	h->pc = BPF_CORE_READ(regs, pc);
	h->regs_valid = (1ull << 32) - 1;
#endif
}

static __always_inline u64 ustack_sp(const struct ustack_hdr *h)
{
#if defined(__TARGET_ARCH_x86)
	return h->regs[7];
#elif defined(__TARGET_ARCH_arm64)
	return h->regs[31];
#else
	return 0;
#endif
}

/* Whether the kernel may read the current task's user memory at this instant.
 * Not always: an interrupt that lands while the CPU's loaded address space is
 * not the task's (seen under emulation) refuses user reads, so a frame-pointer
 * walk holds the sampled address alone and a stack copy nothing. */
static __always_inline bool user_stack_readable(void)
{
	struct pt_regs *regs = current_user_regs();
	u64 sp = regs ? BPF_CORE_READ(regs, sp) : 0, word;

	return !sp || bpf_probe_read_user(&word, sizeof(word), (void *)sp) == 0;
}

/* Copies up to ustack_stack_bytes of the user stack from sp. One read when the
 * whole range is mapped, else page by page up to the end of the mapping. */
static __always_inline u64 ustack_copy(struct ustack_buf *b, u64 sp)
{
	/* 64-bit throughout: the verifier reads helper sizes as 64-bit registers */
	u64 n = ustack_stack_bytes, len = 0;

	if (n > USTACK_MAX_BYTES)
		n = USTACK_MAX_BYTES;
	if (!n || !sp)
		return 0;
	if (bpf_probe_read_user(b->stack, n, (void *)sp) == 0)
		return n;
	for (int i = 0; i < USTACK_MAX_BYTES / USTACK_PAGE + 1; i++) {
		u64 addr = sp + len;
		u64 chunk = USTACK_PAGE - (addr & (USTACK_PAGE - 1));

		if (len >= n)
			break;
		if (chunk > n - len)
			chunk = n - len;
		/* one register for the check and the call, or the verifier loses the bound */
		asm volatile("" : "+r"(chunk));
		if (chunk == 0 || chunk > USTACK_PAGE)
			break;
		if (bpf_probe_read_user(b->stack + len, chunk, (void *)addr))
			break;
		len += chunk;
	}
	if (len < n)
		ustack_stat(USTACK_STAT_SHORT_COPY);
	return len;
}

/* What ustack_send puts in a record besides the stack. */
struct ustack_meta {
	u32 type;
	u32 mode;
	u32 tgid;
	u32 pid;
	u64 cgroup_id;
	s32 kern_stack_id;
	s32 user_stack_id;
	u32 state;
	u64 seq;
	u64 value;
	const char *comm;
};

/* Sends the current task's user registers and stack (or, for BLOCK_END, the metadata
 * alone). False when nothing was sent: the caller walks the stack itself. */
static __always_inline bool ustack_send(const struct ustack_meta *m)
{
	/* before 5.11/5.15 the compat forms (core_fixes.bpf.h): probe reads of
	 * the task, its user registers found at the top of its kernel stack */
	struct task_struct *task = current_task();
	u32 cpu = bpf_get_smp_processor_id();
	u64 len = 0, n = ustack_stack_bytes;
	struct ustack_buf *b;
	struct pt_regs *regs;

	if (!ustack_enabled)
		return false;
	b = bpf_map_lookup_elem(&ustack_scratch, &cpu);
	if (!b)
		return false;
	b->h.type = m->type;
	b->h.flags = m->mode == USTACK_UNDECIDED ? USTACK_F_PROBE : 0;
	b->h.tgid = m->tgid;
	b->h.pid = m->pid;
	b->h.cgroup_id = m->cgroup_id;
	b->h.kern_stack_id = m->kern_stack_id;
	b->h.user_stack_id = m->user_stack_id;
	b->h.state = m->state;
	b->h.seq = m->seq;
	b->h.value = m->value;
	b->h.stack_len = 0;
	__builtin_memcpy(b->h.comm, m->comm, USTACK_COMM_LEN);
	if (m->type != USTACK_REC_BLOCK_END) {
		if (!BPF_CORE_READ(task, mm)) /* a kernel thread has no user stack */
			return false;
		regs = current_user_regs();
		if (!regs)
			return false;
		ustack_regs(&b->h, regs);
		len = ustack_copy(b, ustack_sp(&b->h));
		if (!len) {
			ustack_stat(USTACK_STAT_NO_STACK);
			return false;
		}
	}
	/* the verifier's bound: no more than the scratch value holds */
	if (n > USTACK_MAX_BYTES)
		n = USTACK_MAX_BYTES;
	if (len > n)
		return false;
	b->h.stack_len = len;
	if (bpf_ringbuf_output(&ustack_rb, b, sizeof(b->h) + len, 0)) {
		ustack_stat(USTACK_STAT_RING_FULL);
		return false;
	}
	if (m->type != USTACK_REC_BLOCK_END)
		ustack_stat(USTACK_STAT_SENT);
	return true;
}
