/* SPDX-License-Identifier: GPL-2.0-only */
/* The incident document (ECS-aligned; docs/incident-schema.md). */
#pragma once
#include <jansson.h>
#include <stdint.h>

struct tsdb;
struct rule;
struct capture_session;
struct agent_config;

struct incident_trigger {
	const struct rule *rule; /* NULL for a manual trigger */
	const char *name;	 /* rule name, or "manual" */
	const char *series_key;	 /* labels of the series that tripped ("" = host) */
	int metric;		 /* catalogue index, -1 for manual */
	double value;
	uint64_t fired_real_ms;
};

struct incident_host {
	char name[256];
	char kernel[128];
};

void incident_host_read(struct incident_host *h, const struct agent_config *cfg);

/* Builds the whole document. trigs[0] is the primary trigger (`trigger`);
 * all of them are listed in `triggers` (rules that fired together for one
 * scope share one capture session). History covers history_before_ms before
 * the trigger through now. */
json_t *incident_build(const char *id, const struct incident_host *host,
		       const struct incident_trigger *trigs, unsigned ntrig, const struct tsdb *db,
		       uint64_t history_before_ms, struct capture_session *session,
		       const char *agent_status);
struct capture_artifact;
/* Serializes doc (compact JSON, malloc'd) within max bytes together with the
 * artifacts: drops artifacts (largest first), then capture details, and marks
 * the incident "truncated" with what was dropped. */
char *incident_serialize_fit(json_t *doc, struct capture_artifact *arts, unsigned *nart,
			     uint64_t max);
/* The history of every series of metric family of `metric` with these labels. */
json_t *incident_history(const struct tsdb *db, int metric, const char *series_key,
			 uint64_t from_real_ms);
