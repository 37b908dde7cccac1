// SPDX-License-Identifier: GPL-2.0-only
/*
 * Per-cgroup CPU, memory and pressure, for the watched set of base/cgroups.c,
 * on v2, v1 and hybrid hosts. Where the kernel has a cgroup iterator (6.1+),
 * one BPF pass per hierarchy per interval finds new and vanished cgroups and
 * copies the counters of the watched ones (cgpass.c): a few microseconds per
 * cgroup. Elsewhere, cgroupfs files are kept open and read with pread, and the
 * hierarchies are walked every scan period. Limits (which change rarely) are
 * read again every scan period either way.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/cgpass.h"
#include "probes/watcher.h"
#include "probes/watchutil.h"

#define CG_FILE_MAX 8192	 /* cgroupfs files read here are a few hundred bytes */
#define UNLIMITED   (1ull << 62) /* v1 reports "no limit" as a huge page-rounded number */

enum cg_file {
	CF_CPU_STAT,	  /* v2: usage, user/sys and throttling; v1: throttling */
	CF_CPUACCT_USAGE, /* v1 */
	CF_CPUACCT_USER,  /* v1, ns */
	CF_CPUACCT_SYS,	  /* v1, ns */
	CF_CPUACCT_STAT,  /* v1 before usage_user existed: ticks */
	CF_MEM_USAGE,	  /* memory.current / memory.usage_in_bytes */
	CF_MEM_EVENTS,	  /* memory.events / memory.oom_control */
	CF_PSI_CPU,
	CF_PSI_MEM,
	CF_PSI_IO,
	CF_COUNT
};

/* The per-cgroup metrics of this watcher sit together in the catalogue. */
#define CG_METRIC0 M_CG_CPU_USAGE
#define CG_METRICS (M_CG_PSI_IO_FULL - M_CG_CPU_USAGE + 1)

struct cg_state {
	uint64_t serial;
	struct tsdb_ref ref; /* its series' labels, for puts without building them */
	char *path;
	uint32_t slot; /* the cgroup pass's counter slot; CGP_NO_SLOT with files */
	struct kfile f[CF_COUNT];
	bool have[CF_COUNT];
	bool primed;
	uint64_t mono_ns;
	uint64_t usage_ns, user_ns, sys_ns, periods, throttled, throttled_ns, oom_kills;
	bool have_oom;
	uint64_t psi[3][2];
	bool have_psi[3][2];
	uint64_t psi_time_ns; /* the pass: when the kernel last updated the totals */
	double psi_pct[3][2]; /* the pass: the latest window's pressure */
	double limit_cores, mem_limit;
	uint64_t limits_ms;
	struct growth mem;
};

struct cgroupstat {
	struct cgroups *cg;
	struct cgpass *pass; /* NULL: cgroupfs files */
	char pass_why[200];  /* why not */
	uint32_t *free_slots;
	unsigned nfree;
	uint64_t limits_ms;
	long page_size;
	uint64_t gen;
	struct cg_state *st; /* aligned with cgroups_watch_at() */
	unsigned n;
	uint64_t window_ms, scan_ms;
	char procfs[200];
	long clk_tck;
	bool rescan; /* a cgroup vanished under us: rescan now */
	uint64_t gone;
};

static int pass_open(struct cgroupstat *cs, unsigned max)
{
	int err = cgpass_new(&cs->pass, cs->cg, max, cs->pass_why, sizeof(cs->pass_why));

	if (err)
		return err;
	cs->free_slots = malloc(max * sizeof(*cs->free_slots));
	if (!cs->free_slots) {
		cgpass_free(&cs->pass);
		return -ENOMEM;
	}
	/* lowest slots first */
	for (unsigned i = 0; i < max; i++)
		cs->free_slots[i] = max - 1 - i;
	cs->nfree = max;
	return 0;
}

