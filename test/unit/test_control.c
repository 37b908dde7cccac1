// SPDX-License-Identifier: GPL-2.0-only
/* The control socket server on a real event loop and real sockets (no root:
 * the agent also serves its own uid): framing, validation, limits. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/control.h"
#include "base/loop.h"
#include "base/util.h"

struct fixture {
	const char *dir;
	char path[200];
	struct loop *loop;
	struct control *ctl;
	unsigned echo_calls;
};

static int cmd_echo(void *ctx, const struct control_call *call, json_t **result,
		    struct control_error *err)
{
	struct fixture *f = ctx;

	f->echo_calls++;
	if (json_object_get(call->args, "fail")) {
		control_error_set(err, "busy", "asked to fail");
		return -EBUSY;
	}
	*result = json_pack("{s:O,s:i}", "args", call->args, "uid", (int)call->uid);
	return 0;
}

static int cmd_big(void *ctx, const struct control_call *call, json_t **result,
		   struct control_error *err)
{
	char *s = malloc(8192);

	memset(s, 'x', 8191);
	s[8191] = '\0';
	*result = json_pack("{s:s}", "blob", s);
	free(s);
	return 0;
}

static const struct control_arg echo_args[] = {
	{"name", CARG_STRING, 1, 8},  {"n", CARG_UINT, 1, 10},	 {"flag", CARG_BOOL, 0, 0},
	{"list", CARG_STRLIST, 1, 2}, {"fail", CARG_BOOL, 0, 0}, {NULL},
};

static const struct control_command commands[] = {
	{"echo", echo_args, cmd_echo},
	{"big", NULL, cmd_big},
	{NULL},
};

static int setup_opts(void **state, unsigned max_clients, uint64_t idle_ms, size_t max_reply)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct control_opts o;

	f->dir = test_tmpdir(0);
	snprintf(f->path, sizeof(f->path), "%s/run/ctl/control.sock", f->dir);
	assert_int_equal(loop_new(&f->loop), 0);
	o = (struct control_opts){.loop = f->loop,
				  .path = f->path,
				  .commands = commands,
				  .ctx = f,
				  .max_clients = max_clients,
				  .max_request = 256,
				  .max_reply = max_reply,
				  .idle_ms = idle_ms};
	assert_int_equal(control_new(&f->ctl, &o), 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_opts(state, 4, 300, 0);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	control_free(&f->ctl);
	loop_free(&f->loop);
	test_rmtree(f->dir);
	free(f);
	return 0;
}

static void pump(struct fixture *f, unsigned ms)
{
	uint64_t end = now_mono_ns() / 1000000 + ms;

	while (now_mono_ns() / 1000000 < end)
		loop_once(f->loop, 5);
}

static int connect_to(struct fixture *f)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	pump(f, 10);
	return fd;
}

/* Reads one reply line while running the loop; NULL on EOF or after 2 s. */
static json_t *reply(struct fixture *f, int fd, bool *eof)
{
	static char buf[65536];
	static size_t len;
	uint64_t end = now_mono_ns() / 1000000 + 2000;

	*eof = false;
	while (now_mono_ns() / 1000000 < end) {
		char *nl = memchr(buf, '\n', len);
		ssize_t n;

		if (nl) {
			json_t *j = json_loadb(buf, (size_t)(nl - buf), 0, NULL);

			len -= (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, len);
			return j;
		}
		loop_once(f->loop, 5);
		n = recv(fd, buf + len, sizeof(buf) - len, MSG_DONTWAIT);
		if (n == 0) {
			*eof = true;
			len = 0;
			return NULL;
		}
		if (n > 0)
			len += (size_t)n;
	}
	len = 0;
	return NULL;
}

static json_t *call(struct fixture *f, int fd, const char *line)
{
	bool eof;

	assert_int_equal(send(fd, line, strlen(line), MSG_NOSIGNAL), (ssize_t)strlen(line));
	return reply(f, fd, &eof);
}

