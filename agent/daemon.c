// SPDX-License-Identifier: GPL-2.0-only
#include "agent/daemon.h"
#include "agent/daemon_priv.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/capmgr.h"
#include "agent/control.h"
#include "agent/guard.h"
#include "agent/incident.h"
#include "agent/metrics_http.h"
#include "agent/procscan.h"
#include "agent/sdnotify.h"
#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/symbolize.h"
#include "base/sysstate.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/bpfutil.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "storage/essink.h"
#include "storage/flamegraph.h"
#include "storage/store.h"
#include "triggers/engine.h"
#include "triggers/rules.h"
#include "version.h"

static void print_diag(const char *msg, void *ctx)
{
	(void)ctx;
	log_error("%s", msg);
}

static struct rules_limits limits_of(const struct agent_config *cfg)
{
	return rules_limits_from_config(cfg);
}

/* Loads config + rules into the out parameters without touching the running agent. */
static int load_all(const char *path, bool explicit_path, struct agent_config *cfg,
		    struct ruleset **rules)
{
	struct diag diag = {0};
	struct rules_limits lim;
	struct stat st;
	int err = 0;

	*rules = NULL;
	config_defaults(cfg);
	if (path && (explicit_path || stat(path, &st) == 0))
		err = config_load(path, cfg, &diag);
	if (err)
		goto out;
	lim = limits_of(cfg);
	if (stat(cfg->agent.rules_dir, &st) == 0) {
		const char *p = cfg->agent.rules_dir;

		err = ruleset_load_paths(&p, 1, &lim, rules, &diag);
	} else if (strcmp(cfg->agent.rules_dir, "/etc/autotrace/rules.d") == 0) {
		log_info("no %s: running the built-in default rules", cfg->agent.rules_dir);
		err = ruleset_load_builtin(&lim, rules, &diag);
	} else {
		diag_add(&diag, cfg->source, 0, 0, "agent.rules_dir %s: %s", cfg->agent.rules_dir,
			 strerror(errno));
		err = -ENOENT;
	}
out:
	diag_print(&diag, print_diag, NULL);
	diag_clear(&diag);
	return err;
}

static void apply_log_level(const struct agent_config *cfg)
{
	enum log_level lvl;

	if (getenv("AUTOTRACE_LOG_LEVEL") &&
	    log_parse_level(getenv("AUTOTRACE_LOG_LEVEL"), &lvl) == 0)
		log_set_level(lvl);
	else if (log_parse_level(cfg->agent.log_level, &lvl) == 0)
		log_set_level(lvl);
}

struct rule_note *daemon_rule_note(struct daemon *d, const char *rule)
{
	struct rule_note *free_slot = NULL;

	for (unsigned i = 0; d->notes && i < RULES_MAX; i++) {
		if (strcmp(d->notes[i].name, rule) == 0)
			return &d->notes[i];
		if (!free_slot && !d->notes[i].name[0])
			free_slot = &d->notes[i];
	}
	if (free_slot)
		snprintf(free_slot->name, sizeof(free_slot->name), "%s", rule);
	return free_slot;
}

