/* SPDX-License-Identifier: GPL-2.0-only */
/* Kernel differences in one place: ___flavor structs and field-exists checks. */
#pragma once
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

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
