// SPDX-License-Identifier: GPL-2.0-only
#include "storage/essink.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "storage/esauth.h"
#include "storage/esbulk.h"
#include "storage/httpclient.h"
#include "storage/spool.h"

#define RESPONSE_MAX   (64u << 20) /* answers beyond are cut off and the request failed */
#define IDLE_CHECK_MS  60000	   /* spool age bound enforced at least this often */
#define ERROR_RELOG_MS 60000	   /* the same error is logged again at most this often */
#define STATUS_URL_MAX CFG_STR_MAX

enum req_kind { REQ_NONE, REQ_DS_PROBE, REQ_TEMPLATE_GET, REQ_TEMPLATE_PUT, REQ_BULK };

struct batch_item {
	char id[40];
};

/* The request in flight, and once answered what the handlers read of it. */
struct request {
	enum req_kind kind;
	unsigned url; /* index of the URL it went to */
	size_t raw_len, sent_len;
	struct batch_item *items;
	size_t nitems;
	const char *resp; /* the answer's body, never NULL */
	size_t resp_len;
};

struct counters {
	uint64_t shipped, duplicates, retried, rejected, requests, request_failures;
	uint64_t bytes_sent, bytes_raw, spool_errors, evicted_age, evicted_size;
};

struct essink {
	struct loop *loop;
	struct http_client *http;
	struct loop_timer *wake;
	struct spool *spool;

	char urls[CFG_LIST_MAX][CFG_STR_MAX];
	unsigned nurls, cur;
	char prefix[128], ds_name[160], template_name[160];
	bool want_ds, use_ds, ds_probed, manage_template, template_ok;
	char ilm_policy[128];
	json_t *template_doc;
	json_int_t template_version;
	char template_state[64];

	struct esauth auth;
	char ca_file[PATH_MAX], client_cert[PATH_MAX], client_key[PATH_MAX];
	struct http_tls tls;
	bool gzip;
	long connect_timeout_ms, timeout_ms;
	size_t bulk_max_docs, bulk_max_bytes, batch_limit;
	uint64_t backoff_initial_ms, backoff_max_ms;

	struct request req;
	unsigned fail_streak; /* consecutive failed requests */
	bool unreachable;     /* the last request got no HTTP answer */
	bool ever_answered;
	uint64_t backoff_until_ms;
	char last_error[512];
	uint64_t last_error_real_ms, last_error_logged_ms, last_ok_real_ms;
	char last_rejected[40], last_reject_reason[512];
	uint64_t rnd;
	struct counters c;
};

static uint64_t mono_ms(void)
{
	return now_mono_ns() / 1000000;
}

static uint32_t next_rand(struct essink *s)
{
	/* xorshift64: jitter only needs to differ between agents, not be secret */
	s->rnd ^= s->rnd << 13;
	s->rnd ^= s->rnd >> 7;
	s->rnd ^= s->rnd << 17;
	return (uint32_t)(s->rnd >> 11);
}

static const char *cur_url(const struct essink *s)
{
	return s->urls[s->cur];
}

static void set_error(struct essink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Remembers the error for status; logs it when it is new, and again once a
 * minute while it lasts, so a cluster down for a day does not flood the log. */
static void set_error(struct essink *s, const char *fmt, ...)
{
	uint64_t now = mono_ms();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(msg, s->last_error) || now - s->last_error_logged_ms >= ERROR_RELOG_MS ||
	    !s->last_error_logged_ms) {
		log_error("elasticsearch: %s", msg);
		s->last_error_logged_ms = now;
	}
	snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
	s->last_error_real_ms = now_real_ms();
}

/* ---- configuration ---- */

static int check_url(const char *url)
{
	const char *host;
	size_t auth_len;

	if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else
		return log_ret(-EINVAL,
			       "storage.elasticsearch.urls: '%s' is not an http:// or "
			       "https:// URL",
			       url);
	auth_len = strcspn(host, "/?#");
	/* credentials in a URL end up in logs and status output: refuse them */
	if (memchr(host, '@', auth_len))
		return log_ret(-EINVAL, "storage.elasticsearch.urls: an entry holds credentials; "
					"use username + password_file or api_key_file");
	if (!auth_len || strpbrk(url, " \t\r\n?#"))
		return log_ret(-EINVAL,
			       "storage.elasticsearch.urls: '%s' is not a usable URL "
			       "(no host, or a query or fragment)",
			       url);
	return 0;
}

