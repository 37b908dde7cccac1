// SPDX-License-Identifier: GPL-2.0-only
#include "base/consumers.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "base/sanitize.h"

#define MAX_STACK_RECORDS 65536 /* stacks kept for the per-program lists */
#define MAX_PIDS_LISTED	  16	/* pids listed per program */
#define MAX_FUNCS_LISTED  3	/* leaf functions listed per program */

struct proc {
	uint32_t tgid;
	char comm[16];
	uint64_t comm_value; /* value of the thread that named it (UINT64_MAX: the leader) */
	uint64_t cgroup_id;
	char *cgpath; /* resolved or given */
	char exe[256];
	uint64_t value, value2;
	size_t prog; /* index of its program, once grouped */
	size_t cont; /* index of its container, once grouped */
};

struct stackrec {
	uint32_t tgid;
	char *folded;
	uint64_t value;
};

struct consumers {
	struct consumers_opts o;
	char procfs[128];
	struct proc *procs;
	size_t n, cap;
	uint32_t *slots; /* open addressing on tgid: index + 1, 0 empty */
	size_t nslots;
	struct stackrec *stacks;
	size_t nstacks, stacks_cap;
	uint64_t total, total2;
	uint64_t procs_dropped, stacks_dropped;
};

int consumers_new(struct consumers **out, const struct consumers_opts *o)
{
	struct consumers *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->o = *o;
	if (!c->o.max_procs)
		c->o.max_procs = 32768;
	snprintf(c->procfs, sizeof(c->procfs), "%s", o->procfs ? o->procfs : "/proc");
	c->o.procfs = c->procfs;
	*out = c;
	return 0;
}

void consumers_free(struct consumers **pc)
{
	struct consumers *c = pc ? *pc : NULL;

	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->procs[i].cgpath);
	for (size_t i = 0; i < c->nstacks; i++)
		free(c->stacks[i].folded);
	free(c->procs);
	free(c->slots);
	free(c->stacks);
	free(c);
	*pc = NULL;
}

static size_t slot_of(uint32_t tgid, size_t nslots)
{
	return (size_t)((tgid * 2654435761u) & (nslots - 1));
}

static int rehash(struct consumers *c, size_t nslots)
{
	uint32_t *s = calloc(nslots, sizeof(*s));

	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < c->n; i++) {
		size_t h = slot_of(c->procs[i].tgid, nslots);

		while (s[h])
			h = (h + 1) & (nslots - 1);
		s[h] = (uint32_t)i + 1;
	}
	free(c->slots);
	c->slots = s;
	c->nslots = nslots;
	return 0;
}

static struct proc *proc_find(struct consumers *c, uint32_t tgid)
{
	for (size_t h = c->nslots ? slot_of(tgid, c->nslots) : 0; c->nslots && c->slots[h];
	     h = (h + 1) & (c->nslots - 1))
		if (c->procs[c->slots[h] - 1].tgid == tgid)
			return &c->procs[c->slots[h] - 1];
	return NULL;
}

/* The process entry of tgid, created if there is room; NULL when full. */
static struct proc *proc_get(struct consumers *c, uint32_t tgid)
{
	struct proc *found = proc_find(c, tgid);
	size_t h;

	if (found)
		return found;
	if (c->n >= c->o.max_procs)
		return NULL;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct proc *p = realloc(c->procs, cap * sizeof(*p));

		if (!p)
			return NULL;
		c->procs = p;
		c->cap = cap;
	}
	if ((c->n + 1) * 2 > c->nslots && rehash(c, c->nslots ? c->nslots * 2 : 128))
		return NULL;
	memset(&c->procs[c->n], 0, sizeof(c->procs[0]));
	c->procs[c->n].tgid = tgid;
	for (h = slot_of(tgid, c->nslots); c->slots[h]; h = (h + 1) & (c->nslots - 1))
		;
	c->slots[h] = (uint32_t)c->n + 1;
	return &c->procs[c->n++];
}

