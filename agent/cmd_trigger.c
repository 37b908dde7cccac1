// SPDX-License-Identifier: GPL-2.0-only
/* `autotrace trigger`: capture now, through the running agent, into a normal incident. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent/cli.h"
#include "base/sanitize.h"
#include "agent/ctlclient.h"
#include "base/util.h"
#include "base/value.h"

#define CALL_TIMEOUT_MS 10000
#define POLL_MS		250
/* after the window: reading out, symbolizing and writing the incident */
#define WRITE_GRACE_MS 120000

static int add_kinds(json_t *list, const char *arg)
{
	char buf[512], *save = NULL, *tok;

	if (copy_str(buf, sizeof(buf), arg))
		return -ENAMETOOLONG;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (*tok)
			json_array_append_new(list, json_string(tok));
	return json_array_size(list) ? 0 : -EINVAL;
}

static void print_started(json_t *r)
{
	json_t *t = json_object_get(r, "target"), *c;
	char dur[32], tgt[600];
	size_t i;

	format_duration((uint64_t)json_integer_value(json_object_get(r, "duration_ms")), dur,
			sizeof(dur));
	if (json_object_get(t, "pid"))
		snprintf(tgt, sizeof(tgt), "process %lld",
			 (long long)json_integer_value(json_object_get(t, "pid")));
	else if (json_object_get(t, "cgroup"))
		snprintf(tgt, sizeof(tgt), "cgroup %s",
			 json_string_value(json_object_get(t, "cgroup")));
	else
		snprintf(tgt, sizeof(tgt), "the whole host");
	printf("incident %s: capturing", json_string_value(json_object_get(r, "incident_id")));
	json_array_foreach(json_object_get(r, "captures"), i, c)
		printf("%s %s", i ? "," : "", json_string_value(json_object_get(c, "kind")));
	printf(" on %s for %s (rule %s)%s\n", tgt, dur,
	       json_string_value(json_object_get(r, "rule")),
	       json_is_true(json_object_get(r, "dry_run")) ? ", DRY RUN: nothing attached" : "");
	fflush(stdout);
}

/* Polls the agent until the incident is written; returns an exit code. */
static int wait_written(const char *path, json_t *started, bool json)
{
	const char *id = json_string_value(json_object_get(started, "incident_id"));
	uint64_t deadline = now_mono_ns() / 1000000 +
			    (uint64_t)json_integer_value(json_object_get(started, "duration_ms")) +
			    WRITE_GRACE_MS;
	struct control_error err;
	json_t *args = json_pack("{s:s}", "id", id), *st = NULL;
	int rc = EXIT_RUNTIME;

	while (now_mono_ns() / 1000000 < deadline) {
		struct timespec ts = {0, POLL_MS * 1000000L};
		const char *state;
		int ret = ctl_client_call(path, "incident", args, CALL_TIMEOUT_MS, &st, &err);

		if (ret) {
			rc = ctl_client_report("trigger", ret, &err);
			goto out;
		}
		if (!json)
			json_clean_for_terminal(st);
		state = json_string_value(json_object_get(st, "state"));
		if (state && strcmp(state, "capturing")) {
			if (json) {
				json_object_set(started, "state", json_object_get(st, "state"));
				json_object_set(started, "path", json_object_get(st, "path"));
				json_object_set(started, "error", json_object_get(st, "error"));
				json_object_del(started,
						json_object_get(st, "path") ? "error" : "path");
				json_dumpf_safe(started, stdout, JSON_INDENT(2));
				printf("\n");
			} else if (!strcmp(state, "written")) {
				printf("incident %s written to %s\n(autotrace incidents show %s)\n",
				       id, json_string_value(json_object_get(st, "path")), id);
			}
			if (strcmp(state, "written")) {
				fprintf(stderr, "autotrace trigger: incident %s %s: %s\n", id,
					state,
					json_string_value(json_object_get(st, "error")) ?: "?");
				rc = EXIT_RUNTIME;
			} else {
				rc = EXIT_OK;
			}
			goto out;
		}
		json_decref(st);
		st = NULL;
		nanosleep(&ts, NULL);
	}
	fprintf(stderr,
		"autotrace trigger: incident %s not written after the window and %ds; "
		"see the agent's log\n",
		id, WRITE_GRACE_MS / 1000);
out:
	json_decref(st);
	json_decref(args);
	return rc;
}

