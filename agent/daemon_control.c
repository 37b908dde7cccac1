// SPDX-License-Identifier: GPL-2.0-only
/* The control socket's commands (docs/control-protocol.md): ping, status,
 * trigger, incident. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/control.h"
#include "agent/daemon_priv.h"
#include "base/cgroups.h"
#include "base/log.h"
#include "base/util.h"
#include "triggers/engine.h"
#include "version.h"

static int ctl_status(void *ctx, const struct control_call *call, json_t **result,
		      struct control_error *err)
{
	(void)call;
	(void)err;
	*result = daemon_status(ctx);
	return 0;
}

static int ctl_ping(void *ctx, const struct control_call *call, json_t **result,
		    struct control_error *err)
{
	struct daemon *d = ctx;

	(void)call;
	(void)err;
	*result = json_pack("{s:s,s:i,s:i,s:I}", "version", AUTOTRACE_VERSION, "protocol",
			    CONTROL_PROTOCOL_VERSION, "pid", (int)getpid(), "uptime_ms",
			    (json_int_t)((now_mono_ns() - d->started_mono_ns) / 1000000));
	return 0;
}

static json_t *target_json(const struct capture_target *t)
{
	json_t *o = json_object();

	json_object_set_new(o, "kind",
			    json_string(t->kind == TARGET_PID	   ? "process"
					: t->kind == TARGET_CGROUP ? "cgroup"
								   : "host"));
	if (t->kind == TARGET_PID)
		json_object_set_new(o, "pid", json_integer(t->pid));
	if (t->kind == TARGET_CGROUP)
		json_object_set_new(o, "cgroup", json_string(t->cgroup));
	return o;
}

static const char *arg_str(json_t *args, const char *name)
{
	return json_string_value(json_object_get(args, name));
}

static bool has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")); p += 2)
		if ((p == path || p[-1] == '/') && (p[2] == '/' || !p[2]))
			return true;
	return false;
}

/* The cgroup as given (relative to the id hierarchy, or a full path under it). */
static int resolve_cgroup(struct daemon *d, const char *path, struct capture_target *t,
			  struct control_error *err)
{
	const char *root = cgroups_id_root(d->cgroups);
	size_t rl = root ? strlen(root) : 0;
	const char *rel = path;

	if (rl && strncmp(path, root, rl) == 0 && (path[rl] == '/' || !path[rl]))
		rel = path[rl] ? path + rl : "/";
	if (rel[0] != '/' || has_dotdot(rel)) {
		control_error_set(err, "invalid_request",
				  "args.cgroup: '%s' is not an absolute cgroup path", path);
		return -EINVAL;
	}
	if (cgroups_id_of(d->cgroups, rel, &t->cgroup_id)) {
		control_error_set(err, "not_found", "no cgroup %s under %s", rel,
				  root ? root : "(no cgroup hierarchy)");
		return -ENOENT;
	}
	t->kind = TARGET_CGROUP;
	snprintf(t->cgroup, sizeof(t->cgroup), "%s", rel);
	return 0;
}

static int request_from_rule(struct daemon *d, const char *name, struct capture_request *req,
			     struct pending_incident *p, struct control_error *err)
{
	const struct ruleset *rs = engine_rules(d->engine);
	const struct rule *r = NULL;
	char known[512];
	size_t off = 0;

	for (unsigned i = 0; i < rs->n; i++) {
		if (strcmp(rs->rules[i].name, name) == 0)
			r = &rs->rules[i];
		if (off < sizeof(known))
			off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s",
						off ? ", " : "", rs->rules[i].name);
	}
	if (!r) {
		control_error_set(err, "not_found", "no rule named '%s' (loaded: %s)", name,
				  off ? known : "none");
		return -ENOENT;
	}
	if (!r->ncaptures) {
		control_error_set(err, "invalid_request", "rule '%s' has no captures", name);
		return -EINVAL;
	}
	p->trig[0].rule = *r;
	/* the SRE asked for data: a rule's own dry_run is for its automatic firings */
	p->trig[0].rule.dry_run = false;
	p->trig[0].has_rule = true;
	p->trig[0].metric = r->metric;
	for (unsigned i = 0; i < r->ncaptures && i < RULE_MAX_CAPTURES; i++) {
		req->items[req->n].ops = r->captures[i].ops;
		req->items[req->n].params = r->captures[i].params;
		req->n++;
	}
	/* the value now, so the incident shows where the metric stood */
	if (r->metric >= 0) {
		struct tsdb_series *s = tsdb_find_key(d->db, (unsigned)r->metric, "");

		if (s)
			tsdb_value(d->db, s, 0, &p->trig[0].value);
	}
	return 0;
}

