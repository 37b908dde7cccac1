// SPDX-License-Identifier: GPL-2.0-only
/*
 * The cgroup pass (cgpass.bpf.c) from user space: one iterator link per cgroup
 * hierarchy, run once per interval. It keeps the cgroups it was told about
 * (their paths, built from the names the pass writes for new ones) and finds
 * those that went away or emptied from the stamps the pass leaves; the
 * counters of watched cgroups land in an array shared with the kernel.
 */
#include "probes/cgpass.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/log.h"
#include "base/util.h"
#include "cgpass.skel.h"
#include "probes/bpfutil.h"

#define OWNER	       "watch.cgroups"
#define MAX_HIER       6
#define NONE	       UINT32_MAX
#define PATH_MAX_LABEL 400	   /* as base/cgroups.c: longer paths do not fit a label */
#define DEPTH_MAX      16	   /* as base/cgroups.c's walk */
#define OUT_MAX	       (16u << 20) /* one pass's records for new cgroups, at most */

BPF_SKEL_OPS(cgpass);

struct node {
	uint64_t id;
	char *path; /* "" for a hierarchy's root */
	uint32_t hier;
	uint32_t next; /* hash chain */
	uint32_t slot;
	uint16_t h; /* index into cgpass.h[] */
	uint16_t depth;
	bool used, populated, unsafe;
};

struct hierarchy {
	char root[300];
	struct bpf_link *link;
	bool discover; /* containers are named from its cgroups */
	bool ids;      /* the hierarchy of cgroup ids (cgroups_id_root) */
	bool limits;   /* only limits come from it (v1 cpuset): passed when they are read */
	uint64_t ran;  /* the last pass that went over it */
	int hier_id;   /* the kernel's, learnt from the first pass; -1 before */
};

struct cgpass {
	struct cgpass_bpf *skel;
	struct cgroups *cg;
	struct hierarchy h[MAX_HIER];
	unsigned nh;
	struct cgp_seen *seen;
	struct cgp_acc *acc;
	size_t seen_len, acc_len;
	unsigned max_slots, max_known;
	struct node *nodes; /* index = seen[] index */
	unsigned nodes_cap, used_hi, nused;
	uint32_t *free_idx;
	unsigned nfree;
	uint32_t *buckets;
	unsigned nbuckets;
	char *buf;
	size_t buf_cap;
	struct cgroup_found *cands;
	unsigned ncands, cands_cap;
	bool cands_dirty;
	bool new_slots; /* slots mapped since the last pass: their limits are due everywhere */
	struct cgpass_stats st;
};

static uint32_t bucket_of(const struct cgpass *p, uint32_t hier, uint64_t id)
{
	uint64_t x = (id ^ ((uint64_t)hier << 56)) * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(x >> 32) & (p->nbuckets - 1);
}

static struct node *node_find(const struct cgpass *p, uint32_t hier, uint64_t id)
{
	for (uint32_t i = p->buckets[bucket_of(p, hier, id)]; i != NONE; i = p->nodes[i].next)
		if (p->nodes[i].id == id && p->nodes[i].hier == hier)
			return &p->nodes[i];
	return NULL;
}

/* A free index, or NONE when max_known are in use. */
static uint32_t idx_alloc(struct cgpass *p)
{
	if (p->nfree)
		return p->free_idx[--p->nfree];
	if (p->used_hi == p->max_known)
		return NONE;
	if (p->used_hi == p->nodes_cap) {
		unsigned ncap = p->nodes_cap ? p->nodes_cap * 2 : 256;
		struct node *n;

		ncap = MIN(ncap, p->max_known);
		n = realloc(p->nodes, ncap * sizeof(*n));
		if (!n)
			return NONE;
		p->nodes = n;
		p->nodes_cap = ncap;
	}
	return p->used_hi++;
}

