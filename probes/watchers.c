// SPDX-License-Identifier: GPL-2.0-only
/* The registry of watchers and the set the agent runs. */
#include "probes/watcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "base/tsdb.h"
#include "base/util.h"

extern const struct watcher_ops cpustat_watcher;
extern const struct watcher_ops schedstat_watcher;
extern const struct watcher_ops psi_watcher;
extern const struct watcher_ops memstat_watcher;
extern const struct watcher_ops diskstats_watcher;
extern const struct watcher_ops cgroupstat_watcher;
extern const struct watcher_ops taskwatch_watcher;
extern const struct watcher_ops runqlat_watcher;
extern const struct watcher_ops biolat_watcher;

/* Order is part of the status contract: cpustat stays first. */
const struct watcher_ops *const watcher_kinds[] = {
	&cpustat_watcher,   &schedstat_watcher,
	&psi_watcher,	    &memstat_watcher,
	&diskstats_watcher, &cgroupstat_watcher,
	&taskwatch_watcher, &runqlat_watcher,
	&biolat_watcher,    NULL,
};

#define WHY_MAX 256

struct watcher_slot {
	const struct watcher_ops *ops;
	void *state;
	int open_err; /* nonzero: not running on this host (WATCHER_OFF: not enabled) */
	int last_err;
	bool throttled;
	char why[WHY_MAX]; /* why it is unavailable */
	char throttled_reason[WHY_MAX];
	uint64_t samples;
	uint64_t cpu_ns; /* agent CPU time spent sampling */
	uint64_t max_ns;
	uint64_t last_ns;      /* the last round (a sample or a held one) */
	double sample_ewma_ns; /* a full sample */
	double hold_ewma_ns;   /* a held round */
	unsigned every;	       /* sampled every n rounds (the guard widens) */
	uint64_t rounds;       /* since every changed */
	char widened_reason[WHY_MAX];
	uint64_t widened; /* times widened since start */
};

struct watchers {
	struct watcher_slot *slots;
	unsigned n;
	uint64_t round_ns; /* every watcher, the last round */
};

int watchers_open(struct watchers **out, const struct watcher_env *env)
{
	struct watchers *w = calloc(1, sizeof(*w));
	unsigned n = 0;

	if (!w)
		return -ENOMEM;
	while (watcher_kinds[n])
		n++;
	w->slots = calloc(n, sizeof(*w->slots));
	if (!w->slots) {
		free(w);
		return -ENOMEM;
	}
	w->n = n;
	for (unsigned i = 0; i < n; i++) {
		struct watcher_slot *s = &w->slots[i];
		struct watcher_env e = *env;

		e.why = s->why;
		e.why_len = sizeof(s->why);
		s->ops = watcher_kinds[i];
		s->every = 1;
		s->open_err = s->ops->open(&s->state, &e);
		if (s->open_err == WATCHER_OFF) {
			log_debug("watcher %s: off%s%s", s->ops->name, s->why[0] ? ": " : "",
				  s->why);
			continue;
		}
		if (s->open_err && !s->why[0])
			snprintf(s->why, sizeof(s->why), "%s", strerror(-s->open_err));
		/* a watcher the host cannot support degrades; the others keep working */
		if (s->open_err)
			log_warn("watcher %s unavailable: %s", s->ops->name, s->why);
	}
	*out = w;
	return 0;
}

