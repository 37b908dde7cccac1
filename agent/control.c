// SPDX-License-Identifier: GPL-2.0-only
#include "agent/control.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#define ACCEPTS_PER_WAKEUP 32 /* a flood of connects cannot monopolise one loop turn */
#define REQUEST_ID_MAX	   64
#define STRLIST_ITEM_MAX   63
#define REJECT_LOG_EVERY   100 /* peers refused: first one logged, then every 100th */

struct client {
	struct control *ctl;
	int fd;
	uid_t uid;
	pid_t pid;
	char *in; /* max_request bytes */
	size_t in_len;
	char *out; /* one pending reply at a time */
	size_t out_len, out_off;
	uint64_t deadline_ms; /* monotonic: dropped when no progress by then */
	bool eof;	      /* the peer shut down its write side */
	bool closing;	      /* close once the pending reply is sent */
	struct client *next;
};

struct control {
	struct control_opts opts;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	int fd;
	struct loop_timer *sweep;
	struct client *clients;
	unsigned nclients;
	struct {
		uint64_t accepted, requests, errors, rejected_peer, rejected_full, timed_out;
	} stats;
};

void control_error_set(struct control_error *e, const char *code, const char *fmt, ...)
{
	va_list ap;

	snprintf(e->code, sizeof(e->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	return now_mono_ns() / 1000000;
}

static const char *arg_type_name(enum control_arg_type t)
{
	switch (t) {
	case CARG_STRING:
		return "a string";
	case CARG_UINT:
		return "a non-negative integer";
	case CARG_BOOL:
		return "true or false";
	case CARG_STRLIST:
		return "an array of strings";
	}
	return "?";
}

static void allowed_names(const struct control_arg *table, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (const struct control_arg *a = table; a && a->name; a++)
		off += (size_t)snprintf(buf + off, len > off ? len - off : 0, "%s%s",
					off ? ", " : "", a->name);
	if (!off)
		snprintf(buf, len, "none");
}

static int validate_one(const struct control_arg *a, json_t *v, struct control_error *err)
{
	size_t i;
	json_t *it;

	switch (a->type) {
	case CARG_STRING:
		if (!json_is_string(v))
			break;
		if (json_string_length(v) < a->min || json_string_length(v) > a->max ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			control_error_set(err, "invalid_request",
					  "args.%s: must be %llu to %llu characters without NUL",
					  a->name, (unsigned long long)a->min,
					  (unsigned long long)a->max);
			return -EINVAL;
		}
		return 0;
	case CARG_UINT:
		if (!json_is_integer(v))
			break;
		if (json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < a->min ||
		    (uint64_t)json_integer_value(v) > a->max) {
			control_error_set(err, "invalid_request",
					  "args.%s: %lld is out of range [%llu, %llu]", a->name,
					  (long long)json_integer_value(v),
					  (unsigned long long)a->min, (unsigned long long)a->max);
			return -ERANGE;
		}
		return 0;
	case CARG_BOOL:
		if (!json_is_boolean(v))
			break;
		return 0;
	case CARG_STRLIST:
		if (!json_is_array(v))
			break;
		if (json_array_size(v) < a->min || json_array_size(v) > a->max) {
			control_error_set(err, "invalid_request",
					  "args.%s: needs %llu to %llu entries, got %zu", a->name,
					  (unsigned long long)a->min, (unsigned long long)a->max,
					  json_array_size(v));
			return -EINVAL;
		}
		json_array_foreach(v, i, it)
		{
			if (!json_is_string(it) || json_string_length(it) == 0 ||
			    json_string_length(it) > STRLIST_ITEM_MAX ||
			    strlen(json_string_value(it)) != json_string_length(it)) {
				control_error_set(err, "invalid_request",
						  "args.%s[%zu]: expected a string of 1 to %d "
						  "characters",
						  a->name, i, STRLIST_ITEM_MAX);
				return -EINVAL;
			}
		}
		return 0;
	}
	control_error_set(err, "invalid_request", "args.%s: expected %s, got %s", a->name,
			  arg_type_name(a->type),
			  json_is_object(v)    ? "an object"
			  : json_is_array(v)   ? "an array"
			  : json_is_string(v)  ? "a string"
			  : json_is_boolean(v) ? "a boolean"
			  : json_is_null(v)    ? "null"
			  : json_is_integer(v) ? "an integer"
					       : "a number");
	return -EINVAL;
}

int control_validate_args(const struct control_arg *table, json_t *args, struct control_error *err)
{
	const char *key;
	json_t *v;

	if (!args)
		return 0;
	if (!json_is_object(args)) {
		control_error_set(err, "invalid_request", "args: expected an object");
		return -EINVAL;
	}
	json_object_foreach(args, key, v)
	{
		const struct control_arg *a = NULL;
		int ret;

		for (const struct control_arg *t = table; t && t->name; t++)
			if (strcmp(t->name, key) == 0)
				a = t;
		if (!a) {
			char names[256];

			allowed_names(table, names, sizeof(names));
			control_error_set(err, "invalid_request",
					  "args: unknown field '%.64s' (allowed: %s)", key, names);
			return -EINVAL;
		}
		ret = validate_one(a, v, err);
		if (ret)
			return ret;
	}
	return 0;
}

static void client_close(struct client *c)
{
	struct control *ctl = c->ctl;
	struct client **pp = &ctl->clients;

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = c->next;
		ctl->nclients--;
	}
	loop_del_fd(ctl->opts.loop, c->fd);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* Best effort, for peers we are about to drop: never waits. */
static void send_now(int fd, const char *text)
{
	ssize_t n = send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);

	(void)n;
}

static char *error_line(json_t *id, const struct control_error *e)
{
	json_t *o = json_object();
	char *text, *line = NULL;

	if (id)
		json_object_set(o, "id", id);
	json_object_set_new(o, "ok", json_false());
	json_object_set_new(o, "error",
			    json_pack("{s:s,s:s}", "code", e->code, "message", e->message));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text && asprintf(&line, "%s\n", text) < 0)
		line = NULL;
	free(text);
	return line;
}

