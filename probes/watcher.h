/* SPDX-License-Identifier: GPL-2.0-only */
/* The always-on watch layer: every watcher samples once per interval into the
 * metric history. Watchers hook no per-event path by default. */
#pragma once
#include <jansson.h>
#include <stdint.h>

struct agent_config;
struct tsdb;
struct cgroups;

struct watcher_env {
	const struct agent_config *cfg;
	const char *procfs; /* "/proc", or a crafted tree in tests */
	const char *sysfs;  /* "/sys" */
	struct cgroups *cgroups;
};

struct watcher_ops {
	const char *name;
	const char *help;
	int (*open)(void **state, const struct watcher_env *env);
	/* Puts this round's values; the first call may only prime deltas. */
	int (*sample)(void *state, struct tsdb *db);
	void (*close)(void *state);
};

/* Every watcher this build knows, NULL-terminated. */
extern const struct watcher_ops *const watcher_kinds[];

/* The set of open watchers, as the daemon and `autotrace metrics` use it. */
struct watchers;

int watchers_open(struct watchers **out, const struct watcher_env *env);
void watchers_free(struct watchers **w);
/* One round: begins it in db, samples every working watcher, ends it. */
int watchers_sample(struct watchers *w, struct tsdb *db, uint64_t real_ms);
/* [{name, state, error, sample_us_avg, samples}], in watcher_kinds order; the
 * series watcher i writes carry tsdb source tag i + 1. */
json_t *watchers_status(const struct watchers *w);
