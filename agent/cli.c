// SPDX-License-Identifier: GPL-2.0-only
/* The command table (the single source of --help and the man page) and the
 * commands that need no daemon. */
#include "agent/cli.h"
#include "base/sanitize.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/daemon.h"
#include "base/cgroups.h"
#include "base/config.h"
#include "agent/exposition.h"
#include "base/log.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "base/value.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "storage/store.h"
#include "triggers/rules.h"

const char cli_description[] =
	"Always-on, anomaly-triggered tracing agent: cheap watchers run all the\n"
	"time; when a rule trips, heavier BPF captures run for a bounded window\n"
	"and one incident is written.";

const struct cli_command cli_commands[] = {
	{"run", "[-c FILE]", "run the agent in the foreground (systemd Type=notify)",
	 "Runs the agent: watchers every interval, rules evaluated on every sample,\n"
	 "captures attached when a rule fires, incidents written to the local store.\n"
	 "SIGTERM/SIGINT detach everything and exit; SIGHUP reloads config and rules\n"
	 "(on any error the running set is kept).\n\n"
	 "  -c, --config FILE   agent configuration (default /etc/autotrace/autotrace.yaml;\n"
	 "                      built-in defaults when that file does not exist)\n"
	 "      --print-config  print the effective configuration reference and exit\n\n"
	 "Environment: AUTOTRACE_LOG_LEVEL overrides agent.log_level.\n",
	 cmd_run},
	{"rules check", "[-c FILE] [PATH...]", "validate rule files or directories",
	 "Parses and validates rule files (or every *.yaml in directories). With no\n"
	 "PATH the configured agent.rules_dir is checked. Errors are printed as\n"
	 "FILE:LINE:COL: message; exit status 2 when any rule is invalid.\n\n"
	 "  -c, --config FILE   take limits (capture.max_duration) from this config\n"
	 "  -q, --quiet         print nothing when everything is valid\n",
	 cmd_rules_check},
	{"metrics", "[--json | --prometheus] [--count N]",
	 "sample every watcher and print the values",
	 "Samples every watcher without a daemon and prints each metric's value.\n"
	 "Rates and percentages need two samples, so the first is taken one interval\n"
	 "before the first printed one.\n\n"
	 "  -j, --json          one JSON object per sample:\n"
	 "                      {\"timestamp\": ..., \"metrics\": [{\"name\", \"value\", "
	 "\"labels\"}]}\n"
	 "  -P, --prometheus    print each sample as the metrics endpoint does (Prometheus\n"
	 "                      text format; the agent's own health needs the daemon);\n"
	 "                      with --list, the Prometheus names of every metric\n"
	 "  -n, --count N       samples to print (default 1)\n"
	 "  -i, --interval D    time between samples (default: agent.interval)\n"
	 "  -l, --list          list the metric catalogue (name, unit, scope, source)\n"
	 "  -c, --config FILE   agent configuration\n",
	 cmd_metrics},
	{"probes", "[--json]", "what this kernel supports, per watcher, capture and rule",
	 "Tests what this kernel supports by loading, attaching and running a tiny BPF\n"
	 "program for each feature (BTF, tp_btf, raw_tp, tracepoints, kprobes, fentry,\n"
	 "perf events, task iterators, ring buffer, uprobes), and reads PSI, the cgroup\n"
	 "layout and the settings that matter. Then opens every watcher and prepares\n"
	 "every capture kind exactly as the agent does, and says which work here and\n"
	 "why not, and which configured rules are degraded. No daemon needed; run as\n"
	 "root. Nothing stays loaded.\n\n"
	 "  -j, --json          one JSON document: features, watchers, captures, rules\n"
	 "  -c, --config FILE   agent configuration (rules_dir, capture limits)\n",
	 cmd_probes},
	{"status", "[--json]", "ask the running agent what it is doing",
	 "Asks the running agent over its control socket: version and uptime; each\n"
	 "watcher with its latest values and cost; each rule's state (ok, pending,\n"
	 "firing, capturing, cooldown), when it last fired, fires this hour and its\n"
	 "last error; captures running and the capture budget; incidents written;\n"
	 "Elasticsearch shipping; everything dropped; the agent's own CPU and memory.\n"
	 "Needs root (the socket is root-only).\n\n"
	 "  -j, --json          the whole status document (docs/control-protocol.md)\n"
	 "  -s, --socket PATH   control socket (default: agent.control_socket)\n"
	 "  -c, --config FILE   agent configuration\n",
	 cmd_status},
	{"trigger",
	 "(--rule NAME | --capture KIND[,KIND]) [--duration D] [--pid P | --cgroup PATH]",
	 "capture now and write an incident",
	 "Asks the running agent to capture now, within its capture budget, and waits\n"
	 "until the incident is written. By rule: that rule's captures with their\n"
	 "parameters (the incident carries the rule's name). By kinds: each kind with\n"
	 "its default parameters (the incident's rule is 'manual'). Needs root.\n\n"
	 "  -r, --rule NAME     run this loaded rule's captures\n"
	 "  -k, --capture KINDS comma-separated capture kinds, e.g. profile,offcpu\n"
	 "  -d, --duration D    capture window for every kind (default: the rule's,\n"
	 "                      or 10s; at most capture.max_duration)\n"
	 "  -p, --pid P         capture only this process (all its threads)\n"
	 "  -g, --cgroup PATH   capture only this cgroup and its descendants\n"
	 "  -W, --no-wait       print the incident id and return at once\n"
	 "  -j, --json          print the result as JSON\n"
	 "  -s, --socket PATH   control socket (default: agent.control_socket)\n"
	 "  -c, --config FILE   agent configuration\n",
	 cmd_trigger},
	{"incidents list", "[--json | --quiet] [--dir DIR]", "list stored incidents, oldest first",
	 "Reads the local incident store (no daemon needed).\n\n"
	 "  -j, --json          one JSON array of {id, timestamp, rule, status, captures, path}\n"
	 "  -q, --quiet         only the incident ids, one a line\n"
	 "  -d, --dir DIR       incident store (default: storage.local.dir)\n"
	 "  -c, --config FILE   agent configuration\n",
	 cmd_incidents_list},
	{"incidents show", "ID [--json] [--dir DIR]", "print one incident",
	 "Renders an incident for a terminal (no daemon needed): what triggered it,\n"
	 "a sparkline of each watched series before and during it, and for each\n"
	 "capture its counters, top stacks and the top rows of its tables (IO files,\n"
	 "processes, D-state tasks...). --json prints incident.json unchanged.\n\n"
	 "  -j, --json          the raw incident document\n"
	 "  -d, --dir DIR       incident store (default: storage.local.dir)\n"
	 "  -c, --config FILE   agent configuration\n",
	 cmd_incidents_show},
	{"incidents flamegraph", "ID [--capture KIND] [-o FILE] [--dir DIR]",
	 "render a flame graph of an incident",
	 "Renders the folded stacks stored with an incident as an interactive SVG\n"
	 "flame graph (hover for details, click to zoom, Search to highlight frames;\n"
	 "kernel frames orange, JIT green, user red to yellow). The agent already\n"
	 "writes one beside every stack-bearing capture (NAME.svg); this renders one\n"
	 "on demand, e.g. for an incident copied from another node.\n\n"
	 "  -k, --capture KIND  which capture's stacks (default: profile, else the first)\n"
	 "  -o, --output FILE   write the SVG here (default: standard output)\n"
	 "  -d, --dir DIR       incident store (default: storage.local.dir)\n"
	 "  -c, --config FILE   agent configuration\n",
	 cmd_incidents_flamegraph},
	{"symbolize", "(--pid P | --kernel) [--json] [--lines] [--in-process] [ADDR...]",
	 "resolve addresses with the agent's symbolizer",
	 "Resolves hex addresses (arguments, or one a line on standard input) in a\n"
	 "running process, or in the kernel, exactly as incidents do: debug files by\n"
	 "build-id or debuglink, MiniDebugInfo, binaries inside containers, the vDSO\n"
	 "and JIT perf maps. Prints ADDR FUNC+OFFSET MODULE, or for an unresolved\n"
	 "frame the module, file offset and build-id to symbolize it elsewhere.\n"
	 "Needs root for other users' processes.\n\n"
	 "  -p, --pid P         the process the addresses belong to\n"
	 "  -k, --kernel        kernel addresses\n"
	 "  -j, --json          one JSON frame a line, as in incidents\n"
	 "  -s, --stats         print the symbolizer's counters to standard error at the end\n"
	 "  -l, --lines         source file:line and inlined functions from DWARF\n"
	 "  -I, --in-process    parse binaries in this process, not in the sandboxed helper\n"
	 "                      (measuring and debugging only: no isolation from them)\n"
	 "  -c, --config FILE   agent configuration (symbolizer.*)\n",
	 cmd_symbolize},
	{"cleanup", "[-c FILE]",
	 "put back kernel settings an agent that did not exit cleanly changed",
	 "Puts back the kernel settings the agent changes while it runs\n"
	 "(kernel.task_delayacct with watch.delayacct) when the agent that changed\n"
	 "them is gone without doing it itself (a crash, SIGKILL). The unit runs it\n"
	 "after every stop (ExecStopPost); the agent also does it when it starts.\n"
	 "Prints each setting put back.\n\n"
	 "  -c, --config FILE   agent configuration (agent.control_socket's directory\n"
	 "                      holds the records)\n",
	 cmd_cleanup},
	{NULL, NULL, NULL, NULL, NULL},
};

