// SPDX-License-Identifier: GPL-2.0-only
/* autotrace: always-on, anomaly-triggered tracing agent. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agent/cli.h"
#include "version.h"

static void print_top_help(FILE *out)
{
	fprintf(out, "usage: autotrace COMMAND [OPTIONS]\n\n%s\n\ncommands:\n", cli_description);
	for (const struct cli_command *c = cli_commands; c->name; c++)
		fprintf(out, "  %-22s %s\n", c->name, c->summary);
	fprintf(out, "\n'autotrace COMMAND --help' describes each command.\n"
		     "Exit status: 0 ok, 1 runtime failure, 2 usage or validation error.\n"
		     "'autotrace --man' prints the manual page, 'autotrace --completion bash'\n"
		     "the bash completion (both generated from this command table).\n");
}

int main(int argc, char **argv)
{
	const struct cli_command *c;
	char name[64];

	if (argc < 2) {
		print_top_help(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		print_top_help(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--man")) {
		cli_print_man(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--completion")) {
		if (argc != 3 || strcmp(argv[2], "bash")) {
			fprintf(stderr, "autotrace: --completion takes one shell: bash\n");
			return EXIT_USAGE;
		}
		cli_print_bash_completion(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") ||
	    !strcmp(argv[1], "version")) {
		printf("autotrace %s\n", AUTOTRACE_VERSION);
		return EXIT_OK;
	}
	/* two-word commands: "rules check", "incidents list" */
	c = cli_find(argv[1]);
	if (!c && argc >= 3 && argv[2][0] != '-') {
		snprintf(name, sizeof(name), "%s %s", argv[1], argv[2]);
		c = cli_find(name);
		if (c) {
			argv[2] = argv[0];
			return c->fn(argc - 2, argv + 2);
		}
	}
	if (!c) {
		bool group = false;

		/* "autotrace rules" alone, or "rules --help": list that group's commands */
		for (const struct cli_command *k = cli_commands; k->name; k++) {
			size_t n = strlen(argv[1]);

			if (!strncmp(k->name, argv[1], n) && k->name[n] == ' ') {
				if (!group)
					fprintf(argc >= 3 ? stdout : stderr, "%s commands:\n",
						argv[1]);
				group = true;
				fprintf(argc >= 3 ? stdout : stderr, "  autotrace %-18s %s\n",
					k->name, k->summary);
			}
		}
		if (group)
			return argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))
				       ? EXIT_OK
				       : EXIT_USAGE;
		fprintf(stderr, "autotrace: unknown command '%s' (see autotrace --help)\n",
			argv[1]);
		return EXIT_USAGE;
	}
	argv[1] = argv[0];
	return c->fn(argc - 1, argv + 1);
}