static int cgroupstat_open(void **out, const struct watcher_env *env)
{
	struct cgroupstat *cs;

	if (!env->cgroups || !env->cfg->watch.max_cgroups) {
		snprintf(env->why, env->why_len, "watch.max_cgroups is 0");
		return WATCHER_OFF;
	}
	if (cgroups_layout(env->cgroups) == CGROUP_NONE) {
		snprintf(env->why, env->why_len, "no cgroup file system mounted");
		return -ENOENT;
	}
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->cg = env->cgroups;
	cs->gen = UINT64_MAX;
	cs->window_ms = env->cfg->watch.growth_window_ms;
	cs->scan_ms = env->cfg->watch.cgroup_scan_ms;
	cs->clk_tck = sysconf(_SC_CLK_TCK);
	if (cs->clk_tck <= 0)
		cs->clk_tck = 100;
	cs->page_size = sysconf(_SC_PAGESIZE);
	snprintf(cs->procfs, sizeof(cs->procfs), "%s", env->procfs);
	cgroups_watch_setup(cs->cg, (unsigned)env->cfg->watch.max_cgroups, cs->scan_ms);
	if (!env->cfg->watch.cgroup_iterator)
		snprintf(cs->pass_why, sizeof(cs->pass_why), "watch.cgroup_iterator is false");
	else if (pass_open(cs, (unsigned)env->cfg->watch.max_cgroups))
		log_info("watcher cgroups: reading cgroupfs files: %s", cs->pass_why);
	*out = cs;
	return 0;
}

static void state_close(struct cgroupstat *cs, struct cg_state *s)
{
	if (cs->pass && s->slot != CGP_NO_SLOT) {
		cgpass_map(cs->pass, s->path, CGP_NO_SLOT);
		cs->free_slots[cs->nfree++] = s->slot;
	}
	for (int i = 0; i < CF_COUNT; i++)
		if (s->have[i])
			kfile_close(&s->f[i]);
	free(s->path);
	memset(s, 0, sizeof(*s));
}

static void cgroupstat_close(void *state)
{
	struct cgroupstat *cs = state;

	for (unsigned i = 0; i < cs->n; i++)
		state_close(cs, &cs->st[i]);
	free(cs->st);
	cgpass_free(&cs->pass);
	free(cs->free_slots);
	free(cs);
}

static void open_file(struct cg_state *s, enum cg_file which, const char *root, const char *name)
{
	char path[1024];

	if (!root)
		return;
	if (snprintf(path, sizeof(path), "%s%s/%s", root, s->path, name) >= (int)sizeof(path))
		return;
	s->have[which] = kfile_open(&s->f[which], path, CG_FILE_MAX) == 0;
}

static int state_open(struct cgroupstat *cs, struct cg_state *s, const struct cgroup_entry *e)
{
	const char *v2 = cgroups_ctrl_root(cs->cg, CG_CTRL_V2);
	bool pure_v2 = cgroups_layout(cs->cg) == CGROUP_V2;

	memset(s, 0, sizeof(*s));
	s->serial = e->serial;
	s->slot = CGP_NO_SLOT;
	s->path = strdup(e->path);
	if (!s->path)
		return -ENOMEM;
	if (cs->pass) {
		/* the pass reads its counters: no files */
		if (cs->nfree) {
			s->slot = cs->free_slots[--cs->nfree];
			cgpass_map(cs->pass, s->path, s->slot);
		}
		return 0;
	}
	if (pure_v2) {
		open_file(s, CF_CPU_STAT, v2, "cpu.stat");
		open_file(s, CF_MEM_USAGE, v2, "memory.current");
		open_file(s, CF_MEM_EVENTS, v2, "memory.events");
	} else {
		const char *acct = cgroups_ctrl_root(cs->cg, CG_CTRL_CPUACCT);
		const char *mem = cgroups_ctrl_root(cs->cg, CG_CTRL_MEMORY);

		open_file(s, CF_CPU_STAT, cgroups_ctrl_root(cs->cg, CG_CTRL_CPU), "cpu.stat");
		open_file(s, CF_CPUACCT_USAGE, acct, "cpuacct.usage");
		open_file(s, CF_CPUACCT_USER, acct, "cpuacct.usage_user");
		open_file(s, CF_CPUACCT_SYS, acct, "cpuacct.usage_sys");
		if (!s->have[CF_CPUACCT_USER] || !s->have[CF_CPUACCT_SYS])
			open_file(s, CF_CPUACCT_STAT, acct, "cpuacct.stat");
		open_file(s, CF_MEM_USAGE, mem, "memory.usage_in_bytes");
		open_file(s, CF_MEM_EVENTS, mem, "memory.oom_control");
	}
	/* hybrid hosts often mirror cgroups into the v2 tree: pressure lives there */
	open_file(s, CF_PSI_CPU, v2, "cpu.pressure");
	open_file(s, CF_PSI_MEM, v2, "memory.pressure");
	open_file(s, CF_PSI_IO, v2, "io.pressure");
	return 0;
}

