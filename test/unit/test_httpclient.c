// SPDX-License-Identifier: GPL-2.0-only
/* The HTTP client on the event loop, against a small server on loopback
 * driven by the same loop: the request goes out as asked, the answer comes
 * back through the callback, and failures are told apart (refused, silent,
 * oversized). */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/loop.h"
#include "base/util.h"
#include "storage/httpclient.h"

/* A one-connection HTTP server: reads the request, answers with `reply`
 * (or never, when reply is NULL). */
struct server {
	struct loop *loop;
	int lfd, cfd;
	uint16_t port;
	char request[8192];
	size_t request_len;
	const char *reply;
	bool answered;
};

static void on_client(void *ctx, int fd, uint32_t events)
{
	struct server *sv = ctx;
	ssize_t n =
		read(fd, sv->request + sv->request_len, sizeof(sv->request) - 1 - sv->request_len);

	if (n > 0) {
		sv->request_len += (size_t)n;
		sv->request[sv->request_len] = '\0';
	}
	if (n <= 0 || (events & EPOLLHUP)) {
		loop_del_fd(sv->loop, fd);
		close(fd);
		sv->cfd = -1;
		return;
	}
	/* headers complete, and a body as long as Content-Length says */
	{
		const char *end = strstr(sv->request, "\r\n\r\n"), *cl;
		size_t want = 0;

		if (!end)
			return;
		cl = strcasestr(sv->request, "Content-Length:");
		if (cl && cl < end)
			want = strtoul(cl + 15, NULL, 10);
		if ((size_t)(sv->request + sv->request_len - (end + 4)) < want)
			return;
	}
	if (sv->reply && !sv->answered) {
		assert_int_equal(write(fd, sv->reply, strlen(sv->reply)),
				 (ssize_t)strlen(sv->reply));
		sv->answered = true;
	}
}

static void on_accept(void *ctx, int fd, uint32_t events)
{
	struct server *sv = ctx;
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	(void)events;
	if (c < 0)
		return;
	sv->cfd = c;
	assert_int_equal(loop_add_fd(sv->loop, c, EPOLLIN, on_client, sv), 0);
}

static void server_start(struct server *sv, struct loop *loop, const char *reply)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	memset(sv, 0, sizeof(*sv));
	sv->loop = loop;
	sv->cfd = -1;
	sv->reply = reply;
	sv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(sv->lfd >= 0);
	assert_int_equal(bind(sv->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(sv->lfd, 4), 0);
	assert_int_equal(getsockname(sv->lfd, (struct sockaddr *)&a, &len), 0);
	sv->port = ntohs(a.sin_port);
	assert_int_equal(loop_add_fd(loop, sv->lfd, EPOLLIN, on_accept, sv), 0);
}

static void server_stop(struct server *sv)
{
	if (sv->cfd >= 0) {
		loop_del_fd(sv->loop, sv->cfd);
		close(sv->cfd);
	}
	loop_del_fd(sv->loop, sv->lfd);
	close(sv->lfd);
}

struct outcome {
	bool done;
	enum http_failure failure;
	long status;
	char body[256];
	size_t len, sent;
};

static void on_done(void *ctx, const struct http_answer *a)
{
	struct outcome *o = ctx;

	o->done = true;
	o->failure = a->failure;
	o->status = a->status;
	o->len = a->len;
	o->sent = a->sent_bytes;
	snprintf(o->body, sizeof(o->body), "%s", a->body);
}

/* Runs the loop until the request is done or 5 s passed. */
static void run_until_done(struct loop *loop, struct outcome *o)
{
	uint64_t end = now_mono_ns() + 5000000000ull;

	while (!o->done && now_mono_ns() < end)
		loop_once(loop, 50);
}

