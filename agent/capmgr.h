/* SPDX-License-Identifier: GPL-2.0-only */
/* The capture manager: prepares every capture kind at start-up, runs capture
 * sessions (several kinds over one target) within the capture budget. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "probes/capture.h"

struct loop;
struct capmgr;
struct capture_session;

struct capmgr_opts {
	struct loop *loop;
	const struct agent_config *cfg;
	struct symbolizer *sym;
	struct cgroups *cgroups;
	/* The kinds to prepare, NULL-terminated; NULL: every kind of this build (capture_kinds).
	 * Unit tests hand in kinds of their own. */
	const struct capture_ops *const *kinds;
};

struct capture_request_item {
	const struct capture_ops *ops;
	struct capture_params params;
	bool own_target; /* use target below, not the request's */
	struct capture_target target;
};

struct capture_request {
	struct capture_request_item items[8];
	unsigned n;
	struct capture_target target;
	bool dry_run; /* record what would run, attach nothing */
};

/* One capture of a finished session, as the incident reports it. */
struct capture_outcome {
	const char *kind;
	uint64_t started_real_ms;
	uint64_t duration_ms;
	const char *status;	    /* ok | partial | failed | dry_run | interrupted | unavailable |
				       truncated */
	char truncated_reason[160]; /* with "truncated": why the window was cut short */
	struct capture_target target; /* what it was filtered to */
	struct capture_result result;
};

typedef void (*capmgr_done_cb)(void *ctx, struct capture_session *s);

int capmgr_new(struct capmgr **out, const struct capmgr_opts *opts);
void capmgr_free(struct capmgr **m);
void capmgr_set_config(struct capmgr *m, const struct agent_config *cfg);

/* Why capmgr_start said not now. */
enum capmgr_refusal {
	CAPMGR_STARTED,
	CAPMGR_BUSY_KIND,     /* a capture of the same kind is running (refusal.kind) */
	CAPMGR_BUSY_SESSIONS, /* capture.max_concurrent sessions are running */
	CAPMGR_BUDGET,	      /* capture.max_seconds_per_hour would be exceeded */
};

struct capmgr_start_result {
	enum capmgr_refusal refusal;
	const char *kind; /* with CAPMGR_BUSY_KIND */
};

/* Starts a session; done runs (from the event loop) when every capture has
 * been read out. -EBUSY when the budget or a busy kind says not now, with
 * the reason in *res (optional). */
int capmgr_start(struct capmgr *m, const struct capture_request *req, capmgr_done_cb done,
		 void *ctx, struct capmgr_start_result *res);
/* Detaches every running capture at once (shutdown); their sessions complete
 * with status "interrupted" and done runs for each. */
void capmgr_stop_all(struct capmgr *m);
/* Ends every running capture now (the run-time guard): each is read out as
 * usual and reported "truncated" with the reason. */
void capmgr_cut_short(struct capmgr *m, const char *reason);
unsigned capmgr_running(const struct capmgr *m);
/* Kinds with a capture attached now (at most max names). */
unsigned capmgr_running_kinds(const struct capmgr *m, const char **kinds, unsigned max);
/* Once per agent interval: the running captures' tick (e.g. track processes
 * while they are alive). */
void capmgr_tick(struct capmgr *m);
/* Is this kind loaded and usable here? (error text otherwise) */
bool capmgr_kind_ready(const struct capmgr *m, const char *kind, const char **why);

/* Session accessors for the done callback. */
void *capture_session_ctx(const struct capture_session *s);
const struct capture_target *capture_session_target(const struct capture_session *s);
unsigned capture_session_count(const struct capture_session *s);
struct capture_outcome *capture_session_outcome(struct capture_session *s, unsigned i);
uint64_t capture_session_started_ms(const struct capture_session *s);
/* Frees the session (after done has used it). */
void capture_session_free(struct capture_session **s);

json_t *capmgr_status(const struct capmgr *m);
