// SPDX-License-Identifier: GPL-2.0-only
/* `autotrace probes`: what this kernel supports, and so which watchers,
 * captures and rules work here, and why not. No daemon needed. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent/capmgr.h"
#include "agent/cli.h"
#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/symbolize.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "base/sanitize.h"
#include "probes/catalogue.h"
#include "probes/kcompat.h"
#include "probes/kernel_features.h"
#include "probes/watcher.h"
#include "triggers/rules.h"
#include "version.h"

struct probe_env {
	struct agent_config cfg;
	struct cgroups *cg;
	struct loop *loop;
	struct symbolizer *sym;
	struct watchers *w;
	struct capmgr *caps;
	struct tsdb *db;
};

static void env_free(struct probe_env *e)
{
	capmgr_free(&e->caps);
	watchers_free(&e->w);
	symbolizer_free(&e->sym);
	loop_free(&e->loop);
	tsdb_free(&e->db);
	cgroups_free(&e->cg);
}

static json_t *features_json(void)
{
	struct feature_result f[FEATURES_MAX];
	json_t *arr = json_array();
	unsigned n = 0;

	kernel_features_probe(f, FEATURES_MAX, &n);
	for (unsigned i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "name", f[i].name,
						     "state", feature_state_name(f[i].state),
						     "detail", f[i].detail, "what", f[i].what));
	return arr;
}

/* Which metrics each watcher produced in two real rounds on this host. */
static void add_watcher_metrics(struct probe_env *e, json_t *watchers)
{
	json_t *w;
	size_t i;

	json_array_foreach(watchers, i, w)
	{
		json_t *names = json_array();

		for (size_t m = 0; m < metric_count(); m++) {
			for (struct tsdb_series *s = tsdb_first(e->db, (unsigned)m); s;
			     s = tsdb_next(s)) {
				if (tsdb_series_source(s) == i + 1) {
					json_array_append_new(names,
							      json_string(metric_at(m)->name));
					break;
				}
			}
		}
		json_object_set_new(w, "metrics", names);
	}
}

/* Each configured rule: does its metric exist here, can its captures run? */
static json_t *rules_json(struct probe_env *e)
{
	struct rules_limits lim = rules_limits_from_config(&e->cfg);
	const char *dir = e->cfg.agent.rules_dir;
	struct diag diag = {0};
	struct ruleset *rs = NULL;
	json_t *arr = json_array();
	int err;

	if (access(dir, F_OK) == 0)
		err = ruleset_load_paths(&dir, 1, &lim, &rs, &diag);
	else
		err = ruleset_load_builtin(&lim, &rs, &diag);
	diag_clear(&diag);
	if (err) {
		json_array_append_new(
			arr, json_pack("{s:s,s:s,s:s}", "name", "(rules)", "state", "invalid",
				       "why", "the rules do not load: see autotrace rules check"));
		return arr;
	}
	for (unsigned i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];
		json_t *why = json_array();

		if (r->metric >= 0 && !tsdb_first(e->db, (unsigned)r->metric))
			json_array_append_new(why,
					      json_sprintf("no watcher produces %s on this host",
							   metric_at((size_t)r->metric)->name));
		for (unsigned k = 0; k < r->ncaptures; k++) {
			const char *reason = NULL;

			if (!capmgr_kind_ready(e->caps, r->captures[k].ops->kind, &reason))
				json_array_append_new(
					why, json_sprintf("capture %s unavailable: %s",
							  r->captures[k].ops->kind, reason));
		}
		json_array_append_new(arr, json_pack("{s:s,s:s,s:o}", "name", r->name, "state",
						     json_array_size(why) ? "degraded" : "ok",
						     "why", why));
	}
	ruleset_free(&rs);
	return arr;
}

static json_t *probe_all(struct probe_env *e)
{
	struct watcher_env wenv = {.cfg = &e->cfg, .procfs = "/proc", .sysfs = "/sys"};
	struct symbolizer_opts so = {.cache_bytes = 8u << 20};
	struct capmgr_opts co;
	json_t *doc = json_object(), *watchers, *caps = NULL;
	struct timespec ts = {0, 300 * 1000000L};
	struct utsname u;
	char ts_text[40];

	uname(&u);
	format_iso8601(now_real_ms(), ts_text, sizeof(ts_text));
	json_object_set_new(doc, "timestamp", json_string(ts_text));
	json_object_set_new(doc, "kernel",
			    json_pack("{s:s,s:s,s:s}", "release", u.release, "version", u.version,
				      "machine", u.machine));
	json_object_set_new(doc, "autotrace", json_string(AUTOTRACE_VERSION));
	json_object_set_new(doc, "root", json_boolean(geteuid() == 0));
	json_object_set_new(doc, "features", features_json());

	cgroups_new(&e->cg, "/sys/fs/cgroup");
	wenv.cgroups = e->cg;
	if (tsdb_new(&e->db, metric_count(), 8192, 4) == 0 && watchers_open(&e->w, &wenv) == 0) {
		/* two rounds: rates and percentages need a reference */
		watchers_sample(e->w, e->db, now_real_ms());
		nanosleep(&ts, NULL);
		watchers_sample(e->w, e->db, now_real_ms());
		watchers = watchers_status(e->w);
		add_watcher_metrics(e, watchers);
	} else {
		watchers = json_array();
	}
	json_object_set_new(doc, "watchers", watchers);

	co = (struct capmgr_opts){.cfg = &e->cfg, .cgroups = e->cg};
	if (loop_new(&e->loop) == 0 && symbolizer_new(&e->sym, &so) == 0) {
		co.loop = e->loop;
		co.sym = e->sym;
		/* prepares every kind exactly as the agent does at start-up */
		capmgr_new(&e->caps, &co);
	}
	if (e->caps) {
		json_t *st = capmgr_status(e->caps);

		caps = json_incref(json_object_get(st, "kinds"));
		json_decref(st);
	}
	json_object_set_new(doc, "captures", caps ? caps : json_array());
	/* what the watchers and captures just loaded in place of their first choice */
	json_object_set_new(doc, "fallbacks", kcompat_notes_json());
	json_object_set_new(doc, "rules", e->caps ? rules_json(e) : json_array());
	return doc;
}