static char *dup_str(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

static void test_request_and_answer(void **state)
{
	static const char reply[] = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
				    "Content-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}";
	struct loop *loop;
	struct http_client *c;
	struct server sv;
	struct outcome o = {0};
	char url[64];
	struct http_request r = {
		.method = "PUT",
		.url = url,
		.content_type = "application/json",
		.headers = {"Accept: application/json", "X-Test: yes"},
		.body = dup_str("{\"doc\":1}"),
		.len = 9,
		.username = "elastic",
		.password = "s3cret",
		.connect_timeout_ms = 2000,
		.timeout_ms = 4000,
	};

	(void)state;
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(http_client_new(&c, loop, 1 << 20), 0);
	server_start(&sv, loop, reply);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/idx/_doc/1", sv.port);
	assert_false(http_client_busy(c));
	assert_int_equal(http_client_start(c, &r, on_done, &o), 0);
	assert_true(http_client_busy(c));
	/* one request at a time: a second is refused and its body freed */
	r.body = dup_str("x");
	assert_int_equal(http_client_start(c, &r, on_done, &o), -EBUSY);
	run_until_done(loop, &o);

	assert_true(o.done);
	assert_int_equal(o.failure, HTTP_ANSWERED);
	assert_int_equal(o.status, 201);
	assert_string_equal(o.body, "{\"ok\":true}");
	assert_int_equal(o.sent, 9);
	assert_false(http_client_busy(c));
	/* what the server saw */
	assert_non_null(strstr(sv.request, "PUT /idx/_doc/1 HTTP/1.1\r\n"));
	assert_non_null(strstr(sv.request, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(sv.request, "X-Test: yes\r\n"));
	/* "elastic:s3cret" */
	assert_non_null(strstr(sv.request, "Authorization: Basic ZWxhc3RpYzpzM2NyZXQ=\r\n"));
	assert_non_null(strstr(sv.request, "\r\n\r\n{\"doc\":1}"));
	assert_null(strstr(sv.request, "Expect:"));

	server_stop(&sv);
	http_client_free(&c);
	assert_null(c);
	loop_free(&loop);
}

static void test_refused_and_silent(void **state)
{
	struct loop *loop;
	struct http_client *c;
	struct server sv;
	struct outcome o = {0};
	char url[64];
	struct http_request r = {.method = "GET", .url = url, .timeout_ms = 300};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	(void)state;
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(http_client_new(&c, loop, 1 << 20), 0);
	/* a port nobody listens on: bound, then closed */
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ntohs(a.sin_port));
	assert_int_equal(http_client_start(c, &r, on_done, &o), 0);
	run_until_done(loop, &o);
	assert_true(o.done);
	assert_int_equal(o.failure, HTTP_UNREACHABLE);

	/* a server that takes the request and never answers */
	server_start(&sv, loop, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", sv.port);
	memset(&o, 0, sizeof(o));
	assert_int_equal(http_client_start(c, &r, on_done, &o), 0);
	run_until_done(loop, &o);
	assert_true(o.done);
	assert_int_equal(o.failure, HTTP_TIMEOUT);
	server_stop(&sv);
	http_client_free(&c);
	loop_free(&loop);
}

static void test_answer_over_the_cap(void **state)
{
	char reply[2048];
	struct loop *loop;
	struct http_client *c;
	struct server sv;
	struct outcome o = {0};
	char url[64];
	struct http_request r = {.method = "GET", .url = url, .timeout_ms = 3000};
	int n;

	(void)state;
	n = snprintf(reply, sizeof(reply),
		     "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n");
	memset(reply + n, 'a', 1000);
	reply[n + 1000] = '\0';
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(http_client_new(&c, loop, 100), 0);
	server_start(&sv, loop, reply);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", sv.port);
	assert_int_equal(http_client_start(c, &r, on_done, &o), 0);
	run_until_done(loop, &o);
	assert_true(o.done);
	/* a bounded client: a 1000-byte answer past a 100-byte cap is a failure */
	assert_int_equal(o.failure, HTTP_UNREACHABLE);
	server_stop(&sv);
	http_client_free(&c);
	loop_free(&loop);
}

static void test_abort(void **state)
{
	struct loop *loop;
	struct http_client *c;
	struct server sv;
	struct outcome o = {0};
	char url[64];
	struct http_request r = {.method = "POST", .url = url, .body = NULL, .timeout_ms = 3000};

	(void)state;
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(http_client_new(&c, loop, 1 << 20), 0);
	server_start(&sv, loop, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", sv.port);
	r.body = dup_str("payload");
	r.len = 7;
	assert_int_equal(http_client_start(c, &r, on_done, &o), 0);
	for (int i = 0; i < 5; i++)
		loop_once(loop, 20);
	http_client_abort(c);
	assert_false(http_client_busy(c));
	for (int i = 0; i < 5; i++)
		loop_once(loop, 20);
	/* an aborted request never calls back */
	assert_false(o.done);
	server_stop(&sv);
	http_client_free(&c);
	loop_free(&loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_and_answer),
		cmocka_unit_test(test_refused_and_silent),
		cmocka_unit_test(test_answer_over_the_cap),
		cmocka_unit_test(test_abort),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