const struct cli_command *cli_find(const char *name)
{
	for (const struct cli_command *c = cli_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

void cli_print_help(const struct cli_command *c, FILE *out)
{
	fprintf(out, "usage: autotrace %s %s\n\n%s.\n\n%s", c->name, c->args, c->summary, c->usage);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "autotrace %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see autotrace %s --help)\n", cmd);
	return EXIT_USAGE;
}

static void print_diag_stderr(const char *msg, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "%s\n", msg);
}

int cli_load_config(const char *path, struct agent_config *cfg)
{
	struct diag diag = {0};
	struct stat st;
	int err = 0;

	config_defaults(cfg);
	if (path || stat(CONFIG_DEFAULT_PATH, &st) == 0)
		err = config_load(path ? path : CONFIG_DEFAULT_PATH, cfg, &diag);
	diag_print(&diag, print_diag_stderr, NULL);
	diag_clear(&diag);
	return err ? EXIT_USAGE : EXIT_OK;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"print-config", no_argument, NULL, 'p'},
					     {"print-config-markdown", no_argument, NULL, 'm'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *config = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'p':
			printf("configuration keys:\n");
			config_print_reference(stdout);
			return EXIT_OK;
		case 'm':
			config_print_reference_markdown(stdout);
			return EXIT_OK;
		case 'h':
			cli_print_help(cli_find("run"), stdout);
			printf("\nconfiguration keys:\n");
			config_print_reference(stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("run", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
	return daemon_run(config);
}

int cmd_rules_check(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"quiet", no_argument, NULL, 'q'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct agent_config cfg;
	const char *config = NULL;
	struct ruleset *rs = NULL;
	struct diag diag = {0};
	struct rules_limits lim;
	bool quiet = false;
	int c, rc, err;

	while ((c = getopt_long(argc, argv, "c:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			cli_print_help(cli_find("rules check"), stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("rules check", "bad option");
		}
	}
	rc = cli_load_config(config, &cfg);
	if (rc)
		return rc;
	lim = rules_limits_from_config(&cfg);
	if (optind < argc) {
		err = ruleset_load_paths((const char *const *)argv + optind,
					 (unsigned)(argc - optind), &lim, &rs, &diag);
	} else {
		const char *dir = cfg.agent.rules_dir;

		err = ruleset_load_paths(&dir, 1, &lim, &rs, &diag);
	}
	diag_print(&diag, print_diag_stderr, NULL);
	if (err) {
		fprintf(stderr, "%u error%s\n", diag.errors, diag.errors == 1 ? "" : "s");
		diag_clear(&diag);
		return EXIT_USAGE;
	}
	if (!quiet) {
		printf("%u rule%s OK\n", rs->n, rs->n == 1 ? "" : "s");
		for (unsigned i = 0; i < rs->n; i++) {
			char cond[256];

			rule_condition_text(&rs->rules[i], cond, sizeof(cond));
			printf("  %-28s %s%s%s\n", rs->rules[i].name, cond,
			       rs->rules[i].enabled ? "" : " (disabled)",
			       rs->rules[i].dry_run ? " (dry run)" : "");
		}
	}
	diag_clear(&diag);
	ruleset_free(&rs);
	return EXIT_OK;
}

static void label_json_cb(const char *k, const char *v, void *ctx)
{
	json_object_set_new(ctx, k, json_string(v));
}

struct label_text {
	char *buf;
	size_t len, off;
};

static void label_text_cb(const char *k, const char *v, void *ctx)
{
	struct label_text *t = ctx;

	char kc[128], vc[512];

	/* cgroup names are the tenants' */
	if (t->off < t->len)
		t->off += (size_t)snprintf(t->buf + t->off, t->len - t->off, "%s%s=\"%s\"",
					   t->off > 1 ? "," : "", str_term(kc, sizeof(kc), k),
					   str_term(vc, sizeof(vc), v));
}

static void print_round(const struct tsdb *db, bool json)
{
	char ts[40];
	json_t *doc = NULL, *arr = NULL;

	format_iso8601(tsdb_round_time(db, 0), ts, sizeof(ts));
	if (json) {
		doc = json_object();
		arr = json_array();
		json_object_set_new(doc, "timestamp", json_string(ts));
	} else {
		printf("# %s\n", ts);
	}
	for (size_t m = 0; m < metric_count(); m++) {
		const struct metric_desc *md = metric_at(m);

		for (struct tsdb_series *s = tsdb_first(db, (unsigned)m); s; s = tsdb_next(s)) {
			double v;

			if (!tsdb_value(db, s, 0, &v))
				continue;
			if (json) {
				json_t *o = json_object(), *labels = json_object();

				labels_foreach(tsdb_series_key(s), label_json_cb, labels);
				json_object_set_new(o, "name", json_string(md->name));
				json_object_set_new(o, "value", json_real(v));
				json_object_set_new(o, "unit", json_string(md->unit));
				json_object_set_new(o, "labels", labels);
				json_array_append_new(arr, o);
			} else {
				char lbuf[LABELS_KEY_MAX + 16] = "";
				struct label_text t = {lbuf, sizeof(lbuf), 0};

				if (tsdb_series_key(s)[0]) {
					t.off = (size_t)snprintf(lbuf, sizeof(lbuf), "{");
					labels_foreach(tsdb_series_key(s), label_text_cb, &t);
					if (t.off < sizeof(lbuf) - 1)
						strcat(lbuf, "}");
				}
				printf("%s%s %.6g %s\n", md->name, lbuf, v, md->unit);
			}
		}
	}
	if (json) {
		json_object_set_new(doc, "metrics", arr);
		json_dumpf_safe(doc, stdout, JSON_COMPACT);
		printf("\n");
		json_decref(doc);
	}
	fflush(stdout);
}

/* The watch layer as GET /metrics shows it (text format; counters start now). */
static void print_exposition(const struct tsdb *db, const struct expo_counters *ec)
{
	struct expo_result r;

	if (expo_render(db, NULL, ec, EXPO_TEXT, 1u << 30, 0, &r))
		return;
	fwrite(r.body, 1, r.len, stdout);
	free(r.body);
	fflush(stdout);
}

static const char *prom_type_name(enum prom_type t)
{
	return t == PROM_COUNTER ? "counter" : t == PROM_INFO ? "info" : "gauge";
}

/* Every name the metrics endpoint can show: the watch layer, then the agent's own. */
static void print_prometheus_catalogue(bool json)
{
	json_t *arr = json ? json_array() : NULL;

	for (size_t i = 0; i < metric_count(); i++) {
		const struct metric_desc *md = metric_at(i);
		const struct metric_prom *p = metric_prom_at(i);
		char scope[64];

		metric_scope_text(md->scopes, scope, sizeof(scope));
		if (json)
			json_array_append_new(
				arr, json_pack("{s:s,s:s,s:s,s:f,s:s,s:s,s:s}", "name", p->name,
					       "type", prom_type_name(p->type), "unit", p->unit,
					       "scale", p->scale, "metric", md->name, "scope",
					       scope, "help", md->help));
		else
			printf("%-48s %-7s %-24s %s\n", p->name, prom_type_name(p->type), md->name,
			       md->help);
	}
	for (size_t i = 0; i < agent_metric_count(); i++) {
		const struct agent_metric *a = agent_metric_at(i);

		if (i && !strcmp(a->name, agent_metric_at(i - 1)->name))
			continue; /* one family */
		if (json)
			json_array_append_new(arr,
					      json_pack("{s:s,s:s,s:s,s:s,s:s,s:s?}", "name",
							a->name, "type", prom_type_name(a->type),
							"unit", a->unit, "status", a->status,
							"help", a->help, "label", a->label));
		else
			printf("%-48s %-7s %-24s %s\n", a->name, prom_type_name(a->type), "(agent)",
			       a->help);
	}
	if (json) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		printf("\n");
		json_decref(arr);
	}
}

static void print_catalogue(bool json)
{
	json_t *arr = json ? json_array() : NULL;

	for (size_t i = 0; i < metric_count(); i++) {
		const struct metric_desc *md = metric_at(i);
		char scope[64];

		metric_scope_text(md->scopes, scope, sizeof(scope));
		if (json)
			json_array_append_new(arr,
					      json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:s}", "name",
							md->name, "unit", md->unit, "scope", scope,
							"source", md->source, "help", md->help,
							"opt_in", md->opt_in, "cost", md->cost));
		else
			printf("%-28s %-6s %-28s %s%s\n", md->name, md->unit, scope, md->help,
			       md->opt_in ? " (opt-in hook mode)" : "");
	}
	if (json) {
		json_dumpf_safe(arr, stdout, JSON_INDENT(2));
		printf("\n");
		json_decref(arr);
	}
}

