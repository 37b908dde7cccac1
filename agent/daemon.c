// SPDX-License-Identifier: GPL-2.0-only
#include "agent/daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/capmgr.h"
#include "agent/cgroups.h"
#include "agent/config.h"
#include "agent/incident.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/sdnotify.h"
#include "agent/symbolize.h"
#include "agent/tsdb.h"
#include "agent/util.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "storage/store.h"
#include "triggers/engine.h"
#include "triggers/rules.h"
#include "version.h"

#define TSDB_MAX_SERIES 8192
#define RETENTION_PERIOD_NS (3600ull * 1000000000ull)

struct daemon {
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
	struct incident_host host;
	uint64_t incidents_written, incidents_failed;
	uint64_t started_mono_ns;
	uint64_t ticks;
	char last_reload_error[512];
	bool stopping;
};

/* Everything an incident needs that must outlive a rule reload. */
struct pending_incident {
	struct daemon *d;
	struct rule rule; /* copy: a reload may free the original */
	bool has_rule;
	char name[128];
	char series_key[LABELS_KEY_MAX];
	int metric;
	double value;
	uint64_t fired_real_ms;
	bool dry_run;
};

static void print_diag(const char *msg, void *ctx)
{
	(void)ctx;
	log_error("%s", msg);
}

static struct rules_limits limits_of(const struct agent_config *cfg)
{
	return (struct rules_limits){ .max_capture_ms = cfg->capture.max_duration_ms };
}

/* Loads config + rules into the out parameters without touching the running agent. */
static int load_all(const char *path, bool explicit_path, struct agent_config *cfg,
		    struct ruleset **rules)
{
	struct diag diag = { 0 };
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

static void write_incident(struct daemon *d, struct pending_incident *p,
			   struct capture_session *session, const char *status)
{
	struct incident_trigger trig = {
		.rule = p->has_rule ? &p->rule : NULL,
		.name = p->name,
		.series_key = p->series_key,
		.metric = p->metric,
		.value = p->value,
		.fired_real_ms = p->fired_real_ms,
	};
	char id[64], dir[4400];
	struct capture_artifact arts[16];
	unsigned nart = 0;
	json_t *doc;
	char *text;
	int err;

	for (unsigned i = 0; session && i < capture_session_count(session); i++) {
		struct capture_outcome *o = capture_session_outcome(session, i);

		for (unsigned a = 0; a < o->result.nartifacts && nart < 16; a++)
			arts[nart++] = o->result.artifacts[a];
	}
	incident_id_new(p->fired_real_ms, id, sizeof(id));
	doc = incident_build(id, &d->host, &trig, d->db, d->cfg.capture.history_before_ms, session,
			     status);
	text = incident_serialize_fit(doc, arts, &nart, d->cfg.local.max_incident_size);
	json_decref(doc);
	if (!text) {
		d->incidents_failed++;
		log_error("incident %s: could not serialize", id);
		return;
	}
	err = store_write(d->store, id, p->fired_real_ms, text, strlen(text), arts, nart, dir,
			  sizeof(dir));
	if (err) {
		d->incidents_failed++;
		log_error("incident %s for rule %s: writing to %s failed: %s", id, p->name,
			  store_dir(d->store), strerror(-err));
	} else {
		d->incidents_written++;
		log_info("incident %s for rule %s written to %s", id, p->name, dir);
	}
	free(text);
}

static void session_done(void *ctx, struct capture_session *s)
{
	struct pending_incident *p = ctx;
	struct daemon *d = p->d;

	write_incident(d, p, s, d->stopping ? "interrupted" : NULL);
	if (p->has_rule)
		engine_capture_done(d->engine, p->name, p->series_key, now_mono_ns() / 1000000);
	capture_session_free(&s);
	free(p);
	if (capmgr_running(d->caps) == 0)
		symbolizer_forget_processes(d->sym);
	if (!d->stopping) {
		struct store_retention st;

		store_enforce_retention(d->store, now_real_ms(), &st);
	}
}

static int build_target(struct daemon *d, const struct engine_fire *f,
			struct capture_target *t)
{
	char cg[512];

