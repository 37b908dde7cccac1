// SPDX-License-Identifier: GPL-2.0-only
/* The helper's side of SYMP_OP_UNWIND (base/unwproto.h): the unwinder, its
 * CFI cache and the processes' mappings live here, in the sandbox; the agent
 * sends registers and stack copies and gets return addresses back. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/sandbox.h"
#include "base/unwind_ops.h"
#include "base/unwproto.h"

struct unwr_proc {
	uint32_t tgid;
	uint64_t gen;
	struct unwind_map *maps;
	uint32_t n, total;
	uint64_t last_use;
};

struct unwr_state {
	struct unwinder *u;
	uint64_t cache_bytes;
	struct unwr_proc procs[UNWR_PROCS];
	uint64_t clock;
};

void *unwind_op_new(void)
{
	return calloc(1, sizeof(struct unwr_state));
}

void unwind_op_free(void *state)
{
	struct unwr_state *st = state;

	if (!st)
		return;
	unwinder_free(&st->u);
	for (unsigned i = 0; i < UNWR_PROCS; i++)
		free(st->procs[i].maps);
	free(st);
}

static struct unwr_proc *proc_find(struct unwr_state *st, uint32_t tgid, uint64_t gen)
{
	for (unsigned i = 0; i < UNWR_PROCS; i++) {
		struct unwr_proc *p = &st->procs[i];

		if (p->maps && p->tgid == tgid && p->gen == gen) {
			p->last_use = ++st->clock;
			return p;
		}
	}
	return NULL;
}

/* maps[first..first+count) of a reading of tgid's mappings; a new reading
 * replaces the old one, or the least recently used process. */
static int take_maps(struct unwr_state *st, const struct unwr_req *req, const void *data,
		     size_t len)
{
	struct unwr_proc *p = NULL, *victim = &st->procs[0];

	if (req->total > 65536 || req->count > UNWR_MAPS_PER_MSG || req->first > req->total ||
	    req->count > req->total - req->first || len != req->count * sizeof(struct unwind_map))
		return -EINVAL;
	for (unsigned i = 0; i < UNWR_PROCS && !p; i++) {
		if (st->procs[i].tgid == req->tgid && st->procs[i].maps)
			p = &st->procs[i];
		else if (st->procs[i].last_use < victim->last_use)
			victim = &st->procs[i];
	}
	if (!p)
		p = victim;
	if (p->gen != req->gen || p->tgid != req->tgid || !p->maps || p->total != req->total) {
		free(p->maps);
		memset(p, 0, sizeof(*p));
		p->maps = calloc(req->total ? req->total : 1, sizeof(*p->maps));
		if (!p->maps)
			return -ENOMEM;
		p->tgid = req->tgid;
		p->gen = req->gen;
		p->total = req->total;
	}
	memcpy(p->maps + req->first, data, len);
	if (req->first + req->count > p->n)
		p->n = req->first + req->count;
	p->last_use = ++st->clock;
	return 0;
}