int cmd_metrics(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},	 {"prometheus", no_argument, NULL, 'P'},
		{"count", required_argument, NULL, 'n'}, {"interval", required_argument, NULL, 'i'},
		{"list", no_argument, NULL, 'l'},	 {"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},	 {NULL, 0, NULL, 0}};
	struct agent_config cfg;
	struct watcher_env env;
	struct watchers *w = NULL;
	struct cgroups *cg = NULL;
	struct tsdb *db = NULL;
	struct expo_counters *ec = NULL;
	const char *config = NULL;
	uint64_t count = 1, interval_ms = 0;
	bool json = false, list = false, prom = false;
	char why[256];
	int c, rc;

	while ((c = getopt_long(argc, argv, "jPn:i:lc:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'P':
			prom = true;
			break;
		case 'n':
			if (value_parse(&(struct value_spec){VALUE_UINT, 1, 1000000}, optarg,
					&count, why, sizeof(why)))
				return cli_usage_error("metrics", "--count: %s", why);
			break;
		case 'i':
			if (value_parse(&(struct value_spec){VALUE_DURATION, 10, 3600000}, optarg,
					&interval_ms, why, sizeof(why)))
				return cli_usage_error("metrics", "--interval: %s", why);
			break;
		case 'l':
			list = true;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			cli_print_help(cli_find("metrics"), stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("metrics", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("metrics", "unexpected argument '%s'", argv[optind]);
	if (list) {
		if (prom)
			print_prometheus_catalogue(json);
		else
			print_catalogue(json);
		return EXIT_OK;
	}
	if (prom && json)
		return cli_usage_error("metrics",
				       "--json and --prometheus are two formats: pick one");
	rc = cli_load_config(config, &cfg);
	if (rc)
		return rc;
	if (!interval_ms)
		interval_ms = cfg.agent.interval_ms;
	log_route_libbpf();
	if (cgroups_new(&cg, "/sys/fs/cgroup") || tsdb_new(&db, metric_count(), 8192, 4) ||
	    (prom && expo_counters_new(&ec, 8192))) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	env = (struct watcher_env){.cfg = &cfg, .procfs = "/proc", .sysfs = "/sys", .cgroups = cg};
	if (watchers_open(&w, &env)) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	/* the priming round gives rates and percentages their first reference */
	watchers_sample(w, db, now_real_ms());
	for (uint64_t i = 0; i < count; i++) {
		struct timespec ts = {(time_t)(interval_ms / 1000),
				      (long)(interval_ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
		watchers_sample(w, db, now_real_ms());
		expo_counters_round(ec, db);
		if (prom)
			print_exposition(db, ec);
		else
			print_round(db, json);
	}
out:
	expo_counters_free(&ec);
	watchers_free(&w);
	tsdb_free(&db);
	cgroups_free(&cg);
	return rc;
}
