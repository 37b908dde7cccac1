// SPDX-License-Identifier: GPL-2.0-only
/* The sandboxed helper, for real: it is another user with no capability, no
 * new privileges and a seccomp filter (opening a file fails, a forbidden
 * call kills it); it reads only the descriptors it is given; a crash, a
 * deadline overrun, its CPU limit or a broken answer cost one request and
 * the next one gets a fresh helper; out of memory is an error, not a death;
 * from the loop nothing blocks. Root: the helper changes user. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/loop.h"
#include "base/sandbox.h"
#include "base/unwind_remote.h"
#include "base/util.h"

struct result {
	bool done;
	enum sandbox_fail fail;
	int status;
	size_t len;
	char data[256];
};

static void on_reply(void *ctx, struct sandbox_reply *r)
{
	struct result *res = ctx;

	res->done = true;
	res->fail = r->fail;
	res->status = r->status;
	res->len = r->len;
	if (r->data)
		memcpy(res->data, r->data, r->len < sizeof(res->data) ? r->len : sizeof(res->data));
}

static struct sandbox *new_sb(struct loop *loop, uint64_t timeout_ms, uint64_t cpu_secs)
{
	struct sandbox_opts o = {.loop = loop,
				 .user = "nobody",
				 .timeout_ms = timeout_ms,
				 .cpu_secs = cpu_secs,
				 .mem_bytes = 64ull << 20};
	struct sandbox *sb = NULL;

	assert_int_equal(sandbox_new(&sb, &o), 0);
	return sb;
}

static int64_t selftest(struct sandbox *sb, uint32_t mode, uint64_t arg, int *fd,
			struct result *res)
{
	struct sandbox_selftest t = {.mode = mode, .arg = arg};

	memset(res, 0, sizeof(*res));
	return sandbox_call(sb, SANDBOX_OP_SELFTEST, &t, sizeof(t), fd, fd ? 1 : 0, 4096, on_reply,
			    res);
}

static void run(struct sandbox *sb, uint32_t mode, uint64_t arg, struct result *res)
{
	int64_t id = selftest(sb, mode, arg, NULL, res);

	assert_true(id > 0);
	assert_int_equal(sandbox_wait(sb, id, 30000), 0);
	assert_true(res->done);
}

/* "Uid:\t65534\t..." etc. from the helper's /proc/PID/status */
static void status_field(int pid, const char *key, char *out, size_t len)
{
	char path[64], *text = NULL, *p;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	assert_int_equal(read_file(path, 65536, &text, NULL), 0);
	p = strstr(text, key);
	assert_non_null(p);
	p += strlen(key);
	while (*p == '\t' || *p == ' ')
		p++;
	snprintf(out, len, "%.*s", (int)strcspn(p, "\n"), p);
	free(text);
}

static void test_helper_is_sandboxed(void **state)
{
	struct sandbox *sb = new_sb(NULL, 5000, 60);
	struct sandbox_stats st;
	struct sandbox_whoami w;
	struct result res;
	char v[128];
	int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	int64_t id;

	assert_true(fd >= 0);
	id = selftest(sb, SELFTEST_WHOAMI, 0, &fd, &res);
	assert_int_equal(sandbox_wait(sb, id, 10000), 0);
	assert_int_equal(res.fail, SANDBOX_OK);
	assert_int_equal(res.len, sizeof(w));
	memcpy(&w, res.data, sizeof(w));
	assert_int_not_equal(w.uid, 0);
	assert_int_not_equal(w.euid, 0);
	assert_int_equal(w.open_errno, EACCES); /* the filter: no opening anything */
	assert_true(w.fd_bytes > 0);		/* but what it is given, it reads */
	sandbox_get_stats(sb, &st);
	assert_true(st.pid > 0);
	assert_int_equal(st.uid, w.uid);
	status_field(st.pid, "CapEff:", v, sizeof(v));
	assert_string_equal(v, "0000000000000000");
	status_field(st.pid, "CapPrm:", v, sizeof(v));
	assert_string_equal(v, "0000000000000000");
	status_field(st.pid, "NoNewPrivs:", v, sizeof(v));
	assert_string_equal(v, "1");
	status_field(st.pid, "Seccomp:", v, sizeof(v));
	assert_string_equal(v, "2");
	sandbox_free(&sb);
}

