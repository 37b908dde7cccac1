// SPDX-License-Identifier: GPL-2.0-only
/* iotrace capture: loader and reader for iotrace.bpf.c. */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/consumers.h"
#include "base/log.h"
#include "base/mounts.h"
#include "base/stacks.h"
#include "base/util.h"
#include "base/sanitize.h"
#include "probes/bpfutil.h"
#include "probes/capture.h"
#include "probes/iotrace.h"
#include "probes/kcompat.h"
#include "probes/stackstore.h"
#include "iotrace.skel.h"

enum { P_TOP_PROCESSES, P_TOP_FILES, P_BLOCKED_STACKS, P_BLOCKED_THRESHOLD };

static const struct capture_param_desc iotrace_params[] = {
	[P_TOP_PROCESSES] = {"top_processes", CPARAM_UINT, 1, 1000, "10",
			     "processes listed, the most IO first"},
	[P_TOP_FILES] = {"top_files", CPARAM_UINT, 1, 1000, "10",
			 "files listed per process, the most IO first"},
	[P_BLOCKED_STACKS] = {"blocked_stacks", CPARAM_BOOL, 0, 1, "true",
			      "stacks of tasks blocked on IO (hooks sched_switch while "
			      "capturing)"},
	[P_BLOCKED_THRESHOLD] = {"blocked_threshold", CPARAM_DURATION, 0, 60000, "10ms",
				 "shortest block on IO whose stack is kept (0: every one)"},
};

#define PROC_ROOT "/proc"

struct iotrace_state {
	struct iotrace_bpf *skel;
	struct capture_env env;
	struct bpf_links links;
	bool use_btf;
	bool fs_level;	     /* syscall tracepoints usable */
	char fs_error[160];  /* why not */
	bool dirty_tracking; /* a writeback_dirty_* tracepoint exists */
	/* block tracepoints passing the request queue too (before 5.11): the
	 * *_old programs, per tracepoint (stable kernels changed some only) */
	bool old_getrq, old_issue, old_frontmerge;
	unsigned stack_depth;
	/* this window */
	uint64_t started_ns, stopped_ns;
	struct capture_params params;
	enum capture_target_kind target_kind;
	char attach_note[160];
};

/* ---------------------------------------------------------------- loading */

static bool is_fs_prog(const struct bpf_program *p)
{
	return strncmp(bpf_program__name(p), "io_sys_exit", 11) == 0;
}

static bool is_blocked_prog(const struct bpf_program *p)
{
	return strncmp(bpf_program__name(p), "io_switch_", 10) == 0;
}

BPF_SKEL_OPS(iotrace);

static int configure(void *s, void *ctx)
{
	struct iotrace_state *st = ctx;
	const struct agent_config *cfg = st->env.cfg;
	static const struct {
		int nr;
		uint8_t dir;
	} rw[] = {
		{SYS_read, IO_SYSCALL_READ},	{SYS_write, IO_SYSCALL_WRITE},
		{SYS_pread64, IO_SYSCALL_READ}, {SYS_pwrite64, IO_SYSCALL_WRITE},
		{SYS_readv, IO_SYSCALL_READ},	{SYS_writev, IO_SYSCALL_WRITE},
		{SYS_preadv, IO_SYSCALL_READ},	{SYS_pwritev, IO_SYSCALL_WRITE},
		{SYS_preadv2, IO_SYSCALL_READ}, {SYS_pwritev2, IO_SYSCALL_WRITE},
	};
	uint32_t files = (uint32_t)cfg->capture.max_files;
	/* stack maps collide long before they fill: keep buckets well above use */
	uint32_t nstacks = (uint32_t)MAX(1024, cfg->capture.max_stacks / 4);
	struct iotrace_bpf *skel = s;

	skel->rodata->o_direct_flag = O_DIRECT;
	for (size_t i = 0; i < ARRAY_SIZE(rw); i++)
		if (rw[i].nr >= 0 && rw[i].nr < IOTRACE_SYSCALL_TABLE)
			skel->rodata->rw_syscall_dir[rw[i].nr] = rw[i].dir;
	bpf_map__set_max_entries(skel->maps.fsio, files);
	bpf_map__set_max_entries(skel->maps.diskio, files);
	bpf_map__set_max_entries(skel->maps.files, files);
	bpf_map__set_max_entries(skel->maps.dirtiers, files);
	bpf_map__set_max_entries(skel->maps.blocked, nstacks);
	bpf_object_choose_old(skel->obj, "block_getrq", st->old_getrq);
	bpf_object_choose_old(skel->obj, "block_rq_issue", st->old_issue);
	bpf_object_choose_old(skel->obj, "block_bio_frontmerge", st->old_frontmerge);
	return stackstore_size(skel->obj, nstacks, st->stack_depth);
}

