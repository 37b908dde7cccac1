// SPDX-License-Identifier: GPL-2.0-only
#include "base/unwind_remote.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/sandbox.h"
#include "base/unwproto.h"
#include "base/util.h"

struct unwind_remote {
	struct sandbox *sb;
	uint64_t cache_bytes;
	uint64_t timeout_ms;
	uint64_t max_wait_ms; /* longest one unwind or batch may hold the caller */
	uint64_t until_ns;    /* the running unwind or batch's end of waiting */
	uint64_t cut_short;   /* stacks given up at that bound */
	struct unwinder_stats stats;
	/* the answer of the call being waited for */
	struct {
		bool done;
		int err;
		struct unwr_reply rep;
		uint64_t *pcs;
		unsigned max;
	} a;
};

int unwind_remote_new(struct unwind_remote **out, struct sandbox *sb,
		      const struct unwinder_opts *opts, uint64_t timeout_ms, uint64_t max_wait_ms)
{
	struct unwind_remote *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->sb = sb;
	r->cache_bytes = opts->cache_bytes;
	r->timeout_ms = timeout_ms ? timeout_ms : 5000;
	r->max_wait_ms = max_wait_ms ? max_wait_ms : 2 * r->timeout_ms + 1000;
	r->stats.cache_cap = opts->cache_bytes;
	*out = r;
	return 0;
}

void unwind_remote_free(struct unwind_remote **pr)
{
	if (pr && *pr) {
		free(*pr);
		*pr = NULL;
	}
}

static void on_answer(void *ctx, struct sandbox_reply *rep)
{
	struct unwind_remote *r = ctx;
	struct unwr_reply a;

	r->a.done = true;
	if (rep->fail != SANDBOX_OK) {
		r->a.err = -EIO;
		return;
	}
	if (rep->len < sizeof(a)) {
		r->a.err = rep->status ? rep->status : -EPROTO;
		return;
	}
	memcpy(&a, rep->data, sizeof(a));
	/* an answer is data in a checked shape: counts add up, nothing past max */
	if (a.n > r->a.max || rep->len != sizeof(a) + a.n * sizeof(uint64_t) ||
	    (a.status >= UNWIND_STATUS_MAX && a.status != UNWR_NEED_MAPS)) {
		r->a.err = -EPROTO;
		return;
	}
	r->stats = a.stats;
	r->a.rep = a;
	if (a.n && r->a.pcs)
		memcpy(r->a.pcs, (const char *)rep->data + sizeof(a), a.n * sizeof(uint64_t));
	r->a.err = rep->status;
}

/* How long the next answer may be waited for: its own deadline plus the one
 * in flight ahead of it, within what is left of the running call's bound. */
static uint64_t wait_ms(const struct unwind_remote *r)
{
	uint64_t now = now_mono_ns(), per_request = 2 * r->timeout_ms + 1000;

	if (!r->until_ns)
		return per_request;
	if (now >= r->until_ns)
		return 0;
	return MIN(per_request, (r->until_ns - now) / 1000000 + 1);
}

static void start_waiting(struct unwind_remote *r)
{
	r->until_ns = now_mono_ns() + r->max_wait_ms * 1000000ull;
}

static int stop_waiting(struct unwind_remote *r, int err)
{
	r->until_ns = 0;
	return err;
}

