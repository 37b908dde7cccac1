// SPDX-License-Identifier: GPL-2.0-only
#include "probes/catalogue.h"

#include <stdio.h>
#include <string.h>

#define H  MSCOPE_HOST
#define C  MSCOPE_CPU
#define D  MSCOPE_DEVICE
#define CG MSCOPE_CGROUP

/* Order of the first entries matches enum metric_id. */
static const struct metric_desc catalogue[] = {
	[M_CPU_USER] = { "cpu.user_pct", "%", H | C, "/proc/stat", "time in user mode (incl. guest)" },
	[M_CPU_NICE] = { "cpu.nice_pct", "%", H | C, "/proc/stat", "time in user mode at positive nice" },
	[M_CPU_SYS] = { "cpu.sys_pct", "%", H | C, "/proc/stat", "time in the kernel (system calls, faults)" },
	[M_CPU_IDLE] = { "cpu.idle_pct", "%", H | C, "/proc/stat", "idle time" },
	[M_CPU_IOWAIT] = { "cpu.iowait_pct", "%", H | C, "/proc/stat", "idle with IO outstanding" },
	[M_CPU_IRQ] = { "cpu.irq_pct", "%", H | C, "/proc/stat", "hard interrupt time" },
	[M_CPU_SOFTIRQ] = { "cpu.softirq_pct", "%", H | C, "/proc/stat", "softirq time" },
	[M_CPU_STEAL] = { "cpu.steal_pct", "%", H | C, "/proc/stat", "time stolen by the hypervisor" },
};

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
	static const char *const names[] = { "host", "per cpu", "per device", "per cgroup" };
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < 4; i++) {
		if (!(scopes & (1u << i)))
			continue;
		off += (size_t)snprintf(buf + off, len > off ? len - off : 0, "%s%s",
					off ? ", " : "", names[i]);
	}
}