/* Follows the watched set: keeps the state of cgroups that stayed, opens new
 * ones, closes the ones that went (nothing leaks as cgroups come and go). */
static int reconcile(struct cgroupstat *cs)
{
	unsigned n = cgroups_watch_count(cs->cg), old = 0;
	struct cg_state *st = n ? calloc(n, sizeof(*st)) : NULL;

	if (n && !st)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		const struct cgroup_entry *e = cgroups_watch_at(cs->cg, i);
		int cmp = 1;

		while (old < cs->n && (cmp = strcmp(cs->st[old].path, e->path)) < 0)
			state_close(cs, &cs->st[old++]);
		if (old < cs->n && cmp == 0 && cs->st[old].serial == e->serial) {
			st[i] = cs->st[old++];
			continue;
		}
		if (old < cs->n && cmp == 0)
			state_close(cs, &cs->st[old++]);
		if (state_open(cs, &st[i], e)) {
			for (unsigned j = 0; j < i; j++)
				state_close(cs, &st[j]);
			free(st);
			return -ENOMEM;
		}
	}
	while (old < cs->n)
		state_close(cs, &cs->st[old++]);
	free(cs->st);
	cs->st = st;
	cs->n = n;
	cs->gen = cgroups_watch_generation(cs->cg);
	return 0;
}

/* ---- limits ---- */

static bool read_small(const char *root, const char *path, const char *name, char *buf, size_t len)
{
	char full[1024];
	char *text = NULL;
	size_t n;

	if (!root || snprintf(full, sizeof(full), "%s%s/%s", root, path, name) >= (int)sizeof(full))
		return false;
	if (read_file(full, len - 1, &text, &n))
		return false;
	snprintf(buf, len, "%s", text);
	free(text);
	return true;
}

static bool parse_u64_prefix(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || (*end && *end != '\n' && *end != ' '))
		return false;
	*out = v;
	return true;
}

/* CPUs in a cpuset list ("0-3,8,10-11"); 0 when unreadable or hostile. */
static unsigned cpuset_count(const char *s)
{
	unsigned n = 0;

	while (*s && *s != '\n') {
		char *end;
		unsigned long a = strtoul(s, &end, 10), b;

		if (end == s || a > 65535)
			return 0;
		b = a;
		s = end;
		if (*s == '-') {
			b = strtoul(s + 1, &end, 10);
			if (end == s + 1 || b < a || b > 65535)
				return 0;
			s = end;
		}
		n += (unsigned)(b - a + 1);
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return 0;
	}
	return n;
}

static uint64_t host_mem_bytes(const struct cgroupstat *cs)
{
	char path[256], *text = NULL;
	uint64_t kb = 0;
	size_t n;

	snprintf(path, sizeof(path), "%s/meminfo", cs->procfs);
	if (read_file(path, 1 << 16, &text, &n) == 0) {
		if (!text_u64(text, "MemTotal", &kb))
			kb = 0;
		free(text);
	}
	return kb * 1024;
}

/* The effective limits: the tightest quota of the cgroup and its ancestors,
 * the cpuset, the host. */