static void test_crash_costs_one_request(void **state)
{
	struct sandbox *sb = new_sb(NULL, 5000, 60);
	struct result a, b, c;
	struct sandbox_stats st;
	int64_t ia = selftest(sb, SELFTEST_ECHO, 8, NULL, &a);
	int64_t ib = selftest(sb, SELFTEST_CRASH, 0, NULL, &b);
	int64_t ic = selftest(sb, SELFTEST_ECHO, 16, NULL, &c);

	/* in order (waiting for one moves it first) */
	assert_int_equal(sandbox_wait(sb, ia, 20000), 0);
	assert_int_equal(sandbox_wait(sb, ib, 20000), 0);
	assert_int_equal(sandbox_wait(sb, ic, 20000), 0);
	assert_int_equal(a.fail, SANDBOX_OK);
	assert_int_equal(a.len, 8);
	assert_int_equal(b.fail, SANDBOX_CRASHED);
	assert_int_equal(c.fail, SANDBOX_OK);
	assert_int_equal(c.len, 16);
	sandbox_get_stats(sb, &st);
	assert_int_equal(st.crashes, 1);
	assert_int_equal(st.starts, 2);
	sandbox_free(&sb);
}

static void test_forbidden_call_kills_it(void **state)
{
	struct sandbox *sb = new_sb(NULL, 5000, 60);
	struct result res;

	run(sb, SELFTEST_SOCKET, 0, &res);
	assert_int_equal(res.fail, SANDBOX_CRASHED);
	run(sb, SELFTEST_ECHO, 4, &res);
	assert_int_equal(res.fail, SANDBOX_OK);
	sandbox_free(&sb);
}

static void test_deadline(void **state)
{
	struct sandbox *sb = new_sb(NULL, 300, 60);
	struct sandbox_stats st;
	struct result res;
	uint64_t t0 = now_mono_ns();

	run(sb, SELFTEST_SPIN, 20000, &res);
	assert_int_equal(res.fail, SANDBOX_TIMEOUT);
	/* the deadline, not the 20 s the request wanted (start-up included, which
	 * has a deadline of its own: seconds under an emulated CPU) */
	assert_true(now_mono_ns() - t0 < 12000000000ull);
	run(sb, SELFTEST_ECHO, 4, &res);
	assert_int_equal(res.fail, SANDBOX_OK);
	sandbox_get_stats(sb, &st);
	assert_int_equal(st.timeouts, 1);
	sandbox_free(&sb);
}

static void test_cpu_limit(void **state)
{
	struct sandbox *sb = new_sb(NULL, 20000, 1);
	struct result res;

	run(sb, SELFTEST_SPIN, 8000, &res);
	assert_int_equal(res.fail, SANDBOX_LIMIT);
	run(sb, SELFTEST_ECHO, 4, &res);
	assert_int_equal(res.fail, SANDBOX_OK);
	sandbox_free(&sb);
}

static void test_memory_limit(void **state)
{
	struct sandbox *sb = new_sb(NULL, 20000, 60);
	struct sandbox_stats st;
	struct result res;

	run(sb, SELFTEST_ALLOC, 16ull << 20, &res); /* within its 64 MiB */
	assert_int_equal(res.fail, SANDBOX_OK);
	assert_int_equal(res.status, 0);
	run(sb, SELFTEST_ALLOC, 1ull << 30, &res); /* past it: an error, not a death */
	assert_int_equal(res.fail, SANDBOX_OK);
	assert_int_equal(res.status, -ENOMEM);
	sandbox_get_stats(sb, &st);
	assert_int_equal(st.limits, 1);
	assert_int_equal(st.starts, 1);
	sandbox_free(&sb);
}

static void test_broken_answer(void **state)
{
	struct sandbox *sb = new_sb(NULL, 5000, 60);
	struct result res;

	run(sb, SELFTEST_BAD_REPLY, 0, &res);
	assert_int_equal(res.fail, SANDBOX_CRASHED);
	/* more than the caller takes */
	{
		struct sandbox_selftest t = {.mode = SELFTEST_ECHO, .arg = 100000};
		int64_t id;

		memset(&res, 0, sizeof(res));
		id = sandbox_call(sb, SANDBOX_OP_SELFTEST, &t, sizeof(t), NULL, 0, 1000, on_reply,
				  &res);
		assert_int_equal(sandbox_wait(sb, id, 10000), 0);
		assert_int_not_equal(res.fail == SANDBOX_OK && res.status == 0, true);
	}
	/* a large answer comes in several datagrams */
	{
		struct sandbox_selftest t = {.mode = SELFTEST_ECHO, .arg = 100000};
		int64_t id;

		memset(&res, 0, sizeof(res));
		id = sandbox_call(sb, SANDBOX_OP_SELFTEST, &t, sizeof(t), NULL, 0, 100000, on_reply,
				  &res);
		assert_int_equal(sandbox_wait(sb, id, 10000), 0);
		assert_int_equal(res.fail, SANDBOX_OK);
		assert_int_equal(res.status, 0);
		assert_int_equal(res.len, 100000);
	}
	sandbox_free(&sb);
}

/* From the loop: calls return at once while the helper works; answers and
 * the deadline arrive as events. */
