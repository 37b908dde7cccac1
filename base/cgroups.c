// SPDX-License-Identifier: GPL-2.0-only
#include "base/cgroups.h"

#include <bpf/btf.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "base/log.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "base/sanitize.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif

#define ID_CACHE_MAX   65536
#define WALK_MAX_DEPTH 16
#define RESCAN_MIN_NS  1000000000ull /* a miss rescans the tree at most once a second */
#define WATCH_MAX_DIRS 65536	     /* directories one scan of the watched set visits at most */
#define WATCH_PATH_MAX 400	     /* longer paths would not fit a series' label key */

struct id_entry {
	uint64_t id;
	char *path;
};

struct cgroups {
	enum cgroup_layout layout;
	char root[256];
	char id_root[300];
	char ctrl_root[CG_CTRL_COUNT][300]; /* "" when absent */
	int bpf_subsys;
	struct id_entry *cache;
	size_t ncache;
	uint64_t last_scan_ns;
	/* the watched set */
	unsigned watch_max;
	bool watch_external; /* fed by cgroups_watch_update(), not walked */
	uint64_t watch_period_ms;
	uint64_t watch_last_ms;
	bool watch_scanned;
	uint64_t watch_gen;
	uint64_t next_serial;
	struct cgroup_entry *watch; /* sorted by path */
	unsigned nwatch;
	struct cgroup_entry **by_id; /* entries with an id, sorted by id */
	unsigned nby_id;
	struct cgroups_watch_stats stats;
};

static bool is_fs(const char *path, long magic)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && (long)sf.f_type == magic;
}

/* Index of cpu_cgrp_id in this kernel's enum cgroup_subsys_id, from BTF. */
static int cpu_subsys_index(void)
{
	struct btf *btf = btf__load_vmlinux_btf();
	int idx = -1;

	if (!btf)
		return 1; /* the value on every kernel since 4.x */
	for (unsigned id = 1; id < btf__type_cnt(btf); id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_enum *e;

		if (!btf_is_enum(t) ||
		    strcmp(btf__name_by_offset(btf, t->name_off), "cgroup_subsys_id"))
			continue;
		e = btf_enum(t);
		for (unsigned i = 0; i < btf_vlen(t); i++)
			if (!strcmp(btf__name_by_offset(btf, e[i].name_off), "cpu_cgrp_id"))
				idx = e[i].val;
		break;
	}
	btf__free(btf);
	return idx < 0 ? 1 : idx;
}

static const char *const ctrl_dir[CG_CTRL_COUNT] = {
	[CG_CTRL_CPU] = "cpu",	     [CG_CTRL_CPUACCT] = "cpuacct", [CG_CTRL_MEMORY] = "memory",
	[CG_CTRL_CPUSET] = "cpuset", [CG_CTRL_V2] = "unified",
};

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Fills the controller mounts for a layout; forced: trust directories (tests). */
static void find_ctrl_roots(struct cgroups *cg, bool forced)
{
	for (int c = 0; c < CG_CTRL_COUNT; c++) {
		char path[300];
		bool ok;

		cg->ctrl_root[c][0] = '\0';
		if (cg->layout == CGROUP_NONE)
			continue;
		if (c == CG_CTRL_V2 && cg->layout == CGROUP_V2) {
			snprintf(cg->ctrl_root[c], sizeof(cg->ctrl_root[c]), "%s", cg->root);
			continue;
		}
		if (c != CG_CTRL_V2 && cg->layout == CGROUP_V2)
			continue;
		if (c == CG_CTRL_V2 && cg->layout == CGROUP_V1)
			continue;
		/* "cpu" is often a symlink to "cpu,cpuacct": stat follows it */
		snprintf(path, sizeof(path), "%s/%s", cg->root, ctrl_dir[c]);
		if (forced)
			ok = is_dir(path);
		else
			ok = is_fs(path,
				   c == CG_CTRL_V2 ? CGROUP2_SUPER_MAGIC : CGROUP_SUPER_MAGIC);
		if (ok)
			snprintf(cg->ctrl_root[c], sizeof(cg->ctrl_root[c]), "%s", path);
	}
}

