/* SPDX-License-Identifier: GPL-2.0-only */
/* An HTTP(S) client on the agent's event loop: libcurl's multi interface
 * driven by the loop's epoll and a timer, one request at a time. Nothing here
 * blocks on the network; the answer comes back through a callback. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_client;
struct loop;

struct http_tls {
	bool verify;		 /* check the server's certificate and name */
	const char *ca_file;	 /* "" or NULL: the system's CAs */
	const char *client_cert; /* "" or NULL: no client certificate */
	const char *client_key;
};

#define HTTP_HEADERS_MAX 4

struct http_request {
	const char *method; /* "GET", "PUT", "POST" */
	const char *url;    /* http:// or https:// only; redirects are not followed */
	const char *content_type;
	const char *headers[HTTP_HEADERS_MAX]; /* more header lines, up to the first NULL */
	void *body; /* malloc'd, taken over by the client; NULL for none */
	size_t len;
	bool gzip;			 /* compress a body above 256 bytes */
	const char *username, *password; /* HTTP basic authentication when password is set */
	const struct http_tls *tls;
	long connect_timeout_ms, timeout_ms;
};

/* Why a request got no HTTP answer, sorted by what an operator can do about it. */
enum http_failure {
	HTTP_ANSWERED,
	HTTP_UNTRUSTED_CERT, /* the server's certificate is not trusted */
	HTTP_BAD_CA_FILE,    /* the CA file cannot be used */
	HTTP_CLIENT_CERT,    /* the client certificate or key cannot be used */
	HTTP_TLS_HANDSHAKE,
	HTTP_TIMEOUT,
	HTTP_UNREACHABLE, /* resolve, connect, reset, an answer over the size cap ... */
};

struct http_answer {
	enum http_failure failure;
	const char *error; /* with a failure: what libcurl said */
	long status;	   /* with HTTP_ANSWERED */
	const char *body;  /* NUL-terminated, never NULL */
	size_t len;
	size_t sent_bytes; /* request body bytes on the wire (after compression) */
};

typedef void (*http_done_fn)(void *ctx, const struct http_answer *a);

/* Answers longer than response_max bytes fail the request (HTTP_UNREACHABLE). */
int http_client_new(struct http_client **out, struct loop *loop, size_t response_max);
/* Aborts a request in flight (done does not run) and takes every socket off the loop. */
void http_client_free(struct http_client **c);

/* Starts r; done runs from the loop once it has an answer or failed, and may
 * start the next request. -EBUSY while a request runs. The body is the
 * client's from here on, even when this fails. */
int http_client_start(struct http_client *c, struct http_request *r, http_done_fn done, void *ctx);
/* Drops the request in flight; its done does not run. */
void http_client_abort(struct http_client *c);
bool http_client_busy(const struct http_client *c);
