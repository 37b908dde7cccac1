// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: control-socket requests, through the real server on a
 * real socket: any bytes get JSON answers (or the connection closed), the
 * server never stalls, and every handler is only called with arguments its
 * table allows. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "agent/control.h"
#include "base/log.h"
#include "base/loop.h"
#include "fuzzlib.h"

static struct loop *loop;
static struct control *ctl;
static char path[128];

static const struct control_arg trigger_args[] = {
	{"rule", CARG_STRING, 1, 128},
	{"duration_ms", CARG_UINT, 100, 600000},
	{"captures", CARG_STRLIST, 1, 8},
	{"cgroup", CARG_STRING, 1, 4096},
	{"pid", CARG_UINT, 1, 4194304},
	{"wait", CARG_BOOL, 0, 0},
	{NULL, 0, 0, 0},
};
static const struct control_arg incident_args[] = {
	{"id", CARG_STRING, 1, 64},
	{NULL, 0, 0, 0},
};

/* Echoes what it was given: the argument checks must hold before this runs. */
static int handler(void *ctx, const struct control_call *call, json_t **result,
		   struct control_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(call->args, key, v)
	{
		if (!strcmp(call->command, "status"))
			abort(); /* takes no arguments */
		if (json_is_string(v) && json_string_length(v) > 4096)
			abort();
	}
	if (!strcmp(call->command, "incident") && json_object_get(call->args, "id") &&
	    !strcmp(json_string_value(json_object_get(call->args, "id")), "fail")) {
		control_error_set(err, "not_found", "no incident %s", "fail");
		return -ENOENT;
	}
	*result = json_pack("{s:s,s:O}", "command", call->command, "args", call->args);
	return 0;
}

static const struct control_command commands[] = {
	{"status", NULL, handler},
	{"trigger", trigger_args, handler},
	{"incident", incident_args, handler},
	{NULL, NULL, NULL},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct control_opts o = {.commands = commands, .max_request = 4096, .max_reply = 65536};

	log_set_level(LOG_LVL_ERROR);
	snprintf(path, sizeof(path), "%s/ctl/control.sock", fuzz_dir());
	if (loop_new(&loop))
		abort();
	o.loop = loop;
	o.path = path;
	if (control_new(&ctl, &o))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char reply[1 << 17];
	size_t got = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		abort();
	if (size > 4096)
		size = 4096; /* one buffer's worth: more is the server's line_too_long */
	/* at most 16 requests: each is handled on its own, so more repeat the
	 * same paths, and an input of a hundred one-byte lines took a millisecond */
	for (size_t i = 0, lines = 0; i < size; i++)
		if (data[i] == '\n' && ++lines == 16) {
			size = i + 1;
			break;
		}
	if (size && send(fd, data, size, MSG_NOSIGNAL) != (ssize_t)size)
		abort();
	shutdown(fd, SHUT_WR);
	/* the server answers every line, then closes: bounded turns of its loop
	 * (each has work ready: nothing here waits on a timer) */
	for (int turn = 0; turn < 1000; turn++) {
		ssize_t n;

		loop_once(loop, turn < 900 ? 0 : 10);
		n = recv(fd, reply + got, sizeof(reply) - 1 - got, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			got += (size_t)n;
		else if (errno != EAGAIN)
			break;
		if (turn == 999)
			abort(); /* never answered, never closed: a stall */
	}
	close(fd);
	reply[got] = '\0';
	/* every answer line is a JSON object saying ok or not */
	for (char *line = reply, *nl; *line; line = nl + 1) {
		json_t *j;

		nl = strchr(line, '\n');
		if (!nl)
			abort(); /* answers are whole lines */
		j = json_loadb(line, (size_t)(nl - line), 0, NULL);
		if (!json_is_object(j) || !json_is_boolean(json_object_get(j, "ok")))
			abort();
		json_decref(j);
	}
	return 0;
}
