// SPDX-License-Identifier: GPL-2.0-only
/* Host and per-CPU time breakdown from /proc/stat, read with pread on a kept-open fd. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/tsdb.h"
#include "agent/util.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"

#define CPUSTAT_FIELDS  8 /* user nice system idle iowait irq softirq steal */
#define CPUSTAT_MAX_CPU 8192
#define CPUSTAT_BUF_MAX (4u << 20) /* /proc/stat of a huge host, with its intr line */

struct cpu_times {
	uint64_t v[CPUSTAT_FIELDS];
	bool seen;
};

struct cpustat {
	int fd;
	char *buf;
	size_t cap;
	struct cpu_times host;
	struct cpu_times *cpus; /* indexed by cpu number */
	unsigned ncpus;
	bool primed;
};

static const unsigned field_metric[CPUSTAT_FIELDS] = {
	M_CPU_USER, M_CPU_NICE, M_CPU_SYS, M_CPU_IDLE,
	M_CPU_IOWAIT, M_CPU_IRQ, M_CPU_SOFTIRQ, M_CPU_STEAL,
};

static int cpustat_open(void **out, const struct watcher_env *env)
{
	struct cpustat *cs = calloc(1, sizeof(*cs));
	char path[256];

	if (!cs)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/stat", env->procfs);
	cs->fd = open(path, O_RDONLY | O_CLOEXEC);
	cs->cap = 65536;
	cs->buf = malloc(cs->cap);
	if (cs->fd < 0 || !cs->buf) {
		int err = cs->fd < 0 ? -errno : -ENOMEM;

		if (cs->fd >= 0)
			close(cs->fd);
		free(cs->buf);
		free(cs);
		return err;
	}
	*out = cs;
	return 0;
}

static void cpustat_close(void *state)
{
	struct cpustat *cs = state;

	close(cs->fd);
	free(cs->buf);
	free(cs->cpus);
	free(cs);
}

/* Reads the whole file from offset 0, growing the buffer up to CPUSTAT_BUF_MAX. */
static int read_all(struct cpustat *cs, size_t *len)
{
	for (;;) {
		ssize_t n = pread(cs->fd, cs->buf, cs->cap - 1, 0);

		if (n < 0)
			return -errno;
		if ((size_t)n < cs->cap - 1) {
			cs->buf[n] = '\0';
			*len = (size_t)n;
			return 0;
		}
		if (cs->cap >= CPUSTAT_BUF_MAX) {
			/* the cpu lines come first; a truncated tail only loses intr counts */
			cs->buf[n] = '\0';
			*len = (size_t)n;
			return 0;
		}
		char *nb = realloc(cs->buf, cs->cap * 2);

		if (!nb)
			return -ENOMEM;
		cs->buf = nb;
		cs->cap *= 2;
	}
}

/* Parses "cpu[N] a b c ..." into times; returns -1 for the host line, N, or -EINVAL. */
static int parse_cpu_line(const char *line, struct cpu_times *t)
{
	const char *p = line + 3;
	long cpu = -1;
	char *end;

	if (*p != ' ') {
		errno = 0;
		cpu = strtol(p, &end, 10);
		if (errno || end == p || cpu < 0 || cpu >= CPUSTAT_MAX_CPU)
			return -EINVAL;
		p = end;
	}
	for (int i = 0; i < CPUSTAT_FIELDS; i++) {
		unsigned long long v;

		while (*p == ' ')
			p++;
		if (*p < '0' || *p > '9') {
			/* old kernels have fewer columns: missing ones count as zero */
			if (i >= 4 && (*p == '\n' || *p == '\0')) {
				t->v[i] = 0;
				continue;
			}
			return -EINVAL;
		}
		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno)
			return -EINVAL;
		t->v[i] = v;
		p = end;
	}
	return (int)cpu;
}

static void put_deltas(struct tsdb *db, const struct cpu_times *prev, const struct cpu_times *now,
		       const struct labels *labels)
{
	uint64_t d[CPUSTAT_FIELDS], total = 0;

	for (int i = 0; i < CPUSTAT_FIELDS; i++) {
		/* counters only go backwards on CPU hot-unplug/replug; treat as no time */
		d[i] = now->v[i] >= prev->v[i] ? now->v[i] - prev->v[i] : 0;
		total += d[i];
	}
	if (total == 0)
		return;
	for (int i = 0; i < CPUSTAT_FIELDS; i++)
		tsdb_put(db, field_metric[i], labels, 100.0 * (double)d[i] / (double)total);
}

static int cpustat_sample(void *state, struct tsdb *db)
{
	struct cpustat *cs = state;
	size_t len;
	int err;
	bool host_seen = false;

	err = read_all(cs, &len);
	if (err)
		return err;
	for (char *line = cs->buf; line && *line;) {
		char *nl = strchr(line, '\n');
		struct cpu_times t = { .seen = true };
		int cpu;

		if (nl)
			*nl = '\0';
		if (strncmp(line, "cpu", 3) != 0) {
			/* cpu lines are contiguous at the top */
			if (host_seen)
				break;
			line = nl ? nl + 1 : NULL;
			continue;
		}
		cpu = parse_cpu_line(line, &t);
		line = nl ? nl + 1 : NULL;
		if (cpu == -EINVAL)
			continue;
		if (cpu < 0) {
			if (cs->primed && cs->host.seen)
				put_deltas(db, &cs->host, &t, NULL);
			cs->host = t;
			host_seen = true;
			continue;
		}
		if ((unsigned)cpu >= cs->ncpus) {
			unsigned n = (unsigned)cpu + 1;
			struct cpu_times *p = realloc(cs->cpus, n * sizeof(*p));

			if (!p)
				return -ENOMEM;
			memset(p + cs->ncpus, 0, (n - cs->ncpus) * sizeof(*p));
			cs->cpus = p;
			cs->ncpus = n;
		}
		if (cs->primed && cs->cpus[cpu].seen) {
			char num[16];
			struct labels l = { .n = 1, .k = { "cpu" }, .v = { num } };

			snprintf(num, sizeof(num), "%d", cpu);
			put_deltas(db, &cs->cpus[cpu], &t, &l);
		}
		cs->cpus[cpu] = t;
	}
	if (!host_seen)
		return -EPROTO;
	cs->primed = true;
	return 0;
}

const struct watcher_ops cpustat_watcher = {
	.name = "cpustat",
	.help = "host and per-CPU time breakdown from /proc/stat",
	.open = cpustat_open,
	.sample = cpustat_sample,
	.close = cpustat_close,
};
