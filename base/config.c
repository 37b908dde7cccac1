// SPDX-License-Identifier: GPL-2.0-only
#include "base/config.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/httpd.h"
#include "base/log.h"
#include "base/util.h"
#include "base/value.h"

/* the scalar types are base/value's, parsed and range-checked there */
enum cfg_type {
	CFG_UINT = VALUE_UINT,
	CFG_DURATION = VALUE_DURATION,
	CFG_SIZE = VALUE_SIZE,
	CFG_BOOL = VALUE_BOOL,
	CFG_STRING,
	CFG_PATH,
	CFG_STRLIST,
};

static bool is_value(enum cfg_type t)
{
	return t == CFG_UINT || t == CFG_DURATION || t == CFG_SIZE || t == CFG_BOOL;
}

struct cfg_key {
	const char *section;
	const char *key;
	enum cfg_type type;
	size_t offset;
	size_t size;  /* destination buffer size for strings */
	uint64_t min; /* inclusive, in the unit the type parses to (ms, bytes, count) */
	uint64_t max;
	const char *def;
	const char *help;
	const char *const *choices; /* CFG_STRING restricted to these */
	const char *charset;	    /* CFG_STRING made only of these characters */
	/* CFG_STRING: 0, or -EINVAL with why (a set value only: "" is always allowed) */
	int (*check)(const char *s, char *why, size_t whylen);
};

#define F(field) offsetof(struct agent_config, field), sizeof(((struct agent_config *)0)->field)

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const unwind_modes[] = {"auto", "always", "off", NULL};
/* Elasticsearch index names: lowercase, no separators or wildcards */
static const char index_name_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789-_.";
/* POSIX portable user names */
static const char user_name_chars[] =
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";

#define GiB    (1024ull * 1024 * 1024)
#define MiB    (1024ull * 1024)
#define DAY_MS 86400000ull

static int check_listen(const char *s, char *why, size_t whylen)
{
	struct httpd_addr a;

	return httpd_parse_listen(s, &a, why, whylen);
}

