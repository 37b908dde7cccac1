/* SPDX-License-Identifier: GPL-2.0-only */
/* The always-on watch layer: every watcher samples once per interval into the
 * metric history. Watchers hook no per-event path by default; the opt-in hook
 * modes (watch.runq_hooks, watch.block_hooks) report what they cost. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent_config;
struct tsdb;
struct cgroups;

struct watcher_env {
	const struct agent_config *cfg;
	const char *procfs;	 /* "/proc", or a crafted tree in tests */
	const char *sysfs;	 /* "/sys" */
	struct cgroups *cgroups; /* NULL: no per-cgroup metrics */
	/* open() may say here why a watcher cannot run (watchers_open sets it) */
	char *why;
	size_t why_len;
};

/* open() returns this when the configuration leaves the watcher off. */
#define WATCHER_OFF 1

/* What an opt-in hook mode costs, from kernel BPF run-time statistics. */
struct watcher_hook_cost {
	const char *name;	 /* the hook label: "runqlat", "biolat" */
	double ns_per_event;	 /* last interval; 0 when no event ran */
	double cpu_pct;		 /* kernel time, % of all CPUs, last interval */
	uint64_t events;	 /* program runs since the mode was turned on */
	double ns_per_event_avg; /* since the mode was turned on */
	bool throttled;
};

struct watcher_ops {
	const char *name;
	const char *help;
	/* 0, WATCHER_OFF, or a negative errno (then env->why may explain). */
	int (*open)(void **state, const struct watcher_env *env);
	/* Puts this round's values; the first call may only prime deltas. */
	int (*sample)(void *state, struct tsdb *db);
	void (*close)(void *state);
	/* Optional: adds to the watcher's status object ("degraded", "reason", counts). */
	void (*status)(void *state, json_t *o);
	/* Optional, hook modes: detach the hooks (off) or attach them again. */
	int (*throttle)(void *state, bool off);
	/* Optional, hook modes: the cost of the last interval. */
	int (*cost)(void *state, struct watcher_hook_cost *out);
	/* Its values may be held between samples: a watcher whose pass over every
	 * cgroup or task can be widened (watchers_widen) to every n rounds; in
	 * between, its series hold their values (tsdb_hold_source) at no cost. */
	bool holds;
};

/* Every watcher this build knows, NULL-terminated. */
extern const struct watcher_ops *const watcher_kinds[];

/* The set of open watchers, as the daemon and `autotrace metrics` use it. */
struct watchers;

int watchers_open(struct watchers **out, const struct watcher_env *env);
void watchers_free(struct watchers **w);
/* One round: begins it in db, samples every working watcher, ends it. */
int watchers_sample(struct watchers *w, struct tsdb *db, uint64_t real_ms);
/* [{name, state, error, sample_us_avg, samples, ...}], in watcher_kinds order;
 * the series watcher i writes carry tsdb source tag i + 1. state is ok, error,
 * degraded, unavailable (with error: why), off (not enabled), or throttled
 * (with throttled_reason). Hook modes add ns_per_event, cpu_pct, events. */
json_t *watchers_status(const struct watchers *w);

/*
 * The run-time guard's lever on the opt-in hook modes: reason != NULL detaches
 * the hooks of watcher `name` (its programs stay loaded, its metrics pause,
 * status shows "throttled" and the reason); reason == NULL attaches them again.
 * -ENOENT: no such watcher; -EOPNOTSUPP: not a hook mode, or it is not on.
 */
int watchers_throttle(struct watchers *w, const char *name, const char *reason);
/*
 * The run-time guard's lever on the watch layer's own cost: the watcher
 * `name` samples every `every` rounds (its pass over every cgroup or task)
 * and holds its values in between; every 1 with reason NULL is back to every
 * round. -ENOENT: no such watcher; -EOPNOTSUPP: it cannot hold.
 */
int watchers_widen(struct watchers *w, const char *name, unsigned every, const char *reason);

/* The watch layer's cost, for the guard and for status. */
#define WATCH_COST_MAX 12
struct watch_cost {
	double round_us; /* agent CPU of every watcher, the last round */
	unsigned n;
	struct {
		const char *name;
		double sample_us; /* a full sample, recent average (EWMA) */
		double hold_us;	  /* a held round, recent average */
		unsigned every;	  /* 1: sampled every round */
	} w[WATCH_COST_MAX];	  /* the watchers that can be widened */
};
void watchers_cost(const struct watchers *w, struct watch_cost *out);

/* The hook modes that are on, with their cost; returns how many were filled. */
unsigned watchers_hook_costs(const struct watchers *w, struct watcher_hook_cost *out, unsigned max);
/* How many metric series the configured watch layer may need (sizes the tsdb). */
unsigned watchers_series_budget(const struct agent_config *cfg);
