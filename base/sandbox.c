// SPDX-License-Identifier: GPL-2.0-only
#include "base/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#define SB_MAGIC	    0x41545342u /* "ATSB" */
#define SB_MORE		    1u		/* more chunks of this reply follow */
#define SB_OP_READY	    0u		/* the helper's first message: sandboxed, serving */
#define SB_CHUNK	    (32u << 10)
#define SB_REAP_MS	    200
#define SB_ZOMBIES	    8
#define SB_BACKOFF_S	    30	  /* after helpers that die before they are ready */
#define SB_START_TIMEOUT_MS 10000 /* from exec to the helper's ready message */

#if defined(__SANITIZE_ADDRESS__)
#define SB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SB_ASAN 1
#endif
#endif

struct sb_hdr {
	uint32_t magic;
	uint32_t op;
	int64_t id;
	int32_t status;
	uint32_t flags;
	uint64_t total; /* bytes of the whole payload (first chunk) */
	uint64_t max_reply;
	uint32_t len; /* bytes in this chunk */
	uint32_t pad;
};

struct sb_ready {
	uint32_t uid, gid;
	uint64_t as_limit, cpu_limit;
};

struct sb_req {
	int64_t id;
	uint32_t op;
	void *data;
	size_t len;
	int fds[SANDBOX_MAX_FDS];
	unsigned nfds;
	size_t max_reply;
	sandbox_cb cb;
	void *ctx;
	struct sb_req *next;
};

enum sb_state { SB_DOWN, SB_STARTING, SB_READY };

struct sandbox {
	struct sandbox_opts o;
	char exe[PATH_MAX];
	bool setid;
	uid_t uid;
	gid_t gid;
	enum sb_state state;
	int fd;
	pid_t pid;
	uint64_t deadline_ns; /* of the start or the request in flight */
	struct sb_req *head, *tail;
	unsigned nqueued;
	struct sb_req *inflight;
	/* the answer being assembled */
	char *rbuf;
	size_t rlen, rtotal;
	int32_t rstatus;
	bool rstarted;
	char *msg; /* one datagram */
	struct loop_timer *timer;
	bool fd_in_loop;
	int64_t next_id;
	unsigned early_deaths;
	uint64_t unavailable_until_ns;
	pid_t zombies[SB_ZOMBIES];
	unsigned nzombies;
	void **states;	  /* in_process: the operations' states */
	unsigned running; /* in_process: nested kicks */
	struct sandbox_stats st;
};

const char *sandbox_fail_name(enum sandbox_fail f)
{
	static const char *const names[] = {"ok",    "crashed",	    "timeout",
					    "limit", "unavailable", "cancelled"};

	return f < ARRAY_SIZE(names) ? names[f] : "?";
}

/* --- the agent's side ---------------------------------------------------- */

static const struct sandbox_op *find_op(uint32_t op, unsigned *index)
{
	for (unsigned i = 0; i < sandbox_nops; i++) {
		if (sandbox_ops[i].op == op) {
			if (index)
				*index = i;
			return &sandbox_ops[i];
		}
	}
	return NULL;
}

static void req_free(struct sb_req *r)
{
	for (unsigned i = 0; i < r->nfds; i++)
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	free(r->data);
	free(r);
}

static void complete(struct sandbox *sb, struct sb_req *r, enum sandbox_fail fail, int status,
		     void *data, size_t len)
{
	struct sandbox_reply rep = {.fail = fail, .status = status, .data = data, .len = len};

	switch (fail) {
	case SANDBOX_OK:
		sb->st.answered++;
		if (status == -ENOMEM)
			sb->st.limits++;
		break;
	case SANDBOX_CRASHED:
		sb->st.crashes++;
		break;
	case SANDBOX_TIMEOUT:
		sb->st.timeouts++;
		break;
	case SANDBOX_LIMIT:
		sb->st.limits++;
		break;
	case SANDBOX_UNAVAILABLE:
		sb->st.unavailable++;
		break;
	case SANDBOX_CANCELLED:
		sb->st.cancelled++;
		break;
	}
	if (r->cb)
		r->cb(r->ctx, &rep);
	free(rep.data);
	req_free(r);
}

static struct sb_req *dequeue(struct sandbox *sb)
{
	struct sb_req *r = sb->head;

	if (r) {
		sb->head = r->next;
		if (!sb->head)
			sb->tail = NULL;
		sb->nqueued--;
		r->next = NULL;
	}
	return r;
}

static void reap_zombies(struct sandbox *sb)
{
	for (unsigned i = 0; i < sb->nzombies;) {
		if (waitpid(sb->zombies[i], NULL, WNOHANG) != 0)
			sb->zombies[i] = sb->zombies[--sb->nzombies];
		else
			i++;
	}
}

/* Kills the helper and says why it ended. A helper that went away by itself
 * (exiting is what closed its socket) is waited for briefly first: how it
 * died tells a limit (RLIMIT_CPU: SIGXCPU, then SIGKILL) from a crash. */
static enum sandbox_fail kill_helper(struct sandbox *sb, enum sandbox_fail why, bool went_away)
{
	int ws = 0;
	pid_t r = 0;

