// SPDX-License-Identifier: GPL-2.0-only
#include "base/unwind_remote.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/sandbox.h"
#include "base/unwproto.h"

struct unwind_remote {
	struct sandbox *sb;
	uint64_t cache_bytes;
	uint64_t timeout_ms;
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
		      const struct unwinder_opts *opts, uint64_t timeout_ms)
{
	struct unwind_remote *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->sb = sb;
	r->cache_bytes = opts->cache_bytes;
	r->timeout_ms = timeout_ms ? timeout_ms : 5000;
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
	/* its own deadline, plus the one in flight ahead of it */
	if (sandbox_wait(r->sb, id, 2 * r->timeout_ms + 1000) || !r->a.done) {
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

int unwind_remote_unwind(struct unwind_remote *r, int tgid, uint64_t gen,
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

void unwind_remote_get_stats(const struct unwind_remote *r, struct unwinder_stats *out)
{
	*out = r->stats;
}
