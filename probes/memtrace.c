// SPDX-License-Identifier: GPL-2.0-only
/* memtrace capture: RSS growth per process (procfs at the window's start and
 * end), page faults and reclaim/compaction stalls (memtrace.bpf.c), and the
 * memory events of the target's cgroup and of the host. */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/consumers.h"
#include "base/log.h"
#include "base/stacks.h"
#include "base/strbuf.h"
#include "base/util.h"
#include "base/sanitize.h"
#include "probes/bpfutil.h"
#include "probes/capture.h"
#include "probes/memtrace.h"
#include "probes/stackstore.h"
#include "memtrace.skel.h"

enum { P_TOP_PROCESSES, P_FAULTS };

static const struct capture_param_desc memtrace_params[] = {
	[P_TOP_PROCESSES] = {"top_processes", CPARAM_UINT, 1, 1000, "10",
			     "processes listed, the largest RSS growth first"},
	[P_FAULTS] = {"faults", CPARAM_BOOL, 0, 1, "true",
		      "count page faults per process in the kernel (a small program on "
		      "every fault while capturing)"},
};

#define PROC_ROOT      "/proc"
#define SNAPSHOT_MAX   65536 /* processes read per snapshot */
#define MEMTRACE_PROCS 8192

static const char *const stall_names[MEM_STALL_TYPES] = {
	[MEM_STALL_DIRECT_RECLAIM] = "direct_reclaim",
	[MEM_STALL_MEMCG_RECLAIM] = "memcg_reclaim",
	[MEM_STALL_COMPACTION] = "compaction",
};

/* /proc/vmstat counters whose change over the window the incident reports */
static const char *const vmstat_keys[] = {
	"pgfault",
	"pgmajfault",
	"pgscan_direct",
	"pgsteal_direct",
	"pgscan_kswapd",
	"pgsteal_kswapd",
	"allocstall_dma",
	"allocstall_dma32",
	"allocstall_normal",
	"allocstall_movable",
	"compact_stall",
	"compact_fail",
	"compact_success",
	"oom_kill",
	"pswpin",
	"pswpout",
	"workingset_refault_anon",
	"workingset_refault_file",
	"thp_fault_alloc",
};
#define NVMSTAT ARRAY_SIZE(vmstat_keys)

struct proc_snap {
	int pid;
	unsigned long long starttime; /* tells a reused pid apart */
	char comm[16];
	uint64_t anon, file, shmem, hwm, swap; /* bytes */
	uint64_t minflt, majflt;
};

struct snapshot {
	struct proc_snap *p;
	size_t n, cap;
};

/* A cgroup's memory counters: v2 memory.events/current/max, or v1's. */
struct memcg_read {
	bool ok;
	bool v2;
	char dir[PATH_MAX];
	char rel[PATH_MAX]; /* the cgroup's path inside its hierarchy */
	uint64_t usage, limit, peak;
	struct {
		char name[32];
		uint64_t value;
	} ev[16];
	unsigned nev;
};

struct memtrace_state {
	struct memtrace_bpf *skel;
	struct capture_env env;
	struct bpf_links links;
	unsigned stack_depth;
	bool have_faults; /* exceptions tracepoints exist (x86) */
	/* this window */
	struct capture_target target;
	struct capture_params params;
	uint64_t started_ns, stopped_ns;
	struct snapshot start;
	uint64_t vmstat_start[NVMSTAT];
	bool vmstat_ok;
	struct memcg_read cg_start;
};

/* ---------------------------------------------------------------- loading */

static bool is_fault_prog(const struct bpf_program *p)
{
	return strncmp(bpf_program__name(p), "mem_fault_", 10) == 0;
}

BPF_SKEL_OPS(memtrace);

static int configure(void *s, void *ctx)
{
	struct memtrace_bpf *skel = s;
	const struct memtrace_state *st = ctx;
	uint32_t nstacks = (uint32_t)MAX(1024, st->env.cfg->capture.max_stacks / 4);

	bpf_map__set_max_entries(skel->maps.faults, MEMTRACE_PROCS);
	bpf_map__set_max_entries(skel->maps.procs, MEMTRACE_PROCS);
	bpf_map__set_max_entries(skel->maps.stalls, nstacks);
	return stackstore_size(skel->obj, nstacks, st->stack_depth);
}