	if (sb->fd >= 0) {
		if (sb->fd_in_loop)
			loop_del_fd(sb->o.loop, sb->fd);
		sb->fd_in_loop = false;
		close(sb->fd);
		sb->fd = -1;
	}
	if (sb->pid > 0) {
		for (int i = 0;
		     went_away && i < SB_REAP_MS && (r = waitpid(sb->pid, &ws, WNOHANG)) == 0; i++)
			usleep(1000);
		if (r == sb->pid && WIFSIGNALED(ws) &&
		    (WTERMSIG(ws) == SIGXCPU || WTERMSIG(ws) == SIGKILL))
			why = SANDBOX_LIMIT;
		if (r == sb->pid)
			log_debug("symbolizer helper %d ended: %s %d", (int)sb->pid,
				  WIFSIGNALED(ws) ? "signal" : "exit",
				  WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
		if (r != sb->pid) {
			kill(sb->pid, SIGKILL);
			/* one in uninterruptible sleep (a hung file system) may take a
			 * while: it is reaped later rather than waited for */
			for (int i = 0; i < SB_REAP_MS && (r = waitpid(sb->pid, &ws, WNOHANG)) == 0;
			     i++)
				usleep(1000);
			if (r == 0 && sb->nzombies < SB_ZOMBIES)
				sb->zombies[sb->nzombies++] = sb->pid;
		}
	}
	sb->pid = 0;
	sb->state = SB_DOWN;
	sb->st.pid = 0;
	free(sb->rbuf);
	sb->rbuf = NULL;
	sb->rstarted = false;
	if (sb->timer)
		loop_timer_stop(sb->timer);
	return why;
}

/* The helper is gone: the request in flight fails, nothing else does. */
static void helper_died(struct sandbox *sb, enum sandbox_fail why, bool went_away)
{
	struct sb_req *r = sb->inflight;
	bool was_starting = sb->state == SB_STARTING;

	why = kill_helper(sb, why, went_away);
	sb->inflight = NULL;
	if (was_starting && ++sb->early_deaths >= 3) {
		/* a helper that cannot even start (exec fails, the user is missing,
		 * the sandbox is refused): stop trying for a while */
		sb->unavailable_until_ns = now_mono_ns() + SB_BACKOFF_S * 1000000000ull;
		sb->early_deaths = 0;
		log_warn("symbolizer helper fails to start; user frames stay unresolved for %ds",
			 SB_BACKOFF_S);
	}
	if (r)
		complete(sb, r, why, 0, NULL, 0);
}

static void on_readable(void *ctx, int fd, uint32_t events);
static void on_timer(void *ctx, struct loop_timer *t);
static void kick(struct sandbox *sb);

static void arm(struct sandbox *sb, uint64_t timeout_ms)
{
	uint64_t now = now_mono_ns();

	sb->deadline_ns = now + timeout_ms * 1000000ull;
	if (sb->timer)
		loop_timer_set(sb->timer, timeout_ms * 1000000ull, 0);
}

/* A copy of the environment for the helper. Under AddressSanitizer the
 * address-space limit cannot work (the shadow memory reserves terabytes), so
 * the helper's allocations are capped by the sanitizer itself. */
static char **helper_env(const struct sandbox *sb)
{
	extern char **environ;
	size_t n = 0, w = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
#ifdef SB_ASAN
		if (!strncmp(environ[i], "ASAN_OPTIONS=", 13))
			continue;
#endif
		env[w++] = environ[i];
	}
#ifdef SB_ASAN
	{
		static char asan[160];

		snprintf(asan, sizeof(asan),
			 "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:"
			 "max_allocation_size_mb=%llu",
			 (unsigned long long)(sb->o.mem_bytes >> 20));
		env[w++] = asan;
	}
#else
	(void)sb;
#endif
	env[w] = NULL;
	return env;
}

static int spawn(struct sandbox *sb)
{
	char uid[24], gid[24], mem[24], cpu[24];
	char *argv[] = {sb->exe, SANDBOX_ARG, uid, gid, mem, cpu, NULL};
	char **env;
	int sv[2];
	pid_t pid;

	reap_zombies(sb);
	if (sb->nzombies >= SB_ZOMBIES)
		return -EAGAIN; /* earlier helpers are stuck in the kernel: do not pile up */
	snprintf(uid, sizeof(uid), "%d", sb->setid ? (int)sb->uid : -1);
	snprintf(gid, sizeof(gid), "%d", sb->setid ? (int)sb->gid : -1);
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)sb->o.mem_bytes);
	snprintf(cpu, sizeof(cpu), "%llu", (unsigned long long)sb->o.cpu_secs);
	env = helper_env(sb);
	if (!env)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		int err = -errno;

		free(env);
		return err;
	}
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(sv[0]);
		close(sv[1]);
		free(env);
		return err;
	}
	if (pid == 0) {
		/* async-signal-safe calls only: the agent may have other threads */
		sigset_t none;
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (sv[1] == 3)
			fcntl(3, F_SETFD, 0);
		else if (dup2(sv[1], 3) < 0)
			_exit(127);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
		}
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(sb->exe, argv, env);
		_exit(127);
	}
	free(env);
	close(sv[1]);
	{
		/* a request is one datagram, and a datagram must fit the sender's buffer */
		int size = 2 * (int)(sizeof(struct sb_hdr) + SANDBOX_MAX_REQUEST);

		if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)))
			setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	}
	sb->fd = sv[0];
	sb->pid = pid;
	sb->st.pid = pid;
	sb->st.starts++;
	fcntl(sb->fd, F_SETFL, fcntl(sb->fd, F_GETFL) | O_NONBLOCK);
	if (sb->o.loop) {
		if (loop_add_fd(sb->o.loop, sb->fd, EPOLLIN, on_readable, sb) == 0)
			sb->fd_in_loop = true;
	}
	sb->state = SB_STARTING;
	/* start-up reads nothing of a tenant's: a slow exec on a loaded node (or
	 * an emulated CPU) is given time rather than counted as a failed start */
	arm(sb, sb->o.timeout_ms > SB_START_TIMEOUT_MS ? sb->o.timeout_ms : SB_START_TIMEOUT_MS);
	return 0;
}