static const struct cfg_key config_table[] = {
	{"agent", "interval", CFG_DURATION, F(agent.interval_ms), 100, 60000, "1s",
	 "watcher sampling period"},
	{"agent", "history", CFG_DURATION, F(agent.history_ms), 10000, 3600000, "5m",
	 "how much metric history is kept in memory (incidents carry what led to them)"},
	{"agent", "rules_dir", CFG_PATH, F(agent.rules_dir), 0, 0, "/etc/autotrace/rules.d",
	 "directory of *.yaml rule files; when it does not exist the built-in default rules run"},
	{"agent", "log_level", CFG_STRING, F(agent.log_level), 0, 0, "info",
	 "error | warn | info | debug", log_levels},
	{"agent", "dry_run", CFG_BOOL, F(agent.dry_run), 0, 0, "false",
	 "record 'would capture' incidents without attaching any capture program"},
	{"agent", "hostname", CFG_STRING, F(agent.hostname), 0, 0, "",
	 "host.name in incidents (empty: the kernel's hostname)"},
	{"agent", "control_socket", CFG_PATH, F(agent.control_socket), 0, 0,
	 "/run/autotrace/control.sock", "root-only control socket used by status and trigger"},
	{"watch", "max_cgroups", CFG_UINT, F(watch.max_cgroups), 0, 4096, "1024",
	 "cgroups watched with their own metrics (containers and pods first); 0: none"},
	{"watch", "cgroup_scan", CFG_DURATION, F(watch.cgroup_scan_ms), 1000, 300000, "5s",
	 "how often the cgroup hierarchies are walked for cgroups that came or went"},
	{"watch", "cgroup_iterator", CFG_BOOL, F(watch.cgroup_iterator), 0, 0, "true",
	 "gather per-cgroup counters and find new cgroups with one BPF cgroup-iterator pass per "
	 "hierarchy per interval (Linux 6.1+); false, or an older kernel: read cgroupfs files"},
	{"watch", "growth_window", CFG_DURATION, F(watch.growth_window_ms), 2000, 3600000, "10s",
	 "window of mem.anon_growth_pct and cgroup.mem.growth_pct (the memory burst signal)"},
	{"watch", "task_iterator", CFG_BOOL, F(watch.task_iterator), 0, 0, "true",
	 "one BPF task-iterator pass per interval: D state and run-queue waits, host and per "
	 "cgroup"},
	{"watch", "task_walk", CFG_BOOL, F(watch.task_walk), 0, 0, "true",
	 "on Linux 6.7+ the task iterator's program walks every task in one run (a fraction of "
	 "the cost per task); false: one program call per task, as on older kernels"},
	{"watch", "delayacct", CFG_BOOL, F(watch.delayacct), 0, 0, "false",
	 "turn on kernel.task_delayacct while running, for direct-reclaim stall time per cgroup"},
	{"watch", "runq_hooks", CFG_BOOL, F(watch.runq_hooks), 0, 0, "false",
	 "opt-in always-on hooks on every wakeup and context switch: sched.runq_p50_us/p99_us"},
	{"watch", "block_hooks", CFG_BOOL, F(watch.block_hooks), 0, 0, "false",
	 "opt-in always-on hooks on every block IO: io.latency_p50_us/p99_us/max_us per device"},
	{"capture", "max_duration", CFG_DURATION, F(capture.max_duration_ms), 1000, 600000, "60s",
	 "longest capture window a rule may ask for"},
	{"capture", "max_concurrent", CFG_UINT, F(capture.max_concurrent), 1, 16, "1",
	 "captures running at the same time"},
	{"capture", "max_seconds_per_hour", CFG_UINT, F(capture.max_seconds_per_hour), 1, 3600,
	 "600",
	 "capture seconds allowed per rolling hour, all rules together: every capture kind's "
	 "window counted to the millisecond, a running one for its whole window"},
	{"capture", "max_stacks", CFG_UINT, F(capture.max_stacks), 256, 262144, "16384",
	 "distinct stacks kept per capture; more are counted as dropped"},
	{"capture", "max_files", CFG_UINT, F(capture.max_files), 256, 262144, "8192",
	 "(process, file) pairs iotrace tracks per capture; more are counted as dropped"},
	{"capture", "top_stacks", CFG_UINT, F(capture.top_stacks), 1, 1000, "20",
	 "stacks listed in incident.json per capture (the folded file keeps all)"},
	{"capture", "history_before", CFG_DURATION, F(capture.history_before_ms), 0, 3600000, "60s",
	 "metric history an incident carries from before its trigger (within agent.history)"},
	{"guard", "enabled", CFG_BOOL, F(guard.enabled), 0, 0, "true",
	 "measure the agent's own cost while capturing and cut captures short past the limits"},
	{"guard", "capture_cpu_pct", CFG_UINT, F(guard.capture_cpu_pct), 1, 100, "5",
	 "kernel time of capture programs, % of all CPUs, before a capture is cut short"},
	{"guard", "agent_cpu_pct", CFG_UINT, F(guard.agent_cpu_pct), 1, 1000, "50",
	 "CPU of the agent process while capturing, % of one CPU, before a capture is cut short"},
	{"guard", "hook_cpu_pct", CFG_UINT, F(guard.hook_cpu_pct), 1, 100, "1",
	 "kernel time of one opt-in hook mode, % of all CPUs, before it is switched off"},
	{"guard", "watch_cpu", CFG_DURATION, F(guard.watch_cpu_ms), 0, 1000, "4ms",
	 "agent CPU the watch layer may use per second (4ms: 0.4% of one core, leaving the rule "
	 "engine and the rest of the agent room under 0.5% on a node with 1,000 cgroups); past it "
	 "the passes over every cgroup or task are sampled every few intervals; 0: no limit"},
	{"guard", "hook_hold", CFG_DURATION, F(guard.hook_hold_ms), 1000, 3600000, "30s",
	 "a hook mode switched off stays off at least this long (doubling when it keeps coming "
	 "back over budget), then comes back once its estimated cost is under half the budget"},
	{"symbolizer", "cache_size", CFG_SIZE, F(symbolizer.cache_size), 8 * MiB, 64 * GiB,
	 "256MiB", "memory cap for cached symbol tables (least recently used evicted)"},
	{"symbolizer", "lines", CFG_BOOL, F(symbolizer.lines), 0, 0, "false",
	 "add source file:line and inlined functions to user frames, from DWARF when the binary "
	 "or its debug file has it"},
	{"symbolizer", "helper_user", CFG_STRING, F(symbolizer.helper_user), 0, 0,
	 "autotrace-helper",
	 "user the sandboxed helper that parses tenants' binaries runs as (never root; nobody "
	 "when this user does not exist)",
	 NULL, user_name_chars},
	{"symbolizer", "helper_timeout", CFG_DURATION, F(symbolizer.helper_timeout_ms), 500, 60000,
	 "5s",
	 "deadline of one request to the helper (one binary, one perf map); past it the helper "
	 "is killed and that binary's frames stay unresolved"},
	{"unwind", "mode", CFG_STRING, F(unwind.mode), 0, 0, "auto",
	 "user stacks of code without frame pointers, from DWARF CFI (profile, offcpu): auto "
	 "(per process, when its frame-pointer stacks come out shorter) | always | off",
	 unwind_modes},
	{"unwind", "stack_size", CFG_SIZE, F(unwind.stack_size), 1024, 65536, "16KiB",
	 "user stack copied per sample for DWARF unwinding; deeper frames are cut "
	 "(unwind_truncated)"},
	{"unwind", "cpu_pct", CFG_UINT, F(unwind.cpu_pct), 1, 100, "10",
	 "CPU the agent may spend unwinding, % of one CPU; past it samples fall back to frame "
	 "pointers (unwind.paused_samples)"},
	{"unwind", "cache_size", CFG_SIZE, F(unwind.cache_size), 4 * MiB, 16 * GiB, "64MiB",
	 "memory cap for the DWARF CFI read from binaries (least recently used dropped)"},
	{"metrics", "listen", CFG_STRING, F(metrics.listen), 0, 0, "",
	 "Prometheus/OpenMetrics endpoint (GET /metrics): HOST:PORT, [IPv6]:PORT, :PORT (every "
	 "address) or a unix socket path; empty: off",
	 NULL, NULL, check_listen},
	{"metrics", "web_config", CFG_PATH, F(metrics.web_config), 0, 0, "",
	 "web configuration file as Prometheus exporters take it: tls_server_config (cert_file, "
	 "key_file, client CA) and basic_auth_users (bcrypt hashes)"},
	{"metrics", "allow_insecure", CFG_BOOL, F(metrics.allow_insecure), 0, 0, "false",
	 "serve addresses beyond loopback without TLS or basic authentication (refused "
	 "otherwise)"},
	{"metrics", "max_clients", CFG_UINT, F(metrics.max_clients), 1, 64, "4",
	 "connections served at once; an idle kept-alive one makes room for a new one"},
	{"metrics", "max_response_size", CFG_SIZE, F(metrics.max_response_size), 64 * 1024, 1 * GiB,
	 "32MiB",
	 "largest exposition; past it whole metric families are left out (counted and logged)"},
	{"metrics", "timeout", CFG_DURATION, F(metrics.timeout_ms), 100, 300000, "10s",
	 "a client must send its request, and read the response, within this (slow clients are "
	 "dropped)"},
	{"storage.local", "dir", CFG_PATH, F(local.dir), 0, 0, "/var/lib/autotrace/incidents",
	 "incident store: DIR/YYYY-MM-DD/ID/incident.json + artifacts"},
	{"storage.local", "max_size", CFG_SIZE, F(local.max_size), 1 * MiB, 1024 * GiB, "1GiB",
	 "total size of the store; oldest incidents removed first"},
	{"storage.local", "max_age", CFG_DURATION, F(local.max_age_ms), 60000, 3650 * DAY_MS, "7d",
	 "incidents older than this are removed"},
	{"storage.local", "max_incident_size", CFG_SIZE, F(local.max_incident_size), 64 * 1024,
	 1 * GiB, "16MiB",
	 "largest single incident (JSON + artifacts); captures are trimmed to fit"},
	{"storage.elasticsearch", "enabled", CFG_BOOL, F(es.enabled), 0, 0, "false",
	 "ship incidents to Elasticsearch"},
	{"storage.elasticsearch", "urls", CFG_STRLIST, F(es.urls), 1, CFG_LIST_MAX,
	 "[\"https://localhost:9200\"]",
	 "Elasticsearch endpoints (http:// or https://, no credentials); on failure the next one "
	 "is tried"},
	{"storage.elasticsearch", "index_prefix", CFG_STRING, F(es.index_prefix), 0, 0,
	 "autotrace-incidents",
	 "daily indices PREFIX-YYYY.MM.DD, data stream PREFIX-default, index template PREFIX", NULL,
	 index_name_chars},
	{"storage.elasticsearch", "data_stream", CFG_BOOL, F(es.data_stream), 0, 0, "false",
	 "write to a data stream instead of daily indices, when the cluster supports it"},
	{"storage.elasticsearch", "manage_template", CFG_BOOL, F(es.manage_template), 0, 0, "true",
	 "install or update the index template at start-up and after reconnects"},
	{"storage.elasticsearch", "ilm_policy", CFG_STRING, F(es.ilm_policy), 0, 0, "",
	 "ILM policy named in the template's index.lifecycle.name (empty: none; retention is "
	 "then yours: docs/elasticsearch.md)"},
	{"storage.elasticsearch", "username", CFG_STRING, F(es.username), 0, 0, "",
	 "basic authentication user (with password_file)"},
	{"storage.elasticsearch", "password_file", CFG_PATH, F(es.password_file), 0, 0, "",
	 "file holding the password (root-owned, not readable by group or others)"},
	{"storage.elasticsearch", "api_key_file", CFG_PATH, F(es.api_key_file), 0, 0, "",
	 "file holding an API key, encoded or id:key (root-owned, not readable by group or "
	 "others)"},
	{"storage.elasticsearch", "ca_file", CFG_PATH, F(es.ca_file), 0, 0, "",
	 "PEM CA bundle that signed the cluster's certificate (empty: the system's)"},
	{"storage.elasticsearch", "client_cert", CFG_PATH, F(es.client_cert), 0, 0, "",
	 "PEM client certificate for TLS client authentication"},
	{"storage.elasticsearch", "client_key", CFG_PATH, F(es.client_key), 0, 0, "",
	 "PEM key of client_cert (root-owned, not readable by group or others)"},
	{"storage.elasticsearch", "tls_verify", CFG_BOOL, F(es.tls_verify), 0, 0, "true",
	 "verify the server certificate and host name (false is logged as a warning)"},
	{"storage.elasticsearch", "compression", CFG_BOOL, F(es.compression), 0, 0, "true",
	 "gzip request bodies"},
	{"storage.elasticsearch", "connect_timeout", CFG_DURATION, F(es.connect_timeout_ms), 100,
	 600000, "5s", "TCP + TLS connection set-up"},
	{"storage.elasticsearch", "timeout", CFG_DURATION, F(es.timeout_ms), 1000, 3600000, "60s",
	 "a whole request, from connecting to the last byte of the answer"},
	{"storage.elasticsearch", "bulk_max_docs", CFG_UINT, F(es.bulk_max_docs), 1, 10000, "100",
	 "incidents per _bulk request"},
	{"storage.elasticsearch", "bulk_max_bytes", CFG_SIZE, F(es.bulk_max_bytes), 64 * 1024,
	 1 * GiB, "8MiB", "uncompressed body of a _bulk request (a larger incident goes alone)"},
	{"storage.elasticsearch", "backoff_initial", CFG_DURATION, F(es.backoff_initial_ms), 100,
	 600000, "1s", "first retry delay; doubles per failure, with jitter"},
	{"storage.elasticsearch", "backoff_max", CFG_DURATION, F(es.backoff_max_ms), 100, 3600000,
	 "2m", "longest retry delay"},
	{"storage.elasticsearch", "spool_dir", CFG_PATH, F(es.spool_dir), 0, 0,
	 "/var/lib/autotrace/spool",
	 "incidents waiting for Elasticsearch (fsync'd; survives restarts); parked/ holds rejected "
	 "ones"},
	{"storage.elasticsearch", "spool_max_size", CFG_SIZE, F(es.spool_max_size), 1 * MiB,
	 1024 * GiB, "512MiB", "spool bound; oldest incidents evicted first (counted and logged)"},
	{"storage.elasticsearch", "spool_max_age", CFG_DURATION, F(es.spool_max_age_ms), 60000,
	 3650 * DAY_MS, "7d", "incidents not shipped within this are evicted (counted and logged)"},
};