int unwind_op(void *state, const struct sandbox_request *rq, struct strbuf *reply)
{
	struct unwr_state *st = state;
	struct unwr_req req;
	struct unwr_reply *rep;
	const char *data;
	size_t len;
	int err = 0;

	if (!st)
		return -ENOMEM;
	if (rq->len < sizeof(req))
		return -EINVAL;
	memcpy(&req, rq->data, sizeof(req));
	data = (const char *)rq->data + sizeof(req);
	len = rq->len - sizeof(req);
	if (!st->u || st->cache_bytes != req.cache_bytes) {
		struct unwinder_opts o = {.cache_bytes = req.cache_bytes};

		unwinder_free(&st->u);
		if ((err = unwinder_new(&st->u, &o)))
			return err;
		st->cache_bytes = req.cache_bytes;
	}
	if (!(rep = strbuf_extend(reply, sizeof(*rep))))
		return reply->err;
	switch (req.cmd) {
	case UNWR_MAPS:
		err = take_maps(st, &req, data, len);
		break;
	case UNWR_FILE:
		if (rq->nfds != 1)
			return -EINVAL;
		err = unwinder_add_file(st->u, &req.map, rq->fds[0]);
		break;
	case UNWR_IMAGE:
		err = unwinder_add_image(st->u, &req.map, data, len);
		break;
	case UNWR_UNWIND: {
		struct unwr_proc *p = proc_find(st, req.tgid, req.gen);
		struct unwind_input in = {0};
		struct unwind_result res = {0};
		uint64_t *pcs;

		if (req.stack_len != len || req.max_pcs > 1024)
			return -EINVAL;
		if (!p || p->n != p->total) {
			rep->status = UNWR_NEED_MAPS;
			break;
		}
		memcpy(in.regs, req.regs, sizeof(in.regs));
		in.regs_valid = req.regs_valid;
		in.pc = req.pc;
		in.stack = (const uint8_t *)data;
		in.stack_len = len;
		in.stack_addr = req.stack_addr;
		in.maps = p->maps;
		in.nmaps = p->n;
		pcs = calloc(req.max_pcs ? req.max_pcs : 1, sizeof(*pcs));
		if (!pcs)
			return -ENOMEM;
		err = unwinder_unwind(st->u, &in, pcs, req.max_pcs, &res);
		if (!err && res.n > req.max_pcs)
			err = -EPROTO;
		if (!err && strbuf_append(reply, pcs, res.n * sizeof(*pcs)) == 0) {
			rep = (struct unwr_reply *)reply->p;
			rep->status = res.status;
			rep->n = res.n;
			rep->need_map = res.need_map;
			rep->fp_frames = res.fp_frames;
		}
		free(pcs);
		break;
	}
	case UNWR_BATCH: {
		const struct unwr_item *items = (const void *)data;
		const char *stack;
		struct unwr_result *results;
		size_t off, need;
		uint64_t *pcs;

		if (!req.count || req.count > UNWR_BATCH_MAX || req.max_pcs > 1024 ||
		    len < req.count * sizeof(*items))
			return -EINVAL;
		need = req.count * sizeof(*items);
		for (unsigned i = 0; i < req.count; i++) {
			if (items[i].stack_len > len - need)
				return -EINVAL;
			need += items[i].stack_len;
		}
		if (need != len)
			return -EINVAL;
		if (!(results = strbuf_extend(reply, req.count * sizeof(*results))))
			return reply->err;
		pcs = calloc(req.max_pcs ? req.max_pcs : 1, sizeof(*pcs));
		if (!pcs)
			return -ENOMEM;
		stack = data + req.count * sizeof(*items);
		off = sizeof(*rep);
		for (unsigned i = 0; i < req.count && !err; i++) {
			struct unwr_proc *p = proc_find(st, items[i].tgid, items[i].gen);
			struct unwind_input in = {0};
			struct unwind_result res = {0};
			struct unwr_result *out;

			if (!p || p->n != p->total) {
				res.status = (enum unwind_status)UNWR_NEED_MAPS;
			} else {
				memcpy(in.regs, items[i].regs, sizeof(in.regs));
				in.regs_valid = items[i].regs_valid;
				in.pc = items[i].pc;
				in.stack = (const uint8_t *)stack;
				in.stack_len = items[i].stack_len;
				in.stack_addr = items[i].stack_addr;
				in.maps = p->maps;
				in.nmaps = p->n;
				err = unwinder_unwind(st->u, &in, pcs, req.max_pcs, &res);
				if (!err && res.n > req.max_pcs)
					err = -EPROTO;
			}
			stack += items[i].stack_len;
			if (err || strbuf_append(reply, pcs, res.n * sizeof(*pcs)))
				break;
			/* strbuf_append may have moved the buffer */
			out = (struct unwr_result *)(reply->p + off) + i;
			*out = (struct unwr_result){res.status, res.n, res.need_map, res.fp_frames};
		}
		free(pcs);
		break;
	}
	default:
		return -EINVAL;
	}
	rep = (struct unwr_reply *)reply->p;
	if (rep)
		unwinder_get_stats(st->u, &rep->stats);
	return err ? err : reply->err;
}