static int send_request(struct sandbox *sb, struct sb_req *r)
{
	struct sb_hdr h = {.magic = SB_MAGIC,
			   .op = r->op,
			   .id = r->id,
			   .total = r->len,
			   .max_reply = r->max_reply,
			   .len = (uint32_t)r->len};
	struct iovec iov[2] = {{&h, sizeof(h)}, {r->data, r->len}};
	union {
		char buf[CMSG_SPACE(sizeof(int) * SANDBOX_MAX_FDS)];
		struct cmsghdr align;
	} c;
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = r->len ? 2 : 1};

	if (r->nfds) {
		struct cmsghdr *cm;

		memset(&c, 0, sizeof(c));
		m.msg_control = c.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * r->nfds);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * r->nfds);
		memcpy(CMSG_DATA(cm), r->fds, sizeof(int) * r->nfds);
	}
	if (sendmsg(sb->fd, &m, MSG_NOSIGNAL) < 0)
		return -errno;
	/* the helper has its own copies now */
	for (unsigned i = 0; i < r->nfds; i++) {
		close(r->fds[i]);
		r->fds[i] = -1;
	}
	r->nfds = 0;
	return 0;
}

/* Runs the queue in the caller (opts.in_process). */
static void run_in_process(struct sandbox *sb)
{
	struct sb_req *r;

	if (sb->running)
		return; /* a callback queued more: the outer call picks it up */
	sb->running++;
	while ((r = dequeue(sb))) {
		unsigned idx = 0;
		const struct sandbox_op *op = find_op(r->op, &idx);
		struct strbuf reply = {.max = r->max_reply};
		struct sandbox_request rq = {.op = r->op,
					     .data = r->data,
					     .len = r->len,
					     .fds = r->fds,
					     .nfds = r->nfds};
		int status = -EOPNOTSUPP;

		sb->st.requests++;
		if (op) {
			if (op->state_new && !sb->states[idx])
				sb->states[idx] = op->state_new();
			status = op->handle(sb->states[idx], &rq, &reply);
		}
		if (reply.err) {
			status = reply.err;
			reply.len = 0;
		}
		complete(sb, r, SANDBOX_OK, status, reply.p, reply.len);
	}
	sb->running--;
}

static void kick(struct sandbox *sb)
{
	int err;

	if (sb->o.in_process) {
		run_in_process(sb);
		return;
	}
	while (sb->head && !sb->inflight) {
		if (sb->state == SB_STARTING)
			return; /* sent once the helper says it is ready */
		if (sb->state == SB_DOWN) {
			if (now_mono_ns() < sb->unavailable_until_ns) {
				complete(sb, dequeue(sb), SANDBOX_UNAVAILABLE, 0, NULL, 0);
				continue;
			}
			err = spawn(sb);
			if (err) {
				log_warn("symbolizer helper: cannot start %s: %s", sb->exe,
					 strerror(-err));
				sb->unavailable_until_ns =
					now_mono_ns() + SB_BACKOFF_S * 1000000000ull;
				continue;
			}
			return;
		}
		sb->inflight = dequeue(sb);
		sb->st.requests++;
		err = send_request(sb, sb->inflight);
		if (err) {
			helper_died(sb, SANDBOX_CRASHED, false);
			continue;
		}
		sb->rstarted = false;
		arm(sb, sb->o.timeout_ms);
	}
}