static const char *type_name(enum cfg_type t)
{
	if (is_value(t))
		return value_type_name((enum value_type)t);
	switch (t) {
	case CFG_STRING:
		return "string";
	case CFG_PATH:
		return "path";
	case CFG_STRLIST:
		return "list of strings";
	default:
		return "?";
	}
}

/* Parses one scalar for key k into dst. On failure writes a message into why. */
static int parse_scalar(const struct cfg_key *k, const char *s, void *dst, char *why, size_t wl)
{
	if (is_value(k->type)) {
		struct value_spec spec = {(enum value_type)k->type, k->min, k->max};
		uint64_t v;
		int err = value_parse(&spec, s, &v, why, wl);

		if (err)
			return err;
		if (k->type == CFG_BOOL)
			*(bool *)dst = v;
		else
			*(uint64_t *)dst = v;
		return 0;
	}
	switch (k->type) {
	case CFG_STRING:
	case CFG_PATH:
		/* a path whose default is empty is optional: "" means not set */
		if (k->type == CFG_PATH && s[0] != '/' && (s[0] || k->def[0])) {
			snprintf(why, wl, "'%s' is not an absolute path", s);
			return -EINVAL;
		}
		if (k->choices) {
			bool ok = false;

			for (const char *const *c = k->choices; *c; c++)
				ok |= strcmp(*c, s) == 0;
			if (!ok) {
				snprintf(why, wl,
					 "'%s' is not one of the allowed values (see --help)", s);
				return -EINVAL;
			}
		}
		if (k->charset && (!s[0] || s[strspn(s, k->charset)] || s[0] == '-' ||
				   s[0] == '_' || s[0] == '.')) {
			snprintf(why, wl,
				 "'%s' may only hold lowercase letters, digits, '-', '_' "
				 "and '.', and not start with one of the last three",
				 s);
			return -EINVAL;
		}
		if (strlen(s) >= k->size) {
			snprintf(why, wl, "value longer than %zu characters", k->size - 1);
			return -ENAMETOOLONG;
		}
		if (k->check && s[0] && k->check(s, why, wl))
			return -EINVAL;
		strcpy(dst, s);
		return 0;
	default:
		return -EINVAL; /* CFG_STRLIST: handled by the caller */
	}
}

