/* SPDX-License-Identifier: GPL-2.0-only */
/* Subcommands of the autotrace binary. Each returns the exit code:
 * 0 ok, 1 runtime failure, 2 usage or validation error. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

struct cli_command {
	const char *name; /* "rules check" */
	const char *args; /* "[PATH...]" */
	const char *summary;
	const char *usage; /* full --help text after the synopsis */
	int (*fn)(int argc, char **argv);
};

extern const struct cli_command cli_commands[];
/* What autotrace is, for --help and the manual page. */
extern const char cli_description[];

/* One "  -c, --config FILE   help" line of a command's usage text. */
struct cli_option_line {
	const char *spec, *help, *long_name, *arg;
	size_t spec_len, help_len, long_len, arg_len;
	char short_name; /* 0: none */
};

/* Parses one usage line; -1 when it is not an option line. */
int cli_parse_option_line(const char *line, size_t len, struct cli_option_line *o);
/* autotrace(8) in roff, and the bash completion script, from the table. */
void cli_print_man(FILE *out);
void cli_print_bash_completion(FILE *out);

int cmd_run(int argc, char **argv);
int cmd_rules_check(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_incidents_list(int argc, char **argv);
int cmd_incidents_show(int argc, char **argv);
int cmd_incidents_flamegraph(int argc, char **argv);

int cmd_status(int argc, char **argv);
int cmd_trigger(int argc, char **argv);
int cmd_probes(int argc, char **argv);
int cmd_symbolize(int argc, char **argv);
int cmd_cleanup(int argc, char **argv);

/* Prints "autotrace CMD: message" and a --help hint; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct agent_config;
/* Loads the agent config for a client command: path (-c FILE), else the default
 * file when present, else built-in defaults. Returns an exit code (0 ok). */
int cli_load_config(const char *path, struct agent_config *cfg);

/* The incident store of a client command: dir (--dir), else storage.local.dir. */
int cli_store_dir(const char *config, const char *dir, char *out, size_t len);
/* incident_dir/incident.json, or NULL with err saying why. */
json_t *cli_incident_load(const char *incident_dir, char *err, size_t errlen);
/* A string at a dotted path ("rule.name") of doc, "" when absent. */
const char *cli_jstr(json_t *doc, const char *path);

/* 1.5MiB, 312KiB, 17B: for people, not for parsing. */
void cli_human_size(uint64_t bytes, char *buf, size_t len);

/* Prints "usage: autotrace NAME ARGS" and the command's help. */
void cli_print_help(const struct cli_command *c, FILE *out);
const struct cli_command *cli_find(const char *name);
