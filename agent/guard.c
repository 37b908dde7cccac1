// SPDX-License-Identifier: GPL-2.0-only
#include "agent/guard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "probes/bpfutil.h"

#define GUARD_HOOKS	 GUARD_MAX_HOOKS
#define GUARD_HOLD_SHIFT 4 /* a hook mode that keeps coming back over holds 16x at most */

/* What the guard knows about one opt-in hook mode. */
struct hook_state {
	char name[32];
	bool throttled;
	unsigned over, calm; /* consecutive samples over budget / cheap enough to resume */
	/* learnt while on, to estimate the cost while off (EWMA) */
	double ns_per_event, events_per_load;
	double cpu_pct, est_cpu_pct; /* last measured; estimated while throttled (< 0 unknown) */
	uint64_t throttled_at_ns, resumed_at_ns;
	unsigned rethrottles; /* back over budget soon after a resume: the hold doubles */
	uint64_t throttles;
	char reason[200];
};

#define WATCH_EVERY_MAX 16 /* a widened watcher samples at least every 16 rounds */

/* What the guard knows about the watch layer's own cost. */
struct watch_state {
	double avg_us;	 /* agent CPU per round, recent average */
	uint64_t rounds; /* since the last change */
	uint64_t widenings;
	char last_reason[200];
	struct {
		char name[32];
		unsigned every;
	} w[WATCH_COST_MAX];
	unsigned n;
};

struct guard {
	struct guard_opts opts;
	struct watch_state watch;
	struct hook_state hooks[GUARD_HOOKS];
	unsigned nhooks;
	long ncpus;
	bool stats_held;
	bool have_prev;
	uint64_t prev_mono_ns, prev_agent_ns, prev_bpf_ns;
	unsigned strikes;
	/* last sample, for status */
	double agent_pct, capture_pct;
	uint64_t cuts;
	char last_cut[200];
};

int guard_new(struct guard **out, const struct guard_opts *opts)
{
	struct guard *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->opts = *opts;
	g->ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (g->ncpus < 1)
		g->ncpus = 1;
	*out = g;
	return 0;
}

static void release_stats(struct guard *g)
{
	if (g->stats_held)
		bpf_stats_release();
	g->stats_held = false;
	g->have_prev = false;
	g->strikes = 0;
}

void guard_free(struct guard **pg)
{
	if (!pg || !*pg)
		return;
	release_stats(*pg);
	free(*pg);
	*pg = NULL;
}

void guard_set_opts(struct guard *g, const struct guard_opts *opts)
{
	g->opts = *opts;
	if (!opts->enabled)
		release_stats(g);
}

bool guard_sample(struct guard *g, const char *const *kinds, unsigned nkinds, char *reason,
		  size_t reason_len)
{
	uint64_t now = now_mono_ns(), agent = process_cpu_ns(), bpf = 0;
	double elapsed;
	bool over = false;

	if (!g->opts.enabled || nkinds == 0) {
		/* nothing to guard: statistics cost every BPF program on the host */
		release_stats(g);
		g->capture_pct = 0;
		return false;
	}
	if (!g->stats_held) {
		int err = bpf_stats_hold();

		if (err)
			log_warn("guard: cannot enable BPF run-time statistics: %s",
				 strerror(-err));
		g->stats_held = err == 0;
	}
	for (unsigned i = 0; i < nkinds; i++) {
		uint64_t ns, cnt;

		bpf_owner_runtime(kinds[i], &ns, &cnt);
		bpf += ns;
	}
	if (g->have_prev && now > g->prev_mono_ns) {
		elapsed = (double)(now - g->prev_mono_ns);
		g->agent_pct = 100.0 * (double)(agent - g->prev_agent_ns) / elapsed;
		g->capture_pct = bpf >= g->prev_bpf_ns ? 100.0 * (double)(bpf - g->prev_bpf_ns) /
								 (elapsed * (double)g->ncpus)
						       : 0;
		if (g->capture_pct > g->opts.capture_cpu_pct) {
			snprintf(reason, reason_len,
				 "capture programs used %.1f%% of all CPUs (guard.capture_cpu_pct "
				 "%g%%)",
				 g->capture_pct, g->opts.capture_cpu_pct);
			over = true;
		} else if (g->agent_pct > g->opts.agent_cpu_pct) {
			snprintf(reason, reason_len,
				 "the agent used %.1f%% of a CPU (guard.agent_cpu_pct %g%%)",
				 g->agent_pct, g->opts.agent_cpu_pct);
			over = true;
		}
	}
	g->prev_mono_ns = now;
	g->prev_agent_ns = agent;
	g->prev_bpf_ns = bpf;
	g->have_prev = g->stats_held;
	/* one sample over can be a burst of collection work; act on a streak */
	g->strikes = over ? g->strikes + 1 : 0;
	if (g->strikes >= MAX(g->opts.strikes, 1u)) {
		g->cuts++;
		snprintf(g->last_cut, sizeof(g->last_cut), "%s", reason);
		g->strikes = 0;
		return true;
	}
	return false;
}

