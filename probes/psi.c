// SPDX-License-Identifier: GPL-2.0-only
/* Pressure stall information, host-wide: the share of the interval tasks
 * stalled on CPU, memory and IO, from the exact stall totals (not the kernel's
 * 10-second averages, which would smear a one-second burst). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "probes/watchutil.h"

enum { PSI_CPU, PSI_MEM, PSI_IO, PSI_RESOURCES };

static const char *const psi_file[PSI_RESOURCES] = {"cpu", "memory", "io"};
/* metric of the "some" and "full" lines of each resource; -1: not reported */
static const int psi_metric[PSI_RESOURCES][2] = {
	[PSI_CPU] = {M_PSI_CPU_SOME, -1},
	[PSI_MEM] = {M_PSI_MEM_SOME, M_PSI_MEM_FULL},
	[PSI_IO] = {M_PSI_IO_SOME, M_PSI_IO_FULL},
};

struct psi {
	struct kfile f[PSI_RESOURCES];
	uint64_t prev[PSI_RESOURCES][2];
	bool have_prev[PSI_RESOURCES][2];
	uint64_t mono_ns;
};

static int psi_open(void **out, const struct watcher_env *env)
{
	struct psi *p = calloc(1, sizeof(*p));
	char path[256];
	int err = 0;

	if (!p)
		return -ENOMEM;
	for (int r = 0; r < PSI_RESOURCES; r++)
		p->f[r].fd = -1;
	for (int r = 0; r < PSI_RESOURCES; r++) {
		size_t len;

		snprintf(path, sizeof(path), "%s/pressure/%s", env->procfs, psi_file[r]);
		err = kfile_open(&p->f[r], path, 4096);
		/* compiled in but switched off (psi=0): the files fail to read */
		if (!err)
			err = kfile_read(&p->f[r], &len);
		if (err) {
			if (err == -ENOENT)
				snprintf(env->why, env->why_len,
					 "%s absent: kernel without CONFIG_PSI", path);
			else if (err == -EOPNOTSUPP)
				snprintf(env->why, env->why_len,
					 "PSI is disabled: boot with psi=1");
			goto fail;
		}
	}
	*out = p;
	return 0;
fail:
	for (int r = 0; r < PSI_RESOURCES; r++)
		if (p->f[r].buf)
			kfile_close(&p->f[r]);
	free(p);
	return err;
}

static void psi_close(void *state)
{
	struct psi *p = state;

	for (int r = 0; r < PSI_RESOURCES; r++)
		kfile_close(&p->f[r]);
	free(p);
}

static int psi_sample(void *state, struct tsdb *db)
{
	struct psi *p = state;
	uint64_t now = watch_now_ns();
	double us = p->mono_ns && now > p->mono_ns ? (double)(now - p->mono_ns) / 1e3 : 0;
	int err = 0;

	for (int r = 0; r < PSI_RESOURCES; r++) {
		size_t len;
		int e = kfile_read(&p->f[r], &len);

		if (e) {
			err = e;
			continue;
		}
		for (int k = 0; k < 2; k++) {
			uint64_t total;

			if (psi_metric[r][k] < 0)
				continue;
			if (!psi_total(p->f[r].buf, k ? "full" : "some", &total)) {
				err = -EPROTO;
				p->have_prev[r][k] = false;
				continue;
			}
			if (us > 0 && p->have_prev[r][k]) {
				double pct =
					100.0 * (double)counter_delta(total, p->prev[r][k]) / us;

				/* stall time cannot exceed wall time; rounding can */
				tsdb_put(db, (unsigned)psi_metric[r][k], NULL, MIN(pct, 100.0));
			}
			p->prev[r][k] = total;
			p->have_prev[r][k] = true;
		}
	}
	p->mono_ns = now;
	return err;
}

const struct watcher_ops psi_watcher = {
	.name = "psi",
	.help = "pressure stall information from /proc/pressure",
	.open = psi_open,
	.sample = psi_sample,
	.close = psi_close,
};