static int load_template(struct essink *s, const char *text)
{
	json_error_t jerr;
	json_t *doc = json_loads(text, 0, &jerr);

	if (!json_is_object(doc) || !json_is_integer(json_object_get(doc, "version")) ||
	    !json_is_object(json_object_get(doc, "template"))) {
		json_decref(doc);
		return log_ret(-EINVAL, "elasticsearch index template: %s:%d: %s",
			       jerr.text[0] ? "invalid JSON" : "no version or template", jerr.line,
			       jerr.text);
	}
	s->template_doc = doc;
	s->template_version = json_integer_value(json_object_get(doc, "version"));
	return 0;
}

/* The template as this sink installs it: its index pattern and mode. */
static json_t *template_body(const struct essink *s)
{
	json_t *t = json_deep_copy(s->template_doc);
	char pattern[200];

	if (s->use_ds) {
		json_object_set_new(t, "index_patterns", json_pack("[s]", s->ds_name));
		json_object_set_new(t, "data_stream", json_object());
		/* above the daily template, whose PREFIX-* also matches the stream */
		json_object_set_new(
			t, "priority",
			json_integer(json_integer_value(json_object_get(t, "priority")) + 1));
	} else {
		snprintf(pattern, sizeof(pattern), "%s-*", s->prefix);
		json_object_set_new(t, "index_patterns", json_pack("[s]", pattern));
		json_object_del(t, "data_stream");
	}
	if (s->ilm_policy[0]) {
		json_t *settings = json_object_get(json_object_get(t, "template"), "settings");
		json_t *index = json_object_get(settings, "index");

		if (!json_is_object(index)) {
			index = json_object();
			json_object_set_new(settings, "index", index);
		}
		json_object_set_new(index, "lifecycle", json_pack("{s:s}", "name", s->ilm_policy));
	}
	{
		/* what this agent would install, so a changed option (prefix, mode,
		 * ILM policy) is noticed without comparing Elasticsearch's rewrite */
		char *text = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS), hex[24];
		uint64_t h = 1469598103934665603ull;

		for (const char *c = text ? text : ""; *c; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ull;
		free(text);
		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
		if (!json_is_object(json_object_get(t, "_meta")))
			json_object_set_new(t, "_meta", json_object());
		json_object_set_new(json_object_get(t, "_meta"), "autotrace_body_hash",
				    json_string(hex));
	}
	return t;
}

static void update_template_name(struct essink *s)
{
	snprintf(s->template_name, sizeof(s->template_name), "%s",
		 s->use_ds ? s->ds_name : s->prefix);
}

/* ---- requests ---- */

static void on_answer(void *ctx, const struct http_answer *a);

static void items_not_inflight(struct essink *s, const struct request *r)
{
	for (size_t i = 0; i < r->nitems; i++) {
		struct spool_item *it = spool_find(s->spool, r->items[i].id);

		if (it)
			it->inflight = false;
	}
}

static void request_abort(struct essink *s)
{
	if (s->http)
		http_client_abort(s->http);
	items_not_inflight(s, &s->req);
	free(s->req.items);
	memset(&s->req, 0, sizeof(s->req));
}

/* Starts one request on the current URL; body (malloc'd or NULL) is taken over. */
static int request_start(struct essink *s, enum req_kind kind, const char *method, const char *path,
			 const char *content_type, void *body, size_t len)
{
	char url[CFG_STR_MAX + 512];
	struct http_request hr = {
		.method = method,
		.url = url,
		.content_type = content_type,
		.headers = {"Accept: application/json", s->auth.header},
		.body = body,
		.len = len,
		.gzip = s->gzip,
		.username = s->auth.username,
		.password = s->auth.password,
		.tls = &s->tls,
		.connect_timeout_ms = s->connect_timeout_ms,
		.timeout_ms = s->timeout_ms,
	};
	int err;

	snprintf(url, sizeof(url), "%s%s", cur_url(s), path);
	err = http_client_start(s->http, &hr, on_answer, s);
	if (err)
		return err;
	memset(&s->req, 0, sizeof(s->req));
	s->req.kind = kind;
	s->req.url = s->cur;
	s->req.raw_len = len;
	s->c.requests++;
	return 0;
}

/* ---- scheduling ---- */

static void kick(struct essink *s);

static void on_wake(void *ctx, struct loop_timer *t)
{
	struct essink *s = ctx;
	struct spool_evicted ev = {0};

	(void)t;
	if (s->req.kind == REQ_NONE) {
		spool_enforce(s->spool, now_real_ms(), &ev);
		if (ev.by_age || ev.by_size) {
			s->c.evicted_age += ev.by_age;
			s->c.evicted_size += ev.by_size;
			log_warn("elasticsearch spool: evicted %u incidents past spool_max_age and "
				 "%u "
				 "over spool_max_size (%s .. %s): never shipped; the local store "
				 "keeps them while its retention allows",
				 ev.by_age, ev.by_size, ev.oldest, ev.newest);
		}
	}
	kick(s);
}