static void read_limits(struct cgroupstat *cs, struct cg_state *s, double host_cpus,
			double host_mem)
{
	bool v2 = cgroups_layout(cs->cg) == CGROUP_V2;
	const char *cpu_root = cgroups_ctrl_root(cs->cg, v2 ? CG_CTRL_V2 : CG_CTRL_CPU);
	const char *mem_root = cgroups_ctrl_root(cs->cg, v2 ? CG_CTRL_V2 : CG_CTRL_MEMORY);
	const char *set_root = cgroups_ctrl_root(cs->cg, v2 ? CG_CTRL_V2 : CG_CTRL_CPUSET);
	double cores = host_cpus, mem = host_mem;
	char prefix[512], buf[256];
	size_t len = strlen(s->path);
	unsigned n;

	for (size_t i = 1; i <= len && i < sizeof(prefix); i++) {
		uint64_t quota, period, lim;

		if (s->path[i] != '/' && s->path[i] != '\0')
			continue;
		memcpy(prefix, s->path, i);
		prefix[i] = '\0';
		if (v2) {
			/* "max 100000" or "<quota> <period>" */
			if (read_small(cpu_root, prefix, "cpu.max", buf, sizeof(buf)) &&
			    parse_u64_prefix(buf, &quota) && strchr(buf, ' ') &&
			    parse_u64_prefix(strchr(buf, ' ') + 1, &period) && period)
				cores = MIN(cores, (double)quota / (double)period);
			if (read_small(mem_root, prefix, "memory.max", buf, sizeof(buf)) &&
			    parse_u64_prefix(buf, &lim) && lim < UNLIMITED)
				mem = MIN(mem, (double)lim);
		} else if (read_small(cpu_root, prefix, "cpu.cfs_quota_us", buf, sizeof(buf)) &&
			   parse_u64_prefix(buf, &quota) &&
			   read_small(cpu_root, prefix, "cpu.cfs_period_us", buf, sizeof(buf)) &&
			   parse_u64_prefix(buf, &period) && period) {
			/* "-1" (no quota) does not parse as a number: no limit */
			cores = MIN(cores, (double)quota / (double)period);
		}
	}
	if (!v2) {
		char *text = NULL, full[1024];
		uint64_t lim;
		size_t n2;

		/* v1 computes the hierarchical limit for us */
		snprintf(full, sizeof(full), "%s%s/memory.stat", mem_root ? mem_root : "", s->path);
		if (mem_root && read_file(full, 1 << 16, &text, &n2) == 0) {
			if (text_u64(text, "hierarchical_memory_limit", &lim) && lim < UNLIMITED)
				mem = MIN(mem, (double)lim);
			free(text);
		} else if (read_small(mem_root, s->path, "memory.limit_in_bytes", buf,
				      sizeof(buf)) &&
			   parse_u64_prefix(buf, &lim) && lim < UNLIMITED) {
			mem = MIN(mem, (double)lim);
		}
	}
	if (read_small(set_root, s->path, v2 ? "cpuset.cpus.effective" : "cpuset.effective_cpus",
		       buf, sizeof(buf)) &&
	    (n = cpuset_count(buf)) > 0)
		cores = MIN(cores, (double)n);
	/* a quota below a hundredth of a CPU is a misconfiguration, not a divisor */
	s->limit_cores = MAX(cores, 0.01);
	s->mem_limit = mem;
}

/* ---- sampling ---- */

static bool read_u64_file(struct cgroupstat *cs, struct cg_state *s, enum cg_file f, uint64_t *v)
{
	size_t len;
	int err;

	if (!s->have[f])
		return false;
	err = kfile_read(&s->f[f], &len);
	if (err) {
		if (err == -ENODEV || err == -ENOENT)
			cs->rescan = true;
		return false;
	}
	return parse_u64_prefix(s->f[f].buf, v);
}

static const char *read_text(struct cgroupstat *cs, struct cg_state *s, enum cg_file f)
{
	size_t len;
	int err;

	if (!s->have[f])
		return NULL;
	err = kfile_read(&s->f[f], &len);
	if (err) {
		if (err == -ENODEV || err == -ENOENT)
			cs->rescan = true;
		return NULL;
	}
	return s->f[f].buf;
}

struct cpu_now {
	bool usage, split, throttle;
	uint64_t usage_ns, user_ns, sys_ns, periods, throttled, throttled_ns;
};

static void read_cpu(struct cgroupstat *cs, struct cg_state *s, struct cpu_now *c)
{
	bool v2 = cgroups_layout(cs->cg) == CGROUP_V2;
	const char *t = read_text(cs, s, CF_CPU_STAT);
	uint64_t a, b;

	memset(c, 0, sizeof(*c));
	if (t && v2) {
		c->usage = text_u64(t, "usage_usec", &c->usage_ns);
		c->split = text_u64(t, "user_usec", &c->user_ns) &&
			   text_u64(t, "system_usec", &c->sys_ns);
		c->usage_ns *= 1000;
		c->user_ns *= 1000;
		c->sys_ns *= 1000;
		c->throttle = text_u64(t, "nr_periods", &c->periods) &&
			      text_u64(t, "nr_throttled", &c->throttled) &&
			      text_u64(t, "throttled_usec", &c->throttled_ns);
		c->throttled_ns *= 1000;
		return;
	}
	if (t)
		c->throttle = text_u64(t, "nr_periods", &c->periods) &&
			      text_u64(t, "nr_throttled", &c->throttled) &&
			      text_u64(t, "throttled_time", &c->throttled_ns);
	c->usage = read_u64_file(cs, s, CF_CPUACCT_USAGE, &c->usage_ns);
	if (read_u64_file(cs, s, CF_CPUACCT_USER, &a) && read_u64_file(cs, s, CF_CPUACCT_SYS, &b)) {
		c->split = true;
		c->user_ns = a;
		c->sys_ns = b;
	} else if ((t = read_text(cs, s, CF_CPUACCT_STAT)) && text_u64(t, "user", &a) &&
		   text_u64(t, "system", &b)) {
		c->split = true;
		c->user_ns = a * (1000000000ull / (uint64_t)cs->clk_tck);
		c->sys_ns = b * (1000000000ull / (uint64_t)cs->clk_tck);
	}
}

