// SPDX-License-Identifier: GPL-2.0-only
#include "base/httpd.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "base/webconfig.h"

#define ACCEPTS_PER_WAKEUP 32
#define AUTH_CACHE	   16  /* verified credentials remembered */
#define PASSWORD_MAX	   256 /* longer basic-auth passwords are refused */
#define REFUSE_LOG_EVERY   100

enum cstate { C_HANDSHAKE, C_READ, C_AUTH, C_WRITE };

struct hclient {
	struct httpd *h;
	int fd;
	SSL *ssl;
	enum cstate state;
	uint32_t events;      /* epoll interest now */
	bool want_read;	      /* TLS: the last operation needs the socket readable */
	bool want_write;      /* ... or writable */
	bool keep_alive;      /* after this response */
	bool idle;	      /* between requests of a kept-alive connection */
	uint64_t deadline_ms; /* monotonic: dropped when not done by then */
	char in[HTTPD_MAX_REQUEST];
	size_t in_len;
	/* the request being answered */
	char method[8];
	char path[256];
	char accept[512];
	int user; /* index in the web config, -1: none */
	char password[PASSWORD_MAX];
	bool head_only;
	/* the response */
	char head[512];
	size_t head_len, head_off;
	char *body;
	size_t body_len, body_off;
	struct hclient *next, *auth_next;
};

/* One password check at a time, off the loop: bcrypt is slow by design. */
struct auth_worker {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int efd; /* written when a check is done */
	bool started, stop, pending, done, ok;
	char password[PASSWORD_MAX];
	char hash[WEBCONFIG_HASH_LEN + 1];
	struct hclient *client; /* the loop thread's: NULL when it went away */
	struct hclient *queue;	/* waiting for the worker, FIFO */
};

struct auth_entry {
	unsigned char mac[32];
	int user;
	uint64_t used;
	bool valid;
};

struct bucket {
	double tokens, max, per_s;
	uint64_t last_ms;
};

struct httpd {
	struct httpd_opts opts;
	char listen[PATH_MAX];
	char bound[128];
	struct httpd_addr addr;
	int fd;
	bool owns_path; /* unlink the unix socket at the end */
	dev_t dev;
	ino_t ino;
	struct webconfig *web; /* a copy; NULL without one */
	SSL_CTX *tls;
	struct loop_timer *sweep;
	struct hclient *clients;
	unsigned nclients;
	struct auth_worker auth;
	struct auth_entry cache[AUTH_CACHE];
	unsigned char cache_key[32];
	uint64_t cache_clock;
	struct bucket connects, checks;
	struct {
		uint64_t accepted, requests, full, rate, auth, timeout, bad, bytes_sent, cpu_ns;
	} st;
};

static uint64_t now_ms(void)
{
	return now_mono_ns() / 1000000;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool bucket_take(struct bucket *b)
{
	uint64_t now = now_ms();

	b->tokens = MIN(b->max, b->tokens + (double)(now - b->last_ms) * b->per_s / 1000.0);
	b->last_ms = now;
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}

/* ---- addresses ---- */

static bool v4_loopback(const struct in_addr *a)
{
	return (ntohl(a->s_addr) >> 24) == 127;
}

int httpd_parse_listen(const char *listen, struct httpd_addr *out, char *why, size_t whylen)
{
	char host[64];
	const char *colon, *port_s;
	uint64_t port;

	memset(out, 0, sizeof(*out));
	if (listen[0] == '/') {
		struct sockaddr_un *su = (struct sockaddr_un *)&out->sa;

		if (strlen(listen) >= sizeof(su->sun_path)) {
			snprintf(why, whylen, "unix socket path longer than %zu bytes",
				 sizeof(su->sun_path) - 1);
			return -EINVAL;
		}
		su->sun_family = AF_UNIX;
		strcpy(su->sun_path, listen);
		out->salen = sizeof(*su);
		out->unix_path = true;
		out->loopback = true;
		return 0;
	}
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');

		if (!close || close[1] != ':' || (size_t)(close - listen - 1) >= sizeof(host)) {
			snprintf(why, whylen, "'%s': expected [IPv6]:PORT", listen);
			return -EINVAL;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(close - listen - 1), listen + 1);
		port_s = close + 2;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || (size_t)(colon - listen) >= sizeof(host) ||
		    memchr(listen, ':', (size_t)(colon - listen))) {
			snprintf(why, whylen,
				 "'%s': expected HOST:PORT, [IPv6]:PORT or an absolute unix "
				 "socket path",
				 listen);
			return -EINVAL;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
		port_s = colon + 1;
	}
	if (parse_u64(port_s, &port) || port > 65535) {
		snprintf(why, whylen, "'%s': port '%s' is not in 0..65535", listen, port_s);
		return -EINVAL;
	}
	if (!host[0] || !strcmp(host, "::") || !strcmp(host, "0.0.0.0")) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;

		/* every address, IPv6 and IPv4 (falls back to IPv4 only without IPv6) */
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = in6addr_any;
		out->salen = sizeof(*s6);
		out->any = host[0] == '\0' || !strcmp(host, "::");
		if (!strcmp(host, "0.0.0.0")) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;

			memset(&out->sa, 0, sizeof(out->sa));
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)port);
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
			out->salen = sizeof(*s4);
		}
		return 0;
	}
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;

		if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)port);
			out->salen = sizeof(*s4);
			out->loopback = v4_loopback(&s4->sin_addr);
			return 0;
		}
		memset(&out->sa, 0, sizeof(out->sa));
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)port);
			out->salen = sizeof(*s6);
			out->loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
					(IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
					 s6->sin6_addr.s6_addr[12] == 127);
			return 0;
		}
	}
	/* a name could resolve to anything, now or after the next DNS change */
	snprintf(why, whylen, "'%s': the host must be an IP address or localhost", listen);
	return -EINVAL;
}