static int request_from_kinds(struct daemon *d, json_t *kinds, struct capture_request *req,
			      struct control_error *err)
{
	json_t *k;
	size_t i;

	json_array_foreach(kinds, i, k)
	{
		const char *kind = json_string_value(k), *why = NULL;
		const struct capture_ops *ops = capture_kind_lookup(kind);

		if (!ops) {
			char known[256];
			size_t off = 0;

			known[0] = '\0';
			for (const struct capture_ops *const *c = capture_kinds; *c; c++)
				off += (size_t)snprintf(
					known + off, sizeof(known) > off ? sizeof(known) - off : 0,
					"%s%s", off ? ", " : "", (*c)->kind);
			control_error_set(err, "invalid_request",
					  "unknown capture kind '%s' (known: %s)", kind, known);
			return -EINVAL;
		}
		for (unsigned j = 0; j < req->n; j++) {
			if (req->items[j].ops == ops) {
				control_error_set(err, "invalid_request",
						  "capture kind '%s' given twice", kind);
				return -EINVAL;
			}
		}
		if (!capmgr_kind_ready(d->caps, kind, &why)) {
			control_error_set(err, "unavailable",
					  "capture kind '%s' is not available on this host: %s",
					  kind, why);
			return -EOPNOTSUPP;
		}
		req->items[req->n].ops = ops;
		capture_params_defaults(ops, &req->items[req->n].params);
		req->n++;
	}
	return 0;
}

/* Why capmgr_start said not now, as the SRE who asked reads it. */
static void busy_error(struct daemon *d, const struct capmgr_start_result *r,
		       struct control_error *err)
{
	switch (r->refusal) {
	case CAPMGR_BUDGET:
		control_error_set(err, "busy",
				  "capture budget spent: capture.max_seconds_per_hour = %llu over "
				  "the last hour",
				  (unsigned long long)d->cfg.capture.max_seconds_per_hour);
		break;
	case CAPMGR_BUSY_KIND:
		control_error_set(err, "busy",
				  "captures busy: a %s capture is running; retry when it ends",
				  r->kind);
		break;
	case CAPMGR_BUSY_SESSIONS:
	case CAPMGR_STARTED:
		control_error_set(err, "busy",
				  "captures busy: capture.max_concurrent (%llu) sessions are "
				  "running; retry when they end",
				  (unsigned long long)d->cfg.capture.max_concurrent);
		break;
	}
}

static int ctl_trigger(void *ctx, const struct control_call *call, json_t **result,
		       struct control_error *err)
{
	struct daemon *d = ctx;
	const char *rule = arg_str(call->args, "rule"), *cgroup = arg_str(call->args, "cgroup");
	json_t *kinds = json_object_get(call->args, "captures");
	json_t *jdur = json_object_get(call->args, "duration_ms");
	json_t *jpid = json_object_get(call->args, "pid");
	struct capture_request req = {0};
	struct capmgr_start_result started;
	struct pending_incident *p;
	json_t *caps;
	uint64_t longest = 0;
	int ret;