static struct cgroups *cgroups_alloc(const char *root)
{
	struct cgroups *cg = calloc(1, sizeof(*cg));

	if (!cg)
		return NULL;
	snprintf(cg->root, sizeof(cg->root), "%s", root);
	cg->bpf_subsys = -1;
	cg->next_serial = 1;
	return cg;
}

int cgroups_new(struct cgroups **out, const char *root)
{
	struct cgroups *cg = cgroups_alloc(root);
	char path[300];

	if (!cg)
		return -ENOMEM;
	if (is_fs(root, CGROUP2_SUPER_MAGIC)) {
		cg->layout = CGROUP_V2;
		snprintf(cg->id_root, sizeof(cg->id_root), "%s", root);
	} else {
		/* v1: controllers mounted below root; "cpu" may be a symlink to "cpu,cpuacct" */
		snprintf(path, sizeof(path), "%s/cpu", root);
		if (is_fs(path, CGROUP_SUPER_MAGIC)) {
			snprintf(path, sizeof(path), "%s/unified", root);
			cg->layout = is_fs(path, CGROUP2_SUPER_MAGIC) ? CGROUP_HYBRID : CGROUP_V1;
			snprintf(cg->id_root, sizeof(cg->id_root), "%s/cpu", root);
			cg->bpf_subsys = cpu_subsys_index();
		} else {
			cg->layout = CGROUP_NONE;
			snprintf(cg->id_root, sizeof(cg->id_root), "%s", root);
		}
	}
	find_ctrl_roots(cg, false);
	*out = cg;
	return 0;
}

int cgroups_new_at(struct cgroups **out, const char *root, enum cgroup_layout layout)
{
	struct cgroups *cg = cgroups_alloc(root);

	if (!cg)
		return -ENOMEM;
	cg->layout = layout;
	if (layout == CGROUP_V1 || layout == CGROUP_HYBRID) {
		snprintf(cg->id_root, sizeof(cg->id_root), "%s/cpu", root);
		cg->bpf_subsys = 1;
	} else {
		snprintf(cg->id_root, sizeof(cg->id_root), "%s", root);
	}
	find_ctrl_roots(cg, true);
	*out = cg;
	return 0;
}

static void cache_clear(struct cgroups *cg)
{
	for (size_t i = 0; i < cg->ncache; i++)
		free(cg->cache[i].path);
	free(cg->cache);
	cg->cache = NULL;
	cg->ncache = 0;
}

void cgroups_free(struct cgroups **pcg)
{
	struct cgroups *cg = pcg ? *pcg : NULL;

	if (!cg)
		return;
	cache_clear(cg);
	for (unsigned i = 0; i < cg->nwatch; i++)
		free(cg->watch[i].path);
	free(cg->watch);
	free(cg->by_id);
	free(cg);
	*pcg = NULL;
}

enum cgroup_layout cgroups_layout(const struct cgroups *cg)
{
	return cg->layout;
}

const char *cgroups_layout_name(enum cgroup_layout l)
{
	switch (l) {
	case CGROUP_V2:
		return "v2";
	case CGROUP_V1:
		return "v1";
	case CGROUP_HYBRID:
		return "hybrid";
	case CGROUP_NONE:
		return "none";
	}
	return "?";
}

int cgroups_bpf_subsys(const struct cgroups *cg)
{
	return cg->bpf_subsys;
}

const char *cgroups_id_root(const struct cgroups *cg)
{
	return cg->id_root;
}

const char *cgroups_ctrl_root(const struct cgroups *cg, enum cgroup_ctrl c)
{
	if ((unsigned)c >= CG_CTRL_COUNT || !cg->ctrl_root[c][0])
		return NULL;
	return cg->ctrl_root[c];
}