static void format_bound(struct httpd *h)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "?";

	if (h->addr.unix_path) {
		snprintf(h->bound, sizeof(h->bound), "%s", h->listen);
		return;
	}
	if (getsockname(h->fd, (struct sockaddr *)&ss, &len)) {
		snprintf(h->bound, sizeof(h->bound), "%s", h->listen);
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(h->bound, sizeof(h->bound), "%s:%u", ip, ntohs(s4->sin_port));
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(h->bound, sizeof(h->bound), "[%s]:%u", ip, ntohs(s6->sin6_port));
	}
}

/* A socket file nobody listens on is removed; anything else is refused. */
static int clear_stale(const char *path)
{
	bool removed;
	int err = unix_socket_clear_stale(path, &removed);

	if (err == -EEXIST)
		return log_ret(err, "metrics.listen %s: exists and is not a socket", path);
	if (err == -EADDRINUSE)
		return log_ret(err, "metrics.listen %s: another process listens on it", path);
	return err;
}

static int open_listener(struct httpd *h)
{
	struct httpd_addr *a = &h->addr;
	int one = 1, zero = 0, err;
	struct stat st;

	h->fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd < 0 && a->any && errno == EAFNOSUPPORT) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a->sa;
		uint16_t port = ((struct sockaddr_in6 *)&a->sa)->sin6_port;

		/* no IPv6 on this host: every IPv4 address */
		memset(&a->sa, 0, sizeof(a->sa));
		s4->sin_family = AF_INET;
		s4->sin_port = port;
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		a->salen = sizeof(*s4);
		h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (h->fd < 0)
		return -errno;
	if (a->unix_path) {
		mode_t old;

		err = clear_stale(h->listen);
		if (err)
			return err;
		/* as reachable as 127.0.0.1: who may connect is the directory's business */
		old = umask(0111);
		err = bind(h->fd, (struct sockaddr *)&a->sa, a->salen) ? -errno : 0;
		umask(old);
		if (!err && stat(h->listen, &st) == 0) {
			h->owns_path = true;
			h->dev = st.st_dev;
			h->ino = st.st_ino;
		}
	} else {
		setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (a->sa.ss_family == AF_INET6 && a->any)
			setsockopt(h->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		err = bind(h->fd, (struct sockaddr *)&a->sa, a->salen) ? -errno : 0;
	}
	if (err)
		return log_ret(err, "metrics.listen %s: bind: %s", h->listen, strerror(-err));
	if (listen(h->fd, 16))
		return log_ret(-errno, "metrics.listen %s: listen: %s", h->listen, strerror(errno));
	return 0;
}

/* ---- TLS ---- */

static void log_tls_error(const char *what, const char *path)
{
	char buf[256] = "unknown error";
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	log_error("metrics web config: %s %s: %s", what, path, buf);
}

static int tls_setup(struct httpd *h)
{
	const struct webconfig *w = h->web;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int ver;

	if (!ctx)
		return -ENOMEM;
	ver = w->min_version == WEB_TLS13 ? TLS1_3_VERSION : TLS1_2_VERSION;
	SSL_CTX_set_min_proto_version(ctx, ver);
	if (w->max_version == WEB_TLS12)
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, w->cert_file) != 1) {
		log_tls_error("cert_file", w->cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, w->key_file, SSL_FILETYPE_PEM) != 1) {
		log_tls_error("key_file", w->key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		log_tls_error("key_file does not match cert_file", w->key_file);
		goto fail;
	}
	if (w->client_auth != WEB_CLIENT_NONE) {
		int mode = SSL_VERIFY_PEER;

		if (SSL_CTX_load_verify_locations(ctx, w->client_ca_file, NULL) != 1) {
			log_tls_error("client_ca_file", w->client_ca_file);
			goto fail;
		}
		if (w->client_auth == WEB_CLIENT_REQUIRE_AND_VERIFY)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
	}
	h->tls = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -EINVAL;
}

/* ---- client I/O ---- */

static void client_close(struct hclient *c);

