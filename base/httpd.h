/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A minimal HTTP/1.1 server on the agent's event loop, for scrapers: GET and
 * HEAD, keep-alive, no request bodies. It can never stall the loop or grow
 * without bound: sockets are non-blocking, clients and response sizes are
 * capped, a client that does not finish its request or read its response in
 * time is dropped, new connections are rate-limited, and password checks
 * (bcrypt, ~0.1 s each) run one at a time on a single worker thread, rate-
 * limited, with successful ones cached. TLS is OpenSSL's.
 */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct httpd;
struct webconfig;

#define HTTPD_MAX_REQUEST	    8192 /* request line and headers */
#define HTTPD_DEFAULT_MAX_CLIENTS   4
#define HTTPD_DEFAULT_TIMEOUT_MS    10000
#define HTTPD_CONNECTS_PER_S	    16 /* new connections, burst twice that */
#define HTTPD_PASSWORD_CHECKS_PER_S 1  /* uncached bcrypt checks, burst 4 */

struct httpd_request {
	const char *method; /* "GET" or "HEAD" */
	const char *path;   /* the target without its query string */
	const char *accept; /* the Accept header, "" when absent */
	const char *user;   /* the basic-auth user, NULL when no users are configured */
	size_t max_body;    /* the response body may not be longer */
};

struct httpd_response {
	int status; /* 0: 200 */
	const char *content_type;
	char *body; /* malloc'd; the server frees it */
	size_t len;
};

typedef void (*httpd_handler)(void *ctx, const struct httpd_request *req,
			      struct httpd_response *resp);

struct httpd_opts {
	struct loop *loop;
	/* "127.0.0.1:9464", "[::1]:9464", ":9464" (every address), "localhost:9464",
	 * or an absolute unix socket path */
	const char *listen;
	const struct webconfig *web; /* TLS and users; NULL: plain HTTP, no auth */
	bool allow_insecure;	     /* listen beyond loopback without TLS or auth */
	unsigned max_clients;	     /* 0: HTTPD_DEFAULT_MAX_CLIENTS */
	size_t max_response;	     /* body bytes */
	uint64_t timeout_ms;	     /* 0: HTTPD_DEFAULT_TIMEOUT_MS */
	httpd_handler handler;
	void *ctx;
	/* a server being replaced (reload): its listening socket is taken over
	 * when the address is the same, so scrapers never see a refused port */
	struct httpd *prev;
};

struct httpd_addr {
	struct sockaddr_storage sa;
	socklen_t salen;
	bool any;	/* every address: IPv6 and IPv4 */
	bool loopback;	/* reachable from this host only (loopback, unix socket) */
	bool unix_path; /* sa is a sockaddr_un */
};

/* Parses a listen address; -EINVAL with why on error. */
int httpd_parse_listen(const char *listen, struct httpd_addr *out, char *why, size_t whylen);

/* Listens and loads the TLS certificate; errors are logged with the reason.
 * -EPERM: beyond loopback without TLS or users, and not allow_insecure. */
int httpd_new(struct httpd **out, const struct httpd_opts *opts);
void httpd_free(struct httpd **h);
/* The address as bound ("127.0.0.1:40213" when port 0 was asked). */
const char *httpd_address(const struct httpd *h);
/* {listen, tls, basic_auth, clients, accepted, requests, refused{full, rate,
 * auth, timeout, bad}, bytes_sent, cpu_seconds} */
json_t *httpd_stats(const struct httpd *h);