static void wake_in(struct essink *s, uint64_t ms)
{
	loop_timer_set(s->wake, ms * 1000000ull + 1, 0);
}

/* When nothing can be sent now: wake up for the first retry that comes due. */
static void schedule_idle(struct essink *s, uint64_t now)
{
	uint64_t next = now + IDLE_CHECK_MS;

	/* an item is due at its own retry time, but never while the sink backs off */
	for (size_t i = 0; i < spool_count(s->spool); i++) {
		struct spool_item *it = spool_item_at(s->spool, i);

		if (!it->inflight)
			next = MIN(next, MAX(it->not_before_ms, s->backoff_until_ms));
	}
	/* nothing could be sent just now: never spin, whatever the times say */
	wake_in(s, next > now + 50 ? next - now : 50);
}

static void start_bulk(struct essink *s, uint64_t now);
static void start_template(struct essink *s);

static void kick(struct essink *s)
{
	uint64_t now = mono_ms();

	if (s->req.kind != REQ_NONE)
		return;
	if (now < s->backoff_until_ms) {
		schedule_idle(s, now);
		return;
	}
	if (!s->template_ok) {
		start_template(s);
		if (s->req.kind != REQ_NONE)
			return;
	}
	start_bulk(s, now);
	if (s->req.kind == REQ_NONE)
		schedule_idle(s, now);
}

/* A request failed as a whole: next URL, and back off once all were tried. */
static void request_failed(struct essink *s, bool connection)
{
	uint64_t now = mono_ms();

	s->c.request_failures++;
	s->fail_streak++;
	if (connection) {
		s->unreachable = true;
		/* a new connection may be a new cluster: check the template again */
		if (s->manage_template)
			s->template_ok = false;
	}
	if (s->nurls > 1)
		s->cur = (s->cur + 1) % s->nurls;
	if (s->fail_streak % s->nurls == 0) {
		uint64_t d = esbulk_backoff_ms(s->fail_streak / s->nurls, s->backoff_initial_ms,
					       s->backoff_max_ms, next_rand(s));

		s->backoff_until_ms = now + d;
		log_debug("elasticsearch: next attempt in %llums", (unsigned long long)d);
	}
}

static void request_succeeded(struct essink *s)
{
	if (s->unreachable && s->ever_answered)
		log_info("elasticsearch: %s answers again", cur_url(s));
	else if (!s->ever_answered)
		log_info("elasticsearch: connected to %s", cur_url(s));
	s->unreachable = false;
	s->ever_answered = true;
	s->fail_streak = 0;
	s->backoff_until_ms = 0;
	s->last_ok_real_ms = now_real_ms();
}

/* The error of a request that got no usable answer, in words an SRE can act on. */
static void transport_error(struct essink *s, const struct request *r, const struct http_answer *a)
{
	const char *url = s->urls[r->url];

	switch (a->failure) {
	case HTTP_UNTRUSTED_CERT:
		set_error(s,
			  "TLS: the certificate of %s is not trusted (%s): set "
			  "storage.elasticsearch.ca_file to the CA that signed it",
			  url, a->error);
		break;
	case HTTP_BAD_CA_FILE:
		set_error(s, "TLS: cannot use storage.elasticsearch.ca_file %s (%s)", s->ca_file,
			  a->error);
		break;
	case HTTP_CLIENT_CERT:
		set_error(s, "TLS: the client certificate or key cannot be used (%s)", a->error);
		break;
	case HTTP_TLS_HANDSHAKE:
		set_error(s, "TLS handshake with %s failed (%s)", url, a->error);
		break;
	case HTTP_TIMEOUT:
		set_error(s, "%s did not answer in time (%s)", url, a->error);
		break;
	case HTTP_UNREACHABLE:
	case HTTP_ANSWERED:
		set_error(s, "cannot reach %s (%s)", url, a->error);
		break;
	}
}

/* 401 / 403 / other statuses of a whole request. */
static void http_error(struct essink *s, const struct request *r, const char *what, long status)
{
	const char *url = s->urls[r->url];
	char why[400];

	esbulk_error_text(r->resp, r->resp_len, why, sizeof(why));
	if (status == 401)
		set_error(s,
			  "%s: authentication failed at %s (HTTP 401: %s): check "
			  "storage.elasticsearch.username and password_file, or api_key_file",
			  what, url, why);
	else if (status == 403)
		set_error(s,
			  "%s: permission denied at %s (HTTP 403: %s): the user needs "
			  "create_index and create_doc on %s-*%s",
			  what, url, why, s->prefix,
			  s->manage_template ? ", and manage_index_templates (or set "
					       "manage_template: false)"
					     : "");
	else
		set_error(s, "%s: %s answered HTTP %ld: %s", what, url, status, why);
}

