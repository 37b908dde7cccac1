/* SPDX-License-Identifier: GPL-2.0-only */
/* The set-up the watcher unit tests share: a crafted /proc and /sys tree in a temporary
 * directory, a metric history, and the watchers' clock in the test's hands. */
#pragma once
#include <stdint.h>

#include "base/config.h"
#include "base/tsdb.h"
#include "probes/watcher.h"

struct cgroups;

struct watch_fixture {
	const char *root;	      /* the crafted tree */
	char procfs[256], sysfs[256]; /* root/proc, root/sys */
	struct agent_config cfg;      /* the defaults: adjust before watch_open */
	struct tsdb *db;
	const struct watcher_ops *ops; /* the watcher watch_open opened */
	void *state;
	char why[256]; /* what the watcher's open said */
	uint64_t now_ns;
};

/* One per test program: the fixture is global like the watchers' clock it replaces. */
extern struct watch_fixture wfx;

/* A fresh tree and history (max_series series of 16 points); the clock at start_s. */
void watch_fixture_init(unsigned max_series, uint64_t start_s);
/* Closes the watcher, removes the tree, gives the clock back. */
void watch_fixture_fini(void);
/* The same as cmocka set-up and tear-down: 256 series, the clock at 1 s. */
int watch_setup(void **s);
int watch_teardown(void **s);
/* Writes root/rel, creating directories on the way; an existing file is rewritten in place
 * (watchers keep their files open and pread them). */
void watch_put(const char *rel, const char *text);
void watch_rm(const char *rel);
/* Opens ops on the tree (and cg, when not NULL); its return value. */
int watch_open(const struct watcher_ops *ops, struct cgroups *cg);
/* One round, one second after the previous one; the watcher's return value. */
int watch_round(void);
/* The latest value of metric for labels {k: v} (k NULL: the host series); NaN when none. */
double watch_value(unsigned metric, const char *k, const char *v);
#define WATCH_HOST(m) watch_value(m, NULL, NULL)
/* got == want, give or take rounding. */
void assert_near(double got, double want);
