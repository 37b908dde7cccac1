/* SPDX-License-Identifier: GPL-2.0-only */
/* The client side of the control socket, for `autotrace status` and `trigger`. */
#pragma once
#include <jansson.h>
#include <stdint.h>

#include "agent/control.h"

/* The socket: explicit path, else agent.control_socket of config_path (or of
 * the default config file, or the built-in default). Returns an exit code. */
int ctl_client_socket_path(const char *explicit_path, const char *config_path, char *out,
			   size_t len);

/* Sends one request, waits at most timeout_ms for its reply. Returns 0 with
 * the reply's result (new reference); -EREMOTEIO when the agent answered with
 * an error (err has its code and message); another -errno when the agent could
 * not be reached (err says why, in words for an SRE). */
int ctl_client_call(const char *socket_path, const char *command, json_t *args, uint64_t timeout_ms,
		    json_t **result, struct control_error *err);

/* Prints err for command cmd and returns the exit code it deserves:
 * EXIT_USAGE for requests the agent found invalid, EXIT_RUNTIME otherwise. */
int ctl_client_report(const char *cmd, int ret, const struct control_error *err);