static struct hook_state *hook_state_of(struct guard *g, const char *name)
{
	for (unsigned i = 0; i < g->nhooks; i++)
		if (strcmp(g->hooks[i].name, name) == 0)
			return &g->hooks[i];
	if (g->nhooks == GUARD_HOOKS)
		return NULL;
	snprintf(g->hooks[g->nhooks].name, sizeof(g->hooks[0].name), "%s", name);
	g->hooks[g->nhooks].est_cpu_pct = -1;
	return &g->hooks[g->nhooks++];
}

static double ewma(double prev, double sample)
{
	return prev > 0 ? 0.7 * prev + 0.3 * sample : sample;
}

/* While on: how many events one unit of load makes, and what an event costs. */
static void hook_learn(const struct guard *g, struct hook_state *st, const struct guard_hook *h)
{
	double events_per_s;

	if (h->ns_per_event <= 0 || h->cpu_pct <= 0 || h->load_per_s <= 0)
		return;
	events_per_s = h->cpu_pct / 100.0 * (double)g->ncpus * 1e9 / h->ns_per_event;
	st->ns_per_event = ewma(st->ns_per_event, h->ns_per_event);
	st->events_per_load = ewma(st->events_per_load, events_per_s / h->load_per_s);
}

/* While off: the cost the hooks would have at this load; -1 when unknown. */
static double hook_estimate(const struct guard *g, const struct hook_state *st, double load)
{
	if (st->events_per_load <= 0 || st->ns_per_event <= 0 || load < 0)
		return -1;
	return 100.0 * load * st->events_per_load * st->ns_per_event / ((double)g->ncpus * 1e9);
}

static uint64_t hook_hold_ns(const struct guard *g, const struct hook_state *st)
{
	return g->opts.hook_hold_ms * 1000000ull << st->rethrottles;
}

static enum guard_hook_action hook_while_on(struct guard *g, struct hook_state *st,
					    const struct guard_hook *h, char *reason,
					    size_t reason_len)
{
	uint64_t now = now_mono_ns();

	st->throttled = false;
	st->cpu_pct = h->cpu_pct;
	st->est_cpu_pct = -1;
	hook_learn(g, st, h);
	st->over = h->cpu_pct > g->opts.hook_cpu_pct ? st->over + 1 : 0;
	if (st->over < MAX(g->opts.strikes, 1u))
		return GUARD_HOOK_KEEP;
	st->over = 0;
	if (st->resumed_at_ns && now - st->resumed_at_ns < 4 * hook_hold_ns(g, st))
		st->rethrottles = MIN(st->rethrottles + 1, (unsigned)GUARD_HOLD_SHIFT);
	else
		st->rethrottles = 0;
	st->throttled = true;
	st->throttled_at_ns = now;
	st->throttles++;
	snprintf(reason, reason_len, "%s hooks used %.2f%% of all CPUs (guard.hook_cpu_pct %g%%)",
		 h->name, h->cpu_pct, g->opts.hook_cpu_pct);
	snprintf(st->reason, sizeof(st->reason), "%s", reason);
	return GUARD_HOOK_THROTTLE;
}

