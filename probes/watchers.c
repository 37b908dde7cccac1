// SPDX-License-Identifier: GPL-2.0-only
/* The registry of watchers and the set the agent runs. */
#include "probes/watcher.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/log.h"
#include "agent/tsdb.h"

extern const struct watcher_ops cpustat_watcher;

const struct watcher_ops *const watcher_kinds[] = {
	&cpustat_watcher,
	NULL,
};

struct watcher_slot {
	const struct watcher_ops *ops;
	void *state;
	int open_err;      /* nonzero: not running on this host */
	int last_err;
	uint64_t samples;
	uint64_t cpu_ns;   /* agent CPU time spent sampling */
};

struct watchers {
	struct watcher_slot *slots;
	unsigned n;
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

		s->ops = watcher_kinds[i];
		s->open_err = s->ops->open(&s->state, env);
		/* a watcher the host cannot support degrades; the others keep working */
		if (s->open_err)
			log_warn("watcher %s unavailable: %s", s->ops->name, strerror(-s->open_err));
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

int watchers_sample(struct watchers *w, struct tsdb *db, uint64_t real_ms)
{
	tsdb_begin_round(db, real_ms);
	for (unsigned i = 0; i < w->n; i++) {
		struct watcher_slot *s = &w->slots[i];
		uint64_t t0;
		int err;

		if (s->open_err)
			continue;
		t0 = thread_cpu_ns();
		tsdb_set_source(db, i + 1);
		err = s->ops->sample(s->state, db);
		s->cpu_ns += thread_cpu_ns() - t0;
		s->samples++;
		if (err && err != s->last_err)
			log_warn("watcher %s: %s", s->ops->name, strerror(-err));
		s->last_err = err;
	}
	tsdb_set_source(db, 0);
	tsdb_end_round(db);
	return 0;
}

json_t *watchers_status(const struct watchers *w)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < w->n; i++) {
		const struct watcher_slot *s = &w->slots[i];
		json_t *o = json_object();

		json_object_set_new(o, "name", json_string(s->ops->name));
		json_object_set_new(o, "state", json_string(s->open_err ? "unavailable" :
							    s->last_err	 ? "error" :
									   "ok"));
		if (s->open_err || s->last_err)
			json_object_set_new(o, "error",
					    json_string(strerror(-(s->open_err ? s->open_err :
										   s->last_err))));
		json_object_set_new(o, "samples", json_integer((json_int_t)s->samples));
		json_object_set_new(o, "sample_us_avg",
				    json_real(s->samples ? (double)s->cpu_ns / 1000.0 /
								   (double)s->samples :
							   0));
		json_array_append_new(arr, o);
	}
	return arr;
}
