/* SPDX-License-Identifier: GPL-2.0-only */
/* The YAML rule language: parsing and validation into plain rule structs. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/yamltree.h"
#include "probes/capture.h"

#define RULE_MAX_CAPTURES 8
#define RULE_MAX_LABELS   8
#define RULES_MAX         256

enum rule_scope { RULE_SCOPE_HOST, RULE_SCOPE_CGROUP };
enum rule_cmp { RULE_ABOVE, RULE_BELOW };

struct rule_capture {
	const struct capture_ops *ops;
	struct capture_params params;
};

struct rule {
	char name[128];
	char description[256];
	char file[PATH_MAX];
	unsigned line, col;
	int metric; /* catalogue index */
	enum rule_scope scope;
	enum rule_cmp cmp;
	double threshold;
	bool has_clear;
	double clear; /* hysteresis: must cross back past this before re-arming */
	uint64_t for_ms;
	uint64_t cooldown_ms;
	unsigned max_per_hour; /* 0: unlimited */
	struct rule_capture captures[RULE_MAX_CAPTURES];
	unsigned ncaptures;
	bool enabled;
	bool dry_run;
	unsigned nlabels;
	char label_keys[RULE_MAX_LABELS][64];
	char label_values[RULE_MAX_LABELS][128];
};

struct ruleset {
	struct rule *rules;
	unsigned n;
	char source[PATH_MAX]; /* dir or "(built-in)" */
};

struct rules_limits {
	uint64_t max_capture_ms; /* capture.max_duration */
};

/* Parses rule files and directories (*.yaml, *.yml, sorted). Errors go to diag
 * as FILE:LINE:COL; any error fails the whole set. */
int ruleset_load_paths(const char *const *paths, unsigned npaths, const struct rules_limits *lim,
		       struct ruleset **out, struct diag *diag);
/* The default rules compiled into the binary (config/rules.d). */
int ruleset_load_builtin(const struct rules_limits *lim, struct ruleset **out, struct diag *diag);
int ruleset_load_string(const char *name, const char *text, const struct rules_limits *lim,
			struct ruleset **out, struct diag *diag);
void ruleset_free(struct ruleset **rs);

/* "cpu.sys_pct above 30 for 3s" */
void rule_condition_text(const struct rule *r, char *buf, size_t len);

/* Embedded copies of the config/rules.d YAML files (generated at build time). */
struct builtin_file {
	const char *name;
	const char *text;
};
extern const struct builtin_file builtin_rule_files[];
