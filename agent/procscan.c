// SPDX-License-Identifier: GPL-2.0-only
#include "agent/procscan.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/util.h"

#define PROCSCAN_MAX_PIDS 65536

struct sample {
	int pid;
	uint64_t value;
};

enum procscan_by procscan_by_for_metric(const char *metric)
{
	if (strstr(metric, "dstate"))
		return PROCSCAN_DSTATE;
	if (!strncmp(metric, "mem.", 4) || !strncmp(metric, "cgroup.mem.", 11))
		return PROCSCAN_RSS;
	if (!strncmp(metric, "io.", 3) || !strncmp(metric, "cgroup.io.", 10))
		return PROCSCAN_IO;
	return PROCSCAN_CPU;
}

const char *procscan_by_name(enum procscan_by by)
{
	static const char *const names[] = {"cpu", "dstate", "rss", "io"};

	return by <= PROCSCAN_IO ? names[by] : "?";
}

static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

/* Is pid in cgroup (or below it)? The v1 cpu hierarchy when there is one, else v2. */
static bool in_cgroup(const char *procfs, int pid, const char *cgroup)
{
	char mine[PATH_MAX];

	return cgroup_of_pid(procfs, pid, "cpu", mine, sizeof(mine)) == 0 &&
	       cgroup_path_under(mine, cgroup);
}

/* One value per process for the criterion; comm filled when asked. */
static bool value_of(const char *procfs, int pid, enum procscan_by by, uint64_t *v, char *comm,
		     size_t commlen)
{
	char path[80], buf[4096];
	char *p;

	switch (by) {
	case PROCSCAN_CPU:
	case PROCSCAN_RSS: {
		unsigned long long ut, st;
		long rss;

		snprintf(path, sizeof(path), "%s/%d/stat", procfs, pid);
		if (read_small(path, buf, sizeof(buf)) <= 0)
			return false;
		/* comm may hold spaces and ')': fields start after the last ')' */
		p = strrchr(buf, ')');
		if (!p)
			return false;
		if (comm) {
			char *open_paren = strchr(buf, '(');

			if (open_paren && open_paren < p)
				snprintf(comm, commlen, "%.*s", (int)(p - open_paren - 1),
					 open_paren + 1);
		}
		/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
		 * cutime cstime priority nice threads itrealvalue starttime vsize rss */
		if (sscanf(p + 2,
			   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
			   "%*d %*d %*d %*d %*u %*u %ld",
			   &ut, &st, &rss) != 3)
			return false;
		*v = by == PROCSCAN_CPU ? ut + st : (uint64_t)(rss > 0 ? rss : 0);
		return true;
	}
	case PROCSCAN_DSTATE: {
		struct dirent *de;
		DIR *d;
		uint64_t n = 0;

		snprintf(path, sizeof(path), "%s/%d/task", procfs, pid);
		d = opendir(path);
		if (!d)
			return false;
		while ((de = readdir(d))) {
			char tpath[128], *q;

			if (!isdigit((unsigned char)de->d_name[0]))
				continue;
			snprintf(tpath, sizeof(tpath), "%s/%d/task/%s/stat", procfs, pid,
				 de->d_name);
			if (read_small(tpath, buf, sizeof(buf)) <= 0)
				continue;
			q = strrchr(buf, ')');
			if (q && q[1] == ' ' && q[2] == 'D')
				n++;
		}
		closedir(d);
		*v = n;
		if (comm) {
			uint64_t dummy;

			value_of(procfs, pid, PROCSCAN_RSS, &dummy, comm, commlen);
		}
		return true;
	}
	case PROCSCAN_IO: {
		unsigned long long rb = 0, wb = 0;

		snprintf(path, sizeof(path), "%s/%d/io", procfs, pid);
		if (read_small(path, buf, sizeof(buf)) <= 0)
			return false;
		p = strstr(buf, "\nread_bytes:");
		if (p)
			rb = strtoull(p + 12, NULL, 10);
		p = strstr(buf, "\nwrite_bytes:");
		if (p)
			wb = strtoull(p + 13, NULL, 10);
		*v = rb + wb;
		if (comm) {
			uint64_t dummy;

			value_of(procfs, pid, PROCSCAN_RSS, &dummy, comm, commlen);
		}
		return true;
	}
	}
	return false;
}

static int scan(const char *procfs, const char *cgroup, enum procscan_by by, struct sample **out,
		size_t *n)
{
	struct sample *s = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	DIR *d = opendir(procfs);

	if (!d)
		return -errno;
	while ((de = readdir(d)) && cnt < PROCSCAN_MAX_PIDS) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		uint64_t v;

		if (*end || pid <= 0)
			continue;
		if (cgroup && !in_cgroup(procfs, (int)pid, cgroup))
			continue;
		if (!value_of(procfs, (int)pid, by, &v, NULL, 0))
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct sample *p = realloc(s, ncap * sizeof(*p));

			if (!p) {
				free(s);
				closedir(d);
				return -ENOMEM;
			}
			s = p;
			cap = ncap;
		}
		s[cnt++] = (struct sample){(int)pid, v};
	}
	closedir(d);
	*out = s;
	*n = cnt;
	return 0;
}

int procscan_top(const char *procfs, const char *cgroup, enum procscan_by by, unsigned sample_ms,
		 struct top_process *out)
{
	struct sample *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	bool rate = by == PROCSCAN_CPU || by == PROCSCAN_IO;
	int best = -1, err;
	uint64_t best_v = 0;

	memset(out, 0, sizeof(*out));
	if (!procfs)
		procfs = "/proc";
	err = scan(procfs, cgroup, by, &a, &na);
	if (err)
		return err;
	if (rate) {
		struct timespec ts = {(time_t)(sample_ms / 1000),
				      (long)(sample_ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
		err = scan(procfs, cgroup, by, &b, &nb);
		if (err) {
			free(a);
			return err;
		}
		/* both lists come from readdir of /proc: pids in the same order */
		for (size_t i = 0, j = 0; i < nb; i++) {
			while (j < na && a[j].pid != b[i].pid)
				j++;
			if (j == na) {
				j = 0;
				continue;
			}
			if (b[i].value >= a[j].value && b[i].value - a[j].value > best_v) {
				best_v = b[i].value - a[j].value;
				best = b[i].pid;
			}
		}
	} else {
		for (size_t i = 0; i < na; i++) {
			if (a[i].value > best_v) {
				best_v = a[i].value;
				best = a[i].pid;
			}
		}
	}
	free(a);
	free(b);
	if (best < 0)
		return -ESRCH;
	out->pid = best;
	{
		uint64_t dummy;

		value_of(procfs, best, PROCSCAN_RSS, &dummy, out->comm, sizeof(out->comm));
	}
	switch (by) {
	case PROCSCAN_CPU:
		out->score = 100.0 * (double)best_v / (double)sysconf(_SC_CLK_TCK) /
			     ((double)sample_ms / 1000.0);
		break;
	case PROCSCAN_IO:
		out->score = (double)best_v / ((double)sample_ms / 1000.0);
		break;
	case PROCSCAN_RSS:
		out->score = (double)best_v * (double)sysconf(_SC_PAGESIZE);
		break;
	case PROCSCAN_DSTATE:
		out->score = (double)best_v;
		break;
	}
	return 0;
}