static void cput(struct tsdb *db, struct cg_state *s, unsigned metric, const struct labels *l,
		 double v)
{
	tsdb_put_ref(db, metric, &s->ref, l, v);
}

static void put_cpu(struct tsdb *db, const struct labels *l, struct cg_state *s,
		    const struct cpu_now *c, double secs)
{
	double wall_ns = secs * 1e9, to_pct = 100.0 / s->limit_cores;

	if (c->usage) {
		double cores = (double)counter_delta(c->usage_ns, s->usage_ns) / wall_ns;

		cput(db, s, M_CG_CPU_CORES, l, cores);
		cput(db, s, M_CG_CPU_USAGE, l, cores * to_pct);
	}
	if (c->split) {
		cput(db, s, M_CG_CPU_USER, l,
		     (double)counter_delta(c->user_ns, s->user_ns) / wall_ns * to_pct);
		cput(db, s, M_CG_CPU_SYS, l,
		     (double)counter_delta(c->sys_ns, s->sys_ns) / wall_ns * to_pct);
	}
	if (c->throttle) {
		uint64_t periods = counter_delta(c->periods, s->periods);

		tsdb_put_ref(
			db, M_CG_CPU_THROTTLED, &s->ref, l,
			periods ? MIN(100.0,
				      100.0 * (double)counter_delta(c->throttled, s->throttled) /
					      (double)periods)
				: 0.0);
		cput(db, s, M_CG_CPU_THROTTLED_MS, l,
		     (double)counter_delta(c->throttled_ns, s->throttled_ns) / 1e6 / secs);
	}
}

static void put_psi(struct cgroupstat *cs, struct tsdb *db, const struct labels *l,
		    struct cg_state *s, double secs)
{
	static const unsigned metric[3][2] = {
		{M_CG_PSI_CPU_SOME, 0},
		{M_CG_PSI_MEM_SOME, M_CG_PSI_MEM_FULL},
		{M_CG_PSI_IO_SOME, M_CG_PSI_IO_FULL},
	};

	for (int r = 0; r < 3; r++) {
		const char *t = read_text(cs, s, (enum cg_file)(CF_PSI_CPU + r));

		for (int k = 0; k < 2 && t; k++) {
			uint64_t total;

			if (!metric[r][k] || !psi_total(t, k ? "full" : "some", &total)) {
				s->have_psi[r][k] = false;
				continue;
			}
			if (secs > 0 && s->have_psi[r][k])
				cput(db, s, metric[r][k], l,
				     MIN(100.0, (double)counter_delta(total, s->psi[r][k]) /
							(secs * 1e4)));
			s->psi[r][k] = total;
			s->have_psi[r][k] = true;
		}
	}
}

