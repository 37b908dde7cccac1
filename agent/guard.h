/* SPDX-License-Identifier: GPL-2.0-only */
/* The run-time guard: the agent measures what it costs the node while it
 * runs — its own CPU time and its BPF programs' kernel run time — and ends a
 * capture that goes over the configured budget. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct guard;

struct guard_opts {
	bool enabled;
	double capture_cpu_pct; /* capture programs' kernel time, % of all CPUs */
	double agent_cpu_pct;   /* the agent process itself, % of one CPU */
	unsigned strikes;       /* consecutive samples over budget before acting */
};

int guard_new(struct guard **out, const struct guard_opts *opts);
void guard_free(struct guard **g);
void guard_set_opts(struct guard *g, const struct guard_opts *opts);

/* Called once per tick with the capture kinds running now. Returns true when
 * the running captures must be cut short; reason then says why. */
bool guard_sample(struct guard *g, const char *const *kinds, unsigned nkinds, char *reason,
		  size_t reason_len);
/* Agent CPU (% of one CPU) over the last sample, and BPF capture cost. */
json_t *guard_status(const struct guard *g);
