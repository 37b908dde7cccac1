/* SPDX-License-Identifier: GPL-2.0-only */
/* `autotrace run`: the agent's event loop. */
#pragma once
#include <stdbool.h>

/* config_path NULL: the default path if it exists, else built-in defaults.
 * Returns the process exit code. */
int daemon_run(const char *config_path);
