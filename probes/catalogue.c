// SPDX-License-Identifier: GPL-2.0-only
#include "probes/catalogue.h"

#include <stdio.h>
#include <string.h>

#define H  MSCOPE_HOST
#define C  MSCOPE_CPU
#define D  MSCOPE_DEVICE
#define CG MSCOPE_CGROUP

/* What producing a metric costs, by kind (docs/metrics.md explains and measures them). */
#define COST_PROC   "procfs pread"
#define COST_CGROUP "cgroupfs pread, per cgroup"
#define COST_ITER   "task iterator pass"
#define COST_RUNQ   "hook on every wakeup and switch"
#define COST_BLOCK  "hook on every block IO"
#define COST_STATS  "BPF run-time statistics"

#define PROC(n, u, s, src, h)                                                                      \
	{                                                                                          \
		n, u, s, src, h, false, COST_PROC                                                  \
	}
#define CGRP(n, u, src, h)                                                                         \
	{                                                                                          \
		n, u, CG, src, h, false, COST_CGROUP                                               \
	}
#define ITER(n, u, s, h)                                                                           \
	{                                                                                          \
		n, u, s, "BPF iter/task (sched_info, task state)", h, false, COST_ITER             \
	}

/* Order matches enum metric_id. */
static const struct metric_desc catalogue[] = {
	[M_CPU_USER] =
		PROC("cpu.user_pct", "%", H | C, "/proc/stat", "time in user mode (incl. guest)"),
	[M_CPU_NICE] = PROC("cpu.nice_pct", "%", H | C, "/proc/stat",
			    "time in user mode at positive nice"),
	[M_CPU_SYS] = PROC("cpu.sys_pct", "%", H | C, "/proc/stat",
			   "time in the kernel (system calls, faults)"),
	[M_CPU_IDLE] = PROC("cpu.idle_pct", "%", H | C, "/proc/stat", "idle time"),
	[M_CPU_IOWAIT] =
		PROC("cpu.iowait_pct", "%", H | C, "/proc/stat", "idle with IO outstanding"),
	[M_CPU_IRQ] = PROC("cpu.irq_pct", "%", H | C, "/proc/stat", "hard interrupt time"),
	[M_CPU_SOFTIRQ] = PROC("cpu.softirq_pct", "%", H | C, "/proc/stat", "softirq time"),
	[M_CPU_STEAL] =
		PROC("cpu.steal_pct", "%", H | C, "/proc/stat", "time stolen by the hypervisor"),

	[M_SCHED_CTXSW] =
		PROC("sched.ctxsw_per_s", "1/s", H, "/proc/stat", "context switches per second"),
	[M_SCHED_FORKS] = PROC("sched.forks_per_s", "1/s", H, "/proc/stat",
			       "processes and threads created per second"),
	[M_SCHED_PROCS_RUNNING] = PROC("sched.procs_running", "tasks", H, "/proc/stat",
				       "tasks runnable now (running or waiting for a CPU)"),
	[M_SCHED_PROCS_BLOCKED] = PROC("sched.procs_blocked", "tasks", H, "/proc/stat",
				       "tasks blocked waiting for IO now"),
	[M_SCHED_LOAD1] =
		PROC("sched.load1", "tasks", H, "/proc/loadavg", "one-minute load average"),
	[M_SCHED_RUNQ_WAIT] = PROC("sched.runq_wait_pct", "%", H | C, "/proc/schedstat",
				   "time tasks spent waiting for a CPU, % of the interval (100 = "
				   "one task always waiting); needs CONFIG_SCHEDSTATS"),

	[M_SCHED_DSTATE_TASKS] = ITER("sched.dstate_tasks", "tasks", H,
				      "tasks in uninterruptible sleep (D), idle kernel threads "
				      "(TASK_NOLOAD) not counted"),
	[M_SCHED_DSTATE_MAX] =
		ITER("sched.dstate_max_ms", "ms", H, "longest current uninterruptible sleep"),
	[M_SCHED_RUNQ_AVG] = ITER("sched.runq_avg_us", "us", H | C,
				  "average run-queue wait per timeslice this interval (sched_info "
				  "run_delay / pcount deltas)"),
	[M_SCHED_RUNQ_MAX] = ITER("sched.runq_max_us", "us", H | C,
				  "longest run-queue wait seen this interval: tasks waiting now "
				  "(last_queued), max_run_delay, per-task average"),

	[M_SCHED_RUNQ_P50] = {"sched.runq_p50_us", "us", H | C,
			      "BPF tp_btf sched_wakeup/sched_wakeup_new/sched_switch",
			      "median run-queue latency this interval (watch.runq_hooks)", true,
			      COST_RUNQ},
	[M_SCHED_RUNQ_P99] = {"sched.runq_p99_us", "us", H | C,
			      "BPF tp_btf sched_wakeup/sched_wakeup_new/sched_switch",
			      "99th percentile run-queue latency this interval (watch.runq_hooks)",
			      true, COST_RUNQ},

	[M_PSI_CPU_SOME] = PROC("psi.cpu_some_pct", "%", H, "/proc/pressure/cpu",
				"time some task waited for a CPU, % of the interval"),
	[M_PSI_MEM_SOME] = PROC("psi.mem_some_pct", "%", H, "/proc/pressure/memory",
				"time some task stalled on memory (reclaim, refaults, swap-in)"),
	[M_PSI_MEM_FULL] = PROC("psi.mem_full_pct", "%", H, "/proc/pressure/memory",
				"time all non-idle tasks stalled on memory at once"),
	[M_PSI_IO_SOME] = PROC("psi.io_some_pct", "%", H, "/proc/pressure/io",
			       "time some task waited for IO"),
	[M_PSI_IO_FULL] = PROC("psi.io_full_pct", "%", H, "/proc/pressure/io",
			       "time all non-idle tasks waited for IO at once"),

	[M_MEM_AVAILABLE_PCT] =
		PROC("mem.available_pct", "%", H, "/proc/meminfo", "MemAvailable, % of MemTotal"),
	[M_MEM_AVAILABLE_BYTES] = PROC("mem.available_bytes", "bytes", H, "/proc/meminfo",
				       "MemAvailable: memory usable without swapping"),
	[M_MEM_ANON_BYTES] =
		PROC("mem.anon_bytes", "bytes", H, "/proc/meminfo", "anonymous memory (AnonPages)"),
	[M_MEM_FILE_BYTES] = PROC("mem.file_bytes", "bytes", H, "/proc/meminfo",
				  "page cache (Active(file) + Inactive(file))"),
	[M_MEM_ANON_GROWTH_PCT] = PROC("mem.anon_growth_pct", "%", H, "/proc/meminfo",
				       "anonymous memory growth over watch.growth_window, % of "
				       "MemTotal (the burst signal)"),
	[M_MEM_ANON_GROWTH_BYTES] = PROC("mem.anon_growth_bytes", "bytes", H, "/proc/meminfo",
					 "anonymous memory growth over watch.growth_window"),
	[M_MEM_DIRECT_RECLAIM] = {"mem.direct_reclaim_ms", "ms/s", H,
				  "BPF iter/task (delay accounting freepages_delay)",
				  "time tasks stalled in direct reclaim, per second (needs delay "
				  "accounting: watch.delayacct)",
				  false, COST_ITER},
	[M_MEM_ALLOCSTALL] = PROC("mem.allocstall_per_s", "1/s", H, "/proc/vmstat",
				  "allocations that entered direct reclaim, per second"),
	[M_MEM_PGSCAN_DIRECT] = PROC("mem.pgscan_direct_per_s", "pages/s", H, "/proc/vmstat",
				     "pages scanned by direct reclaim, per second"),
	[M_MEM_PGSCAN_KSWAPD] = PROC("mem.pgscan_kswapd_per_s", "pages/s", H, "/proc/vmstat",
				     "pages scanned by kswapd, per second"),
	[M_MEM_OOM_KILLS] = PROC("mem.oom_kills", "kills", H, "/proc/vmstat",
				 "processes killed by the OOM killer this interval"),
	[M_MEM_SWAP_USED_PCT] = PROC("mem.swap_used_pct", "%", H, "/proc/meminfo",
				     "swap in use, % of SwapTotal (absent without swap)"),

	[M_IO_UTIL] = PROC("io.util_pct", "%", D, "/proc/diskstats",
			   "time the device had IO in flight, % of the interval"),
	[M_IO_READ_BPS] =
		PROC("io.read_bps", "bytes/s", D, "/proc/diskstats", "bytes read per second"),
	[M_IO_WRITE_BPS] =
		PROC("io.write_bps", "bytes/s", D, "/proc/diskstats", "bytes written per second"),
	[M_IO_READ_IOPS] =
		PROC("io.read_iops", "1/s", D, "/proc/diskstats", "reads completed per second"),
	[M_IO_WRITE_IOPS] =
		PROC("io.write_iops", "1/s", D, "/proc/diskstats", "writes completed per second"),
	[M_IO_AWAIT] = PROC("io.await_ms", "ms", D, "/proc/diskstats",
			    "average time per completed IO, queueing included"),
	[M_IO_QUEUE] = PROC("io.queue_depth", "IOs", D, "/proc/diskstats",
			    "average IOs in flight (weighted time in queue / interval)"),
	[M_IO_LAT_P50] = {"io.latency_p50_us", "us", D,
			  "BPF tp_btf block_rq_issue/block_rq_complete",
			  "median block-layer latency, issue to completion (watch.block_hooks)",
			  true, COST_BLOCK},
	[M_IO_LAT_P99] = {"io.latency_p99_us", "us", D,
			  "BPF tp_btf block_rq_issue/block_rq_complete",
			  "99th percentile block-layer latency (watch.block_hooks)", true,
			  COST_BLOCK},
	[M_IO_LAT_MAX] = {"io.latency_max_us", "us", D,
			  "BPF tp_btf block_rq_issue/block_rq_complete",
			  "longest block-layer latency this interval (watch.block_hooks)", true,
			  COST_BLOCK},

	[M_CG_CPU_USAGE] =
		CGRP("cgroup.cpu.usage_pct", "%", "cpu.stat / cpuacct.usage",
		     "CPU used, % of the cgroup's limit (quota, else cpuset, else all CPUs)"),
	[M_CG_CPU_USER] = CGRP("cgroup.cpu.user_pct", "%", "cpu.stat / cpuacct.usage_user",
			       "user-mode CPU, % of the cgroup's limit"),
	[M_CG_CPU_SYS] = CGRP("cgroup.cpu.sys_pct", "%", "cpu.stat / cpuacct.usage_sys",
			      "kernel-mode CPU, % of the cgroup's limit"),
	[M_CG_CPU_CORES] = CGRP("cgroup.cpu.usage_cores", "CPUs", "cpu.stat / cpuacct.usage",
				"CPUs used (1 = one CPU busy for the whole interval)"),
	[M_CG_CPU_LIMIT] =
		CGRP("cgroup.cpu.limit_cores", "CPUs", "cpu.max / cpu.cfs_quota_us, cpuset",
		     "the CPU limit usage_pct is relative to (ancestors' limits included)"),
	[M_CG_CPU_THROTTLED] =
		CGRP("cgroup.cpu.throttled_pct", "%", "cpu.stat",
		     "CFS periods in which the cgroup was throttled, % of its periods"),
	[M_CG_CPU_THROTTLED_MS] = CGRP("cgroup.cpu.throttled_ms", "ms/s", "cpu.stat",
				       "time the cgroup spent throttled, per second"),
	[M_CG_MEM_USAGE_BYTES] =
		CGRP("cgroup.mem.usage_bytes", "bytes", "memory.current / memory.usage_in_bytes",
		     "memory charged to the cgroup (page cache included)"),
	[M_CG_MEM_USAGE_PCT] =
		CGRP("cgroup.mem.usage_pct", "%",
		     "memory.current, memory.max (v1: usage_in_bytes, limit)",
		     "memory used, % of the cgroup's limit (of MemTotal when unlimited)"),
	[M_CG_MEM_LIMIT] =
		CGRP("cgroup.mem.limit_bytes", "bytes", "memory.max / memory.limit_in_bytes",
		     "the effective memory limit (ancestors included; MemTotal when unlimited)"),
	[M_CG_MEM_GROWTH] =
		CGRP("cgroup.mem.growth_pct", "%", "memory.current / memory.usage_in_bytes",
		     "memory growth over watch.growth_window, % of the limit"),
	[M_CG_MEM_DIRECT_RECLAIM] =
		{"cgroup.mem.direct_reclaim_ms", "ms/s", CG,
		 "BPF iter/task (delay accounting freepages_delay)",
		 "time the cgroup's tasks stalled in direct reclaim, per second (watch.delayacct)",
		 false, COST_ITER},
	[M_CG_MEM_OOM_KILLS] =
		CGRP("cgroup.mem.oom_kills", "kills", "memory.events / memory.oom_control",
		     "processes of the cgroup killed by the OOM killer this interval"),
	[M_CG_DSTATE_TASKS] = ITER("cgroup.dstate_tasks", "tasks", CG,
				   "tasks of the cgroup (and its descendants) in D state"),
	[M_CG_DSTATE_MAX] =
		ITER("cgroup.dstate_max_ms", "ms", CG, "longest current D state in the cgroup"),
	[M_CG_RUNQ_AVG] = ITER("cgroup.runq_avg_us", "us", CG,
			       "average run-queue wait per timeslice of the cgroup's tasks"),
	[M_CG_RUNQ_MAX] = ITER("cgroup.runq_max_us", "us", CG,
			       "longest run-queue wait of the cgroup's tasks this interval"),
	[M_CG_PSI_CPU_SOME] = CGRP("cgroup.psi.cpu_some_pct", "%", "cpu.pressure (v2)",
				   "time some task of the cgroup waited for a CPU"),
	[M_CG_PSI_MEM_SOME] = CGRP("cgroup.psi.mem_some_pct", "%", "memory.pressure (v2)",
				   "time some task of the cgroup stalled on memory"),
	[M_CG_PSI_MEM_FULL] = CGRP("cgroup.psi.mem_full_pct", "%", "memory.pressure (v2)",
				   "time all tasks of the cgroup stalled on memory"),
	[M_CG_PSI_IO_SOME] = CGRP("cgroup.psi.io_some_pct", "%", "io.pressure (v2)",
				  "time some task of the cgroup waited for IO"),
	[M_CG_PSI_IO_FULL] = CGRP("cgroup.psi.io_full_pct", "%", "io.pressure (v2)",
				  "time all tasks of the cgroup waited for IO"),

	[M_WATCH_HOOK_NS] =
		{"watch.hook_ns_per_event", "ns", MSCOPE_HOOK, "kernel BPF run-time statistics",
		 "average run time of an opt-in hook mode's programs per event this interval", true,
		 COST_STATS},
	[M_WATCH_HOOK_CPU] = {"watch.hook_cpu_pct", "%", MSCOPE_HOOK,
			      "kernel BPF run-time statistics",
			      "kernel time of an opt-in hook mode's programs, % of all CPUs", true,
			      COST_STATS},
};