/* Receives one datagram; false when there is nothing more to read now. */
static bool read_one(struct sandbox *sb)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SANDBOX_MAX_FDS)];
		struct cmsghdr align;
	} c;
	struct iovec iov = {sb->msg, sizeof(struct sb_hdr) + SB_CHUNK};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = c.buf,
			   .msg_controllen = sizeof(c)};
	struct sb_hdr h = {0};
	ssize_t n = recvmsg(sb->fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	struct sb_req *r = sb->inflight;
	bool bad = false;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n <= 0) {
		helper_died(sb, SANDBOX_CRASHED, true);
		return false;
	}
	/* a helper sends no descriptors: any it tries are closed and it is done */
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			int *fds = (int *)CMSG_DATA(cm);
			size_t nf = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < nf; i++)
				close(fds[i]);
			bad = true;
		}
	}
	memcpy(&h, sb->msg, sizeof(h) <= (size_t)n ? sizeof(h) : 0);
	if (bad || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < sizeof(h) ||
	    h.magic != SB_MAGIC || h.len != (size_t)n - sizeof(h)) {
		helper_died(sb, SANDBOX_CRASHED, false);
		return false;
	}
	if (sb->state == SB_STARTING) {
		struct sb_ready rd;

		if (h.op != SB_OP_READY || h.len != sizeof(rd)) {
			helper_died(sb, SANDBOX_CRASHED, false);
			return false;
		}
		memcpy(&rd, sb->msg + sizeof(h), sizeof(rd));
		sb->st.uid = rd.uid;
		sb->state = SB_READY;
		sb->early_deaths = 0;
		if (sb->timer)
			loop_timer_stop(sb->timer);
		kick(sb);
		return sb->fd >= 0;
	}
	if (!r || h.id != r->id || h.op != r->op) {
		helper_died(sb, SANDBOX_CRASHED, false);
		return false;
	}
	if (!sb->rstarted) {
		if (h.total > r->max_reply) {
			helper_died(sb, SANDBOX_CRASHED, false);
			return false;
		}
		sb->rbuf = malloc(h.total ? h.total : 1);
		if (!sb->rbuf) {
			helper_died(sb, SANDBOX_LIMIT, false);
			return false;
		}
		sb->rtotal = h.total;
		sb->rlen = 0;
		sb->rstatus = h.status;
		sb->rstarted = true;
	}
	if (h.len > sb->rtotal - sb->rlen ||
	    (!(h.flags & SB_MORE) && sb->rlen + h.len != sb->rtotal)) {
		helper_died(sb, SANDBOX_CRASHED, false);
		return false;
	}
	memcpy(sb->rbuf + sb->rlen, sb->msg + sizeof(h), h.len);
	sb->rlen += h.len;
	if (h.flags & SB_MORE)
		return true;
	{
		void *data = sb->rbuf;
		size_t len = sb->rlen;
		int status = sb->rstatus > 0 ? -EPROTO : sb->rstatus;

		sb->rbuf = NULL;
		sb->rstarted = false;
		sb->inflight = NULL;
		if (sb->timer)
			loop_timer_stop(sb->timer);
		complete(sb, r, SANDBOX_OK, status, data, len);
	}
	kick(sb);
	return sb->fd >= 0;
}

static void check_deadline(struct sandbox *sb)
{
	if (sb->state == SB_DOWN || now_mono_ns() < sb->deadline_ns)
		return;
	if (sb->state == SB_STARTING || sb->inflight) {
		helper_died(sb, SANDBOX_TIMEOUT, false);
		kick(sb);
	}
}

static void on_readable(void *ctx, int fd, uint32_t events)
{
	struct sandbox *sb = ctx;

	while (sb->fd >= 0 && read_one(sb))
		;
	check_deadline(sb);
}

static void on_timer(void *ctx, struct loop_timer *t)
{
	struct sandbox *sb = ctx;

	if (sb->fd >= 0)
		on_readable(sb, sb->fd, 0); /* an answer may be waiting */
	check_deadline(sb);
	kick(sb);
}

static int resolve_user(struct sandbox *sb, const char *user)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (geteuid() != 0 && (!user || !user[0]))
		return 0; /* an unprivileged caller's helper stays that caller */
	if (geteuid() != 0) {
		log_debug("symbolizer helper: not root, helper runs as uid %d", (int)geteuid());
		return 0;
	}
	if (user && user[0] && getpwnam_r(user, &pw, buf, sizeof(buf), &res) == 0 && res) {
		sb->uid = pw.pw_uid;
		sb->gid = pw.pw_gid;
	} else {
		/* never root: the shared unprivileged user when the helper's own is missing */
		if (user && user[0])
			log_warn("symbolizer.helper_user %s does not exist: the helper runs as "
				 "nobody",
				 user);
		if (getpwnam_r("nobody", &pw, buf, sizeof(buf), &res) == 0 && res) {
			sb->uid = pw.pw_uid;
			sb->gid = pw.pw_gid;
		} else {
			sb->uid = 65534;
			sb->gid = 65534;
		}
	}
	if (sb->uid == 0)
		return log_ret(-EINVAL, "symbolizer.helper_user %s is root", user);
	sb->setid = true;
	return 0;
}

int sandbox_new(struct sandbox **out, const struct sandbox_opts *opts)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	int err = 0;

	if (!sb)
		return -ENOMEM;
	sb->o = *opts;
	sb->fd = -1;
	sb->next_id = 1;
	if (!sb->o.timeout_ms)
		sb->o.timeout_ms = 5000;
	if (!sb->o.mem_bytes)
		sb->o.mem_bytes = 512ull << 20;
	if (!sb->o.cpu_secs)
		sb->o.cpu_secs = 120;
	if (!sb->o.max_queue)
		sb->o.max_queue = 512;
	snprintf(sb->exe, sizeof(sb->exe), "%s", opts->exe ? opts->exe : "/proc/self/exe");
	sb->o.exe = sb->exe;
	sb->o.user = NULL;
	if (sb->o.in_process) {
		sb->states = calloc(sandbox_nops ? sandbox_nops : 1, sizeof(*sb->states));
		if (!sb->states)
			err = -ENOMEM;
	} else {
		sb->msg = malloc(sizeof(struct sb_hdr) + SB_CHUNK);
		if (!sb->msg)
			err = -ENOMEM;
		if (!err)
			err = resolve_user(sb, opts->user);
		if (!err && sb->o.loop)
			err = loop_timer_new(sb->o.loop, 0, 0, on_timer, sb, &sb->timer);
		if (!err && sb->timer)
			err = loop_timer_stop(sb->timer);
	}
	if (err) {
		sandbox_free(&sb);
		return err;
	}
	*out = sb;
	return 0;
}

