// SPDX-License-Identifier: GPL-2.0-only
#include "storage/httpclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/loop.h"
#include "storage/curlapi.h"
#include "storage/esbulk.h"

/* Sockets libcurl uses, as registered on the loop. The client opens and
 * closes them itself (CURLOPT_OPENSOCKETFUNCTION / CLOSESOCKETFUNCTION) so
 * that an fd always leaves the loop before it is closed: libcurl's own
 * CURL_POLL_REMOVE may come after the close, when the number already belongs
 * to someone else. */
#define SOCKS_MAX 32

struct sock {
	int fd;	      /* -1: free slot */
	bool owned;   /* opened by open_socket_cb */
	bool on_loop; /* registered with loop_add_fd */
};

struct http_client {
	struct loop *loop;
	CURLM *multi;
	struct loop_timer *timer;
	struct sock socks[SOCKS_MAX];
	size_t response_max;
	/* the request in flight */
	CURL *easy;
	struct curl_slist *headers;
	void *body;
	size_t body_len;
	struct esbuf resp;
	char errbuf[CURL_ERROR_SIZE];
	http_done_fn done;
	void *ctx;
};

static unsigned curl_users;
static const struct curl_api *lc; /* libcurl, loaded by the first client */

static void check_done(struct http_client *c);

static void on_socket(void *ctx, int fd, uint32_t events)
{
	struct http_client *c = ctx;
	int flags = 0, running;

	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	lc->multi_socket_action(c->multi, fd, flags, &running);
	check_done(c);
}

static struct sock *sock_find(struct http_client *c, int fd)
{
	for (unsigned i = 0; i < SOCKS_MAX; i++)
		if (c->socks[i].fd == fd)
			return &c->socks[i];
	return NULL;
}

static struct sock *sock_add(struct http_client *c, int fd, bool owned)
{
	struct sock *k = sock_find(c, -1);

	if (k)
		*k = (struct sock){.fd = fd, .owned = owned};
	return k;
}

static void sock_off_loop(struct http_client *c, struct sock *k)
{
	if (k->on_loop)
		loop_del_fd(c->loop, k->fd);
	k->on_loop = false;
}

static curl_socket_t open_socket_cb(void *userp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct http_client *c = userp;
	int fd;

	(void)purpose;
	fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
	if (fd < 0)
		return CURL_SOCKET_BAD;
	if (!sock_add(c, fd, true)) {
		close(fd);
		return CURL_SOCKET_BAD;
	}
	return fd;
}