static void client_events(struct client *c)
{
	/* no EPOLLRDHUP: it stays raised while a reply waits for a slow reader,
	 * and a level-triggered loop would spin on it; EOF shows up as a 0 read */
	uint32_t ev = c->out ? EPOLLOUT : (c->eof || c->closing) ? 0 : EPOLLIN;

	loop_mod_fd(c->ctl->opts.loop, c->fd, ev);
}

static void queue_reply(struct client *c, char *line)
{
	if (!line) {
		c->closing = true; /* out of memory: nothing sensible left to say */
		return;
	}
	c->out = line;
	c->out_len = strlen(line);
	c->out_off = 0;
}

static void queue_error(struct client *c, json_t *id, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void queue_error(struct client *c, json_t *id, const char *code, const char *fmt, ...)
{
	struct control_error e;
	va_list ap;

	snprintf(e.code, sizeof(e.code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	c->ctl->stats.errors++;
	queue_reply(c, error_line(id, &e));
}

static const struct control_command *command_find(const struct control *ctl, const char *name)
{
	for (const struct control_command *k = ctl->opts.commands; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static void handle_request(struct client *c, const char *line, size_t len)
{
	struct control *ctl = c->ctl;
	const struct control_command *cmd;
	struct control_error err = {"", ""};
	json_t *req, *id = NULL, *args = NULL, *result = NULL, *reply;
	const char *key, *name;
	json_error_t jerr;
	char *text = NULL;
	json_t *v;
	int ret;

	ctl->stats.requests++;
	req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req) {
		queue_error(c, NULL, "invalid_json", "column %d: %s", jerr.column, jerr.text);
		return;
	}
	if (!json_is_object(req)) {
		queue_error(c, NULL, "invalid_request", "a request is a JSON object");
		goto out;
	}
	id = json_object_get(req, "id");
	if (id && !(json_is_integer(id) ||
		    (json_is_string(id) && json_string_length(id) <= REQUEST_ID_MAX))) {
		queue_error(c, NULL, "invalid_request",
			    "id: expected an integer or a string of at most %d characters",
			    REQUEST_ID_MAX);
		goto out;
	}
	json_object_foreach(req, key, v)
	{
		if (strcmp(key, "id") && strcmp(key, "command") && strcmp(key, "args")) {
			queue_error(c, id, "invalid_request",
				    "unknown field '%.64s' (allowed: id, command, args)", key);
			goto out;
		}
	}
	v = json_object_get(req, "command");
	if (!json_is_string(v)) {
		queue_error(c, id, "invalid_request", "command: required, a string");
		goto out;
	}
	name = json_string_value(v);
	cmd = command_find(ctl, name);
	if (!cmd) {
		char known[256];
		size_t off = 0;

		known[0] = '\0';
		for (const struct control_command *k = ctl->opts.commands; k->name; k++)
			off += (size_t)snprintf(known + off,
						sizeof(known) > off ? sizeof(known) - off : 0,
						"%s%s", off ? ", " : "", k->name);
		queue_error(c, id, "unknown_command", "unknown command '%.64s' (known: %s)", name,
			    known);
		goto out;
	}
	args = json_object_get(req, "args");
	if (control_validate_args(cmd->args, args, &err)) {
		ctl->stats.errors++;
		queue_reply(c, error_line(id, &err));
		goto out;
	}
	args = args ? json_incref(args) : json_object();
	log_debug("control: %s from uid %u pid %d", cmd->name, (unsigned)c->uid, (int)c->pid);
	ret = cmd->fn(ctl->opts.ctx, &(struct control_call){cmd->name, args, c->uid, c->pid},
		      &result, &err);
	json_decref(args);
	if (ret || !result) {
		if (!err.code[0])
			control_error_set(&err, "internal", "%s", strerror(ret ? -ret : ENOMEM));
		json_decref(result);
		ctl->stats.errors++;
		queue_reply(c, error_line(id, &err));
		goto out;
	}
	reply = json_object();
	if (id)
		json_object_set(reply, "id", id);
	json_object_set_new(reply, "ok", json_true());
	json_object_set_new(reply, "result", result);
	text = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	if (text && strlen(text) + 1 > ctl->opts.max_reply) {
		queue_error(c, id, "reply_too_large", "the reply would be %zu bytes (limit %zu)",
			    strlen(text) + 1, ctl->opts.max_reply);
	} else if (text) {
		char *framed = realloc(text, strlen(text) + 2);

		if (framed) {
			strcat(framed, "\n");
			text = NULL;
		}
		queue_reply(c, framed);
	} else {
		queue_reply(c, NULL);
	}
	free(text);
out:
	json_decref(req);
}

/* Handles buffered lines, one at a time: the next waits until this reply is sent. */
static void process_input(struct client *c)
{
	while (!c->out && !c->closing) {
		char *nl = memchr(c->in, '\n', c->in_len);
		size_t len;

		if (!nl) {
			if (c->in_len == c->ctl->opts.max_request) {
				queue_error(c, NULL, "line_too_long",
					    "a request line is at most %zu bytes, newline included",
					    c->ctl->opts.max_request);
				c->closing = true; /* cannot find where the next request starts */
			} else if (c->eof) {
				/* the last request may lack its newline */
				if (c->in_len)
					handle_request(c, c->in, c->in_len);
				c->in_len = 0;
				c->closing = true;
			}
			break;
		}
		len = (size_t)(nl - c->in);
		/* tolerate CRLF and blank lines */
		if (len && c->in[len - 1] == '\r')
			len--;
		if (len)
			handle_request(c, c->in, len);
		c->in_len -= (size_t)(nl - c->in) + 1;
		memmove(c->in, nl + 1, c->in_len);
	}
}

/* Sends what is pending; returns false when the client was closed. */
static bool flush_output(struct client *c)
{
	while (c->out) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return true;
			client_close(c);
			return false;
		}
		c->out_off += (size_t)n;
		c->deadline_ms = now_ms() + c->ctl->opts.idle_ms;
		if (c->out_off == c->out_len) {
			free(c->out);
			c->out = NULL;
			process_input(c);
		}
	}
	if (c->closing) {
		client_close(c);
		return false;
	}
	return true;
}

static void on_client(void *ctx, int fd, uint32_t events)
{
	struct client *c = ctx;

	if (events & EPOLLIN && !c->out && !c->eof && c->in_len < c->ctl->opts.max_request) {
		ssize_t n = recv(fd, c->in + c->in_len, c->ctl->opts.max_request - c->in_len,
				 MSG_DONTWAIT);

		if (n > 0) {
			c->in_len += (size_t)n;
			c->deadline_ms = now_ms() + c->ctl->opts.idle_ms;
		} else if (n == 0) {
			c->eof = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			client_close(c);
			return;
		}
		process_input(c);
	} else if (events & (EPOLLHUP | EPOLLERR) && !(events & EPOLLOUT)) {
		client_close(c);
		return;
	}
	if (!flush_output(c))
		return;
	client_events(c);
}

static void reject(struct control *ctl, int fd, const char *code, const char *msg)
{
	struct control_error e;
	char *line;

	control_error_set(&e, code, "%s", msg);
	line = error_line(NULL, &e);
	if (line)
		send_now(fd, line);
	free(line);
	close(fd);
}

/* Peers that connected and left may not have been noticed yet (their events
 * wait in this loop turn); they must not hold places a new client needs. */
static void reap_hung_up(struct control *ctl)
{
	struct client *c = ctl->clients, *next;

	for (; c; c = next) {
		char byte;

		next = c->next;
		if (!c->out && recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
			client_close(c);
	}
}

static void on_listen(void *ctx, int lfd, uint32_t events)
{
	struct control *ctl = ctx;

	(void)events;
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		struct ucred cred;
		socklen_t clen = sizeof(cred);
		struct client *c;
		int fd;

		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a peer that vanished: nothing to do */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
			close(fd);
			continue;
		}
		/* root only; an agent run by another user for development also
		 * accepts that user, who owns the 0600 socket anyway */
		if (cred.uid != 0 && cred.uid != geteuid()) {
			if (ctl->stats.rejected_peer++ % REJECT_LOG_EVERY == 0)
				log_warn("control: refused uid %u (pid %d): root only (%llu "
					 "refused)",
					 (unsigned)cred.uid, (int)cred.pid,
					 (unsigned long long)ctl->stats.rejected_peer);
			reject(ctl, fd, "permission_denied",
			       "the control socket accepts root only");
			continue;
		}
		if (ctl->nclients >= ctl->opts.max_clients)
			reap_hung_up(ctl);
		if (ctl->nclients >= ctl->opts.max_clients) {
			ctl->stats.rejected_full++;
			reject(ctl, fd, "too_many_clients",
			       "too many control clients; retry later");
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c)
			c->in = malloc(ctl->opts.max_request);
		if (!c || !c->in || loop_add_fd(ctl->opts.loop, fd, EPOLLIN, on_client, c)) {
			if (c)
				free(c->in);
			free(c);
			close(fd);
			continue;
		}
		c->ctl = ctl;
		c->fd = fd;
		c->uid = cred.uid;
		c->pid = cred.pid;
		c->deadline_ms = now_ms() + ctl->opts.idle_ms;
		c->next = ctl->clients;
		ctl->clients = c;
		ctl->nclients++;
		ctl->stats.accepted++;
	}
}

static void on_sweep(void *ctx, struct loop_timer *t)
{
	struct control *ctl = ctx;
	uint64_t now = now_ms();
	struct client *c = ctl->clients, *next;

	(void)t;
	for (; c; c = next) {
		next = c->next;
		if (now < c->deadline_ms)
			continue;
		ctl->stats.timed_out++;
		if (!c->out) {
			struct control_error e;
			char *line;

			control_error_set(&e, "idle_timeout", "no complete request within %llums",
					  (unsigned long long)ctl->opts.idle_ms);
			line = error_line(NULL, &e);
			if (line)
				send_now(c->fd, line);
			free(line);
		}
		client_close(c);
	}
}

/* A socket file at path: unlink it when nobody listens, refuse otherwise. */
static int clear_stale(const char *path)
{
	bool removed;
	int err = unix_socket_clear_stale(path, &removed);

	if (err == -EEXIST)
		return log_ret(err, "control socket %s: exists and is not a socket", path);
	if (err == -EADDRINUSE)
		return log_ret(err, "control socket %s: another agent is listening on it", path);
	if (removed)
		log_info("control socket %s: removed a stale socket", path);
	return err;
}

static int make_dir(const char *path)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;
	char *dir;
	int err;

	snprintf(buf, sizeof(buf), "%s", path);
	dir = dirname(buf);
	err = mkdir_p(dir, 0700);
	if (err)
		return log_ret(err, "control socket directory %s: %s", dir, strerror(-err));
	if (stat(dir, &st))
		return -errno;
	/* others must not be able to replace the socket under us */
	if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return log_ret(-EPERM,
			       "control socket directory %s: must be owned by root and not "
			       "writable by group or others (uid %u, mode %04o)",
			       dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

int control_new(struct control **out, const struct control_opts *opts)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct control *ctl;
	struct stat st;
	mode_t old_mask;
	int err;

	if (strlen(opts->path) >= sizeof(sa.sun_path))
		return log_ret(-ENAMETOOLONG, "control socket %s: path longer than %zu bytes",
			       opts->path, sizeof(sa.sun_path) - 1);
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->fd = -1;
	ctl->opts = *opts;
	if (!ctl->opts.max_clients)
		ctl->opts.max_clients = CONTROL_DEFAULT_MAX_CLIENTS;
	if (!ctl->opts.max_request)
		ctl->opts.max_request = CONTROL_DEFAULT_MAX_REQUEST;
	if (!ctl->opts.max_reply)
		ctl->opts.max_reply = CONTROL_DEFAULT_MAX_REPLY;
	if (!ctl->opts.idle_ms)
		ctl->opts.idle_ms = CONTROL_DEFAULT_IDLE_MS;
	snprintf(ctl->path, sizeof(ctl->path), "%s", opts->path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", opts->path);

	err = make_dir(ctl->path);
	if (err)
		goto cleanup;
	err = clear_stale(ctl->path);
	if (err)
		goto cleanup;
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0) {
		err = -errno;
		goto cleanup;
	}
	/* the socket file is born 0600: no window where others could connect */
	old_mask = umask(0177);
	err = bind(ctl->fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old_mask);
	if (err) {
		log_error("control socket %s: bind: %s", ctl->path, strerror(-err));
		goto cleanup;
	}
	if (chmod(ctl->path, 0600) || stat(ctl->path, &st)) {
		err = -errno;
		unlink(ctl->path);
		goto cleanup;
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	if (listen(ctl->fd, 16)) {
		err = -errno;
		unlink(ctl->path);
		goto cleanup;
	}
	err = loop_add_fd(opts->loop, ctl->fd, EPOLLIN, on_listen, ctl);
	if (!err)
		err = loop_timer_new(opts->loop, 1000000000ull, 1000000000ull, on_sweep, ctl,
				     &ctl->sweep);
	if (err) {
		loop_del_fd(opts->loop, ctl->fd);
		unlink(ctl->path);
		goto cleanup;
	}
	*out = ctl;
	return 0;
cleanup:
	if (ctl->fd >= 0)
		close(ctl->fd);
	free(ctl);
	return err;
}

void control_free(struct control **pc)
{
	struct control *ctl = pc ? *pc : NULL;
	struct stat st;

	if (!ctl)
		return;
	while (ctl->clients)
		client_close(ctl->clients);
	loop_timer_free(&ctl->sweep);
	loop_del_fd(ctl->opts.loop, ctl->fd);
	close(ctl->fd);
	/* remove the socket only if it is still ours, not a successor's */
	if (stat(ctl->path, &st) == 0 && st.st_dev == ctl->dev && st.st_ino == ctl->ino)
		unlink(ctl->path);
	free(ctl);
	*pc = NULL;
}

const char *control_path(const struct control *c)
{
	return c->path;
}

json_t *control_stats(const struct control *c)
{
	return json_pack(
		"{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "socket", c->path, "clients",
		(json_int_t)c->nclients, "accepted", (json_int_t)c->stats.accepted, "requests",
		(json_int_t)c->stats.requests, "errors", (json_int_t)c->stats.errors,
		"rejected_peer", (json_int_t)c->stats.rejected_peer, "rejected_full",
		(json_int_t)c->stats.rejected_full, "timed_out", (json_int_t)c->stats.timed_out);
}