static int node_add(struct cgpass *p, unsigned h, uint64_t id, const char *path, unsigned depth,
		    bool unsafe, bool populated, uint32_t slot)
{
	struct cgp_key key = {.id = id, .hier = (uint32_t)p->h[h].hier_id};
	struct cgp_known val = {.slot = slot};
	uint32_t idx = idx_alloc(p), b;
	struct node *n;

	if (idx == NONE) {
		p->st.known_full++;
		return -ENOSPC;
	}
	val.idx = idx;
	n = &p->nodes[idx];
	memset(n, 0, sizeof(*n));
	n->path = strdup(path);
	if (!n->path) {
		p->free_idx[p->nfree++] = idx;
		return -ENOMEM;
	}
	if (bpf_map__update_elem(p->skel->maps.known, &key, sizeof(key), &val, sizeof(val),
				 BPF_NOEXIST)) {
		int err = -errno;

		free(n->path);
		n->path = NULL;
		p->free_idx[p->nfree++] = idx;
		if (err == -E2BIG || err == -ENOMEM)
			p->st.known_full++;
		return err;
	}
	n->id = id;
	n->hier = key.hier;
	n->h = (uint16_t)h;
	n->depth = (uint16_t)depth;
	n->slot = slot;
	n->used = true;
	n->unsafe = unsafe;
	n->populated = populated;
	/* the pass that found it did not stamp it: this one counts as seen */
	p->seen[idx].pass = (uint32_t)p->skel->bss->g.pass;
	p->seen[idx].flags = populated ? CGP_SEEN_POPULATED : 0;
	b = bucket_of(p, key.hier, id);
	n->next = p->buckets[b];
	p->buckets[b] = idx;
	p->nused++;
	p->st.appeared++;
	if (populated && p->h[h].discover && !unsafe)
		p->cands_dirty = true;
	return 0;
}

static void node_remove(struct cgpass *p, uint32_t idx)
{
	struct node *n = &p->nodes[idx];
	struct cgp_key key = {.id = n->id, .hier = n->hier};
	uint32_t *pp = &p->buckets[bucket_of(p, n->hier, n->id)];

	while (*pp != NONE && *pp != idx)
		pp = &p->nodes[*pp].next;
	if (*pp == idx)
		*pp = n->next;
	bpf_map__delete_elem(p->skel->maps.known, &key, sizeof(key), 0);
	if (n->populated && p->h[n->h].discover && !n->unsafe)
		p->cands_dirty = true;
	free(n->path);
	memset(n, 0, sizeof(*n));
	p->free_idx[p->nfree++] = idx;
	p->nused--;
	p->st.vanished++;
}

static bool name_unsafe(const char *name, size_t len)
{
	/* label keys use '\x1f' and '=': control characters would let a cgroup
	 * name forge labels (base/cgroups.c refuses the same) */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f || name[i] == '/')
			return true;
	return false;
}

/* A record of the pass: a populated cgroup it did not know. */
static void take_record(struct cgpass *p, unsigned h, const struct cgp_rec *r, const char *name)
{
	char path[PATH_MAX_LABEL + CGP_NAME_MAX + 2];
	const struct node *parent = NULL;
	bool unsafe = false;

	if (p->h[h].hier_id < 0)
		p->h[h].hier_id = (int)r->hier;
	if ((int)r->hier != p->h[h].hier_id)
		return;
	if (r->parent_id == 0 || r->level == 0) {
		path[0] = '\0';
	} else {
		parent = node_find(p, r->hier, r->parent_id);
		if (!parent)
			return; /* raced with its parent's creation: the next pass has it */
		unsafe = parent->unsafe || (r->flags & CGP_REC_NAME_CUT) ||
			 name_unsafe(name, r->name_len) ||
			 strlen(parent->path) + 1 + r->name_len > PATH_MAX_LABEL;
		snprintf(path, sizeof(path), "%s/%.*s", parent->path, (int)r->name_len, name);
	}
	if (unsafe)
		p->st.unsafe++;
	if (node_find(p, r->hier, r->id))
		return; /* a record repeated after a full buffer */
	node_add(p, h, r->id, path, r->level, unsafe, true, NONE);
}

