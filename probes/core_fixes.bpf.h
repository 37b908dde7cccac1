/* SPDX-License-Identifier: GPL-2.0-only */
/* Kernel differences in one place: ___flavor structs and field-exists checks. */
#pragma once
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

/* The ___flavor structs below describe older kernels' layouts. Like vmlinux.h's
 * types they carry preserve_access_index, so that a plain access (not only
 * BPF_CORE_READ) is relocated to where the running kernel has the field:
 * without it, `((struct task_struct___old *)t)->state` reads offset 0. */
#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/*
 * Helpers newer than the oldest kernel the agent supports (5.10, see
 * docs/compatibility.md). Whether the running kernel has one is a CO-RE
 * relocation against its enum bpf_func_id: libbpf turns the test into a
 * constant, the verifier never walks the branch the kernel cannot run and
 * removes it before the helper calls are resolved.
 */
#define HAVE_HELPER(name) bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_##name)

/* The current task, to read through BPF_CORE_READ only: the BTF-typed pointer
 * where the kernel has bpf_get_current_task_btf (5.11), the untyped one before. */
static __always_inline struct task_struct *current_task(void)
{
	if (HAVE_HELPER(get_current_task_btf))
		return bpf_get_current_task_btf();
	return (struct task_struct *)bpf_get_current_task();
}

/*
 * The user registers saved at the top of the current task's kernel stack
 * (where a system call or interrupt from user space left them), to read
 * through the PT_REGS_*_CORE macros. bpf_task_pt_regs (5.15) where the
 * kernel has it. Before, on x86-64, the same place computed as the kernel's
 * task_pt_regs() does: the end of the task's stack (16 KiB, or 32 KiB with
 * KASAN) less one pt_regs, accepted only when its saved code segment is the
 * 64-bit user one. NULL when neither works (kernel threads, other
 * architectures): callers then do without.
 */
#define USER_CS_X86_64 0x33 /* __USER_CS: GDT entry 6, RPL 3 */

static __always_inline struct pt_regs *current_user_regs(void)
{
	if (HAVE_HELPER(task_pt_regs))
		return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
#if defined(__TARGET_ARCH_x86)
	{
		struct task_struct *t = (struct task_struct *)bpf_get_current_task();
		unsigned long top = (unsigned long)BPF_CORE_READ(t, stack);
		unsigned long size = bpf_core_type_size(struct pt_regs);

		if (!top)
			return NULL;
		for (unsigned long thread_size = 16384; thread_size <= 32768; thread_size *= 2) {
			struct pt_regs *regs = (struct pt_regs *)(top + thread_size - size);

			if (BPF_CORE_READ(regs, cs) == USER_CS_X86_64)
				return regs;
		}
	}
#endif
	return NULL;
}

/* Before 5.5 kernfs_node.id was a union { u32 ino; u32 generation; u64 id; }. */
union kernfs_node_id___old {
	struct {
		u32 ino;
		u32 generation;
	};
	u64 id;
};

struct kernfs_node___old {
	union kernfs_node_id___old id;
};

static __always_inline u64 kernfs_node_id(struct kernfs_node *kn)
{
	if (bpf_core_type_exists(union kernfs_node_id___old))
		return BPF_CORE_READ((struct kernfs_node___old *)kn, id.ino);
	return BPF_CORE_READ(kn, id);
}

/*
 * Cgroup id of a task in one hierarchy. subsys < 0: the default (v2) hierarchy,
 * the same id bpf_get_current_cgroup_id() returns. subsys >= 0: that v1
 * controller's hierarchy, which is where containers live on v1 and hybrid hosts.
 * The id equals the inode number of the cgroup's directory in cgroupfs.
 */
static __always_inline struct cgroup *task_cgroup(struct task_struct *task, int subsys)
{
	if (subsys < 0)
		return BPF_CORE_READ(task, cgroups, dfl_cgrp);
	return BPF_CORE_READ(task, cgroups, subsys[subsys & 15], cgroup);
}

static __always_inline u64 cgroup_node_id(struct cgroup *cg)
{
	struct kernfs_node *kn = cg ? BPF_CORE_READ(cg, kn) : NULL;

	return kn ? kernfs_node_id(kn) : 0;
}

static __always_inline u64 task_cgroup_id(struct task_struct *task, int subsys)
{
	return cgroup_node_id(task_cgroup(task, subsys));
}

/* task->__state (5.14+) vs task->state */
struct task_struct___old {
	long state;
};

static __always_inline unsigned int task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return (unsigned int)BPF_CORE_READ((struct task_struct___old *)t, state);
}

