// SPDX-License-Identifier: GPL-2.0-only
/* The metrics endpoint's HTTP server on a real loop and real sockets: requests,
 * keep-alive and pipelining, malformed and oversized requests, slow clients,
 * the client cap, basic authentication with bcrypt, TLS, the loopback rule,
 * socket hand-over on reload, unix sockets. */
#include "testutil.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/httpd.h"
#include "base/loop.h"
#include "base/util.h"
#include "base/webconfig.h"

struct srv {
	struct loop *loop;
	struct httpd *h;
	int calls;
	char accept[256];
	char user[64];
};

static void handler(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct srv *s = ctx;

	s->calls++;
	snprintf(s->accept, sizeof(s->accept), "%s", req->accept);
	snprintf(s->user, sizeof(s->user), "%s", req->user ? req->user : "");
	if (!strcmp(req->path, "/big")) {
		resp->body = calloc(1, req->max_body + 1);
		resp->len = req->max_body + 1;
		return;
	}
	if (!strcmp(req->path, "/large")) {
		resp->len = req->max_body;
		resp->body = malloc(resp->len);
		memset(resp->body, 'x', resp->len);
		return;
	}
	if (strcmp(req->path, "/metrics")) {
		resp->status = 404;
		return;
	}
	resp->content_type = "text/plain; version=0.0.4";
	resp->body = strdup("hello\n");
	resp->len = 6;
}

static int start(struct srv *s, const char *listen, const struct webconfig *web,
		 unsigned max_clients, uint64_t timeout_ms, size_t max_response)
{
	struct httpd_opts o = {.loop = s->loop,
			       .listen = listen,
			       .web = web,
			       .max_clients = max_clients,
			       .timeout_ms = timeout_ms,
			       .max_response = max_response ? max_response : 1 << 20,
			       .handler = handler,
			       .ctx = s};

	return httpd_new(&s->h, &o);
}

static void setup(struct srv *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(loop_new(&s->loop), 0);
}

static void teardown(struct srv *s)
{
	httpd_free(&s->h);
	loop_free(&s->loop);
}

static int connect_tcp(struct srv *s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *addr = httpd_address(s->h);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* loopback: the kernel completes it from the backlog before any accept */
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	loop_once(s->loop, 0);
	return fd;
}

static void send_all(int fd, const char *text)
{
	size_t off = 0, n = strlen(text);

	while (off < n) {
		ssize_t r = send(fd, text + off, n - off, MSG_NOSIGNAL);

		assert_true(r > 0);
		off += (size_t)r;
	}
}

/* Bytes the server sent, pumping its loop, until a whole response is there
 * (by Content-Length; head: none follows), the connection ends, or max_ms. */
struct reply {
	char *text;
	size_t len;
	bool closed;
	int status;
};

static bool complete(const struct reply *r, bool head)
{
	char *end = r->text ? strstr(r->text, "\r\n\r\n") : NULL, *cl;

	if (!end)
		return false;
	cl = strcasestr(r->text, "Content-Length: ");
	if (!cl || head)
		return true;
	return r->len >= (size_t)(end + 4 - r->text) + strtoull(cl + 16, NULL, 10);
}

static struct reply get_reply(struct srv *s, int fd, bool head, int max_ms)
{
	struct reply r = {0};
	uint64_t until = now_mono_ns() / 1000000 + (uint64_t)max_ms;
	char buf[65536];

	while (now_mono_ns() / 1000000 < until && !complete(&r, head)) {
		ssize_t n;

		loop_once(s->loop, 5);
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			r.closed = true;
			break;
		}
		if (n > 0) {
			r.text = realloc(r.text, r.len + (size_t)n + 1);
			memcpy(r.text + r.len, buf, (size_t)n);
			r.len += (size_t)n;
			r.text[r.len] = '\0';
		}
	}
	if (r.text)
		sscanf(r.text, "HTTP/1.1 %d", &r.status);
	return r;
}

/* After a response: does the server close the connection? */
static bool closes(struct srv *s, int fd, int max_ms)
{
	struct reply r = get_reply(s, fd, false, max_ms);
	bool closed = r.closed && !r.len;

	free(r.text);
	return closed;
}

static struct reply ask(struct srv *s, int fd, const char *req)
{
	send_all(fd, req);
	return get_reply(s, fd, !strncmp(req, "HEAD", 4), 3000);
}