_Static_assert(sizeof(catalogue) / sizeof(catalogue[0]) == M_METRIC_COUNT,
	       "every enum metric_id has a catalogue entry");

size_t metric_count(void)
{
	return sizeof(catalogue) / sizeof(catalogue[0]);
}

const struct metric_desc *metric_at(size_t i)
{
	return i < metric_count() ? &catalogue[i] : NULL;
}

int metric_index(const char *name)
{
	for (size_t i = 0; i < metric_count(); i++)
		if (strcmp(catalogue[i].name, name) == 0)
			return (int)i;
	return -1;
}

void metric_scope_text(unsigned scopes, char *buf, size_t len)
{
	static const char *const names[] = {"host", "per cpu", "per device", "per cgroup",
					    "per hook"};
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(scopes & (1u << i)))
			continue;
		if (off >= len)
			break; /* truncated */
		off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", names[i]);
	}
}

/* ---- Prometheus (docs/prometheus.md) ---- */

#define RATIO(n)                                                                                   \
	{                                                                                          \
		"autotrace_" n "_ratio", "ratio", 0.01, PROM_GAUGE                                 \
	}
#define SEC_MS(n)                                                                                  \
	{                                                                                          \
		"autotrace_" n "_seconds", "seconds", 1e-3, PROM_GAUGE                             \
	}