	memset(t, 0, sizeof(*t));
	t->kind = TARGET_HOST;
	if (f->rule->scope != RULE_SCOPE_CGROUP)
		return 0;
	/* the series' cgroup label is a path in the hierarchy the BPF side reports */
	for (struct tsdb_series *s = tsdb_first(d->db, (unsigned)f->rule->metric); s;
	     s = tsdb_next(s)) {
		if (strcmp(tsdb_series_key(s), f->series_key))
			continue;
		if (tsdb_series_label(s, "cgroup", cg, sizeof(cg)) < 0)
			break;
		if (cgroups_id_of(d->cgroups, cg, &t->cgroup_id))
			break;
		t->kind = TARGET_CGROUP;
		snprintf(t->cgroup, sizeof(t->cgroup), "%s", cg);
		return 0;
	}
	/* the cgroup vanished: capture host-wide rather than not at all */
	return 0;
}

static int on_fire(void *ctx, const struct engine_fire *f)
{
	struct daemon *d = ctx;
	struct capture_request req = { 0 };
	struct pending_incident *p;
	int err;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->d = d;
	p->rule = *f->rule;
	p->has_rule = true;
	snprintf(p->name, sizeof(p->name), "%s", f->rule->name);
	snprintf(p->series_key, sizeof(p->series_key), "%s", f->series_key);
	p->metric = f->rule->metric;
	p->value = f->value;
	p->fired_real_ms = now_real_ms();
	req.dry_run = d->cfg.agent.dry_run || f->rule->dry_run;
	for (unsigned i = 0; i < f->rule->ncaptures && i < 8; i++) {
		req.items[req.n].ops = f->rule->captures[i].ops;
		req.items[req.n].params = f->rule->captures[i].params;
		req.n++;
	}
	build_target(d, f, &req.target);
	err = capmgr_start(d->caps, &req, session_done, p, now_mono_ns() / 1000000);
	if (err) {
		free(p);
		if (err == -EBUSY)
			log_debug("rule %s fired (%g) but the capture budget is busy; retrying",
				  f->rule->name, f->value);
		return err;
	}
	log_info("rule %s fired: %s = %g%s", f->rule->name,
		 metric_at((size_t)f->rule->metric)->name, f->value,
		 req.dry_run ? " (dry run: nothing attached)" : "");
	return 0;
}

static void on_tick(void *ctx, struct loop_timer *t)
{
	struct daemon *d = ctx;

	(void)t;
	watchers_sample(d->watchers, d->db, now_real_ms());
	engine_evaluate(d->engine, d->db, now_mono_ns() / 1000000, on_fire, d);
	if (d->ticks++ % 10 == 0)
		sd_notify_status("watching: %u rules, %u series, %llu incidents written, "
				 "%u captures running",
				 engine_rules(d->engine)->n, tsdb_series_count(d->db),
				 (unsigned long long)d->incidents_written, capmgr_running(d->caps));
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
	struct store_retention st;

	(void)t;
	store_enforce_retention(d->store, now_real_ms(), &st);
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

static unsigned history_points(const struct agent_config *cfg)
{
	uint64_t n = cfg->agent.history_ms / cfg->agent.interval_ms + 1;

	return (unsigned)MIN(n, 36000);
}

static void reload(struct daemon *d)
{
	struct agent_config next;
	struct ruleset *rules = NULL;
	struct store *store = NULL;
	int err;

	sd_notify_send("RELOADING=1");
	log_info("reloading %s", d->cfg_path ? d->cfg_path : "built-in defaults");
	err = load_all(d->cfg_path, d->cfg_explicit, &next, &rules);
	if (!err && strcmp(next.local.dir, d->cfg.local.dir))
		err = open_store(&next, &store);
	if (err) {
		snprintf(d->last_reload_error, sizeof(d->last_reload_error),
			 "reload failed (%s); the previous configuration and rules keep running",
			 strerror(-err));
		log_error("%s", d->last_reload_error);
		ruleset_free(&rules);
		sd_notify_send("READY=1");
		return;
	}
	if (next.capture.max_stacks != d->cfg.capture.max_stacks ||
	    next.symbolizer.cache_size != d->cfg.symbolizer.cache_size)
		log_warn("capture.max_stacks and symbolizer.cache_size take effect on restart");
	if (next.agent.interval_ms != d->cfg.agent.interval_ms ||
	    next.agent.history_ms != d->cfg.agent.history_ms) {
		struct tsdb *db = NULL;

		/* the history ring is sized by history/interval: start a new one */
		if (tsdb_new(&db, TSDB_MAX_SERIES, history_points(&next)) == 0) {
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
	/* keep what cannot change without a restart */
	next.capture.max_stacks = d->cfg.capture.max_stacks;
	next.symbolizer.cache_size = d->cfg.symbolizer.cache_size;
	d->cfg = next;
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
	engine_free(&d->engine);
	watchers_free(&d->watchers);
	loop_timer_free(&d->tick);
	loop_timer_free(&d->watchdog);
	loop_timer_free(&d->retention);
	if (d->sigfd >= 0) {
		loop_del_fd(d->loop, d->sigfd);
		close(d->sigfd);
	}
	loop_free(&d->loop);
	tsdb_free(&d->db);
	symbolizer_free(&d->sym);
	cgroups_free(&d->cgroups);
	store_free(&d->store);
}

int daemon_run(const char *config_path)
{
	struct daemon d = { .sigfd = -1 };
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
	if ((err = cgroups_new(&d.cgroups, "/sys/fs/cgroup")))
		goto fail;
	sopts = (struct symbolizer_opts){ .cache_bytes = d.cfg.symbolizer.cache_size };
	if ((err = symbolizer_new(&d.sym, &sopts)))
		goto fail;
	if ((err = tsdb_new(&d.db, TSDB_MAX_SERIES, history_points(&d.cfg))))
		goto fail;
	wenv = (struct watcher_env){ .cfg = &d.cfg, .procfs = "/proc", .sysfs = "/sys",
				     .cgroups = d.cgroups };
	if ((err = watchers_open(&d.watchers, &wenv)))
		goto fail;
	copts = (struct capmgr_opts){ .loop = d.loop, .cfg = &d.cfg, .sym = d.sym,
				      .cgroups = d.cgroups };
	if ((err = capmgr_new(&d.caps, &copts)))
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
	{
		struct store_retention st;

		store_enforce_retention(d.store, now_real_ms(), &st);
	}

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