static enum guard_hook_action hook_while_off(struct guard *g, struct hook_state *st,
					     const struct guard_hook *h)
{
	uint64_t now = now_mono_ns();

	st->throttled = true;
	st->est_cpu_pct = hook_estimate(g, st, h->load_per_s);
	if (now - st->throttled_at_ns < hook_hold_ns(g, st))
		return GUARD_HOOK_KEEP;
	/* without an estimate, the hold alone decides: the next interval measures */
	if (st->est_cpu_pct >= g->opts.hook_cpu_pct / 2) {
		st->calm = 0;
		return GUARD_HOOK_KEEP;
	}
	if (++st->calm < MAX(g->opts.strikes, 1u))
		return GUARD_HOOK_KEEP;
	st->calm = 0;
	st->throttled = false;
	st->resumed_at_ns = now;
	return GUARD_HOOK_RESUME;
}

enum guard_hook_action guard_hook_sample(struct guard *g, const struct guard_hook *h, char *reason,
					 size_t reason_len)
{
	struct hook_state *st = hook_state_of(g, h->name);

	if (!st)
		return GUARD_HOOK_KEEP;
	if (!g->opts.enabled) {
		st->throttled = false;
		return h->throttled ? GUARD_HOOK_RESUME : GUARD_HOOK_KEEP;
	}
	if (!h->throttled)
		return hook_while_on(g, st, h, reason, reason_len);
	if (!st->throttled_at_ns) /* throttled before this guard knew it (a reload) */
		st->throttled_at_ns = now_mono_ns();
	return hook_while_off(g, st, h);
}

/* The watch layer's cost per round if watcher i were sampled every e rounds. */
static double watch_estimate(const struct watch_cost *in, double now_us, unsigned i, unsigned e)
{
	double cur = in->w[i].sample_us / in->w[i].every +
		     in->w[i].hold_us * (in->w[i].every - 1) / in->w[i].every;
	double next = in->w[i].sample_us / e + in->w[i].hold_us * (e - 1) / e;

	return now_us - cur + next;
}

static void watch_note(struct guard *g, const struct watch_cost *in)
{
	g->watch.n = MIN(in->n, (unsigned)WATCH_COST_MAX);
	for (unsigned i = 0; i < g->watch.n; i++) {
		snprintf(g->watch.w[i].name, sizeof(g->watch.w[i].name), "%s", in->w[i].name);
		g->watch.w[i].every = in->w[i].every;
	}
}

bool guard_watch_sample(struct guard *g, const struct watch_cost *in, const char **name,
			unsigned *every, char *reason, size_t reason_len)
{
	struct watch_state *ws = &g->watch;
	double budget = (double)g->opts.watch_cpu_us * (double)g->opts.interval_ms / 1000.0;
	unsigned widest = 1, pick = UINT32_MAX;
	double pct, best = 0;

	watch_note(g, in);
	if (!g->opts.enabled || !g->opts.watch_cpu_us || !g->opts.interval_ms) {
		/* no budget: every watcher samples every round */
		for (unsigned i = 0; i < in->n; i++)
			if (in->w[i].every > 1) {
				*name = in->w[i].name;
				*every = 1;
				snprintf(reason, reason_len, "the guard is off");
				return true;
			}
		return false;
	}
	ws->avg_us = ws->rounds ? 0.9 * ws->avg_us + 0.1 * in->round_us : in->round_us;
	ws->rounds++;
	for (unsigned i = 0; i < in->n; i++)
		widest = MAX(widest, in->w[i].every);
	/* after a change, let the average see a few whole cycles of the widest */
	if (ws->rounds < 4 * (uint64_t)widest + 8)
		return false;
	pct = 100.0 * ws->avg_us / ((double)g->opts.interval_ms * 1000.0);
	if (ws->avg_us > budget) {
		/* the watcher that costs the most per round now goes wider */
		for (unsigned i = 0; i < in->n; i++) {
			double share = in->w[i].sample_us / in->w[i].every;

			if (in->w[i].every < WATCH_EVERY_MAX && share > best) {
				best = share;
				pick = i;
			}
		}
		if (pick == UINT32_MAX)
			return false; /* as wide as it goes: status says so */
		*name = in->w[pick].name;
		*every = MIN(in->w[pick].every * 2, (unsigned)WATCH_EVERY_MAX);
		snprintf(
			reason, reason_len,
			"the watch layer used %.2f%% of a CPU (guard.watch_cpu %.1fms per second): "
			"%s sampled every %u intervals",
			pct, (double)g->opts.watch_cpu_us / 1000.0, *name, *every);
		snprintf(ws->last_reason, sizeof(ws->last_reason), "%s", reason);
		ws->widenings++;
		ws->rounds = 0;
		return true;
	}
	/* narrower where the estimate stays well under the budget */
	for (unsigned i = 0; i < in->n; i++) {
		unsigned e = in->w[i].every / 2;

		if (in->w[i].every <= 1 || in->w[i].sample_us <= 0)
			continue;
		if (watch_estimate(in, ws->avg_us, i, MAX(e, 1u)) < 0.75 * budget) {
			*name = in->w[i].name;
			*every = MAX(e, 1u);
			snprintf(reason, reason_len,
				 "the watch layer would use about %.2f%% of a CPU (guard.watch_cpu "
				 "%.1fms per second)",
				 100.0 * watch_estimate(in, ws->avg_us, i, MAX(e, 1u)) /
					 ((double)g->opts.interval_ms * 1000.0),
				 (double)g->opts.watch_cpu_us / 1000.0);
			ws->rounds = 0;
			return true;
		}
	}
	return false;
}

