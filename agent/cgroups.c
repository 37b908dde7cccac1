// SPDX-License-Identifier: GPL-2.0-only
#include "agent/cgroups.h"

#include <bpf/btf.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "agent/log.h"
#include "agent/util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif

#define ID_CACHE_MAX   65536
#define WALK_MAX_DEPTH 16
#define RESCAN_MIN_NS  1000000000ull /* a miss rescans the tree at most once a second */

struct id_entry {
	uint64_t id;
	char *path;
};

struct cgroups {
	enum cgroup_layout layout;
	char root[256];
	char id_root[300];
	int bpf_subsys;
	struct id_entry *cache;
	size_t ncache;
	uint64_t last_scan_ns;
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

		if (!btf_is_enum(t) || strcmp(btf__name_by_offset(btf, t->name_off),
					      "cgroup_subsys_id"))
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

int cgroups_new(struct cgroups **out, const char *root)
{
	struct cgroups *cg = calloc(1, sizeof(*cg));
	char path[300];

	if (!cg)
		return -ENOMEM;
	snprintf(cg->root, sizeof(cg->root), "%s", root);
	cg->bpf_subsys = -1;
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
	struct id_entry key = { .id = id };

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

static bool hex_run(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)p[i]) || isupper((unsigned char)p[i]))
			return false;
	return true;
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
	 * /kubepods/burstable/pod<uid>/<id> */
	for (p = path; *p; p++) {
		if (hex_run(p, 64) && (p == path || !isxdigit((unsigned char)p[-1])) &&
		    !isxdigit((unsigned char)p[64]))
			snprintf(container_id, cid_len, "%.64s", p);
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