static void cancel_all(struct sandbox *sb)
{
	struct sb_req *r;

	if (sb->inflight) {
		r = sb->inflight;
		sb->inflight = NULL;
		complete(sb, r, SANDBOX_CANCELLED, 0, NULL, 0);
	}
	while ((r = dequeue(sb)))
		complete(sb, r, SANDBOX_CANCELLED, 0, NULL, 0);
}

void sandbox_stop(struct sandbox *sb)
{
	if (!sb)
		return;
	if (sb->state != SB_DOWN)
		kill_helper(sb, SANDBOX_CANCELLED, false);
	cancel_all(sb);
	if (sb->states) {
		for (unsigned i = 0; i < sandbox_nops; i++) {
			if (sb->states[i] && sandbox_ops[i].state_free)
				sandbox_ops[i].state_free(sb->states[i]);
			sb->states[i] = NULL;
		}
	}
	reap_zombies(sb);
}

void sandbox_free(struct sandbox **psb)
{
	struct sandbox *sb = psb ? *psb : NULL;

	if (!sb)
		return;
	sandbox_stop(sb);
	loop_timer_free(&sb->timer);
	for (unsigned i = 0; i < sb->nzombies; i++)
		waitpid(sb->zombies[i], NULL, WNOHANG);
	free(sb->states);
	free(sb->msg);
	free(sb);
	*psb = NULL;
}

