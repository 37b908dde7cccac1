// SPDX-License-Identifier: GPL-2.0-only
#include "agent/daemon.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/capmgr.h"
#include "base/cgroups.h"
#include "base/config.h"
#include "agent/control.h"
#include "agent/guard.h"
#include "agent/incident.h"
#include "agent/metrics_http.h"
#include "base/log.h"
#include "agent/procscan.h"
#include "base/loop.h"
#include "agent/sdnotify.h"
#include "base/symbolize.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "storage/essink.h"
#include "storage/flamegraph.h"
#include "storage/store.h"
#include "triggers/engine.h"
#include "triggers/rules.h"
#include "version.h"

#define RETENTION_PERIOD_NS (3600ull * 1000000000ull)
#define RECENT_INCIDENTS    64 /* outcomes the control socket can report by id */

struct pending_incident;

/* What the daemon remembers about a rule beyond the engine's state machine. */
struct rule_note {
	char name[128];
	char last_error[256];
	uint64_t last_error_real_ms;
	uint64_t errors;
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

static struct rule_note *rule_note_of(struct daemon *d, const char *rule)
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
	struct rule_note *n = rule_note_of(d, rule);
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
	struct rule_note *n = rule_note_of(d, p->name);

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
	if (err) {
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

static void session_done(void *ctx, struct capture_session *s)
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

/* Resolves where one capture of a rule looks for a scope. */
static void capture_target_for(struct daemon *d, const struct rule *r, const struct rule_capture *c,
			       const char *series_key, struct capture_target *t)
{
	enum rule_target want = rule_capture_target(r, c);
	struct capture_target cg = {.kind = TARGET_HOST};
	bool have_cg = scope_cgroup(d, series_key, &cg);

	memset(t, 0, sizeof(*t));
	t->kind = TARGET_HOST;
	if (want == RTARGET_CGROUP && have_cg) {
		*t = cg;
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
				capture_target_for(d, r, c, f->series_key, &it->target);
				p->kinds[p->nkinds++] = c->ops;
			}
		}
		for (unsigned m = 0; m < req.n; m++)
			longest = MAX(longest, req.items[m].params.duration_ms);
		req.target =
			req.n ? req.items[0].target : (struct capture_target){.kind = TARGET_HOST};
		req.dry_run = dry;
		p->ends_mono_ms = now_mono_ns() / 1000000 + longest;
		err = capmgr_start(d->caps, &req, session_done, p, now_mono_ns() / 1000000);
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

static uint64_t process_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

static void on_tick(void *ctx, struct loop_timer *t)
{
	struct daemon *d = ctx;

	(void)t;
	watchers_sample(d->watchers, d->db, now_real_ms());
	metrics_http_round(d->prom, d->db);
	engine_evaluate(d->engine, d->db, now_mono_ns() / 1000000, on_fires, d);
	guard_hooks(d);
	capmgr_tick(d->caps);
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
				   .hook_hold_ms = cfg->guard.hook_hold_ms};
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

static json_t *metrics_status(void *ctx);

static const struct tsdb *metrics_db(void *ctx)
{
	return ((struct daemon *)ctx)->db;
}

/* The Prometheus endpoint; on reload the running one hands over its socket. */
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
	    next.symbolizer.cache_size != d->cfg.symbolizer.cache_size)
		log_warn("capture.max_stacks, capture.max_files and symbolizer.cache_size take "
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
	next.symbolizer.cache_size = d->cfg.symbolizer.cache_size;
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

/* ---- control socket commands (docs/control-protocol.md) ---- */

static void read_self_memory(uint64_t *rss, uint64_t *peak)
{
	char *text = NULL, *line;
	size_t len;

	*rss = *peak = 0;
	if (read_file("/proc/self/status", 65536, &text, &len))
		return;
	for (line = text; line; line = strchr(line, '\n')) {
		unsigned long long kb;

		line += *line == '\n';
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			*rss = kb * 1024;
		else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
			*peak = kb * 1024;
	}
	free(text);
}

static json_t *status_agent(struct daemon *d)
{
	uint64_t now = now_mono_ns(), cpu = process_cpu_ns(), rss, peak;
	uint64_t up_ns = now - d->started_mono_ns;
	json_t *o = json_object();
	char ts[40];

	read_self_memory(&rss, &peak);
	format_iso8601(now_real_ms() - up_ns / 1000000, ts, sizeof(ts));
	json_object_set_new(o, "version", json_string(AUTOTRACE_VERSION));
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "started", json_string(ts));
	json_object_set_new(o, "uptime_ms", json_integer((json_int_t)(up_ns / 1000000)));
	json_object_set_new(o, "config", json_string(d->cfg.source));
	json_object_set_new(o, "rules_source", json_string(engine_rules(d->engine)->source));
	json_object_set_new(o, "interval_ms", json_integer((json_int_t)d->cfg.agent.interval_ms));
	json_object_set_new(o, "dry_run", json_boolean(d->cfg.agent.dry_run));
	json_object_set_new(o, "cpu_seconds", json_real((double)cpu / 1e9));
	json_object_set_new(o, "cpu_pct",
			    json_real(up_ns ? 100.0 * (double)cpu / (double)up_ns : 0));
	/* the last 10-20 intervals: what the agent costs now, not on average */
	if (now > d->cpu_prev.mono_ns)
		json_object_set_new(o, "cpu_pct_recent",
				    json_real(100.0 * (double)(cpu - d->cpu_prev.cpu_ns) /
					      (double)(now - d->cpu_prev.mono_ns)));
	json_object_set_new(o, "rss_bytes", json_integer((json_int_t)rss));
	json_object_set_new(o, "rss_peak_bytes", json_integer((json_int_t)peak));
	json_object_set_new(o, "metric_series", json_integer(tsdb_series_count(d->db)));
	if (d->last_reload_error[0])
		json_object_set_new(o, "last_reload_error", json_string(d->last_reload_error));
	return o;
}

/* watchers_status() plus the latest host-level value of every series each wrote:
 * one pass over the series (a dense node has tens of thousands, and the
 * metrics endpoint builds this document on every scrape). */
static json_t *status_watchers(struct daemon *d)
{
	json_t *arr = watchers_status(d->watchers), *w;
	size_t n = json_array_size(arr), i;
	unsigned *labeled = calloc(n ? n : 1, sizeof(*labeled));

	json_array_foreach(arr, i, w) json_object_set_new(w, "values", json_object());
	for (size_t m = 0; labeled && m < metric_count(); m++) {
		for (struct tsdb_series *s = tsdb_first(d->db, (unsigned)m); s; s = tsdb_next(s)) {
			unsigned src = tsdb_series_source(s);
			double v;

			if (src < 1 || src > n)
				continue;
			if (tsdb_series_key(s)[0])
				labeled[src - 1]++;
			else if (tsdb_value(d->db, s, 0, &v))
				json_object_set_new(
					json_object_get(json_array_get(arr, src - 1), "values"),
					metric_at(m)->name, json_real(round(v * 1000) / 1000));
		}
	}
	json_array_foreach(arr, i, w)
		json_object_set_new(w, "labeled_series", json_integer(labeled ? labeled[i] : 0));
	free(labeled);
	return arr;
}

/* engine_status() with per-rule totals over scopes and what the daemon noted. */
static json_t *status_rules(struct daemon *d, uint64_t *skipped)
{
	json_t *arr = engine_status(d->engine, now_mono_ns() / 1000000), *r;
	size_t i;

	json_array_foreach(arr, i, r)
	{
		const char *name = json_string_value(json_object_get(r, "name"));
		struct rule_note *n = name ? rule_note_of(d, name) : NULL;
		json_int_t hour = 0, ago = -1;
		json_t *sc;
		size_t k;

		json_array_foreach(json_object_get(r, "scopes"), k, sc)
		{
			json_t *a = json_object_get(sc, "last_fired_ago_ms");

			hour += json_integer_value(json_object_get(sc, "fires_last_hour"));
			if (json_is_integer(a) && (ago < 0 || json_integer_value(a) < ago))
				ago = json_integer_value(a);
		}
		*skipped += (uint64_t)json_integer_value(json_object_get(r, "skipped"));
		json_object_set_new(r, "fires_last_hour", json_integer(hour));
		if (ago >= 0)
			json_object_set_new(r, "last_fired_ago_ms", json_integer(ago));
		json_object_set_new(r, "errors", json_integer(n ? (json_int_t)n->errors : 0));
		if (n && n->last_incident[0])
			json_object_set_new(r, "last_incident", json_string(n->last_incident));
		if (n && n->last_error[0]) {
			char ts[40];

			format_iso8601(n->last_error_real_ms, ts, sizeof(ts));
			json_object_set_new(r, "last_error", json_string(n->last_error));
			json_object_set_new(r, "last_error_at", json_string(ts));
		}
	}
	return arr;
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

static json_t *status_captures(struct daemon *d)
{
	json_t *o = capmgr_status(d->caps), *sessions = json_array();
	uint64_t now = now_mono_ns() / 1000000;

	for (struct pending_incident *p = d->pending; p; p = p->next)
		json_array_append_new(
			sessions,
			json_pack("{s:s,s:s,s:b,s:I}", "incident_id", p->id, "rule", p->name,
				  "manual", p->manual, "ends_in_ms",
				  (json_int_t)(p->ends_mono_ms > now ? p->ends_mono_ms - now : 0)));
	json_object_set_new(o, "sessions", sessions);
	json_object_set_new(o, "max_concurrent",
			    json_integer((json_int_t)d->cfg.capture.max_concurrent));
	json_object_set_new(o, "max_seconds_per_hour",
			    json_integer((json_int_t)d->cfg.capture.max_seconds_per_hour));
	return o;
}

static json_t *status_incidents(struct daemon *d)
{
	json_t *o = json_object();

	json_object_set_new(o, "dir", json_string(store_dir(d->store)));
	json_object_set_new(o, "written", json_integer((json_int_t)d->incidents_written));
	json_object_set_new(o, "failed", json_integer((json_int_t)d->incidents_failed));
	json_object_set_new(o, "stored", json_integer(d->store_stats.incidents));
	json_object_set_new(o, "stored_bytes", json_integer((json_int_t)d->store_stats.bytes));
	if (d->nrecent) {
		const struct recent_incident *r = &d->recent[(d->nrecent - 1) % RECENT_INCIDENTS];

		json_object_set_new(o, "last",
				    json_pack("{s:s,s:s,s:b,s:s}", "id", r->id, "rule", r->rule,
					      "ok", r->ok, "where", r->where));
	}
	return o;
}

static json_t *status_elasticsearch(struct daemon *d)
{
	if (d->es)
		return essink_status(d->es);
	return json_pack("{s:b,s:s}", "enabled", false, "state", "disabled");
}

static int ctl_status(void *ctx, const struct control_call *call, json_t **result,
		      struct control_error *err)
{
	struct daemon *d = ctx;
	json_t *o = json_object(), *caps;
	uint64_t skipped = 0;

	(void)call;
	(void)err;
	json_object_set_new(o, "agent", status_agent(d));
	json_object_set_new(o, "watchers", status_watchers(d));
	json_object_set_new(o, "rules", status_rules(d, &skipped));
	caps = status_captures(d);
	json_object_set_new(o, "incidents", status_incidents(d));
	json_object_set_new(o, "elasticsearch", status_elasticsearch(d));
	json_object_set_new(
		o, "dropped",
		json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "metric_series",
			  (json_int_t)tsdb_dropped(d->db), "capture_lost_events",
			  (json_int_t)d->capture_lost_events, "captures_refused_busy",
			  json_integer_value(json_object_get(caps, "refused_busy")),
			  "captures_refused_budget",
			  json_integer_value(json_object_get(caps, "refused_budget")),
			  "rule_firings_skipped", (json_int_t)skipped, "incidents_failed",
			  (json_int_t)d->incidents_failed, "es_spool_evicted",
			  (json_int_t)(d->es ? essink_evicted(d->es) : 0), "es_rejected",
			  (json_int_t)(d->es ? essink_rejected(d->es) : 0)));
	json_object_set_new(o, "captures", caps);
	json_object_set_new(o, "guard", guard_status(d->guard));
	json_object_set_new(o, "symbolizer", symbolizer_stats_json(d->sym));
	json_object_set_new(o, "control", d->ctl ? control_stats(d->ctl) : json_null());
	json_object_set_new(o, "prometheus", metrics_http_status(d->prom));
	*result = o;
	return 0;
}

/* The endpoint's health metrics read the very document `autotrace status` shows. */
static json_t *metrics_status(void *ctx)
{
	json_t *o = NULL;

	ctl_status(ctx, NULL, &o, NULL);
	return o;
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

static int ctl_trigger(void *ctx, const struct control_call *call, json_t **result,
		       struct control_error *err)
{
	struct daemon *d = ctx;
	const char *rule = arg_str(call->args, "rule"), *cgroup = arg_str(call->args, "cgroup");
	json_t *kinds = json_object_get(call->args, "captures");
	json_t *jdur = json_object_get(call->args, "duration_ms");
	json_t *jpid = json_object_get(call->args, "pid");
	struct capture_request req = {0};
	struct pending_incident *p;
	json_int_t busy0, budget0;
	json_t *st, *caps;
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

	st = capmgr_status(d->caps);
	busy0 = json_integer_value(json_object_get(st, "refused_busy"));
	budget0 = json_integer_value(json_object_get(st, "refused_budget"));
	json_decref(st);
	ret = capmgr_start(d->caps, &req, session_done, p, now_mono_ns() / 1000000);
	if (ret == -EBUSY) {
		st = capmgr_status(d->caps);
		if (json_integer_value(json_object_get(st, "refused_budget")) > budget0)
			control_error_set(err, "busy",
					  "capture budget spent: capture.max_seconds_per_hour = "
					  "%llu over the last hour",
					  (unsigned long long)d->cfg.capture.max_seconds_per_hour);
		else
			control_error_set(err, "busy",
					  "%s: a capture of the same kind is running, or "
					  "capture.max_concurrent (%llu) sessions are; retry when "
					  "they end",
					  json_integer_value(json_object_get(st, "refused_busy")) >
							  busy0
						  ? "captures busy"
						  : "not now",
					  (unsigned long long)d->cfg.capture.max_concurrent);
		json_decref(st);
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

static int control_open(struct daemon *d)
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
	loop_free(&d->loop);
	tsdb_free(&d->db);
	symbolizer_free(&d->sym);
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
	/* configuration only: an unreachable cluster is retried from the loop */
	if ((err = open_es(&d, &d.cfg, &d.es)))
		goto fail;
	if ((err = cgroups_new(&d.cgroups, "/sys/fs/cgroup")))
		goto fail;
	sopts = (struct symbolizer_opts){.cache_bytes = d.cfg.symbolizer.cache_size,
					 .lines = d.cfg.symbolizer.lines};
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
	if (control_open(&d))
		log_error("control socket %s unavailable: autotrace status and trigger will "
			  "not work",
			  d.cfg.agent.control_socket);

	/* asked for explicitly: an endpoint that cannot be what the configuration
	 * says (address taken, unprotected beyond loopback) stops the start */
	if ((err = open_metrics(&d, &d.cfg, &d.prom)))
		goto fail;

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