/* >0 bytes, 0 at end of stream, -EAGAIN (wants set), or another -errno.
 * more: more follows at once (the body after the headers): one segment, not
 * a small one that waits for the peer's delayed ACK. */
static ssize_t c_io(struct hclient *c, void *buf, size_t n, bool writing, bool more)
{
	ssize_t r;
	int e;

	c->want_read = c->want_write = false;
	if (!c->ssl) {
		r = writing ? send(c->fd, buf, n,
				   MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0))
			    : recv(c->fd, buf, n, MSG_DONTWAIT);
		if (r >= 0)
			return r;
		if (errno == EAGAIN || errno == EINTR) {
			c->want_read = !writing;
			c->want_write = writing;
			return -EAGAIN;
		}
		return -errno;
	}
	ERR_clear_error();
	r = writing ? SSL_write(c->ssl, buf, (int)MIN(n, (size_t)INT32_MAX))
		    : SSL_read(c->ssl, buf, (int)MIN(n, (size_t)INT32_MAX));
	if (r > 0)
		return r;
	e = SSL_get_error(c->ssl, (int)r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->want_read = e == SSL_ERROR_WANT_READ;
		c->want_write = e == SSL_ERROR_WANT_WRITE;
		return -EAGAIN;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	ERR_clear_error();
	return -EIO;
}

static void set_events(struct hclient *c)
{
	uint32_t ev = 0;

	if (c->want_read)
		ev |= EPOLLIN;
	if (c->want_write)
		ev |= EPOLLOUT;
	if (!ev && c->state == C_READ)
		ev = EPOLLIN;
	if (!ev && c->state == C_WRITE)
		ev = EPOLLOUT;
	if (ev != c->events) {
		loop_mod_fd(c->h->opts.loop, c->fd, ev);
		c->events = ev;
	}
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Error";
}

/* Queues a response; body is taken over (may be NULL for the reason phrase). */
static void respond(struct hclient *c, int status, const char *ctype, char *body, size_t len,
		    const char *extra)
{
	struct httpd *h = c->h;

	if (!body) {
		if (asprintf(&body, "%d %s\n", status, reason_phrase(status)) < 0)
			body = NULL;
		len = body ? strlen(body) : 0;
		ctype = "text/plain; charset=utf-8";
	}
	c->body = body;
	c->body_len = c->head_only ? 0 : len;
	c->body_off = 0;
	c->head_len =
		(size_t)snprintf(c->head, sizeof(c->head),
				 "HTTP/1.1 %d %s\r\n"
				 "Content-Type: %s\r\n"
				 "Content-Length: %zu\r\n"
				 "%s%s\r\n",
				 status, reason_phrase(status), ctype, len, extra ? extra : "",
				 c->keep_alive ? "" : "Connection: close\r\n");
	c->head_off = 0;
	c->state = C_WRITE;
	c->deadline_ms = now_ms() + h->opts.timeout_ms;
}

/* ---- requests ---- */

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) || line[n] != ':')
		return false;
	*value = line + n + 1;
	while (**value == ' ' || **value == '\t')
		(*value)++;
	return true;
}