static void test_parse_listen(void **st)
{
	static const struct {
		const char *listen;
		int ok;
		bool loopback, any, unix_path;
	} cases[] = {
		{"127.0.0.1:9464", 1, true, false, false},
		{"127.8.9.10:1", 1, true, false, false},
		{"localhost:9464", 1, true, false, false},
		{"[::1]:9464", 1, true, false, false},
		{"[::ffff:127.0.0.1]:9464", 1, true, false, false},
		{"10.1.2.3:9464", 1, false, false, false},
		{"[fe80::1]:9464", 1, false, false, false},
		{":9464", 1, false, true, false},
		{"[::]:9464", 1, false, true, false},
		{"0.0.0.0:9464", 1, false, false, false},
		{"/run/autotrace/metrics.sock", 1, true, false, true},
		{"node1:9464", 0},
		{"127.0.0.1", 0},
		{"127.0.0.1:", 0},
		{"127.0.0.1:65536", 0},
		{"127.0.0.1:-1", 0},
		{"::1:9464", 0},
		{"[::1]9464", 0},
		{"relative.sock", 0},
	};
	char why[256];

	(void)st;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct httpd_addr a;
		int err = httpd_parse_listen(cases[i].listen, &a, why, sizeof(why));

		if ((err == 0) != cases[i].ok) {
			print_error("%s: %s\n", cases[i].listen, err ? why : "accepted");
			fail();
		}
		if (err)
			continue;
		assert_int_equal(a.loopback, cases[i].loopback);
		assert_int_equal(a.any, cases[i].any);
		assert_int_equal(a.unix_path, cases[i].unix_path);
	}
}

static void test_requests_and_keepalive(void **st)
{
	struct srv s;
	struct reply r;
	int fd;

	(void)st;
	setup(&s);
	assert_int_equal(start(&s, "127.0.0.1:0", NULL, 4, 5000, 0), 0);
	assert_non_null(strstr(httpd_address(s.h), "127.0.0.1:"));
	fd = connect_tcp(&s);
	r = ask(&s, fd, "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain\r\n\r\n");
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.text, "Content-Type: text/plain; version=0.0.4\r\n"));
	assert_non_null(strstr(r.text, "Content-Length: 6\r\n"));
	assert_null(strstr(r.text, "Connection: close"));
	assert_string_equal(strstr(r.text, "\r\n\r\n") + 4, "hello\n");
	assert_string_equal(s.accept, "text/plain");
	free(r.text);
	/* the same connection: HEAD has the length and no body, then a 404, then 405 */
	r = ask(&s, fd, "HEAD /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.text, "Content-Length: 6\r\n"));
	assert_string_equal(strstr(r.text, "\r\n\r\n") + 4, "");
	free(r.text);
	r = ask(&s, fd, "GET /other HTTP/1.1\r\n\r\n");
	assert_int_equal(r.status, 404);
	free(r.text);
	r = ask(&s, fd, "DELETE /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(r.text, "Allow: GET, HEAD\r\n"));
	free(r.text);
	/* two requests in one write: two answers, in order; accept was reset */
	send_all(fd, "GET /metrics HTTP/1.1\r\nAccept: a/b\r\n\r\nGET /nope HTTP/1.1\r\n\r\n");
	{
		char both[4096] = "";

		for (int i = 0; i < 50 && !strstr(both, "404 Not Found"); i++) {
			r = get_reply(&s, fd, false, 100);
			if (r.text)
				strncat(both, r.text, sizeof(both) - strlen(both) - 1);
			free(r.text);
		}
		assert_non_null(strstr(both, "HTTP/1.1 200 OK"));
		assert_true(strstr(both, "HTTP/1.1 200 OK") <
			    strstr(both, "HTTP/1.1 404 Not Found"));
	}
	assert_string_equal(s.accept, "");
	/* Connection: close is honoured */
	r = ask(&s, fd, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.text, "Connection: close\r\n"));
	free(r.text);
	assert_true(closes(&s, fd, 2000));
	close(fd);
	/* HTTP/1.0 closes unless asked to keep alive; bare LF line ends are taken */
	fd = connect_tcp(&s);
	r = ask(&s, fd, "GET /metrics HTTP/1.0\n\n");
	assert_int_equal(r.status, 200);
	free(r.text);
	assert_true(closes(&s, fd, 2000));
	close(fd);
	assert_int_equal(s.calls, 7);
	teardown(&s);
}

