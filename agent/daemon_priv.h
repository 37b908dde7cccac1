/* SPDX-License-Identifier: GPL-2.0-only */
/* The daemon's state, shared by its files and nothing else: daemon.c (start-up,
 * the watch -> rule -> capture -> incident pipeline, the guard, reload),
 * daemon_status.c (the status document) and daemon_control.c (the control
 * socket's commands). */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/capmgr.h"
#include "agent/incident.h"
#include "base/config.h"
#include "base/loop.h"
#include "base/tsdb.h"
#include "storage/store.h"
#include "triggers/rules.h"

#define RETENTION_PERIOD_NS (3600ull * 1000000000ull)
#define RECENT_INCIDENTS    64 /* outcomes the control socket can report by id */

struct pending_incident;

/* What the daemon remembers about a rule beyond the engine's state machine. */
struct rule_note {
	char name[128];
	char last_error[256];
	uint64_t last_error_real_ms;
	uint64_t errors; /* since start: captures that failed, incidents not written */
	char last_incident[64];
};

struct recent_incident {
	char id[64];
	char rule[128];
	bool ok;
	char where[512]; /* its directory, or why it could not be written */
};

struct daemon {
	struct guard *guard;
	struct agent_config cfg;
	const char *cfg_path; /* NULL: defaults */
	bool cfg_explicit;
	struct loop *loop;
	int sigfd;
	struct loop_timer *tick, *watchdog, *retention;
	struct tsdb *db;
	struct watchers *watchers;
	struct cgroups *cgroups;
	struct symbolizer *sym;
	struct capmgr *caps;
	struct engine *engine;
	struct store *store;
	struct essink *es;	   /* NULL unless storage.elasticsearch.enabled */
	struct metrics_http *prom; /* NULL unless metrics.listen */
	struct incident_host host;
	uint64_t incidents_written, incidents_failed;
	uint64_t started_mono_ns;
	uint64_t ticks;
	char last_reload_error[512];
	bool stopping;
	/* control socket and what it reports */
	struct control *ctl;
	struct pending_incident *pending; /* captures running */
	struct recent_incident recent[RECENT_INCIDENTS];
	unsigned nrecent;
	struct rule_note *notes; /* RULES_MAX of them */
	uint64_t capture_lost_events;
	struct store_retention store_stats;
	struct {
		uint64_t mono_ns, cpu_ns;
	} cpu_prev, cpu_last; /* agent CPU, sampled every 10 ticks */
};

#define PENDING_TRIGGERS_MAX 8

/* One rule that fired, as its incident needs it after a reload. */
struct fired_rule {
	struct rule rule; /* copy: a reload may free the original */
	bool has_rule;
	char series_key[LABELS_KEY_MAX];
	int metric;
	double value;
};

/* A capture session and the incident it will become. Rules that fire for the
 * same scope share it: the incident lists every one of them. */
struct pending_incident {
	struct daemon *d;
	struct fired_rule trig[PENDING_TRIGGERS_MAX]; /* [0] is the primary trigger */
	unsigned ntrig;
	char name[128];					    /* the primary rule, or "manual" */
	const struct capture_ops *kinds[RULE_MAX_CAPTURES]; /* what the session runs */
	unsigned nkinds;
	uint64_t fired_real_ms;
	bool dry_run;
	bool manual;	       /* asked for on the control socket */
	char id[64];	       /* chosen when it fires, so a manual trigger can name it */
	uint64_t ends_mono_ms; /* when the longest capture window closes */
	struct pending_incident *next;
};

/* What the daemon remembers about a rule (NULL when RULES_MAX are noted). */
struct rule_note *daemon_rule_note(struct daemon *d, const char *rule);
/* capmgr's done callback: writes the incident of a finished session. */
void daemon_session_done(void *ctx, struct capture_session *s);
/* The status document of `autotrace status` (docs/control-protocol.md). */
json_t *daemon_status(struct daemon *d);
/* Opens the control socket with the daemon's commands. */
int daemon_control_open(struct daemon *d);
