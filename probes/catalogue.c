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