/* ---- index template (and data stream detection) ---- */

static void start_template(struct essink *s)
{
	char path[300];

	if (s->want_ds && !s->ds_probed) {
		snprintf(path, sizeof(path), "/_data_stream/%s", s->ds_name);
		request_start(s, REQ_DS_PROBE, "GET", path, NULL, NULL, 0);
		return;
	}
	if (!s->manage_template) {
		s->template_ok = true;
		return;
	}
	snprintf(path, sizeof(path), "/_index_template/%s", s->template_name);
	request_start(s, REQ_TEMPLATE_GET, "GET", path, NULL, NULL, 0);
}

static void put_template(struct essink *s)
{
	char path[300];
	json_t *t = template_body(s);
	char *body = json_dumps(t, JSON_COMPACT);

	json_decref(t);
	if (!body)
		return;
	snprintf(path, sizeof(path), "/_index_template/%s", s->template_name);
	request_start(s, REQ_TEMPLATE_PUT, "PUT", path, "application/json", body, strlen(body));
}

static void ds_probe_done(struct essink *s, const struct request *r, long status)
{
	char why[300];

	if (status == 401) {
		http_error(s, r, "data stream check", status);
		request_failed(s, false);
		return;
	}
	request_succeeded(s);
	s->ds_probed = true;
	if (status == 200 || status == 404 || status == 403) {
		/* 404: the API exists, the stream is created by the first write */
		s->use_ds = true;
		log_info("elasticsearch: writing to data stream %s", s->ds_name);
	} else {
		esbulk_error_text(r->resp, r->resp_len, why, sizeof(why));
		s->use_ds = false;
		log_warn("elasticsearch: storage.elasticsearch.data_stream is set but %s has no "
			 "data stream API (GET /_data_stream answered HTTP %ld: %s); writing daily "
			 "indices %s-YYYY.MM.DD instead",
			 s->urls[r->url], status, why, s->prefix);
	}
	update_template_name(s);
}

static bool template_current(const struct essink *s, json_t *answer)
{
	json_t *it = json_object_get(json_array_get(json_object_get(answer, "index_templates"), 0),
				     "index_template");
	json_t *want = template_body(s);
	json_int_t have = json_integer_value(json_object_get(it, "version"));
	bool same = false;

	if (have > s->template_version) {
		/* a newer agent in the fleet installed its template: keep it */
		same = true;
	} else if (have == s->template_version) {
		json_t *a = json_object_get(json_object_get(it, "_meta"), "autotrace_body_hash");
		json_t *b = json_object_get(json_object_get(want, "_meta"), "autotrace_body_hash");

		same = json_is_string(a) && json_equal(a, b);
	}
	json_decref(want);
	return same;
}

static void template_get_done(struct essink *s, const struct request *r, long status)
{
	json_error_t jerr;
	json_t *answer;

	if (status == 404) {
		request_succeeded(s);
		put_template(s);
		return;
	}
	if (status != 200) {
		http_error(s, r, "reading the index template", status);
		request_failed(s, false);
		return;
	}
	request_succeeded(s);
	answer = json_loadb(r->resp, r->resp_len, 0, &jerr);
	if (template_current(s, answer)) {
		s->template_ok = true;
		snprintf(s->template_state, sizeof(s->template_state), "current");
		log_debug("elasticsearch: index template %s is current", s->template_name);
	} else {
		put_template(s);
	}
	json_decref(answer);
}

static void template_put_done(struct essink *s, const struct request *r, long status)
{
	if (status == 200) {
		request_succeeded(s);
		s->template_ok = true;
		snprintf(s->template_state, sizeof(s->template_state), "installed");
		log_info("elasticsearch: index template %s version %lld installed (%s)",
			 s->template_name, (long long)s->template_version,
			 s->use_ds ? "data stream" : "daily indices");
		return;
	}
	if (status == 400 && s->use_ds) {
		char why[300];

		esbulk_error_text(r->resp, r->resp_len, why, sizeof(why));
		log_warn("elasticsearch: %s refused a data stream template (%s); writing daily "
			 "indices %s-YYYY.MM.DD instead",
			 s->urls[r->url], why, s->prefix);
		s->use_ds = false;
		update_template_name(s);
		request_succeeded(s);
		return;
	}
	snprintf(s->template_state, sizeof(s->template_state), "failed (HTTP %ld)", status);
	http_error(s, r, "installing the index template", status);
	request_failed(s, false);
}