static int parse_value(const struct cfg_key *k, const struct ynode *val, struct agent_config *cfg,
		       const char *file, struct diag *diag)
{
	void *dst = (char *)cfg + k->offset;
	char why[512];

	if (k->type == CFG_STRLIST) {
		struct cfg_strlist *list = dst;

		if (val->type != YNODE_SEQ) {
			diag_at(diag, file, val, "%s.%s: expected a list, got %s", k->section,
				k->key, ynode_type_name(val->type));
			return -EINVAL;
		}
		if (val->n < k->min || val->n > k->max) {
			diag_at(diag, file, val, "%s.%s: needs %llu to %llu entries, got %zu",
				k->section, k->key, (unsigned long long)k->min,
				(unsigned long long)k->max, val->n);
			return -ERANGE;
		}
		list->n = 0;
		for (size_t i = 0; i < val->n; i++) {
			const struct ynode *it = val->items[i];

			if (it->type != YNODE_SCALAR || !*it->scalar) {
				diag_at(diag, file, it, "%s.%s: entries must be non-empty strings",
					k->section, k->key);
				return -EINVAL;
			}
			if (copy_str(list->v[i], CFG_STR_MAX, it->scalar)) {
				diag_at(diag, file, it, "%s.%s: entry longer than %d characters",
					k->section, k->key, CFG_STR_MAX - 1);
				return -ENAMETOOLONG;
			}
			list->n++;
		}
		return 0;
	}
	if (val->type != YNODE_SCALAR) {
		diag_at(diag, file, val, "%s.%s: expected a %s, got %s", k->section, k->key,
			type_name(k->type), ynode_type_name(val->type));
		return -EINVAL;
	}
	if (parse_scalar(k, val->scalar, dst, why, sizeof(why))) {
		diag_at(diag, file, val, "%s.%s: %s", k->section, k->key, why);
		return -EINVAL;
	}
	return 0;
}