static void note_rule_error(struct daemon *d, const char *rule, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note_rule_error(struct daemon *d, const char *rule, const char *fmt, ...)
{
	struct rule_note *n = daemon_rule_note(d, rule);
	va_list ap;

	if (!n)
		return;
	va_start(ap, fmt);
	vsnprintf(n->last_error, sizeof(n->last_error), fmt, ap);
	va_end(ap);
	n->last_error_real_ms = now_real_ms();
	n->errors++;
}

static void remember_incident(struct daemon *d, const struct pending_incident *p, bool ok,
			      const char *where)
{
	struct recent_incident *r = &d->recent[d->nrecent++ % RECENT_INCIDENTS];
	struct rule_note *n = daemon_rule_note(d, p->name);

	snprintf(r->id, sizeof(r->id), "%s", p->id);
	snprintf(r->rule, sizeof(r->rule), "%s", p->name);
	r->ok = ok;
	snprintf(r->where, sizeof(r->where), "%s", where);
	if (n && ok)
		snprintf(n->last_incident, sizeof(n->last_incident), "%s", p->id);
}

static void pending_unlink(struct daemon *d, struct pending_incident *p)
{
	struct pending_incident **pp = &d->pending;

	while (*pp && *pp != p)
		pp = &(*pp)->next;
	if (*pp)
		*pp = p->next;
}

/* Every folded-stacks artifact gets a flame graph beside it (NAME.svg). */
static void add_flamegraphs(struct daemon *d, const struct pending_incident *p,
			    struct capture_outcome *o)
{
	unsigned n = o->result.nartifacts;

	for (unsigned a = 0; a < n; a++) {
		const struct capture_artifact *art = &o->result.artifacts[a];
		size_t base = strlen(art->name);
		struct flamegraph_opts fo = {0};
		char name[64], title[256], sub[256], when[40];
		char *svg = NULL;
		size_t len = 0;
		int err;

		if (base < 7 || strcmp(art->name + base - 7, ".folded"))
			continue;
		base -= 7;
		snprintf(name, sizeof(name), "%.*s.svg", (int)base, art->name);
		format_iso8601(o->started_real_ms, when, sizeof(when));
		snprintf(title, sizeof(title), "%.*s: %s", (int)base, art->name, p->name);
		snprintf(sub, sizeof(sub), "%s, %s, %llu ms, incident %s", d->host.name, when,
			 (unsigned long long)o->duration_ms, p->id);
		fo.title = title;
		fo.subtitle = sub;
		fo.unit = flamegraph_unit_of(art->name);
		err = flamegraph_render(art->data, art->len, &fo, &svg, &len);
		if (err || capture_result_add_artifact(&o->result, name, svg, len))
			log_warn("incident %s: no flame graph for %s: %s", p->id, art->name,
				 strerror(err ? -err : ENOSPC));
	}
}

static void write_incident(struct daemon *d, struct pending_incident *p,
			   struct capture_session *session, const char *status)
{
	struct incident_trigger trig[PENDING_TRIGGERS_MAX];
	char dir[4400];
	const char *id = p->id;
	struct capture_artifact arts[16];
	unsigned nart = 0;
	json_t *doc;
	char *text;
	int err;

	for (unsigned i = 0; session && i < capture_session_count(session); i++) {
		struct capture_outcome *o = capture_session_outcome(session, i);

		add_flamegraphs(d, p, o);
		for (unsigned a = 0; a < o->result.nartifacts && nart < 16; a++)
			arts[nart++] = o->result.artifacts[a];
		d->capture_lost_events += o->result.lost_events;
		if (o->result.error[0])
			note_rule_error(d, p->name, "capture %s: %s", o->kind, o->result.error);
	}
	for (unsigned i = 0; i < p->ntrig; i++)
		trig[i] = (struct incident_trigger){
			.rule = p->trig[i].has_rule ? &p->trig[i].rule : NULL,
			.name = p->trig[i].has_rule ? p->trig[i].rule.name : p->name,
			.series_key = p->trig[i].series_key,
			.metric = p->trig[i].metric,
			.value = p->trig[i].value,
			.fired_real_ms = p->fired_real_ms,
		};
	doc = incident_build(id, &d->host, trig, p->ntrig, d->db, d->cfg.capture.history_before_ms,
			     session, status);
	if (p->manual) {
		json_object_set_new(json_object_get(doc, "trigger"), "manual", json_true());
		/* no metric tripped: the host's CPU breakdown is the context an SRE reads first */
		if (p->trig[0].metric < 0) {
			uint64_t from =
				p->fired_real_ms > d->cfg.capture.history_before_ms
					? p->fired_real_ms - d->cfg.capture.history_before_ms
					: 0;

			json_object_set_new(json_object_get(doc, "history"), "series",
					    incident_history(d->db, M_CPU_SYS, "", from));
		}
	}
	text = incident_serialize_fit(doc, arts, &nart, d->cfg.local.max_incident_size);
	json_decref(doc);
	if (!text) {
		d->incidents_failed++;
		log_error("incident %s: could not serialize", id);
		remember_incident(d, p, false, "could not serialize the incident");
		return;
	}
	err = store_write(d->store, id, p->fired_real_ms, text, strlen(text), arts, nart, dir,
			  sizeof(dir));
	if (err == -EAGAIN) {
		/* the disk is full: kept in memory and written once there is room */
		log_warn("incident %s for rule %s: the disk is full; kept in memory, written to %s "
			 "once there is room",
			 id, p->name, dir);
		remember_incident(d, p, true, dir);
	} else if (err) {
		d->incidents_failed++;
		log_error("incident %s for rule %s: writing to %s failed: %s", id, p->name,
			  store_dir(d->store), strerror(-err));
		snprintf(dir, sizeof(dir), "writing to %s failed: %s", store_dir(d->store),
			 strerror(-err));
		note_rule_error(d, p->name, "incident %s: %s", id, dir);
		remember_incident(d, p, false, dir);
	} else {
		d->incidents_written++;
		log_info("incident %s for rule %s written to %s", id, p->name, dir);
		remember_incident(d, p, true, dir);
	}
	/* after the local store, and even when it failed: the spool is a second copy */
	if (d->es)
		essink_submit(d->es, id, text, strlen(text));
	free(text);
}

void daemon_session_done(void *ctx, struct capture_session *s)
{
	struct pending_incident *p = ctx;
	struct daemon *d = p->d;

	pending_unlink(d, p);
	write_incident(d, p, s, d->stopping ? "interrupted" : NULL);
	for (unsigned i = 0; i < p->ntrig && !p->manual; i++)
		if (p->trig[i].has_rule)
			engine_capture_done(d->engine, p->trig[i].rule.name, p->trig[i].series_key,
					    now_mono_ns() / 1000000);
	capture_session_free(&s);
	free(p);
	if (capmgr_running(d->caps) == 0)
		symbolizer_forget_processes(d->sym);
	if (!d->stopping)
		store_enforce_retention(d->store, now_real_ms(), &d->store_stats);
}

struct label_out {
	char *buf;
	size_t len;
};

static void scope_cgroup_label(const char *k, const char *v, void *ctx)
{
	struct label_out *out = ctx;

	if (!strcmp(k, "cgroup"))
		snprintf(out->buf, out->len, "%s", v);
}

/* The cgroup of a scope: its series' cgroup label is a path in the hierarchy
 * the BPF side reports. Returns false for host scopes and vanished cgroups. */
static bool scope_cgroup(struct daemon *d, const char *series_key, struct capture_target *t)
{
	char cg[512] = "";
	uint64_t id;

	if (!series_key[0])
		return false;
	labels_foreach(series_key, scope_cgroup_label, &(struct label_out){cg, sizeof(cg)});
	if (!cg[0] || cgroups_id_of(d->cgroups, cg, &id))
		return false;
	t->kind = TARGET_CGROUP;
	t->cgroup_id = id;
	snprintf(t->cgroup, sizeof(t->cgroup), "%s", cg);
	return true;
}

/* A rule's process target, found once for all its captures: two scans a
 * moment apart can name different processes (a victim and a culprit trade
 * places), and one incident's captures look at the same one. */
struct process_target {
	bool known;
	struct capture_target t;
};

/* Resolves where one capture of a rule looks for a scope. */
static void capture_target_for(struct daemon *d, const struct rule *r, const struct rule_capture *c,
			       const char *series_key, struct process_target *proc,
			       struct capture_target *t)
{
	enum rule_target want = rule_capture_target(r, c);
	struct capture_target cg = {.kind = TARGET_HOST};
	bool have_cg = scope_cgroup(d, series_key, &cg);

	memset(t, 0, sizeof(*t));
	t->kind = TARGET_HOST;
	if (want == RTARGET_CGROUP && have_cg) {
		*t = cg;
	} else if (want == RTARGET_PROCESS && proc->known) {
		*t = proc->t;
	} else if (want == RTARGET_PROCESS) {
		enum procscan_by by = procscan_by_for_metric(metric_at((size_t)r->metric)->name);
		struct top_process top;

		/* the process doing the most of what the rule watches, in its scope */
		if (procscan_top("/proc", have_cg ? cg.cgroup : NULL, by, 100, &top) == 0) {
			t->kind = TARGET_PID;
			t->pid = top.pid;
			log_info("rule %s: top process by %s is %s (pid %d)", r->name,
				 procscan_by_name(by), top.comm, top.pid);
		} else if (have_cg) {
			*t = cg; /* nobody stands out: the whole scope */
		}
		proc->known = true;
		proc->t = *t;
	} else if (want == RTARGET_CGROUP) {
		/* the cgroup vanished: capture host-wide rather than not at all */
		log_warn("rule %s: cgroup of scope %s is gone; capturing host-wide", r->name,
			 series_key);
	}
}

static struct pending_incident *pending_for_scope(struct daemon *d, const char *series_key,
						  bool dry_run)
{
	for (struct pending_incident *p = d->pending; p; p = p->next)
		if (!p->manual && p->dry_run == dry_run &&
		    strcmp(p->trig[0].series_key, series_key) == 0)
			return p;
	return NULL;
}

static bool runs_kind(const struct pending_incident *p, const struct capture_ops *ops)
{
	for (unsigned k = 0; k < p->nkinds; k++)
		if (p->kinds[k] == ops)
			return true;
	return false;
}

static void add_trigger(struct pending_incident *p, const struct engine_fire *f)
{
	struct fired_rule *t = &p->trig[p->ntrig++];

	t->rule = *f->rule;
	t->has_rule = true;
	snprintf(t->series_key, sizeof(t->series_key), "%s", f->series_key);
	t->metric = f->rule->metric;
	t->value = f->value;
}

/* Firings of one round. Rules that fire for the same scope share one capture
 * session (the union of their capture kinds, each kind once) and one incident
 * that lists them all; a rule firing for a scope whose session is still
 * running joins it when the session already runs every kind it wants. */
static void on_fires(void *ctx, struct engine_fire *fires, unsigned n)
{
	struct daemon *d = ctx;

	for (unsigned i = 0; i < n; i++)
		fires[i].result = 1; /* not handled yet */
	for (unsigned i = 0; i < n; i++) {
		struct engine_fire *f = &fires[i];
		bool dry = d->cfg.agent.dry_run || f->rule->dry_run;
		struct capture_request req = {0};
		struct pending_incident *p;
		uint64_t longest = 0;
		unsigned members[PENDING_TRIGGERS_MAX], nmembers = 0;
		int err;

		if (f->result != 1)
			continue;
		p = pending_for_scope(d, f->series_key, dry);
		if (p && p->ntrig < PENDING_TRIGGERS_MAX) {
			bool all = true;

			for (unsigned k = 0; k < f->rule->ncaptures; k++)
				all &= runs_kind(p, f->rule->captures[k].ops);
			if (all) {
				add_trigger(p, f);
				f->result = 0;
				log_info("rule %s fired: %s = %g; joins the running capture of "
					 "rule %s",
					 f->rule->name, metric_at((size_t)f->rule->metric)->name,
					 f->value, p->name);
				continue;
			}
		}
		p = calloc(1, sizeof(*p));
		if (!p) {
			f->result = -ENOMEM;
			continue;
		}
		p->d = d;
		p->dry_run = dry;
		snprintf(p->name, sizeof(p->name), "%s", f->rule->name);
		p->fired_real_ms = now_real_ms();
		incident_id_new(p->fired_real_ms, p->id, sizeof(p->id));
		/* this firing and every later one of this round for the same scope */
		for (unsigned j = i; j < n && nmembers < PENDING_TRIGGERS_MAX; j++) {
			const struct rule *r = fires[j].rule;

			if (fires[j].result != 1 || strcmp(fires[j].series_key, f->series_key) ||
			    (d->cfg.agent.dry_run || r->dry_run) != dry)
				continue;
			struct process_target proc = {.known = false};

			members[nmembers++] = j;
			add_trigger(p, &fires[j]);
			for (unsigned k = 0; k < r->ncaptures; k++) {
				const struct rule_capture *c = &r->captures[k];
				struct capture_request_item *it = NULL;

				for (unsigned m = 0; m < req.n; m++)
					if (req.items[m].ops == c->ops)
						it = &req.items[m];
				if (it) {
					/* shared: one capture of the kind, the longest window asked
					 */
					it->params.duration_ms =
						MAX(it->params.duration_ms, c->params.duration_ms);
					continue;
				}
				if (req.n >= ARRAY_SIZE(req.items))
					continue;
				it = &req.items[req.n++];
				it->ops = c->ops;
				it->params = c->params;
				it->own_target = true;
				capture_target_for(d, r, c, f->series_key, &proc, &it->target);
				p->kinds[p->nkinds++] = c->ops;
			}
		}
		for (unsigned m = 0; m < req.n; m++)
			longest = MAX(longest, req.items[m].params.duration_ms);
		req.target =
			req.n ? req.items[0].target : (struct capture_target){.kind = TARGET_HOST};
		req.dry_run = dry;
		p->ends_mono_ms = now_mono_ns() / 1000000 + longest;
		err = capmgr_start(d->caps, &req, daemon_session_done, p, NULL);
		for (unsigned m = 0; m < nmembers; m++)
			fires[members[m]].result = err;
		if (err) {
			free(p);
			if (err == -EBUSY)
				log_debug("rule %s fired (%g) but the capture budget is busy; "
					  "retrying",
					  f->rule->name, f->value);
			else
				note_rule_error(d, f->rule->name, "starting captures: %s",
						strerror(-err));
			continue;
		}
		p->next = d->pending;
		d->pending = p;
		for (unsigned m = 0; m < nmembers; m++) {
			const struct engine_fire *mf = &fires[members[m]];

			log_info("rule %s fired: %s = %g%s%s", mf->rule->name,
				 metric_at((size_t)mf->rule->metric)->name, mf->value,
				 dry ? " (dry run: nothing attached)" : "",
				 nmembers > 1 ? " (captures shared with the rules firing with it)"
					      : "");
		}
	}
}

/* Sum of the latest values of a metric's series (host or per device). */
static double latest_sum(const struct tsdb *db, const char *metric)
{
	int idx = metric_index(metric);
	double sum = 0, v;
	bool any = false;

	if (idx < 0)
		return -1;
	for (struct tsdb_series *s = tsdb_first(db, (unsigned)idx); s; s = tsdb_next(s))
		if (tsdb_value(db, s, 0, &v)) {
			sum += v;
			any = true;
		}
	return any ? sum : -1;
}

/* The load that drives a hook mode's events, for the guard's estimate. */
static double hook_load(const struct daemon *d, const char *hook)
{
	if (strcmp(hook, "runqlat") == 0)
		return latest_sum(d->db, "sched.ctxsw_per_s");
	if (strcmp(hook, "biolat") == 0) {
		double r = latest_sum(d->db, "io.read_iops"),
		       w = latest_sum(d->db, "io.write_iops");

		return r < 0 || w < 0 ? -1 : r + w;
	}
	return -1;
}

/* The guard's lever on the opt-in hook modes: off over budget, on when the load passed. */
static void guard_hooks(struct daemon *d)
{
	struct watcher_hook_cost costs[GUARD_MAX_HOOKS];
	unsigned n = watchers_hook_costs(d->watchers, costs, GUARD_MAX_HOOKS);
	char why[200];

	for (unsigned i = 0; i < n; i++) {
		struct guard_hook h = {.name = costs[i].name,
				       .throttled = costs[i].throttled,
				       .cpu_pct = costs[i].cpu_pct,
				       .ns_per_event = costs[i].ns_per_event,
				       .load_per_s = hook_load(d, costs[i].name)};

		switch (guard_hook_sample(d->guard, &h, why, sizeof(why))) {
		case GUARD_HOOK_THROTTLE:
			watchers_throttle(d->watchers, h.name, why);
			break;
		case GUARD_HOOK_RESUME:
			if (watchers_throttle(d->watchers, h.name, NULL) == 0)
				log_info("watcher %s: hooks attached again (the load passed)",
					 h.name);
			break;
		case GUARD_HOOK_KEEP:
			break;
		}
	}
}

/* The guard's lever on the watch layer's own cost: passes over every cgroup or
 * task every few intervals while it costs more than guard.watch_cpu. */
static void guard_watch(struct daemon *d)
{
	struct watch_cost c;
	const char *name;
	unsigned every;
	char why[200];

	watchers_cost(d->watchers, &c);
	if (guard_watch_sample(d->guard, &c, &name, &every, why, sizeof(why)))
		watchers_widen(d->watchers, name, every, why);
}

static void on_tick(void *ctx, struct loop_timer *t)
{
	struct daemon *d = ctx;

	(void)t;
	watchers_sample(d->watchers, d->db, now_real_ms());
	metrics_http_round(d->prom, d->db);
	engine_evaluate(d->engine, d->db, now_mono_ns() / 1000000, on_fires, d);
	guard_hooks(d);
	guard_watch(d);
	capmgr_tick(d->caps);
	d->incidents_written += store_retry(d->store, now_mono_ns() / 1000000, false);
	{
		const char *kinds[16];
		unsigned n = capmgr_running_kinds(d->caps, kinds, 16);
		char why[200];

		/* the guard ends captures that cost the node more than allowed */
		if (guard_sample(d->guard, kinds, n, why, sizeof(why)))
			capmgr_cut_short(d->caps, why);
	}
	if (d->ticks % 10 == 0) {
		d->cpu_prev = d->cpu_last;
		d->cpu_last.mono_ns = now_mono_ns();
		d->cpu_last.cpu_ns = process_cpu_ns();
	}
	if (d->ticks++ % 10 == 0)
		sd_notify_status("watching: %u rules, %u series, %llu incidents written, "
				 "%u captures running",
				 engine_rules(d->engine)->n, tsdb_series_count(d->db),
				 (unsigned long long)d->incidents_written, capmgr_running(d->caps));
}

static struct guard_opts guard_opts_of(const struct agent_config *cfg)
{
	return (struct guard_opts){.enabled = cfg->guard.enabled,
				   .capture_cpu_pct = (double)cfg->guard.capture_cpu_pct,
				   .agent_cpu_pct = (double)cfg->guard.agent_cpu_pct,
				   .strikes = 2,
				   .hook_cpu_pct = (double)cfg->guard.hook_cpu_pct,
				   .hook_hold_ms = cfg->guard.hook_hold_ms,
				   .watch_cpu_us = cfg->guard.watch_cpu_ms * 1000,
				   .interval_ms = cfg->agent.interval_ms};
}

static void on_watchdog(void *ctx, struct loop_timer *t)
{
	(void)ctx;
	(void)t;
	sd_notify_send("WATCHDOG=1");
}

static void on_retention(void *ctx, struct loop_timer *t)
{
	struct daemon *d = ctx;

	(void)t;
	store_enforce_retention(d->store, now_real_ms(), &d->store_stats);
}

static int open_store(const struct agent_config *cfg, struct store **out)
{
	struct store_opts so = {
		.dir = cfg->local.dir,
		.max_size = cfg->local.max_size,
		.max_age_ms = cfg->local.max_age_ms,
	};

	return store_open(out, &so);
}

static int open_es(struct daemon *d, const struct agent_config *cfg, struct essink **out)
{
	struct essink_opts eo = {.loop = d->loop, .cfg = cfg, .prev = d->es};

	*out = NULL;
	return cfg->es.enabled ? essink_new(out, &eo) : 0;
}

static json_t *metrics_status(void *ctx)
{
	return daemon_status(ctx);
}

static const struct tsdb *metrics_db(void *ctx)
{
	return ((struct daemon *)ctx)->db;
}

/* The Prometheus endpoint; on reload the running one hands over its socket.
 * Its health metrics read the very document `autotrace status` shows. */
static int open_metrics(struct daemon *d, const struct agent_config *cfg, struct metrics_http **out)
{
	struct metrics_http_opts mo = {.loop = d->loop,
				       .cfg = cfg,
				       .status = metrics_status,
				       .db = metrics_db,
				       .ctx = d,
				       .prev = d->prom};

	return metrics_http_new(out, &mo);
}

static unsigned history_points(const struct agent_config *cfg)
{
	uint64_t n = cfg->agent.history_ms / cfg->agent.interval_ms + 1;

	return (unsigned)MIN(n, 36000);
}

/*
 * What only loading BPF objects needs goes once they are loaded: the parsed
 * kernel BTF (megabytes, shared by every object's checks) and the heap pages
 * libbpf's own per-object copies of it left free.
 */
static void startup_memory_release(void)
{
	kernel_btf_release();
	malloc_trim(0);
}

/* watch.* changed: the watchers (and any opt-in hooks) start over with it. */
static void reopen_watchers(struct daemon *d)
{
	struct watcher_env wenv = {
		.cfg = &d->cfg, .procfs = "/proc", .sysfs = "/sys", .cgroups = d->cgroups};
	struct watchers *w = NULL;

	watchers_free(&d->watchers);
	if (watchers_open(&w, &wenv) == 0)
		d->watchers = w;
	else
		log_error("reopening the watchers failed: no metrics until the next reload");
	startup_memory_release();
}

static void reload(struct daemon *d)
{
	struct agent_config next;
	struct ruleset *rules = NULL;
	struct store *store = NULL;
	struct essink *es = NULL;
	struct metrics_http *prom = NULL;
	int err;

	sd_notify_send("RELOADING=1");
	log_info("reloading %s", d->cfg_path ? d->cfg_path : "built-in defaults");
	err = load_all(d->cfg_path, d->cfg_explicit, &next, &rules);
	if (!err && strcmp(next.local.dir, d->cfg.local.dir))
		err = open_store(&next, &store);
	/* a new sink re-reads the secret files and the spool; the old one's
	 * request in flight is abandoned and re-sent (the _id makes it harmless) */
	if (!err)
		err = open_es(d, &next, &es);
	if (!err) {
		err = open_metrics(d, &next, &prom);
		if (err)
			essink_free(&es);
	}
	if (err) {
		store_free(&store);
		snprintf(d->last_reload_error, sizeof(d->last_reload_error),
			 "reload failed (%s); the previous configuration and rules keep running",
			 strerror(-err));
		log_error("%s", d->last_reload_error);
		ruleset_free(&rules);
		sd_notify_send("READY=1");
		return;
	}
	if (next.capture.max_stacks != d->cfg.capture.max_stacks ||
	    next.capture.max_files != d->cfg.capture.max_files ||
	    memcmp(&next.symbolizer, &d->cfg.symbolizer, sizeof(next.symbolizer)))
		log_warn("capture.max_stacks, capture.max_files and symbolizer.* take "
			 "effect on restart");
	if (next.agent.interval_ms != d->cfg.agent.interval_ms ||
	    next.agent.history_ms != d->cfg.agent.history_ms ||
	    watchers_series_budget(&next) != watchers_series_budget(&d->cfg)) {
		struct tsdb *db = NULL;

		/* the history ring is sized by history/interval: start a new one */
		if (tsdb_new(&db, metric_count(), watchers_series_budget(&next),
			     history_points(&next)) == 0) {
			tsdb_free(&d->db);
			d->db = db;
		}
		loop_timer_set(d->tick, next.agent.interval_ms * 1000000ull,
			       next.agent.interval_ms * 1000000ull);
		engine_set_interval(d->engine, next.agent.interval_ms);
	}
	if (store) {
		store_free(&d->store);
		d->store = store;
	}
	essink_free(&d->es);
	d->es = es;
	metrics_http_free(&d->prom);
	d->prom = prom;
	if (strcmp(next.agent.control_socket, d->cfg.agent.control_socket))
		log_warn("agent.control_socket takes effect on restart");
	snprintf(next.agent.control_socket, sizeof(next.agent.control_socket), "%s",
		 d->cfg.agent.control_socket);
	/* keep what cannot change without a restart */
	next.capture.max_stacks = d->cfg.capture.max_stacks;
	next.capture.max_files = d->cfg.capture.max_files;
	next.symbolizer = d->cfg.symbolizer;
	{
		bool watch_changed = memcmp(&next.watch, &d->cfg.watch, sizeof(next.watch)) != 0;

		d->cfg = next;
		if (watch_changed)
			reopen_watchers(d);
	}
	{
		struct guard_opts go = guard_opts_of(&d->cfg);

		guard_set_opts(d->guard, &go);
	}
	apply_log_level(&d->cfg);
	incident_host_read(&d->host, &d->cfg);
	engine_set_rules(d->engine, rules);
	d->last_reload_error[0] = '\0';
	log_info("reloaded: %u rules from %s", engine_rules(d->engine)->n,
		 engine_rules(d->engine)->source);
	sd_notify_send("READY=1");
}

static void on_signal(void *ctx, int fd, uint32_t events)
{
	struct daemon *d = ctx;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_info("%s: detaching and exiting", strsignal((int)si.ssi_signo));
			d->stopping = true;
			loop_stop(d->loop);
			return;
		case SIGHUP:
			reload(d);
			break;
		default:
			break;
		}
	}
}