static struct proc *charge(struct consumers *c, uint32_t tgid, uint32_t pid, const char *comm,
			   uint64_t value, uint64_t value2)
{
	struct proc *p;

	c->total += value;
	c->total2 += value2;
	p = proc_get(c, tgid);
	if (!p) {
		c->procs_dropped++;
		return NULL;
	}
	p->value += value;
	p->value2 += value2;
	/* the leader's name is the process's; else the name that used the most */
	if (comm && comm[0] &&
	    (pid == tgid ? p->comm_value != UINT64_MAX : value >= p->comm_value)) {
		snprintf(p->comm, sizeof(p->comm), "%s", comm);
		p->comm_value = pid == tgid ? UINT64_MAX : value;
	}
	return p;
}

int consumers_add(struct consumers *c, uint32_t tgid, uint32_t pid, const char *comm,
		  uint64_t cgroup_id, uint64_t value, uint64_t value2)
{
	struct proc *p = charge(c, tgid, pid, comm, value, value2);

	if (p && cgroup_id && !p->cgroup_id)
		p->cgroup_id = cgroup_id;
	return p ? 0 : -ENOSPC;
}

int consumers_add_path(struct consumers *c, uint32_t tgid, uint32_t pid, const char *comm,
		       const char *cgroup_path, uint64_t value, uint64_t value2)
{
	struct proc *p = charge(c, tgid, pid, comm, value, value2);

	if (!p)
		return -ENOSPC;
	if (cgroup_path && cgroup_path[0] && !p->cgpath && !(p->cgpath = strdup(cgroup_path)))
		return -ENOMEM;
	return 0;
}

int consumers_add_stack(struct consumers *c, uint32_t tgid, const char *folded, uint64_t value)
{
	struct stackrec *r;

	if (!folded || !value)
		return 0;
	if (c->nstacks >= MAX_STACK_RECORDS) {
		c->stacks_dropped++;
		return -ENOSPC;
	}
	if (c->nstacks == c->stacks_cap) {
		size_t cap = c->stacks_cap ? c->stacks_cap * 2 : 256;
		struct stackrec *p = realloc(c->stacks, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->stacks = p;
		c->stacks_cap = cap;
	}
	r = &c->stacks[c->nstacks];
	r->folded = strdup(folded);
	if (!r->folded)
		return -ENOMEM;
	r->tgid = tgid;
	r->value = value;
	c->nstacks++;
	return 0;
}

/* What only /proc knows, read at the end of the window: the executable (the
 * symbolizer's record when the process has exited) and the name when no
 * thread of the process was seen under its leader's name. */
static void proc_resolve(struct consumers *c, struct proc *p)
{
	char path[200], buf[256];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%u/exe", c->procfs, p->tgid);
	n = readlink(path, p->exe, sizeof(p->exe) - 1);
	p->exe[n > 0 ? n : 0] = '\0';
	if (!p->exe[0] && c->o.sym)
		symbolizer_exe(c->o.sym, (int)p->tgid, p->exe, sizeof(p->exe));
	if (p->comm_value != UINT64_MAX) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/%u/comm", c->procfs, p->tgid);
		f = fopen(path, "re");
		if (f) {
			if (fgets(buf, sizeof(buf), f)) {
				buf[strcspn(buf, "\n")] = '\0';
				if (buf[0])
					snprintf(p->comm, sizeof(p->comm), "%s", buf);
			}
			fclose(f);
		}
	}
	if (!p->comm[0])
		snprintf(p->comm, sizeof(p->comm), "%s", p->tgid ? "?" : "[idle]");
	if (!p->cgpath && p->cgroup_id && c->o.cgroups &&
	    cgroups_path_of(c->o.cgroups, p->cgroup_id, buf, sizeof(buf)) == 0)
		p->cgpath = strdup(buf);
}

/* Kernel threads have no executable and a per-instance suffix (kworker/0:1,
 * jbd2/vda1-8): one program by the name before the '/'. */