/* One request, waited for. */
static int call(struct unwind_remote *r, struct unwr_req *req, const void *extra, size_t len,
		int fd, uint64_t *pcs, unsigned max)
{
	size_t total = sizeof(*req) + len;
	char *buf;
	int fds[1] = {-1};
	int64_t id;

	if (total > SANDBOX_MAX_REQUEST)
		return -E2BIG;
	if (!wait_ms(r))
		return -ETIMEDOUT;
	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	req->cache_bytes = r->cache_bytes;
	memcpy(buf, req, sizeof(*req));
	if (len)
		memcpy(buf + sizeof(*req), extra, len);
	if (fd >= 0 && (fds[0] = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		free(buf);
		return -errno;
	}
	memset(&r->a, 0, sizeof(r->a));
	r->a.pcs = pcs;
	r->a.max = max;
	id = sandbox_call(r->sb, SYMP_OP_UNWIND, buf, total, fds, fds[0] >= 0 ? 1 : 0,
			  sizeof(struct unwr_reply) + max * sizeof(uint64_t), on_answer, r);
	free(buf);
	if (id < 0)
		return (int)id;
	if (sandbox_wait(r->sb, id, wait_ms(r)) || !r->a.done) {
		sandbox_cancel(r->sb, id);
		return -ETIMEDOUT;
	}
	return r->a.err;
}

static int send_maps(struct unwind_remote *r, int tgid, uint64_t gen, const struct unwind_input *in)
{
	for (unsigned first = 0; first < in->nmaps || first == 0; first += UNWR_MAPS_PER_MSG) {
		unsigned count = in->nmaps - first < UNWR_MAPS_PER_MSG ? in->nmaps - first
								       : UNWR_MAPS_PER_MSG;
		struct unwr_req req = {.cmd = UNWR_MAPS,
				       .tgid = (uint32_t)tgid,
				       .gen = gen,
				       .first = first,
				       .count = count,
				       .total = in->nmaps};
		int err = call(r, &req, in->maps + first, count * sizeof(*in->maps), -1, NULL, 0);

		if (err)
			return err;
		if (!in->nmaps)
			break;
	}
	return 0;
}

static int unwind_one(struct unwind_remote *r, int tgid, uint64_t gen,
		      const struct unwind_input *in, uint64_t *pcs, unsigned max,
		      struct unwind_result *res)
{
	struct unwr_req req = {.cmd = UNWR_UNWIND,
			       .tgid = (uint32_t)tgid,
			       .gen = gen,
			       .max_pcs = max,
			       .regs_valid = in->regs_valid,
			       .pc = in->pc,
			       .stack_addr = in->stack_addr,
			       .stack_len = (uint32_t)in->stack_len};
	int err = 0;

	memset(res, 0, sizeof(*res));
	memcpy(req.regs, in->regs, sizeof(req.regs));
	for (int round = 0; round < 2; round++) {
		err = call(r, &req, in->stack, in->stack_len, -1, pcs, max);
		if (err)
			return err;
		if (r->a.rep.status != UNWR_NEED_MAPS)
			break;
		/* a new helper, or a new reading of the mappings: send them */
		if ((err = send_maps(r, tgid, gen, in)))
			return err;
	}
	if (r->a.rep.status == UNWR_NEED_MAPS)
		return -EPROTO;
	res->n = r->a.rep.n;
	res->status = (enum unwind_status)r->a.rep.status;
	res->need_map = r->a.rep.need_map;
	res->fp_frames = r->a.rep.fp_frames;
	if (res->status == UNWIND_NEED_FILE &&
	    (res->need_map < 0 || (unsigned)res->need_map >= in->nmaps))
		return -EPROTO;
	return 0;
}

int unwind_remote_unwind(struct unwind_remote *r, int tgid, uint64_t gen,
			 const struct unwind_input *in, uint64_t *pcs, unsigned max,
			 struct unwind_result *res)
{
	int err;

	start_waiting(r);
	err = unwind_one(r, tgid, gen, in, pcs, max, res);
	if (err == -ETIMEDOUT)
		r->cut_short++;
	return stop_waiting(r, err);
}

int unwind_remote_add_file(struct unwind_remote *r, const struct unwind_map *m, int fd)
{
	struct unwr_req req = {.cmd = UNWR_FILE, .map = *m};

	if (fd < 0) {
		/* remembered as unreadable: an empty image says the same */
		req.cmd = UNWR_IMAGE;
		return call(r, &req, NULL, 0, -1, NULL, 0);
	}
	return call(r, &req, NULL, 0, fd, NULL, 0);
}

int unwind_remote_add_image(struct unwind_remote *r, const struct unwind_map *m, const void *image,
			    size_t len)
{
	struct unwr_req req = {.cmd = UNWR_IMAGE, .map = *m};

	return call(r, &req, image, len, -1, NULL, 0);
}

/* The answer of one batch request, checked: results, then their pcs. */
struct batch_answer {
	struct unwind_remote *r;
	struct unwind_remote_item **items;
	unsigned n;
	bool done;
	int err;
};

static void on_batch(void *ctx, struct sandbox_reply *rep)
{
	struct batch_answer *b = ctx;
	struct unwr_reply head;
	const struct unwr_result *res;
	const uint64_t *pcs;
	size_t need;

	b->done = true;
	if (rep->fail != SANDBOX_OK) {
		b->err = -EIO;
		return;
	}
	if (rep->status || rep->len < sizeof(head) + b->n * sizeof(*res)) {
		b->err = rep->status ? rep->status : -EPROTO;
		return;
	}
	memcpy(&head, rep->data, sizeof(head));
	res = (const struct unwr_result *)((const char *)rep->data + sizeof(head));
	need = sizeof(head) + b->n * sizeof(*res);
	for (unsigned i = 0; i < b->n; i++) {
		if (res[i].n > b->items[i]->max ||
		    (res[i].status >= UNWIND_STATUS_MAX && res[i].status != UNWR_NEED_MAPS)) {
			b->err = -EPROTO;
			return;
		}
		need += res[i].n * sizeof(uint64_t);
	}
	if (need != rep->len) {
		b->err = -EPROTO;
		return;
	}
	b->r->stats = head.stats;
	pcs = (const uint64_t *)(res + b->n);
	for (unsigned i = 0; i < b->n; i++) {
		struct unwind_remote_item *it = b->items[i];

		memcpy(it->pcs, pcs, res[i].n * sizeof(*pcs));
		pcs += res[i].n;
		it->res.n = res[i].n;
		it->res.status = (enum unwind_status)res[i].status;
		it->res.need_map = res[i].need_map;
		it->res.fp_frames = res[i].fp_frames;
		if (it->res.status == UNWIND_NEED_FILE &&
		    (it->res.need_map < 0 || (unsigned)it->res.need_map >= it->in.nmaps))
			it->err = -EPROTO;
	}
}

/* Asks for items[0..n) in one request (they fit: the caller sized them). */
static int batch_call(struct unwind_remote *r, struct unwind_remote_item **items, unsigned n,
		      unsigned max)
{
	struct unwr_req req = {
		.cmd = UNWR_BATCH, .count = n, .max_pcs = max, .cache_bytes = r->cache_bytes};
	struct batch_answer b = {.r = r, .items = items, .n = n};
	size_t len = sizeof(req) + n * sizeof(struct unwr_item), off;
	char *buf;
	int64_t id;

	for (unsigned i = 0; i < n; i++)
		len += items[i]->in.stack_len;
	if (!wait_ms(r))
		return -ETIMEDOUT;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, &req, sizeof(req));
	off = sizeof(req) + n * sizeof(struct unwr_item);
	for (unsigned i = 0; i < n; i++) {
		const struct unwind_input *in = &items[i]->in;
		struct unwr_item it = {.tgid = (uint32_t)items[i]->tgid,
				       .stack_len = (uint32_t)in->stack_len,
				       .gen = items[i]->gen,
				       .regs_valid = in->regs_valid,
				       .pc = in->pc,
				       .stack_addr = in->stack_addr};

		memcpy(it.regs, in->regs, sizeof(it.regs));
		memcpy(buf + sizeof(req) + i * sizeof(it), &it, sizeof(it));
		memcpy(buf + off, in->stack, in->stack_len);
		off += in->stack_len;
	}
	id = sandbox_call(r->sb, SYMP_OP_UNWIND, buf, len, NULL, 0,
			  sizeof(struct unwr_reply) +
				  n * (sizeof(struct unwr_result) + max * sizeof(uint64_t)),
			  on_batch, &b);
	free(buf);
	if (id < 0)
		return (int)id;
	if (sandbox_wait(r->sb, id, wait_ms(r)) || !b.done) {
		sandbox_cancel(r->sb, id);
		return -ETIMEDOUT;
	}
	return b.err;
}