static int memtrace_prepare(void **out, const struct capture_env *env)
{
	struct memtrace_state *st;
	const struct btf *btf;
	void *skel;
	int err;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->env = *env;
	st->stack_depth = stack_depth_limit(MEMTRACE_STACK_DEPTH);
	btf = kernel_btf();
	if (!btf) {
		err = log_ret(-ENOTSUP, "memtrace: no kernel BTF: CO-RE programs cannot load");
		goto cleanup;
	}
	st->have_faults = btf_has_tracepoint(btf, "page_fault_user");
	/* page_fault_* exist on x86 only; memcg reclaim needs CONFIG_MEMCG */
	err = bpf_skel_load(&skel, NULL, &memtrace_skel_ops,
			    &(struct bpf_load_opts){.owner = "memtrace",
						    .configure = configure,
						    .ctx = st,
						    .drop_missing_tps = true});
	if (err)
		goto cleanup;
	st->skel = skel;
	if (!st->have_faults)
		log_info("memtrace: no exceptions:page_fault_* tracepoints here: page faults "
			 "come from /proc only");
	*out = st;
	return 0;
cleanup:
	free(st);
	return err;
}

/* ------------------------------------------------------------ procfs side */

/* Does a process belong to the target? /proc/<pid>/cgroup names its cgroup in
 * the hierarchy the BPF side filters on (v2, or the v1 cpu controller). */
static bool proc_in_cgroup(struct cgroups *cg, int pid, const char *want)
{
	char mine[PATH_MAX];

	if (strcmp(want, "/") == 0)
		return true;
	return cgroup_of_pid(PROC_ROOT, pid, cgroups_layout(cg) == CGROUP_V2 ? NULL : "cpu", mine,
			     sizeof(mine)) == 0 &&
	       cgroup_path_under(mine, want);
}

/* "VmRSS:   1234 kB" style fields of /proc/<pid>/status, in bytes */
static uint64_t status_kb(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	if (!p)
		return 0;
	p += strlen(key);
	while (*p == ' ' || *p == '\t')
		p++;
	return strtoull(p, NULL, 10) * 1024;
}

static int read_proc(int pid, struct proc_snap *s)
{
	char path[64], *text = NULL, *p;
	int err;

	memset(s, 0, sizeof(*s));
	s->pid = pid;
	snprintf(path, sizeof(path), PROC_ROOT "/%d/stat", pid);
	err = read_file(path, 4096, &text, NULL);
	if (err)
		return err;
	/* "pid (comm) S ppid ..." : comm may hold spaces and parentheses */
	p = strrchr(text, ')');
	{
		char *open = strchr(text, '(');

		if (!p || !open || p < open) {
			free(text);
			return -EINVAL;
		}
		snprintf(s->comm, sizeof(s->comm), "%.*s", (int)(p - open - 1), open + 1);
	}
	/* fields after the comm, numbered from 3 (state) */
	{
		char *save = NULL, *tok = strtok_r(p + 1, " ", &save);

		for (int field = 3; tok; field++, tok = strtok_r(NULL, " ", &save)) {
			if (field == 10)
				s->minflt = strtoull(tok, NULL, 10);
			else if (field == 12)
				s->majflt = strtoull(tok, NULL, 10);
			else if (field == 22) {
				s->starttime = strtoull(tok, NULL, 10);
				break;
			}
		}
	}
	free(text);
	text = NULL;
	snprintf(path, sizeof(path), PROC_ROOT "/%d/status", pid);
	err = read_file(path, 16384, &text, NULL);
	if (err)
		return err;
	if (!strstr(text, "\nRssAnon:")) {
		free(text);
		return -ENOENT; /* a kernel thread, or exiting: no memory of its own */
	}
	s->anon = status_kb(text, "\nRssAnon:");
	s->file = status_kb(text, "\nRssFile:");
	s->shmem = status_kb(text, "\nRssShmem:");
	s->hwm = status_kb(text, "\nVmHWM:");
	s->swap = status_kb(text, "\nVmSwap:");
	free(text);
	return 0;
}

static int cmp_snap_pid(const void *a, const void *b)
{
	const struct proc_snap *x = a, *y = b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* Every process of the target with its memory, sorted by pid. */
static int snapshot_take(struct memtrace_state *st, struct snapshot *snap)
{
	const struct capture_target *t = &st->target;
	struct dirent *de;
	DIR *d;

	snap->n = 0;
	if (t->kind == TARGET_PID) {
		if (!snap->cap) {
			snap->p = calloc(1, sizeof(*snap->p));
			if (!snap->p)
				return -ENOMEM;
			snap->cap = 1;
		}
		if (read_proc(t->pid, &snap->p[0]) == 0)
			snap->n = 1;
		return 0;
	}
	d = opendir(PROC_ROOT);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && snap->n < SNAPSHOT_MAX) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		if (t->kind == TARGET_CGROUP &&
		    !proc_in_cgroup(st->env.cgroups, (int)pid, t->cgroup))
			continue;
		if (snap->n == snap->cap) {
			size_t cap = snap->cap ? snap->cap * 2 : 512;
			struct proc_snap *p = realloc(snap->p, cap * sizeof(*p));

			if (!p) {
				closedir(d);
				return -ENOMEM;
			}
			snap->p = p;
			snap->cap = cap;
		}
		if (read_proc((int)pid, &snap->p[snap->n]) == 0)
			snap->n++;
	}
	closedir(d);
	if (snap->n)
		qsort(snap->p, snap->n, sizeof(*snap->p), cmp_snap_pid);
	return 0;
}