static bool section_known(const char *section)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_table); i++) {
		const char *s = config_table[i].section;
		size_t len = strlen(section);

		/* "storage" is known because "storage.local" exists */
		if (strcmp(s, section) == 0 || (strncmp(s, section, len) == 0 && s[len] == '.'))
			return true;
	}
	return false;
}

static const struct cfg_key *key_lookup(const char *section, const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_table); i++) {
		if (strcmp(config_table[i].section, section) == 0 &&
		    strcmp(config_table[i].key, key) == 0)
			return &config_table[i];
	}
	return NULL;
}

static void walk_map(const struct ynode *map, const char *section, struct agent_config *cfg,
		     const char *file, struct diag *diag)
{
	for (size_t i = 0; i < map->n; i++) {
		const struct ynode *key = map->keys[i], *val = map->items[i];
		char path[128];
		const struct cfg_key *k;

		if (section[0])
			snprintf(path, sizeof(path), "%s.%s", section, key->scalar);
		else
			snprintf(path, sizeof(path), "%s", key->scalar);

		k = section[0] ? key_lookup(section, key->scalar) : NULL;
		if (k) {
			parse_value(k, val, cfg, file, diag);
			continue;
		}
		if (section_known(path)) {
			if (val->type != YNODE_MAP) {
				diag_at(diag, file, val, "%s: expected a mapping, got %s", path,
					ynode_type_name(val->type));
				continue;
			}
			walk_map(val, path, cfg, file, diag);
			continue;
		}
		diag_at(diag, file, key, "unknown key '%s'", path);
	}
}

