/* SPDX-License-Identifier: GPL-2.0-only */
/* The YAML rule language: parsing and validation into plain rule structs
 * (reference: docs/rules.md). */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/yamltree.h"
#include "probes/capture.h"

#define RULE_MAX_CAPTURES 8
#define RULE_MAX_LABELS	  8
#define RULE_MAX_CONDS	  8
#define RULES_MAX	  256

/* What a rule is evaluated on: the host series, or each cgroup / block device /
 * CPU series of its primary metric (label cgroup, device, cpu). */
enum rule_scope { RULE_SCOPE_HOST, RULE_SCOPE_CGROUP, RULE_SCOPE_DEVICE, RULE_SCOPE_CPU };

/* What one condition compares. */
enum rule_cmp {
	RULE_ABOVE,    /* value > threshold */
	RULE_BELOW,    /* value < threshold */
	RULE_INCREASE, /* value rose by threshold (points, or % with pct) over window */
	RULE_DECREASE, /* value fell by threshold (points, or % with pct) over window */
};

enum rule_combine { RULE_ALL, RULE_ANY };

/* Where a capture looks: the whole host, the offending cgroup, or the top process. */
enum rule_target { RTARGET_DEFAULT, RTARGET_HOST, RTARGET_CGROUP, RTARGET_PROCESS };

struct rule_condition {
	int metric; /* catalogue index */
	enum rule_cmp cmp;
	double threshold;
	bool pct;	    /* RULE_INCREASE/DECREASE: threshold is a percentage */
	uint64_t window_ms; /* RULE_INCREASE/DECREASE: compared with this long ago */
};

struct rule_capture {
	const struct capture_ops *ops;
	struct capture_params params;
	enum rule_target target;
};

struct rule {
	char name[128];
	char description[256];
	char file[PATH_MAX];
	unsigned line, col;

	/* conds[0] is the primary condition: its metric names the scopes the rule is
	 * evaluated on, ranks them for `top`, carries hysteresis, and is what the
	 * incident reports as trigger.metric. */
	struct rule_condition conds[RULE_MAX_CONDS];
	unsigned nconds;
	enum rule_combine combine;
	/* copies of conds[0], for readers that only need the primary condition */
	int metric;
	enum rule_cmp cmp;
	double threshold;

	enum rule_scope scope;
	char match_cgroup[256]; /* globs; empty matches everything */
	char match_container[128];
	char match_pod[128];
	char match_device[64];
	unsigned top; /* non-host scopes: fire only for the worst N per round (0: all) */

	bool has_clear;
	double clear; /* hysteresis on the primary condition */
	uint64_t for_ms;
	uint64_t cooldown_ms;	   /* per scope, after its capture */
	uint64_t rule_cooldown_ms; /* whole rule, after any scope fired */
	unsigned max_per_hour;	   /* whole rule; 0: unlimited */

	struct rule_capture captures[RULE_MAX_CAPTURES];
	unsigned ncaptures;
	bool enabled;
	bool dry_run;
	unsigned nlabels;
	char label_keys[RULE_MAX_LABELS][64];
	char label_values[RULE_MAX_LABELS][128];
};

struct ruleset {
	struct rule *rules; /* n of them (cap allocated, at most RULES_MAX) */
	unsigned n, cap;
	char source[PATH_MAX]; /* dir or "(built-in)" */
};

struct rules_limits {
	uint64_t max_capture_ms; /* capture.max_duration */
	uint64_t max_window_ms;	 /* agent.history: the longest look-back a condition may use */
};

struct agent_config;
/* The limits an agent configuration puts on rules. */
struct rules_limits rules_limits_from_config(const struct agent_config *cfg);

/* Parses rule files and directories (*.yaml, *.yml, sorted). Errors go to diag
 * as FILE:LINE:COL; any error fails the whole set. */
int ruleset_load_paths(const char *const *paths, unsigned npaths, const struct rules_limits *lim,
		       struct ruleset **out, struct diag *diag);
/* The default rules compiled into the binary (config/rules.d). */
int ruleset_load_builtin(const struct rules_limits *lim, struct ruleset **out, struct diag *diag);
int ruleset_load_string(const char *name, const char *text, const struct rules_limits *lim,
			struct ruleset **out, struct diag *diag);
void ruleset_free(struct ruleset **rs);
const struct rule *ruleset_find(const struct ruleset *rs, const char *name);

/* "cpu.sys_pct above 30 and increase 10 over 10s for 3s" */
void rule_condition_text(const struct rule *r, char *buf, size_t len);
/* The target a capture of a rule actually uses (RTARGET_DEFAULT resolved). */
enum rule_target rule_capture_target(const struct rule *r, const struct rule_capture *c);
const char *rule_target_name(enum rule_target t);
const char *rule_scope_name(enum rule_scope s);

/* Embedded copies of the config/rules.d YAML files (generated at build time). */
struct builtin_file {
	const char *name;
	const char *text;
};
extern const struct builtin_file builtin_rule_files[];
