// SPDX-License-Identifier: GPL-2.0-only
#include "agent/capmgr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "agent/capbudget.h"
#include "base/config.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "probes/ustack.h"

struct kind_slot {
	const struct capture_ops *ops;
	void *state;
	int prepare_err;
	struct capture_session *busy; /* session using this kind now */
	uint64_t runs;
};

struct running_capture {
	struct kind_slot *slot;
	struct loop_timer *timer;
	struct capture_session *session;
	struct capture_outcome out;
	uint64_t started_mono_ms;
	uint64_t planned_ms; /* its window: charged to the budget while it runs */
	bool done;
	bool ring_added;
};

struct capture_session {
	struct capmgr *mgr;
	struct capture_target target;
	struct running_capture caps[8];
	unsigned n, pending;
	capmgr_done_cb done;
	void *ctx;
	uint64_t started_ms;
	bool interrupted;
	char cut_reason[160];		   /* non-empty: the guard ended the window early */
	struct loop_timer *complete_timer; /* completes sessions with nothing attached */
	struct capture_session *next;
};

struct capmgr {
	struct capmgr_opts opts;
	struct kind_slot *slots;
	unsigned nslots;
	struct capture_session *sessions;
	unsigned nsessions;
	struct capbudget spent; /* capture.max_seconds_per_hour, to the millisecond */
	uint64_t refused_budget;
	uint64_t refused_busy;
	struct ustack_shared *ustack; /* DWARF user stacks, shared by profile and offcpu */
};

int capmgr_new(struct capmgr **out, const struct capmgr_opts *opts)
{
	struct capmgr *m = calloc(1, sizeof(*m));
	struct capture_env env = {.cfg = opts->cfg, .sym = opts->sym, .cgroups = opts->cgroups};
	const struct capture_ops *const *kinds = opts->kinds ? opts->kinds : capture_kinds;
	unsigned n = 0;
	int err;

	if (!m)
		return -ENOMEM;
	m->opts = *opts;
	err = ustack_shared_new(&m->ustack, opts->cfg, opts->sym);
	if (err)
		log_warn("DWARF user stacks unavailable: %s", strerror(-err));
	env.ustack = m->ustack;
	while (kinds[n])
		n++;
	m->slots = calloc(n, sizeof(*m->slots));
	if (!m->slots) {
		ustack_shared_free(&m->ustack);
		free(m);
		return -ENOMEM;
	}
	m->nslots = n;
	for (unsigned i = 0; i < n; i++) {
		struct kind_slot *s = &m->slots[i];

		s->ops = kinds[i];
		/* load and verify now, so a firing rule only has to attach */
		s->prepare_err = s->ops->prepare(&s->state, &env);
		if (s->prepare_err)
			log_warn("capture kind %s unavailable: %s", s->ops->kind,
				 strerror(-s->prepare_err));
		else
			log_debug("capture kind %s loaded", s->ops->kind);
	}
	*out = m;
	return 0;
}

void capmgr_free(struct capmgr **pm)
{
	struct capmgr *m = pm ? *pm : NULL;

	if (!m)
		return;
	capmgr_stop_all(m);
	for (unsigned i = 0; i < m->nslots; i++)
		if (!m->slots[i].prepare_err)
			m->slots[i].ops->release(m->slots[i].state);
	free(m->slots);
	ustack_shared_free(&m->ustack);
	free(m);
	*pm = NULL;
}

void capmgr_set_config(struct capmgr *m, const struct agent_config *cfg)
{
	m->opts.cfg = cfg;
}

static struct kind_slot *slot_of(const struct capmgr *m, const struct capture_ops *ops)
{
	for (unsigned i = 0; i < m->nslots; i++)
		if (m->slots[i].ops == ops)
			return &m->slots[i];
	return NULL;
}

bool capmgr_kind_ready(const struct capmgr *m, const char *kind, const char **why)
{
	for (unsigned i = 0; i < m->nslots; i++) {
		if (strcmp(m->slots[i].ops->kind, kind))
			continue;
		if (m->slots[i].prepare_err) {
			if (why)
				*why = strerror(-m->slots[i].prepare_err);
			return false;
		}
		return true;
	}
	if (why)
		*why = "unknown kind";
	return false;
}