/* What was sent in one pass, so several stacks asking for the same mapping
 * or file get it once. */
struct supplied {
	struct {
		uint64_t a, b;
	} sent[2 * UNWR_BATCH_MAX];
	unsigned n;
};

static bool once(struct supplied *sp, uint64_t a, uint64_t b)
{
	for (unsigned i = 0; i < sp->n; i++)
		if (sp->sent[i].a == a && sp->sent[i].b == b)
			return false;
	if (sp->n < 2 * UNWR_BATCH_MAX) {
		sp->sent[sp->n].a = a;
		sp->sent[sp->n++].b = b;
	}
	return true;
}

/* What the helper asked for before it could unwind an item. */
static void supply(struct unwind_remote *r, struct unwind_remote_item *it,
		   const struct unwind_remote_files *files, struct supplied *sp)
{
	if (it->res.status == (enum unwind_status)UNWR_NEED_MAPS) {
		/* tgid in the high bits keeps it apart from a file's (dev, ino) */
		if (once(sp, (uint64_t)it->tgid | 1ull << 63, it->gen))
			it->err = send_maps(r, it->tgid, it->gen, &it->in);
	} else if (it->res.status == UNWIND_NEED_FILE) {
		const struct unwind_map *m = &it->in.maps[it->res.need_map];

		if (!once(sp, m->dev, m->ino))
			return;
		if (m->dev == UNWIND_VDSO_DEV && m->ino == UNWIND_VDSO_INO) {
			unwind_remote_add_image(r, m, files->vdso, files->vdso_len);
		} else {
			int fd = files->open(files->ctx, it->tgid, m);

			unwind_remote_add_file(r, m, fd);
			if (fd >= 0)
				close(fd);
		}
	}
}