/* ---- bulk ---- */

static void start_bulk(struct essink *s, uint64_t now)
{
	struct esbuf body = {0};
	struct batch_item *items;
	size_t n = 0, limit = MIN(s->bulk_max_docs, s->batch_limit);

	items = calloc(limit, sizeof(*items));
	if (!items)
		return;
	for (size_t i = 0; i < spool_count(s->spool) && n < limit;) {
		struct spool_item *it = spool_item_at(s->spool, i);
		char index[200], *doc = NULL;
		size_t len = 0, before = body.len;
		int err;

		if (it->inflight || it->not_before_ms > now) {
			i++;
			continue;
		}
		if (n && body.len + it->bytes > s->bulk_max_bytes)
			break;
		err = spool_read(s->spool, it->id, &doc, &len);
		if (err == -ENOENT) {
			/* removed behind our back: nothing left to send */
			log_warn("elasticsearch spool: %s/%s.json vanished", spool_dir(s->spool),
				 it->id);
			spool_ack(s->spool, it->id);
			continue;
		}
		if (err) {
			log_error("elasticsearch spool: reading %s: %s", it->id, strerror(-err));
			it->not_before_ms = now + s->backoff_max_ms;
			i++;
			continue;
		}
		esbulk_index_name(s->prefix, s->use_ds, it->real_ms, index, sizeof(index));
		err = esbulk_append(&body, index, it->id, doc, len);
		free(doc);
		if (err == -EINVAL) {
			char id[40];

			body.len = before;
			snprintf(id, sizeof(id), "%s", it->id);
			s->c.rejected++;
			log_error("elasticsearch: spooled incident %s is not a JSON object; parked "
				  "in "
				  "%s/parked",
				  id, spool_dir(s->spool));
			spool_park(s->spool, id, "not a JSON object");
			continue;
		}
		if (err) {
			esbuf_free(&body);
			free(items);
			return;
		}
		it->inflight = true;
		snprintf(items[n++].id, sizeof(items[0].id), "%s", it->id);
		i++;
	}
	if (!n) {
		esbuf_free(&body);
		free(items);
		return;
	}
	/* the answer names each item; nothing else of it is needed */
	if (request_start(s, REQ_BULK, "POST",
			  "/_bulk?filter_path=errors,items.*._id,items.*.status,items.*.error",
			  "application/x-ndjson", body.p, body.len)) {
		for (size_t i = 0; i < n; i++) {
			struct spool_item *it = spool_find(s->spool, items[i].id);

			if (it)
				it->inflight = false;
		}
		free(items);
		return;
	}
	s->req.items = items;
	s->req.nitems = n;
}

static void park(struct essink *s, const char *id, int status, const char *reason)
{
	char why[700];
	int err;

	snprintf(why, sizeof(why), "HTTP %d: %s", status, reason);
	err = spool_park(s->spool, id, why);
	s->c.rejected++;
	snprintf(s->last_rejected, sizeof(s->last_rejected), "%s", id);
	snprintf(s->last_reject_reason, sizeof(s->last_reject_reason), "%s", why);
	/* loud on purpose: this incident will not reach Kibana without a person */
	log_error("elasticsearch REJECTED incident %s (%s); it is not retried: parked in "
		  "%s/parked%s, and it stays in the local incident store",
		  id, why, spool_dir(s->spool),
		  err ? " (parking failed, removed from the queue)" : "");
	if (err)
		spool_ack(s->spool, id);
}