static struct agent_config defaults;
static pthread_once_t defaults_once = PTHREAD_ONCE_INIT;

/* The table's defaults, parsed once: every load starts from them. */
static void defaults_build(void)
{
	struct agent_config *cfg = &defaults;
	struct diag diag = {0};

	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->source, "(built-in defaults)");
	for (size_t i = 0; i < ARRAY_SIZE(config_table); i++) {
		const struct cfg_key *k = &config_table[i];
		char why[256];

		if (k->type == CFG_STRLIST) {
			struct ydoc *doc = NULL;

			if (ydoc_load_string("defaults", k->def, strlen(k->def), &doc, &diag) ==
				    0 &&
			    doc->root)
				parse_value(k, doc->root, cfg, "defaults", &diag);
			ydoc_free(&doc);
			continue;
		}
		if (parse_scalar(k, k->def, (char *)cfg + k->offset, why, sizeof(why)))
			diag_add(&diag, "defaults", 0, 0, "%s.%s: %s", k->section, k->key, why);
	}
	/* a broken default table is a programming error caught by the unit tests */
	if (diag.errors)
		log_error("built-in config defaults are invalid: %s", diag.msgs[0]);
	diag_clear(&diag);
}

void config_defaults(struct agent_config *cfg)
{
	pthread_once(&defaults_once, defaults_build);
	memcpy(cfg, &defaults, sizeof(*cfg));
}

