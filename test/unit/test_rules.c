// SPDX-License-Identifier: GPL-2.0-only
/* The rule language: what parses, and every validation error with its position. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/config.h"
#include "probes/catalogue.h"
#include "triggers/rules.h"

static const struct rules_limits lim = {.max_capture_ms = 60000, .max_window_ms = 300000};

static struct ruleset *parse_ok(const char *yaml)
{
	struct ruleset *rs = NULL;
	struct diag diag = {0};

	if (ruleset_load_string("r.yaml", yaml, &lim, &rs, &diag)) {
		print_error("%s\n", diag.n ? diag.msgs[0] : "?");
		fail();
	}
	diag_clear(&diag);
	return rs;
}

static void expect_error(const char *yaml, const char *want)
{
	struct ruleset *rs = NULL;
	struct diag diag = {0};
	bool found = false;

	assert_int_not_equal(ruleset_load_string("r.yaml", yaml, &lim, &rs, &diag), 0);
	assert_null(rs);
	for (unsigned i = 0; i < diag.n; i++)
		found |= strstr(diag.msgs[i], want) != NULL;
	if (!found) {
		print_error("rules:\n%s\nwanted '%s'; got:\n", yaml, want);
		for (unsigned i = 0; i < diag.n; i++)
			print_error("  %s\n", diag.msgs[i]);
		fail();
	}
	diag_clear(&diag);
}

#define HEAD "rules:\n  - name: r\n"
#define CAP  "    capture:\n      - { kind: profile, duration: 5s }\n"

static void test_full_rule(void **s)
{
	struct ruleset *rs = parse_ok(
		"rules:\n"
		"  - name: sys-burst\n"
		"    description: kernel time jumped\n"
		"    all:\n"
		"      - { metric: cpu.sys_pct, above: 30 }\n"
		"      - { metric: cpu.sys_pct, increase: { by: 15, over: 10s } }\n"
		"    for: 2s\n"
		"    clear_below: 20\n"
		"    cooldown: 5m\n"
		"    rule_cooldown: 1m\n"
		"    max_per_hour: 4\n"
		"    labels: { team: sre, severity: page }\n"
		"    capture:\n"
		"      - { kind: profile, duration: 10s, frequency: 199, target: process }\n"
		"  - name: idle\n"
		"    metric: cpu.idle_pct\n"
		"    below: 10\n"
		"    decrease: { by_pct: 50, over: 30s }\n"
		"    clear_above: 20\n"
		"    enabled: false\n"
		"    dry_run: true\n");
	const struct rule *r = ruleset_find(rs, "sys-burst");
	char text[512];

	assert_int_equal(rs->n, 2);
	assert_non_null(r);
	assert_int_equal(r->nconds, 2);
	assert_int_equal(r->combine, RULE_ALL);
	assert_int_equal(r->conds[1].cmp, RULE_INCREASE);
	assert_int_equal(r->conds[1].window_ms, 10000);
	assert_int_equal(r->metric, M_CPU_SYS);
	assert_true(r->has_clear && r->clear == 20);
	assert_int_equal(r->for_ms, 2000);
	assert_int_equal(r->cooldown_ms, 300000);
	assert_int_equal(r->rule_cooldown_ms, 60000);
	assert_int_equal(r->max_per_hour, 4);
	assert_int_equal(r->nlabels, 2);
	assert_string_equal(r->label_values[1], "page");
	assert_int_equal(r->captures[0].params.duration_ms, 10000);
	assert_int_equal(r->captures[0].target, RTARGET_PROCESS);
	rule_condition_text(r, text, sizeof(text));
	assert_string_equal(text, "cpu.sys_pct above 30 and increase 15 over 10s for 2s");

	r = ruleset_find(rs, "idle");
	assert_false(r->enabled);
	assert_true(r->dry_run);
	assert_int_equal(r->nconds, 2);
	assert_true(r->conds[1].pct);
	rule_condition_text(r, text, sizeof(text));
	assert_string_equal(text, "cpu.idle_pct below 10 and decrease 50% over 30s");
	assert_int_equal(rule_capture_target(r, &r->captures[0]), RTARGET_HOST);
	ruleset_free(&rs);
}

static void test_structure_errors(void **s)
{
	expect_error("- 1\n", "r.yaml:1:1: a rule file is a mapping with a 'rules' list");
	expect_error("rulez: []\n", "r.yaml:1:1: unknown top-level key 'rulez'");
	expect_error("other: 1\n", "missing 'rules' list");
	expect_error("rules: {}\n", "r.yaml:1:8: rules: expected a list");
	expect_error("rules:\n  - just a string\n", "r.yaml:2:5: each rule must be a mapping");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    colour: red\n" CAP,
		     "r.yaml:5:5: unknown rule key 'colour'");
	expect_error("rules:\n  - metric: cpu.sys_pct\n    above: 1\n" CAP, "rule without 'name'");
	expect_error("rules:\n  - name: \"\"\n    metric: cpu.sys_pct\n    above: 1\n" CAP,
		     "name: must not be empty");
	expect_error("rules:\n  - name: [x]\n    metric: cpu.sys_pct\n    above: 1\n" CAP,
		     "r.yaml:2:11: name: expected a scalar, got a list");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n" CAP
			  "  - name: r\n    metric: cpu.sys_pct\n    above: 2\n" CAP,
		     "r.yaml:7:5: duplicate rule name 'r' (first defined at r.yaml:2:5)");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n",
		     "rule 'r' has no 'capture' list");
}

static void test_condition_errors(void **s)
{
	expect_error(HEAD "    above: 1\n" CAP, "rule 'r' needs a condition");
	expect_error(HEAD "    metric: cpu.nope\n    above: 1\n" CAP,
		     "r.yaml:3:13: metric: unknown metric 'cpu.nope'");
	expect_error(HEAD "    metric: cpu.sys_pct\n" CAP,
		     "condition needs one of 'above', 'below', 'increase' or 'decrease'");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: lots\n" CAP,
		     "r.yaml:4:12: above: 'lots' is not a number");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    below: 2\n" CAP,
		     "'above' and 'below' together can never both hold");
	expect_error(HEAD "    metric: cpu.sys_pct\n    increase: 5\n" CAP,
		     "increase: expected a mapping {by: N | by_pct: P, over: D}");
	expect_error(HEAD "    metric: cpu.sys_pct\n    increase: { over: 5s }\n" CAP,
		     "increase: needs exactly one of 'by' or 'by_pct'");
	expect_error(HEAD
		     "    metric: cpu.sys_pct\n    increase: { by: 1, by_pct: 2, over: 5s }\n" CAP,
		     "needs exactly one of 'by' or 'by_pct'");
	expect_error(HEAD "    metric: cpu.sys_pct\n    increase: { by: 5 }\n" CAP,
		     "increase: missing 'over'");
	expect_error(HEAD "    metric: cpu.sys_pct\n    increase: { by: -5, over: 5s }\n" CAP,
		     "increase: must be greater than 0");
	expect_error(HEAD "    metric: cpu.sys_pct\n    increase: { by: 5, over: 6m }\n" CAP,
		     "over: '6m' is out of range [0s, 5m]");
	expect_error(HEAD
		     "    metric: cpu.sys_pct\n    decrease: { by: 5, over: 1s, within: 2 }\n" CAP,
		     "unknown decrease key 'within'");
	expect_error(HEAD "    all: []\n" CAP, "all: expected a non-empty list of conditions");
	expect_error(HEAD "    all:\n      - cpu.sys_pct\n" CAP, "all: each entry is a mapping");
	expect_error(HEAD "    any:\n      - { metric: cpu.sys_pct, above: 1, below: 0 }\n" CAP,
		     "each all:/any: entry takes exactly one of above, below, increase, decrease");
	expect_error(HEAD "    any:\n      - { metric: cpu.sys_pct, above: 1, for: 3s }\n" CAP,
		     "unknown condition key 'for'");
	expect_error(HEAD "    all:\n      - { metric: cpu.sys_pct, above: 1 }\n"
			  "    any:\n      - { metric: cpu.sys_pct, above: 1 }\n" CAP,
		     "a rule takes 'all' or 'any', not both");
	expect_error(HEAD "    metric: cpu.sys_pct\n    all:\n      - { metric: cpu.sys_pct, "
			  "above: 1 }\n" CAP,
		     "'metric' goes inside the all: list, not beside it");
}

static void test_scope_errors(void **s)
{
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    scope: node\n" CAP,
		     "r.yaml:5:12: scope: 'node' is not host, cgroup, device or cpu");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    scope: cgroup\n" CAP,
		     "metric cpu.sys_pct has no cgroup scope");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    top: 3\n" CAP,
		     "top: only with scope cgroup, device or cpu");
	expect_error(HEAD
		     "    metric: cpu.sys_pct\n    above: 1\n    match: { cgroup: \"/x*\" }\n" CAP,
		     "match: only with scope: cgroup or scope: device");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    top: many\n" CAP,
		     "top: 'many' is not a non-negative integer");
}

static void test_timing_errors(void **s)
{
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    for: soon\n" CAP,
		     "r.yaml:5:10: for: 'soon' is not a duration");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    for: 2h\n" CAP,
		     "for: '2h' is out of range [0s, 1h]");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    cooldown: 8d\n" CAP,
		     "cooldown: '8d' is out of range [0s, 7d]");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    rule_cooldown: x\n" CAP,
		     "rule_cooldown: 'x' is not a duration");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    max_per_hour: 5000\n" CAP,
		     "max_per_hour: '5000' is out of range [0, 3600]");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 30\n    clear_below: 40\n" CAP,
		     "clear_below (40) must not exceed above (30)");
	expect_error(HEAD "    metric: cpu.sys_pct\n    below: 30\n    clear_below: 10\n" CAP,
		     "clear_below only goes with a primary 'above' condition");
	expect_error(HEAD "    metric: cpu.sys_pct\n    below: 30\n    clear_above: 10\n" CAP,
		     "clear_above (10) must not be under below (30)");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 30\n    clear_above: 40\n" CAP,
		     "clear_above only goes with a primary 'below' condition");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    enabled: sometimes\n" CAP,
		     "enabled: 'sometimes' is not a boolean");
	expect_error(HEAD "    metric: cpu.sys_pct\n    above: 1\n    labels: [a]\n" CAP,
		     "labels: expected a mapping of strings");
}

static void test_capture_errors(void **s)
{
	const char *cond = HEAD "    metric: cpu.sys_pct\n    above: 1\n";
	char yaml[1024];

#define CAPTURE_CASE(capture_yaml, want)                                                           \
	do {                                                                                       \
		snprintf(yaml, sizeof(yaml), "%s    capture:\n%s", cond, capture_yaml);            \
		expect_error(yaml, want);                                                          \
	} while (0)

	CAPTURE_CASE("      - { kind: xray }\n",
		     "r.yaml:6:17: capture: unknown kind 'xray' (known: profile");
	CAPTURE_CASE("      - { duration: 5s }\n", "capture: missing 'kind'");
	CAPTURE_CASE("      - profile\n", "capture: each entry must be a mapping with 'kind'");
	CAPTURE_CASE("      - { kind: profile, duration: 2m }\n",
		     "capture.duration: '2m' is out of range [100ms, 1m] (capture.max_duration)");
	CAPTURE_CASE("      - { kind: profile, duration: 10ms }\n", "is out of range [100ms, 1m]");
	CAPTURE_CASE("      - { kind: profile, frequency: 5000 }\n",
		     "capture profile.frequency: '5000' is out of range [1, 1000]");
	CAPTURE_CASE("      - { kind: profile, frequncy: 99 }\n",
		     "capture profile: unknown parameter 'frequncy'");
	CAPTURE_CASE("      - { kind: profile, target: node }\n",
		     "capture.target: 'node' is not host, cgroup or process");
	CAPTURE_CASE("      - { kind: profile, target: cgroup }\n",
		     "capture profile: target cgroup needs scope: cgroup");
	CAPTURE_CASE("      - { kind: profile }\n      - { kind: profile }\n",
		     "capture: kind 'profile' listed twice");
	CAPTURE_CASE("      kind: profile\n", "capture: expected a list");
}

static void test_files_and_dirs(void **s)
{
	const char *dir = test_tmpdir(0);
	char sub[256], path[300];
	const char *paths[1];
	struct ruleset *rs = NULL;
	struct diag diag = {0};

	snprintf(sub, sizeof(sub), "%s/rules.d", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	test_write_file(sub, "a.yaml", HEAD "    metric: cpu.sys_pct\n    above: 1\n" CAP, 0600);
	test_write_file(sub, "b.yml",
			"rules:\n  - name: s\n    metric: cpu.idle_pct\n"
			"    below: 1\n    dry_run: true\n",
			0600);
	test_write_file(sub, "notes.txt", "not a rule file", 0600);
	test_write_file(sub, ".hidden.yaml", "garbage: [", 0600);
	paths[0] = sub;
	assert_int_equal(ruleset_load_paths(paths, 1, &lim, &rs, &diag), 0);
	assert_int_equal(rs->n, 2);
	ruleset_free(&rs);

	/* the same name in two files */
	test_write_file(sub, "c.yaml", HEAD "    metric: cpu.sys_pct\n    above: 5\n" CAP, 0600);
	assert_int_not_equal(ruleset_load_paths(paths, 1, &lim, &rs, &diag), 0);
	snprintf(path, sizeof(path),
		 "%s/c.yaml:2:5: duplicate rule name 'r' (first defined at %s/a.yaml:2:5)", sub,
		 sub);
	assert_non_null(strstr(diag.msgs[diag.n - 1], path));
	diag_clear(&diag);

	/* a group- or world-writable file or directory is refused */
	snprintf(path, sizeof(path), "%s/c.yaml", sub);
	unlink(path);
	snprintf(path, sizeof(path), "%s/a.yaml", sub);
	chmod(path, 0666);
	assert_int_not_equal(ruleset_load_paths(paths, 1, &lim, &rs, &diag), 0);
	assert_non_null(strstr(diag.msgs[0], "refusing rule file: writable by group or others"));
	diag_clear(&diag);
	chmod(path, 0600);
	chmod(sub, 0777);
	assert_int_not_equal(ruleset_load_paths(paths, 1, &lim, &rs, &diag), 0);
	assert_non_null(strstr(diag.msgs[0], "refusing rules directory"));
	diag_clear(&diag);
	chmod(sub, 0700);

	paths[0] = "/nonexistent/rules.d";
	assert_int_not_equal(ruleset_load_paths(paths, 1, &lim, &rs, &diag), 0);
	diag_clear(&diag);
	test_rmtree(dir);
}