static void program_name(const struct proc *p, char *buf, size_t len)
{
	size_t l = strlen(p->comm);

	if (!p->exe[0] && strchr(p->comm, '/'))
		l = (size_t)(strchr(p->comm, '/') - p->comm);
	snprintf(buf, len, "%.*s", (int)l, p->comm);
}

struct group {
	char name[16];
	const char *exe;    /* "" when unknown */
	const char *cgpath; /* the largest member's */
	size_t nprocs;
	uint64_t value, value2;
	size_t *members; /* a range of the grouping's index, largest first */
};

struct grouping {
	struct group *g;
	size_t n;
	size_t *idx; /* every process, grouped */
};

/* qsort_r comparators of indices into ctx's processes */
static int cmp_proc_value(const void *a, const void *b, void *ctx)
{
	const struct consumers *c = ctx;
	const struct proc *x = &c->procs[*(const size_t *)a];
	const struct proc *y = &c->procs[*(const size_t *)b];

	if (x->value != y->value)
		return x->value > y->value ? -1 : 1;
	return x->tgid < y->tgid ? -1 : x->tgid > y->tgid;
}

static int strcmp0(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static int cmp_proc_program(const void *a, const void *b, void *ctx)
{
	const struct consumers *c = ctx;
	const struct proc *x = &c->procs[*(const size_t *)a];
	const struct proc *y = &c->procs[*(const size_t *)b];
	char nx[16], ny[16];
	int r;

	program_name(x, nx, sizeof(nx));
	program_name(y, ny, sizeof(ny));
	r = strcmp(nx, ny);
	return r ? r : strcmp(x->exe, y->exe);
}

static int cmp_proc_cgroup(const void *a, const void *b, void *ctx)
{
	const struct consumers *c = ctx;

	return strcmp0(c->procs[*(const size_t *)a].cgpath, c->procs[*(const size_t *)b].cgpath);
}

static int cmp_group_value(const void *a, const void *b)
{
	const struct group *x = a, *y = b;

	if (x->value != y->value)
		return x->value > y->value ? -1 : 1;
	return strcmp(x->name, y->name);
}

static double pct_of(uint64_t v, uint64_t total)
{
	return total ? (double)((uint64_t)(1000.0 * (double)v / (double)total + 0.5)) / 10.0 : 0;
}

static void set_cgroup(json_t *o, const char *path)
{
	char cid[65], pod[37];

	if (!path)
		return;
	json_object_set_new(o, "cgroup", json_string_clean(path));
	cgroup_path_identity(path, cid, sizeof(cid), pod, sizeof(pod));
	if (cid[0])
		json_object_set_new(o, "container_id", json_string(cid));
	if (pod[0])
		json_object_set_new(o, "pod_uid", json_string(pod));
}

static void set_values(const struct consumers *c, json_t *o, uint64_t v, uint64_t v2)
{
	json_object_set_new(o, c->o.measure, json_integer((json_int_t)v));
	if (c->o.measure2)
		json_object_set_new(o, c->o.measure2, json_integer((json_int_t)v2));
	json_object_set_new(o, "pct", json_real(pct_of(v, c->total)));
}

/* Groups the processes by program (name + executable) or by cgroup, by sorting
 * on the key: O(n log n) however many programs there are. */
static int group_by(struct consumers *c, bool by_program, struct grouping *out)
{
	size_t n = c->n, ng = 0;
	struct group *g = calloc(n ? n : 1, sizeof(*g));
	size_t *idx = malloc((n ? n : 1) * sizeof(*idx));

	memset(out, 0, sizeof(*out));
	if (!g || !idx) {
		free(g);
		free(idx);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	if (n)
		qsort_r(idx, n, sizeof(*idx), by_program ? cmp_proc_program : cmp_proc_cgroup, c);
	for (size_t i = 0; i < n; i++) {
		struct proc *p = &c->procs[idx[i]];

		if (!ng ||
		    (by_program ? cmp_proc_program : cmp_proc_cgroup)(&idx[i - 1], &idx[i], c)) {
			program_name(p, g[ng].name, sizeof(g[ng].name));
			g[ng].exe = p->exe;
			g[ng].cgpath = p->cgpath;
			g[ng].members = &idx[i];
			ng++;
		}
		g[ng - 1].nprocs++;
		g[ng - 1].value += p->value;
		g[ng - 1].value2 += p->value2;
	}
	/* A process whose executable was unreadable (it exited, or a kernel
	 * thread) joins the one program of its name that has one. Sorted by
	 * name then executable, it comes right before that program. */
	for (size_t k = 0; by_program && k + 1 < ng; k++) {
		if (g[k].exe[0] || strcmp(g[k].name, g[k + 1].name) ||
		    (k + 2 < ng && strcmp(g[k + 2].name, g[k].name) == 0))
			continue;
		g[k + 1].members = g[k].members;
		g[k + 1].nprocs += g[k].nprocs;
		g[k + 1].value += g[k].value;
		g[k + 1].value2 += g[k].value2;
		g[k].nprocs = 0;
		g[k].value = g[k].value2 = 0;
	}
	for (size_t k = 0; k < ng; k++) {
		if (!g[k].nprocs)
			continue;
		qsort_r(g[k].members, g[k].nprocs, sizeof(size_t), cmp_proc_value, c);
		g[k].cgpath = c->procs[g[k].members[0]].cgpath;
	}
	qsort(g, ng, sizeof(*g), cmp_group_value);
	for (size_t k = 0; k < ng; k++)
		for (size_t m = 0; m < g[k].nprocs; m++) {
			if (by_program)
				c->procs[g[k].members[m]].prog = k;
			else
				c->procs[g[k].members[m]].cont = k;
		}
	out->g = g;
	out->n = ng;
	out->idx = idx;
	return 0;
}

static void grouping_free(struct grouping *gr)
{
	free(gr->g);
	free(gr->idx);
	memset(gr, 0, sizeof(*gr));
}

struct merged {
	const char *folded;
	uint64_t value;
};

static int cmp_merged_folded(const void *a, const void *b)
{
	return strcmp(((const struct merged *)a)->folded, ((const struct merged *)b)->folded);
}

static int cmp_merged_value(const void *a, const void *b)
{
	const struct merged *x = a, *y = b;

	if (x->value != y->value)
		return x->value > y->value ? -1 : 1;
	return strcmp(x->folded, y->folded);
}

/* The leaf frame of a folded line ("comm;outer;...;leaf"), without its
 * "_[k]" suffix; false for a line with no frames (its stack was lost). */
static bool leaf_of(const char *folded, char *buf, size_t len, bool *kernel)
{
	const char *semi = strrchr(folded, ';');
	const char *leaf = semi ? semi + 1 : folded;
	size_t l = strlen(leaf);

	*kernel = l > 4 && strcmp(leaf + l - 4, "_[k]") == 0;
	if (*kernel)
		l -= 4;
	snprintf(buf, len, "%.*s", (int)l, leaf);
	return semi != NULL;
}

/* The frame of a folded line that says where the measure went: the leaf,
 * or for a stack that left the CPU the first frame outside the scheduler
 * (folio_wait_bit_common, jbd2_log_wait_commit, futex_wait...), as wchan. */
static void where_frame(const char *folded, const char **start, size_t *len)
{
	static const char *const sched[] = {
		"__schedule",	  "schedule",		"io_schedule", "preempt_schedule",
		"__cond_resched", "finish_task_switch", "__switch_to", "context_switch"};
	const char *end = folded + strlen(folded);

	for (;;) {
		const char *seg = end;
		bool skip = false;

		while (seg > folded && seg[-1] != ';')
			seg--;
		*start = seg;
		*len = (size_t)(end - seg);
		if (seg == folded || seg - 1 == folded)
			return;
		for (size_t i = 0; i < ARRAY_SIZE(sched) && !skip; i++)
			skip = strncmp(seg, sched[i], strlen(sched[i])) == 0;
		if (!skip || strchr(folded, ';') == seg - 1)
			return;
		end = seg - 1;
	}
}

/* stacks[], kernel_pct and functions[] of one program, from its members' stacks. */
static int program_stacks(struct consumers *c, size_t prog, json_t *o)
{
	struct merged *m = NULL;
	size_t n = 0, k = 0;
	uint64_t sum = 0, kern = 0;
	size_t nfuncs;
	json_t *arr, *funcs;

	for (size_t i = 0; i < c->nstacks; i++) {
		struct proc *p = proc_find(c, c->stacks[i].tgid);

		if (p && p->prog == prog)
			n++;
	}
	if (!n)
		return 0;
	m = malloc(n * sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < c->nstacks; i++) {
		struct proc *p = proc_find(c, c->stacks[i].tgid);

		if (p && p->prog == prog)
			m[k++] = (struct merged){c->stacks[i].folded, c->stacks[i].value};
	}
	/* the same stack in several worker processes is one stack of the program */
	qsort(m, n, sizeof(*m), cmp_merged_folded);
	k = 0;
	for (size_t i = 0; i < n; i++) {
		bool kernel;
		char leaf[160];

		if (leaf_of(m[i].folded, leaf, sizeof(leaf), &kernel)) {
			sum += m[i].value;
			kern += kernel ? m[i].value : 0;
		}
		if (k && strcmp(m[k - 1].folded, m[i].folded) == 0)
			m[k - 1].value += m[i].value;
		else
			m[k++] = m[i];
	}
	n = k;
	qsort(m, n, sizeof(*m), cmp_merged_value);
	arr = json_array();
	for (size_t i = 0; i < n && i < c->o.stacks_per; i++) {
		json_t *s = json_object();

		json_object_set_new(s, "stack", json_string_clean(m[i].folded));
		json_object_set_new(s, c->o.measure, json_integer((json_int_t)m[i].value));
		json_object_set_new(s, "pct", json_real(pct_of(m[i].value, c->total)));
		json_array_append_new(arr, s);
	}
	json_object_set_new(o, "stacks", arr);
	if (sum)
		json_object_set_new(o, "kernel_pct", json_real(pct_of(kern, sum)));

	/* leaf functions: where the program's measure was spent, summed over stacks */
	k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *start;
		size_t len;

		if (!strchr(m[i].folded, ';'))
			continue;
		where_frame(m[i].folded, &start, &len);
		m[k].folded = strndup(start, len);
		if (!m[k].folded)
			break;
		m[k++].value = m[i].value;
	}
	nfuncs = k;
	qsort(m, nfuncs, sizeof(*m), cmp_merged_folded);
	k = 0;
	for (size_t i = 0; i < nfuncs; i++) {
		if (k && strcmp(m[k - 1].folded, m[i].folded) == 0) {
			m[k - 1].value += m[i].value;
			free((char *)m[i].folded);
		} else {
			m[k++] = m[i];
		}
	}
	qsort(m, k, sizeof(*m), cmp_merged_value);
	funcs = json_array();
	for (size_t i = 0; i < k && i < MAX_FUNCS_LISTED; i++) {
		bool kernel;
		char leaf[160];

		leaf_of(m[i].folded, leaf, sizeof(leaf), &kernel);
		json_array_append_new(funcs,
				      json_pack("{s:o,s:b,s:f}", "name", json_string_clean(leaf),
						"kernel", kernel, "pct", pct_of(m[i].value, sum)));
	}
	for (size_t i = 0; i < k; i++)
		free((char *)m[i].folded);
	json_object_set_new(o, "functions", funcs);
	free(m);
	return 0;
}

/* Containers a program's processes ran in: distinct container groups among
 * its members (bounded by the members listed). */
static size_t program_containers(const struct consumers *c, const struct group *g)
{
	size_t n = 0;

	for (size_t m = 0; m < g->nprocs; m++) {
		bool seen = false;

		for (size_t j = 0; j < m && j < 256 && !seen; j++)
			seen = c->procs[g->members[j]].cont == c->procs[g->members[m]].cont;
		n += !seen;
	}
	return n;
}

json_t *consumers_json(struct consumers *c)
{
	json_t *out = json_object(), *procs = json_array(), *progs = json_array(),
	       *conts = json_array();
	struct grouping pg = {0}, cg = {0};
	size_t *order = NULL;

	json_object_set_new(out, "measure", json_string(c->o.measure));
	json_object_set_new(out, "total", json_integer((json_int_t)c->total));
	if (c->o.measure2) {
		json_object_set_new(out, "measure2", json_string(c->o.measure2));
		json_object_set_new(out, "total2", json_integer((json_int_t)c->total2));
	}
	json_object_set_new(out, "processes_seen", json_integer((json_int_t)c->n));
	if (c->procs_dropped || c->stacks_dropped)
		json_object_set_new(out, "lost",
				    json_pack("{s:I,s:I}", "processes_over_max",
					      (json_int_t)c->procs_dropped, "stacks_over_max",
					      (json_int_t)c->stacks_dropped));
	order = malloc((c->n ? c->n : 1) * sizeof(*order));
	if (!order)
		goto done;
	for (size_t i = 0; i < c->n; i++) {
		proc_resolve(c, &c->procs[i]);
		order[i] = i;
	}
	if (c->n)
		qsort_r(order, c->n, sizeof(*order), cmp_proc_value, c);
	for (size_t i = 0; i < c->n && i < c->o.top_n; i++) {
		const struct proc *p = &c->procs[order[i]];
		json_t *o = json_object();

		if (!p->value && !p->value2) {
			json_decref(o);
			break;
		}
		json_object_set_new(o, "pid", json_integer(p->tgid));
		json_object_set_new(o, "comm", json_string_clean(p->comm));
		if (p->exe[0])
			json_object_set_new(o, "exe", json_string_clean(p->exe));
		set_values(c, o, p->value, p->value2);
		set_cgroup(o, p->cgpath);
		json_array_append_new(procs, o);
	}
	if (group_by(c, false, &cg) || group_by(c, true, &pg))
		goto done;
	for (size_t k = 0; k < pg.n && k < c->o.top_n; k++) {
		const struct group *g = &pg.g[k];
		json_t *o, *pids;

		if (!g->nprocs || (!g->value && !g->value2))
			break;
		o = json_object();
		pids = json_array();
		json_object_set_new(o, "program", json_string_clean(g->name));
		json_object_set_new(o, "comm", json_string_clean(c->procs[g->members[0]].comm));
		if (g->exe[0])
			json_object_set_new(o, "exe", json_string_clean(g->exe));
		json_object_set_new(o, "processes", json_integer((json_int_t)g->nprocs));
		for (size_t m = 0; m < g->nprocs && m < MAX_PIDS_LISTED; m++)
			json_array_append_new(pids, json_integer(c->procs[g->members[m]].tgid));
		json_object_set_new(o, "pids", pids);
		set_values(c, o, g->value, g->value2);
		set_cgroup(o, g->cgpath);
		json_object_set_new(o, "containers",
				    json_integer((json_int_t)program_containers(c, g)));
		/* stacks for the programs an incident can name as culprits */
		if (c->nstacks && k < CONSUMERS_STACK_PROGRAMS)
			program_stacks(c, k, o);
		json_array_append_new(progs, o);
	}
	for (size_t k = 0; k < cg.n && k < c->o.top_n; k++) {
		json_t *o;

		if (!cg.g[k].value && !cg.g[k].value2)
			break;
		o = json_object();
		set_cgroup(o, cg.g[k].cgpath ? cg.g[k].cgpath : "");
		json_object_set_new(o, "processes", json_integer((json_int_t)cg.g[k].nprocs));
		set_values(c, o, cg.g[k].value, cg.g[k].value2);
		json_array_append_new(conts, o);
	}
done:
	grouping_free(&pg);
	grouping_free(&cg);
	free(order);
	json_object_set_new(out, "programs", progs);
	json_object_set_new(out, "processes", procs);
	json_object_set_new(out, "containers", conts);
	return out;
}
