/* SPDX-License-Identifier: GPL-2.0-only */
/* The capture target filter every capture program applies in the kernel.
 * Programs are loaded once at start-up, so the target is a map value, not rodata. */
#pragma once
#include "core_fixes.bpf.h"
#include "filter.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct capture_filter);
} filter SEC(".maps");

static __always_inline struct capture_filter *get_filter(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&filter, &zero);
}

/* The cgroup id the captures report, from the hierarchy user space chose. */
static __always_inline u64 task_cgid(struct capture_filter *f, struct task_struct *task)
{
	return task_cgroup_id(task, f->cgroup_subsys);
}

/* Does this task belong to the capture's target? */
static __always_inline bool filter_match(struct capture_filter *f, struct task_struct *task,
					 u32 tgid, u64 cgid)
{
	switch (f->mode) {
	case FILTER_ALL:
		return true;
	case FILTER_TGID:
		return tgid == f->tgid;
	case FILTER_CGROUP: {
		/* a cgroup target includes its descendants: walk up a bounded number of levels */
		struct cgroup *cg;

		if (cgid == f->cgroup_id)
			return true;
		cg = task_cgroup(task, f->cgroup_subsys);
		for (int i = 0; i < FILTER_MAX_LEVEL && cg; i++) {
			struct cgroup_subsys_state *parent;

			if (cgroup_node_id(cg) == f->cgroup_id)
				return true;
			parent = BPF_CORE_READ(cg, self.parent);
			cg = parent ? BPF_CORE_READ(parent, cgroup) : NULL;
		}
		return false;
	}
	}
	return false;
}