/* Before 5.15 a request named its disk directly (rq->rq_disk); since, via its queue. */
struct request___old {
	struct gendisk *rq_disk;
};

/* Kernel dev_t of the disk a request goes to (MKDEV: major << 20 | minor). */
static __always_inline u32 request_disk_dev(struct request *rq)
{
	struct gendisk *disk;

	if (bpf_core_field_exists(((struct request___old *)rq)->rq_disk))
		disk = BPF_CORE_READ((struct request___old *)rq, rq_disk);
	else
		disk = BPF_CORE_READ(rq, q, disk);
	if (!disk)
		return 0;
	return ((u32)BPF_CORE_READ(disk, major) << 20) | (u32)BPF_CORE_READ(disk, first_minor);
}

/* Before 5.12 a bio named its disk and partition (bio->bi_disk, bi_partno). */
struct bio___old {
	struct gendisk *bi_disk;
	u8 bi_partno;
};

static __always_inline u32 bio_dev(struct bio *bio)
{
	if (bpf_core_field_exists(((struct bio___old *)bio)->bi_disk)) {
		struct gendisk *disk = BPF_CORE_READ((struct bio___old *)bio, bi_disk);

		if (!disk)
			return 0;
		return ((u32)BPF_CORE_READ(disk, major) << 20) |
		       ((u32)BPF_CORE_READ(disk, first_minor) +
			BPF_CORE_READ((struct bio___old *)bio, bi_partno));
	}
	return BPF_CORE_READ(bio, bi_bdev, bd_dev);
}

/* The system call a task is in, from its saved user registers. */
static __always_inline long regs_syscall_nr(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
	return BPF_CORE_READ(regs, syscallno);
#else
	return -1;
#endif
}

/* The same from a BTF-typed pt_regs (tp_btf): a plain load, no helper call. */
#if defined(__TARGET_ARCH_x86)
#define REGS_SYSCALL_NR_BTF(regs) ((long)(regs)->orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define REGS_SYSCALL_NR_BTF(regs) ((long)(regs)->syscallno)
#else
#define REGS_SYSCALL_NR_BTF(regs) regs_syscall_nr(regs)
#endif

#define PF_KTHREAD_ 0x00200000 /* stable since 2.6 */

static __always_inline bool task_is_kthread(struct task_struct *t)
{
	return BPF_CORE_READ(t, flags) & PF_KTHREAD_;
}

/* The address_space of the folio a page belongs to (tail pages of a large
 * folio carry "head | 1" where the mapping of a head page is). Low bits set
 * mean anonymous or movable memory, not a file. */
static __always_inline unsigned long page_mapping_raw(struct page *page)
{
	unsigned long head = BPF_CORE_READ(page, compound_head);

	if (head & 1)
		page = (struct page *)(head - 1);
	return (unsigned long)BPF_CORE_READ(page, mapping);
}

/* Before 5.16 (and on architectures without THREAD_INFO_IN_TASK) the CPU a
 * task last ran on was task->cpu; since, x86 keeps it in thread_info. */
struct task_struct___cpu {
	unsigned int cpu;
};

static __always_inline u32 task_last_cpu(struct task_struct *t)
{
	if (bpf_core_field_exists(t->thread_info.cpu))
		return BPF_CORE_READ(t, thread_info.cpu);
	return BPF_CORE_READ((struct task_struct___cpu *)t, cpu);
}

/* The run queue a task is on (or last was on), through its CFS run queue:
 * the per-CPU `runqueues` symbol needs CONFIG_KALLSYMS_ALL. */
static __always_inline struct rq *task_cpu_rq(struct task_struct *t)
{
	struct cfs_rq *cfs;

	if (!bpf_core_field_exists(struct cfs_rq, rq))
		return NULL;
	cfs = BPF_CORE_READ(t, se.cfs_rq);
	return cfs ? BPF_CORE_READ(cfs, rq) : NULL;
}

/* sched_info.max_run_delay appeared in 6.15; 0 where the kernel lacks it. */
static __always_inline u64 task_max_run_delay(struct task_struct *t)
{
	if (bpf_core_field_exists(t->sched_info.max_run_delay))
		return BPF_CORE_READ(t, sched_info.max_run_delay);
	return 0;
}

/* Time spent in direct reclaim (delay accounting), 0 without it. Named
 * freepages_delay since 2.6.29. */
static __always_inline u64 task_reclaim_delay_ns(struct task_struct *t)
{
	struct task_delay_info *di = BPF_CORE_READ(t, delays);

	if (!di || !bpf_core_field_exists(di->freepages_delay))
		return 0;
	return BPF_CORE_READ(di, freepages_delay);
}

#pragma clang attribute pop