static int iotrace_prepare(void **out, const struct capture_env *env)
{
	struct iotrace_state *st;
	const struct btf *btf;
	void *skel;
	int err, nargs[4];

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->env = *env;
	st->stack_depth = stack_depth_limit(IOTRACE_STACK_DEPTH);
	btf = kernel_btf();
	if (!btf) {
		err = log_ret(-ENOTSUP, "iotrace: no kernel BTF: CO-RE programs cannot load");
		goto cleanup;
	}
	/* the block tracepoints this probe reads: their 5.11+ arguments, or the
	 * ones before, which passed the request queue first (*_old programs) */
	nargs[0] = btf_tracepoint_nargs(btf, "block_getrq");
	nargs[1] = btf_tracepoint_nargs(btf, "block_rq_issue");
	nargs[2] = btf_tracepoint_nargs(btf, "block_bio_frontmerge");
	nargs[3] = btf_tracepoint_nargs(btf, "block_rq_complete");
	st->old_getrq = nargs[0] == 3;
	st->old_issue = nargs[1] == 2;
	st->old_frontmerge = nargs[2] == 3;
	if ((nargs[0] != 1 && !st->old_getrq) || (nargs[1] != 1 && !st->old_issue) ||
	    (nargs[2] != 1 && nargs[2] != -ENOENT && !st->old_frontmerge) || nargs[3] != 3) {
		err = log_ret(-ENOTSUP,
			      "iotrace: block tracepoints with arguments it does not know: "
			      "block_getrq %d, block_rq_issue %d, block_bio_frontmerge %d, "
			      "block_rq_complete %d",
			      nargs[0], nargs[1], nargs[2], nargs[3]);
		goto cleanup;
	}
	if (st->old_getrq || st->old_issue || st->old_frontmerge)
		kcompat_note("iotrace",
			     "block tracepoints with their pre-5.11 arguments (request queue "
			     "first):%s%s%s",
			     st->old_getrq ? " block_getrq" : "",
			     st->old_issue ? " block_rq_issue" : "",
			     st->old_frontmerge ? " block_bio_frontmerge" : "");
	st->dirty_tracking = btf_has_tracepoint(btf, "writeback_dirty_folio") ||
			     btf_has_tracepoint(btf, "writeback_dirty_page");
	st->fs_level = btf_has_tracepoint(btf, "sys_exit");
	if (!st->fs_level)
		snprintf(
			st->fs_error, sizeof(st->fs_error),
			"this kernel has no sys_exit tracepoint (CONFIG_HAVE_SYSCALL_TRACEPOINTS)");
	err = bpf_skel_load(&skel, &st->use_btf, &iotrace_skel_ops,
			    &(struct bpf_load_opts){.owner = "iotrace",
						    .configure = configure,
						    .ctx = st,
						    .drop_missing_tps = true});
	if (err)
		goto cleanup;
	st->skel = skel;
	if (!st->fs_level)
		log_warn("iotrace: file-system level IO unavailable: %s", st->fs_error);
	*out = st;
	return 0;
cleanup:
	free(st);
	return err;
}

/* ------------------------------------------------------------ the window */

static void iotrace_stop(void *state)
{
	struct iotrace_state *st = state;

	if (!st->links.n)
		return;
	bpf_links_detach(&st->links);
	st->stopped_ns = now_mono_ns();
}

static void iotrace_clear(struct iotrace_state *st)
{
	struct iotrace_bpf *s = st->skel;

	map_clear(s->maps.fsio);
	map_clear(s->maps.diskio);
	map_clear(s->maps.files);
	map_clear(s->maps.procs);
	map_clear(s->maps.dirtiers);
	map_clear(s->maps.pending);
	map_clear(s->maps.inflight);
	map_clear(s->maps.devs);
	map_clear(s->maps.blocked_start);
	map_clear(s->maps.blocked);
	stackstore_reset(s->obj);
}

static enum bpf_attach_choice attach_choice(const struct bpf_program *prog, void *ctx)
{
	const struct iotrace_state *st = ctx;

	if (is_blocked_prog(prog) && !st->params.v[P_BLOCKED_STACKS])
		return BPF_ATTACH_SKIP;
	return is_fs_prog(prog) ? BPF_ATTACH_OPTIONAL : BPF_ATTACH_REQUIRED;
}