static int read_iter(struct cgpass *p, unsigned h, size_t *len)
{
	int fd = bpf_iter_create(bpf_link__fd(p->h[h].link)), err = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	*len = 0;
	for (;;) {
		if (p->buf_cap - *len < 4096) {
			size_t ncap = p->buf_cap ? p->buf_cap * 2 : 65536;
			char *b;

			if (ncap > OUT_MAX) {
				/* drain: these cgroups are written again by the next pass */
				char sink[4096];

				while ((n = read(fd, sink, sizeof(sink))) > 0)
					;
				break;
			}
			b = realloc(p->buf, ncap);
			if (!b) {
				err = -ENOMEM;
				break;
			}
			p->buf = b;
			p->buf_cap = ncap;
		}
		n = read(fd, p->buf + *len, p->buf_cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	close(fd);
	return err;
}

/* The cgroups known but not stamped by this pass are gone; the stamped ones
 * say whether they are still populated. */
static void sweep(struct cgpass *p, uint32_t pass)
{
	for (uint32_t i = 0; i < p->used_hi; i++) {
		struct node *n = &p->nodes[i];
		bool pop;

		if (!n->used || p->h[n->h].ran != pass)
			continue; /* its hierarchy was not passed this time */
		if (p->seen[i].pass != pass) {
			node_remove(p, i);
			continue;
		}
		pop = p->seen[i].flags & CGP_SEEN_POPULATED;
		if (pop != n->populated && p->h[n->h].discover && !n->unsafe)
			p->cands_dirty = true;
		n->populated = pop;
	}
}

static int build_candidates(struct cgpass *p)
{
	p->ncands = 0;
	for (uint32_t i = 0; i < p->used_hi; i++) {
		const struct node *n = &p->nodes[i];

		if (!n->used || !n->populated || n->unsafe || !p->h[n->h].discover ||
		    n->depth == 0 || n->depth >= DEPTH_MAX)
			continue;
		if (p->ncands == p->cands_cap) {
			unsigned ncap = p->cands_cap ? p->cands_cap * 2 : 256;
			struct cgroup_found *c = realloc(p->cands, ncap * sizeof(*c));

			if (!c)
				return -ENOMEM;
			p->cands = c;
			p->cands_cap = ncap;
		}
		p->cands[p->ncands].path = n->path;
		p->cands[p->ncands].depth = n->depth;
		p->cands[p->ncands].id = p->h[n->h].ids ? n->id : 0;
		p->ncands++;
	}
	p->cands_dirty = false;
	return 0;
}

int cgpass_run(struct cgpass *p, bool limits)
{
	struct cgp_globals *g = &p->skel->bss->g;
	uint64_t t0 = now_mono_ns(), visited0 = g->visited, deferred0 = g->deferred;
	int err = 0;

	g->pass++;
	if (limits || g->limits_pass == 0)
		g->limits_pass = g->pass;
	p->st.known_full = 0;
	for (unsigned h = 0; h < p->nh; h++) {
		size_t len = 0, off = 0;
		int e;

		/* a hierarchy of limits only is passed when they are read (and
		 * until it was passed once: its cgroups must be known) */
		if (p->h[h].limits && p->h[h].ran && g->limits_pass != g->pass && !p->new_slots)
			continue;
		p->h[h].ran = g->pass;
		g->emit_used = 0;
		g->emit_room = CGP_EMIT_ROOM;
		e = read_iter(p, h, &len);

		if (e) {
			err = e;
			continue;
		}
		while (off + sizeof(struct cgp_rec) <= len) {
			struct cgp_rec r;

			memcpy(&r, p->buf + off, sizeof(r));
			off += sizeof(r);
			if (r.name_len > CGP_NAME_MAX || off + r.name_len > len)
				break;
			take_record(p, h, &r, p->buf + off);
			off += r.name_len;
		}
	}
	p->new_slots = false;
	if (!err)
		sweep(p, (uint32_t)g->pass);
	p->st.passes++;
	p->st.visited = g->visited - visited0;
	p->st.deferred = g->deferred - deferred0;
	p->st.known = p->nused;
	p->st.last_pass_us = (now_mono_ns() - t0) / 1000;
	if (err)
		return err;
	if (!p->cands_dirty)
		return 0;
	err = build_candidates(p);
	return err ? err : 1;
}

unsigned cgpass_candidates(struct cgpass *p, const struct cgroup_found **out)
{
	if (p->cands_dirty)
		build_candidates(p);
	*out = p->cands;
	return p->ncands;
}

int cgpass_map(struct cgpass *p, const char *path, uint32_t slot)
{
	int ret = -ENOENT;

	if (slot != NONE) {
		if (slot >= p->max_slots)
			return -EINVAL;
		memset(&p->acc[slot], 0, sizeof(p->acc[slot]));
		p->new_slots = true;
	}
	for (unsigned h = 0; h < p->nh; h++) {
		char full[1024];
		struct stat st;
		struct node *n;

		if (p->h[h].hier_id < 0 ||
		    snprintf(full, sizeof(full), "%s%s", p->h[h].root, path) >= (int)sizeof(full) ||
		    stat(full, &st) || !S_ISDIR(st.st_mode))
			continue;
		n = node_find(p, (uint32_t)p->h[h].hier_id, st.st_ino);
		if (!n) {
			unsigned depth = 0;

			if (slot == NONE)
				continue;
			for (const char *c = path; *c; c++)
				depth += *c == '/';
			/* not populated in this hierarchy (yet): known from now on */
			if (node_add(p, h, st.st_ino, path, depth, false, false, slot) == 0)
				ret = 0;
			continue;
		}
		if (n->slot != slot) {
			struct cgp_key key = {.id = n->id, .hier = n->hier};
			struct cgp_known val = {.idx = (uint32_t)(n - p->nodes), .slot = slot};

			if (bpf_map__update_elem(p->skel->maps.known, &key, sizeof(key), &val,
						 sizeof(val), BPF_EXIST))
				continue;
			n->slot = slot;
		}
		ret = 0;
	}
	return ret;
}

const struct cgp_acc *cgpass_acc(const struct cgpass *p, uint32_t slot)
{
	return slot < p->max_slots ? &p->acc[slot] : NULL;
}

uint64_t cgpass_pass(const struct cgpass *p)
{
	return p->skel->bss->g.pass;
}

void cgpass_stats(const struct cgpass *p, struct cgpass_stats *out)
{
	*out = p->st;
	out->hierarchies = p->nh;
	out->known_max = p->max_known;
}

static void *map_mmap(const struct bpf_map *map, size_t *len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *m;

	*len = ((size_t)bpf_map__value_size(map) * bpf_map__max_entries(map) + page - 1) &
	       ~(page - 1);
	m = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
	return m == MAP_FAILED ? NULL : m;
}

void cgpass_free(struct cgpass **pp)
{
	struct cgpass *p = pp ? *pp : NULL;

	if (!p)
		return;
	for (unsigned h = 0; h < p->nh; h++)
		bpf_link__destroy(p->h[h].link);
	if (p->seen)
		munmap(p->seen, p->seen_len);
	if (p->acc)
		munmap(p->acc, p->acc_len);
	bpf_skel_unload(p->skel, &cgpass_skel_ops, OWNER);
	for (unsigned i = 0; i < p->used_hi; i++)
		free(p->nodes[i].path);
	free(p->nodes);
	free(p->free_idx);
	free(p->buckets);
	free(p->buf);
	free(p->cands);
	free(p);
	*pp = NULL;
}

static void add_root(struct cgpass *p, const char *root, bool discover, bool limits_only)
{
	struct stat st, other;

	if (!root || stat(root, &st) || p->nh == MAX_HIER)
		return;
	/* co-mounted controllers ("cpu,cpuacct") are one hierarchy */
	for (unsigned h = 0; h < p->nh; h++)
		if (stat(p->h[h].root, &other) == 0 && other.st_dev == st.st_dev) {
			p->h[h].discover |= discover;
			p->h[h].limits &= limits_only;
			return;
		}
	snprintf(p->h[p->nh].root, sizeof(p->h[p->nh].root), "%s", root);
	p->h[p->nh].discover = discover;
	p->h[p->nh].limits = limits_only;
	p->h[p->nh].ids = stat(cgroups_id_root(p->cg), &other) == 0 && other.st_dev == st.st_dev;
	p->h[p->nh].hier_id = -1;
	p->nh++;
}

static int attach(struct cgpass *p, struct bpf_program *prog, unsigned h)
{
	union bpf_iter_link_info li;
	int fd = open(p->h[h].root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	memset(&li, 0, sizeof(li));
	li.cgroup.cgroup_fd = (__u32)fd;
	li.cgroup.order = BPF_CGROUP_ITER_DESCENDANTS_PRE;
	p->h[h].link = iter_attach(prog, &li);
	if (!p->h[h].link)
		err = -errno;
	close(fd);
	return err;
}

struct load_ctx {
	const struct cgpass *p;
	const char *prog; /* the one program to load */
};

static int configure(void *skel, void *ctx)
{
	struct cgpass_bpf *s = skel;
	const struct load_ctx *l = ctx;
	struct bpf_program *prog;

	s->rodata->nr_cpus = (__u32)MIN(libbpf_num_possible_cpus(), CGP_MAX_CPUS);
	bpf_map__set_max_entries(s->maps.known, l->p->max_known);
	bpf_map__set_max_entries(s->maps.seen, l->p->max_known);
	bpf_map__set_max_entries(s->maps.acc, l->p->max_slots);
	bpf_object__for_each_program(prog, s->obj)
		bpf_program__set_autoload(prog, strcmp(bpf_program__name(prog), l->prog) == 0);
	return 0;
}

static bool kernel_has(const struct btf *vmlinux, const char *name, int kind)
{
	return vmlinux && btf__find_by_name_kind(vmlinux, name, kind) > 0;
}

int cgpass_new(struct cgpass **out, struct cgroups *cg, unsigned max_slots, char *why,
	       size_t why_len)
{
	enum cgroup_layout layout = cgroups_layout(cg);
	const struct btf *vmlinux = kernel_btf();
	struct load_ctx lc = {0};
	struct bpf_program *prog;
	void *skel;
	struct cgpass *p = NULL;
	int err, ncpus = libbpf_num_possible_cpus();
	bool css_flush, cgroup_flush, cast;

	if (!kernel_has(vmlinux, "bpf_iter__cgroup", BTF_KIND_STRUCT)) {
		snprintf(why, why_len, "no cgroup iterator in this kernel (Linux 6.1+)");
		err = -EOPNOTSUPP;
		goto fail;
	}
	css_flush = kernel_has(vmlinux, "css_rstat_flush", BTF_KIND_FUNC);
	cgroup_flush = !css_flush && kernel_has(vmlinux, "cgroup_rstat_flush", BTF_KIND_FUNC);
	/* 6.2+: plain loads through read-only casts, not probe reads */
	cast = kernel_has(vmlinux, "bpf_rdonly_cast", BTF_KIND_FUNC);
	if (layout == CGROUP_V2 && !css_flush && !cgroup_flush) {
		snprintf(why, why_len, "no cgroup statistics flush for BPF in this kernel");
		err = -EOPNOTSUPP;
		goto fail;
	}
	if (layout == CGROUP_NONE || ncpus <= 0 || !max_slots) {
		err = -EINVAL;
		goto fail;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		err = -ENOMEM;
		goto fail;
	}
	p->cg = cg;
	p->max_slots = max_slots;
	p->max_known = MIN(65536u, MAX(16384u, 8 * max_slots));
	p->nbuckets = 1;
	while (p->nbuckets < p->max_known)
		p->nbuckets <<= 1;
	p->buckets = malloc(p->nbuckets * sizeof(*p->buckets));
	p->free_idx = malloc(p->max_known * sizeof(*p->free_idx));
	if (!p->buckets || !p->free_idx) {
		err = -ENOMEM;
		goto fail;
	}
	memset(p->buckets, 0xff, p->nbuckets * sizeof(*p->buckets));
	if (layout == CGROUP_V2) {
		add_root(p, cgroups_ctrl_root(cg, CG_CTRL_V2), true, false);
	} else {
		add_root(p, cgroups_ctrl_root(cg, CG_CTRL_CPU), true, false);
		add_root(p, cgroups_ctrl_root(cg, CG_CTRL_MEMORY), true, false);
		add_root(p, cgroups_ctrl_root(cg, CG_CTRL_CPUACCT), false, false);
		add_root(p, cgroups_ctrl_root(cg, CG_CTRL_CPUSET), false, true);
		/* hybrid hosts mirror some cgroups into v2: their pressure is there */
		add_root(p, cgroups_ctrl_root(cg, CG_CTRL_V2), false, false);
	}
	if (layout == CGROUP_V2)
		lc.prog = css_flush ? "cgpass_css_flush"
			  : cast    ? "cgpass_cgroup_flush"
				    : "cgpass_cgroup_flush_probe";
	else
		lc.prog = cast ? "cgpass_cast" : "cgpass";
	lc.p = p;
	err = bpf_skel_load(
		&skel, NULL, &cgpass_skel_ops,
		&(struct bpf_load_opts){.owner = OWNER, .configure = configure, .ctx = &lc});
	if (err) {
		snprintf(why, why_len, "loading the cgroup iterator: %s", strerror(-err));
		goto fail;
	}
	p->skel = skel;
	prog = bpf_object__find_program_by_name(p->skel->obj, lc.prog);
	for (unsigned h = 0; h < p->nh; h++) {
		err = attach(p, prog, h);
		if (err) {
			snprintf(why, why_len, "attaching the cgroup iterator to %s: %s",
				 p->h[h].root, strerror(-err));
			goto fail;
		}
	}
	p->seen = map_mmap(p->skel->maps.seen, &p->seen_len);
	p->acc = map_mmap(p->skel->maps.acc, &p->acc_len);
	if (!p->seen || !p->acc) {
		err = -errno ? -errno : -ENOMEM;
		snprintf(why, why_len, "mapping the cgroup iterator's arrays: %s", strerror(-err));
		goto fail;
	}
	*out = p;
	return 0;
fail:
	cgpass_free(&p);
	return err;
}
