/* SPDX-License-Identifier: GPL-2.0-only */
/* The Prometheus / OpenMetrics endpoint (metrics.*, docs/prometheus.md): the
 * watch layer and the agent's own health on GET /metrics, served from the
 * agent's event loop. */
#pragma once
#include <jansson.h>

struct loop;
struct tsdb;
struct agent_config;
struct metrics_http;

struct metrics_http_opts {
	struct loop *loop;
	const struct agent_config *cfg;
	/* The status document (`autotrace status --json`), a new reference: the
	 * agent's own metrics are read from it, so they are the status' numbers. */
	json_t *(*status)(void *ctx);
	/* The metric history now (a reload may replace it). */
	const struct tsdb *(*db)(void *ctx);
	void *ctx;
	/* the endpoint being replaced on reload: its socket (same address) and
	 * its counters carry over */
	struct metrics_http *prev;
};

/* *out stays NULL when metrics.listen is empty (the default). Errors (an
 * address in use, a bad web config, beyond loopback unprotected) are logged. */
int metrics_http_new(struct metrics_http **out, const struct metrics_http_opts *opts);
void metrics_http_free(struct metrics_http **m);
/* After every completed round: per-interval counts go into their counters. */
void metrics_http_round(struct metrics_http *m, const struct tsdb *db);
/* The "prometheus" object of the status document ({"enabled": false} for NULL). */
json_t *metrics_http_status(const struct metrics_http *m);