void watchers_free(struct watchers **pw)
{
	struct watchers *w = pw ? *pw : NULL;

	if (!w)
		return;
	for (unsigned i = 0; i < w->n; i++)
		if (!w->slots[i].open_err && w->slots[i].ops->close)
			w->slots[i].ops->close(w->slots[i].state);
	free(w->slots);
	free(w);
	*pw = NULL;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double ewma(double prev, double v)
{
	return prev > 0 ? 0.8 * prev + 0.2 * v : v;
}

int watchers_sample(struct watchers *w, struct tsdb *db, uint64_t real_ms)
{
	if (w)
		w->round_ns = 0;
	tsdb_begin_round(db, real_ms);
	for (unsigned i = 0; w && i < w->n; i++) {
		struct watcher_slot *s = &w->slots[i];
		bool held = s->every > 1 && s->ops->holds && s->rounds++ % s->every;
		uint64_t t0, took;
		int err;

		if (s->open_err || s->throttled)
			continue;
		t0 = thread_cpu_ns();
		tsdb_set_source(db, i + 1);
		if (held)
			tsdb_hold_source(db, i + 1);
		err = held ? 0 : s->ops->sample(s->state, db);
		took = thread_cpu_ns() - t0;
		s->cpu_ns += took;
		s->max_ns = MAX(s->max_ns, took);
		s->last_ns = took;
		w->round_ns += took;
		if (held)
			s->hold_ewma_ns = ewma(s->hold_ewma_ns, (double)took);
		else
			s->sample_ewma_ns = ewma(s->sample_ewma_ns, (double)took);
		s->samples++;
		if (err && err != s->last_err)
			log_warn("watcher %s: %s", s->ops->name, strerror(-err));
		s->last_err = err;
	}
	tsdb_set_source(db, 0);
	tsdb_end_round(db);
	return 0;
}

static const char *slot_state(const struct watcher_slot *s)
{
	if (s->open_err == WATCHER_OFF)
		return "off";
	if (s->open_err)
		return "unavailable";
	if (s->throttled)
		return "throttled";
	return s->last_err ? "error" : "ok";
}

json_t *watchers_status(const struct watchers *w)
{
	json_t *arr = json_array();

	for (unsigned i = 0; w && i < w->n; i++) {
		const struct watcher_slot *s = &w->slots[i];
		json_t *o = json_object();
		struct watcher_hook_cost c;

		json_object_set_new(o, "name", json_string(s->ops->name));
		json_object_set_new(o, "state", json_string(slot_state(s)));
		if (s->open_err && s->open_err != WATCHER_OFF)
			json_object_set_new(o, "error", json_string(s->why));
		else if (!s->open_err && s->last_err)
			json_object_set_new(o, "error", json_string(strerror(-s->last_err)));
		if (s->open_err == WATCHER_OFF && s->why[0])
			json_object_set_new(o, "reason", json_string(s->why));
		json_object_set_new(o, "samples", json_integer((json_int_t)s->samples));
		json_object_set_new(
			o, "sample_us_avg",
			json_real(s->samples ? (double)s->cpu_ns / 1000.0 / (double)s->samples
					     : 0));
		json_object_set_new(o, "sample_us_max", json_real((double)s->max_ns / 1000.0));
		json_object_set_new(o, "sample_us_total", json_real((double)s->cpu_ns / 1000.0));
		if (s->throttled)
			json_object_set_new(o, "throttled_reason",
					    json_string(s->throttled_reason));
		if (!s->open_err && s->ops->holds) {
			json_object_set_new(o, "sample_us_recent",
					    json_real(s->sample_ewma_ns / 1000.0));
			json_object_set_new(o, "every", json_integer(s->every));
			if (s->every > 1)
				json_object_set_new(o, "widened_reason",
						    json_string(s->widened_reason));
			json_object_set_new(o, "widened", json_integer((json_int_t)s->widened));
		}
		if (!s->open_err && s->ops->cost && s->ops->cost(s->state, &c) == 0) {
			json_object_set_new(o, "hook", json_string(c.name));
			json_object_set_new(o, "ns_per_event", json_real(c.ns_per_event));
			json_object_set_new(o, "ns_per_event_avg", json_real(c.ns_per_event_avg));
			json_object_set_new(o, "cpu_pct", json_real(c.cpu_pct));
			json_object_set_new(o, "events", json_integer((json_int_t)c.events));
		}
		/* a degraded watcher says so itself, after the generic fields; an
		 * error or throttle outranks it */
		if (!s->open_err && s->ops->status) {
			s->ops->status(s->state, o);
			if (strcmp(slot_state(s), "ok"))
				json_object_set_new(o, "state", json_string(slot_state(s)));
		}
		json_array_append_new(arr, o);
	}
	return arr;
}

int watchers_throttle(struct watchers *w, const char *name, const char *reason)
{
	for (unsigned i = 0; w && i < w->n; i++) {
		struct watcher_slot *s = &w->slots[i];
		int err;

		if (strcmp(s->ops->name, name))
			continue;
		if (s->open_err || !s->ops->throttle)
			return -EOPNOTSUPP;
		if (!!reason == s->throttled) {
			if (reason)
				snprintf(s->throttled_reason, sizeof(s->throttled_reason), "%s",
					 reason);
			return 0;
		}
		err = s->ops->throttle(s->state, reason != NULL);
		if (err)
			return err;
		s->throttled = reason != NULL;
		snprintf(s->throttled_reason, sizeof(s->throttled_reason), "%s",
			 reason ? reason : "");
		if (reason)
			log_warn("watcher %s throttled: %s", name, reason);
		else
			log_info("watcher %s resumed", name);
		return 0;
	}
	return -ENOENT;
}

int watchers_widen(struct watchers *w, const char *name, unsigned every, const char *reason)
{
	for (unsigned i = 0; w && i < w->n; i++) {
		struct watcher_slot *s = &w->slots[i];

		if (strcmp(s->ops->name, name))
			continue;
		if (s->open_err || !s->ops->holds)
			return -EOPNOTSUPP;
		every = MAX(every, 1u);
		if (every == s->every)
			return 0;
		if (every > s->every) {
			s->widened++;
			log_warn("watcher %s: sampled every %u intervals from now on: %s", name,
				 every, reason ? reason : "");
		} else {
			log_info("watcher %s: sampled every %u interval%s again%s%s", name, every,
				 every > 1 ? "s" : "", reason ? ": " : "", reason ? reason : "");
		}
		snprintf(s->widened_reason, sizeof(s->widened_reason), "%s", reason ? reason : "");
		s->every = every;
		s->rounds = 0; /* the next round samples */
		return 0;
	}
	return -ENOENT;
}

void watchers_cost(const struct watchers *w, struct watch_cost *out)
{
	memset(out, 0, sizeof(*out));
	if (!w)
		return;
	out->round_us = (double)w->round_ns / 1000.0;
	for (unsigned i = 0; i < w->n && out->n < WATCH_COST_MAX; i++) {
		const struct watcher_slot *s = &w->slots[i];

		if (s->open_err || s->throttled || !s->ops->holds)
			continue;
		out->w[out->n].name = s->ops->name;
		out->w[out->n].sample_us = s->sample_ewma_ns / 1000.0;
		out->w[out->n].hold_us = s->hold_ewma_ns / 1000.0;
		out->w[out->n].every = s->every;
		out->n++;
	}
}

unsigned watchers_hook_costs(const struct watchers *w, struct watcher_hook_cost *out, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; w && i < w->n && n < max; i++) {
		const struct watcher_slot *s = &w->slots[i];

		if (s->open_err || !s->ops->cost || s->ops->cost(s->state, &out[n]))
			continue;
		out[n].throttled = s->throttled;
		n++;
	}
	return n;
}

unsigned watchers_series_budget(const struct agent_config *cfg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	uint64_t n;

	if (ncpu < 1)
		ncpu = 1;
	/* host metrics, ~16 per CPU, ~13 per device, ~30 per watched cgroup */
	n = 1024 + 16 * (uint64_t)ncpu + 13 * 64 + 32 * cfg->watch.max_cgroups;
	return (unsigned)MIN(MAX(n, 8192), 1u << 20);
}
