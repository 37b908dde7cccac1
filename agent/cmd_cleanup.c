// SPDX-License-Identifier: GPL-2.0-only
/* autotrace cleanup: kernel settings put back after an agent that did not exit
 * cleanly (base/sysstate.h); the unit's ExecStopPost. */
#include <getopt.h>
#include <stdio.h>

#include "agent/cli.h"
#include "base/config.h"
#include "base/sysstate.h"

int cmd_cleanup(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *config = NULL;
	struct agent_config cfg;
	char dir[4096];
	int c, n;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			cli_print_help(cli_find("cleanup"), stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("cleanup", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("cleanup", "unexpected argument '%s'", argv[optind]);
	if (cli_load_config(config, &cfg))
		return EXIT_USAGE;
	sysstate_dir_of(cfg.agent.control_socket, dir, sizeof(dir));
	n = sysstate_restore_all(dir, "/proc");
	if (n)
		printf("%d kernel setting%s put back\n", n, n == 1 ? "" : "s");
	return EXIT_OK;
}