int cmd_trigger(int argc, char **argv)
{
	static const struct option opts[] = {{"rule", required_argument, NULL, 'r'},
					     {"capture", required_argument, NULL, 'k'},
					     {"duration", required_argument, NULL, 'd'},
					     {"pid", required_argument, NULL, 'p'},
					     {"cgroup", required_argument, NULL, 'g'},
					     {"no-wait", no_argument, NULL, 'W'},
					     {"json", no_argument, NULL, 'j'},
					     {"socket", required_argument, NULL, 's'},
					     {"config", required_argument, NULL, 'c'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *config = NULL, *socket_arg = NULL, *rule = NULL, *cgroup = NULL;
	json_t *args = json_object(), *kinds = json_array(), *r = NULL;
	uint64_t duration = 0, pid = 0;
	struct control_error err;
	bool json = false, wait = true;
	char path[4096], why[256];
	int c, rc;

	while ((c = getopt_long(argc, argv, "r:k:d:p:g:Wjs:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			rule = optarg;
			break;
		case 'k':
			if (add_kinds(kinds, optarg)) {
				rc = cli_usage_error("trigger",
						     "--capture: '%s' is not a list of "
						     "capture kinds",
						     optarg);
				goto out;
			}
			break;
		case 'd':
			if (value_parse(&(struct value_spec){VALUE_DURATION, 100, 3600000}, optarg,
					&duration, why, sizeof(why))) {
				rc = cli_usage_error("trigger", "--duration: %s", why);
				goto out;
			}
			break;
		case 'p':
			if (parse_u64(optarg, &pid) || pid == 0 || pid > 4194304) {
				rc = cli_usage_error("trigger", "--pid: '%s' is not a process id",
						     optarg);
				goto out;
			}
			break;
		case 'g':
			cgroup = optarg;
			break;
		case 'W':
			wait = false;
			break;
		case 'j':
			json = true;
			break;
		case 's':
			socket_arg = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			cli_print_help(cli_find("trigger"), stdout);
			rc = EXIT_OK;
			goto out;
		default:
			rc = cli_usage_error("trigger", "bad option");
			goto out;
		}
	}
	if (optind < argc) {
		rc = cli_usage_error("trigger", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (!rule == !json_array_size(kinds)) {
		rc = cli_usage_error("trigger", "give exactly one of --rule and --capture");
		goto out;
	}
	if (pid && cgroup) {
		rc = cli_usage_error("trigger", "give at most one of --pid and --cgroup");
		goto out;
	}
	if (rule)
		json_object_set_new(args, "rule", json_string(rule));
	else
		json_object_set(args, "captures", kinds);
	if (duration)
		json_object_set_new(args, "duration_ms", json_integer((json_int_t)duration));
	if (pid)
		json_object_set_new(args, "pid", json_integer((json_int_t)pid));
	if (cgroup)
		json_object_set_new(args, "cgroup", json_string(cgroup));

	rc = ctl_client_socket_path(socket_arg, config, path, sizeof(path));
	if (rc)
		goto out;
	rc = ctl_client_call(path, "trigger", args, CALL_TIMEOUT_MS, &r, &err);
	if (rc) {
		rc = ctl_client_report("trigger", rc, &err);
		goto out;
	}
	if (!json)
		print_started(json_clean_for_terminal(r));
	if (wait) {
		rc = wait_written(path, r, json);
	} else {
		if (json) {
			json_dumpf_safe(r, stdout, JSON_INDENT(2));
			printf("\n");
		}
		rc = EXIT_OK;
	}
out:
	json_decref(r);
	json_decref(kinds);
	json_decref(args);
	return rc;
}
