/* SPDX-License-Identifier: GPL-2.0-only */
/* The metric catalogue: every metric name rules may use, with unit, scope and
 * source. Names are a stable contract (see docs/metrics.md). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

enum metric_scope_bits {
	MSCOPE_HOST = 1 << 0,
	MSCOPE_CPU = 1 << 1,    /* label cpu */
	MSCOPE_DEVICE = 1 << 2, /* label device */
	MSCOPE_CGROUP = 1 << 3, /* labels cgroup, container_id, pod_uid */
};

struct metric_desc {
	const char *name;
	const char *unit;
	unsigned scopes; /* enum metric_scope_bits */
	const char *source;
	const char *help;
	bool opt_in; /* only produced in an opt-in always-on hook mode */
};

size_t metric_count(void);
const struct metric_desc *metric_at(size_t i);
/* Index of name in the catalogue, or -1. */
int metric_index(const char *name);
/* "host, per cpu" */
void metric_scope_text(unsigned scopes, char *buf, size_t len);

/* Indices of the metrics the code produces directly, resolved once. */
enum metric_id {
	M_CPU_USER,
	M_CPU_NICE,
	M_CPU_SYS,
	M_CPU_IDLE,
	M_CPU_IOWAIT,
	M_CPU_IRQ,
	M_CPU_SOFTIRQ,
	M_CPU_STEAL,
	M_BUILTIN_COUNT
};