static void test_loop_never_blocks(void **state)
{
	struct loop *loop = NULL;
	struct sandbox *sb;
	struct result slow, fast;
	uint64_t t0;

	assert_int_equal(loop_new(&loop), 0);
	sb = new_sb(loop, 400, 60);
	t0 = now_mono_ns();
	assert_true(selftest(sb, SELFTEST_SPIN, 5000, NULL, &slow) > 0);
	assert_true(selftest(sb, SELFTEST_ECHO, 4, NULL, &fast) > 0);
	assert_true(now_mono_ns() - t0 < 200000000ull); /* queued, not waited for */
	while (!fast.done && now_mono_ns() - t0 < 30000000000ull)
		loop_once(loop, 100);
	assert_true(slow.done);
	assert_int_equal(slow.fail, SANDBOX_TIMEOUT);
	assert_true(fast.done);
	assert_int_equal(fast.fail, SANDBOX_OK);
	sandbox_free(&sb);
	loop_free(&loop);
}

static void test_stop_cancels(void **state)
{
	struct sandbox *sb = new_sb(NULL, 5000, 60);
	struct result a, b;
	struct sandbox_stats st;

	assert_true(selftest(sb, SELFTEST_ECHO, 4, NULL, &a) > 0);
	assert_true(selftest(sb, SELFTEST_ECHO, 4, NULL, &b) > 0);
	sandbox_stop(sb);
	assert_true(a.done && b.done);
	assert_int_equal(a.fail, SANDBOX_CANCELLED);
	sandbox_get_stats(sb, &st);
	assert_int_equal(st.pid, 0);
	run(sb, SELFTEST_ECHO, 4, &a); /* and it comes back */
	assert_int_equal(a.fail, SANDBOX_OK);
	sandbox_free(&sb);
}

/* Unwinding waits for the helper from the loop: a batch gives up at its
 * bound (here 300 ms) even when the helper's deadline is far longer, and
 * says how many stacks it gave up. */
static void test_unwind_batch_wait_bounded(void **state)
{
	struct sandbox *sb = new_sb(NULL, 5000, 60);
	struct unwinder_opts uo = {.cache_bytes = 8ull << 20};
	struct unwind_remote *r = NULL;
	struct unwind_remote_item items[3];
	uint64_t pcs[3][8];
	uint8_t stack[64] = {0};
	struct sandbox_stats st;
	struct result busy;
	int64_t spin;
	uint64_t t0, waited_ms;
	const char *slow = getenv("AUTOTRACE_TEST_SLOWDOWN");

	assert_int_equal(unwind_remote_new(&r, sb, &uo, 5000, 300), 0);
	assert_int_equal(sandbox_start(sb, 0), 0);
	sandbox_get_stats(sb, &st);
	assert_true(st.pid > 0 && st.starts == 1);
	assert_int_equal(sandbox_start(sb, 0), 0); /* running: nothing to do */
	/* the helper busy for 3 s (sent: waited for a moment), so the batch's
	 * request can only queue behind it */
	spin = selftest(sb, SELFTEST_SPIN, 3000, NULL, &busy);
	assert_true(spin > 0);
	assert_int_equal(sandbox_wait(sb, spin, 50), -ETIMEDOUT);
	memset(items, 0, sizeof(items));
	for (unsigned i = 0; i < 3; i++)
		items[i] = (struct unwind_remote_item){
			.tgid = getpid(),
			.gen = 1,
			.in = {.stack = stack, .stack_len = sizeof(stack)},
			.pcs = pcs[i],
			.max = 8};
	t0 = now_mono_ns();
	assert_int_equal(unwind_remote_batch(r, items, 3, &(struct unwind_remote_files){0}), 0);
	waited_ms = (now_mono_ns() - t0) / 1000000;
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(items[i].err, -ETIMEDOUT);
	assert_int_equal(unwind_remote_cut_short(r), 3);
	assert_true(waited_ms >= 250 && waited_ms < 2000ull * (slow ? (unsigned)atoi(slow) : 1u));
	assert_false(busy.done);
	sandbox_get_stats(sb, &st);
	assert_int_equal(st.starts, 1);
	unwind_remote_free(&r);
	sandbox_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_helper_is_sandboxed),
		cmocka_unit_test(test_crash_costs_one_request),
		cmocka_unit_test(test_forbidden_call_kills_it),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_cpu_limit),
		cmocka_unit_test(test_memory_limit),
		cmocka_unit_test(test_broken_answer),
		cmocka_unit_test(test_loop_never_blocks),
		cmocka_unit_test(test_unwind_batch_wait_bounded),
		cmocka_unit_test(test_stop_cancels),
	};

	require_root_or_exit("bpf/sandbox");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