int cgroups_id_of(const struct cgroups *cg, const char *path, uint64_t *id)
{
	char full[1024];
	struct stat st;

	if (snprintf(full, sizeof(full), "%s%s", cg->id_root, path) >= (int)sizeof(full))
		return -ENAMETOOLONG;
	if (stat(full, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	*id = st.st_ino;
	return 0;
}

static int id_entry_cmp(const void *a, const void *b)
{
	const struct id_entry *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static void scan_dir(struct cgroups *cg, int dirfd, char *rel, size_t rel_len, unsigned depth,
		     size_t *cap)
{
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (fstat(dirfd, &st) == 0 && cg->ncache < ID_CACHE_MAX) {
		if (cg->ncache == *cap) {
			size_t ncap = *cap ? *cap * 2 : 256;
			struct id_entry *p = realloc(cg->cache, ncap * sizeof(*p));

			if (!p)
				return;
			cg->cache = p;
			*cap = ncap;
		}
		cg->cache[cg->ncache].id = st.st_ino;
		cg->cache[cg->ncache].path = strdup(rel_len ? rel : "/");
		if (cg->cache[cg->ncache].path)
			cg->ncache++;
	}
	if (depth >= WALK_MAX_DEPTH)
		return;
	d = fdopendir(dup(dirfd));
	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t nl;
		int fd;

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		nl = strlen(de->d_name);
		if (rel_len + 1 + nl >= 1024)
			continue;
		fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		rel[rel_len] = '/';
		memcpy(rel + rel_len + 1, de->d_name, nl + 1);
		scan_dir(cg, fd, rel, rel_len + 1 + nl, depth + 1, cap);
		rel[rel_len] = '\0';
		close(fd);
	}
	closedir(d);
}

static void rescan(struct cgroups *cg)
{
	char rel[1024] = "";
	size_t cap = 0;
	int fd;

	cache_clear(cg);
	cg->last_scan_ns = now_mono_ns();
	fd = open(cg->id_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	scan_dir(cg, fd, rel, 0, 0, &cap);
	close(fd);
	if (cg->ncache)
		qsort(cg->cache, cg->ncache, sizeof(*cg->cache), id_entry_cmp);
}

static const struct id_entry *cache_find(const struct cgroups *cg, uint64_t id)
{
	struct id_entry key = {.id = id};

	if (!cg->cache)
		return NULL;
	return bsearch(&key, cg->cache, cg->ncache, sizeof(*cg->cache), id_entry_cmp);
}

int cgroups_path_of(struct cgroups *cg, uint64_t id, char *buf, size_t len)
{
	const struct id_entry *e = cache_find(cg, id);

	if (!e && now_mono_ns() - cg->last_scan_ns >= RESCAN_MIN_NS) {
		rescan(cg);
		e = cache_find(cg, id);
	}
	if (!e)
		return -ENOENT;
	return copy_str(buf, len, e->path);
}

void cgroup_path_identity(const char *path, char *container_id, size_t cid_len, char *pod_uid,
			  size_t pod_len)
{
	const char *p;

	if (cid_len)
		container_id[0] = '\0';
	if (pod_len)
		pod_uid[0] = '\0';
	/* container id: the last 64-hex run in the path, as in
	 * /docker/<id>, docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
	 * /kubepods/burstable/pod<uid>/<id>: a whole run of hex digits, lower case,
	 * found run by run (the path is tenant-named and up to PATH_MAX long) */
	for (p = path; *p; p++) {
		const char *q = p;
		bool upper = false;

		while (isxdigit((unsigned char)*q))
			upper |= isupper((unsigned char)*q++);
		if (q - p == 64 && !upper)
			snprintf(container_id, cid_len, "%.64s", p);
		if (q > p)
			p = q - 1;
	}
	/* pod uid: "pod" followed by a uuid with '-' (cgroupfs) or '_' (systemd) */
	p = strstr(path, "pod");
	while (p) {
		const char *u = p + 3;
		char uid[37];
		size_t i;

		for (i = 0; i < 36 && u[i]; i++) {
			bool dash = i == 8 || i == 13 || i == 18 || i == 23;

			if (dash ? (u[i] != '-' && u[i] != '_') : !isxdigit((unsigned char)u[i]))
				break;
			uid[i] = dash ? '-' : u[i];
		}
		if (i == 36) {
			uid[36] = '\0';
			snprintf(pod_uid, pod_len, "%s", uid);
			break;
		}
		p = strstr(p + 3, "pod");
	}
}

const char *cgroup_path_qos(const char *path)
{
	char pod[37];
	char cid[65];

	cgroup_path_identity(path, cid, sizeof(cid), pod, sizeof(pod));
	if (!pod[0] || !strstr(path, "kubepods"))
		return "";
	/* cgroupfs driver: /kubepods/burstable/pod<uid>; systemd driver:
	 * /kubepods.slice/kubepods-burstable.slice/...; guaranteed pods sit
	 * directly below kubepods */
	if (strstr(path, "/burstable/") || strstr(path, "kubepods-burstable"))
		return "burstable";
	if (strstr(path, "/besteffort/") || strstr(path, "kubepods-besteffort"))
		return "besteffort";
	return "guaranteed";
}

/* ---- a process's cgroup ---- */

static bool list_has(const char *list, const char *end, const char *want)
{
	size_t wl = strlen(want);

	for (const char *t = list; t < end;) {
		const char *comma = memchr(t, ',', (size_t)(end - t));
		const char *te = comma ? comma : end;

		if ((size_t)(te - t) == wl && !memcmp(t, want, wl))
			return true;
		t = te + 1;
	}
	return false;
}

int cgroup_proc_parse(const char *text, const char *controller, char *buf, size_t len)
{
	const char *pick = NULL, *line = text;
	size_t plen = 0;

	while (*line) {
		const char *end = strchrnul(line, '\n');
		const char *c1 = memchr(line, ':', (size_t)(end - line));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;

		if (c2 && c2 == c1 + 1) {
			/* The unified hierarchy comes last. Its path runs to the end: a cgroup
			 * name may hold a newline, and what follows it is no line of its own. */
			if (!controller || !pick) {
				pick = c2 + 1;
				plen = strlen(pick);
				if (plen && pick[plen - 1] == '\n')
					plen--;
			}
			break;
		}
		if (c2 && controller && !pick && list_has(c1 + 1, c2, controller)) {
			pick = c2 + 1;
			plen = (size_t)(end - pick);
		}
		line = *end ? end + 1 : end;
	}
	if (!pick)
		return -ENOENT;
	if (plen >= len)
		return -ENAMETOOLONG;
	memcpy(buf, pick, plen);
	buf[plen] = '\0';
	return 0;
}

int cgroup_of_pid(const char *procfs, int pid, const char *controller, char *buf, size_t len)
{
	char path[PATH_MAX], *text = NULL;
	int err;

	snprintf(path, sizeof(path), "%s/%d/cgroup", procfs, pid);
	/* one line per hierarchy: a few KiB even with long paths */
	err = read_file(path, 65536, &text, NULL);
	if (err)
		return err == -ENOENT || err == -ESRCH ? -ENOENT : err;
	err = cgroup_proc_parse(text, controller, buf, len);
	free(text);
	return err;
}

bool cgroup_path_under(const char *path, const char *want)
{
	size_t wl = strlen(want);

	if (!strcmp(want, "/"))
		return true;
	return !strncmp(path, want, wl) && (path[wl] == '\0' || path[wl] == '/');
}

/* ---- the watched set ---- */

struct candidate {
	char *path;
	unsigned depth;
	bool workload; /* a container or a pod */
	uint64_t id;   /* in the id hierarchy, when the finder knew it */
};

struct scan_ctx {
	struct candidate *c;
	size_t n, cap;
	uint64_t dirs;
	uint64_t unsafe;
	bool v2;
	char rel[WATCH_PATH_MAX + 256];
};

static bool name_unsafe(const char *name)
{
	/* label keys use '\x1f' and '=': control characters would let a cgroup
	 * name forge labels, so such cgroups are not watched */
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

/* v2: "populated 1" in cgroup.events (covers descendants); v1: any pid in cgroup.procs. */
static bool dir_populated(int dirfd, bool v2)
{
	char buf[256];
	ssize_t n;
	int fd = openat(dirfd, v2 ? "cgroup.events" : "cgroup.procs", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, v2 ? sizeof(buf) - 1 : 1);
	close(fd);
	if (n <= 0)
		return false;
	if (!v2)
		return true;
	buf[n] = '\0';
	return strstr(buf, "populated 1") != NULL;
}

static int add_candidate(struct scan_ctx *s, size_t rel_len, unsigned depth)
{
	char cid[65], pod[37];

	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		struct candidate *p = realloc(s->c, ncap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->c = p;
		s->cap = ncap;
	}
	s->c[s->n].path = strndup(s->rel, rel_len);
	if (!s->c[s->n].path)
		return -ENOMEM;
	cgroup_path_identity(s->c[s->n].path, cid, sizeof(cid), pod, sizeof(pod));
	s->c[s->n].depth = depth;
	s->c[s->n].id = 0;
	s->c[s->n].workload = cid[0] || pod[0];
	s->n++;
	return 0;
}

/* Returns whether this cgroup (or, on v1, a descendant) holds tasks. */
static bool scan_tree(struct scan_ctx *s, int dirfd, size_t rel_len, unsigned depth)
{
	bool populated = dir_populated(dirfd, s->v2);
	struct dirent *de;
	DIR *d = NULL;
	int dfd = depth < WALK_MAX_DEPTH ? dup(dirfd) : -1;

	if (dfd >= 0 && !(d = fdopendir(dfd)))
		close(dfd);
	if (d) {
		while ((de = readdir(d)) && s->dirs < WATCH_MAX_DIRS) {
			size_t nl;
			int fd;

			if (de->d_type != DT_DIR || de->d_name[0] == '.')
				continue;
			nl = strlen(de->d_name);
			if (name_unsafe(de->d_name) || rel_len + 1 + nl > WATCH_PATH_MAX) {
				s->unsafe++;
				continue;
			}
			fd = openat(dirfd, de->d_name,
				    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (fd < 0)
				continue;
			s->dirs++;
			s->rel[rel_len] = '/';
			memcpy(s->rel + rel_len + 1, de->d_name, nl + 1);
			if (scan_tree(s, fd, rel_len + 1 + nl, depth + 1) && !s->v2)
				populated = true;
			s->rel[rel_len] = '\0';
			close(fd);
		}
		closedir(d);
	}
	if (depth > 0 && populated)
		add_candidate(s, rel_len, depth);
	return populated;
}

/* By path; of two with the same path, the one with a known id first. */
static int cand_path_cmp(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c)
		return c;
	return (y->id != 0) - (x->id != 0);
}

/* Workloads first, then shallower cgroups, then by path (stable across scans). */
static int cand_priority_cmp(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	if (x->workload != y->workload)
		return x->workload ? -1 : 1;
	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return strcmp(x->path, y->path);
}

static int entry_id_cmp(const void *a, const void *b)
{
	const struct cgroup_entry *x = *(struct cgroup_entry *const *)a;
	const struct cgroup_entry *y = *(struct cgroup_entry *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

void cgroups_watch_setup(struct cgroups *cg, unsigned max, uint64_t scan_period_ms)
{
	cg->watch_max = max;
	cg->watch_period_ms = scan_period_ms;
}

static void scan_root(struct scan_ctx *s, const char *root, bool v2)
{
	int fd;

	if (!root)
		return;
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	s->v2 = v2;
	s->rel[0] = '\0';
	scan_tree(s, fd, 0, 0);
	close(fd);
}

/* Builds the new set from sorted, de-duplicated candidates, keeping entries
 * (and their serials) for paths whose cgroup is still the same one. */
static int reconcile(struct cgroups *cg, struct candidate *c, size_t n)
{
	struct cgroup_entry *next = n ? calloc(n, sizeof(*next)) : NULL;
	struct cgroup_entry **by_id = n ? calloc(n, sizeof(*by_id)) : NULL;
	unsigned old = 0, nby_id = 0;
	bool changed = false;

	if (n && (!next || !by_id)) {
		free(next);
		free(by_id);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct cgroup_entry *e = &next[i];
		uint64_t id = 0;
		int cmp = 1;

		id = c[i].id;
		if (!id && cgroups_id_of(cg, c[i].path, &id))
			id = 0;
		while (old < cg->nwatch && (cmp = strcmp(cg->watch[old].path, c[i].path)) < 0) {
			free(cg->watch[old++].path); /* gone */
			cg->stats.vanished++;
			changed = true;
		}
		if (old < cg->nwatch && cmp == 0 && cg->watch[old].id == id) {
			*e = cg->watch[old++];
			free(c[i].path);
		} else {
			if (old < cg->nwatch && cmp == 0) {
				/* same path, another cgroup: removed and created again */
				free(cg->watch[old++].path);
				cg->stats.vanished++;
			}
			e->serial = cg->next_serial++;
			e->id = id;
			e->path = c[i].path;
			e->depth = c[i].depth;
			cgroup_path_identity(e->path, e->container_id, sizeof(e->container_id),
					     e->pod_uid, sizeof(e->pod_uid));
			e->qos = cgroup_path_qos(e->path);
			cg->stats.appeared++;
			changed = true;
		}
		c[i].path = NULL;
		if (e->id)
			by_id[nby_id++] = e;
	}
	while (old < cg->nwatch) {
		free(cg->watch[old++].path);
		cg->stats.vanished++;
		changed = true;
	}
	free(cg->watch);
	free(cg->by_id);
	cg->watch = next;
	cg->nwatch = (unsigned)n;
	cg->by_id = by_id;
	cg->nby_id = nby_id;
	if (nby_id)
		qsort(cg->by_id, nby_id, sizeof(*cg->by_id), entry_id_cmp);
	if (changed)
		cg->watch_gen++;
	return changed;
}

/* Sorts and de-duplicates candidates, keeps the max with the highest
 * priority and makes them the watched set. Takes the candidates' paths. */
static int choose(struct cgroups *cg, struct candidate *c, size_t count)
{
	size_t n = 0;
	int err;

	if (count)
		qsort(c, count, sizeof(*c), cand_path_cmp);
	for (size_t i = 0; i < count; i++) {
		if (n && strcmp(c[n - 1].path, c[i].path) == 0) {
			free(c[i].path);
			continue;
		}
		c[n++] = c[i];
	}
	cg->stats.candidates = (unsigned)n;
	cg->stats.dropped = n > cg->watch_max ? n - cg->watch_max : 0;
	if (n > cg->watch_max) {
		qsort(c, n, sizeof(*c), cand_priority_cmp);
		for (size_t i = cg->watch_max; i < n; i++)
			free(c[i].path);
		n = cg->watch_max;
		qsort(c, n, sizeof(*c), cand_path_cmp);
	}
	err = reconcile(cg, c, n);
	if (err < 0)
		for (size_t i = 0; i < n; i++)
			free(c[i].path);
	cg->stats.scans++;
	cg->stats.watched = cg->nwatch;
	return err;
}

int cgroups_watch_refresh(struct cgroups *cg, uint64_t now_ms, bool force)
{
	struct scan_ctx s = {0};
	uint64_t t0;
	int err;

	if (cg->watch_external)
		return 0;
	if (!force && cg->watch_scanned && now_ms - cg->watch_last_ms < cg->watch_period_ms)
		return 0;
	cg->watch_scanned = true;
	cg->watch_last_ms = now_ms;
	t0 = now_mono_ns();
	if (cg->watch_max && cg->layout != CGROUP_NONE) {
		if (cg->layout == CGROUP_V2) {
			scan_root(&s, cg->ctrl_root[CG_CTRL_V2], true);
		} else {
			/* containers live in every v1 controller under the same path; the
			 * id (cpu) and memory hierarchies between them name them all */
			scan_root(&s, cgroups_ctrl_root(cg, CG_CTRL_CPU), false);
			scan_root(&s, cgroups_ctrl_root(cg, CG_CTRL_MEMORY), false);
		}
	}
	cg->stats.unsafe = s.unsafe;
	err = choose(cg, s.c, s.n);
	free(s.c);
	cg->stats.scan_us = (now_mono_ns() - t0) / 1000;
	return err;
}

int cgroups_watch_update(struct cgroups *cg, const struct cgroup_found *found, size_t n,
			 uint64_t unsafe)
{
	struct candidate *c = n ? calloc(n, sizeof(*c)) : NULL;
	uint64_t t0 = now_mono_ns();
	int err;

	cg->watch_external = true;
	if (n && !c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char cid[65], pod[37];

		c[i].path = strdup(found[i].path);
		if (!c[i].path) {
			while (i--)
				free(c[i].path);
			free(c);
			return -ENOMEM;
		}
		cgroup_path_identity(c[i].path, cid, sizeof(cid), pod, sizeof(pod));
		c[i].depth = found[i].depth;
		c[i].id = found[i].id;
		c[i].workload = cid[0] || pod[0];
	}
	cg->stats.unsafe = unsafe;
	err = choose(cg, c, cg->watch_max ? n : 0);
	if (!cg->watch_max)
		for (size_t i = 0; i < n; i++)
			free(c[i].path);
	free(c);
	cg->stats.scan_us = (now_mono_ns() - t0) / 1000;
	return err;
}

uint64_t cgroups_watch_generation(const struct cgroups *cg)
{
	return cg->watch_gen;
}

unsigned cgroups_watch_count(const struct cgroups *cg)
{
	return cg->nwatch;
}

const struct cgroup_entry *cgroups_watch_at(const struct cgroups *cg, unsigned i)
{
	return i < cg->nwatch ? &cg->watch[i] : NULL;
}

const struct cgroup_entry *cgroups_watch_find_id(const struct cgroups *cg, uint64_t id)
{
	unsigned lo = 0, hi = cg->nby_id;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (cg->by_id[mid]->id == id)
			return cg->by_id[mid];
		if (cg->by_id[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void cgroups_watch_stats(const struct cgroups *cg, struct cgroups_watch_stats *out)
{
	*out = cg->stats;
}

void cgroup_entry_labels(const struct cgroup_entry *e, struct labels *l)
{
	l->n = 0;
	l->k[l->n] = "cgroup";
	l->v[l->n++] = e->path;
	if (e->container_id[0]) {
		l->k[l->n] = "container_id";
		l->v[l->n++] = e->container_id;
	}
	if (e->pod_uid[0]) {
		l->k[l->n] = "pod_uid";
		l->v[l->n++] = e->pod_uid;
	}
	if (e->qos && e->qos[0]) {
		l->k[l->n] = "qos";
		l->v[l->n++] = e->qos;
	}
}

void cgroup_json_set(json_t *o, struct cgroups *cg, uint64_t cgroup_id)
{
	char path[512], cid[65], pod[37];

	if (!cgroup_id || !cg || cgroups_path_of(cg, cgroup_id, path, sizeof(path)))
		return;
	json_object_set_new(o, "cgroup", json_string_clean(path));
	cgroup_path_identity(path, cid, sizeof(cid), pod, sizeof(pod));
	if (cid[0])
		json_object_set_new(o, "container_id", json_string_clean(cid));
	if (pod[0])
		json_object_set_new(o, "pod_uid", json_string_clean(pod));
}