static int iotrace_start(void *state, const struct capture_target *t,
			 const struct capture_params *p)
{
	struct iotrace_state *st = state;
	struct capture_filter f;
	int err;

	iotrace_clear(st);
	percpu_counters_zero(st->skel->maps.stats, IO_STAT_MAX);
	err = capture_filter_fill(&f, t, st->env.cgroups);
	if (err)
		return err;
	err = capture_filter_set(st->skel->maps.filter, &f);
	if (err)
		return err;
	st->params = *p;
	st->target_kind = t->kind;
	st->attach_note[0] = '\0';
	st->skel->bss->blocked_threshold_ns = p->v[P_BLOCKED_THRESHOLD] * 1000000ull;
	err = bpf_links_attach(&st->links, st->skel->obj, attach_choice, st, "iotrace");
	if (err)
		return err;
	if (st->links.note[0]) /* the disk level still works without them */
		snprintf(st->attach_note, sizeof(st->attach_note),
			 "file-system level unavailable: %s", st->links.note);
	st->started_ns = now_mono_ns();
	st->stopped_ns = 0;
	return 0;
}

/* ------------------------------------------------------------ reading out */

struct row {
	struct io_key key;
	struct io_fs_val fs;
	struct io_disk_val disk;
};

struct proc_sum {
	uint32_t tgid;
	struct row total;
	struct row **files;
	size_t nfiles;
};

struct file_ent;

struct reader {
	struct iotrace_state *st;
	struct mounts *mounts;
	uint64_t window_ms;
	struct row *rows;
	size_t nrows, caprows;
	struct file_ent *files;
	size_t nfiles;
};

static int cmp_key(const void *a, const void *b)
{
	const struct io_key *x = a, *y = b;

	if (x->tgid != y->tgid)
		return x->tgid < y->tgid ? -1 : 1;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->kind < y->kind ? -1 : x->kind > y->kind;
}

static struct row *row_add(struct reader *r, const struct io_key *k)
{
	if (r->nrows == r->caprows) {
		size_t cap = r->caprows ? r->caprows * 2 : 256;
		struct row *p = realloc(r->rows, cap * sizeof(*p));

		if (!p)
			return NULL;
		r->rows = p;
		r->caprows = cap;
	}
	memset(&r->rows[r->nrows], 0, sizeof(r->rows[0]));
	r->rows[r->nrows].key = *k;
	return &r->rows[r->nrows++];
}

static void disk_merge(struct io_disk_val *into, const struct io_disk_val *v)
{
	for (int d = 0; d < 2; d++) {
		into->bytes[d] += v->bytes[d];
		into->requests[d] += v->requests[d];
	}
	into->q2c_sum_ns += v->q2c_sum_ns;
	into->d2c_sum_ns += v->d2c_sum_ns;
	into->q2c_max_ns = MAX(into->q2c_max_ns, v->q2c_max_ns);
	into->d2c_max_ns = MAX(into->d2c_max_ns, v->d2c_max_ns);
	into->writeback_bytes += v->writeback_bytes;
	if (v->disk)
		into->disk = v->disk;
}

static void fs_merge(struct io_fs_val *into, const struct io_fs_val *v)
{
	for (int d = 0; d < 2; d++) {
		into->bytes[d] += v->bytes[d];
		into->calls[d] += v->calls[d];
	}
}

/* Every (process, file) of both levels, merged by key. */
static int read_rows(struct reader *r)
{
	struct iotrace_bpf *s = r->st->skel;
	int ncpu = libbpf_num_possible_cpus();
	struct io_fs_val *percpu;
	struct io_key key, next;
	int fd;
	size_t merged = 0;

	if (ncpu <= 0)
		return -EINVAL;
	percpu = calloc((size_t)ncpu, sizeof(*percpu));
	if (!percpu)
		return -ENOMEM;
	fd = bpf_map__fd(s->maps.fsio);
	for (int more = bpf_map_get_next_key(fd, NULL, &next) == 0; more;
	     more = bpf_map_get_next_key(fd, &key, &next) == 0) {
		struct row *row;

		key = next;
		if (bpf_map_lookup_elem(fd, &key, percpu))
			continue;
		row = row_add(r, &key);
		if (!row) {
			free(percpu);
			return -ENOMEM;
		}
		for (int c = 0; c < ncpu; c++)
			fs_merge(&row->fs, &percpu[c]);
	}
	free(percpu);
	fd = bpf_map__fd(s->maps.diskio);
	for (int more = bpf_map_get_next_key(fd, NULL, &next) == 0; more;
	     more = bpf_map_get_next_key(fd, &key, &next) == 0) {
		struct io_disk_val v;
		struct row *row;

		key = next;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		row = row_add(r, &key);
		if (!row)
			return -ENOMEM;
		row->disk = v;
	}
	if (r->nrows)
		qsort(r->rows, r->nrows, sizeof(*r->rows), cmp_key);
	for (size_t i = 0; i < r->nrows; i++) {
		if (merged && cmp_key(&r->rows[merged - 1].key, &r->rows[i].key) == 0) {
			fs_merge(&r->rows[merged - 1].fs, &r->rows[i].fs);
			disk_merge(&r->rows[merged - 1].disk, &r->rows[i].disk);
			continue;
		}
		r->rows[merged++] = r->rows[i];
	}
	r->nrows = merged;
	return 0;
}