int64_t sandbox_call(struct sandbox *sb, uint32_t op, const void *data, size_t len, int *fds,
		     unsigned nfds, size_t max_reply, sandbox_cb cb, void *ctx)
{
	struct sb_req *r = NULL;
	int64_t id;
	int err = 0;

	/* max_reply 0 would be an unbounded strbuf in the helper */
	if (nfds > SANDBOX_MAX_FDS || len > SANDBOX_MAX_REQUEST || op == SB_OP_READY ||
	    !max_reply) {
		err = -EINVAL;
		goto fail;
	}
	if (sb->nqueued >= sb->o.max_queue) {
		sb->st.queue_full++;
		err = -EAGAIN;
		goto fail;
	}
	r = calloc(1, sizeof(*r));
	if (!r || (len && !(r->data = malloc(len)))) {
		err = -ENOMEM;
		goto fail;
	}
	if (len)
		memcpy(r->data, data, len);
	r->len = len;
	r->op = op;
	r->id = sb->next_id++;
	r->max_reply = max_reply;
	r->cb = cb;
	r->ctx = ctx;
	for (unsigned i = 0; i < nfds; i++)
		r->fds[i] = fds[i];
	r->nfds = nfds;
	if (sb->tail)
		sb->tail->next = r;
	else
		sb->head = r;
	sb->tail = r;
	sb->nqueued++;
	id = r->id; /* in process, kick() answers and frees it at once */
	kick(sb);
	return id;
fail:
	if (r)
		free(r->data);
	free(r);
	for (unsigned i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return err;
}

static struct sb_req **find_queued(struct sandbox *sb, int64_t id)
{
	for (struct sb_req **pp = &sb->head; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id)
			return pp;
	return NULL;
}

bool sandbox_pending(const struct sandbox *sb, int64_t id)
{
	if (sb->inflight && sb->inflight->id == id)
		return true;
	for (const struct sb_req *r = sb->head; r; r = r->next)
		if (r->id == id)
			return true;
	return false;
}

void sandbox_cancel(struct sandbox *sb, int64_t id)
{
	struct sb_req **pp;

	if (sb->inflight && sb->inflight->id == id) {
		sb->inflight->cb = NULL;
		return;
	}
	pp = find_queued(sb, id);
	if (pp) {
		struct sb_req *r = *pp;

		*pp = r->next;
		if (sb->tail == r) {
			sb->tail = NULL;
			for (struct sb_req *q = sb->head; q; q = q->next)
				sb->tail = q;
		}
		sb->nqueued--;
		r->cb = NULL;
		complete(sb, r, SANDBOX_CANCELLED, 0, NULL, 0);
	}
}

/* Moves a queued request to the head: the one a caller waits for goes next. */
static void to_front(struct sandbox *sb, int64_t id)
{
	struct sb_req **pp = find_queued(sb, id), *r;

	if (!pp || *pp == sb->head)
		return;
	r = *pp;
	*pp = r->next;
	if (sb->tail == r) {
		sb->tail = NULL;
		for (struct sb_req *q = sb->head; q; q = q->next)
			sb->tail = q;
	}
	r->next = sb->head;
	sb->head = r;
	if (!sb->tail)
		sb->tail = r;
}

/* Outside the loop: waits for the helper's next message (or its deadline, or
 * end), then takes what it sent and enforces the deadline. */
static void pump(struct sandbox *sb, uint64_t end)
{
	uint64_t now = now_mono_ns(), until = MIN(end, sb->deadline_ns);
	struct pollfd p = {.fd = sb->fd, .events = POLLIN};

	if (until > now)
		poll(&p, 1, (int)((until - now + 999999) / 1000000));
	while (sb->fd >= 0 && read_one(sb))
		;
	check_deadline(sb);
}

int sandbox_wait(struct sandbox *sb, int64_t id, uint64_t max_wait_ms)
{
	uint64_t start = now_mono_ns(), end = start + max_wait_ms * 1000000ull;
	int err = 0;

	to_front(sb, id);
	kick(sb);
	while (sandbox_pending(sb, id)) {
		if (now_mono_ns() >= end) {
			err = -ETIMEDOUT;
			break;
		}
		if (sb->fd < 0) {
			kick(sb); /* down: start one (or fail the queue while unavailable) */
			if (sb->fd < 0 && sandbox_pending(sb, id)) {
				err = -ETIMEDOUT;
				break;
			}
			continue;
		}
		pump(sb, end);
		kick(sb);
	}
	{
		uint64_t waited = (now_mono_ns() - start) / 1000000;

		if (waited > sb->st.max_wait_ms)
			sb->st.max_wait_ms = waited;
	}
	return err;
}

int sandbox_start(struct sandbox *sb, uint64_t max_wait_ms)
{
	uint64_t end = max_wait_ms ? now_mono_ns() + max_wait_ms * 1000000ull : UINT64_MAX;
	int err;

	if (sb->o.in_process || sb->state == SB_READY)
		return 0;
	if (sb->state == SB_DOWN) {
		if (now_mono_ns() < sb->unavailable_until_ns)
			return -EAGAIN;
		err = spawn(sb);
		if (err)
			return err; /* the next request tries again, and backs off */
	}
	while (sb->state == SB_STARTING) {
		if (now_mono_ns() >= end)
			return -ETIMEDOUT;
		pump(sb, end);
	}
	return sb->state == SB_READY ? 0 : -EIO;
}

void sandbox_get_stats(const struct sandbox *sb, struct sandbox_stats *out)
{
	*out = sb->st;
	out->queued = sb->nqueued + (sb->inflight ? 1 : 0);
}

json_t *sandbox_stats_json(const struct sandbox *sb)
{
	struct sandbox_stats st;

	sandbox_get_stats(sb, &st);
	return json_pack("{s:b,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "sandboxed",
			 !sb->o.in_process, "pid", st.pid, "uid", (json_int_t)st.uid, "starts",
			 (json_int_t)st.starts, "requests", (json_int_t)st.requests, "answered",
			 (json_int_t)st.answered, "crashes", (json_int_t)st.crashes, "timeouts",
			 (json_int_t)st.timeouts, "limits", (json_int_t)st.limits, "unavailable",
			 (json_int_t)st.unavailable, "cancelled", (json_int_t)st.cancelled,
			 "queue_full", (json_int_t)st.queue_full, "queued", (json_int_t)st.queued,
			 "max_wait_ms", (json_int_t)st.max_wait_ms);
}

/* --- the helper's side --------------------------------------------------- */

static int send_all(int fd, uint32_t op, int64_t id, int32_t status, const char *data, size_t len);
static bool in_helper;

int sandbox_selftest(void *state, const struct sandbox_request *rq, struct strbuf *reply)
{
	struct sandbox_selftest t;

	(void)state;
	if (rq->len != sizeof(t))
		return -EINVAL;
	memcpy(&t, rq->data, sizeof(t));
	switch (t.mode) {
	case SELFTEST_WHOAMI: {
		struct sandbox_whoami *w = strbuf_extend(reply, sizeof(*w));
		char buf[64];
		int fd;

		if (!w)
			return reply->err;
		w->uid = (uint32_t)getuid();
		w->euid = (uint32_t)geteuid();
		w->gid = (uint32_t)getgid();
		fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
		w->open_errno = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
		if (rq->nfds) {
			ssize_t n = pread(rq->fds[0], buf, sizeof(buf), 0);

			w->fd_bytes = n < 0 ? -errno : (int32_t)n;
		}
		return 0;
	}
	case SELFTEST_CRASH:
		abort(); /* what a parser's failed assertion does */
	case SELFTEST_SPIN: {
		uint64_t end = now_mono_ns() + t.arg * 1000000ull;
		volatile uint64_t x = 0;

		while (now_mono_ns() < end)
			x++;
		return 0;
	}
	case SELFTEST_ALLOC: {
		char *p = malloc(t.arg);

		if (!p)
			return -ENOMEM;
		for (uint64_t i = 0; i < t.arg; i += 4096)
			p[i] = 1;
		free(p);
		return 0;
	}
	case SELFTEST_SOCKET:
		return socket(AF_INET, SOCK_STREAM, 0) < 0 ? -errno : -EEXIST;
	case SELFTEST_BAD_REPLY:
		/* an answer for no request, on the wire itself */
		if (!in_helper)
			return -EINVAL;
		return send_all(3, rq->op, 0, 0, "x", 1) ? -EIO : -EPROTO;
	case SELFTEST_ECHO:
		return strbuf_extend(reply, t.arg) ? 0 : reply->err;
	}
	return -EINVAL;
}

#if defined(__x86_64__)
#define SB_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SB_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n))
#else
#define ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n) + 4)
#endif

#define SC_LOAD_NR   BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define SC_RET(v)    BPF_STMT(BPF_RET | BPF_K, (v))
#define SC_ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), SC_RET(SECCOMP_RET_ALLOW)
#define SC_ERRNO(nr, e)                                                                            \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), SC_RET(SECCOMP_RET_ERRNO | (e))
/* allowed unless the protection argument asks for executable memory */
#define SC_NOEXEC(nr, arg)                                                                         \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 4),                                           \
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(arg)),                                   \
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),                             \
		SC_RET(SECCOMP_RET_KILL_PROCESS), SC_RET(SECCOMP_RET_ALLOW)