#define SEC_US(n)                                                                                  \
	{                                                                                          \
		"autotrace_" n "_seconds", "seconds", 1e-6, PROM_GAUGE                             \
	}
#define BYTES(n)                                                                                   \
	{                                                                                          \
		"autotrace_" n "_bytes", "bytes", 1, PROM_GAUGE                                    \
	}
#define PLAIN(n)                                                                                   \
	{                                                                                          \
		"autotrace_" n, "", 1, PROM_GAUGE                                                  \
	}
#define PER_S(n)                                                                                   \
	{                                                                                          \
		"autotrace_" n "_per_second", "", 1, PROM_GAUGE                                    \
	}
#define MS_PER_S(n)                                                                                \
	{                                                                                          \
		"autotrace_" n "_seconds_per_second", "", 1e-3, PROM_GAUGE                         \
	}
#define COUNTS(n)                                                                                  \
	{                                                                                          \
		"autotrace_" n "_total", "", 1, PROM_COUNTER                                       \
	}

/* Order matches enum metric_id. Percentages become ratios (0-1), ms and us
 * seconds; "per interval" counts become counters summed since the agent started. */
static const struct metric_prom prom[] = {
	[M_CPU_USER] = RATIO("cpu_user"),
	[M_CPU_NICE] = RATIO("cpu_nice"),
	[M_CPU_SYS] = RATIO("cpu_sys"),
	[M_CPU_IDLE] = RATIO("cpu_idle"),
	[M_CPU_IOWAIT] = RATIO("cpu_iowait"),
	[M_CPU_IRQ] = RATIO("cpu_irq"),
	[M_CPU_SOFTIRQ] = RATIO("cpu_softirq"),
	[M_CPU_STEAL] = RATIO("cpu_steal"),
	[M_SCHED_CTXSW] = PER_S("sched_context_switches"),
	[M_SCHED_FORKS] = PER_S("sched_forks"),
	[M_SCHED_PROCS_RUNNING] = PLAIN("sched_procs_running"),
	[M_SCHED_PROCS_BLOCKED] = PLAIN("sched_procs_blocked"),
	[M_SCHED_LOAD1] = PLAIN("sched_load1"),
	[M_SCHED_RUNQ_WAIT] = RATIO("sched_runq_wait"),
	[M_SCHED_DSTATE_TASKS] = PLAIN("sched_dstate_tasks"),
	[M_SCHED_DSTATE_MAX] = SEC_MS("sched_dstate_max"),
	[M_SCHED_RUNQ_AVG] = SEC_US("sched_runq_avg"),
	[M_SCHED_RUNQ_MAX] = SEC_US("sched_runq_max"),
	[M_SCHED_RUNQ_P50] = SEC_US("sched_runq_p50"),
	[M_SCHED_RUNQ_P99] = SEC_US("sched_runq_p99"),
	[M_PSI_CPU_SOME] = RATIO("psi_cpu_some"),
	[M_PSI_MEM_SOME] = RATIO("psi_mem_some"),
	[M_PSI_MEM_FULL] = RATIO("psi_mem_full"),
	[M_PSI_IO_SOME] = RATIO("psi_io_some"),
	[M_PSI_IO_FULL] = RATIO("psi_io_full"),
	[M_MEM_AVAILABLE_PCT] = RATIO("mem_available"),
	[M_MEM_AVAILABLE_BYTES] = BYTES("mem_available"),
	[M_MEM_ANON_BYTES] = BYTES("mem_anon"),
	[M_MEM_FILE_BYTES] = BYTES("mem_file"),
	[M_MEM_ANON_GROWTH_PCT] = RATIO("mem_anon_growth"),
	[M_MEM_ANON_GROWTH_BYTES] = BYTES("mem_anon_growth"),
	[M_MEM_DIRECT_RECLAIM] = MS_PER_S("mem_direct_reclaim"),
	[M_MEM_ALLOCSTALL] = PER_S("mem_allocstalls"),
	[M_MEM_PGSCAN_DIRECT] = PER_S("mem_pgscan_direct_pages"),
	[M_MEM_PGSCAN_KSWAPD] = PER_S("mem_pgscan_kswapd_pages"),
	[M_MEM_OOM_KILLS] = COUNTS("mem_oom_kills"),
	[M_MEM_SWAP_USED_PCT] = RATIO("mem_swap_used"),
	[M_IO_UTIL] = RATIO("io_util"),
	[M_IO_READ_BPS] = PER_S("io_read_bytes"),
	[M_IO_WRITE_BPS] = PER_S("io_write_bytes"),
	[M_IO_READ_IOPS] = PER_S("io_reads"),
	[M_IO_WRITE_IOPS] = PER_S("io_writes"),
	[M_IO_AWAIT] = SEC_MS("io_await"),
	[M_IO_QUEUE] = PLAIN("io_queue_depth"),
	[M_IO_LAT_P50] = SEC_US("io_latency_p50"),
	[M_IO_LAT_P99] = SEC_US("io_latency_p99"),
	[M_IO_LAT_MAX] = SEC_US("io_latency_max"),
	[M_CG_CPU_USAGE] = RATIO("cgroup_cpu_usage"),
	[M_CG_CPU_USER] = RATIO("cgroup_cpu_user"),
	[M_CG_CPU_SYS] = RATIO("cgroup_cpu_sys"),
	[M_CG_CPU_CORES] = PLAIN("cgroup_cpu_usage_cores"),
	[M_CG_CPU_LIMIT] = PLAIN("cgroup_cpu_limit_cores"),
	[M_CG_CPU_THROTTLED] = RATIO("cgroup_cpu_throttled_periods"),
	[M_CG_CPU_THROTTLED_MS] = MS_PER_S("cgroup_cpu_throttled"),
	[M_CG_MEM_USAGE_BYTES] = BYTES("cgroup_mem_usage"),
	[M_CG_MEM_USAGE_PCT] = RATIO("cgroup_mem_usage"),
	[M_CG_MEM_LIMIT] = BYTES("cgroup_mem_limit"),
	[M_CG_MEM_GROWTH] = RATIO("cgroup_mem_growth"),
	[M_CG_MEM_DIRECT_RECLAIM] = MS_PER_S("cgroup_mem_direct_reclaim"),
	[M_CG_MEM_OOM_KILLS] = COUNTS("cgroup_mem_oom_kills"),
	[M_CG_DSTATE_TASKS] = PLAIN("cgroup_dstate_tasks"),
	[M_CG_DSTATE_MAX] = SEC_MS("cgroup_dstate_max"),
	[M_CG_RUNQ_AVG] = SEC_US("cgroup_runq_avg"),
	[M_CG_RUNQ_MAX] = SEC_US("cgroup_runq_max"),
	[M_CG_PSI_CPU_SOME] = RATIO("cgroup_psi_cpu_some"),
	[M_CG_PSI_MEM_SOME] = RATIO("cgroup_psi_mem_some"),
	[M_CG_PSI_MEM_FULL] = RATIO("cgroup_psi_mem_full"),
	[M_CG_PSI_IO_SOME] = RATIO("cgroup_psi_io_some"),
	[M_CG_PSI_IO_FULL] = RATIO("cgroup_psi_io_full"),
	[M_WATCH_HOOK_NS] = {"autotrace_watch_hook_seconds_per_event", "", 1e-9, PROM_GAUGE},
	[M_WATCH_HOOK_CPU] = RATIO("watch_hook_cpu"),
};