	if (!rule == !kinds) {
		control_error_set(err, "invalid_request",
				  "give exactly one of args.rule and "
				  "args.captures");
		return -EINVAL;
	}
	if (jpid && cgroup) {
		control_error_set(err, "invalid_request",
				  "give at most one of args.pid and "
				  "args.cgroup");
		return -EINVAL;
	}
	if (jdur && (uint64_t)json_integer_value(jdur) > d->cfg.capture.max_duration_ms) {
		char lim[32];

		format_duration(d->cfg.capture.max_duration_ms, lim, sizeof(lim));
		control_error_set(err, "invalid_request",
				  "args.duration_ms: %lld exceeds capture.max_duration (%s)",
				  (long long)json_integer_value(jdur), lim);
		return -ERANGE;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->d = d;
	p->manual = true;
	p->ntrig = 1;
	p->trig[0].metric = -1;
	req.target.kind = TARGET_HOST;
	ret = rule ? request_from_rule(d, rule, &req, p, err)
		   : request_from_kinds(d, kinds, &req, err);
	if (ret)
		goto fail;
	snprintf(p->name, sizeof(p->name), "%s", rule ? rule : "manual");
	if (jpid) {
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/%lld", (long long)json_integer_value(jpid));
		if (access(proc, F_OK)) {
			control_error_set(err, "not_found", "no process with pid %lld",
					  (long long)json_integer_value(jpid));
			ret = -ESRCH;
			goto fail;
		}
		req.target.kind = TARGET_PID;
		req.target.pid = (int)json_integer_value(jpid);
	} else if (cgroup) {
		ret = resolve_cgroup(d, cgroup, &req.target, err);
		if (ret)
			goto fail;
	}
	for (unsigned i = 0; i < req.n; i++) {
		if (jdur)
			req.items[i].params.duration_ms = (uint64_t)json_integer_value(jdur);
		longest = MAX(longest, req.items[i].params.duration_ms);
	}
	req.dry_run = d->cfg.agent.dry_run;
	p->fired_real_ms = now_real_ms();
	p->ends_mono_ms = now_mono_ns() / 1000000 + longest;
	incident_id_new(p->fired_real_ms, p->id, sizeof(p->id));

	ret = capmgr_start(d->caps, &req, daemon_session_done, p, &started);
	if (ret == -EBUSY) {
		busy_error(d, &started, err);
		goto fail;
	}
	if (ret) {
		control_error_set(err, "internal", "starting the captures failed: %s",
				  strerror(-ret));
		goto fail;
	}
	p->next = d->pending;
	d->pending = p;
	log_info("manual trigger by uid %u (pid %d): %s, %u capture%s for %llums, incident %s",
		 (unsigned)call->uid, (int)call->pid, p->name, req.n, req.n == 1 ? "" : "s",
		 (unsigned long long)longest, p->id);
	caps = json_array();
	for (unsigned i = 0; i < req.n; i++)
		json_array_append_new(caps, json_pack("{s:s,s:I}", "kind", req.items[i].ops->kind,
						      "duration_ms",
						      (json_int_t)req.items[i].params.duration_ms));
	*result = json_pack("{s:s,s:s,s:o,s:o,s:I,s:b}", "incident_id", p->id, "rule", p->name,
			    "captures", caps, "target", target_json(&req.target), "duration_ms",
			    (json_int_t)longest, "dry_run", req.dry_run);
	return 0;
fail:
	free(p);
	return ret ? ret : -EBUSY;
}

static int ctl_incident(void *ctx, const struct control_call *call, json_t **result,
			struct control_error *err)
{
	struct daemon *d = ctx;
	const char *id = arg_str(call->args, "id");
	uint64_t now = now_mono_ns() / 1000000;
	char path[4200];

	for (struct pending_incident *p = d->pending; p; p = p->next) {
		if (strcmp(p->id, id) == 0) {
			*result = json_pack(
				"{s:s,s:s,s:s,s:I}", "id", id, "state", "capturing", "rule",
				p->name, "ends_in_ms",
				(json_int_t)(p->ends_mono_ms > now ? p->ends_mono_ms - now : 0));
			return 0;
		}
	}
	for (unsigned i = 0; i < RECENT_INCIDENTS && i < d->nrecent; i++) {
		const struct recent_incident *r = &d->recent[i];

		if (strcmp(r->id, id) == 0) {
			*result = json_pack("{s:s,s:s,s:s,s:s}", "id", id, "state",
					    r->ok ? "written" : "failed", "rule", r->rule,
					    r->ok ? "path" : "error", r->where);
			return 0;
		}
	}
	if (incident_id_valid(id) && store_find(store_dir(d->store), id, path, sizeof(path)) == 0) {
		*result = json_pack("{s:s,s:s,s:s}", "id", id, "state", "written", "path", path);
		return 0;
	}
	control_error_set(err, "not_found", "no incident %s (neither running nor in %s)", id,
			  store_dir(d->store));
	return -ENOENT;
}

static const struct control_arg trigger_args[] = {
	{"rule", CARG_STRING, 1, 127},
	{"captures", CARG_STRLIST, 1, RULE_MAX_CAPTURES},
	{"duration_ms", CARG_UINT, 100, 3600000},
	{"pid", CARG_UINT, 1, 4194304},
	{"cgroup", CARG_STRING, 1, 511},
	{NULL},
};

static const struct control_arg incident_args[] = {
	{"id", CARG_STRING, 1, 63},
	{NULL},
};

static const struct control_command daemon_commands[] = {
	{"ping", NULL, ctl_ping},
	{"status", NULL, ctl_status},
	{"trigger", trigger_args, ctl_trigger},
	{"incident", incident_args, ctl_incident},
	{NULL},
};

int daemon_control_open(struct daemon *d)
{
	struct control_opts o = {
		.loop = d->loop,
		.path = d->cfg.agent.control_socket,
		.commands = daemon_commands,
		.ctx = d,
	};
	int err = control_new(&d->ctl, &o);

	if (!err)
		log_info("control socket %s", d->cfg.agent.control_socket);
	return err;
}