static void assert_code(json_t *r, const char *code, const char *words)
{
	json_t *e = json_object_get(r, "error");

	assert_non_null(r);
	assert_true(json_is_false(json_object_get(r, "ok")));
	assert_string_equal(json_string_value(json_object_get(e, "code")), code);
	if (words && !strstr(json_string_value(json_object_get(e, "message")), words)) {
		fprintf(stderr, "message: %s\n", json_string_value(json_object_get(e, "message")));
		fail();
	}
	json_decref(r);
}

static void test_modes(void **state)
{
	struct fixture *f = *state;
	char dir[256];
	struct stat st;

	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(dir, sizeof(dir), "%s/run/ctl", f->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
}

static void test_ok_and_id(void **state)
{
	struct fixture *f = *state;
	int fd = connect_to(f);
	json_t *r = call(f, fd,
			 "{\"id\":\"a\",\"command\":\"echo\",\"args\":{\"name\":\"x\","
			 "\"n\":3,\"flag\":true,\"list\":[\"p\"]}}\r\n");

	assert_non_null(r);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_string_equal(json_string_value(json_object_get(r, "id")), "a");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_object_get(r, "result"), "args"), "n")),
			 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "uid")),
			 (int)geteuid());
	json_decref(r);
	/* handler errors carry the handler's code */
	assert_code(call(f, fd, "{\"command\":\"echo\",\"args\":{\"fail\":true}}\n"), "busy",
		    "asked to fail");
	close(fd);
}

static void test_validation(void **state)
{
	static const struct {
		const char *line, *code, *words;
	} cases[] = {
		{"nope\n", "invalid_json", "column"},
		{"[]\n", "invalid_request", "object"},
		{"{\"command\":\"echo\",\"x\":1}\n", "invalid_request", "unknown field 'x'"},
		{"{\"command\":\"zap\"}\n", "unknown_command", "echo, big"},
		{"{}\n", "invalid_request", "command"},
		{"{\"command\":\"echo\",\"args\":{\"zz\":1}}\n", "invalid_request",
		 "allowed: name, n, flag, list, fail"},
		{"{\"command\":\"echo\",\"args\":{\"n\":11}}\n", "invalid_request",
		 "out of range [1, 10]"},
		{"{\"command\":\"echo\",\"args\":{\"n\":-1}}\n", "invalid_request", "out of range"},
		{"{\"command\":\"echo\",\"args\":{\"n\":1.5}}\n", "invalid_request", "integer"},
		{"{\"command\":\"echo\",\"args\":{\"name\":\"123456789\"}}\n", "invalid_request",
		 "1 to 8 characters"},
		/* NUL inside strings is refused by the parser already */
		{"{\"command\":\"echo\",\"args\":{\"name\":\"a\\u0000b\"}}\n", "invalid_json",
		 "NUL"},
		{"{\"command\":\"echo\",\"args\":{\"flag\":1}}\n", "invalid_request",
		 "true or false"},
		{"{\"command\":\"echo\",\"args\":{\"list\":[\"a\",\"b\",\"c\"]}}\n",
		 "invalid_request", "1 to 2 entries"},
		{"{\"command\":\"echo\",\"args\":{\"list\":[1]}}\n", "invalid_request", "list[0]"},
		{"{\"command\":\"echo\",\"args\":null}\n", "invalid_request", "args"},
		{"{\"id\":[1],\"command\":\"echo\"}\n", "invalid_request", "id"},
		{"{\"command\":\"echo\",\"command\":\"echo\"}\n", "invalid_json", "duplicate"},
	};
	struct fixture *f = *state;
	int fd = connect_to(f);

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_code(call(f, fd, cases[i].line), cases[i].code, cases[i].words);
	/* nothing reached the handler */
	assert_int_equal(f->echo_calls, 0);
	close(fd);
}

static void test_line_too_long_closes(void **state)
{
	struct fixture *f = *state;
	int fd = connect_to(f);
	char big[300];
	bool eof;

	memset(big, ' ', sizeof(big));
	assert_int_equal(send(fd, big, sizeof(big), MSG_NOSIGNAL), (ssize_t)sizeof(big));
	assert_code(reply(f, fd, &eof), "line_too_long", "256 bytes");
	assert_null(reply(f, fd, &eof));
	assert_true(eof);
	close(fd);
}