static int close_socket_cb(void *userp, curl_socket_t fd)
{
	struct http_client *c = userp;
	struct sock *k = sock_find(c, fd);

	if (k) {
		sock_off_loop(c, k);
		k->fd = -1;
	}
	return close(fd);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_client *c = userp;
	struct sock *k = sock_find(c, fd);
	uint32_t ev = 0;

	(void)easy;
	(void)socketp;
	if (what == CURL_POLL_REMOVE) {
		/* unknown: already closed through close_socket_cb, the number is not ours */
		if (k) {
			sock_off_loop(c, k);
			if (!k->owned)
				k->fd = -1;
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		ev |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev |= EPOLLOUT;
	/* a socket libcurl opened itself (e.g. its resolver's wake-up pair) */
	if (!k && !(k = sock_add(c, fd, false)))
		return -1;
	if (k->on_loop)
		return loop_mod_fd(c->loop, fd, ev) ? -1 : 0;
	if (loop_add_fd(c->loop, fd, ev, on_socket, c))
		return -1;
	k->on_loop = true;
	return 0;
}

static void on_timer(void *ctx, struct loop_timer *t)
{
	struct http_client *c = ctx;
	int running;

	(void)t;
	lc->multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *c = userp;

	(void)multi;
	/* -1 means "no timeout": park the timer far away instead of disarming */
	if (timeout_ms < 0)
		timeout_ms = 3600 * 1000;
	return loop_timer_set(c->timer, (uint64_t)timeout_ms * 1000000ull + 1, 0) ? -1 : 0;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
	struct esbuf *b = userp;

	return esbuf_append(b, data, size * n) ? 0 : size * n;
}

/* Forgets the request in flight (its handle must be off the multi already). */
static void request_clear(struct http_client *c)
{
	if (c->easy)
		lc->easy_cleanup(c->easy);
	c->easy = NULL;
	if (c->headers)
		lc->slist_free_all(c->headers);
	c->headers = NULL;
	free(c->body);
	c->body = NULL;
	c->body_len = 0;
	esbuf_free(&c->resp);
	c->errbuf[0] = '\0';
	c->done = NULL;
	c->ctx = NULL;
}

static enum http_failure failure_of(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return HTTP_ANSWERED;
	case CURLE_PEER_FAILED_VERIFICATION:
#if LIBCURL_VERSION_NUM < 0x073e00
	case CURLE_SSL_CACERT:
#endif
		return HTTP_UNTRUSTED_CERT;
	case CURLE_SSL_CACERT_BADFILE:
		return HTTP_BAD_CA_FILE;
	case CURLE_SSL_CERTPROBLEM:
		return HTTP_CLIENT_CERT;
	case CURLE_SSL_CONNECT_ERROR:
		return HTTP_TLS_HANDSHAKE;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTP_TIMEOUT;
	default:
		return HTTP_UNREACHABLE;
	}
}

static void check_done(struct http_client *c)
{
	CURLMsg *m;
	int left;

	while ((m = lc->multi_info_read(c->multi, &left))) {
		struct http_answer a = {0};
		http_done_fn done = c->done;
		void *ctx = c->ctx;
		struct esbuf resp;
		char errbuf[CURL_ERROR_SIZE];
		CURLcode rc;

		if (m->msg != CURLMSG_DONE || !c->easy || m->easy_handle != c->easy)
			continue;
		rc = m->data.result;
		lc->easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &a.status);
		lc->multi_remove_handle(c->multi, c->easy);
		/* the client is idle again before done runs: it may start the next request */
		resp = c->resp;
		c->resp = (struct esbuf){0};
		snprintf(errbuf, sizeof(errbuf), "%s",
			 c->errbuf[0] ? c->errbuf : lc->easy_strerror(rc));
		a.sent_bytes = c->body_len;
		request_clear(c);
		a.failure = failure_of(rc);
		a.error = a.failure == HTTP_ANSWERED ? "" : errbuf;
		a.body = resp.p ? resp.p : "";
		a.len = resp.len;
		if (done)
			done(ctx, &a);
		esbuf_free(&resp);
		break;
	}
}

int http_client_new(struct http_client **out, struct loop *loop, size_t response_max)
{
	struct http_client *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	for (unsigned i = 0; i < SOCKS_MAX; i++)
		c->socks[i].fd = -1;
	c->loop = loop;
	c->response_max = response_max;
	if (!lc && (err = curl_api_get(&lc)))
		goto fail;
	if (!curl_users++ && lc->global_init(CURL_GLOBAL_DEFAULT)) {
		err = log_ret(-ENOMEM, "libcurl initialisation failed");
		goto fail;
	}
	c->multi = lc->multi_init();
	if (!c->multi) {
		err = -ENOMEM;
		goto fail;
	}
	lc->multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	lc->multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	lc->multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	lc->multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	lc->multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 4L);
	err = loop_timer_new(loop, 3600ull * 1000000000ull, 0, on_timer, c, &c->timer);
	if (err)
		goto fail;
	*out = c;
	return 0;
fail:
	http_client_free(&c);
	return err;
}

void http_client_abort(struct http_client *c)
{
	if (c->easy)
		lc->multi_remove_handle(c->multi, c->easy);
	request_clear(c);
}

void http_client_free(struct http_client **pc)
{
	struct http_client *c = pc ? *pc : NULL;

	if (!c)
		return;
	if (c->multi) {
		http_client_abort(c);
		lc->multi_cleanup(c->multi);
	}
	/* whatever libcurl did not close itself leaves the loop and goes now */
	for (unsigned i = 0; i < SOCKS_MAX; i++) {
		struct sock *k = &c->socks[i];

		if (k->fd < 0)
			continue;
		sock_off_loop(c, k);
		if (k->owned)
			close(k->fd);
		k->fd = -1;
	}
	loop_timer_free(&c->timer);
	if (curl_users && !--curl_users)
		lc->global_cleanup();
	free(c);
	*pc = NULL;
}