int unwind_remote_batch(struct unwind_remote *r, struct unwind_remote_item *items, unsigned n,
			const struct unwind_remote_files *files)
{
	struct unwind_remote_item *todo[UNWR_BATCH_MAX];
	unsigned ntodo = 0, max = 0;
	int err = 0;

	if (n > UNWR_BATCH_MAX)
		return -E2BIG;
	start_waiting(r);
	for (unsigned i = 0; i < n; i++) {
		memset(&items[i].res, 0, sizeof(items[i].res));
		items[i].err = 0;
		/* one answer per item, as long as the longest wants */
		max = items[i].max > max ? items[i].max : max;
		todo[ntodo++] = &items[i];
	}
	/* each pass may need one more mapping or file per item: as many passes
	 * as the deepest stack has frames in distinct files, bounded */
	for (unsigned pass = 0; pass < 16 && ntodo; pass++) {
		unsigned first = 0, again = 0;

		while (first < ntodo) {
			size_t bytes = sizeof(struct unwr_req);
			unsigned k = 0;

			/* as many as fit one request */
			while (first + k < ntodo &&
			       bytes + sizeof(struct unwr_item) + todo[first + k]->in.stack_len <=
				       SANDBOX_MAX_REQUEST) {
				bytes += sizeof(struct unwr_item) + todo[first + k]->in.stack_len;
				k++;
			}
			if (!k) { /* one stack larger than a request: cannot be asked */
				todo[first]->err = -E2BIG;
				first++;
				continue;
			}
			err = batch_call(r, todo + first, k, max);
			if (err) {
				for (unsigned i = first; i < ntodo; i++)
					todo[i]->err = err;
				if (err == -ETIMEDOUT)
					r->cut_short += ntodo - first;
				return stop_waiting(r, 0);
			}
			first += k;
		}
		struct supplied sp = {.n = 0};

		for (unsigned i = 0; i < ntodo; i++) {
			struct unwind_remote_item *it = todo[i];

			if (it->err || (it->res.status != (enum unwind_status)UNWR_NEED_MAPS &&
					it->res.status != UNWIND_NEED_FILE))
				continue;
			supply(r, it, files, &sp);
			if (!it->err)
				todo[again++] = it;
			else if (it->err == -ETIMEDOUT)
				r->cut_short++;
		}
		ntodo = again;
	}
	for (unsigned i = 0; i < ntodo; i++) {
		/* still asking after every pass */
		todo[i]->res.n = 0;
		todo[i]->res.status = UNWIND_BAD_CFI;
	}
	return stop_waiting(r, 0);
}

void unwind_remote_get_stats(const struct unwind_remote *r, struct unwinder_stats *out)
{
	*out = r->stats;
}

uint64_t unwind_remote_cut_short(const struct unwind_remote *r)
{
	return r->cut_short;
}