/* The rule array grows while parsing, up to RULES_MAX and not one more. */
static void test_many_rules(void **s)
{
	size_t len = 64 + (RULES_MAX + 1) * 128, off;
	char *yaml = malloc(len);
	struct ruleset *rs;

	assert_non_null(yaml);
	off = (size_t)snprintf(yaml, len, "rules:\n");
	for (unsigned i = 0; i < RULES_MAX; i++)
		off += (size_t)snprintf(yaml + off, len - off,
					"  - { name: r%u, metric: cpu.sys_pct, above: %u, "
					"dry_run: true }\n",
					i, i);
	rs = parse_ok(yaml);
	assert_int_equal(rs->n, RULES_MAX);
	for (unsigned i = 0; i < RULES_MAX; i++) {
		char name[16];

		snprintf(name, sizeof(name), "r%u", i);
		assert_string_equal(rs->rules[i].name, name);
		assert_true(rs->rules[i].threshold == i);
	}
	ruleset_free(&rs);
	snprintf(yaml + off, len - off, "  - { name: one-more, metric: cpu.sys_pct, above: 1 }\n");
	expect_error(yaml, "more than 256 rules");
	free(yaml);
}

static void test_builtin_rules_are_valid(void **s)
{
	struct ruleset *rs = NULL;
	struct diag diag = {0};
	struct agent_config cfg;
	struct rules_limits dlim;
	static const char *const expected[] = {"host-cpu-sys-high",   "host-cpu-idle-collapse",
					       "container-cpu-spike", "dstate-pileup",
					       "runq-latency",	      "io-saturation",
					       "memory-burst",	      "memory-pressure"};

	/* the defaults must load under the default config's capture limits */
	config_defaults(&cfg);
	dlim = rules_limits_from_config(&cfg);
	if (ruleset_load_builtin(&dlim, &rs, &diag)) {
		print_error("%s\n", diag.n ? diag.msgs[0] : "?");
		fail();
	}
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		bool found = false;

		for (unsigned j = 0; j < rs->n; j++)
			found |= strcmp(rs->rules[j].name, expected[i]) == 0;
		if (!found)
			print_error("built-in rule %s missing\n", expected[i]);
		assert_true(found);
	}
	ruleset_free(&rs);
	diag_clear(&diag);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_rule),
		cmocka_unit_test(test_structure_errors),
		cmocka_unit_test(test_condition_errors),
		cmocka_unit_test(test_scope_errors),
		cmocka_unit_test(test_timing_errors),
		cmocka_unit_test(test_capture_errors),
		cmocka_unit_test(test_files_and_dirs),
		cmocka_unit_test(test_many_rules),
		cmocka_unit_test(test_builtin_rules_are_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
