// SPDX-License-Identifier: GPL-2.0-only
/* Host and per-CPU time breakdown, context switches, forks and runnable tasks
 * from /proc/stat, and the load average, read with pread on kept-open fds. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "probes/watchutil.h"

#define CPUSTAT_FIELDS	8 /* user nice system idle iowait irq softirq steal */
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
	uint64_t ctxt, forks, mono_ns; /* counters of the previous sample */
	struct kfile loadavg;	       /* absent: no sched.load1 */
	bool have_loadavg;
};

static const unsigned field_metric[CPUSTAT_FIELDS] = {
	M_CPU_USER,   M_CPU_NICE, M_CPU_SYS,	 M_CPU_IDLE,
	M_CPU_IOWAIT, M_CPU_IRQ,  M_CPU_SOFTIRQ, M_CPU_STEAL,
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
	snprintf(path, sizeof(path), "%s/loadavg", env->procfs);
	cs->have_loadavg = kfile_open(&cs->loadavg, path, 4096) == 0;
	*out = cs;
	return 0;
}

static void cpustat_close(void *state)
{
	struct cpustat *cs = state;

	close(cs->fd);
	if (cs->have_loadavg)
		kfile_close(&cs->loadavg);
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

/* "name N" -> N for the scheduler counters below the cpu lines. */
static bool stat_counter(const char *line, const char *name, uint64_t *out)
{
	size_t nl = strlen(name);
	unsigned long long v;
	char *end;

	if (strncmp(line, name, nl) || line[nl] != ' ' || line[nl + 1] < '0' || line[nl + 1] > '9')
		return false;
	errno = 0;
	v = strtoull(line + nl + 1, &end, 10);
	if (errno || (*end && *end != ' '))
		return false;
	*out = v;
	return true;
}

static void put_loadavg(struct cpustat *cs, struct tsdb *db)
{
	size_t len;
	double l1;
	char *end;

	if (!cs->have_loadavg || kfile_read(&cs->loadavg, &len) || !len)
		return;
	errno = 0;
	l1 = strtod(cs->loadavg.buf, &end);
	if (errno || end == cs->loadavg.buf || *end != ' ' || !(l1 >= 0) || l1 > 1e9)
		return;
	tsdb_put(db, M_SCHED_LOAD1, NULL, l1);
}

static int cpustat_sample(void *state, struct tsdb *db)
{
	struct cpustat *cs = state;
	uint64_t ctxt = 0, forks = 0, running = 0, blocked = 0, now = watch_now_ns();
	bool have_ctxt = false, have_forks = false, have_running = false, have_blocked = false;
	size_t len;
	int err;
	bool host_seen = false;

	err = read_all(cs, &len);
	if (err)
		return err;
	for (char *line = cs->buf; line && *line;) {
		char *nl = strchr(line, '\n');
		struct cpu_times t = {.seen = true};
		int cpu;

		if (nl)
			*nl = '\0';
		if (strncmp(line, "cpu", 3) != 0) {
			have_ctxt |= stat_counter(line, "ctxt", &ctxt);
			have_forks |= stat_counter(line, "processes", &forks);
			have_running |= stat_counter(line, "procs_running", &running);
			have_blocked |= stat_counter(line, "procs_blocked", &blocked);
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
			struct labels l = {.n = 1, .k = {"cpu"}, .v = {num}};

			snprintf(num, sizeof(num), "%d", cpu);
			put_deltas(db, &cs->cpus[cpu], &t, &l);
		}
		cs->cpus[cpu] = t;
	}
	if (!host_seen)
		return -EPROTO;
	if (cs->primed && now > cs->mono_ns) {
		double secs = (double)(now - cs->mono_ns) / 1e9;

		if (have_ctxt)
			tsdb_put(db, M_SCHED_CTXSW, NULL,
				 (double)counter_delta(ctxt, cs->ctxt) / secs);
		if (have_forks)
			tsdb_put(db, M_SCHED_FORKS, NULL,
				 (double)counter_delta(forks, cs->forks) / secs);
	}
	if (have_running)
		tsdb_put(db, M_SCHED_PROCS_RUNNING, NULL, (double)running);
	if (have_blocked)
		tsdb_put(db, M_SCHED_PROCS_BLOCKED, NULL, (double)blocked);
	put_loadavg(cs, db);
	cs->ctxt = ctxt;
	cs->forks = forks;
	cs->mono_ns = now;
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