unsigned capmgr_running(const struct capmgr *m)
{
	return m->nsessions;
}

unsigned capmgr_running_kinds(const struct capmgr *m, const char **kinds, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < m->nslots && n < max; i++)
		if (m->slots[i].busy)
			kinds[n++] = m->slots[i].ops->kind;
	return n;
}

void capmgr_tick(struct capmgr *m)
{
	for (unsigned i = 0; i < m->nslots; i++)
		if (m->slots[i].busy && m->slots[i].ops->tick)
			m->slots[i].ops->tick(m->slots[i].state);
}

/* Spent in the last hour, and promised to captures still running. */
static uint64_t budget_used_ms(const struct capmgr *m, uint64_t now_mono_ms)
{
	uint64_t used = capbudget_used_ms(&m->spent, now_mono_ms);

	for (const struct capture_session *s = m->sessions; s; s = s->next)
		for (unsigned i = 0; i < s->n; i++)
			if (!s->caps[i].done)
				used += s->caps[i].planned_ms;
	return used;
}

static void session_finish_one(struct running_capture *rc);

static void session_complete(struct capture_session *s)
{
	struct capmgr *m = s->mgr;
	struct capture_session **pp = &m->sessions;

	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = s->next;
		m->nsessions--;
	}
	loop_timer_free(&s->complete_timer);
	s->done(s->ctx, s);
}

static void complete_later(void *ctx, struct loop_timer *t)
{
	(void)t;
	session_complete(ctx);
}

static void capture_timer(void *ctx, struct loop_timer *t)
{
	struct running_capture *rc = ctx;

	(void)t;
	session_finish_one(rc);
}

static void ring_ready(void *ctx, int fd, uint32_t events)
{
	struct running_capture *rc = ctx;

	(void)fd;
	(void)events;
	rc->slot->ops->ring_ready(rc->slot->state);
}

/* Detaches, reads out, and completes the session when it was the last one. */
static void session_finish_one(struct running_capture *rc)
{
	struct capture_session *s = rc->session;
	struct capmgr *m = s->mgr;
	uint64_t now = now_mono_ns() / 1000000;
	struct kind_slot *slot = rc->slot;

	if (rc->done)
		return;
	rc->done = true;
	loop_timer_free(&rc->timer);
	if (slot && slot->busy == s) {
		slot->ops->stop(slot->state);
		if (rc->ring_added) {
			/* drain what is left before the ring is forgotten */
			slot->ops->ring_ready(slot->state);
			loop_del_fd(m->opts.loop, slot->ops->ring_fd(slot->state));
		}
		rc->out.duration_ms = now - rc->started_mono_ms;
		if (s->interrupted) {
			rc->out.status = "interrupted";
		} else {
			int err = slot->ops->collect(slot->state, &rc->out.result);

			if (err) {
				rc->out.status = "failed";
				if (!rc->out.result.error[0])
					snprintf(rc->out.result.error, sizeof(rc->out.result.error),
						 "reading the capture failed: %s", strerror(-err));
			} else if (s->cut_reason[0]) {
				rc->out.status = "truncated";
				snprintf(rc->out.truncated_reason, sizeof(rc->out.truncated_reason),
					 "%s", s->cut_reason);
			} else {
				rc->out.status = rc->out.result.partial ? "partial" : "ok";
			}
		}
		slot->busy = NULL;
		capbudget_add(&m->spent, rc->started_mono_ms, now);
	}
	if (--s->pending == 0)
		session_complete(s);
}

static int refuse(struct capmgr_start_result *res, enum capmgr_refusal why, const char *kind)
{
	if (res) {
		res->refusal = why;
		res->kind = kind;
	}
	return -EBUSY;
}