static bool has_token(const char *v, size_t len, const char *token)
{
	size_t n = strlen(token);

	for (size_t i = 0; i + n <= len; i++)
		if (!strncasecmp(v + i, token, n) &&
		    (i == 0 || v[i - 1] == ' ' || v[i - 1] == ',') &&
		    (i + n == len || v[i + n] == ',' || v[i + n] == ' '))
			return true;
	return false;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes standard base64 into out (NUL-terminated); -1 when malformed or too long. */
static ssize_t b64decode(const char *in, size_t len, char *out, size_t max)
{
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;

	while (len && (in[len - 1] == '=' || in[len - 1] == ' ' || in[len - 1] == '\t'))
		len--;
	for (size_t i = 0; i < len; i++) {
		int v = b64val((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= max)
				return -1;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return (ssize_t)o;
}

static void auth_mac(struct httpd *h, int user, const char *password, unsigned char *mac)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned len = 32;

	memset(mac, 0, 32);
	if (!md)
		return;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, h->cache_key, sizeof(h->cache_key));
	EVP_DigestUpdate(md, &user, sizeof(user));
	EVP_DigestUpdate(md, password, strlen(password));
	EVP_DigestFinal_ex(md, mac, &len);
	EVP_MD_CTX_free(md);
}

static bool auth_cached(struct httpd *h, int user, const char *password)
{
	unsigned char mac[32];
	bool hit = false;

	auth_mac(h, user, password, mac);
	for (unsigned i = 0; i < AUTH_CACHE; i++) {
		struct auth_entry *e = &h->cache[i];

		if (e->valid && e->user == user && CRYPTO_memcmp(e->mac, mac, 32) == 0) {
			e->used = ++h->cache_clock;
			hit = true;
		}
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return hit;
}

static void auth_remember(struct httpd *h, int user, const char *password)
{
	struct auth_entry *slot = &h->cache[0];

	for (unsigned i = 0; i < AUTH_CACHE; i++) {
		if (!h->cache[i].valid) {
			slot = &h->cache[i];
			break;
		}
		if (h->cache[i].used < slot->used)
			slot = &h->cache[i];
	}
	auth_mac(h, user, password, slot->mac);
	slot->user = user;
	slot->used = ++h->cache_clock;
	slot->valid = true;
}

static void serve(struct hclient *c)
{
	struct httpd *h = c->h;
	struct httpd_response resp = {0};
	struct httpd_request req = {
		.method = c->method,
		.path = c->path,
		.accept = c->accept,
		.user = c->user >= 0 ? h->web->users[c->user].name : NULL,
		.max_body = h->opts.max_response,
	};

	h->opts.handler(h->opts.ctx, &req, &resp);
	if (resp.body && resp.len > h->opts.max_response) {
		free(resp.body);
		respond(c, 500, NULL, NULL, 0, NULL);
		return;
	}
	respond(c, resp.status ? resp.status : 200,
		resp.content_type ? resp.content_type : "text/plain; charset=utf-8", resp.body,
		resp.len, NULL);
}

static void auth_failed(struct hclient *c)
{
	struct httpd *h = c->h;

	if (h->st.auth++ % REFUSE_LOG_EVERY == 0)
		log_warn("metrics endpoint: refused a request without valid credentials (%llu so "
			 "far)",
			 (unsigned long long)h->st.auth);
	respond(c, 401, NULL, NULL, 0,
		"WWW-Authenticate: Basic realm=\"autotrace\", charset=\"UTF-8\"\r\n");
}

static void auth_dispatch(struct httpd *h);

/* Checks the credentials of a parsed request; answers or queues a check. */
static void authorize(struct hclient *c, const char *auth, size_t len)
{
	struct httpd *h = c->h;
	char decoded[WEBCONFIG_USER_MAX + PASSWORD_MAX + 2];
	char *colon;
	ssize_t n;

	c->user = -1;
	if (!auth || len < 6 || strncasecmp(auth, "Basic ", 6)) {
		auth_failed(c);
		return;
	}
	n = b64decode(auth + 6, len - 6, decoded, sizeof(decoded));
	colon = n > 0 ? memchr(decoded, ':', (size_t)n) : NULL;
	if (!colon || strlen(colon + 1) >= PASSWORD_MAX || (size_t)n != strlen(decoded)) {
		explicit_bzero(decoded, sizeof(decoded));
		auth_failed(c);
		return;
	}
	*colon = '\0';
	for (unsigned i = 0; i < h->web->nusers; i++)
		if (!strcmp(h->web->users[i].name, decoded))
			c->user = (int)i;
	snprintf(c->password, sizeof(c->password), "%s", colon + 1);
	explicit_bzero(decoded, sizeof(decoded));
	if (c->user >= 0 && auth_cached(h, c->user, c->password)) {
		explicit_bzero(c->password, sizeof(c->password));
		serve(c);
		return;
	}
	/* every uncached check costs ~0.1 s of CPU: a guesser gets a few a second */
	if (!bucket_take(&h->checks)) {
		explicit_bzero(c->password, sizeof(c->password));
		h->st.rate++;
		respond(c, 429, NULL, NULL, 0, "Retry-After: 1\r\n");
		return;
	}
	c->state = C_AUTH;
	c->deadline_ms = now_ms() + h->opts.timeout_ms;
	c->auth_next = NULL;
	{
		struct hclient **pp = &h->auth.queue;

		while (*pp)
			pp = &(*pp)->auth_next;
		*pp = c;
	}
	auth_dispatch(h);
}

/* Parses the request in c->in (complete through end); answers or queues. */
static void handle_request(struct hclient *c, size_t end)
{
	struct httpd *h = c->h;
	const char *p = c->in, *lim = c->in + end, *line_end, *auth = NULL, *v;
	size_t auth_len = 0;
	char target[1024];
	int major = 0, minor = -1;
	bool conn_close = false, conn_keep = false, body = false;

	h->st.requests++;
	c->idle = false;
	c->head_only = false;
	c->user = -1;
	c->accept[0] = '\0';
	line_end = memchr(p, '\n', (size_t)(lim - p));
	{
		size_t ll = (size_t)(line_end - p);
		char line[1100];
		int n = 0;

		if (ll && p[ll - 1] == '\r')
			ll--;
		if (ll >= sizeof(line)) {
			h->st.bad++;
			c->keep_alive = false;
			respond(c, 400, NULL, NULL, 0, NULL);
			return;
		}
		memcpy(line, p, ll);
		line[ll] = '\0';
		if (sscanf(line, "%7[A-Z] %1023s HTTP/%d.%d%n", c->method, target, &major, &minor,
			   &n) != 4 ||
		    (size_t)n != ll || target[0] != '/') {
			h->st.bad++;
			c->keep_alive = false;
			respond(c, 400, NULL, NULL, 0, NULL);
			return;
		}
		if (major != 1 || minor < 0 || minor > 9) {
			h->st.bad++;
			c->keep_alive = false;
			respond(c, 505, NULL, NULL, 0, NULL);
			return;
		}
	}
	for (p = line_end + 1; p < lim; p = line_end + 1) {
		size_t ll;

		line_end = memchr(p, '\n', (size_t)(lim - p));
		if (!line_end)
			break;
		ll = (size_t)(line_end - p);
		if (ll && p[ll - 1] == '\r')
			ll--;
		if (!ll)
			break;
		if (*p == ' ' || *p == '\t' || !memchr(p, ':', ll)) {
			/* obsolete line folding, or no field name: refused as RFC 9112 asks */
			h->st.bad++;
			c->keep_alive = false;
			respond(c, 400, NULL, NULL, 0, NULL);
			return;
		}
		if (header_is(p, ll, "Accept", &v)) {
			snprintf(c->accept, sizeof(c->accept), "%.*s", (int)(p + ll - v), v);
		} else if (header_is(p, ll, "Authorization", &v)) {
			auth = v;
			auth_len = (size_t)(p + ll - v);
		} else if (header_is(p, ll, "Connection", &v)) {
			conn_close |= has_token(v, (size_t)(p + ll - v), "close");
			conn_keep |= has_token(v, (size_t)(p + ll - v), "keep-alive");
		} else if (header_is(p, ll, "Content-Length", &v)) {
			body |= strtoull(v, NULL, 10) != 0 || *v == '-';
		} else if (header_is(p, ll, "Transfer-Encoding", &v)) {
			body = true;
		}
	}
	c->keep_alive = minor >= 1 ? !conn_close : conn_keep;
	{
		char *q = strpbrk(target, "?#");

		if (q)
			*q = '\0';
		snprintf(c->path, sizeof(c->path), "%s", target);
	}
	if (body) {
		/* scrapers send no bodies; where one would end is not worth finding out */
		h->st.bad++;
		c->keep_alive = false;
		respond(c, 400, NULL, NULL, 0, NULL);
		return;
	}
	if (strcmp(c->method, "GET") && strcmp(c->method, "HEAD")) {
		respond(c, 405, NULL, NULL, 0, "Allow: GET, HEAD\r\n");
		return;
	}
	c->head_only = !strcmp(c->method, "HEAD");
	if (h->web && h->web->nusers) {
		char auth_copy[1024];

		if (auth && auth_len >= sizeof(auth_copy))
			auth = NULL;
		if (auth) {
			memcpy(auth_copy, auth, auth_len);
			auth_copy[auth_len] = '\0';
		}
		authorize(c, auth ? auth_copy : NULL, auth_len);
		explicit_bzero(auth_copy, sizeof(auth_copy));
		return;
	}
	serve(c);
}

/* ---- the password-check worker ---- */

static void *auth_main(void *arg)
{
	struct auth_worker *w = arg;
	struct crypt_data *cd = calloc(1, sizeof(*cd));

	pthread_mutex_lock(&w->mu);
	for (;;) {
		char password[PASSWORD_MAX], hash[WEBCONFIG_HASH_LEN + 1];
		const char *out;
		bool ok;
		uint64_t one = 1;

		while (!w->stop && !w->pending)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		memcpy(password, w->password, sizeof(password));
		memcpy(hash, w->hash, sizeof(hash));
		explicit_bzero(w->password, sizeof(w->password));
		w->pending = false;
		pthread_mutex_unlock(&w->mu);

		out = cd ? crypt_r(password, hash, cd) : NULL;
		ok = out && strlen(out) == strlen(hash) &&
		     CRYPTO_memcmp(out, hash, strlen(hash)) == 0;
		explicit_bzero(password, sizeof(password));
		if (cd)
			explicit_bzero(cd, sizeof(*cd));

		pthread_mutex_lock(&w->mu);
		w->ok = ok;
		w->done = true;
		if (write(w->efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow with one write per check */
		}
	}
	pthread_mutex_unlock(&w->mu);
	free(cd);
	return NULL;
}

/* A hash of a password nobody has: unknown users cost what known ones do. */
static const char decoy_hash[] = "$2b$10$KMm7fI4CJ6dfVjX4ZPEiY.ruUBWJ18gcuJE8aLfNIseZH5KvwZWvq";

static void auth_dispatch(struct httpd *h)
{
	struct auth_worker *w = &h->auth;
	struct hclient *c;

	if (w->client || !w->queue)
		return;
	c = w->queue;
	w->queue = c->auth_next;
	c->auth_next = NULL;
	w->client = c;
	pthread_mutex_lock(&w->mu);
	memcpy(w->password, c->password, sizeof(w->password));
	snprintf(w->hash, sizeof(w->hash), "%s",
		 c->user >= 0 ? h->web->users[c->user].hash : decoy_hash);
	w->pending = true;
	w->done = false;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void client_progress(struct hclient *c);

static void on_auth_done(void *ctx, int fd, uint32_t events)
{
	struct httpd *h = ctx;
	struct auth_worker *w = &h->auth;
	uint64_t cpu0 = thread_cpu_ns(), n;
	struct hclient *c;
	bool ok;

	(void)events;
	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return;
	pthread_mutex_lock(&w->mu);
	ok = w->ok && w->done;
	w->done = false;
	pthread_mutex_unlock(&w->mu);
	c = w->client;
	w->client = NULL;
	if (c) {
		if (ok && c->user >= 0) {
			auth_remember(h, c->user, c->password);
			explicit_bzero(c->password, sizeof(c->password));
			serve(c);
		} else {
			explicit_bzero(c->password, sizeof(c->password));
			auth_failed(c);
		}
		client_progress(c);
	}
	auth_dispatch(h);
	h->st.cpu_ns += thread_cpu_ns() - cpu0;
}

static int auth_start(struct httpd *h)
{
	struct auth_worker *w = &h->auth;
	int err;

	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0)
		return -errno;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	err = -pthread_create(&w->thread, NULL, auth_main, w);
	if (err)
		return err;
	w->started = true;
	return loop_add_fd(h->opts.loop, w->efd, EPOLLIN, on_auth_done, h);
}

static void auth_stop(struct httpd *h)
{
	struct auth_worker *w = &h->auth;

	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		/* at most one check in progress: bounded by the bcrypt cost */
		pthread_join(w->thread, NULL);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		explicit_bzero(w->password, sizeof(w->password));
	}
	if (w->efd > 0) {
		loop_del_fd(h->opts.loop, w->efd);
		close(w->efd);
	}
}

/* ---- the client state machine ---- */

static void client_close(struct hclient *c)
{
	struct httpd *h = c->h;
	struct hclient **pp = &h->clients;

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = c->next;
		h->nclients--;
	}
	for (pp = &h->auth.queue; *pp; pp = &(*pp)->auth_next) {
		if (*pp == c) {
			*pp = c->auth_next;
			break;
		}
	}
	if (h->auth.client == c)
		h->auth.client = NULL; /* the check finishes and is thrown away */
	loop_del_fd(h->opts.loop, c->fd);
	if (c->ssl) {
		SSL_set_quiet_shutdown(c->ssl, 1);
		SSL_free(c->ssl);
	}
	close(c->fd);
	free(c->body);
	explicit_bzero(c->password, sizeof(c->password));
	free(c);
}

/* End of the request headers in c->in, 0 when not there yet. */
static size_t request_end(const struct hclient *c)
{
	for (size_t i = 0; i + 1 < c->in_len; i++) {
		if (c->in[i] != '\n')
			continue;
		if (c->in[i + 1] == '\n')
			return i + 2;
		if (i + 2 < c->in_len && c->in[i + 1] == '\r' && c->in[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Runs the client as far as its socket allows; may free it. */
static void client_progress(struct hclient *c)
{
	struct httpd *h = c->h;

	for (;;) {
		ssize_t r;
		size_t end;

		switch (c->state) {
		case C_HANDSHAKE:
			ERR_clear_error();
			r = SSL_accept(c->ssl);
			if (r == 1) {
				c->state = C_READ;
				c->want_read = c->want_write = false;
				continue;
			}
			{
				int e = SSL_get_error(c->ssl, (int)r);

				c->want_read = e == SSL_ERROR_WANT_READ;
				c->want_write = e == SSL_ERROR_WANT_WRITE;
				if (c->want_read || c->want_write)
					goto wait;
				ERR_clear_error();
				h->st.bad++;
				client_close(c);
				return;
			}
		case C_READ:
			end = request_end(c);
			if (end) {
				handle_request(c, end);
				memmove(c->in, c->in + end, c->in_len - end);
				c->in_len -= end;
				continue;
			}
			if (c->in_len == sizeof(c->in)) {
				h->st.bad++;
				c->keep_alive = false;
				c->in_len = 0;
				respond(c, 431, NULL, NULL, 0, NULL);
				continue;
			}
			r = c_io(c, c->in + c->in_len, sizeof(c->in) - c->in_len, false, false);
			if (r == -EAGAIN)
				goto wait;
			if (r <= 0) {
				client_close(c);
				return;
			}
			c->in_len += (size_t)r;
			continue;
		case C_AUTH:
			c->want_read = c->want_write = false;
			goto wait;
		case C_WRITE:
			if (c->head_off < c->head_len) {
				r = c_io(c, c->head + c->head_off, c->head_len - c->head_off, true,
					 c->body_len > 0);
			} else if (c->body_off < c->body_len) {
				r = c_io(c, c->body + c->body_off, c->body_len - c->body_off, true,
					 false);
			} else {
				free(c->body);
				c->body = NULL;
				if (!c->keep_alive) {
					client_close(c);
					return;
				}
				c->state = C_READ;
				c->idle = c->in_len == 0;
				c->deadline_ms = now_ms() + h->opts.timeout_ms;
				continue;
			}
			if (r == -EAGAIN)
				goto wait;
			if (r <= 0) {
				client_close(c);
				return;
			}
			h->st.bytes_sent += (uint64_t)r;
			if (c->head_off < c->head_len)
				c->head_off += (size_t)r;
			else
				c->body_off += (size_t)r;
			continue;
		}
	}
wait:
	set_events(c);
}

static void on_client(void *ctx, int fd, uint32_t events)
{
	struct hclient *c = ctx;
	struct httpd *h = c->h;
	uint64_t cpu0 = thread_cpu_ns();

	(void)fd;
	if ((events & (EPOLLHUP | EPOLLERR)) && c->state == C_AUTH) {
		client_close(c);
	} else {
		client_progress(c);
	}
	h->st.cpu_ns += thread_cpu_ns() - cpu0;
}

/* Refuses a connection before any byte of it is read. */
static void refuse_now(struct httpd *h, int fd, int status)
{
	char msg[160];
	int n;

	/* a TLS client would not understand plain text: just close */
	if (!h->tls) {
		n = snprintf(msg, sizeof(msg),
			     "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n%s\r\n",
			     status, reason_phrase(status),
			     status == 503 ? "Retry-After: 1\r\n" : "");
		if (send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* best effort */
		}
	}
	close(fd);
}

/* The oldest connection that waits for nothing but a next request. */
static struct hclient *idle_victim(struct httpd *h)
{
	struct hclient *v = NULL;

	for (struct hclient *c = h->clients; c; c = c->next)
		if (c->state == C_READ && c->idle && c->in_len == 0)
			v = c; /* the list is newest first: the last match is the oldest */
	return v;
}

static void on_listen(void *ctx, int lfd, uint32_t events)
{
	struct httpd *h = ctx;
	uint64_t cpu0 = thread_cpu_ns();

	(void)events;
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		struct hclient *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			break;
		if (!bucket_take(&h->connects)) {
			if (h->st.rate++ % REFUSE_LOG_EVERY == 0)
				log_warn("metrics endpoint: connections arrive faster than %d/s; "
					 "refusing (%llu so far)",
					 HTTPD_CONNECTS_PER_S, (unsigned long long)h->st.rate);
			refuse_now(h, fd, 503);
			continue;
		}
		if (h->nclients >= h->opts.max_clients) {
			struct hclient *v = idle_victim(h);

			if (v) {
				client_close(v);
			} else {
				if (h->st.full++ % REFUSE_LOG_EVERY == 0)
					log_warn("metrics endpoint: %u clients already "
						 "(metrics.max_clients); refusing (%llu so far)",
						 h->opts.max_clients,
						 (unsigned long long)h->st.full);
				refuse_now(h, fd, 503);
				continue;
			}
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		if (!h->addr.unix_path) {
			int one = 1;

			/* responses are written whole: nothing is gained by waiting to coalesce */
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		c->h = h;
		c->fd = fd;
		c->user = -1;
		c->state = h->tls ? C_HANDSHAKE : C_READ;
		c->deadline_ms = now_ms() + h->opts.timeout_ms;
		c->events = EPOLLIN;
		if (h->tls) {
			c->ssl = SSL_new(h->tls);
			if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
				SSL_free(c->ssl);
				free(c);
				close(fd);
				continue;
			}
		}
		if (loop_add_fd(h->opts.loop, fd, EPOLLIN, on_client, c)) {
			SSL_free(c->ssl);
			free(c);
			close(fd);
			continue;
		}
		c->next = h->clients;
		h->clients = c;
		h->nclients++;
		h->st.accepted++;
	}
	h->st.cpu_ns += thread_cpu_ns() - cpu0;
}

static void on_sweep(void *ctx, struct loop_timer *t)
{
	struct httpd *h = ctx;
	uint64_t now = now_ms();
	struct hclient *c = h->clients, *next;

	(void)t;
	for (; c; c = next) {
		next = c->next;
		if (now < c->deadline_ms)
			continue;
		/* an idle kept-alive connection simply ends; anything else was too slow */
		if (!(c->state == C_READ && c->idle && c->in_len == 0))
			h->st.timeout++;
		client_close(c);
	}
}

/* ---- the server ---- */

int httpd_new(struct httpd **out, const struct httpd_opts *opts)
{
	struct httpd *h;
	char why[256];
	int err;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fd = -1;
	h->auth.efd = -1;
	h->opts = *opts;
	h->opts.prev = NULL;
	if (!h->opts.max_clients)
		h->opts.max_clients = HTTPD_DEFAULT_MAX_CLIENTS;
	if (!h->opts.timeout_ms)
		h->opts.timeout_ms = HTTPD_DEFAULT_TIMEOUT_MS;
	snprintf(h->listen, sizeof(h->listen), "%s", opts->listen);
	h->connects = (struct bucket){2 * HTTPD_CONNECTS_PER_S, 2 * HTTPD_CONNECTS_PER_S,
				      HTTPD_CONNECTS_PER_S, now_ms()};
	h->checks = (struct bucket){4, 4, HTTPD_PASSWORD_CHECKS_PER_S, now_ms()};
	err = httpd_parse_listen(h->listen, &h->addr, why, sizeof(why));
	if (err) {
		log_error("metrics.listen: %s", why);
		goto fail;
	}
	if (opts->web) {
		h->web = malloc(sizeof(*h->web));
		if (!h->web) {
			err = -ENOMEM;
			goto fail;
		}
		*h->web = *opts->web;
	}
	if (!h->addr.loopback && !(h->web && (h->web->tls || h->web->nusers))) {
		if (!opts->allow_insecure) {
			err = log_ret(
				-EPERM,
				"metrics.listen %s: reachable beyond this host without TLS or "
				"basic authentication; set metrics.web_config (docs/"
				"prometheus.md), or metrics.allow_insecure: true to accept "
				"that anyone who can reach the port reads the node's metrics",
				h->listen);
			goto fail;
		}
		log_warn("metrics.listen %s: plain HTTP without authentication beyond this host "
			 "(metrics.allow_insecure)",
			 h->listen);
	}
	if (h->web && h->web->tls && (err = tls_setup(h)))
		goto fail;
	if (getrandom(h->cache_key, sizeof(h->cache_key), 0) != sizeof(h->cache_key)) {
		err = -EIO;
		goto fail;
	}
	if (opts->prev && opts->prev->fd >= 0 && !strcmp(opts->prev->listen, h->listen)) {
		/* the same address: carry the socket over, connections queued on it too */
		struct httpd *p = opts->prev;

		loop_del_fd(p->opts.loop, p->fd);
		h->fd = p->fd;
		h->owns_path = p->owns_path;
		h->dev = p->dev;
		h->ino = p->ino;
		p->fd = -1;
		p->owns_path = false;
	} else {
		err = open_listener(h);
		if (err == -EADDRINUSE && opts->prev && opts->prev->fd >= 0) {
			/* another address on the old one's port (127.0.0.1:P -> :P): the
			 * old endpoint lets go first */
			struct httpd *p = opts->prev;

			loop_del_fd(p->opts.loop, p->fd);
			close(p->fd);
			p->fd = -1;
			close(h->fd);
			h->fd = -1;
			err = open_listener(h);
		}
		if (err)
			goto fail;
	}
	format_bound(h);
	err = loop_add_fd(h->opts.loop, h->fd, EPOLLIN, on_listen, h);
	if (!err)
		err = loop_timer_new(h->opts.loop, 1000000000ull, 1000000000ull, on_sweep, h,
				     &h->sweep);
	if (!err && h->web && h->web->nusers)
		err = auth_start(h);
	if (err)
		goto fail;
	*out = h;
	return 0;
fail:
	httpd_free(&h);
	return err;
}

void httpd_free(struct httpd **ph)
{
	struct httpd *h = ph ? *ph : NULL;
	struct stat st;

	if (!h)
		return;
	while (h->clients)
		client_close(h->clients);
	auth_stop(h);
	loop_timer_free(&h->sweep);
	if (h->fd >= 0) {
		loop_del_fd(h->opts.loop, h->fd);
		close(h->fd);
		/* the socket file only if it is still ours, not a successor's */
		if (h->owns_path && stat(h->listen, &st) == 0 && st.st_dev == h->dev &&
		    st.st_ino == h->ino)
			unlink(h->listen);
	}
	SSL_CTX_free(h->tls);
	if (h->web)
		explicit_bzero(h->web, sizeof(*h->web));
	free(h->web);
	explicit_bzero(h->cache, sizeof(h->cache));
	explicit_bzero(h->cache_key, sizeof(h->cache_key));
	free(h);
	*ph = NULL;
}

const char *httpd_address(const struct httpd *h)
{
	return h->bound;
}

json_t *httpd_stats(const struct httpd *h)
{
	return json_pack("{s:s,s:b,s:b,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I},s:I,s:f}", "listen",
			 h->bound, "tls", h->tls != NULL, "basic_auth",
			 h->web && h->web->nusers > 0, "clients", (json_int_t)h->nclients,
			 "accepted", (json_int_t)h->st.accepted, "requests",
			 (json_int_t)h->st.requests, "refused", "full", (json_int_t)h->st.full,
			 "rate", (json_int_t)h->st.rate, "auth", (json_int_t)h->st.auth, "timeout",
			 (json_int_t)h->st.timeout, "bad", (json_int_t)h->st.bad, "bytes_sent",
			 (json_int_t)h->st.bytes_sent, "cpu_seconds", (double)h->st.cpu_ns / 1e9);
}