static void snapshot_free(struct snapshot *s)
{
	free(s->p);
	memset(s, 0, sizeof(*s));
}

static int vmstat_read(uint64_t *out)
{
	char *text = NULL, *line, *save = NULL;
	int err = read_file(PROC_ROOT "/vmstat", 1 << 20, &text, NULL);

	if (err)
		return err;
	memset(out, 0, NVMSTAT * sizeof(*out));
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		if (!sp)
			continue;
		*sp = '\0';
		for (size_t i = 0; i < NVMSTAT; i++)
			if (strcmp(line, vmstat_keys[i]) == 0)
				out[i] = strtoull(sp + 1, NULL, 10);
	}
	free(text);
	return 0;
}

/* ------------------------------------------------------------ cgroup side */

/* The memory cgroup directory of the target: the cgroup itself, or the
 * process's memory cgroup; none for the host. */
static int memcg_dir(struct memtrace_state *st, char *dir, size_t len, char *rel, size_t rlen,
		     bool *v2)
{
	const struct capture_target *t = &st->target;
	const char *id_root = cgroups_id_root(st->env.cgroups);
	char root[PATH_MAX], cgpath[PATH_MAX] = "";
	enum cgroup_layout layout = cgroups_layout(st->env.cgroups);

	if (t->kind == TARGET_HOST || layout == CGROUP_NONE)
		return -ENOENT;
	*v2 = layout == CGROUP_V2;
	if (*v2) {
		snprintf(root, sizeof(root), "%s", id_root);
	} else {
		/* v1 and hybrid: the memory controller next to the cpu one */
		char tmp[PATH_MAX];

		snprintf(tmp, sizeof(tmp), "%s", id_root);
		snprintf(root, sizeof(root), "%s/memory", dirname(tmp));
	}
	if (t->kind == TARGET_CGROUP) {
		snprintf(cgpath, sizeof(cgpath), "%s", t->cgroup);
	} else {
		/* v1 and hybrid: the memory controller's hierarchy */
		if (cgroup_of_pid(PROC_ROOT, t->pid, *v2 ? NULL : "memory", cgpath, sizeof(cgpath)))
			return -ENOENT;
	}
	snprintf(dir, len, "%s%s", root, strcmp(cgpath, "/") ? cgpath : "");
	snprintf(rel, rlen, "%s", cgpath);
	return access(dir, F_OK) == 0 ? 0 : -ENOENT;
}

/* A one-number cgroup file; v2's "max" (no limit) reads as UINT64_MAX. */
static bool read_u64_file(const char *dir, const char *name, uint64_t *out)
{
	char path[PATH_MAX + 64], *text = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (read_file(path, 256, &text, NULL))
		return false;
	*out = isdigit((unsigned char)text[0]) ? strtoull(text, NULL, 10) : UINT64_MAX;
	free(text);
	return true;
}

/* "name value" lines (memory.events, memory.oom_control) into ev[] */
static void read_kv_file(struct memcg_read *m, const char *name, const char *prefix)
{
	char path[PATH_MAX + 64], *text = NULL, *line, *save = NULL;

	snprintf(path, sizeof(path), "%s/%s", m->dir, name);
	if (read_file(path, 65536, &text, NULL))
		return;
	for (line = strtok_r(text, "\n", &save); line && m->nev < ARRAY_SIZE(m->ev);
	     line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		if (!sp)
			continue;
		*sp = '\0';
		snprintf(m->ev[m->nev].name, sizeof(m->ev[0].name), "%s%s", prefix, line);
		m->ev[m->nev++].value = strtoull(sp + 1, NULL, 10);
	}
	free(text);
}