static void daemon_cleanup(struct daemon *d)
{
	sd_notify_send("STOPPING=1");
	d->stopping = true;
	/* detach every capture program first: nothing may stay attached after exit */
	if (d->caps)
		capmgr_stop_all(d->caps);
	capmgr_free(&d->caps);
	guard_free(&d->guard);
	control_free(&d->ctl);
	metrics_http_free(&d->prom);
	engine_free(&d->engine);
	watchers_free(&d->watchers);
	loop_timer_free(&d->tick);
	loop_timer_free(&d->watchdog);
	loop_timer_free(&d->retention);
	essink_free(&d->es); /* before the loop: its sockets and timers live there */
	if (d->sigfd >= 0) {
		loop_del_fd(d->loop, d->sigfd);
		close(d->sigfd);
	}
	symbolizer_free(&d->sym); /* before the loop: its helper's socket and timer live there */
	loop_free(&d->loop);
	tsdb_free(&d->db);
	cgroups_free(&d->cgroups);
	store_free(&d->store);
	free(d->notes);
}

int daemon_run(const char *config_path)
{
	struct daemon d = {.sigfd = -1};
	struct ruleset *rules = NULL;
	struct watcher_env wenv;
	struct capmgr_opts copts;
	struct symbolizer_opts sopts;
	sigset_t mask;
	uint64_t wd;
	int err;

	/* a fixed threshold: buffers of megabytes (kernel BTF, parsed once per BPF
	 * object at start-up) are mapped and given back when freed, instead of
	 * raising glibc's threshold and staying in the heap for good */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	d.cfg_path = config_path ? config_path : CONFIG_DEFAULT_PATH;
	d.cfg_explicit = config_path != NULL;
	d.started_mono_ns = now_mono_ns();
	log_route_libbpf();
	if (load_all(d.cfg_path, d.cfg_explicit, &d.cfg, &rules))
		return 2;
	apply_log_level(&d.cfg);
	log_info("autotrace %s starting: config %s, %u rules from %s", AUTOTRACE_VERSION,
		 d.cfg.source, rules->n, rules->source);
	if (geteuid() != 0)
		log_warn("not running as root: BPF programs will most likely fail to load");

	/* signals become events on the loop: block them before anything else runs */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	incident_host_read(&d.host, &d.cfg);
	{
		char dir[PATH_MAX];

		/* kernel settings an agent that crashed left changed (base/sysstate.h) */
		sysstate_dir_of(d.cfg.agent.control_socket, dir, sizeof(dir));
		sysstate_restore_all(dir, "/proc");
	}
	if ((err = loop_new(&d.loop)))
		goto fail;
	d.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d.sigfd < 0) {
		err = -errno;
		goto fail;
	}
	if ((err = loop_add_fd(d.loop, d.sigfd, EPOLLIN, on_signal, &d)))
		goto fail;
	if ((err = open_store(&d.cfg, &d.store)))
		goto fail;
	if ((err = cgroups_new(&d.cgroups, "/sys/fs/cgroup")))
		goto fail;
	/* the helper answers from the loop; an incident waits at most three
	 * deadlines in all for answers still missing */
	sopts = (struct symbolizer_opts){.cache_bytes = d.cfg.symbolizer.cache_size,
					 .lines = d.cfg.symbolizer.lines,
					 .loop = d.loop,
					 .helper_user = d.cfg.symbolizer.helper_user,
					 .helper_timeout_ms = d.cfg.symbolizer.helper_timeout_ms,
					 .max_wait_ms = 3 * d.cfg.symbolizer.helper_timeout_ms};
	if ((err = symbolizer_new(&d.sym, &sopts)))
		goto fail;
	if ((err = tsdb_new(&d.db, metric_count(), watchers_series_budget(&d.cfg),
			    history_points(&d.cfg))))
		goto fail;
	wenv = (struct watcher_env){
		.cfg = &d.cfg, .procfs = "/proc", .sysfs = "/sys", .cgroups = d.cgroups};
	if ((err = watchers_open(&d.watchers, &wenv)))
		goto fail;
	copts = (struct capmgr_opts){
		.loop = d.loop, .cfg = &d.cfg, .sym = d.sym, .cgroups = d.cgroups};
	if ((err = capmgr_new(&d.caps, &copts)))
		goto fail;
	{
		struct guard_opts go = guard_opts_of(&d.cfg);

		if ((err = guard_new(&d.guard, &go)))
			goto fail;
	}
	/* configuration only: an unreachable cluster is retried from the loop. After
	 * the BPF objects are loaded: libcurl and its libraries, loaded here, would
	 * otherwise sit under each load's transient copies of the kernel BTF. */
	if ((err = open_es(&d, &d.cfg, &d.es)))
		goto fail;
	if ((err = engine_new(&d.engine, rules, d.cfg.agent.interval_ms)))
		goto fail;
	rules = NULL;
	if ((err = loop_timer_new(d.loop, d.cfg.agent.interval_ms * 1000000ull,
				  d.cfg.agent.interval_ms * 1000000ull, on_tick, &d, &d.tick)))
		goto fail;
	if ((err = loop_timer_new(d.loop, 60ull * 1000000000ull, RETENTION_PERIOD_NS, on_retention,
				  &d, &d.retention)))
		goto fail;
	wd = sd_watchdog_usec();
	if (wd && (err = loop_timer_new(d.loop, wd * 500, wd * 500, on_watchdog, &d, &d.watchdog)))
		goto fail;
	store_enforce_retention(d.store, now_real_ms(), &d.store_stats);
	d.notes = calloc(RULES_MAX, sizeof(*d.notes));
	if (!d.notes) {
		err = -ENOMEM;
		goto fail;
	}
	d.cpu_last.mono_ns = d.started_mono_ns;
	d.cpu_last.cpu_ns = process_cpu_ns();
	d.cpu_prev = d.cpu_last;
	/* without its socket the agent still watches and captures: status and
	 * manual triggers are what is lost, and the log says why */
	if (daemon_control_open(&d))
		log_error("control socket %s unavailable: autotrace status and trigger will "
			  "not work",
			  d.cfg.agent.control_socket);
	/* asked for explicitly: an endpoint that cannot be what the configuration
	 * says (address taken, unprotected beyond loopback) stops the start */
	if ((err = open_metrics(&d, &d.cfg, &d.prom)))
		goto fail;
	startup_memory_release();

	sd_notify_send("READY=1");
	sd_notify_status("watching: %u rules", engine_rules(d.engine)->n);
	log_info("ready: cgroups %s, incidents in %s, interval %llums",
		 cgroups_layout_name(cgroups_layout(d.cgroups)), store_dir(d.store),
		 (unsigned long long)d.cfg.agent.interval_ms);

	err = loop_run(d.loop);
	daemon_cleanup(&d);
	if (err) {
		log_error("event loop failed: %s", strerror(-err));
		return 1;
	}
	log_info("stopped");
	return 0;
fail:
	log_error("start-up failed: %s", strerror(-err));
	ruleset_free(&rules);
	daemon_cleanup(&d);
	return 1;
}
