// SPDX-License-Identifier: GPL-2.0-only
#include "agent/guard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/log.h"
#include "agent/util.h"
#include "probes/bpfutil.h"

struct guard {
	struct guard_opts opts;
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

static uint64_t process_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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
			log_warn("guard: cannot enable BPF run-time statistics: %s", strerror(-err));
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
		g->capture_pct = bpf >= g->prev_bpf_ns ?
					 100.0 * (double)(bpf - g->prev_bpf_ns) / (elapsed * (double)g->ncpus) :
					 0;
		if (g->capture_pct > g->opts.capture_cpu_pct) {
			snprintf(reason, reason_len,
				 "capture programs used %.1f%% of all CPUs (guard.capture_cpu_pct %g%%)",
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
	return o;
}
