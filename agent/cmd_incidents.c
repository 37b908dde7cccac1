// SPDX-License-Identifier: GPL-2.0-only
/* `autotrace incidents list | show`: the local store, read without the daemon. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cli.h"
#include "base/sanitize.h"
#include "base/config.h"
#include "base/util.h"
#include "storage/flamegraph.h"
#include "storage/store.h"

#define SPARK_WIDTH    60 /* points per sparkline: one per interval, the latest */
#define HISTORY_SERIES 8  /* series drawn; the tripped one comes first */
#define TOP_STACKS     5
#define STACK_FRAMES   24
#define TABLE_ROWS     10
#define TABLE_COLUMNS  8
#define CELL_MAX       48

int cli_store_dir(const char *config, const char *dir, char *out, size_t len)
{
	struct agent_config cfg;
	int rc;

	if (dir) {
		snprintf(out, len, "%s", dir);
		return EXIT_OK;
	}
	rc = cli_load_config(config, &cfg);
	if (rc)
		return rc;
	snprintf(out, len, "%s", cfg.local.dir);
	return EXIT_OK;
}

json_t *cli_incident_load(const char *incident_dir, char *err, size_t errlen)
{
	char path[4200];
	json_error_t jerr;
	json_t *doc;

	snprintf(path, sizeof(path), "%s/incident.json", incident_dir);
	doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc)
		snprintf(err, errlen, "%s: %s", path, jerr.text);
	else if (!json_is_object(doc)) {
		snprintf(err, errlen, "%s: not a JSON object", path);
		json_decref(doc);
		doc = NULL;
	}
	return doc;
}

const char *cli_jstr(json_t *doc, const char *path)
{
	/* dotted path lookup: "rule.name" */
	char buf[128], *save = NULL, *tok;
	json_t *cur = doc;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save))
		cur = json_object_get(cur, tok);
	return json_is_string(cur) ? json_string_value(cur) : "";
}

#define jstr cli_jstr

void cli_human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%lluB", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.*f%s", v < 10 ? 1 : 0, v, units[u]);
}