static void sample_one(struct cgroupstat *cs, struct tsdb *db, struct cg_state *s,
		       const struct cgroup_entry *e, uint64_t now, double host_cpus,
		       double host_mem)
{
	double secs = s->primed && now > s->mono_ns ? (double)(now - s->mono_ns) / 1e9 : 0;
	uint64_t now_ms = now / 1000000, usage, oom = 0;
	struct labels l;
	struct cpu_now c;
	const char *t;
	bool have_oom = false;

	cgroup_entry_labels(e, &l);
	if (!s->limits_ms || now_ms - s->limits_ms >= cs->scan_ms) {
		read_limits(cs, s, host_cpus, host_mem);
		s->limits_ms = now_ms;
	}
	read_cpu(cs, s, &c);
	if (secs > 0)
		put_cpu(db, &l, s, &c, secs);
	cput(db, s, M_CG_CPU_LIMIT, &l, s->limit_cores);
	if (read_u64_file(cs, s, CF_MEM_USAGE, &usage)) {
		double growth;

		cput(db, s, M_CG_MEM_USAGE_BYTES, &l, (double)usage);
		cput(db, s, M_CG_MEM_LIMIT, &l, s->mem_limit);
		if (s->mem_limit > 0) {
			cput(db, s, M_CG_MEM_USAGE_PCT, &l, 100.0 * (double)usage / s->mem_limit);
			if (growth_delta(&s->mem, now_ms, (double)usage, cs->window_ms, &growth))
				cput(db, s, M_CG_MEM_GROWTH, &l, 100.0 * growth / s->mem_limit);
		}
		growth_push(&s->mem, now_ms, (double)usage, cs->window_ms);
	}
	/* v2 memory.events "oom_kill N"; v1 memory.oom_control "oom_kill N" (4.13+) */
	if ((t = read_text(cs, s, CF_MEM_EVENTS)) && text_u64(t, "oom_kill", &oom)) {
		have_oom = true;
		if (secs > 0 && s->have_oom)
			cput(db, s, M_CG_MEM_OOM_KILLS, &l,
			     (double)counter_delta(oom, s->oom_kills));
	}
	put_psi(cs, db, &l, s, secs);
	s->usage_ns = c.usage_ns;
	s->user_ns = c.user_ns;
	s->sys_ns = c.sys_ns;
	s->periods = c.periods;
	s->throttled = c.throttled;
	s->throttled_ns = c.throttled_ns;
	s->oom_kills = oom;
	s->have_oom = have_oom;
	s->mono_ns = now;
	s->primed = true;
}

/* ---- from the cgroup pass ---- */

static void pass_limits(struct cgroupstat *cs, struct cg_state *s, const struct cgp_acc *a,
			double host_cpus, double host_mem)
{
	double cores = host_cpus, mem = host_mem;

	if (a->have & CGP_HAVE_QUOTA)
		cores = MIN(cores, (double)a->quota_milli / 1000.0);
	if (a->have & CGP_HAVE_CPUSET)
		cores = MIN(cores, (double)a->cpuset_cpus);
	/* "max" is a page count near LONG_MAX / page size */
	if ((a->have & CGP_HAVE_MEM_MAX) && a->mem_max_pages < (UNLIMITED >> 12))
		mem = MIN(mem, (double)a->mem_max_pages * (double)cs->page_size);
	s->limit_cores = MAX(cores, 0.01);
	s->mem_limit = mem;
}

/* v2 splits usage into user and system by tick samples, as cpu.stat does. */
static void pass_cpu(struct cgroupstat *cs, struct cg_state *s, const struct cgp_acc *a,
		     struct cpu_now *c)
{
	memset(c, 0, sizeof(*c));
	if (a->have & CGP_HAVE_CPUACCT) {
		c->usage = c->split = true;
		c->usage_ns = a->usage_ns;
		c->user_ns = a->user_ns;
		c->sys_ns = a->sys_ns;
	} else if ((a->have & CGP_HAVE_BSTAT) && cgroups_layout(cs->cg) == CGROUP_V2) {
		/* as cpu.stat: usage split by the ratio of the tick samples */
		uint64_t ticks = a->user_ns + a->sys_ns;

		c->usage = c->split = true;
		c->usage_ns = a->usage_ns;
		c->user_ns =
			ticks ? (uint64_t)((double)a->usage_ns * (double)a->user_ns / (double)ticks)
			      : 0;
		c->sys_ns = a->usage_ns - MIN(c->user_ns, a->usage_ns);
	}
	if (a->have & CGP_HAVE_CFS) {
		c->throttle = true;
		c->periods = a->nr_periods;
		c->throttled = a->nr_throttled;
		c->throttled_ns = a->throttled_ns;
	}
}

/* The kernel folds pressure into its totals every 2 s (PSI_FREQ): each window
 * gives one value, held until the next. */
