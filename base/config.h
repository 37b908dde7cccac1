/* SPDX-License-Identifier: GPL-2.0-only */
/* Agent configuration: one declarative table parses YAML, validates ranges,
 * supplies defaults and prints the reference. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/yamltree.h"

#define CFG_LIST_MAX 8
#define CFG_STR_MAX  256

struct cfg_strlist {
	unsigned n;
	char v[CFG_LIST_MAX][CFG_STR_MAX];
};

/* Plain data, no pointers: a reload builds a new one and swaps it in whole. */
struct agent_config {
	char source[PATH_MAX]; /* file it came from, or "(built-in defaults)" */
	struct {
		uint64_t interval_ms;
		uint64_t history_ms;
		char rules_dir[PATH_MAX];
		char log_level[16];
		bool dry_run;
		char hostname[CFG_STR_MAX];
		char control_socket[PATH_MAX];
	} agent;
	struct {
		uint64_t max_cgroups;
		uint64_t cgroup_scan_ms;
		bool cgroup_iterator;
		uint64_t growth_window_ms;
		bool task_iterator;
		bool task_walk;
		bool delayacct;
		bool runq_hooks;
		bool block_hooks;
	} watch;
	struct {
		uint64_t max_duration_ms;
		uint64_t max_concurrent;
		uint64_t max_seconds_per_hour;
		uint64_t max_stacks;
		uint64_t max_files;
		uint64_t top_stacks;
		uint64_t history_before_ms;
	} capture;
	struct {
		bool enabled;
		uint64_t capture_cpu_pct;
		uint64_t agent_cpu_pct;
		uint64_t hook_cpu_pct;
		uint64_t hook_hold_ms;
		uint64_t watch_cpu_ms;
	} guard;
	struct {
		uint64_t cache_size;
		bool lines;
		char helper_user[64];
		uint64_t helper_timeout_ms;
	} symbolizer;
	struct {
		char mode[16]; /* auto | always | off */
		uint64_t stack_size;
		uint64_t cpu_pct;
		uint64_t cache_size;
	} unwind;
	struct {
		char dir[PATH_MAX];
		uint64_t max_size;
		uint64_t max_age_ms;
		uint64_t max_incident_size;
	} local;
	struct {
		char listen[PATH_MAX];
		char web_config[PATH_MAX];
		bool allow_insecure;
		uint64_t max_clients;
		uint64_t max_response_size;
		uint64_t timeout_ms;
	} metrics;
	struct {
		bool enabled;
		struct cfg_strlist urls;
		char index_prefix[128];
		bool data_stream;
		bool manage_template;
		char ilm_policy[128];
		char username[CFG_STR_MAX];
		char password_file[PATH_MAX];
		char api_key_file[PATH_MAX];
		char ca_file[PATH_MAX];
		char client_cert[PATH_MAX];
		char client_key[PATH_MAX];
		bool tls_verify;
		bool compression;
		uint64_t connect_timeout_ms;
		uint64_t timeout_ms;
		uint64_t bulk_max_docs;
		uint64_t bulk_max_bytes;
		uint64_t backoff_initial_ms;
		uint64_t backoff_max_ms;
		char spool_dir[PATH_MAX];
		uint64_t spool_max_size;
		uint64_t spool_max_age_ms;
	} es;
};

#define CONFIG_DEFAULT_PATH "/etc/autotrace/autotrace.yaml"

/* Built-in defaults (what runs with no config file). */
void config_defaults(struct agent_config *cfg);
/* Parses path over the defaults. Errors go to diag as FILE:LINE:COL; on error
 * cfg is left untouched. */
int config_load(const char *path, struct agent_config *cfg, struct diag *diag);
int config_load_string(const char *name, const char *text, struct agent_config *cfg,
		       struct diag *diag);
/* Calls fn with "section.key" of every key in the table. */
void config_foreach_key(void (*fn)(const char *dotted, void *ctx), void *ctx);
/* The reference: every key, type, range, default and help line. */
void config_print_reference(FILE *out);
void config_print_reference_markdown(FILE *out);
