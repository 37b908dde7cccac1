/* SPDX-License-Identifier: GPL-2.0-only */
/* The metric history and the agent's health in the Prometheus text format
 * (0.0.4) or OpenMetrics 1.0, named from the metric catalogue
 * (docs/prometheus.md). Rendering is bounded: past max_bytes whole metric
 * families are left out and counted, never cut in the middle. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tsdb;

enum expo_format { EXPO_TEXT, EXPO_OPENMETRICS };

#define EXPO_CONTENT_TYPE_TEXT	      "text/plain; version=0.0.4; charset=utf-8"
#define EXPO_CONTENT_TYPE_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* The format an Accept header asks for, by q-value; the text format when it
 * names neither (or is NULL), as Prometheus' own exporters answer. */
enum expo_format expo_negotiate(const char *accept);
const char *expo_content_type(enum expo_format f);

/* Per-interval counts (catalogue metrics whose Prometheus type is a counter)
 * summed since the agent started, so a scrape every 15 s misses no event. */
struct expo_counters;

int expo_counters_new(struct expo_counters **out, unsigned max_entries);
void expo_counters_free(struct expo_counters **c);
/* After every completed round of db. */
void expo_counters_round(struct expo_counters *c, const struct tsdb *db);
unsigned expo_counters_count(const struct expo_counters *c);

struct expo_result {
	char *body; /* malloc'd, not NUL-terminated */
	size_t len;
	unsigned series;  /* samples written */
	unsigned skipped; /* series of the families left out to stay under max_bytes */
};

/* status: the status document (`autotrace status --json`) the agent's own
 * metrics are read from, or NULL; counters may be NULL (counters show 0).
 * size_hint: the previous body's length, to allocate once. */
int expo_render(const struct tsdb *db, json_t *status, const struct expo_counters *counters,
		enum expo_format f, size_t max_bytes, size_t size_hint, struct expo_result *out);

/* Writes v as the exposition formats spell numbers; returns the length
 * (at most 32 bytes, no NUL). Exposed for the unit tests. */
size_t expo_format_value(double v, char *out);
