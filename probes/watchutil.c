// SPDX-License-Identifier: GPL-2.0-only
#include "probes/watchutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/util.h"

#define KFILE_FIRST_CAP 256 /* small files stay small; big ones grow once */

static unsigned kept_open;
static unsigned kept_budget;
static bool budget_set;

/* Default budget: most of the soft descriptor limit, raised to the hard one. */
static unsigned default_budget(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 256;
	if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < 65536) {
		/* kept-open cgroup files need more than the traditional 1024 */
		rlim_t want = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
		struct rlimit raised = {want, rl.rlim_max};

		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl.rlim_cur = want;
	}
	/* leave a quarter, at least 256, to everything else the agent opens */
	if (rl.rlim_cur <= 512)
		return 128;
	{
		rlim_t reserve = rl.rlim_cur / 4 > 256 ? rl.rlim_cur / 4 : 256;
		rlim_t budget = rl.rlim_cur - reserve;

		return budget > (1u << 20) ? 1u << 20 : (unsigned)budget;
	}
}

void kfile_set_budget(unsigned max_open)
{
	kept_budget = max_open;
	budget_set = true;
}

unsigned kfile_open_count(void)
{
	return kept_open;
}

int kfile_open(struct kfile *f, const char *path, size_t max)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->max = max;
	if (!budget_set)
		kfile_set_budget(default_budget());
	f->path = strdup(path);
	f->cap = max < KFILE_FIRST_CAP ? max + 1 : KFILE_FIRST_CAP;
	f->buf = malloc(f->cap);
	if (!f->path || !f->buf) {
		kfile_close(f);
		return -ENOMEM;
	}
	if (kept_open < kept_budget) {
		f->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (f->fd < 0) {
			int err = -errno;

			kfile_close(f);
			return err;
		}
		kept_open++;
	} else if (access(path, R_OK)) {
		int err = -errno;

		kfile_close(f);
		return err;
	}
	return 0;
}

void kfile_close(struct kfile *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		kept_open--;
	}
	free(f->path);
	free(f->buf);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

int kfile_read(struct kfile *f, size_t *len)
{
	int fd = f->fd, err = 0;
	size_t got = 0;

	if (!f->buf)
		return -EBADF;
	if (fd < 0) {
		fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	/* seq files return at most a page per read: read on until EOF */
	for (;;) {
		ssize_t n;

		if (got + 1 >= f->cap) {
			size_t ncap = f->cap * 2 > f->max + 1 ? f->max + 1 : f->cap * 2;
			char *nb;

			if (ncap <= f->cap)
				break; /* hostile size: keep what fits under max */
			nb = realloc(f->buf, ncap);
			if (!nb) {
				err = -ENOMEM;
				break;
			}
			f->buf = nb;
			f->cap = ncap;
		}
		n = pread(fd, f->buf + got, f->cap - 1 - got, (off_t)got);
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (fd != f->fd)
		close(fd);
	f->buf[got] = '\0';
	*len = got;
	return err;
}

bool text_u64(const char *text, const char *key, uint64_t *out)
{
	size_t kl = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		const char *v;
		char *end;
		unsigned long long x;

		if (strncmp(p, key, kl) || (p[kl] != ':' && p[kl] != ' ' && p[kl] != '\t'))
			continue;
		v = p + kl + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v < '0' || *v > '9')
			return false;
		errno = 0;
		x = strtoull(v, &end, 10);
		if (errno || (*end && *end != ' ' && *end != '\n' && *end != '\t'))
			return false;
		*out = x;
		return true;
	}
	return false;
}

bool psi_total(const char *text, const char *line, uint64_t *total_us)
{
	size_t ll = strlen(line);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		const char *t, *eol;
		char *end;
		unsigned long long x;

		if (strncmp(p, line, ll) || p[ll] != ' ')
			continue;
		eol = strchr(p, '\n');
		t = strstr(p, " total=");
		if (!t || (eol && t > eol))
			return false;
		t += 7;
		if (*t < '0' || *t > '9')
			return false;
		errno = 0;
		x = strtoull(t, &end, 10);
		if (errno || (*end && *end != '\n' && *end != ' '))
			return false;
		*total_us = x;
		return true;
	}
	return false;
}

void growth_push(struct growth *g, uint64_t now_ms, double v, uint64_t window_ms)
{
	uint64_t spacing = window_ms / GROWTH_POINTS;

	if (g->n) {
		unsigned last = (g->head + GROWTH_POINTS - 1) % GROWTH_POINTS;

		if (now_ms < g->t[last]) {
			g->n = 0; /* clock went backwards: start over */
		} else if (now_ms - g->t[last] < spacing) {
			return;
		}
	}
	g->t[g->head] = now_ms;
	g->v[g->head] = v;
	g->head = (g->head + 1) % GROWTH_POINTS;
	if (g->n < GROWTH_POINTS)
		g->n++;
}

bool growth_delta(const struct growth *g, uint64_t now_ms, double v, uint64_t window_ms,
		  double *out)
{
	/* the newest point at least a window old, else the oldest one */
	unsigned oldest = (g->head + GROWTH_POINTS - g->n) % GROWTH_POINTS;
	unsigned pick = oldest;

	if (!g->n)
		return false;
	for (unsigned i = 0; i < g->n; i++) {
		unsigned k = (oldest + i) % GROWTH_POINTS;

		if (g->t[k] <= now_ms && now_ms - g->t[k] >= window_ms)
			pick = k;
	}
	if (g->t[pick] > now_ms || now_ms - g->t[pick] < window_ms / 4)
		return false;
	*out = v - g->v[pick];
	return true;
}

static uint64_t (*clock_override)(void);

uint64_t watch_now_ns(void)
{
	return clock_override ? clock_override() : now_mono_ns();
}

void watch_clock_override(uint64_t (*clock)(void))
{
	clock_override = clock;
}