struct file_ent {
	struct io_file_key key;
	struct io_file_info info;
};

static int cmp_fkey(const void *a, const void *b)
{
	const struct io_file_key *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int read_files(struct reader *r)
{
	const struct bpf_map *m = r->st->skel->maps.files;
	size_t cap = bpf_map__max_entries(m), n = 0;
	struct io_file_key key, next;
	int fd = bpf_map__fd(m);
	struct file_ent *f;

	f = calloc(cap, sizeof(*f));
	if (!f)
		return -ENOMEM;
	for (int more = bpf_map_get_next_key(fd, NULL, &next) == 0; more && n < cap;
	     more = bpf_map_get_next_key(fd, &key, &next) == 0) {
		key = next;
		if (bpf_map_lookup_elem(fd, &key, &f[n].info))
			continue;
		f[n].info.path[sizeof(f[n].info.path) - 1] = '\0';
		f[n++].key = key;
	}
	if (n)
		qsort(f, n, sizeof(*f), cmp_fkey); /* the key comes first in file_ent */
	r->files = f;
	r->nfiles = n;
	return 0;
}

static const struct io_file_info *file_info(const struct reader *r, uint32_t dev, uint64_t ino)
{
	struct file_ent k = {.key = {.ino = ino, .dev = dev}};
	struct file_ent *hit;

	if (!r->nfiles)
		return NULL;
	hit = bsearch(&k, r->files, r->nfiles, sizeof(k), cmp_fkey);
	return hit ? &hit->info : NULL;
}

static uint64_t row_bytes(const struct row *w)
{
	return w->fs.bytes[0] + w->fs.bytes[1] + w->disk.bytes[0] + w->disk.bytes[1];
}

static int cmp_row_bytes_desc(const void *a, const void *b)
{
	const struct row *const *x = a, *const *y = b;
	uint64_t bx = row_bytes(*x), by = row_bytes(*y);

	return bx > by ? -1 : bx < by;
}

static int cmp_proc_bytes_desc(const void *a, const void *b)
{
	const struct proc_sum *x = a, *y = b;
	uint64_t bx = row_bytes(&x->total), by = row_bytes(&y->total);

	if (bx != by)
		return bx > by ? -1 : 1;
	return x->tgid < y->tgid ? -1 : x->tgid > y->tgid;
}

static uint64_t per_sec(const struct reader *r, uint64_t bytes)
{
	return bytes * 1000 / (r->window_ms ? r->window_ms : 1);
}

static uint64_t avg_us(uint64_t sum_ns, uint64_t n)
{
	return n ? sum_ns / n / 1000 : 0;
}

static void set_u(json_t *o, const char *k, uint64_t v)
{
	json_object_set_new(o, k, json_integer((json_int_t)v));
}

/* The numbers every process and file line carries. */
static void io_fields(const struct reader *r, json_t *o, const struct row *w)
{
	uint64_t nreq = w->disk.requests[0] + w->disk.requests[1];

	set_u(o, "fs_read_bytes", w->fs.bytes[IO_READ]);
	set_u(o, "fs_write_bytes", w->fs.bytes[IO_WRITE]);
	set_u(o, "fs_read_bps", per_sec(r, w->fs.bytes[IO_READ]));
	set_u(o, "fs_write_bps", per_sec(r, w->fs.bytes[IO_WRITE]));
	set_u(o, "fs_reads", w->fs.calls[IO_READ]);
	set_u(o, "fs_writes", w->fs.calls[IO_WRITE]);
	set_u(o, "disk_read_bytes", w->disk.bytes[IO_READ]);
	set_u(o, "disk_write_bytes", w->disk.bytes[IO_WRITE]);
	set_u(o, "disk_read_bps", per_sec(r, w->disk.bytes[IO_READ]));
	set_u(o, "disk_write_bps", per_sec(r, w->disk.bytes[IO_WRITE]));
	set_u(o, "disk_reads", w->disk.requests[IO_READ]);
	set_u(o, "disk_writes", w->disk.requests[IO_WRITE]);
	set_u(o, "writeback_bytes", w->disk.writeback_bytes);
	set_u(o, "q2c_avg_us", avg_us(w->disk.q2c_sum_ns, nreq));
	set_u(o, "q2c_max_us", w->disk.q2c_max_ns / 1000);
	set_u(o, "d2c_avg_us", avg_us(w->disk.d2c_sum_ns, nreq));
	set_u(o, "d2c_max_us", w->disk.d2c_max_ns / 1000);
}

static const char *kind_name(uint32_t kind)
{
	switch (kind) {
	case IO_FILE:
		return "file";
	case IO_METADATA:
		return "metadata";
	case IO_ANON:
		return "anonymous";
	default:
		return "unknown";
	}
}

static json_t *file_json(struct reader *r, const struct row *w)
{
	json_t *o = json_object();
	char path[PATH_MAX + 32], devname[64], line[PATH_MAX + 320], dev[24];
	const char *source = "none";
	uint64_t nreq = w->disk.requests[0] + w->disk.requests[1];

	path[0] = '\0';
	if (w->key.kind == IO_FILE) {
		const struct io_file_info *fi = file_info(r, w->key.dev, w->key.ino);

		if (fi && fi->path[0]) {
			mounts_full_path(r->mounts, w->key.dev, fi->path, path, sizeof(path));
			source = "dentry";
			if (fi->flags & IO_PATH_TRUNCATED)
				json_object_set_new(o, "path_truncated", json_true());
		}
		if (!path[0] && proc_fd_path(PROC_ROOT, (int)w->key.tgid, w->key.dev, w->key.ino,
					     path, sizeof(path)) == 0)
			source = "proc_fd";
		if (!path[0])
			snprintf(path, sizeof(path), "[inode %" PRIu64 "]", (uint64_t)w->key.ino);
	} else {
		snprintf(path, sizeof(path), "[%s]", kind_name(w->key.kind));
	}
	device_name(r->mounts, w->key.dev, devname, sizeof(devname));
	snprintf(dev, sizeof(dev), "%u:%u", KDEV_MAJOR(w->key.dev), KDEV_MINOR(w->key.dev));
	json_object_set_new(o, "path", json_string_clean(path));
	json_object_set_new(o, "path_source", json_string_clean(source));
	json_object_set_new(o, "kind", json_string_clean(kind_name(w->key.kind)));
	json_object_set_new(o, "device", json_string_clean(dev));
	json_object_set_new(o, "device_name", json_string_clean(devname));
	set_u(o, "inode", w->key.ino);
	if (w->disk.disk && w->disk.disk != w->key.dev) {
		char disk[24];

		snprintf(disk, sizeof(disk), "%u:%u", KDEV_MAJOR(w->disk.disk),
			 KDEV_MINOR(w->disk.disk));
		json_object_set_new(o, "disk", json_string_clean(disk));
		device_name(r->mounts, w->disk.disk, devname, sizeof(devname));
		json_object_set_new(o, "disk_name", json_string_clean(devname));
	}
	io_fields(r, o, w);
	/* the one-line form SREs know from HuaTuo's file_stat */
	snprintf(line, sizeof(line),
		 "[%s], fs_read=%" PRIu64 "b/s, fs_write=%" PRIu64 "b/s, disk_read=%" PRIu64
		 "b/s, disk_write=%" PRIu64 "b/s, q2c=%" PRIu64 "us, d2c=%" PRIu64
		 "us, inode=%" PRIu64 ", %s",
		 dev, per_sec(r, w->fs.bytes[IO_READ]), per_sec(r, w->fs.bytes[IO_WRITE]),
		 per_sec(r, w->disk.bytes[IO_READ]), per_sec(r, w->disk.bytes[IO_WRITE]),
		 avg_us(w->disk.q2c_sum_ns, nreq), avg_us(w->disk.d2c_sum_ns, nreq),
		 (uint64_t)w->key.ino, path);
	json_object_set_new(o, "file_stat", json_string_clean(line));
	return o;
}

static void proc_identity(struct reader *r, json_t *o, uint32_t tgid)
{
	struct io_proc_info pi;
	char path[512];
	int fd = bpf_map__fd(r->st->skel->maps.procs);

	json_object_set_new(o, "pid", json_integer(tgid));
	if (bpf_map_lookup_elem(fd, &tgid, &pi) == 0) {
		pi.comm[sizeof(pi.comm) - 1] = '\0';
		json_object_set_new(o, "comm", json_string_clean(pi.comm));
		cgroup_json_set(o, r->st->env.cgroups, pi.cgroup_id);
	} else {
		char *text = NULL;

		snprintf(path, sizeof(path), PROC_ROOT "/%u/comm", tgid);
		if (read_file(path, 64, &text, NULL) == 0) {
			text[strcspn(text, "\n")] = '\0';
			json_object_set_new(o, "comm", json_string_clean(text));
		} else {
			json_object_set_new(o, "comm", json_string("?"));
		}
		free(text);
	}
}

static json_t *processes_json(struct reader *r, uint64_t *omitted)
{
	unsigned top_p = (unsigned)r->st->params.v[P_TOP_PROCESSES];
	unsigned top_f = (unsigned)r->st->params.v[P_TOP_FILES];
	struct proc_sum *procs = NULL;
	struct row **ptrs = NULL;
	size_t nprocs = 0, nptrs = 0;
	json_t *arr = json_array();

	*omitted = 0;
	if (!r->nrows)
		return arr;
	procs = calloc(r->nrows, sizeof(*procs));
	ptrs = calloc(r->nrows, sizeof(*ptrs));
	if (!procs || !ptrs)
		goto cleanup;
	/* rows are sorted by tgid first: one process is a run of rows */
	for (size_t i = 0; i < r->nrows; i++) {
		struct row *w = &r->rows[i];
		struct proc_sum *p;

		/* the agent reading /proc and writing the incident is not the culprit;
		 * it is listed only when it is the target itself */
		if (w->key.tgid == (uint32_t)getpid() && r->st->target_kind != TARGET_PID)
			continue;
		ptrs[nptrs] = w;
		if (!nprocs || procs[nprocs - 1].tgid != w->key.tgid) {
			p = &procs[nprocs++];
			p->tgid = w->key.tgid;
			p->files = &ptrs[nptrs];
		}
		nptrs++;
		p = &procs[nprocs - 1];
		p->nfiles++;
		fs_merge(&p->total.fs, &w->fs);
		disk_merge(&p->total.disk, &w->disk);
	}
	qsort(procs, nprocs, sizeof(*procs), cmp_proc_bytes_desc);
	for (size_t i = 0; i < nprocs; i++) {
		struct proc_sum *p = &procs[i];
		json_t *o, *files;

		if (i >= top_p) {
			(*omitted)++;
			continue;
		}
		o = json_object();
		proc_identity(r, o, p->tgid);
		io_fields(r, o, &p->total);
		qsort(p->files, p->nfiles, sizeof(*p->files), cmp_row_bytes_desc);
		files = json_array();
		for (size_t j = 0; j < p->nfiles && j < top_f; j++)
			json_array_append_new(files, file_json(r, p->files[j]));
		json_object_set_new(o, "files", files);
		set_u(o, "files_omitted", p->nfiles > top_f ? p->nfiles - top_f : 0);
		json_array_append_new(arr, o);
	}
cleanup:
	free(procs);
	free(ptrs);
	return arr;
}

static json_t *devices_json(struct reader *r)
{
	int fd = bpf_map__fd(r->st->skel->maps.devs);
	json_t *arr = json_array();
	uint32_t key, next;

	for (int more = bpf_map_get_next_key(fd, NULL, &next) == 0; more;
	     more = bpf_map_get_next_key(fd, &key, &next) == 0) {
		struct io_dev_val v;
		uint64_t n;
		char dev[24], name[64];
		json_t *o;

		key = next;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		n = v.requests[0] + v.requests[1];
		o = json_object();
		snprintf(dev, sizeof(dev), "%u:%u", KDEV_MAJOR(key), KDEV_MINOR(key));
		device_name(r->mounts, key, name, sizeof(name));
		json_object_set_new(o, "device", json_string_clean(dev));
		json_object_set_new(o, "device_name", json_string_clean(name));
		set_u(o, "read_bytes", v.bytes[IO_READ]);
		set_u(o, "write_bytes", v.bytes[IO_WRITE]);
		set_u(o, "reads", v.requests[IO_READ]);
		set_u(o, "writes", v.requests[IO_WRITE]);
		set_u(o, "q2c_avg_us", avg_us(v.q2c_sum_ns, n));
		set_u(o, "q2c_max_us", v.q2c_max_ns / 1000);
		set_u(o, "d2c_avg_us", avg_us(v.d2c_sum_ns, n));
		set_u(o, "d2c_max_us", v.d2c_max_ns / 1000);
		json_array_append_new(arr, o);
	}
	return arr;
}

/* Every process's IO into the capture's consumers: the time its block
 * requests took from queued to completed (what its IO cost the disk and
 * itself) and the bytes it moved; blocked_json adds its waits for IO. */
static void consumers_io(struct reader *r, struct consumers *c)
{
	int fd = bpf_map__fd(r->st->skel->maps.procs);

	/* rows are sorted by tgid: one process is a run of rows */
	for (size_t i = 0; i < r->nrows;) {
		uint32_t tgid = r->rows[i].key.tgid;
		uint64_t q2c_ns = 0, bytes = 0;
		struct io_proc_info pi = {0};

		for (; i < r->nrows && r->rows[i].key.tgid == tgid; i++) {
			q2c_ns += r->rows[i].disk.q2c_sum_ns;
			bytes += row_bytes(&r->rows[i]);
		}
		if (tgid == (uint32_t)getpid() && r->st->target_kind != TARGET_PID)
			continue;
		bpf_map_lookup_elem(fd, &tgid, &pi);
		pi.comm[sizeof(pi.comm) - 1] = '\0';
		consumers_add(c, tgid, tgid, pi.comm[0] ? pi.comm : NULL, pi.cgroup_id,
			      q2c_ns / 1000, bytes);
	}
}

/* Stacks of tasks blocked on IO, as a stackset valued in microseconds blocked. */
static int blocked_json(struct reader *r, struct capture_result *out, json_t **obj, uint64_t *lost,
			struct consumers *cons)
{
	struct iotrace_state *st = r->st;
	const struct agent_config *cfg = st->env.cfg;
	const struct bpf_map *m = st->skel->maps.blocked;
	uint64_t *kframes = NULL, *uframes = NULL, events = 0, max_ns = 0;
	struct stackset_render_opts ro = {
		.top_n = (unsigned)cfg->capture.top_stacks,
		.folded_max = cfg->local.max_incident_size / 4,
		.value_key = "blocked_us",
		.sym = st->env.sym,
		.cgroups = st->env.cgroups,
		.consumers = cons,
	};
	struct stackset_render rr = {0};
	struct io_blocked_key key, next;
	struct stackset *ss = NULL;
	int fd = bpf_map__fd(m), err;
	json_t *o;

	*obj = NULL;
	err = stackset_new(&ss, bpf_map__max_entries(m));
	if (err)
		return err;
	kframes = calloc(st->stack_depth, sizeof(*kframes));
	uframes = calloc(st->stack_depth, sizeof(*uframes));
	if (!kframes || !uframes) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (int more = bpf_map_get_next_key(fd, NULL, &next) == 0; more;
	     more = bpf_map_get_next_key(fd, &key, &next) == 0) {
		struct io_blocked_val v;
		struct stack_sample s = {0};
		unsigned skip;

		key = next;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		if (stack_map_read(st->skel->maps.stacks, key.kern_stack_id, kframes,
				   st->stack_depth, &s.nk) ||
		    stack_map_read(st->skel->maps.stacks, key.user_stack_id, uframes,
				   st->stack_depth, &s.nu))
			(*lost)++;
		key.comm[sizeof(key.comm) - 1] = '\0';
		skip = stack_bpf_frames(st->env.sym, kframes, s.nk);
		s.tgid = key.tgid;
		s.pid = key.pid;
		s.cgroup_id = key.cgroup_id;
		s.comm = key.comm;
		s.kstack = kframes + skip;
		s.nk -= skip;
		s.ustack = uframes;
		s.value = v.total_ns / 1000;
		events += v.count;
		max_ns = MAX(max_ns, v.max_ns);
		stackset_add(ss, &s);
	}
	err = stackset_render(ss, &ro, &rr);
	if (err)
		goto cleanup;
	*lost += stackset_dropped(ss);
	o = json_object();
	set_u(o, "threshold_ms", st->params.v[P_BLOCKED_THRESHOLD]);
	set_u(o, "events", events);
	set_u(o, "total_us", rr.total);
	set_u(o, "max_us", max_ns / 1000);
	set_u(o, "distinct_stacks", stackset_count(ss));
	json_object_set_new(o, "top_stacks", rr.top);
	rr.top = NULL;
	if (rr.folded_len) {
		err = capture_result_add_artifact(out, "iotrace-blocked.folded", rr.folded,
						  rr.folded_len);
		rr.folded = NULL;
	}
	*obj = o;
	err = 0;
cleanup:
	stackset_render_clear(&rr);
	stackset_free(&ss);
	free(kframes);
	free(uframes);
	return err;
}

static int iotrace_collect(void *state, struct capture_result *out)
{
	struct iotrace_state *st = state;
	uint64_t stats[IO_STAT_MAX] = {0}, omitted = 0, stack_lost = 0;
	struct reader r = {.st = st};
	json_t *lost, *blocked = NULL;
	struct consumers *cons = NULL;
	int err;

	if (!st->stopped_ns)
		st->stopped_ns = now_mono_ns();
	r.window_ms = (st->stopped_ns - st->started_ns) / 1000000;
	percpu_counters_read(st->skel->maps.stats, stats, IO_STAT_MAX);
	if (mounts_new(&r.mounts, PROC_ROOT "/self/mountinfo"))
		log_warn("iotrace: no mount table: paths stay relative to their file system");
	err = read_rows(&r);
	if (!err)
		err = read_files(&r);
	if (!err)
		err = consumers_new(&cons, &(struct consumers_opts){
						   .measure = "io_us",
						   .measure2 = "io_bytes",
						   .top_n = CONSUMERS_TOP,
						   .stacks_per = CONSUMERS_STACKS,
						   .sym = st->env.sym,
						   .cgroups = st->env.cgroups,
					   });
	if (err)
		goto cleanup;
	consumers_io(&r, cons);

	out->data = json_object();
	json_object_set_new(out->data, "window_ms", json_integer((json_int_t)r.window_ms));
	json_object_set_new(out->data, "fs_level",
			    json_boolean(st->fs_level && !st->attach_note[0]));
	if (!st->fs_level)
		json_object_set_new(out->data, "fs_level_error", json_string_clean(st->fs_error));
	else if (st->attach_note[0])
		json_object_set_new(out->data, "fs_level_error",
				    json_string_clean(st->attach_note));
	json_object_set_new(out->data, "writeback_attribution", json_boolean(st->dirty_tracking));
	json_object_set_new(out->data, "processes", processes_json(&r, &omitted));
	set_u(out->data, "processes_omitted", omitted);
	json_object_set_new(out->data, "devices", devices_json(&r));
	if (st->params.v[P_BLOCKED_STACKS]) {
		err = blocked_json(&r, out, &blocked, &stack_lost, cons);
		if (err)
			goto cleanup;
		json_object_set_new(out->data, "blocked", blocked);
	}
	json_object_set_new(out->data, "consumers", consumers_json(cons));
	set_u(out->data, "fs_calls", stats[IO_STAT_FS_CALLS]);
	set_u(out->data, "disk_requests", stats[IO_STAT_DISK_REQUESTS]);
	set_u(out->data, "writeback_requests", stats[IO_STAT_WRITEBACK]);
	set_u(out->data, "writeback_unattributed", stats[IO_STAT_WRITEBACK_ANON]);

	lost = json_object();
	set_u(lost, "fs_keys_full", stats[IO_STAT_FS_KEYS_FULL]);
	set_u(lost, "disk_keys_full", stats[IO_STAT_DISK_KEYS_FULL]);
	set_u(lost, "inflight_full", stats[IO_STAT_PENDING_FULL]);
	set_u(lost, "files_unnamed", stats[IO_STAT_FILES_FULL]);
	set_u(lost, "processes_unnamed", stats[IO_STAT_PROCS_FULL]);
	set_u(lost, "devices_full", stats[IO_STAT_DEVS_FULL]);
	set_u(lost, "blocked_full",
	      stats[IO_STAT_BLOCKED_FULL] + stats[IO_STAT_BLOCKED_START_FULL]);
	set_u(lost, "stacks", stats[IO_STAT_STACK_LOST] + stack_lost);
	json_object_set_new(out->data, "lost", lost);
	out->lost_events = stats[IO_STAT_FS_KEYS_FULL] + stats[IO_STAT_DISK_KEYS_FULL] +
			   stats[IO_STAT_PENDING_FULL] + stats[IO_STAT_FILES_FULL] +
			   stats[IO_STAT_PROCS_FULL] + stats[IO_STAT_DEVS_FULL] +
			   stats[IO_STAT_BLOCKED_FULL] + stats[IO_STAT_BLOCKED_START_FULL] +
			   stats[IO_STAT_STACK_LOST] + stack_lost;
	out->partial = out->lost_events > 0;
cleanup:
	consumers_free(&cons);
	mounts_free(&r.mounts);
	free(r.rows);
	free(r.files);
	iotrace_clear(st);
	return err;
}

static void iotrace_release(void *state)
{
	struct iotrace_state *st = state;

	if (!st)
		return;
	iotrace_stop(st);
	bpf_skel_unload(st->skel, &iotrace_skel_ops, "iotrace");
	free(st);
}

const struct capture_ops iotrace_capture = {
	.kind = "iotrace",
	.help = "IO per process x file (fs and disk bytes/s, q2c/d2c latency) and stacks blocked "
		"on IO",
	.params = iotrace_params,
	.nparams = sizeof(iotrace_params) / sizeof(iotrace_params[0]),
	.prepare = iotrace_prepare,
	.start = iotrace_start,
	.stop = iotrace_stop,
	.collect = iotrace_collect,
	.release = iotrace_release,
};