static void bulk_items_done(struct essink *s, const struct request *r)
{
	struct esbulk_item *res = calloc(r->nitems, sizeof(*res));
	const char **ids = calloc(r->nitems, sizeof(*ids));
	uint64_t now = mono_ms();
	unsigned ok = 0, dup = 0, retry = 0, rej = 0;

	if (!res || !ids) {
		free(res);
		free(ids);
		return;
	}
	for (size_t i = 0; i < r->nitems; i++)
		ids[i] = r->items[i].id;
	if (esbulk_parse_response(r->resp, r->resp_len, ids, r->nitems, res))
		log_warn("elasticsearch: _bulk answer from %s is not a bulk result; retrying its "
			 "%zu "
			 "incidents",
			 s->urls[r->url], r->nitems);
	for (size_t i = 0; i < r->nitems; i++) {
		struct spool_item *it = spool_find(s->spool, ids[i]);

		if (!it)
			continue; /* evicted while in flight */
		it->inflight = false;
		switch (res[i].outcome) {
		case ESB_OK:
			spool_ack(s->spool, ids[i]);
			ok++;
			dup += res[i].duplicate;
			break;
		case ESB_RETRY:
			it->attempts++;
			it->not_before_ms =
				now + esbulk_backoff_ms(it->attempts, s->backoff_initial_ms,
							s->backoff_max_ms, next_rand(s));
			retry++;
			log_warn("elasticsearch: incident %s not stored (HTTP %d: %s); retry %u in "
				 "%llums",
				 ids[i], res[i].status, res[i].reason, it->attempts,
				 (unsigned long long)(it->not_before_ms - now));
			break;
		case ESB_REJECT:
			park(s, ids[i], res[i].status, res[i].reason);
			rej++;
			break;
		}
	}
	s->c.shipped += ok;
	s->c.duplicates += dup;
	s->c.retried += retry;
	log_debug("elasticsearch: _bulk of %zu: %u stored (%u already there), %u to retry, %u "
		  "rejected",
		  r->nitems, ok, dup, retry, rej);
	free(res);
	free(ids);
}

static bool is_es_error(const struct request *r)
{
	json_error_t jerr;
	json_t *j = json_loadb(r->resp, r->resp_len, 0, &jerr);
	bool es = json_is_object(json_object_get(j, "error"));

	json_decref(j);
	return es;
}

static void bulk_done(struct essink *s, const struct request *r, long status)
{
	if (status == 200) {
		request_succeeded(s);
		s->c.bytes_sent += r->sent_len;
		s->c.bytes_raw += r->raw_len;
		bulk_items_done(s, r);
		if (s->batch_limit < s->bulk_max_docs)
			s->batch_limit = MIN(s->bulk_max_docs, s->batch_limit * 2);
		return;
	}
	/* too large, or one bad line spoiling the request: split until alone. A
	 * 400 that is not Elasticsearch's own (a proxy's page) is no verdict on
	 * the documents: it is retried like any failed request. */
	if (status == 413 || (status == 400 && is_es_error(r))) {
		char why[300];

		esbulk_error_text(r->resp, r->resp_len, why, sizeof(why));
		request_succeeded(s);
		items_not_inflight(s, r);
		if (r->nitems > 1) {
			s->batch_limit = MAX(1, r->nitems / 2);
			log_warn("elasticsearch: %s refused a _bulk of %zu incidents (HTTP %ld: "
				 "%s); "
				 "sending at most %zu at once",
				 s->urls[r->url], r->nitems, status, why, s->batch_limit);
		} else {
			park(s, r->items[0].id, (int)status, why);
		}
		return;
	}
	items_not_inflight(s, r);
	http_error(s, r, "_bulk", status);
	request_failed(s, false);
}

/* The answer to the request in flight (from the loop). */
static void on_answer(void *ctx, const struct http_answer *a)
{
	struct essink *s = ctx;
	/* the sink is idle again: a handler may start the next request */
	struct request r = s->req;

	memset(&s->req, 0, sizeof(s->req));
	r.resp = a->body;
	r.resp_len = a->len;
	r.sent_len = a->sent_bytes;
	if (a->failure != HTTP_ANSWERED) {
		transport_error(s, &r, a);
		items_not_inflight(s, &r);
		request_failed(s, true);
	} else if (r.kind == REQ_DS_PROBE) {
		ds_probe_done(s, &r, a->status);
	} else if (r.kind == REQ_TEMPLATE_GET) {
		template_get_done(s, &r, a->status);
	} else if (r.kind == REQ_TEMPLATE_PUT) {
		template_put_done(s, &r, a->status);
	} else if (r.kind == REQ_BULK) {
		bulk_done(s, &r, a->status);
	}
	free(r.items);
	kick(s);
}

/* ---- public ---- */

