/* SPDX-License-Identifier: GPL-2.0-only */
/* The metric catalogue: every metric name rules may use, with unit, scope and
 * source. Names are a stable contract (see docs/metrics.md). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

enum metric_scope_bits {
	MSCOPE_HOST = 1 << 0,
	MSCOPE_CPU = 1 << 1,	/* label cpu */
	MSCOPE_DEVICE = 1 << 2, /* label device */
	MSCOPE_CGROUP = 1 << 3, /* labels cgroup, container_id, pod_uid, qos */
	MSCOPE_HOOK = 1 << 4,	/* label hook: an opt-in always-on hook mode */
};

struct metric_desc {
	const char *name;
	const char *unit;
	unsigned scopes; /* enum metric_scope_bits */
	const char *source;
	const char *help;
	bool opt_in;	  /* only produced in an opt-in always-on hook mode */
	const char *cost; /* what producing it costs the node */
};

size_t metric_count(void);
const struct metric_desc *metric_at(size_t i);
/* Index of name in the catalogue, or -1. */
int metric_index(const char *name);
/* "host, per cpu" */
void metric_scope_text(unsigned scopes, char *buf, size_t len);

/*
 * The same metrics in Prometheus' conventions (docs/prometheus.md): base
 * units (seconds, bytes, ratios 0-1 instead of percentages), an autotrace_
 * prefix, and per-interval counts accumulated into _total counters.
 */
enum prom_type { PROM_GAUGE, PROM_COUNTER, PROM_INFO };

struct metric_prom {
	const char *name; /* "autotrace_cpu_sys_ratio"; counters end in _total */
	const char *unit; /* OpenMetrics UNIT (a suffix of the name), or "" */
	double scale;	  /* catalogue value x scale = exposed value */
	enum prom_type type;
};

/* The Prometheus form of catalogue metric i (same index as metric_at). */
const struct metric_prom *metric_prom_at(size_t i);

/*
 * The agent's own health, exposed beside the watch layer: each metric reads
 * one field of the status document (`autotrace status --json`), so the
 * endpoint and the status command can never disagree.
 *
 * status is a dotted path into that document. A segment "name[]" walks every
 * element of an array, labelling each sample label="element's label_from";
 * "name[key=value]" picks the one element whose key has that value; "name{}"
 * walks the members of an object, labelling each sample label="member name".
 * Consecutive entries with the same name are one metric family.
 */
enum agent_value {
	AV_NUMBER,  /* the number (or boolean as 0/1) x scale */
	AV_PRESENT, /* 1 when the field exists, 0 when it does not */
	AV_COUNT,   /* the length of the array */
	AV_STATE,   /* one sample per states[] entry, label state, 1 for the current one */
	AV_INFO,    /* value 1, labelled info_label=the string */
};

struct agent_metric {
	const char *name;
	enum prom_type type;
	const char *unit;
	const char *help;
	const char *status;
	enum agent_value value;
	double scale;		   /* AV_NUMBER; 0 means 1 */
	const char *label;	   /* the label of an array walk ("rule") */
	const char *label_from;	   /* the element field it comes from ("name") */
	const char *fixed_label;   /* "reason=busy": a constant label, or NULL */
	const char *const *states; /* AV_STATE, NULL-terminated */
	const char *info_label;	   /* AV_INFO */
};

size_t agent_metric_count(void);
const struct agent_metric *agent_metric_at(size_t i);

/* Indices of the metrics, in catalogue order. The first eight never move. */
enum metric_id {
	M_CPU_USER,
	M_CPU_NICE,
	M_CPU_SYS,
	M_CPU_IDLE,
	M_CPU_IOWAIT,
	M_CPU_IRQ,
	M_CPU_SOFTIRQ,
	M_CPU_STEAL,
	M_BUILTIN_COUNT, /* the foundation's metrics end here */
	/* scheduler: /proc/stat, /proc/loadavg, /proc/schedstat */
	M_SCHED_CTXSW = M_BUILTIN_COUNT,
	M_SCHED_FORKS,
	M_SCHED_PROCS_RUNNING,
	M_SCHED_PROCS_BLOCKED,
	M_SCHED_LOAD1,
	M_SCHED_RUNQ_WAIT,
	/* scheduler: the task iterator */
	M_SCHED_DSTATE_TASKS,
	M_SCHED_DSTATE_MAX,
	M_SCHED_RUNQ_AVG,
	M_SCHED_RUNQ_MAX,
	/* scheduler: opt-in hooks */
	M_SCHED_RUNQ_P50,
	M_SCHED_RUNQ_P99,
	/* pressure stall information */
	M_PSI_CPU_SOME,
	M_PSI_MEM_SOME,
	M_PSI_MEM_FULL,
	M_PSI_IO_SOME,
	M_PSI_IO_FULL,
	/* memory */
	M_MEM_AVAILABLE_PCT,
	M_MEM_AVAILABLE_BYTES,
	M_MEM_ANON_BYTES,
	M_MEM_FILE_BYTES,
	M_MEM_ANON_GROWTH_PCT,
	M_MEM_ANON_GROWTH_BYTES,
	M_MEM_DIRECT_RECLAIM,
	M_MEM_ALLOCSTALL,
	M_MEM_PGSCAN_DIRECT,
	M_MEM_PGSCAN_KSWAPD,
	M_MEM_OOM_KILLS,
	M_MEM_SWAP_USED_PCT,
	/* block devices */
	M_IO_UTIL,
	M_IO_READ_BPS,
	M_IO_WRITE_BPS,
	M_IO_READ_IOPS,
	M_IO_WRITE_IOPS,
	M_IO_AWAIT,
	M_IO_QUEUE,
	M_IO_LAT_P50,
	M_IO_LAT_P99,
	M_IO_LAT_MAX,
	/* cgroups */
	M_CG_CPU_USAGE,
	M_CG_CPU_USER,
	M_CG_CPU_SYS,
	M_CG_CPU_CORES,
	M_CG_CPU_LIMIT,
	M_CG_CPU_THROTTLED,
	M_CG_CPU_THROTTLED_MS,
	M_CG_MEM_USAGE_BYTES,
	M_CG_MEM_USAGE_PCT,
	M_CG_MEM_LIMIT,
	M_CG_MEM_GROWTH,
	M_CG_MEM_DIRECT_RECLAIM,
	M_CG_MEM_OOM_KILLS,
	M_CG_DSTATE_TASKS,
	M_CG_DSTATE_MAX,
	M_CG_RUNQ_AVG,
	M_CG_RUNQ_MAX,
	M_CG_PSI_CPU_SOME,
	M_CG_PSI_MEM_SOME,
	M_CG_PSI_MEM_FULL,
	M_CG_PSI_IO_SOME,
	M_CG_PSI_IO_FULL,
	/* the watch layer's own cost */
	M_WATCH_HOOK_NS,
	M_WATCH_HOOK_CPU,
	M_METRIC_COUNT
};