static void pass_psi(struct tsdb *db, const struct labels *l, struct cg_state *s,
		     const struct cgp_acc *a)
{
	static const unsigned metric[3][2] = {
		{M_CG_PSI_CPU_SOME, 0},
		{M_CG_PSI_MEM_SOME, M_CG_PSI_MEM_FULL},
		{M_CG_PSI_IO_SOME, M_CG_PSI_IO_FULL},
	};
	static const unsigned idx[3][2] = {{4, 5}, {2, 3}, {0, 1}}; /* kernel order: io, mem, cpu */
	bool fresh = s->psi_time_ns && a->psi_time_ns > s->psi_time_ns;
	double win = fresh ? (double)(a->psi_time_ns - s->psi_time_ns) : 0;

	if (!(a->have & CGP_HAVE_PSI))
		return;
	for (int r = 0; r < 3; r++)
		for (int k = 0; k < 2; k++) {
			uint64_t total = a->psi_ns[idx[r][k]];

			if (!metric[r][k])
				continue;
			if (fresh)
				s->psi_pct[r][k] = MIN(
					100.0,
					100.0 * (double)counter_delta(total, s->psi[r][k]) / win);
			if (s->have_psi[r][k])
				cput(db, s, metric[r][k], l, s->psi_pct[r][k]);
			if (fresh || !s->psi_time_ns) {
				s->have_psi[r][k] = s->psi_time_ns != 0;
				s->psi[r][k] = total;
			}
		}
	if (fresh || !s->psi_time_ns)
		s->psi_time_ns = a->psi_time_ns ? a->psi_time_ns : 1;
}

static void pass_one(struct cgroupstat *cs, struct tsdb *db, struct cg_state *s,
		     const struct cgroup_entry *e, uint64_t now, double host_cpus, double host_mem)
{
	const struct cgp_acc *a = cgpass_acc(cs->pass, s->slot);
	double secs = s->primed && now > s->mono_ns ? (double)(now - s->mono_ns) / 1e9 : 0;
	uint64_t now_ms = now / 1000000;
	struct labels l;
	struct cpu_now c;

	/* filled by this pass (a slot mapped since fills from the next one) */
	if (!a || a->pass != (uint32_t)cgpass_pass(cs->pass))
		return;
	cgroup_entry_labels(e, &l);
	if (a->limits_pass == (uint32_t)cgpass_pass(cs->pass) || !s->limits_ms) {
		pass_limits(cs, s, a, host_cpus, host_mem);
		s->limits_ms = now_ms;
	}
	pass_cpu(cs, s, a, &c);
	if (secs > 0)
		put_cpu(db, &l, s, &c, secs);
	cput(db, s, M_CG_CPU_LIMIT, &l, s->limit_cores);
	if (a->have & CGP_HAVE_MEM) {
		double usage = (double)a->mem_pages * (double)cs->page_size, growth;

		cput(db, s, M_CG_MEM_USAGE_BYTES, &l, usage);
		cput(db, s, M_CG_MEM_LIMIT, &l, s->mem_limit);
		if (s->mem_limit > 0) {
			cput(db, s, M_CG_MEM_USAGE_PCT, &l, 100.0 * usage / s->mem_limit);
			if (growth_delta(&s->mem, now_ms, usage, cs->window_ms, &growth))
				cput(db, s, M_CG_MEM_GROWTH, &l, 100.0 * growth / s->mem_limit);
		}
		growth_push(&s->mem, now_ms, usage, cs->window_ms);
	}
	if (a->have & CGP_HAVE_OOM) {
		if (secs > 0 && s->have_oom)
			cput(db, s, M_CG_MEM_OOM_KILLS, &l,
			     (double)counter_delta(a->oom_kills, s->oom_kills));
		s->oom_kills = a->oom_kills;
		s->have_oom = true;
	}
	pass_psi(db, &l, s, a);
	s->usage_ns = c.usage_ns;
	s->user_ns = c.user_ns;
	s->sys_ns = c.sys_ns;
	s->periods = c.periods;
	s->throttled = c.throttled;
	s->throttled_ns = c.throttled_ns;
	s->mono_ns = now;
	s->primed = true;
}