static void test_blank_lines_and_pipelining(void **state)
{
	struct fixture *f = *state;
	int fd = connect_to(f);
	const char *lines =
		"\n\r\n{\"id\":1,\"command\":\"echo\"}\n{\"id\":2,\"command\":\"echo\"}\n";
	bool eof;

	assert_int_equal(send(fd, lines, strlen(lines), 0), (ssize_t)strlen(lines));
	for (int want = 1; want <= 2; want++) {
		json_t *r = reply(f, fd, &eof);

		assert_non_null(r);
		assert_int_equal(json_integer_value(json_object_get(r, "id")), want);
		json_decref(r);
	}
	close(fd);
}

static void test_idle_timeout(void **state)
{
	struct fixture *f = *state;
	int fd = connect_to(f);
	bool eof;

	/* a partial request is not progress enough to stay forever */
	assert_int_equal(send(fd, "{\"comm", 6, 0), 6);
	pump(f, 1500); /* idle 300 ms, swept every second */
	assert_code(reply(f, fd, &eof), "idle_timeout", "300ms");
	assert_null(reply(f, fd, &eof));
	assert_true(eof);
	close(fd);
}

static void test_max_clients(void **state)
{
	struct fixture *f = *state;
	int fds[4], extra;
	json_t *st;
	bool eof;

	for (int i = 0; i < 4; i++)
		fds[i] = connect_to(f);
	extra = connect_to(f);
	assert_code(reply(f, extra, &eof), "too_many_clients", NULL);
	close(extra);
	/* a client that hung up frees its place at once */
	close(fds[0]);
	fds[0] = connect_to(f);
	json_decref(call(f, fds[0], "{\"command\":\"echo\"}\n"));
	st = control_stats(f->ctl);
	assert_int_equal(json_integer_value(json_object_get(st, "rejected_full")), 1);
	assert_int_equal(json_integer_value(json_object_get(st, "clients")), 4);
	json_decref(st);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
}

static void test_reply_too_large(void **state)
{
	struct fixture *f = *state;
	int fd = connect_to(f);

	assert_code(call(f, fd, "{\"command\":\"big\"}\n"), "reply_too_large", "limit 4096");
	close(fd);
}

static void test_stale_and_foreign_files(void **state)
{
	struct fixture *f = *state;
	struct control *other = NULL;
	struct control_opts o = {.loop = f->loop, .path = f->path, .commands = commands, .ctx = f};
	char path[256];
	int fd;

	/* someone listens: refused, and the live socket is left alone */
	assert_int_equal(control_new(&other, &o), -EADDRINUSE);
	assert_int_equal(access(f->path, F_OK), 0);
	/* a stale socket (nobody listening) is replaced */
	snprintf(path, sizeof(path), "%s/stale.sock", f->dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	{
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	close(fd);
	o.path = path;
	assert_int_equal(control_new(&other, &o), 0);
	control_free(&other);
	assert_int_equal(access(path, F_OK), -1);
	/* a regular file is never removed */
	test_write_file(f->dir, "file.sock", "data", 0600);
	snprintf(path, sizeof(path), "%s/file.sock", f->dir);
	assert_int_equal(control_new(&other, &o), -EEXIST);
	assert_int_equal(access(path, F_OK), 0);
	/* a directory others may write to is refused */
	snprintf(path, sizeof(path), "%s/open", f->dir);
	mkdir(path, 0777);
	chmod(path, 0777);
	strcat(path, "/c.sock");
	assert_int_equal(control_new(&other, &o), -EPERM);
}

static int setup_small_reply(void **state)
{
	return setup_opts(state, 4, 300, 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ok_and_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_too_long_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blank_lines_and_pipelining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_too_large, setup_small_reply, teardown),
		cmocka_unit_test_setup_teardown(test_stale_and_foreign_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