static json_t *watch_status(const struct guard *g)
{
	const struct watch_state *ws = &g->watch;
	json_t *o = json_object(), *w = json_object();

	json_object_set_new(o, "cpu_per_s_limit_ms",
			    json_real((double)g->opts.watch_cpu_us / 1000.0));
	if (g->opts.interval_ms)
		json_object_set_new(
			o, "cpu_pct",
			json_real(100.0 * ws->avg_us / ((double)g->opts.interval_ms * 1000.0)));
	json_object_set_new(o, "us_per_round", json_real(ws->avg_us));
	json_object_set_new(o, "widenings", json_integer((json_int_t)ws->widenings));
	if (ws->last_reason[0])
		json_object_set_new(o, "last_widen_reason", json_string(ws->last_reason));
	for (unsigned i = 0; i < ws->n; i++)
		json_object_set_new(w, ws->w[i].name, json_integer(ws->w[i].every));
	json_object_set_new(o, "every", w);
	return o;
}

static json_t *hooks_status(const struct guard *g)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < g->nhooks; i++) {
		const struct hook_state *st = &g->hooks[i];
		json_t *o = json_object();

		json_object_set_new(o, "name", json_string(st->name));
		json_object_set_new(o, "state", json_string(st->throttled ? "throttled" : "on"));
		json_object_set_new(o, "cpu_pct", json_real(st->cpu_pct));
		if (st->throttled && st->est_cpu_pct >= 0)
			json_object_set_new(o, "estimated_cpu_pct", json_real(st->est_cpu_pct));
		json_object_set_new(o, "throttles", json_integer((json_int_t)st->throttles));
		if (st->reason[0])
			json_object_set_new(o, "last_throttle_reason", json_string(st->reason));
		json_array_append_new(arr, o);
	}
	return arr;
}

json_t *guard_status(const struct guard *g)
{
	json_t *o = json_object();

	json_object_set_new(o, "enabled", json_boolean(g->opts.enabled));
	json_object_set_new(o, "capture_cpu_pct", json_real(g->capture_pct));
	json_object_set_new(o, "capture_cpu_pct_limit", json_real(g->opts.capture_cpu_pct));
	json_object_set_new(o, "agent_cpu_pct_limit", json_real(g->opts.agent_cpu_pct));
	json_object_set_new(o, "captures_cut_short", json_integer((json_int_t)g->cuts));
	if (g->last_cut[0])
		json_object_set_new(o, "last_cut_reason", json_string(g->last_cut));
	json_object_set_new(o, "hook_cpu_pct_limit", json_real(g->opts.hook_cpu_pct));
	json_object_set_new(o, "hooks", hooks_status(g));
	json_object_set_new(o, "watch", watch_status(g));
	return o;
}
