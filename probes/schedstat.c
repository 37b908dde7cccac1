// SPDX-License-Identifier: GPL-2.0-only
/* Run-queue wait time per CPU from /proc/schedstat (kernels with
 * CONFIG_SCHEDSTATS): the exact total, tasks that exited included. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "probes/watchutil.h"

#define SCHEDSTAT_MAX_CPU 8192
#define SCHEDSTAT_MAX	  (8u << 20)

struct schedstat {
	struct kfile f;
	uint64_t *delay; /* run_delay ns by cpu, previous sample; UINT64_MAX: unseen */
	unsigned ncpus;
	uint64_t mono_ns;
};

static int schedstat_open(void **out, const struct watcher_env *env)
{
	struct schedstat *ss = calloc(1, sizeof(*ss));
	char path[256];
	int err;

	if (!ss)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/schedstat", env->procfs);
	err = kfile_open(&ss->f, path, SCHEDSTAT_MAX);
	if (err) {
		if (err == -ENOENT)
			snprintf(env->why, env->why_len,
				 "%s absent: kernel built without CONFIG_SCHEDSTATS "
				 "(sched.runq_* come from the task iterator)",
				 path);
		free(ss);
		return err;
	}
	*out = ss;
	return 0;
}

static void schedstat_close(void *state)
{
	struct schedstat *ss = state;

	kfile_close(&ss->f);
	free(ss->delay);
	free(ss);
}

/* "cpuN a b c d e f g run_delay pcount": run_delay of cpu N, or -EINVAL. */
static int parse_line(const char *line, uint64_t *delay)
{
	const char *p = line + 3;
	unsigned long long v = 0;
	long cpu;
	char *end;

	errno = 0;
	cpu = strtol(p, &end, 10);
	if (errno || end == p || cpu < 0 || cpu >= SCHEDSTAT_MAX_CPU)
		return -EINVAL;
	p = end;
	for (int i = 0; i < 8; i++) {
		while (*p == ' ')
			p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno)
			return -EINVAL;
		p = end;
	}
	*delay = v;
	return (int)cpu;
}

static int schedstat_sample(void *state, struct tsdb *db)
{
	struct schedstat *ss = state;
	uint64_t now = watch_now_ns(), total = 0;
	double secs = ss->mono_ns && now > ss->mono_ns ? (double)(now - ss->mono_ns) / 1e9 : 0;
	bool any = false, version_ok = false;
	size_t len;
	int err;

	err = kfile_read(&ss->f, &len);
	if (err)
		return err;
	for (char *line = ss->f.buf; line && *line;) {
		char *nl = strchr(line, '\n');
		uint64_t delay;
		int cpu;

		if (nl)
			*nl = '\0';
		if (!strncmp(line, "version ", 8))
			version_ok = atoi(line + 8) >= 10;
		if (strncmp(line, "cpu", 3) || (cpu = parse_line(line, &delay)) < 0) {
			line = nl ? nl + 1 : NULL;
			continue;
		}
		line = nl ? nl + 1 : NULL;
		if ((unsigned)cpu >= ss->ncpus) {
			unsigned n = (unsigned)cpu + 1;
			uint64_t *p = realloc(ss->delay, n * sizeof(*p));

			if (!p)
				return -ENOMEM;
			for (unsigned i = ss->ncpus; i < n; i++)
				p[i] = UINT64_MAX;
			ss->delay = p;
			ss->ncpus = n;
		}
		if (secs > 0 && ss->delay[cpu] != UINT64_MAX) {
			uint64_t d = counter_delta(delay, ss->delay[cpu]);
			char num[16];
			struct labels l = {.n = 1, .k = {"cpu"}, .v = {num}};

			snprintf(num, sizeof(num), "%d", cpu);
			tsdb_put(db, M_SCHED_RUNQ_WAIT, &l, 100.0 * (double)d / 1e9 / secs);
			total += d;
			any = true;
		}
		ss->delay[cpu] = delay;
	}
	if (!version_ok)
		return -EPROTO;
	if (any)
		tsdb_put(db, M_SCHED_RUNQ_WAIT, NULL, 100.0 * (double)total / 1e9 / secs);
	ss->mono_ns = now;
	return 0;
}

const struct watcher_ops schedstat_watcher = {
	.name = "schedstat",
	.help = "run-queue wait time per CPU from /proc/schedstat",
	.open = schedstat_open,
	.sample = schedstat_sample,
	.close = schedstat_close,
};
