// SPDX-License-Identifier: GPL-2.0-only
/* Host memory from /proc/meminfo and /proc/vmstat: availability, anon and
 * file memory, the anon growth burst signal, reclaim activity, OOM kills. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "probes/watchutil.h"

#define MEMSTAT_MAX (1u << 20)

enum { V_ALLOCSTALL, V_PGSCAN_DIRECT, V_PGSCAN_KSWAPD, V_OOM_KILL, V_COUNT };

static const unsigned vm_metric[V_COUNT] = {
	[V_ALLOCSTALL] = M_MEM_ALLOCSTALL,
	[V_PGSCAN_DIRECT] = M_MEM_PGSCAN_DIRECT,
	[V_PGSCAN_KSWAPD] = M_MEM_PGSCAN_KSWAPD,
	[V_OOM_KILL] = M_MEM_OOM_KILLS,
};

struct memstat {
	struct kfile meminfo, vmstat;
	bool have_vmstat;
	uint64_t window_ms;
	struct growth anon;
	uint64_t prev[V_COUNT];
	bool have_prev[V_COUNT];
	uint64_t mono_ns;
};

static int memstat_open(void **out, const struct watcher_env *env)
{
	struct memstat *m = calloc(1, sizeof(*m));
	char path[256];
	int err;

	if (!m)
		return -ENOMEM;
	m->window_ms = env->cfg->watch.growth_window_ms;
	snprintf(path, sizeof(path), "%s/meminfo", env->procfs);
	err = kfile_open(&m->meminfo, path, MEMSTAT_MAX);
	if (err) {
		free(m);
		return err;
	}
	snprintf(path, sizeof(path), "%s/vmstat", env->procfs);
	m->have_vmstat = kfile_open(&m->vmstat, path, MEMSTAT_MAX) == 0;
	*out = m;
	return 0;
}

static void memstat_close(void *state)
{
	struct memstat *m = state;

	kfile_close(&m->meminfo);
	if (m->have_vmstat)
		kfile_close(&m->vmstat);
	free(m);
}

/*
 * A vmstat counter that newer kernels report once and older ones per zone:
 * "name N", else the sum of "name_<zone> N" lines (but not name_<except>).
 */
static bool vm_counter(const char *text, const char *name, const char *except, uint64_t *out)
{
	size_t nl = strlen(name);
	uint64_t sum = 0;
	bool found = false;

	if (text_u64(text, name, out))
		return true;
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		const char *sp;
		char key[64];
		uint64_t v;

		if (strncmp(p, name, nl) || p[nl] != '_')
			continue;
		sp = strchr(p, ' ');
		if (!sp || (size_t)(sp - p) >= sizeof(key))
			continue;
		memcpy(key, p, (size_t)(sp - p));
		key[sp - p] = '\0';
		if (except && !strcmp(key + nl + 1, except))
			continue;
		if (text_u64(p, key, &v)) {
			sum += v;
			found = true;
		}
	}
	*out = sum;
	return found;
}

static void put_meminfo(struct memstat *m, struct tsdb *db, uint64_t now_ms)
{
	const char *t = m->meminfo.buf;
	uint64_t total, avail, anon, af, inf, swt, swf, freek, cached;
	double growth;

	if (!text_u64(t, "MemTotal", &total) || total == 0)
		return;
	if (!text_u64(t, "MemAvailable", &avail)) {
		/* before 3.14: free plus page cache is the closest estimate */
		if (!text_u64(t, "MemFree", &freek) || !text_u64(t, "Cached", &cached))
			return;
		avail = freek + cached;
	}
	avail = MIN(avail, total);
	tsdb_put(db, M_MEM_AVAILABLE_PCT, NULL, 100.0 * (double)avail / (double)total);
	tsdb_put(db, M_MEM_AVAILABLE_BYTES, NULL, (double)avail * 1024.0);
	if (text_u64(t, "AnonPages", &anon)) {
		double bytes = (double)anon * 1024.0;

		tsdb_put(db, M_MEM_ANON_BYTES, NULL, bytes);
		if (growth_delta(&m->anon, now_ms, bytes, m->window_ms, &growth)) {
			tsdb_put(db, M_MEM_ANON_GROWTH_BYTES, NULL, growth);
			tsdb_put(db, M_MEM_ANON_GROWTH_PCT, NULL,
				 100.0 * growth / ((double)total * 1024.0));
		}
		growth_push(&m->anon, now_ms, bytes, m->window_ms);
	}
	if (text_u64(t, "Active(file)", &af) && text_u64(t, "Inactive(file)", &inf))
		tsdb_put(db, M_MEM_FILE_BYTES, NULL, (double)(af + inf) * 1024.0);
	if (text_u64(t, "SwapTotal", &swt) && swt && text_u64(t, "SwapFree", &swf))
		tsdb_put(db, M_MEM_SWAP_USED_PCT, NULL,
			 100.0 * (double)(swt - MIN(swf, swt)) / (double)swt);
}

static void put_vmstat(struct memstat *m, struct tsdb *db, uint64_t now)
{
	const char *t = m->vmstat.buf;
	double secs = m->mono_ns && now > m->mono_ns ? (double)(now - m->mono_ns) / 1e9 : 0;
	uint64_t v[V_COUNT];
	bool ok[V_COUNT];

	ok[V_ALLOCSTALL] = vm_counter(t, "allocstall", NULL, &v[V_ALLOCSTALL]);
	ok[V_PGSCAN_DIRECT] = vm_counter(t, "pgscan_direct", "throttle", &v[V_PGSCAN_DIRECT]);
	ok[V_PGSCAN_KSWAPD] = vm_counter(t, "pgscan_kswapd", NULL, &v[V_PGSCAN_KSWAPD]);
	ok[V_OOM_KILL] = text_u64(t, "oom_kill", &v[V_OOM_KILL]);
	for (int i = 0; i < V_COUNT; i++) {
		if (ok[i] && m->have_prev[i] && secs > 0) {
			double d = (double)counter_delta(v[i], m->prev[i]);

			/* kills are events of the interval; the rest are rates */
			tsdb_put(db, vm_metric[i], NULL, i == V_OOM_KILL ? d : d / secs);
		}
		m->have_prev[i] = ok[i];
		if (ok[i])
			m->prev[i] = v[i];
	}
}

static int memstat_sample(void *state, struct tsdb *db)
{
	struct memstat *m = state;
	uint64_t now = watch_now_ns();
	size_t len;
	int err;

	err = kfile_read(&m->meminfo, &len);
	if (err)
		return err;
	put_meminfo(m, db, now / 1000000);
	if (m->have_vmstat && kfile_read(&m->vmstat, &len) == 0)
		put_vmstat(m, db, now);
	m->mono_ns = now;
	return 0;
}

const struct watcher_ops memstat_watcher = {
	.name = "memstat",
	.help = "host memory from /proc/meminfo and /proc/vmstat",
	.open = memstat_open,
	.sample = memstat_sample,
	.close = memstat_close,
};