int essink_new(struct essink **out, const struct essink_opts *opts)
{
	const struct agent_config *cfg = opts->cfg;
	struct spool_opts so = {
		.dir = cfg->es.spool_dir,
		.max_size = cfg->es.spool_max_size,
		.max_age_ms = cfg->es.spool_max_age_ms,
	};
	struct essink *s;
	int err = 0;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = opts->loop;
	s->nurls = cfg->es.urls.n;
	for (unsigned i = 0; i < s->nurls; i++) {
		size_t n;

		err = check_url(cfg->es.urls.v[i]);
		if (err)
			goto fail;
		snprintf(s->urls[i], sizeof(s->urls[i]), "%s", cfg->es.urls.v[i]);
		n = strlen(s->urls[i]);
		while (n && s->urls[i][n - 1] == '/')
			s->urls[i][--n] = '\0';
	}
	if (!s->nurls) {
		err = log_ret(-EINVAL, "storage.elasticsearch.urls: none given");
		goto fail;
	}
	snprintf(s->prefix, sizeof(s->prefix), "%s", cfg->es.index_prefix);
	esbulk_data_stream_name(s->prefix, s->ds_name, sizeof(s->ds_name));
	s->want_ds = cfg->es.data_stream;
	s->manage_template = cfg->es.manage_template;
	snprintf(s->ilm_policy, sizeof(s->ilm_policy), "%s", cfg->es.ilm_policy);
	update_template_name(s);
	snprintf(s->template_state, sizeof(s->template_state), "%s",
		 s->manage_template ? "pending" : "not managed (manage_template: false)");
	snprintf(s->ca_file, sizeof(s->ca_file), "%s", cfg->es.ca_file);
	snprintf(s->client_cert, sizeof(s->client_cert), "%s", cfg->es.client_cert);
	snprintf(s->client_key, sizeof(s->client_key), "%s", cfg->es.client_key);
	s->tls = (struct http_tls){.verify = cfg->es.tls_verify,
				   .ca_file = s->ca_file,
				   .client_cert = s->client_cert,
				   .client_key = s->client_key};
	s->gzip = cfg->es.compression;
	s->connect_timeout_ms = (long)cfg->es.connect_timeout_ms;
	s->timeout_ms = (long)cfg->es.timeout_ms;
	s->bulk_max_docs = s->batch_limit = (size_t)cfg->es.bulk_max_docs;
	s->bulk_max_bytes = (size_t)cfg->es.bulk_max_bytes;
	s->backoff_initial_ms = cfg->es.backoff_initial_ms;
	s->backoff_max_ms = MAX(cfg->es.backoff_max_ms, cfg->es.backoff_initial_ms);
	if ((err = esauth_check_tls(cfg)) || (err = esauth_setup(&s->auth, cfg)))
		goto fail;
	if ((err = load_template(s, opts->template_json ? opts->template_json
							: es_index_template_json)))
		goto fail;
	if ((err = spool_open(&s->spool, &so)))
		goto fail;
	if (getrandom(&s->rnd, sizeof(s->rnd), GRND_NONBLOCK) != sizeof(s->rnd) || !s->rnd)
		s->rnd = now_mono_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
	if ((err = http_client_new(&s->http, s->loop, RESPONSE_MAX)))
		goto fail;
	/* first connection attempt from the loop: start-up never waits for it */
	if ((err = loop_timer_new(s->loop, 1, 0, on_wake, s, &s->wake)))
		goto fail;
	if (opts->prev)
		s->c = opts->prev->c;
	if (!s->tls.verify)
		log_warn("elasticsearch: storage.elasticsearch.tls_verify is false: the cluster's "
			 "certificate is NOT checked, anyone on the path can read and alter "
			 "incidents");
	for (unsigned i = 0; i < s->nurls; i++)
		if ((s->auth.password || s->auth.header) && strncmp(s->urls[i], "http://", 7) == 0)
			log_warn("elasticsearch: credentials are sent unencrypted to %s (use "
				 "https://)",
				 s->urls[i]);
	log_info("elasticsearch: shipping to %s%s (%s %s), spool %s holds %zu incidents",
		 s->urls[0], s->nurls > 1 ? " and fallbacks" : "",
		 s->want_ds ? "data stream" : "daily indices", s->want_ds ? s->ds_name : s->prefix,
		 spool_dir(s->spool), spool_count(s->spool));
	*out = s;
	return 0;
fail:
	essink_free(&s);
	return err;
}

void essink_free(struct essink **ps)
{
	struct essink *s = ps ? *ps : NULL;

	if (!s)
		return;
	request_abort(s);
	http_client_free(&s->http);
	if (s->spool && spool_count(s->spool))
		log_info("elasticsearch: %zu incidents stay in the spool %s until the next start",
			 spool_count(s->spool), spool_dir(s->spool));
	loop_timer_free(&s->wake);
	spool_free(&s->spool);
	json_decref(s->template_doc);
	esauth_clear(&s->auth);
	free(s);
	*ps = NULL;
}

