// SPDX-License-Identifier: GPL-2.0-only
/* autotrace symbolize: the agent's symbolizer on addresses given by hand or by
 * a script (and by the symbolizer benchmark): "what is 0x7f... in pid 1234?" */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cli.h"
#include "base/config.h"
#include "base/symbolize.h"

/* "0x1234" or "1234" (hex either way, as stacks print them) */
static int parse_addr(const char *text, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(text, &end, 16);
	if (errno || end == text || (*end && *end != '\n'))
		return -EINVAL;
	return 0;
}

static void print_frame(const struct sym_frame *f, bool json)
{
	if (json) {
		json_t *j = sym_frame_json(f);

		json_dumpf(j, stdout, JSON_COMPACT);
		printf("\n");
		json_decref(j);
	} else if (f->name[0]) {
		printf("0x%" PRIx64 " %s+0x%" PRIx64 " %s", f->addr, f->name, f->offset, f->module);
		if (f->source[0])
			printf(" %s", f->source);
		for (unsigned i = 0; i < f->ninlined; i++)
			printf(" inlined:%s", f->inlined[i]);
		printf("\n");
	} else {
		printf("0x%" PRIx64 " ? %s+0x%" PRIx64 "%s%s\n", f->addr,
		       f->module[0] ? f->module : "?", f->file_offset,
		       f->build_id[0] ? " build-id " : "", f->build_id);
	}
}

static int symbolize_one(struct symbolizer *s, int pid, bool kernel, const char *text, bool json)
{
	struct sym_frame f;
	uint64_t addr;

	if (parse_addr(text, &addr)) {
		fprintf(stderr, "autotrace symbolize: not a hex address: %s", text);
		fprintf(stderr, text[strlen(text) - 1] == '\n' ? "" : "\n");
		return -EINVAL;
	}
	if (kernel)
		symbolizer_kernel(s, addr, &f);
	else
		symbolizer_user(s, pid, addr, &f);
	print_frame(&f, json);
	return 0;
}

int cmd_symbolize(int argc, char **argv)
{
	static const struct option opts[] = {{"pid", required_argument, NULL, 'p'},
					     {"kernel", no_argument, NULL, 'k'},
					     {"json", no_argument, NULL, 'j'},
					     {"stats", no_argument, NULL, 's'},
					     {"lines", no_argument, NULL, 'l'},
					     {"config", required_argument, NULL, 'c'},
					     {"in-process", no_argument, NULL, 'I'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *config = NULL;
	struct agent_config cfg;
	struct symbolizer_opts so = {0};
	struct symbolizer *s = NULL;
	bool kernel = false, json = false, stats = false, lines = false, in_process = false;
	long pid = 0;
	int c, bad = 0;
	char line[128];

	while ((c = getopt_long(argc, argv, "p:kjslc:Ih", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pid = strtol(optarg, NULL, 10);
			if (pid <= 0 || pid > 4194304)
				return cli_usage_error("symbolize", "bad pid '%s'", optarg);
			break;
		case 'k':
			kernel = true;
			break;
		case 'j':
			json = true;
			break;
		case 's':
			stats = true;
			break;
		case 'l':
			lines = true;
			break;
		case 'c':
			config = optarg;
			break;
		case 'I':
			in_process = true;
			break;
		case 'h':
			cli_print_help(cli_find("symbolize"), stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("symbolize", "bad option");
		}
	}
	if (!kernel && !pid)
		return cli_usage_error("symbolize", "--pid P or --kernel is required");
	if (cli_load_config(config, &cfg))
		return EXIT_USAGE;
	so.cache_bytes = cfg.symbolizer.cache_size;
	so.lines = lines || cfg.symbolizer.lines;
	so.helper_user = cfg.symbolizer.helper_user;
	so.helper_timeout_ms = cfg.symbolizer.helper_timeout_ms;
	so.in_process = in_process;
	if (symbolizer_new(&s, &so))
		return EXIT_RUNTIME;
	if (optind < argc) {
		for (int i = optind; i < argc; i++)
			bad |= symbolize_one(s, (int)pid, kernel, argv[i], json) != 0;
	} else {
		while (fgets(line, sizeof(line), stdin))
			if (line[0] != '\n')
				bad |= symbolize_one(s, (int)pid, kernel, line, json) != 0;
	}
	if (stats) {
		json_t *st = symbolizer_stats_json(s);

		json_dumpf(st, stderr, JSON_COMPACT);
		fprintf(stderr, "\n");
		json_decref(st);
	}
	symbolizer_free(&s);
	return bad ? EXIT_USAGE : EXIT_OK;
}
