/* SPDX-License-Identifier: GPL-2.0-only */
/* The control socket: a local, root-only stream socket speaking JSON lines
 * (docs/control-protocol.md). It runs on the agent's event loop and can never
 * stall it: every socket is non-blocking, every buffer bounded, idle clients
 * are dropped and the number of clients is capped. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;
struct control;

#define CONTROL_PROTOCOL_VERSION    1
#define CONTROL_DEFAULT_MAX_REQUEST 16384u     /* bytes, newline included */
#define CONTROL_DEFAULT_MAX_REPLY   (4u << 20) /* bytes */
#define CONTROL_DEFAULT_MAX_CLIENTS 16u
#define CONTROL_DEFAULT_IDLE_MS	    10000u

enum control_arg_type { CARG_STRING, CARG_UINT, CARG_BOOL, CARG_STRLIST };

/* One argument a command accepts; anything not listed is rejected. */
struct control_arg {
	const char *name;
	enum control_arg_type type;
	uint64_t min, max; /* CARG_UINT: value range; CARG_STRING: length range;
			    * CARG_STRLIST: item count range (items are 1..63 chars) */
};

/* A failed command: a stable machine-readable code and a sentence for people. */
struct control_error {
	char code[32];
	char message[512];
};

void control_error_set(struct control_error *e, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

struct control_call {
	const char *command;
	json_t *args; /* validated against the command's table; never NULL */
	uid_t uid;    /* the peer, from SO_PEERCRED */
	pid_t pid;
};

/* Returns 0 and a new *result, or a negative errno with err filled in. */
typedef int (*control_handler)(void *ctx, const struct control_call *call, json_t **result,
			       struct control_error *err);

struct control_command {
	const char *name;
	const struct control_arg *args; /* terminated by a NULL name; NULL: no args */
	control_handler fn;
};

struct control_opts {
	struct loop *loop;
	const char *path;			/* the socket; its directory is made 0700 */
	const struct control_command *commands; /* terminated by a NULL name */
	void *ctx;				/* passed to the handlers */
	unsigned max_clients;			/* 0: CONTROL_DEFAULT_MAX_CLIENTS */
	size_t max_request;			/* 0: CONTROL_DEFAULT_MAX_REQUEST */
	size_t max_reply;			/* 0: CONTROL_DEFAULT_MAX_REPLY */
	uint64_t idle_ms;			/* 0: CONTROL_DEFAULT_IDLE_MS */
};

/* Creates the directory (0700) and the socket (0600), refusing to replace a
 * socket another process still listens on or anything that is not a socket. */
int control_new(struct control **out, const struct control_opts *opts);
/* Closes every client and removes the socket file. */
void control_free(struct control **c);
const char *control_path(const struct control *c);
/* {clients, accepted, requests, errors, rejected_peer, rejected_full, timed_out} */
json_t *control_stats(const struct control *c);

/* Checks args (NULL = none given) against a command's table; 0 or -EINVAL
 * with err saying which field and why. Exposed for the unit tests. */
int control_validate_args(const struct control_arg *table, json_t *args, struct control_error *err);