int capmgr_start(struct capmgr *m, const struct capture_request *req, capmgr_done_cb done,
		 void *ctx, struct capmgr_start_result *res)
{
	const struct agent_config *cfg = m->opts.cfg;
	struct capture_session *s;
	uint64_t want_ms = 0;
	int err;

	if (res)
		*res = (struct capmgr_start_result){CAPMGR_STARTED, NULL};
	if (!req->dry_run) {
		if (m->nsessions >= cfg->capture.max_concurrent) {
			m->refused_busy++;
			return refuse(res, CAPMGR_BUSY_SESSIONS, NULL);
		}
		for (unsigned i = 0; i < req->n; i++) {
			struct kind_slot *slot = slot_of(m, req->items[i].ops);

			if (slot && slot->busy) {
				m->refused_busy++;
				return refuse(res, CAPMGR_BUSY_KIND, req->items[i].ops->kind);
			}
			want_ms += req->items[i].params.duration_ms;
		}
		if (budget_used_ms(m, now_mono_ns() / 1000000) + want_ms >
		    cfg->capture.max_seconds_per_hour * 1000) {
			m->refused_budget++;
			return refuse(res, CAPMGR_BUDGET, NULL);
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->mgr = m;
	s->target = req->target;
	s->done = done;
	s->ctx = ctx;
	s->started_ms = now_real_ms();
	s->n = req->n;
	s->pending = req->n;

	for (unsigned i = 0; i < req->n; i++) {
		struct running_capture *rc = &s->caps[i];
		const struct capture_request_item *it = &req->items[i];

		rc->session = s;
		rc->out.kind = it->ops->kind;
		rc->out.target = it->own_target ? it->target : req->target;
		rc->out.started_real_ms = now_real_ms();
		rc->started_mono_ms = now_mono_ns() / 1000000;
		rc->planned_ms = it->params.duration_ms;
		rc->slot = slot_of(m, it->ops);
		if (req->dry_run) {
			rc->out.status = "dry_run";
			rc->done = true;
			rc->slot = NULL;
			continue;
		}
		if (!rc->slot || rc->slot->prepare_err) {
			rc->out.status = "unavailable";
			snprintf(rc->out.result.error, sizeof(rc->out.result.error),
				 "capture kind not loaded on this host: %s",
				 rc->slot ? strerror(-rc->slot->prepare_err) : "unknown");
			rc->done = true;
			rc->slot = NULL;
			continue;
		}
		err = rc->slot->ops->start(rc->slot->state, &rc->out.target, &it->params);
		if (err) {
			rc->slot->ops->stop(rc->slot->state);
			rc->out.status = "failed";
			snprintf(rc->out.result.error, sizeof(rc->out.result.error),
				 "attaching failed: %s", strerror(-err));
			rc->done = true;
			rc->slot = NULL;
			continue;
		}
		rc->slot->busy = s;
		rc->slot->runs++;
		if (rc->slot->ops->ring_fd) {
			int fd = rc->slot->ops->ring_fd(rc->slot->state);

			if (fd >= 0 && loop_add_fd(m->opts.loop, fd, EPOLLIN, ring_ready, rc) == 0)
				rc->ring_added = true;
		}
		err = loop_timer_new(m->opts.loop, it->params.duration_ms * 1000000ull, 0,
				     capture_timer, rc, &rc->timer);
		if (err) {
			/* without a timer the window would never end: stop right away */
			rc->slot->ops->stop(rc->slot->state);
			rc->slot->busy = NULL;
			rc->out.status = "failed";
			snprintf(rc->out.result.error, sizeof(rc->out.result.error),
				 "no timer for the window: %s", strerror(-err));
			rc->done = true;
			rc->slot = NULL;
			continue;
		}
		log_info("capture %s attached for %llums", it->ops->kind,
			 (unsigned long long)it->params.duration_ms);
	}
	for (unsigned i = 0; i < req->n; i++)
		if (s->caps[i].done)
			s->pending--;
	s->next = m->sessions;
	m->sessions = s;
	m->nsessions++;
	/* nothing attached (dry run, all failed): complete from the loop, never
	 * from inside the caller, which may still be updating its own state */
	if (s->pending == 0 &&
	    loop_timer_new(m->opts.loop, 1, 0, complete_later, s, &s->complete_timer))
		session_complete(s);
	return 0;
}

void capmgr_stop_all(struct capmgr *m)
{
	while (m->sessions) {
		struct capture_session *s = m->sessions;

		s->interrupted = true;
		if (s->pending == 0) {
			session_complete(s);
			continue;
		}
		for (unsigned i = 0; i < s->n; i++) {
			bool last = s->pending == 1;

			if (s->caps[i].done)
				continue;
			session_finish_one(&s->caps[i]);
			/* the last one completed the session, which its done callback freed */
			if (last)
				break;
		}
	}
}

void capmgr_cut_short(struct capmgr *m, const char *reason)
{
	struct capture_session *s = m->sessions;

	while (s) {
		struct capture_session *next = s->next;

		if (s->pending) {
			snprintf(s->cut_reason, sizeof(s->cut_reason), "%s", reason);
			for (unsigned i = 0; i < s->n; i++) {
				bool last = s->pending == 1;

				if (s->caps[i].done)
					continue;
				log_warn("capture %s cut short: %s", s->caps[i].out.kind, reason);
				session_finish_one(&s->caps[i]);
				/* the last one completed the session, which its done callback freed
				 */
				if (last)
					break;
			}
		}
		s = next;
	}
}

void *capture_session_ctx(const struct capture_session *s)
{
	return s->ctx;
}

const struct capture_target *capture_session_target(const struct capture_session *s)
{
	return &s->target;
}

unsigned capture_session_count(const struct capture_session *s)
{
	return s->n;
}

struct capture_outcome *capture_session_outcome(struct capture_session *s, unsigned i)
{
	return i < s->n ? &s->caps[i].out : NULL;
}

uint64_t capture_session_started_ms(const struct capture_session *s)
{
	return s->started_ms;
}

void capture_session_free(struct capture_session **ps)
{
	struct capture_session *s = ps ? *ps : NULL;

	if (!s)
		return;
	for (unsigned i = 0; i < s->n; i++)
		capture_result_clear(&s->caps[i].out.result);
	free(s);
	*ps = NULL;
}

json_t *capmgr_status(const struct capmgr *m)
{
	json_t *o = json_object(), *kinds = json_array(), *running = json_array();

	for (unsigned i = 0; i < m->nslots; i++) {
		const struct kind_slot *s = &m->slots[i];
		json_t *k = json_object();

		json_object_set_new(k, "kind", json_string(s->ops->kind));
		json_object_set_new(k, "state",
				    json_string(s->prepare_err ? "unavailable"
						: s->busy      ? "running"
							       : "ready"));
		if (s->prepare_err)
			json_object_set_new(k, "error", json_string(strerror(-s->prepare_err)));
		json_object_set_new(k, "runs", json_integer((json_int_t)s->runs));
		json_array_append_new(kinds, k);
	}
	for (const struct capture_session *s = m->sessions; s; s = s->next) {
		for (unsigned i = 0; i < s->n; i++) {
			if (s->caps[i].done)
				continue;
			json_t *r = json_object();

			json_object_set_new(r, "kind", json_string(s->caps[i].out.kind));
			json_object_set_new(r, "running_ms",
					    json_integer((json_int_t)(now_mono_ns() / 1000000 -
								      s->caps[i].started_mono_ms)));
			json_array_append_new(running, r);
		}
	}
	json_object_set_new(o, "kinds", kinds);
	json_object_set_new(o, "running", running);
	json_object_set_new(o, "refused_busy", json_integer((json_int_t)m->refused_busy));
	json_object_set_new(o, "refused_budget", json_integer((json_int_t)m->refused_budget));
	{
		uint64_t used = budget_used_ms(m, now_mono_ns() / 1000000) / 1000,
			 cap = m->opts.cfg->capture.max_seconds_per_hour;

		json_object_set_new(o, "budget_used_seconds", json_integer((json_int_t)used));
		json_object_set_new(o, "budget_left_seconds",
				    json_integer((json_int_t)(used < cap ? cap - used : 0)));
	}
	json_object_set_new(o, "unwind", ustack_shared_status(m->ustack));
	return o;
}