/* What parsing needs: memory, reading and writing descriptors it holds,
 * time, exiting. Opening anything fails (libraries that look for files by
 * name degrade instead of dying); everything else kills the helper. */
static int install_seccomp(void)
{
#ifdef SB_AUDIT_ARCH
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SB_AUDIT_ARCH, 1, 0),
		SC_RET(SECCOMP_RET_KILL_PROCESS),
		SC_LOAD_NR,
#ifdef __x86_64__
		/* x32 system calls are another numbering of the same calls */
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
		SC_RET(SECCOMP_RET_KILL_PROCESS),
#endif
		SC_ALLOW(__NR_read),
		SC_ALLOW(__NR_pread64),
		SC_ALLOW(__NR_readv),
		SC_ALLOW(__NR_write),
		SC_ALLOW(__NR_writev),
		SC_ALLOW(__NR_lseek),
		SC_ALLOW(__NR_close),
		SC_ALLOW(__NR_fstat),
		SC_ALLOW(__NR_newfstatat),
		SC_ALLOW(__NR_fcntl),
		SC_ALLOW(__NR_recvmsg),
		SC_ALLOW(__NR_sendmsg),
		SC_ALLOW(__NR_brk),
		SC_NOEXEC(__NR_mmap, 2),
		SC_NOEXEC(__NR_mprotect, 2),
		SC_ALLOW(__NR_munmap),
		SC_ALLOW(__NR_mremap),
		SC_ALLOW(__NR_madvise),
		SC_ALLOW(__NR_futex),
		SC_ALLOW(__NR_getrandom),
		SC_ALLOW(__NR_clock_gettime),
		SC_ALLOW(__NR_gettimeofday),
		SC_ALLOW(__NR_getpid),
		SC_ALLOW(__NR_gettid),
		SC_ALLOW(__NR_getuid),
		SC_ALLOW(__NR_geteuid),
		SC_ALLOW(__NR_getgid),
		SC_ALLOW(__NR_getegid),
		SC_ALLOW(__NR_sysinfo), /* glibc's qsort sizes its buffer by it */
		SC_ALLOW(__NR_rt_sigprocmask),
		SC_ALLOW(__NR_rt_sigreturn),
		SC_ALLOW(__NR_exit),
		SC_ALLOW(__NR_exit_group),
#ifdef SB_ASAN
		/* the sanitizer's report and abort */
		SC_ALLOW(__NR_rt_sigaction),
		SC_ALLOW(__NR_sigaltstack),
		SC_ALLOW(__NR_sched_yield),
		SC_ALLOW(__NR_prctl),
		SC_ALLOW(__NR_tgkill),
#endif
	/* libdw asks where its file is (/proc/self/fd/N) to find alt files */
#ifdef __NR_readlink
		SC_ERRNO(__NR_readlink, EACCES),
#endif
		SC_ERRNO(__NR_readlinkat, EACCES),
#ifdef __NR_open
		SC_ERRNO(__NR_open, EACCES),
#endif
		SC_ERRNO(__NR_openat, EACCES),
#ifdef __NR_openat2
		SC_ERRNO(__NR_openat2, EACCES),
#endif
		SC_ERRNO(__NR_ioctl, ENOTTY),
		SC_RET(SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = {.len = ARRAY_SIZE(f), .filter = f};

	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0))
		return -errno;
	return 0;
#else
	return -EOPNOTSUPP;
#endif
}

static uint64_t vsize_now(void)
{
	char buf[128] = "";
	unsigned long long pages = 0;
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		if (n > 0)
			buf[n] = '\0';
		close(fd);
	}
	if (sscanf(buf, "%llu", &pages) != 1)
		return 0;
	return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Everything a parser could use against the node, taken away in order. */
static int enter_sandbox(long uid, long gid, uint64_t mem, uint64_t cpu, struct sb_ready *rd)
{
	struct __user_cap_header_struct caph = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct capd[2] = {{0}};
	struct rlimit rl;
	int fd;

	/* the agent gone, the helper has no reason to live */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() == 1)
		return -ESRCH;
	/* under memory pressure in the agent's cgroup, this one goes first */
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1000", 4) < 0)
			log_debug("oom_score_adj: %s", strerror(errno));
		close(fd);
	}
	if (syscall(SYS_close_range, 4, ~0u, 0) != 0)
		for (int i = 4; i < 1024; i++)
			close(i);
	if (uid >= 0) {
		if (setgroups(0, NULL) || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) ||
		    setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid))
			return -errno;
	}
	if (getuid() == 0 || geteuid() == 0)
		return -EPERM; /* never parse as root */
	/* no capability left in any set (setresuid cleared them from root; a
	 * binary with file capabilities would still hold some) */
	if (syscall(SYS_capset, &caph, capd))
		return -errno;
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (prctl(PR_SET_DUMPABLE, 0))
		return -errno;
	rd->uid = (uint32_t)getuid();
	rd->gid = (uint32_t)getgid();