int cmd_incidents_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},      {"quiet", no_argument, NULL, 'q'},
		{"dir", required_argument, NULL, 'd'}, {"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0}};
	const char *config = NULL, *dirarg = NULL;
	struct store_entry *list = NULL;
	char dir[4096];
	size_t n = 0;
	bool json = false, quiet = false;
	json_t *arr;
	int c, rc, err;

	while ((c = getopt_long(argc, argv, "jqd:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'd':
			dirarg = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			cli_print_help(cli_find("incidents list"), stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("incidents list", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("incidents list", "unexpected argument '%s'", argv[optind]);
	rc = cli_store_dir(config, dirarg, dir, sizeof(dir));
	if (rc)
		return rc;
	err = store_list(dir, &list, &n);
	if (err) {
		fprintf(stderr, "autotrace: reading %s: %s\n", dir, strerror(-err));
		return EXIT_RUNTIME;
	}
	if (quiet) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", list[i].id);
		free(list);
		return EXIT_OK;
	}
	arr = json_array();
	if (!json && n)
		printf("%-36s  %-24s  %-28s  %-10s  %s\n", "ID", "TIME", "RULE", "STATUS",
		       "CAPTURES");
	for (size_t i = 0; i < n; i++) {
		char why[512], kinds[128] = "";
		json_t *doc = cli_incident_load(list[i].path, why, sizeof(why)), *cap;
		size_t off = 0, k;

		if (!doc) {
			fprintf(stderr, "autotrace: skipping %s\n", why);
			continue;
		}
		if (!json)
			json_clean_for_terminal(doc); /* tenants' strings, made inert */
		json_array_foreach(json_object_get(doc, "captures"), k, cap)
		{
			if (off < sizeof(kinds))
				off += (size_t)snprintf(kinds + off, sizeof(kinds) - off, "%s%s",
							off ? "," : "", jstr(cap, "kind"));
		}
		if (json) {
			json_array_append_new(
				arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "id", list[i].id,
					       "timestamp", jstr(doc, "@timestamp"), "rule",
					       jstr(doc, "rule.name"), "status",
					       jstr(doc, "incident.status"), "captures", kinds,
					       "path", list[i].path));
		} else {
			printf("%-36s  %-24s  %-28s  %-10s  %s\n", list[i].id,
			       jstr(doc, "@timestamp"), jstr(doc, "rule.name"),
			       jstr(doc, "incident.status"), kinds);
		}
		json_decref(doc);
	}
	if (json) {
		json_dumpf_safe(arr, stdout, JSON_INDENT(2));
		printf("\n");
	} else if (!n) {
		printf("no incidents in %s\n", dir);
	}
	json_decref(arr);
	free(list);
	return EXIT_OK;
}

/* ---- show ---- */

static void sparkline(json_t *pts, double *lo, double *hi, double *last)
{
	static const char *const bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	size_t j, n = json_array_size(pts), start = n > SPARK_WIDTH ? n - SPARK_WIDTH : 0;
	json_t *p;

	*lo = INFINITY;
	*hi = -INFINITY;
	*last = NAN;
	json_array_foreach(pts, j, p)
	{
		double v = json_number_value(json_array_get(p, 1));

		if (j < start || !isfinite(v))
			continue;
		*lo = fmin(*lo, v);
		*hi = fmax(*hi, v);
		*last = v;
	}
	json_array_foreach(pts, j, p)
	{
		double v = json_number_value(json_array_get(p, 1));
		int b = *hi > *lo ? (int)((v - *lo) / (*hi - *lo) * 7.0 + 0.5) : 0;

		if (j >= start)
			printf("%s", isfinite(v) ? bars[b < 0 ? 0 : b > 7 ? 7 : b] : " ");
	}
	for (size_t pad = n - start; pad < SPARK_WIDTH; pad++)
		printf(" ");
}

static void show_history(json_t *doc)
{
	json_t *series = json_object_get(json_object_get(doc, "history"), "series"), *s;
	size_t i;

	if (!json_array_size(series)) {
		printf("\nhistory: none recorded\n");
		return;
	}
	printf("\nhistory since %s (one mark per interval, newest right):\n",
	       jstr(doc, "history.from"));
	json_array_foreach(series, i, s)
	{
		double lo, hi, last;

		if (i >= HISTORY_SERIES) {
			printf("  ... %zu more series (--json has them all)\n",
			       json_array_size(series) - i);
			break;
		}
		if (!json_array_size(json_object_get(s, "points")))
			continue;
		printf("  %-20s ", jstr(s, "metric"));
		sparkline(json_object_get(s, "points"), &lo, &hi, &last);
		printf("  %.4g..%.4g, last %.4g%s\n", lo, hi, last, jstr(s, "unit"));
	}
}

static void show_frames(json_t *frames, const char *indent)
{
	json_t *f;
	size_t j;

	json_array_foreach(frames, j, f)
	{
		if (j >= STACK_FRAMES) {
			printf("%s... %zu more frames\n", indent, json_array_size(frames) - j);
			break;
		}
		if (json_is_string(f)) {
			printf("%s%s\n", indent, json_string_value(f));
		} else if (jstr(f, "func")[0]) {
			printf("%s%s+0x%llx  %s\n", indent, jstr(f, "func"),
			       (unsigned long long)json_integer_value(json_object_get(f, "offset")),
			       json_is_true(json_object_get(f, "kernel")) ? "[k]"
									  : jstr(f, "module"));
		} else {
			printf("%s%s  %s%s%s\n", indent, jstr(f, "addr"), jstr(f, "module"),
			       jstr(f, "file_offset")[0] ? "+" : "", jstr(f, "file_offset"));
		}
	}
}

static json_t *frames_of(json_t *row)
{
	static const char *const names[] = {"frames", "stack", "kernel_stack", "user_stack"};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (json_is_array(json_object_get(row, names[i])))
			return json_object_get(row, names[i]);
	return NULL;
}

static void show_stacks(json_t *top)
{
	json_t *st;
	size_t i;

	printf("  top stacks:\n");
	json_array_foreach(top, i, st)
	{
		json_t *samples = json_object_get(st, "samples");

		if (i >= TOP_STACKS) {
			printf("    ... %zu more (--json, or the folded artifact)\n",
			       json_array_size(top) - i);
			break;
		}
		printf("    #%zu  %s", i + 1, jstr(st, "comm")[0] ? jstr(st, "comm") : "?");
		if (json_object_get(st, "pid"))
			printf(" pid %lld",
			       (long long)json_integer_value(json_object_get(st, "pid")));
		if (json_object_get(st, "tid"))
			printf(" tid %lld",
			       (long long)json_integer_value(json_object_get(st, "tid")));
		if (json_object_get(st, "pct"))
			printf("  %.1f%%", json_number_value(json_object_get(st, "pct")));
		if (json_is_integer(samples))
			printf(" (%lld samples)", (long long)json_integer_value(samples));
		if (jstr(st, "container_id")[0])
			printf("  container %.12s", jstr(st, "container_id"));
		else if (jstr(st, "cgroup")[0] && strcmp(jstr(st, "cgroup"), "/"))
			printf("  cgroup %s", jstr(st, "cgroup"));
		printf("\n");
		show_frames(frames_of(st), "          ");
	}
}

static bool suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && strcmp(s + a - b, suf) == 0;
}

/* One cell, in words for a terminal: sizes humanised, long text cut. */
static void cell_text(const char *key, json_t *v, char *buf, size_t len)
{
	if (json_is_integer(v) && suffix(key, "bytes")) {
		cli_human_size((uint64_t)MAX(json_integer_value(v), 0), buf, len);
	} else if (json_is_integer(v)) {
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		snprintf(buf, len, "%.4g", json_real_value(v));
	} else if (json_is_string(v)) {
		snprintf(buf, len, "%s", json_string_value(v));
	} else if (json_is_boolean(v)) {
		snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
	} else {
		snprintf(buf, len, "-");
	}
	if (strlen(buf) > CELL_MAX) {
		/* keep the end of paths, where the file name is */
		size_t l = strlen(buf);

		memmove(buf + 3, buf + l - (CELL_MAX - 3), CELL_MAX - 3 + 1);
		memcpy(buf, "...", 3);
	}
}

static bool scalar(json_t *v)
{
	return json_is_string(v) || json_is_number(v) || json_is_boolean(v);
}

/* Any array of objects a capture reports (files, processes, tasks...): its
 * first rows as a table of their scalar fields; a row's stack under it. */
static void show_table(const char *name, json_t *rows)
{
	const char *cols[TABLE_COLUMNS];
	int width[TABLE_COLUMNS];
	unsigned ncols = 0;
	json_t *row, *v;
	const char *k;
	size_t i;

	json_array_foreach(rows, i, row)
	{
		if (i >= TABLE_ROWS)
			break;
		json_object_foreach(row, k, v)
		{
			bool have = false;

			if (!scalar(v))
				continue;
			for (unsigned c = 0; c < ncols; c++)
				have |= strcmp(cols[c], k) == 0;
			if (!have && ncols < TABLE_COLUMNS)
				cols[ncols++] = k;
		}
	}
	for (unsigned c = 0; c < ncols; c++) {
		width[c] = (int)strlen(cols[c]);
		json_array_foreach(rows, i, row)
		{
			char cell[CELL_MAX + 8];

			if (i >= TABLE_ROWS)
				break;
			cell_text(cols[c], json_object_get(row, cols[c]), cell, sizeof(cell));
			width[c] = MAX(width[c], (int)strlen(cell));
		}
	}
	printf("  %s (%zu):\n    ", name, json_array_size(rows));
	for (unsigned c = 0; c < ncols; c++)
		printf("%-*s  ", width[c], cols[c]);
	printf("\n");
	json_array_foreach(rows, i, row)
	{
		json_t *frames;

		if (i >= TABLE_ROWS) {
			printf("    ... %zu more rows (--json has them)\n",
			       json_array_size(rows) - i);
			break;
		}
		printf("    ");
		for (unsigned c = 0; c < ncols; c++) {
			char cell[CELL_MAX + 8];
			json_t *cv = json_object_get(row, cols[c]);

			cell_text(cols[c], cv, cell, sizeof(cell));
			/* numbers right-aligned, text left */
			printf(json_is_number(cv) ? "%*s  " : "%-*s  ", width[c], cell);
		}
		printf("\n");
		frames = frames_of(row);
		if (frames && i < 3)
			show_frames(frames, "          ");
	}
}

static void show_capture(json_t *cap)
{
	static const char *const common[] = {"kind",	    "started", "duration_ms", "status",
					     "lost_events", "error",   "artifacts",   "top_stacks"};
	char extra[512] = "";
	size_t off = 0, i;
	const char *k;
	json_t *v;

	printf("\ncapture %s: %s, %lld ms from %s, %lld events lost\n", jstr(cap, "kind"),
	       jstr(cap, "status"),
	       (long long)json_integer_value(json_object_get(cap, "duration_ms")),
	       jstr(cap, "started"),
	       (long long)json_integer_value(json_object_get(cap, "lost_events")));
	if (jstr(cap, "error")[0])
		printf("  error: %s\n", jstr(cap, "error"));
	/* the kind's own counters on one line */
	json_object_foreach(cap, k, v)
	{
		bool skip = false;
		char cell[CELL_MAX + 8];

		for (i = 0; i < ARRAY_SIZE(common); i++)
			skip |= strcmp(common[i], k) == 0;
		if (skip || !scalar(v) || off >= sizeof(extra) - 1)
			continue;
		cell_text(k, v, cell, sizeof(cell));
		off += (size_t)snprintf(extra + off, sizeof(extra) - off, "%s%s %s",
					off ? ", " : "", k, cell);
	}
	if (off)
		printf("  %s\n", extra);
	if (json_array_size(json_object_get(cap, "artifacts"))) {
		printf("  artifacts:");
		json_array_foreach(json_object_get(cap, "artifacts"), i, v)
			printf(" %s", json_string_value(v) ? json_string_value(v) : "?");
		printf("\n");
	}
	if (json_array_size(json_object_get(cap, "top_stacks")))
		show_stacks(json_object_get(cap, "top_stacks"));
	json_object_foreach(cap, k, v)
	{
		if (strcmp(k, "top_stacks") && strcmp(k, "artifacts") && json_is_array(v) &&
		    json_array_size(v) && json_is_object(json_array_get(v, 0)))
			show_table(k, v);
	}
}

/* The diagnosis paragraph, wrapped for a terminal. */
static void show_summary(json_t *doc)
{
	const char *text = json_string_value(json_object_get(doc, "summary"));
	size_t col = 0;

	if (!text)
		return;
	printf("\n");
	while (*text) {
		size_t word = strcspn(text, " ");

		if (col && col + 1 + word > 96) {
			printf("\n");
			col = 0;
		}
		printf("%s%.*s", col ? " " : "  ", (int)word, text);
		col += word + (col ? 1 : 2);
		text += word;
		text += strspn(text, " ");
	}
	printf("\n");
}

/* culprits[]: who consumed what, by program, largest first. */
static void show_culprits(json_t *doc)
{
	json_t *list = json_object_get(doc, "culprits"), *c, *st;
	size_t i, j;

	if (!json_array_size(list))
		return;
	printf("\nculprits (by %s, from %s):\n", jstr(json_array_get(list, 0), "measure"),
	       jstr(json_array_get(list, 0), "capture"));
	json_array_foreach(list, i, c)
	{
		long long n = json_integer_value(json_object_get(c, "processes"));

		printf("  #%zu  %5.1f%%  %s%s%s%s  %lld process%s", i + 1,
		       json_number_value(json_object_get(c, "pct")), jstr(c, "program"),
		       jstr(c, "exe")[0] ? " (" : "", jstr(c, "exe"), jstr(c, "exe")[0] ? ")" : "",
		       n, n == 1 ? "" : "es");
		if (jstr(c, "container_id")[0])
			printf(", container %.12s", jstr(c, "container_id"));
		printf("\n");
		json_array_foreach(json_object_get(c, "stacks"), j, st)
		{
			const char *folded = jstr(st, "stack");
			size_t len = strlen(folded);

			/* the leaf end says what it was doing: keep that end */
			printf("        %5.1f%%  %s%s\n",
			       json_number_value(json_object_get(st, "pct")), len > 90 ? "..." : "",
			       len > 90 ? folded + len - 87 : folded);
		}
	}
}

static void show_trigger(json_t *doc, const char *id)
{
	json_t *t = json_object_get(doc, "trigger"), *tgt = json_object_get(t, "target");
	bool manual = json_is_true(json_object_get(t, "manual"));

	printf("incident %s  (%s)\n", id, jstr(doc, "incident.status"));
	printf("  time       %s\n  host       %s (kernel %s), autotrace %s\n",
	       jstr(doc, "@timestamp"), jstr(doc, "host.name"), jstr(doc, "host.os.kernel"),
	       jstr(doc, "agent.version"));
	printf("  rule       %s%s%s%s\n", jstr(doc, "rule.name"),
	       jstr(doc, "rule.description")[0] ? ": " : "", jstr(doc, "rule.description"),
	       manual ? "  (triggered by hand)" : "");
	if (jstr(doc, "rule.condition")[0])
		printf("  condition  %s\n", jstr(doc, "rule.condition"));
	if (json_object_get(t, "value") && !manual)
		printf("  tripped    %s = %.4g (threshold %.4g) on %s\n", jstr(t, "metric"),
		       json_number_value(json_object_get(t, "value")),
		       json_number_value(json_object_get(t, "threshold")), jstr(t, "scope"));
	else if (json_object_get(t, "value"))
		printf("  value      %s = %.4g when triggered\n", jstr(t, "metric"),
		       json_number_value(json_object_get(t, "value")));
	if (tgt) {
		printf("  captured   ");
		if (json_object_get(tgt, "pid"))
			printf("process %lld\n",
			       (long long)json_integer_value(json_object_get(tgt, "pid")));
		else if (jstr(tgt, "cgroup")[0])
			printf("cgroup %s\n", jstr(tgt, "cgroup"));
		else
			printf("the whole host\n");
	}
	if (jstr(doc, "container.id")[0])
		printf("  container  %s\n", jstr(doc, "container.id"));
	if (jstr(doc, "orchestrator.resource.id")[0])
		printf("  pod        %s\n", jstr(doc, "orchestrator.resource.id"));
	if (!strcmp(jstr(doc, "incident.status"), "truncated"))
		printf("  truncated  to %s: some data was left out\n",
		       jstr(doc, "incident.truncated_reason"));
}

/* The command line after the options of a command on one incident. */
struct incident_arg {
	const char *command;
	int argc;
	char **argv;
	const char *config, *dir;
};

/* The one incident ID operand, checked, and the directory the store keeps it in. */
static int incident_arg(const struct incident_arg *a, const char **id, char *path, size_t len)
{
	char dir[4096];
	int rc;

	if (optind + 1 != a->argc)
		return cli_usage_error(a->command, "expected exactly one incident ID");
	*id = a->argv[optind];
	if (!incident_id_valid(*id))
		return cli_usage_error(a->command, "'%s' is not an incident id", *id);
	rc = cli_store_dir(a->config, a->dir, dir, sizeof(dir));
	if (rc)
		return rc;
	if (store_find(dir, *id, path, len)) {
		fprintf(stderr, "autotrace: incident %s not found in %s\n", *id, dir);
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

int cmd_incidents_show(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"dir", required_argument, NULL, 'd'},
					     {"config", required_argument, NULL, 'c'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *config = NULL, *dirarg = NULL, *id = NULL;
	char path[4200], why[4400];
	bool json = false;
	json_t *doc, *cap;
	size_t i;
	int c, rc;

	while ((c = getopt_long(argc, argv, "jd:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'd':
			dirarg = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			cli_print_help(cli_find("incidents show"), stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("incidents show", "bad option");
		}
	}
	rc = incident_arg(&(struct incident_arg){"incidents show", argc, argv, config, dirarg}, &id,
			  path, sizeof(path));
	if (rc)
		return rc;
	doc = cli_incident_load(path, why, sizeof(why));
	if (!doc) {
		fprintf(stderr, "autotrace: %s\n", why);
		return EXIT_RUNTIME;
	}
	if (json) {
		json_dumpf_safe(doc, stdout, JSON_INDENT(2));
		printf("\n");
		json_decref(doc);
		return EXIT_OK;
	}
	json_clean_for_terminal(doc); /* comm, function names, paths: tenants' bytes */
	show_trigger(doc, id);
	show_summary(doc);
	show_culprits(doc);
	show_history(doc);
	json_array_foreach(json_object_get(doc, "captures"), i, cap) show_capture(cap);
	printf("\nfiles in %s\n", path);
	json_decref(doc);
	return EXIT_OK;
}

/* The folded artifact to draw: KIND.folded / KIND-*.folded, else profile, else the first. */
static int pick_folded(const char *path, const char *kind, char *name, size_t len)
{
	struct dirent *de;
	char best[256] = "";
	DIR *d = opendir(path);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (n < 8 || strcmp(de->d_name + n - 7, ".folded"))
			continue;
		if (kind) {
			size_t k = strlen(kind);

			if (strncmp(de->d_name, kind, k) ||
			    (de->d_name[k] != '.' && de->d_name[k] != '-'))
				continue;
		}
		/* deterministic: profile first, then by name */
		if (!best[0] || (!strcmp(de->d_name, "profile.folded")) ||
		    (strcmp(best, "profile.folded") && strcmp(de->d_name, best) < 0))
			snprintf(best, sizeof(best), "%s", de->d_name);
	}
	closedir(d);
	if (!best[0])
		return -ENOENT;
	snprintf(name, len, "%s", best);
	return 0;
}

int cmd_incidents_flamegraph(int argc, char **argv)
{
	static const struct option opts[] = {
		{"capture", required_argument, NULL, 'k'}, {"output", required_argument, NULL, 'o'},
		{"dir", required_argument, NULL, 'd'},	   {"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},	   {NULL, 0, NULL, 0}};
	const char *config = NULL, *dirarg = NULL, *kind = NULL, *output = NULL, *id = NULL;
	char path[4200], file[4500], name[256], title[512];
	struct flamegraph_opts fo = {0};
	char *folded = NULL, *svg = NULL;
	size_t flen = 0, slen = 0;
	int c, rc, err;

	while ((c = getopt_long(argc, argv, "k:o:d:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			kind = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'd':
			dirarg = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			cli_print_help(cli_find("incidents flamegraph"), stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("incidents flamegraph", "bad option");
		}
	}
	rc = incident_arg(
		&(struct incident_arg){"incidents flamegraph", argc, argv, config, dirarg}, &id,
		path, sizeof(path));
	if (rc)
		return rc;
	if (pick_folded(path, kind, name, sizeof(name))) {
		fprintf(stderr, "autotrace: incident %s has no %s%sstacks to draw\n", id,
			kind ? kind : "", kind ? " " : "");
		return EXIT_RUNTIME;
	}
	snprintf(file, sizeof(file), "%s/%s", path, name);
	err = read_file(file, 1u << 30, &folded, &flen);
	if (err) {
		fprintf(stderr, "autotrace: %s: %s\n", file, strerror(-err));
		return EXIT_RUNTIME;
	}
	snprintf(title, sizeof(title), "%.*s, incident %s", (int)(strlen(name) - 7), name, id);
	fo.title = title;
	fo.unit = flamegraph_unit_of(name);
	err = flamegraph_render(folded, flen, &fo, &svg, &slen);
	free(folded);
	if (err) {
		fprintf(stderr, "autotrace: rendering %s: %s\n", file, strerror(-err));
		return EXIT_RUNTIME;
	}
	if (output) {
		err = write_file_atomic(output, svg, slen, 0600);
		if (err)
			fprintf(stderr, "autotrace: writing %s: %s\n", output, strerror(-err));
	} else if (fwrite(svg, 1, slen, stdout) != slen) {
		err = -EIO;
	}
	free(svg);
	return err ? EXIT_RUNTIME : EXIT_OK;
}