static void print_text(json_t *doc)
{
	json_t *f, *w, *c, *r;
	size_t i;

	printf("kernel %s (%s), autotrace %s%s\n", cli_jstr(doc, "kernel.release"),
	       cli_jstr(doc, "kernel.machine"), cli_jstr(doc, "autotrace"),
	       json_is_true(json_object_get(doc, "root")) ? ""
							  : "  -- NOT ROOT: BPF checks will fail");
	printf("\n%-14s %-8s %s\n", "FEATURE", "", "HOW IT WAS TESTED / WHY NOT");
	json_array_foreach(json_object_get(doc, "features"), i, f)
		printf("%-14s %-8s %s\n", cli_jstr(f, "name"),
		       strcmp(cli_jstr(f, "state"), "info") ? cli_jstr(f, "state") : "",
		       cli_jstr(f, "detail"));
	printf("\n%-14s %-12s %s\n", "WATCHER", "STATE", "METRICS / WHY NOT");
	json_array_foreach(json_object_get(doc, "watchers"), i, w)
	{
		json_t *m;
		size_t k;

		printf("%-14s %-12s ", cli_jstr(w, "name"), cli_jstr(w, "state"));
		if (cli_jstr(w, "error")[0])
			printf("%s", cli_jstr(w, "error"));
		json_array_foreach(json_object_get(w, "metrics"), k, m)
			printf("%s%s", k ? " " : "", json_string_value(m));
		printf("\n");
	}
	printf("\n%-14s %-12s %s\n", "CAPTURE", "STATE", "WHY NOT");
	json_array_foreach(json_object_get(doc, "captures"), i, c)
		printf("%-14s %-12s %s\n", cli_jstr(c, "kind"),
		       strcmp(cli_jstr(c, "state"), "ready") ? cli_jstr(c, "state") : "works",
		       cli_jstr(c, "error"));
	printf("\n%-28s %s\n", "FALLBACK", "WHAT IS USED INSTEAD, AND WHY");
	if (!json_array_size(json_object_get(doc, "fallbacks")))
		printf("%-28s %s\n", "none", "every probe loads its first choice on this kernel");
	json_array_foreach(json_object_get(doc, "fallbacks"), i, f)
		printf("%-28s %s\n", cli_jstr(f, "component"), cli_jstr(f, "fallback"));
	printf("\n%-28s %-10s %s\n", "RULE", "STATE", "WHY");
	json_array_foreach(json_object_get(doc, "rules"), i, r)
	{
		json_t *why;
		size_t k;

		printf("%-28s %-10s", cli_jstr(r, "name"), cli_jstr(r, "state"));
		if (json_is_string(json_object_get(r, "why")))
			printf(" %s", cli_jstr(r, "why"));
		json_array_foreach(json_object_get(r, "why"), k, why)
			printf("%s%s", k ? "; " : " ", json_string_value(why));
		printf("\n");
	}
}

int cmd_probes(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"config", required_argument, NULL, 'c'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct probe_env e = {0};
	const char *config = NULL;
	bool json = false;
	json_t *doc;
	int c, rc;

	while ((c = getopt_long(argc, argv, "jc:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			cli_print_help(cli_find("probes"), stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("probes", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("probes", "unexpected argument '%s'", argv[optind]);
	rc = cli_load_config(config, &e.cfg);
	if (rc)
		return rc;
	log_route_libbpf();
	/* the answers are the report; warnings about what is missing would repeat it */
	log_set_level(LOG_LVL_ERROR);
	doc = probe_all(&e);
	if (json) {
		json_dumpf_safe(doc, stdout, JSON_INDENT(2));
		printf("\n");
	} else {
		print_text(doc);
	}
	json_decref(doc);
	env_free(&e);
	return EXIT_OK;
}