static void test_bad_requests(void **st)
{
	static const struct {
		const char *req;
		int status;
	} cases[] = {
		{"garbage\r\n\r\n", 400},
		{"GET metrics HTTP/1.1\r\n\r\n", 400},
		{"GET /metrics HTTP/2.0\r\n\r\n", 505},
		{"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"GET /metrics HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", 400},
		{"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400},
	};
	struct srv s;
	char big[HTTPD_MAX_REQUEST + 64];

	(void)st;
	setup(&s);
	assert_int_equal(start(&s, "127.0.0.1:0", NULL, 4, 5000, 0), 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int fd = connect_tcp(&s);
		struct reply r = ask(&s, fd, cases[i].req);

		if (r.status != cases[i].status) {
			print_error("%s -> %d\n", cases[i].req, r.status);
			fail();
		}
		/* where the next request would start is unknown: the connection ends */
		assert_true(closes(&s, fd, 2000));
		free(r.text);
		close(fd);
	}
	{
		int fd = connect_tcp(&s);
		struct reply r;

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		memcpy(big, "GET /metrics HTTP/1.1\r\nX-Long: ", 31);
		r = ask(&s, fd, big);
		assert_int_equal(r.status, 431);
		free(r.text);
		close(fd);
	}
	assert_int_equal(s.calls, 0);
	teardown(&s);
}

static void test_slow_clients_and_cap(void **st)
{
	struct srv s;
	struct reply r;
	json_t *stats;
	int a, b, c;

	(void)st;
	setup(&s);
	assert_int_equal(start(&s, "127.0.0.1:0", NULL, 2, 300, 0), 0);
	/* half a request, then nothing: dropped after the timeout */
	a = connect_tcp(&s);
	send_all(a, "GET /metrics HTTP/1.1\r\n");
	b = connect_tcp(&s);
	/* two clients: a third is refused at once */
	c = connect_tcp(&s);
	r = get_reply(&s, c, false, 2000);
	assert_int_equal(r.status, 503);
	free(r.text);
	close(c);
	assert_true(closes(&s, a, 3000));
	assert_true(closes(&s, b, 3000));
	close(a);
	close(b);
	stats = httpd_stats(s.h);
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(stats, "refused"), "timeout")),
		2);
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(stats, "refused"), "full")), 1);
	json_decref(stats);

	/* a kept-alive connection waiting idle makes room for a new one */
	a = connect_tcp(&s);
	r = ask(&s, a, "GET /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(r.status, 200);
	free(r.text);
	b = connect_tcp(&s);
	send_all(b, "GET /metrics HTTP/1.1\r\n"); /* busy: not idle */
	c = connect_tcp(&s);
	r = ask(&s, c, "GET /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(r.status, 200);
	free(r.text);
	assert_true(closes(&s, a, 1000));
	close(a);
	close(b);
	close(c);
	teardown(&s);
}

static void test_response_bounds(void **st)
{
	struct srv s;
	struct reply r;
	size_t body;
	int fd;

	(void)st;
	setup(&s);
	assert_int_equal(start(&s, "127.0.0.1:0", NULL, 4, 5000, 4 << 20), 0);
	fd = connect_tcp(&s);
	/* larger than the bound: refused, not sent */
	r = ask(&s, fd, "GET /big HTTP/1.1\r\n\r\n");
	assert_int_equal(r.status, 500);
	free(r.text);
	/* 4 MiB through a socket buffer far smaller: written as the client reads */
	r = ask(&s, fd, "GET /large HTTP/1.1\r\n\r\n");
	assert_int_equal(r.status, 200);
	body = r.len - (size_t)(strstr(r.text, "\r\n\r\n") + 4 - r.text);
	assert_int_equal(body, 4 << 20);
	free(r.text);
	close(fd);
	teardown(&s);
}

static void make_web(struct webconfig *w, const char *user, const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;

	memset(w, 0, sizeof(*w));
	memset(&cd, 0, sizeof(cd));
	assert_non_null(crypt_gensalt_rn("$2b$", 4, NULL, 0, salt, sizeof(salt)));
	w->nusers = 1;
	snprintf(w->users[0].name, sizeof(w->users[0].name), "%s", user);
	snprintf(w->users[0].hash, sizeof(w->users[0].hash), "%s", crypt_r(password, salt, &cd));
	assert_true(webconfig_hash_valid(w->users[0].hash, salt, sizeof(salt)));
}

static int auth_status(struct srv *s, const char *userpass)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char req[512], b64[256];
	size_t n = strlen(userpass), o = 0;
	struct reply r;
	int fd, status;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)userpass[i] << 16;

		if (i + 1 < n)
			v |= (unsigned char)userpass[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)userpass[i + 2];
		b64[o++] = tbl[(v >> 18) & 63];
		b64[o++] = tbl[(v >> 12) & 63];
		b64[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		b64[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	b64[o] = '\0';
	snprintf(req, sizeof(req), "GET /metrics HTTP/1.1\r\nAuthorization: Basic %s\r\n\r\n", b64);
	fd = connect_tcp(s);
	r = ask(s, fd, userpass[0] ? req : "GET /metrics HTTP/1.1\r\n\r\n");
	status = r.status;
	if (status == 401)
		assert_non_null(strstr(r.text, "WWW-Authenticate: Basic realm=\"autotrace\""));
	free(r.text);
	close(fd);
	return status;
}

static void test_basic_auth(void **st)
{
	struct webconfig *web = calloc(1, sizeof(*web));
	struct srv s;
	json_t *stats;
	int limited = 0;

	(void)st;
	make_web(web, "prom", "right");
	setup(&s);
	assert_int_equal(start(&s, "127.0.0.1:0", web, 4, 5000, 0), 0);
	assert_int_equal(auth_status(&s, ""), 401);
	assert_int_equal(auth_status(&s, "prom:right"), 200);
	assert_string_equal(s.user, "prom");
	/* remembered: no second check (no token needed) */
	for (int i = 0; i < 10; i++)
		assert_int_equal(auth_status(&s, "prom:right"), 200);
	assert_int_equal(auth_status(&s, "prom:wrong"), 401);
	assert_int_equal(auth_status(&s, "nobody:right"), 401);
	assert_int_equal(s.calls, 11);
	/* a guesser gets a few checks, then 429 */
	for (int i = 0; i < 8; i++)
		limited += auth_status(&s, "prom:guess") == 429;
	assert_true(limited >= 3);
	assert_int_equal(auth_status(&s, "prom:right"), 200);
	stats = httpd_stats(s.h);
	assert_true(json_is_true(json_object_get(stats, "basic_auth")));
	assert_true(json_integer_value(
			    json_object_get(json_object_get(stats, "refused"), "rate")) >= 3);
	json_decref(stats);
	teardown(&s);
	free(web);
}

static void test_loopback_rule(void **st)
{
	struct webconfig *web = calloc(1, sizeof(*web));
	struct httpd_opts o;
	struct srv s;

	(void)st;
	setup(&s);
	o = (struct httpd_opts){.loop = s.loop,
				.listen = "0.0.0.0:0",
				.max_response = 1 << 20,
				.handler = handler,
				.ctx = &s};
	assert_int_equal(httpd_new(&s.h, &o), -EPERM);
	assert_null(s.h);
	o.allow_insecure = true;
	assert_int_equal(httpd_new(&s.h, &o), 0);
	httpd_free(&s.h);
	make_web(web, "u", "p");
	o.allow_insecure = false;
	o.web = web;
	assert_int_equal(httpd_new(&s.h, &o), 0);
	teardown(&s);
	free(web);
}

static void test_handover_and_unix(void **st)
{
	struct srv s, s2;
	struct httpd_opts o;
	struct reply r;
	char path[200], addr[128];
	struct sockaddr_un su = {.sun_family = AF_UNIX};
	int fd;

	(void)st;
	setup(&s);
	assert_int_equal(start(&s, "127.0.0.1:0", NULL, 4, 5000, 0), 0);
	snprintf(addr, sizeof(addr), "%s", httpd_address(s.h));
	/* a connection waiting in the backlog survives the hand-over */
	fd = connect_tcp(&s);
	memset(&s2, 0, sizeof(s2));
	s2.loop = s.loop;
	o = (struct httpd_opts){.loop = s.loop,
				.listen = "127.0.0.1:0",
				.max_response = 1 << 20,
				.handler = handler,
				.ctx = &s2,
				.prev = s.h};
	assert_int_equal(httpd_new(&s2.h, &o), 0);
	httpd_free(&s.h);
	close(fd);
	assert_string_equal(httpd_address(s2.h), addr);
	fd = connect_tcp(&s2);
	r = ask(&s2, fd, "GET /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(r.status, 200);
	assert_int_equal(s2.calls, 1);
	free(r.text);
	close(fd);
	httpd_free(&s2.h);

	/* a unix socket: created, served, removed */
	snprintf(path, sizeof(path), "%s/metrics.sock", test_tmpdir(0));
	assert_int_equal(start(&s, path, NULL, 4, 5000, 0), 0);
	assert_int_equal(access(path, F_OK), 0);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(su.sun_path, sizeof(su.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&su, sizeof(su)), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	r = ask(&s, fd, "GET /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(r.status, 200);
	free(r.text);
	close(fd);
	/* the path is ours while we listen: a second server is refused */
	{
		struct srv other;

		setup(&other);
		assert_int_equal(start(&other, path, NULL, 4, 5000, 0), -EADDRINUSE);
		teardown(&other);
	}
	httpd_free(&s.h);
	assert_int_equal(access(path, F_OK), -1);
	teardown(&s);
	test_rmtree(path);
}

/* ---- TLS, with a certificate made here ---- */

static void make_cert(const char *dir, char *cert, char *key, size_t len)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *f;

	assert_non_null(pk);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pk);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
				   -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	snprintf(cert, len, "%s/cert.pem", dir);
	snprintf(key, len, "%s/key.pem", dir);
	f = fopen(cert, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key, "w");
	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	chmod(key, 0600);
	X509_free(x);
	EVP_PKEY_free(pk);
}

/* Drives a client TLS operation against the server on the same loop. */
static int tls_op(struct srv *s, SSL *ssl, int (*op)(SSL *, void *, int), void *buf, int n)
{
	for (int i = 0; i < 2000; i++) {
		int r = op(ssl, buf, n), e;

		if (r > 0)
			return r;
		e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return -1;
		loop_once(s->loop, 2);
	}
	return -1;
}

static int do_connect(SSL *ssl, void *buf, int n)
{
	(void)buf;
	(void)n;
	return SSL_connect(ssl);
}

static int do_write(SSL *ssl, void *buf, int n)
{
	return SSL_write(ssl, buf, n);
}

static int do_read(SSL *ssl, void *buf, int n)
{
	return SSL_read(ssl, buf, n);
}

static void test_tls(void **st)
{
	struct webconfig *web = calloc(1, sizeof(*web));
	const char *dir = test_tmpdir(1);
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	char req[] = "GET /large HTTP/1.1\r\n\r\n", buf[65536];
	size_t got = 0, want = 2 << 20;
	struct srv s;
	SSL *ssl;
	int fd;

	(void)st;
	make_cert(dir, web->cert_file, web->key_file, sizeof(web->cert_file));
	web->tls = true;
	setup(&s);
	assert_int_equal(start(&s, "127.0.0.1:0", web, 4, 5000, want), 0);
	SSL_CTX_load_verify_locations(cctx, web->cert_file, NULL);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	fd = connect_tcp(&s);
	ssl = SSL_new(cctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	SSL_set1_host(ssl, "localhost");
	assert_int_equal(tls_op(&s, ssl, do_connect, NULL, 0), 1);
	assert_true(tls_op(&s, ssl, do_write, req, (int)strlen(req)) > 0);
	/* 2 MiB over TLS: many records, partial writes on the server's side */
	while (got < want + 50) {
		int n = tls_op(&s, ssl, do_read, buf, sizeof(buf));

		if (n <= 0)
			break;
		if (!got)
			assert_int_equal(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17), 0);
		got += (size_t)n;
		if (memmem(buf, (size_t)n, "xxxx", 4) && got > want)
			break;
	}
	assert_true(got > want);
	SSL_free(ssl);
	close(fd);
	/* plain HTTP to a TLS port gets no HTTP answer */
	fd = connect_tcp(&s);
	{
		struct reply r = ask(&s, fd, "GET /metrics HTTP/1.1\r\n\r\n");

		assert_int_equal(r.status, 0);
		free(r.text);
	}
	close(fd);
	httpd_free(&s.h);

	/* a key that is not the certificate's: refused at start */
	{
		char cert2[256], key2[256];

		make_cert(test_tmpdir(2), cert2, key2, sizeof(cert2));
		snprintf(web->key_file, sizeof(web->key_file), "%s", key2);
		assert_int_equal(start(&s, "127.0.0.1:0", web, 4, 5000, 0), -EINVAL);
	}
	teardown(&s);
	SSL_CTX_free(cctx);
	free(web);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_listen),
		cmocka_unit_test(test_requests_and_keepalive),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_slow_clients_and_cap),
		cmocka_unit_test(test_response_bounds),
		cmocka_unit_test(test_basic_auth),
		cmocka_unit_test(test_loopback_rule),
		cmocka_unit_test(test_handover_and_unix),
		cmocka_unit_test(test_tls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