static int config_from_doc(const struct ydoc *doc, struct agent_config *cfg, struct diag *diag)
{
	struct agent_config next;
	unsigned before = diag->errors;

	config_defaults(&next);
	snprintf(next.source, sizeof(next.source), "%s", doc->file);
	if (doc->root) {
		if (doc->root->type != YNODE_MAP) {
			diag_at(diag, doc->file, doc->root, "the configuration must be a mapping");
			return -EINVAL;
		}
		walk_map(doc->root, "", &next, doc->file, diag);
	}
	if (diag->errors != before)
		return -EINVAL;
	*cfg = next;
	return 0;
}

int config_load_string(const char *name, const char *text, struct agent_config *cfg,
		       struct diag *diag)
{
	struct ydoc *doc = NULL;
	int err;

	err = ydoc_load_string(name, text, strlen(text), &doc, diag);
	if (err)
		return err;
	err = config_from_doc(doc, cfg, diag);
	ydoc_free(&doc);
	return err;
}

int config_load(const char *path, struct agent_config *cfg, struct diag *diag)
{
	struct ydoc *doc = NULL;
	char why[256];
	int err;

	err = check_trusted_file(path, why, sizeof(why));
	if (err) {
		diag_add(diag, path, 0, 0, "refusing configuration file: %s", why);
		return err;
	}
	err = ydoc_load_file(path, &doc, diag);
	if (err)
		return err;
	err = config_from_doc(doc, cfg, diag);
	ydoc_free(&doc);
	return err;
}

static void range_text(const struct cfg_key *k, char *buf, size_t len)
{
	char lo[32], hi[32];

	buf[0] = '\0';
	if (is_value(k->type) && k->type != CFG_BOOL) {
		value_format((enum value_type)k->type, k->min, lo, sizeof(lo));
		value_format((enum value_type)k->type, k->max, hi, sizeof(hi));
		snprintf(buf, len, "%s..%s", lo, hi);
	} else if (k->type == CFG_STRLIST) {
		snprintf(buf, len, "%llu..%llu entries", (unsigned long long)k->min,
			 (unsigned long long)k->max);
	}
}

void config_print_reference(FILE *out)
{
	const char *section = "";

	for (size_t i = 0; i < ARRAY_SIZE(config_table); i++) {
		const struct cfg_key *k = &config_table[i];
		char range[64];

		if (strcmp(section, k->section)) {
			section = k->section;
			fprintf(out, "  %s:\n", section);
		}
		range_text(k, range, sizeof(range));
		fprintf(out, "    %-22s %-9s default %s%s%s\n", k->key, type_name(k->type),
			k->def[0] ? k->def : "\"\"", range[0] ? ", range " : "", range);
		fprintf(out, "    %-22s %s\n", "", k->help);
	}
}

void config_print_reference_markdown(FILE *out)
{
	fprintf(out, "| key | type | default | range | meaning |\n|---|---|---|---|---|\n");
	for (size_t i = 0; i < ARRAY_SIZE(config_table); i++) {
		const struct cfg_key *k = &config_table[i];
		char range[64];

		range_text(k, range, sizeof(range));
		fprintf(out, "| `%s.%s` | %s | `%s` | %s | ", k->section, k->key,
			type_name(k->type), k->def[0] ? k->def : "\"\"", range);
		/* a '|' in the help text would end the table cell */
		for (const char *h = k->help; *h; h++)
			fprintf(out, *h == '|' ? "\\|" : "%c", *h);
		fprintf(out, " |\n");
	}
}

void config_foreach_key(void (*fn)(const char *dotted, void *ctx), void *ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_table); i++) {
		char dotted[128];

		snprintf(dotted, sizeof(dotted), "%s.%s", config_table[i].section,
			 config_table[i].key);
		fn(dotted, ctx);
	}
}
