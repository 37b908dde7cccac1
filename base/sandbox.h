/* SPDX-License-Identifier: GPL-2.0-only */
/* The sandboxed helper: where what tenants control is parsed.
 *
 * ELF, DWARF, MiniDebugInfo (xz) and perf maps come from tenants' files, and
 * the libraries that parse them (libelf, libdw, liblzma) are large. A bug in
 * them must not run inside a root agent. So the agent re-executes its own
 * binary as a helper process that, before it reads a single byte of input,
 * becomes another user, loses every capability, sets no_new_privs, caps its
 * address space and CPU time, and installs a seccomp filter that allows
 * little more than reading and writing descriptors it was given (opening
 * files fails with EACCES). The agent opens each file itself (in the
 * process's root, regular files only, size capped) and passes the
 * descriptor.
 *
 * Requests go one at a time over a SOCK_SEQPACKET socket pair, each with a
 * deadline. From the agent's event loop nothing blocks: requests are queued,
 * answers arrive as the socket becomes readable, a timer enforces the
 * deadline. A caller that cannot go on without an answer (an incident being
 * written) may wait for one request, which moves it to the front; the wait
 * is bounded by that request's deadline (plus what is left of the one in
 * flight). A helper that crashes, overruns its deadline or hits a limit is
 * killed; only the request in flight fails (its callback says why) and the
 * next request starts a fresh helper.
 *
 * Operations are a table (sandbox_ops[], base/sandbox_ops.c): each has an
 * opcode, a per-helper state and a handler from request bytes + descriptors
 * to reply bytes. Symbolization registers ELF, perf map and DWARF-lines
 * operations; an unwinder registers its own next to them.
 *
 * With opts.in_process the same handlers run in the caller, synchronously
 * (measurement and debugging only: no isolation). */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"

struct loop;
struct sandbox;

/* argv[1] of a helper: the agent's own binary re-executed. */
#define SANDBOX_ARG	    "--autotrace-sandbox-helper"
#define SANDBOX_MAX_FDS	    16
#define SANDBOX_MAX_REQUEST (192u << 10) /* one datagram: a batch of stack copies */

/* A reply under construction (helper side) is a struct strbuf bounded by its max (the
 * requester's max_reply): an append past it fails with -EFBIG, which fails the request. */

struct sandbox_request {
	uint32_t op;
	const void *data;
	size_t len;
	const int *fds; /* closed by the server after the handler returns */
	unsigned nfds;
};

struct sandbox_op {
	uint32_t op;
	const char *name;
	void *(*state_new)(void); /* NULL: stateless */
	void (*state_free)(void *state);
	/* 0 or -errno (the caller's reply.status); reply bytes are sent either way */
	int (*handle)(void *state, const struct sandbox_request *rq, struct strbuf *reply);
};

extern const struct sandbox_op sandbox_ops[];
extern const unsigned sandbox_nops;

/* The helper's self-test (tests, and proof that the sandbox holds): what the
 * helper is, and ways for it to fail on purpose. */
#define SANDBOX_OP_SELFTEST 99
enum sandbox_selftest_mode {
	SELFTEST_WHOAMI,    /* reply: struct sandbox_whoami */
	SELFTEST_CRASH,	    /* dies of SIGSEGV */
	SELFTEST_SPIN,	    /* burns CPU for arg ms */
	SELFTEST_ALLOC,	    /* allocates and touches arg bytes: -ENOMEM past its limit */
	SELFTEST_SOCKET,    /* a system call the filter forbids: killed */
	SELFTEST_BAD_REPLY, /* answers more than it may */
	SELFTEST_ECHO,	    /* replies arg bytes */
};
struct sandbox_selftest {
	uint32_t mode;
	uint32_t pad;
	uint64_t arg;
};
struct sandbox_whoami {
	uint32_t uid, euid, gid;
	int32_t open_errno; /* of opening /etc/passwd */
	int32_t fd_bytes;   /* bytes read from the descriptor passed, -errno */
	uint32_t pad;
};
int sandbox_selftest(void *state, const struct sandbox_request *rq, struct strbuf *reply);

