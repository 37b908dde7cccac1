/* SPDX-License-Identifier: GPL-2.0-only */
/* The run-time guard: the agent measures what it costs the node while it
 * runs — its own CPU time and its BPF programs' kernel run time — and ends a
 * capture that goes over the configured budget. It also switches an opt-in
 * always-on hook mode off while its events cost more than allowed, and on
 * again once the load that drives them has passed. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "probes/watcher.h"

struct guard;

struct guard_opts {
	bool enabled;
	double capture_cpu_pct; /* capture programs' kernel time, % of all CPUs */
	double agent_cpu_pct;	/* the agent process itself, % of one CPU */
	unsigned strikes;	/* consecutive samples over budget before acting */
	double hook_cpu_pct;	/* one hook mode's kernel time, % of all CPUs */
	uint64_t hook_hold_ms;	/* a throttled hook mode stays off at least this long */
	uint64_t watch_cpu_us;	/* the watch layer's agent CPU, per second of wall time */
	uint64_t interval_ms;	/* the watchers' round */
};

#define GUARD_MAX_HOOKS 4

/* One opt-in hook mode as the daemon sees it this tick. */
struct guard_hook {
	const char *name;    /* watcher / hook label: "runqlat" */
	bool throttled;	     /* off by the guard now */
	double cpu_pct;	     /* last interval, when not throttled */
	double ns_per_event; /* last interval, when not throttled; 0 when no event ran */
	double load_per_s;   /* what drives its events (context switches/s, IOs/s); < 0 unknown */
};

enum guard_hook_action { GUARD_HOOK_KEEP, GUARD_HOOK_THROTTLE, GUARD_HOOK_RESUME };

int guard_new(struct guard **out, const struct guard_opts *opts);
void guard_free(struct guard **g);
void guard_set_opts(struct guard *g, const struct guard_opts *opts);

/* Called once per tick with the capture kinds running now. Returns true when
 * the running captures must be cut short; reason then says why. */
bool guard_sample(struct guard *g, const char *const *kinds, unsigned nkinds, char *reason,
		  size_t reason_len);
/* Called once per tick per hook mode. THROTTLE: detach it (reason says why);
 * RESUME: the estimated cost at today's load is back under half the budget
 * (or the guard was turned off), attach it again. */
enum guard_hook_action guard_hook_sample(struct guard *g, const struct guard_hook *h, char *reason,
					 size_t reason_len);
/* Called once per round with the watch layer's cost (watchers_cost()). Returns true when a watcher
 * should be sampled every *every rounds from now on (*name, reason says why): wider while the watch
 * layer costs more than guard.watch_cpu, narrower again once the estimated
 * cost of the narrower setting is well under it (or the guard was turned off). */
bool guard_watch_sample(struct guard *g, const struct watch_cost *in, const char **name,
			unsigned *every, char *reason, size_t reason_len);
/* Agent CPU (% of one CPU) over the last sample, BPF capture cost, hook modes. */
json_t *guard_status(const struct guard *g);