bool http_client_busy(const struct http_client *c)
{
	return c->easy != NULL;
}

static int add_header(struct http_client *c, const char *line)
{
	struct curl_slist *l = lc->slist_append(c->headers, line);

	if (!l)
		return -ENOMEM;
	c->headers = l;
	return 0;
}

static void set_options(struct http_client *c, const struct http_request *r)
{
	const struct http_tls *tls = r->tls;
	CURL *e = c->easy;

	lc->easy_setopt(e, CURLOPT_URL, r->url);
	lc->easy_setopt(e, CURLOPT_PRIVATE, c);
	lc->easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
	lc->easy_setopt(e, CURLOPT_OPENSOCKETDATA, c);
	lc->easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
	lc->easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c);
	lc->easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
	lc->easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	lc->easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	lc->easy_setopt(e, CURLOPT_WRITEDATA, &c->resp);
	lc->easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	lc->easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	lc->easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* compressed answers, too */
	lc->easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
	lc->easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
	lc->easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	lc->easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	lc->easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	lc->easy_setopt(e, CURLOPT_SSL_VERIFYPEER, !tls || tls->verify ? 1L : 0L);
	lc->easy_setopt(e, CURLOPT_SSL_VERIFYHOST, !tls || tls->verify ? 2L : 0L);
	if (tls && tls->ca_file && tls->ca_file[0])
		lc->easy_setopt(e, CURLOPT_CAINFO, tls->ca_file);
	if (tls && tls->client_cert && tls->client_cert[0])
		lc->easy_setopt(e, CURLOPT_SSLCERT, tls->client_cert);
	if (tls && tls->client_key && tls->client_key[0])
		lc->easy_setopt(e, CURLOPT_SSLKEY, tls->client_key);
	if (r->password) {
		lc->easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		lc->easy_setopt(e, CURLOPT_USERNAME, r->username ? r->username : "");
		lc->easy_setopt(e, CURLOPT_PASSWORD, r->password);
	}
	if (strcmp(r->method, "GET") == 0) {
		lc->easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		lc->easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
		lc->easy_setopt(e, CURLOPT_POSTFIELDS, c->body ? c->body : "");
		lc->easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
	}
}

int http_client_start(struct http_client *c, struct http_request *r, http_done_fn done, void *ctx)
{
	char line[128];
	int err = 0;

	if (c->easy) {
		free(r->body);
		return -EBUSY;
	}
	c->body = r->body;
	c->body_len = r->len;
	c->resp.max = c->response_max;
	c->easy = lc->easy_init();
	if (!c->easy) {
		err = -ENOMEM;
		goto fail;
	}
	if (c->body && r->gzip && c->body_len > 256) {
		void *z;
		size_t zlen;

		err = esbulk_gzip(c->body, c->body_len, &z, &zlen);
		if (err)
			goto fail;
		free(c->body);
		c->body = z;
		c->body_len = zlen;
		err = add_header(c, "Content-Encoding: gzip");
	}
	if (!err && r->content_type) {
		snprintf(line, sizeof(line), "Content-Type: %s", r->content_type);
		err = add_header(c, line);
	}
	if (!err) /* no 100-continue round trip */
		err = add_header(c, "Expect:");
	for (unsigned i = 0; !err && i < HTTP_HEADERS_MAX && r->headers[i]; i++)
		err = add_header(c, r->headers[i]);
	if (err)
		goto fail;
	set_options(c, r);
	if (lc->multi_add_handle(c->multi, c->easy) != CURLM_OK) {
		err = -ENOMEM;
		goto fail;
	}
	c->done = done;
	c->ctx = ctx;
	return 0;
fail:
	request_clear(c);
	return err;
}