static void memcg_read(struct memtrace_state *st, struct memcg_read *m)
{
	memset(m, 0, sizeof(*m));
	if (memcg_dir(st, m->dir, sizeof(m->dir), m->rel, sizeof(m->rel), &m->v2))
		return;
	m->ok = true;
	if (m->v2) {
		read_u64_file(m->dir, "memory.current", &m->usage);
		read_u64_file(m->dir, "memory.max", &m->limit);
		read_u64_file(m->dir, "memory.peak", &m->peak);
		read_kv_file(m, "memory.events", "");
	} else {
		uint64_t failcnt = 0;

		read_u64_file(m->dir, "memory.usage_in_bytes", &m->usage);
		read_u64_file(m->dir, "memory.limit_in_bytes", &m->limit);
		read_u64_file(m->dir, "memory.max_usage_in_bytes", &m->peak);
		if (read_u64_file(m->dir, "memory.failcnt", &failcnt)) {
			snprintf(m->ev[m->nev].name, sizeof(m->ev[0].name), "failcnt");
			m->ev[m->nev++].value = failcnt;
		}
		read_kv_file(m, "memory.oom_control", "");
	}
}

static json_t *memcg_json(struct memtrace_state *st, const struct memcg_read *a,
			  const struct memcg_read *b)
{
	json_t *o = json_object(), *ev = json_object();

	json_object_set_new(o, "path", json_string_clean(b->rel[0] ? b->rel : "/"));
	json_object_set_new(o, "hierarchy", json_string_clean(b->v2 ? "v2" : "v1"));
	json_object_set_new(o, "usage_start_bytes", json_integer((json_int_t)a->usage));
	json_object_set_new(o, "usage_end_bytes", json_integer((json_int_t)b->usage));
	if (b->limit != UINT64_MAX && b->limit < (1ull << 62))
		json_object_set_new(o, "limit_bytes", json_integer((json_int_t)b->limit));
	if (b->peak)
		json_object_set_new(o, "peak_bytes", json_integer((json_int_t)b->peak));
	for (unsigned i = 0; i < b->nev; i++) {
		uint64_t before = 0;

		for (unsigned j = 0; j < a->nev; j++)
			if (strcmp(a->ev[j].name, b->ev[i].name) == 0)
				before = a->ev[j].value;
		/* counters grow; state flags (under_oom, oom_kill_disable) are shown as they are */
		if (strcmp(b->ev[i].name, "under_oom") == 0 ||
		    strcmp(b->ev[i].name, "oom_kill_disable") == 0)
			json_object_set_new(ev, b->ev[i].name,
					    json_integer((json_int_t)b->ev[i].value));
		else
			json_object_set_new(
				ev, b->ev[i].name,
				json_integer((json_int_t)(b->ev[i].value >= before
								  ? b->ev[i].value - before
								  : 0)));
	}
	json_object_set_new(o, "events", ev);
	return o;
}

/* ------------------------------------------------------------ the window */

static void memtrace_stop(void *state)
{
	struct memtrace_state *st = state;

	if (!st->links.n)
		return;
	bpf_links_detach(&st->links);
	st->stopped_ns = now_mono_ns();
}

static void memtrace_clear(struct memtrace_state *st)
{
	map_clear(st->skel->maps.faults);
	map_clear(st->skel->maps.procs);
	map_clear(st->skel->maps.stall_start);
	map_clear(st->skel->maps.stalls);
	stackstore_reset(st->skel->obj);
}

static enum bpf_attach_choice attach_choice(const struct bpf_program *prog, void *ctx)
{
	const struct memtrace_state *st = ctx;

	return is_fault_prog(prog) && !st->params.v[P_FAULTS] ? BPF_ATTACH_SKIP
							      : BPF_ATTACH_REQUIRED;
}

static int memtrace_start(void *state, const struct capture_target *t,
			  const struct capture_params *p)
{
	struct memtrace_state *st = state;
	struct capture_filter f;
	int err;

	memtrace_clear(st);
	percpu_counters_zero(st->skel->maps.stats, MEM_STAT_MAX);
	err = capture_filter_fill(&f, t, st->env.cgroups);
	if (err)
		return err;
	err = capture_filter_set(st->skel->maps.filter, &f);
	if (err)
		return err;
	st->target = *t;
	st->params = *p;
	err = bpf_links_attach(&st->links, st->skel->obj, attach_choice, st, "memtrace");
	if (err)
		return err;
	st->started_ns = now_mono_ns();
	st->stopped_ns = 0;
	/* the programs count from here; the baselines follow at once */
	st->vmstat_ok = vmstat_read(st->vmstat_start) == 0;
	memcg_read(st, &st->cg_start);
	err = snapshot_take(st, &st->start);
	if (err)
		return log_ret(err, "memtrace: reading processes: %s", strerror(-err));
	return 0;
}

/* ------------------------------------------------------------ reading out */