int essink_submit(struct essink *s, const char *id, const char *doc, size_t len)
{
	struct spool_evicted ev = {0};
	int err;

	err = spool_put(s->spool, id, doc, len, now_real_ms(), &ev);
	if (err) {
		s->c.spool_errors++;
		log_error(
			"elasticsearch: could not spool incident %s in %s: %s; it is in the local "
			"store only and will not be shipped",
			id, spool_dir(s->spool), strerror(-err));
		return err;
	}
	if (ev.by_age || ev.by_size) {
		s->c.evicted_age += ev.by_age;
		s->c.evicted_size += ev.by_size;
		log_warn("elasticsearch spool: evicted %u incidents past spool_max_age and %u over "
			 "spool_max_size (%s .. %s): never shipped; the local store keeps them "
			 "while "
			 "its retention allows",
			 ev.by_age, ev.by_size, ev.oldest, ev.newest);
	}
	kick(s);
	return 0;
}

static const char *state_of(const struct essink *s)
{
	if (s->fail_streak)
		return s->unreachable ? "unreachable" : "failing";
	if (!s->ever_answered)
		return "connecting";
	if (!s->template_ok)
		return "installing template";
	return spool_count(s->spool) ? "shipping" : "ok";
}

json_t *essink_status(const struct essink *s)
{
	struct spool_stats st;
	json_t *o = json_object(), *urls = json_array();
	char ts[40], target[200];
	uint64_t now = mono_ms();

	spool_stats(s->spool, &st);
	for (unsigned i = 0; i < s->nurls; i++)
		json_array_append_new(urls, json_string(s->urls[i]));
	esbulk_index_name(s->prefix, s->use_ds, now_real_ms(), target, sizeof(target));
	json_object_set_new(o, "enabled", json_true());
	json_object_set_new(o, "state", json_string(state_of(s)));
	json_object_set_new(o, "url", json_string(cur_url(s)));
	json_object_set_new(o, "urls", urls);
	json_object_set_new(o, "mode", json_string(s->use_ds ? "data_stream" : "daily_indices"));
	json_object_set_new(o, "index", json_string(target));
	json_object_set_new(o, "template",
			    json_pack("{s:s,s:I,s:s}", "name", s->template_name, "version",
				      s->template_version, "state", s->template_state));
	json_object_set_new(o, "spool_dir", json_string(spool_dir(s->spool)));
	json_object_set_new(o, "spool_depth", json_integer((json_int_t)st.queued));
	json_object_set_new(o, "spool_bytes", json_integer((json_int_t)st.bytes));
	json_object_set_new(
		o, "spool_oldest_age_ms",
		json_integer((json_int_t)(st.oldest_real_ms && now_real_ms() > st.oldest_real_ms
						  ? now_real_ms() - st.oldest_real_ms
						  : 0)));
	json_object_set_new(o, "parked", json_integer((json_int_t)st.parked));
	json_object_set_new(o, "shipped", json_integer((json_int_t)s->c.shipped));
	json_object_set_new(o, "duplicates", json_integer((json_int_t)s->c.duplicates));
	json_object_set_new(o, "retried", json_integer((json_int_t)s->c.retried));
	json_object_set_new(o, "rejected", json_integer((json_int_t)s->c.rejected));
	json_object_set_new(o, "evicted",
			    json_integer((json_int_t)(s->c.evicted_age + s->c.evicted_size)));
	json_object_set_new(o, "spool_errors", json_integer((json_int_t)s->c.spool_errors));
	json_object_set_new(o, "requests", json_integer((json_int_t)s->c.requests));
	json_object_set_new(o, "request_failures", json_integer((json_int_t)s->c.request_failures));
	json_object_set_new(o, "bytes_sent", json_integer((json_int_t)s->c.bytes_sent));
	json_object_set_new(o, "bytes_uncompressed", json_integer((json_int_t)s->c.bytes_raw));
	if (s->backoff_until_ms > now)
		json_object_set_new(o, "next_attempt_in_ms",
				    json_integer((json_int_t)(s->backoff_until_ms - now)));
	if (s->last_ok_real_ms) {
		format_iso8601(s->last_ok_real_ms, ts, sizeof(ts));
		json_object_set_new(o, "last_success_at", json_string(ts));
	}
	if (s->last_error[0]) {
		format_iso8601(s->last_error_real_ms, ts, sizeof(ts));
		json_object_set_new(o, "last_error", json_string(s->last_error));
		json_object_set_new(o, "last_error_at", json_string(ts));
	}
	if (s->last_rejected[0])
		json_object_set_new(o, "last_rejected",
				    json_pack("{s:s,s:s}", "id", s->last_rejected, "reason",
					      s->last_reject_reason));
	return o;
}

uint64_t essink_evicted(const struct essink *s)
{
	return s->c.evicted_age + s->c.evicted_size;
}

uint64_t essink_rejected(const struct essink *s)
{
	return s->c.rejected;
}