static int pass_sample(struct cgroupstat *cs, struct tsdb *db, uint64_t now)
{
	double host_cpus = (double)MAX(sysconf(_SC_NPROCESSORS_ONLN), 1L), host_mem = 0;
	uint64_t now_ms = now / 1000000;
	bool limits = !cs->limits_ms || now_ms - cs->limits_ms >= cs->scan_ms;
	int r = cgpass_run(cs->pass, limits);

	if (r < 0)
		return r;
	if (limits)
		cs->limits_ms = now_ms;
	if (r > 0 || cgpass_pass(cs->pass) == 1) {
		const struct cgroup_found *found;
		unsigned n = cgpass_candidates(cs->pass, &found);
		struct cgpass_stats st;
		int err;

		cgpass_stats(cs->pass, &st);
		err = cgroups_watch_update(cs->cg, found, n, st.unsafe);
		if (err < 0)
			return err;
	}
	if (cs->gen != cgroups_watch_generation(cs->cg) && (r = reconcile(cs)))
		return r;
	for (unsigned i = 0; i < cs->n; i++) {
		struct cg_state *s = &cs->st[i];

		if (!host_mem && (limits || !s->limits_ms))
			host_mem = (double)host_mem_bytes(cs);
		pass_one(cs, db, s, cgroups_watch_at(cs->cg, i), now, host_cpus,
			 host_mem ? host_mem : s->mem_limit);
	}
	return 0;
}

static int cgroupstat_sample(void *state, struct tsdb *db)
{
	struct cgroupstat *cs = state;
	uint64_t now = watch_now_ns();
	double host_cpus = (double)MAX(sysconf(_SC_NPROCESSORS_ONLN), 1L);
	double host_mem = 0;
	int err;

	if (cs->pass)
		return pass_sample(cs, db, now);
	err = cgroups_watch_refresh(cs->cg, now / 1000000, cs->rescan);
	cs->rescan = false;
	if (err < 0)
		return err;
	if (cs->gen != cgroups_watch_generation(cs->cg) && (err = reconcile(cs)))
		return err;
	for (unsigned i = 0; i < cs->n; i++) {
		struct cg_state *s = &cs->st[i];

		if (!host_mem && (!s->limits_ms || now / 1000000 - s->limits_ms >= cs->scan_ms))
			host_mem = (double)host_mem_bytes(cs);
		sample_one(cs, db, s, cgroups_watch_at(cs->cg, i), now, host_cpus,
			   host_mem ? host_mem : s->mem_limit);
	}
	return 0;
}

static void cgroupstat_status(void *state, json_t *o)
{
	struct cgroupstat *cs = state;
	struct cgroups_watch_stats st;

	cgroups_watch_stats(cs->cg, &st);
	json_object_set_new(o, "cgroups", json_integer(st.watched));
	json_object_set_new(o, "cgroups_found", json_integer(st.candidates));
	json_object_set_new(o, "cgroups_dropped", json_integer((json_int_t)st.dropped));
	json_object_set_new(o, "cgroups_unsafe_names", json_integer((json_int_t)st.unsafe));
	json_object_set_new(o, "cgroups_appeared", json_integer((json_int_t)st.appeared));
	json_object_set_new(o, "cgroups_vanished", json_integer((json_int_t)st.vanished));
	json_object_set_new(o, "scan_us", json_integer((json_int_t)st.scan_us));
	json_object_set_new(o, "files_open", json_integer(kfile_open_count()));
	json_object_set_new(o, "reader", json_string(cs->pass ? "iterator" : "files"));
	if (!cs->pass && cs->pass_why[0])
		json_object_set_new(o, "reader_note", json_string(cs->pass_why));
	if (cs->pass) {
		struct cgpass_stats ps;

		cgpass_stats(cs->pass, &ps);
		json_object_set_new(o, "pass_us", json_integer((json_int_t)ps.last_pass_us));
		json_object_set_new(o, "hierarchies", json_integer(ps.hierarchies));
		json_object_set_new(o, "cgroups_visited", json_integer((json_int_t)ps.visited));
		json_object_set_new(o, "cgroups_known", json_integer(ps.known));
		json_object_set_new(o, "cgroups_known_dropped",
				    json_integer((json_int_t)ps.known_full));
		json_object_set_new(o, "cgroups_deferred", json_integer((json_int_t)ps.deferred));
	}
	json_object_set_new(o, "layout", json_string(cgroups_layout_name(cgroups_layout(cs->cg))));
}

const struct watcher_ops cgroupstat_watcher = {
	.name = "cgroups",
	.help = "per-cgroup CPU, memory and pressure from cgroupfs (v1, v2, hybrid)",
	.open = cgroupstat_open,
	.sample = cgroupstat_sample,
	.close = cgroupstat_close,
	.status = cgroupstat_status,
	.holds = true,
};