struct proc_row {
	int pid;
	char comm[16];
	uint64_t cgroup_id;
	bool have_start, have_end;
	struct proc_snap a, b;
	struct mem_faults faults;
	uint64_t stall_ns[MEM_STALL_TYPES], stall_n[MEM_STALL_TYPES];
	int64_t growth;
};

struct rows {
	struct proc_row *r;
	size_t n, cap;
};

static int cmp_row_pid(const void *a, const void *b)
{
	const struct proc_row *x = a, *y = b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static int cmp_row_growth_desc(const void *a, const void *b)
{
	const struct proc_row *x = a, *y = b;

	if (x->growth != y->growth)
		return x->growth > y->growth ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static struct proc_row *row_get(struct rows *rs, int pid)
{
	struct proc_row k = {.pid = pid}, *hit;

	hit = rs->n ? bsearch(&k, rs->r, rs->n, sizeof(k), cmp_row_pid) : NULL;
	if (hit)
		return hit;
	/* rare: a pid only the kernel side saw (exited before either snapshot) */
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct proc_row *p = realloc(rs->r, cap * sizeof(*p));

		if (!p)
			return NULL;
		rs->r = p;
		rs->cap = cap;
	}
	hit = &rs->r[rs->n++];
	memset(hit, 0, sizeof(*hit));
	hit->pid = pid;
	qsort(rs->r, rs->n, sizeof(*rs->r), cmp_row_pid);
	return bsearch(&k, rs->r, rs->n, sizeof(k), cmp_row_pid);
}

/* Start and end snapshots merged by pid. A pid reused during the window is
 * the new process: the old one exited, and its memory with it. */
static int rows_from_snapshots(struct rows *rs, const struct snapshot *a, const struct snapshot *b)
{
	size_t i = 0, j = 0;

	rs->cap = a->n + b->n + 1;
	rs->r = calloc(rs->cap, sizeof(*rs->r));
	if (!rs->r)
		return -ENOMEM;
	while (i < a->n || j < b->n) {
		struct proc_row *r = &rs->r[rs->n++];

		if (j >= b->n || (i < a->n && a->p[i].pid < b->p[j].pid)) {
			r->pid = a->p[i].pid;
			r->a = a->p[i++];
			r->have_start = true;
			snprintf(r->comm, sizeof(r->comm), "%s", r->a.comm);
			continue;
		}
		r->pid = b->p[j].pid;
		r->b = b->p[j];
		r->have_end = true;
		if (i < a->n && a->p[i].pid == b->p[j].pid) {
			if (a->p[i].starttime == b->p[j].starttime) {
				r->a = a->p[i];
				r->have_start = true;
			}
			i++;
		}
		j++;
		snprintf(r->comm, sizeof(r->comm), "%s", r->b.comm);
	}
	return 0;
}

static uint64_t rss(const struct proc_snap *s)
{
	return s->anon + s->file + s->shmem;
}

static void add_kernel_side(struct memtrace_state *st, struct rows *rs)
{
	int ncpu = libbpf_num_possible_cpus();
	int fd = bpf_map__fd(st->skel->maps.faults);
	struct mem_faults *percpu = calloc((size_t)MAX(ncpu, 1), sizeof(*percpu));
	uint32_t key, next;

	if (!percpu || ncpu <= 0) {
		free(percpu);
		return;
	}
	for (int more = bpf_map_get_next_key(fd, NULL, &next) == 0; more;
	     more = bpf_map_get_next_key(fd, &key, &next) == 0) {
		struct proc_row *r;

		key = next;
		if (bpf_map_lookup_elem(fd, &key, percpu))
			continue;
		r = row_get(rs, (int)key);
		if (!r)
			continue;
		for (int c = 0; c < ncpu; c++) {
			r->faults.user += percpu[c].user;
			r->faults.kernel += percpu[c].kernel;
		}
	}
	free(percpu);
}

static void name_from_kernel_side(struct memtrace_state *st, struct proc_row *r)
{
	struct mem_proc_info pi;
	uint32_t tgid = (uint32_t)r->pid;

	if (bpf_map_lookup_elem(bpf_map__fd(st->skel->maps.procs), &tgid, &pi) == 0) {
		pi.comm[sizeof(pi.comm) - 1] = '\0';
		if (!r->comm[0])
			snprintf(r->comm, sizeof(r->comm), "%s", pi.comm);
		r->cgroup_id = pi.cgroup_id;
	}
}

static void set_u(json_t *o, const char *k, uint64_t v)
{
	json_object_set_new(o, k, json_integer((json_int_t)v));
}

static void set_i(json_t *o, const char *k, int64_t v)
{
	json_object_set_new(o, k, json_integer((json_int_t)v));
}

static json_t *row_json(struct memtrace_state *st, const struct proc_row *r, uint64_t window_ms)
{
	json_t *o = json_object();
	uint64_t secs_x1000 = window_ms ? window_ms : 1;

	set_i(o, "pid", r->pid);
	json_object_set_new(o, "comm", json_string_clean(r->comm[0] ? r->comm : "?"));
	cgroup_json_set(o, st->env.cgroups, r->cgroup_id);
	set_u(o, "rss_start_bytes", r->have_start ? rss(&r->a) : 0);
	set_u(o, "rss_end_bytes", r->have_end ? rss(&r->b) : 0);
	set_i(o, "rss_growth_bytes", r->growth);
	if (r->have_end) {
		const struct proc_snap *a = r->have_start ? &r->a : &(struct proc_snap){0};

		set_i(o, "anon_growth_bytes", (int64_t)r->b.anon - (int64_t)a->anon);
		set_i(o, "file_growth_bytes", (int64_t)r->b.file - (int64_t)a->file);
		set_i(o, "shmem_growth_bytes", (int64_t)r->b.shmem - (int64_t)a->shmem);
		set_u(o, "rss_peak_bytes", r->b.hwm);
		set_u(o, "swap_bytes", r->b.swap);
		set_u(o, "minor_faults", r->b.minflt - (r->have_start ? r->a.minflt : 0));
		set_u(o, "major_faults", r->b.majflt - (r->have_start ? r->a.majflt : 0));
		set_u(o, "minor_faults_per_sec",
		      (r->b.minflt - (r->have_start ? r->a.minflt : 0)) * 1000 / secs_x1000);
		set_u(o, "major_faults_per_sec",
		      (r->b.majflt - (r->have_start ? r->a.majflt : 0)) * 1000 / secs_x1000);
	}
	if (st->have_faults && st->params.v[P_FAULTS]) {
		set_u(o, "page_faults_user", r->faults.user);
		set_u(o, "page_faults_kernel", r->faults.kernel);
	}
	for (int t = 0; t < MEM_STALL_TYPES; t++) {
		char k[48];

		snprintf(k, sizeof(k), "%s_ms", stall_names[t]);
		json_object_set_new(o, k, json_real((double)(r->stall_ns[t] / 1000) / 1000.0));
		snprintf(k, sizeof(k), "%s_count", stall_names[t]);
		set_u(o, k, r->stall_n[t]);
	}
	json_object_set_new(o, "started_in_window", json_boolean(!r->have_start));
	json_object_set_new(o, "exited_in_window", json_boolean(!r->have_end));
	return o;
}

/* Stalls per type: totals into the rows, stacks into one stackset per type. */
static int stalls_json(struct memtrace_state *st, struct rows *rs, struct capture_result *out,
		       json_t **obj, uint64_t *lost)
{
	const struct agent_config *cfg = st->env.cfg;
	const struct bpf_map *m = st->skel->maps.stalls;
	struct stackset *ss[MEM_STALL_TYPES] = {0};
	uint64_t count[MEM_STALL_TYPES] = {0}, max_ns[MEM_STALL_TYPES] = {0};
	uint64_t *kframes = NULL, *uframes = NULL;
	struct mem_stall_key key, next;
	struct strbuf folded = {0};
	int fd = bpf_map__fd(m), err = 0;
	json_t *o = json_object();

	kframes = calloc(st->stack_depth, sizeof(*kframes));
	uframes = calloc(st->stack_depth, sizeof(*uframes));
	if (!kframes || !uframes) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (int t = 0; t < MEM_STALL_TYPES; t++) {
		err = stackset_new(&ss[t], bpf_map__max_entries(m));
		if (err)
			goto cleanup;
	}
	for (int more = bpf_map_get_next_key(fd, NULL, &next) == 0; more;
	     more = bpf_map_get_next_key(fd, &key, &next) == 0) {
		struct mem_stall_val v;
		struct stack_sample s = {0};
		struct proc_row *r;
		unsigned skip;

		key = next;
		if (bpf_map_lookup_elem(fd, &key, &v) || key.type >= MEM_STALL_TYPES)
			continue;
		if (stack_map_read(st->skel->maps.stacks, key.kern_stack_id, kframes,
				   st->stack_depth, &s.nk) ||
		    stack_map_read(st->skel->maps.stacks, key.user_stack_id, uframes,
				   st->stack_depth, &s.nu))
			(*lost)++;
		skip = stack_bpf_frames(st->env.sym, kframes, s.nk);
		key.comm[sizeof(key.comm) - 1] = '\0';
		s.tgid = key.tgid;
		s.pid = key.pid;
		s.cgroup_id = key.cgroup_id;
		s.comm = key.comm;
		s.kstack = kframes + skip;
		s.nk -= skip;
		s.ustack = uframes;
		s.value = v.total_ns / 1000;
		stackset_add(ss[key.type], &s);
		count[key.type] += v.count;
		max_ns[key.type] = MAX(max_ns[key.type], v.max_ns);
		r = row_get(rs, (int)key.tgid);
		if (r) {
			r->stall_ns[key.type] += v.total_ns;
			r->stall_n[key.type] += v.count;
		}
	}
	for (int t = 0; t < MEM_STALL_TYPES; t++) {
		struct stackset_render_opts ro = {
			.top_n = (unsigned)cfg->capture.top_stacks,
			.folded_max = cfg->local.max_incident_size / 8,
			.value_key = "stall_us",
			.sym = st->env.sym,
			.cgroups = st->env.cgroups,
		};
		struct stackset_render rr = {0};
		json_t *so = json_object();

		err = stackset_render(ss[t], &ro, &rr);
		if (err)
			goto cleanup;
		*lost += stackset_dropped(ss[t]);
		set_u(so, "count", count[t]);
		set_u(so, "total_us", rr.total);
		set_u(so, "max_us", max_ns[t] / 1000);
		json_object_set_new(so, "top_stacks", rr.top);
		rr.top = NULL;
		/* one folded file for all types, each line rooted at its type */
		for (char *line = rr.folded, *nl; line && *line; line = nl + 1) {
			nl = strchr(line, '\n');
			if (!nl)
				break;
			strbuf_printf(&folded, "%s;%.*s\n", stall_names[t], (int)(nl - line), line);
		}
		stackset_render_clear(&rr);
		if (folded.err) {
			json_decref(so);
			err = folded.err;
			goto cleanup;
		}
		json_object_set_new(o, stall_names[t], so);
	}
	if (folded.len) {
		size_t len;
		char *text = strbuf_take(&folded, &len);

		err = capture_result_add_artifact(out, "memtrace-stalls.folded", text, len);
		if (err)
			goto cleanup;
	}
	*obj = o;
	o = NULL;
cleanup:
	json_decref(o);
	strbuf_free(&folded);
	for (int t = 0; t < MEM_STALL_TYPES; t++)
		stackset_free(&ss[t]);
	free(kframes);
	free(uframes);
	return err;
}

static int memtrace_collect(void *state, struct capture_result *out)
{
	struct memtrace_state *st = state;
	uint64_t stats[MEM_STAT_MAX] = {0}, vm_end[NVMSTAT], window_ms, stack_lost = 0;
	unsigned top = (unsigned)st->params.v[P_TOP_PROCESSES];
	struct snapshot end = {0};
	struct memcg_read cg_end;
	struct rows rs = {0};
	json_t *procs, *lost, *stalls = NULL;
	size_t omitted = 0;
	int err;

	if (!st->stopped_ns)
		st->stopped_ns = now_mono_ns();
	window_ms = (st->stopped_ns - st->started_ns) / 1000000;
	/* the end baselines first, as close to the window's end as we can */
	err = snapshot_take(st, &end);
	if (err)
		goto cleanup;
	memcg_read(st, &cg_end);
	percpu_counters_read(st->skel->maps.stats, stats, MEM_STAT_MAX);

	err = rows_from_snapshots(&rs, &st->start, &end);
	if (err)
		goto cleanup;
	add_kernel_side(st, &rs);
	out->data = json_object();
	err = stalls_json(st, &rs, out, &stalls, &stack_lost);
	if (err)
		goto cleanup;
	for (size_t i = 0; i < rs.n; i++) {
		struct proc_row *r = &rs.r[i];

		name_from_kernel_side(st, r);
		/* born in the window: all it holds is growth; gone: its memory was freed */
		r->growth = r->have_end ? (int64_t)rss(&r->b) -
						  (r->have_start ? (int64_t)rss(&r->a) : 0)
					: 0;
	}
	if (rs.n)
		qsort(rs.r, rs.n, sizeof(*rs.r), cmp_row_growth_desc);
	/* consumers: every process that grew, by growth, with its stall time */
	{
		struct consumers *c = NULL;

		if (consumers_new(&c, &(struct consumers_opts){
					      .measure = "rss_growth_bytes",
					      .measure2 = "stall_us",
					      .top_n = CONSUMERS_TOP,
					      .sym = st->env.sym,
					      .cgroups = st->env.cgroups,
				      }) == 0) {
			for (size_t i = 0; i < rs.n; i++) {
				const struct proc_row *r = &rs.r[i];
				uint64_t stall_ns = 0;

				for (int t = 0; t < MEM_STALL_TYPES; t++)
					stall_ns += r->stall_ns[t];
				if ((r->pid == getpid() && st->target.kind != TARGET_PID) ||
				    (r->growth <= 0 && !stall_ns))
					continue;
				consumers_add(c, (uint32_t)r->pid, (uint32_t)r->pid, r->comm,
					      r->cgroup_id, r->growth > 0 ? (uint64_t)r->growth : 0,
					      stall_ns / 1000);
			}
			json_object_set_new(out->data, "consumers", consumers_json(c));
			consumers_free(&c);
		}
	}
	procs = json_array();
	for (size_t i = 0, listed = 0; i < rs.n; i++) {
		const struct proc_row *r = &rs.r[i];
		uint64_t stalled = 0;

		for (int t = 0; t < MEM_STALL_TYPES; t++)
			stalled += r->stall_n[t];
		/* the agent itself is listed only when it is the target */
		if (r->pid == getpid() && st->target.kind != TARGET_PID)
			continue;
		/* of a host or cgroup, those that grew or stalled; a process target always */
		if (st->target.kind != TARGET_PID && r->growth <= 0 && !stalled)
			continue;
		if (listed++ >= top) {
			omitted++;
			continue;
		}
		json_array_append_new(procs, row_json(st, r, window_ms));
	}

	set_u(out->data, "window_ms", window_ms);
	json_object_set_new(out->data, "faults_source",
			    json_string_clean(st->have_faults && st->params.v[P_FAULTS]
						      ? "tracepoints"
						      : "procfs"));
	json_object_set_new(out->data, "processes", procs);
	set_u(out->data, "processes_omitted", omitted);
	set_u(out->data, "processes_seen", rs.n);
	json_object_set_new(out->data, "stalls", stalls);
	stalls = NULL;
	if (st->cg_start.ok && cg_end.ok)
		json_object_set_new(out->data, "cgroup", memcg_json(st, &st->cg_start, &cg_end));
	if (st->vmstat_ok && vmstat_read(vm_end) == 0) {
		json_t *vm = json_object();

		for (size_t i = 0; i < NVMSTAT; i++)
			set_u(vm, vmstat_keys[i],
			      vm_end[i] >= st->vmstat_start[i] ? vm_end[i] - st->vmstat_start[i]
							       : 0);
		json_object_set_new(out->data, "vmstat", vm);
	}
	set_u(out->data, "page_faults_counted", stats[MEM_STAT_FAULTS]);
	set_u(out->data, "stalls_counted", stats[MEM_STAT_STALLS]);
	lost = json_object();
	set_u(lost, "fault_keys_full", stats[MEM_STAT_FAULT_KEYS_FULL]);
	set_u(lost, "stalls_full", stats[MEM_STAT_STALLS_FULL] + stats[MEM_STAT_STALL_START_FULL]);
	set_u(lost, "stacks", stats[MEM_STAT_STACK_LOST] + stack_lost);
	set_u(lost, "processes_unnamed", stats[MEM_STAT_PROCS_FULL]);
	json_object_set_new(out->data, "lost", lost);
	out->lost_events = stats[MEM_STAT_FAULT_KEYS_FULL] + stats[MEM_STAT_STALLS_FULL] +
			   stats[MEM_STAT_STALL_START_FULL] + stats[MEM_STAT_STACK_LOST] +
			   stats[MEM_STAT_PROCS_FULL] + stack_lost;
	out->partial = out->lost_events > 0;
cleanup:
	json_decref(stalls);
	snapshot_free(&end);
	snapshot_free(&st->start);
	free(rs.r);
	memtrace_clear(st);
	return err;
}

static void memtrace_release(void *state)
{
	struct memtrace_state *st = state;

	if (!st)
		return;
	memtrace_stop(st);
	snapshot_free(&st->start);
	bpf_skel_unload(st->skel, &memtrace_skel_ops, "memtrace");
	free(st);
}

const struct capture_ops memtrace_capture = {
	.kind = "memtrace",
	.help = "processes by RSS growth, page faults, reclaim and compaction stalls with stacks, "
		"cgroup memory events",
	.params = memtrace_params,
	.nparams = sizeof(memtrace_params) / sizeof(memtrace_params[0]),
	.prepare = memtrace_prepare,
	.start = memtrace_start,
	.stop = memtrace_stop,
	.collect = memtrace_collect,
	.release = memtrace_release,
};
