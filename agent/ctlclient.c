// SPDX-License-Identifier: GPL-2.0-only
#include "agent/ctlclient.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/cli.h"
#include "base/config.h"
#include "base/sanitize.h"
#include "base/util.h"

int ctl_client_socket_path(const char *explicit_path, const char *config_path, char *out,
			   size_t len)
{
	struct agent_config cfg;
	int rc;

	if (explicit_path) {
		snprintf(out, len, "%s", explicit_path);
		return EXIT_OK;
	}
	rc = cli_load_config(config_path, &cfg);
	if (rc)
		return rc;
	snprintf(out, len, "%s", cfg.agent.control_socket);
	return EXIT_OK;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = now_mono_ns() / 1000000;

	return now >= deadline ? 0 : (int)MIN(deadline - now, 1u << 30);
}

static int connect_agent(const char *path, struct control_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		control_error_set(err, "client", "socket path %s is too long", path);
		return -ENAMETOOLONG;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = -errno;
		control_error_set(err, "client", "socket: %s", strerror(-e));
		return e;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	e = -errno;
	close(fd);
	if (e == -ENOENT || e == -ECONNREFUSED)
		control_error_set(err, "client",
				  "no agent is listening on %s (is it running? systemctl status "
				  "autotrace)",
				  path);
	else if (e == -EACCES || e == -EPERM)
		control_error_set(err, "client",
				  "%s: permission denied: the control socket is root-only "
				  "(run as root, e.g. with sudo)",
				  path);
	else
		control_error_set(err, "client", "connecting to %s: %s", path, strerror(-e));
	return e;
}

static int send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	while (len) {
		struct pollfd p = {fd, POLLOUT, 0};
		ssize_t n;

		if (poll(&p, 1, remaining_ms(deadline)) <= 0)
			return -ETIMEDOUT;
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one line (the reply), at most max bytes. */
static int recv_line(int fd, char **out, size_t max, uint64_t deadline)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		char *nl;
		ssize_t n;

		if (poll(&p, 1, remaining_ms(deadline)) <= 0) {
			free(buf);
			return -ETIMEDOUT;
		}
		if (len + 1 >= cap) {
			char *nb;

			if (cap >= max) {
				free(buf);
				return -EMSGSIZE;
			}
			cap = MIN(cap * 2, max);
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			free(buf);
			return n == 0 ? -ECONNRESET : -errno;
		}
		len += (size_t)n;
		buf[len] = '\0';
		nl = memchr(buf, '\n', len);
		if (nl) {
			*nl = '\0';
			*out = buf;
			return 0;
		}
	}
}

int ctl_client_call(const char *socket_path, const char *command, json_t *args, uint64_t timeout_ms,
		    json_t **result, struct control_error *err)
{
	uint64_t deadline = now_mono_ns() / 1000000 + timeout_ms;
	json_t *req, *reply = NULL, *e;
	char *text = NULL, *line = NULL;
	json_error_t jerr;
	int fd, ret;

	*result = NULL;
	fd = connect_agent(socket_path, err);
	if (fd < 0)
		return fd;
	req = json_pack("{s:i,s:s}", "id", 1, "command", command);
	if (args)
		json_object_set(req, "args", args);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text) {
		ret = -ENOMEM;
		goto out;
	}
	ret = send_all(fd, text, strlen(text), deadline);
	if (!ret)
		ret = send_all(fd, "\n", 1, deadline);
	if (!ret)
		ret = recv_line(fd, &line, CONTROL_DEFAULT_MAX_REPLY + 1, deadline);
	if (ret) {
		control_error_set(err, "client", "talking to the agent on %s: %s", socket_path,
				  ret == -ETIMEDOUT    ? "no reply in time"
				  : ret == -ECONNRESET ? "it closed the connection"
						       : strerror(-ret));
		goto out;
	}
	reply = json_loads(line, 0, &jerr);
	if (!json_is_object(reply)) {
		control_error_set(err, "client", "the agent's reply is not JSON: %s", jerr.text);
		ret = -EPROTO;
		goto out;
	}
	if (json_is_true(json_object_get(reply, "ok"))) {
		*result = json_incref(json_object_get(reply, "result"));
		ret = *result ? 0 : -EPROTO;
		if (ret)
			control_error_set(err, "client", "the agent's reply has no result");
		goto out;
	}
	e = json_object_get(reply, "error");
	control_error_set(err, json_string_value(json_object_get(e, "code")) ?: "error", "%s",
			  json_string_value(json_object_get(e, "message")) ?: "(no message)");
	ret = -EREMOTEIO;
out:
	json_decref(reply);
	free(text);
	free(line);
	close(fd);
	return ret;
}

int ctl_client_report(const char *cmd, int ret, const struct control_error *err)
{
	char msg[1024];

	fprintf(stderr, "autotrace %s: %s\n", cmd, str_term(msg, sizeof(msg), err->message));
	if (ret == -EREMOTEIO &&
	    (!strcmp(err->code, "invalid_request") || !strcmp(err->code, "unknown_command") ||
	     !strcmp(err->code, "not_found")))
		return EXIT_USAGE;
	return EXIT_RUNTIME;
}