enum sandbox_fail {
	SANDBOX_OK,	     /* answered: status and data are the operation's */
	SANDBOX_CRASHED,     /* the helper died or broke the protocol */
	SANDBOX_TIMEOUT,     /* past the deadline: killed */
	SANDBOX_LIMIT,	     /* killed by its CPU limit, or out of memory */
	SANDBOX_UNAVAILABLE, /* no helper could be started */
	SANDBOX_CANCELLED,   /* sandbox_stop() or sandbox_free() before an answer */
};

struct sandbox_reply {
	enum sandbox_fail fail;
	int status;
	void *data; /* malloc'd; the callback may keep it by setting data = NULL */
	size_t len;
};

typedef void (*sandbox_cb)(void *ctx, struct sandbox_reply *r);

struct sandbox_opts {
	struct loop *loop;   /* NULL: progress only inside sandbox_wait */
	const char *exe;     /* NULL: /proc/self/exe */
	const char *user;    /* helper's user; NULL or "": the caller's own (no root) */
	uint64_t timeout_ms; /* per request; 0: 5 s */
	uint64_t mem_bytes;  /* address space over the helper's start-up size; 0: 512 MiB */
	uint64_t cpu_secs;   /* CPU seconds for one helper's life; 0: 120 */
	unsigned max_queue;  /* requests waiting; 0: 512 */
	bool in_process;
};

struct sandbox_stats {
	int pid; /* 0: no helper running */
	uint32_t uid;
	uint64_t starts, requests, answered;
	uint64_t crashes, timeouts, limits, unavailable, cancelled, queue_full;
	uint64_t queued;
	uint64_t max_wait_ms; /* longest a caller blocked in sandbox_wait */
};

int sandbox_new(struct sandbox **out, const struct sandbox_opts *opts);
/* Ends the helper; pending callbacks run with SANDBOX_CANCELLED. */
void sandbox_free(struct sandbox **sb);

/* Queues op(data, fds). The descriptors are the sandbox's from here on
 * (closed once sent, or at once on error). Returns a request id > 0, or
 * -errno (-EAGAIN: queue full; then cb never runs). cb runs exactly once
 * otherwise, from the loop, sandbox_wait or sandbox_stop. max_reply bounds
 * the answer: a helper sending more is treated as broken. */
int64_t sandbox_call(struct sandbox *sb, uint32_t op, const void *data, size_t len, int *fds,
		     unsigned nfds, size_t max_reply, sandbox_cb cb, void *ctx);
/* Blocks until request id is answered, it fails, or max_wait_ms passes.
 * 0: its callback has run (now or before); -ETIMEDOUT: still pending. */
int sandbox_wait(struct sandbox *sb, int64_t id, uint64_t max_wait_ms);
/* Starts the helper now, if it is not running, and waits until it is ready
 * (within max_wait_ms; 0: within its start-up deadline), so a caller whose
 * later waits are short does not spend them on an exec. 0 or -errno. */
int sandbox_start(struct sandbox *sb, uint64_t max_wait_ms);
/* Whether request id is still waiting for its answer. */
bool sandbox_pending(const struct sandbox *sb, int64_t id);
/* Its callback will not run (the context is going away); the request may
 * still be answered, into nothing. */
void sandbox_cancel(struct sandbox *sb, int64_t id);
/* Ends the helper now (it starts again with the next request); pending
 * requests are cancelled (callbacks run with SANDBOX_CANCELLED). */
void sandbox_stop(struct sandbox *sb);

void sandbox_get_stats(const struct sandbox *sb, struct sandbox_stats *out);
json_t *sandbox_stats_json(const struct sandbox *sb);
const char *sandbox_fail_name(enum sandbox_fail f);

/* When argv asks for the helper, becomes it and never returns; otherwise
 * returns at once. A constructor calls it before main() in every binary that
 * links the sandbox (the agent, and the tests, which exercise the same
 * helper). */
void sandbox_helper_main_if_asked(int argc, char **argv);