#ifndef SB_ASAN
	rl.rlim_cur = rl.rlim_max = vsize_now() + mem;
	if (setrlimit(RLIMIT_AS, &rl))
		return -errno;
	rd->as_limit = rl.rlim_cur;
#else
	(void)mem;
	(void)vsize_now;
#endif
	rl.rlim_cur = cpu;
	rl.rlim_max = cpu + 5;
	if (setrlimit(RLIMIT_CPU, &rl))
		return -errno;
	rd->cpu_limit = cpu;
	rl.rlim_cur = rl.rlim_max = 0;
	setrlimit(RLIMIT_CORE, &rl);
	setrlimit(RLIMIT_FSIZE, &rl);
	setrlimit(RLIMIT_MEMLOCK, &rl);
	rl.rlim_cur = rl.rlim_max = 4 + 2 * SANDBOX_MAX_FDS;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
#ifndef SB_ASAN
	/* what the helper would write to the agent's journal stream, it cannot */
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
#endif
	return install_seccomp();
}

static int send_all(int fd, uint32_t op, int64_t id, int32_t status, const char *data, size_t len)
{
	size_t off = 0;

	do {
		size_t n = MIN(len - off, (size_t)SB_CHUNK);
		struct sb_hdr h = {.magic = SB_MAGIC,
				   .op = op,
				   .id = id,
				   .status = status,
				   .flags = off + n < len ? SB_MORE : 0,
				   .total = len,
				   .len = (uint32_t)n};
		struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)(data + off), n}};
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = n ? 2 : 1};

		if (sendmsg(fd, &m, MSG_NOSIGNAL) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += n;
	} while (off < len);
	return 0;
}

static int serve(int fd)
{
	void *states[64] = {0};
	char *msg = malloc(sizeof(struct sb_hdr) + SANDBOX_MAX_REQUEST);

	if (!msg || sandbox_nops > ARRAY_SIZE(states))
		return 70;
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * SANDBOX_MAX_FDS)];
			struct cmsghdr align;
		} c;
		struct iovec iov = {msg, sizeof(struct sb_hdr) + SANDBOX_MAX_REQUEST};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = c.buf,
				   .msg_controllen = sizeof(c)};
		int fds[SANDBOX_MAX_FDS];
		unsigned nfds = 0, idx = 0;
		struct sb_hdr h;
		struct strbuf reply = {0};
		const struct sandbox_op *op;
		int status;
		ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0; /* the agent closed its end */
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int f;

				memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (nfds < SANDBOX_MAX_FDS)
					fds[nfds++] = f;
				else
					close(f);
			}
		}
		if ((size_t)n < sizeof(h))
			return 71;
		memcpy(&h, msg, sizeof(h));
		if (h.magic != SB_MAGIC || h.len != (size_t)n - sizeof(h))
			return 71;
		op = find_op(h.op, &idx);
		reply.max = h.max_reply;
		if (!op) {
			status = -EOPNOTSUPP;
		} else if (m.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
			status = -EMSGSIZE;
		} else {
			struct sandbox_request rq = {.op = h.op,
						     .data = msg + sizeof(h),
						     .len = h.len,
						     .fds = fds,
						     .nfds = nfds};

			if (op->state_new && !states[idx])
				states[idx] = op->state_new();
			status = op->handle(states[idx], &rq, &reply);
		}
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		if (reply.err) {
			status = reply.err;
			reply.len = 0;
		}
		if (status > 0)
			status = -EPROTO;
		if (send_all(fd, h.op, h.id, status, reply.p, reply.len))
			return 0;
		strbuf_free(&reply);
	}
}

/* glibc hands constructors main's arguments: any binary with the sandbox in
 * it (the agent, and the tests, which exercise the same helper) becomes the
 * helper when executed as one, before main() runs. */
__attribute__((constructor)) static void sandbox_helper_ctor(int argc, char **argv)
{
	sandbox_helper_main_if_asked(argc, argv);
}

void sandbox_helper_main_if_asked(int argc, char **argv)
{
	struct sb_ready rd = {0};
	struct stat st;
	int err;

	if (argc < 2 || strcmp(argv[1], SANDBOX_ARG))
		return;
	if (argc != 6 || fstat(3, &st) || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "%s is started by the agent, not by hand\n", SANDBOX_ARG);
		_exit(64);
	}
	err = enter_sandbox(strtol(argv[2], NULL, 10), strtol(argv[3], NULL, 10),
			    strtoull(argv[4], NULL, 10), strtoull(argv[5], NULL, 10), &rd);
	if (err) {
		/* no ready message: the agent counts a helper that could not start */
		fprintf(stderr, "autotrace sandbox helper: %s\n", strerror(-err));
		_exit(65);
	}
	in_helper = true;
	if (send_all(3, SB_OP_READY, 0, 0, (const char *)&rd, sizeof(rd)))
		_exit(0);
	_exit(serve(3));
}