_Static_assert(sizeof(prom) / sizeof(prom[0]) == M_METRIC_COUNT,
	       "every enum metric_id has a Prometheus name");

const struct metric_prom *metric_prom_at(size_t i)
{
	return i < M_METRIC_COUNT ? &prom[i] : NULL;
}

static const char *const watcher_states[] = {"ok",  "error",	 "degraded", "unavailable",
					     "off", "throttled", NULL};
static const char *const rule_states[] = {"ok", "pending", "firing", "capturing", "cooldown", NULL};
static const char *const kind_states[] = {"ready", "running", "unavailable", NULL};
static const char *const hook_states[] = {"on", "throttled", NULL};
static const char *const es_states[] = {"disabled", "connecting", "installing template", "ok",
					"shipping", "failing",	  "unreachable",	 NULL};

#define GAUGE(n, u, h, st)                                                                         \
	{                                                                                          \
		.name = n, .type = PROM_GAUGE, .unit = u, .help = h, .status = st,                 \
		.value = AV_NUMBER                                                                 \
	}
#define COUNTER(n, u, h, st)                                                                       \
	{                                                                                          \
		.name = n, .type = PROM_COUNTER, .unit = u, .help = h, .status = st,               \
		.value = AV_NUMBER                                                                 \
	}

/* The agent's own health, in the order the endpoint shows it. */
static const struct agent_metric agent_metrics[] = {
	{.name = "autotrace_build_info",
	 .type = PROM_INFO,
	 .unit = "",
	 .help = "the agent's version (always 1)",
	 .status = "agent.version",
	 .value = AV_INFO,
	 .info_label = "version"},
	{.name = "autotrace_agent_uptime_seconds",
	 .type = PROM_GAUGE,
	 .unit = "seconds",
	 .help = "time since the agent started",
	 .status = "agent.uptime_ms",
	 .scale = 1e-3},
	COUNTER("autotrace_agent_cpu_seconds_total", "seconds",
		"CPU time of the agent process (user and system)", "agent.cpu_seconds"),
	GAUGE("autotrace_agent_resident_memory_bytes", "bytes", "resident memory of the agent",
	      "agent.rss_bytes"),
	GAUGE("autotrace_agent_resident_memory_peak_bytes", "bytes",
	      "peak resident memory of the agent", "agent.rss_peak_bytes"),
	GAUGE("autotrace_agent_metric_series", "", "metric series in the agent's history",
	      "agent.metric_series"),
	{.name = "autotrace_agent_interval_seconds",
	 .type = PROM_GAUGE,
	 .unit = "seconds",
	 .help = "the watchers' sampling period (agent.interval)",
	 .status = "agent.interval_ms",
	 .scale = 1e-3},
	GAUGE("autotrace_agent_dry_run", "",
	      "1 when agent.dry_run is set: rules fire, nothing attaches", "agent.dry_run"),
	{.name = "autotrace_agent_reload_failed",
	 .type = PROM_GAUGE,
	 .unit = "",
	 .help = "1 when the last reload failed and the previous configuration keeps running",
	 .status = "agent.last_reload_error",
	 .value = AV_PRESENT},

	{.name = "autotrace_watcher_state",
	 .type = PROM_GAUGE,
	 .unit = "",
	 .help = "each watcher's state (1 for the current one)",
	 .status = "watchers[].state",
	 .value = AV_STATE,
	 .label = "watcher",
	 .label_from = "name",
	 .states = watcher_states},
	{.name = "autotrace_watcher_rounds_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "rounds each watcher sampled",
	 .status = "watchers[].samples",
	 .label = "watcher",
	 .label_from = "name"},
	{.name = "autotrace_watcher_sample_seconds_total",
	 .type = PROM_COUNTER,
	 .unit = "seconds",
	 .help = "agent CPU time each watcher spent sampling (divide its rate by the rounds' for "
		 "the cost of one round)",
	 .status = "watchers[].sample_us_total",
	 .scale = 1e-6,
	 .label = "watcher",
	 .label_from = "name"},
	{.name = "autotrace_watcher_sample_max_seconds",
	 .type = PROM_GAUGE,
	 .unit = "seconds",
	 .help = "the longest round of each watcher",
	 .status = "watchers[].sample_us_max",
	 .scale = 1e-6,
	 .label = "watcher",
	 .label_from = "name"},
	{.name = "autotrace_watch_hook_events_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "runs of an opt-in hook mode's BPF programs since it was turned on (BPF run-time "
		 "statistics)",
	 .status = "watchers[].events",
	 .label = "watcher",
	 .label_from = "name"},
	GAUGE("autotrace_cgroups_watched", "", "cgroups watched with their own series",
	      "watchers[name=cgroups].cgroups"),
	GAUGE("autotrace_cgroups_dropped", "",
	      "populated cgroups not watched at the last scan: over watch.max_cgroups",
	      "watchers[name=cgroups].cgroups_dropped"),
	GAUGE("autotrace_cgroups_unsafe_names", "",
	      "cgroups not watched at the last scan because their names hold control characters",
	      "watchers[name=cgroups].cgroups_unsafe_names"),
	GAUGE("autotrace_cgroups_found", "",
	      "populated cgroups found at the last scan (watched, dropped or with unsafe names)",
	      "watchers[name=cgroups].cgroups_found"),
	GAUGE("autotrace_task_state_entries", "",
	      "size of the hash of per-task state (the one-run task walk, kernels before 5.11)",
	      "watchers[name=taskwatch].task_state_entries"),
	COUNTER("autotrace_task_state_lost_total", "",
		"tasks whose saved state the full per-task hash had evicted (the wait of one "
		"interval lost; the hash then grows)",
		"watchers[name=taskwatch].task_state_lost"),
	{.name = "autotrace_watcher_sample_every",
	 .type = PROM_GAUGE,
	 .unit = "",
	 .help = "rounds between two full passes of a watcher that can hold its values (1: every "
		 "round; the guard widens it while the watch layer costs more than "
		 "guard.watch_cpu)",
	 .status = "watchers[].every",
	 .label = "watcher",
	 .label_from = "name"},
	{.name = "autotrace_watcher_full_sample_seconds",
	 .type = PROM_GAUGE,
	 .unit = "seconds",
	 .help = "agent CPU of one full pass of a watcher that can hold its values (recent "
		 "average)",
	 .status = "watchers[].sample_us_recent",
	 .scale = 1e-6,
	 .label = "watcher",
	 .label_from = "name"},
	{.name = "autotrace_watcher_widenings_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "times the guard widened a watcher's sampling interval",
	 .status = "watchers[].widened",
	 .label = "watcher",
	 .label_from = "name"},
	GAUGE("autotrace_cgroups_unwatched", "",
	      "populated cgroups without series of their own now: over watch.max_cgroups or with "
	      "unsafe names",
	      "dropped.cgroups_unwatched"),
	COUNTER("autotrace_metric_series_dropped_total", "",
		"metric values not kept because the history was full (watchers_series_budget)",
		"dropped.metric_series"),

	{.name = "autotrace_rule_state",
	 .type = PROM_GAUGE,
	 .unit = "",
	 .help = "each rule's state, the worst over its scopes (1 for the current one)",
	 .status = "rules[].state",
	 .value = AV_STATE,
	 .label = "rule",
	 .label_from = "name",
	 .states = rule_states},
	{.name = "autotrace_rule_enabled",
	 .type = PROM_GAUGE,
	 .unit = "",
	 .help = "1 when the rule is enabled",
	 .status = "rules[].enabled",
	 .label = "rule",
	 .label_from = "name"},
	{.name = "autotrace_rule_fires_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "times each rule fired, every scope together",
	 .status = "rules[].fires_total",
	 .label = "rule",
	 .label_from = "name"},
	{.name = "autotrace_rule_firings_skipped_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "firings held back by max_per_hour, top or the scope cap",
	 .status = "rules[].skipped",
	 .label = "rule",
	 .label_from = "name"},
	{.name = "autotrace_rule_firings_refused_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "firings the capture budget refused (retried while the condition holds)",
	 .status = "rules[].refused",
	 .label = "rule",
	 .label_from = "name"},
	{.name = "autotrace_rule_errors_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "errors of each rule: captures that failed to start or failed, incidents not "
		 "written",
	 .status = "rules[].errors",
	 .label = "rule",
	 .label_from = "name"},

	{.name = "autotrace_captures_running",
	 .type = PROM_GAUGE,
	 .unit = "",
	 .help = "capture programs running now (one per kind of a session)",
	 .status = "captures.running",
	 .value = AV_COUNT},
	{.name = "autotrace_capture_sessions_running",
	 .type = PROM_GAUGE,
	 .unit = "",
	 .help = "capture sessions running now (each becomes one incident)",
	 .status = "captures.sessions",
	 .value = AV_COUNT},
	GAUGE("autotrace_capture_budget_seconds", "seconds",
	      "capture seconds allowed per rolling hour (capture.max_seconds_per_hour)",
	      "captures.max_seconds_per_hour"),
	GAUGE("autotrace_capture_budget_left_seconds", "seconds",
	      "capture seconds left in the rolling hour", "captures.budget_left_seconds"),
	{.name = "autotrace_captures_refused_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "capture requests refused: reason busy (a kind or max_concurrent) or budget",
	 .status = "captures.refused_busy",
	 .fixed_label = "reason=busy"},
	{.name = "autotrace_captures_refused_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "capture requests refused: reason busy (a kind or max_concurrent) or budget",
	 .status = "captures.refused_budget",
	 .fixed_label = "reason=budget"},
	COUNTER("autotrace_captures_cut_short_total", "",
		"captures the guard ended early because they cost the node too much",
		"guard.captures_cut_short"),
	COUNTER("autotrace_capture_lost_events_total", "",
		"events capture programs could not deliver (ring buffer full)",
		"dropped.capture_lost_events"),
	{.name = "autotrace_capture_runs_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "captures run, per kind",
	 .status = "captures.kinds[].runs",
	 .label = "kind",
	 .label_from = "kind"},
	{.name = "autotrace_capture_kind_state",
	 .type = PROM_GAUGE,
	 .unit = "",
	 .help = "each capture kind's state on this host (1 for the current one)",
	 .status = "captures.kinds[].state",
	 .value = AV_STATE,
	 .label = "kind",
	 .label_from = "kind",
	 .states = kind_states},

	COUNTER("autotrace_incidents_written_total", "", "incidents written to the local store",
		"incidents.written"),
	COUNTER("autotrace_incidents_failed_total", "",
		"incidents that could not be serialized or written", "incidents.failed"),
	GAUGE("autotrace_incidents_stored", "", "incidents in the local store", "incidents.stored"),
	GAUGE("autotrace_incidents_stored_bytes", "bytes", "size of the local store",
	      "incidents.stored_bytes"),

	{.name = "autotrace_es_state",
	 .type = PROM_GAUGE,
	 .unit = "",
	 .help = "Elasticsearch shipping state (1 for the current one)",
	 .status = "elasticsearch.state",
	 .value = AV_STATE,
	 .states = es_states},
	GAUGE("autotrace_es_spool_depth", "", "incidents waiting in the spool",
	      "elasticsearch.spool_depth"),
	GAUGE("autotrace_es_spool_bytes", "bytes", "size of the incidents waiting in the spool",
	      "elasticsearch.spool_bytes"),
	{.name = "autotrace_es_spool_oldest_age_seconds",
	 .type = PROM_GAUGE,
	 .unit = "seconds",
	 .help = "age of the oldest incident waiting in the spool (0 when empty)",
	 .status = "elasticsearch.spool_oldest_age_ms",
	 .scale = 1e-3},
	GAUGE("autotrace_es_parked", "", "incidents the cluster refused for good, kept in parked/",
	      "elasticsearch.parked"),
	COUNTER("autotrace_es_shipped_total", "", "incidents acknowledged by Elasticsearch",
		"elasticsearch.shipped"),
	COUNTER("autotrace_es_rejected_total", "", "incidents Elasticsearch refused for good",
		"elasticsearch.rejected"),
	COUNTER("autotrace_es_evicted_total", "",
		"incidents evicted from the spool unshipped (spool_max_size, spool_max_age)",
		"elasticsearch.evicted"),
	COUNTER("autotrace_es_retried_total", "", "incidents sent again after a failure",
		"elasticsearch.retried"),
	COUNTER("autotrace_es_requests_total", "", "requests sent to Elasticsearch",
		"elasticsearch.requests"),
	COUNTER("autotrace_es_request_failures_total", "",
		"requests that failed (connection, timeout, HTTP error)",
		"elasticsearch.request_failures"),
	COUNTER("autotrace_es_sent_bytes_total", "bytes", "request bytes sent (after compression)",
		"elasticsearch.bytes_sent"),

	GAUGE("autotrace_guard_enabled", "", "1 when the run-time guard is on", "guard.enabled"),
	{.name = "autotrace_guard_capture_cpu_ratio",
	 .type = PROM_GAUGE,
	 .unit = "ratio",
	 .help = "kernel time of the running capture programs, share of all CPUs (BPF run-time "
		 "statistics; 0 when none runs)",
	 .status = "guard.capture_cpu_pct",
	 .scale = 0.01},
	{.name = "autotrace_guard_watch_cpu_ratio",
	 .type = PROM_GAUGE,
	 .unit = "ratio",
	 .help = "agent CPU of the watch layer, share of one CPU (recent average of its rounds)",
	 .status = "guard.watch.cpu_pct",
	 .scale = 0.01},
	{.name = "autotrace_guard_watch_round_seconds",
	 .type = PROM_GAUGE,
	 .unit = "seconds",
	 .help = "agent CPU of one round of the watch layer, every watcher (recent average)",
	 .status = "guard.watch.us_per_round",
	 .scale = 1e-6},
	{.name = "autotrace_guard_watch_cpu_limit_ratio",
	 .type = PROM_GAUGE,
	 .unit = "ratio",
	 .help = "guard.watch_cpu: the watch layer's agent CPU budget, share of one CPU",
	 .status = "guard.watch.cpu_per_s_limit_ms",
	 .scale = 1e-3},
	COUNTER("autotrace_guard_watch_widenings_total", "",
		"times the guard sampled a watcher less often because the watch layer cost more "
		"than "
		"guard.watch_cpu",
		"guard.watch.widenings"),
	{.name = "autotrace_guard_hook_state",
	 .type = PROM_GAUGE,
	 .unit = "",
	 .help = "each opt-in hook mode's state under the guard (1 for the current one)",
	 .status = "guard.hooks[].state",
	 .value = AV_STATE,
	 .label = "hook",
	 .label_from = "name",
	 .states = hook_states},
	{.name = "autotrace_guard_hook_throttles_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "times the guard switched a hook mode off",
	 .status = "guard.hooks[].throttles",
	 .label = "hook",
	 .label_from = "name"},

	GAUGE("autotrace_symbolizer_cache_bytes", "bytes", "memory of cached symbol tables",
	      "symbolizer.cache_bytes"),
	COUNTER("autotrace_symbolizer_evictions_total", "",
		"symbol tables evicted to stay under symbolizer.cache_size",
		"symbolizer.evictions"),

	COUNTER("autotrace_metrics_http_requests_total", "", "requests the endpoint answered",
		"prometheus.requests"),
	{.name = "autotrace_metrics_http_refused_total",
	 .type = PROM_COUNTER,
	 .unit = "",
	 .help = "connections and requests refused: reason full (metrics.max_clients), rate "
		 "(connection or password-check rate), auth (no or wrong credentials), timeout "
		 "(slow clients dropped), bad (malformed)",
	 .status = "prometheus.refused{}",
	 .label = "reason"},
	COUNTER("autotrace_metrics_http_cpu_seconds_total", "seconds",
		"agent CPU time spent answering the endpoint (rendering, TLS, sending)",
		"prometheus.cpu_seconds"),
	COUNTER("autotrace_metrics_http_sent_bytes_total", "bytes", "response bytes sent",
		"prometheus.bytes_sent"),
	GAUGE("autotrace_metrics_http_last_body_bytes", "bytes", "size of the last exposition",
	      "prometheus.last_body_bytes"),
	GAUGE("autotrace_metrics_http_last_series_skipped", "",
	      "series the last exposition left out to stay under metrics.max_response_size",
	      "prometheus.last_series_skipped"),
};

size_t agent_metric_count(void)
{
	return sizeof(agent_metrics) / sizeof(agent_metrics[0]);
}

const struct agent_metric *agent_metric_at(size_t i)
{
	return i < agent_metric_count() ? &agent_metrics[i] : NULL;
}
