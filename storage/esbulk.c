// SPDX-License-Identifier: GPL-2.0-only
#include "storage/esbulk.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

void esbulk_data_stream_name(const char *prefix, char *buf, size_t len)
{
	snprintf(buf, len, "%s-default", prefix);
}

void esbulk_index_name(const char *prefix, bool data_stream, uint64_t real_ms, char *buf,
		       size_t len)
{
	time_t secs = (time_t)(real_ms / 1000);
	struct tm tm;
	char day[16];

	if (data_stream) {
		esbulk_data_stream_name(prefix, buf, len);
		return;
	}
	gmtime_r(&secs, &tm);
	strftime(day, sizeof(day), "%Y.%m.%d", &tm);
	snprintf(buf, len, "%s-%s", prefix, day);
}

int esbulk_append(struct strbuf *b, const char *index, const char *id, const char *doc, size_t len)
{
	json_t *action;
	char *line;
	int err;

	action = json_pack("{s:{s:s,s:s}}", "create", "_index", index, "_id", id);
	line = action ? json_dumps(action, JSON_COMPACT) : NULL;
	json_decref(action);
	if (!line)
		return -ENOMEM;
	strbuf_append(b, line, strlen(line));
	strbuf_append(b, "\n", 1);
	free(line);
	/* NDJSON: one line per document. The agent writes compact JSON; anything
	 * else found in the spool is re-encoded rather than sent broken. */
	if (memchr(doc, '\n', len) || memchr(doc, '\r', len) || len == 0 || doc[0] != '{') {
		json_error_t jerr;
		json_t *j = json_loadb(doc, len, 0, &jerr);
		char *compact;

		if (!json_is_object(j)) {
			json_decref(j);
			return -EINVAL;
		}
		compact = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		if (!compact)
			return -ENOMEM;
		strbuf_append(b, compact, strlen(compact));
		free(compact);
	} else {
		strbuf_append(b, doc, len);
	}
	err = strbuf_append(b, "\n", 1);
	return err;
}

int esbulk_gzip(const void *in, size_t len, void **out, size_t *out_len)
{
	z_stream z = {0};
	uLong bound;
	void *buf;
	int rc;

	/* windowBits 15 + 16: a gzip header and trailer, as Content-Encoding: gzip wants */
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	bound = deflateBound(&z, (uLong)len) + 32;
	buf = malloc(bound);
	if (!buf) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = buf;
	z.avail_out = (uInt)bound;
	rc = deflate(&z, Z_FINISH);
	*out_len = z.total_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(buf);
		return -EIO;
	}
	*out = buf;
	return 0;
}

bool esbulk_status_retryable(long s)
{
	/* 408 timeout, 429 too many requests, 5xx: the cluster may do better later */
	return s == 408 || s == 429 || s >= 500 || s == 0;
}

static void error_text(json_t *err, char *buf, size_t len)
{
	const char *type = json_string_value(json_object_get(err, "type"));
	const char *reason = json_string_value(json_object_get(err, "reason"));
	json_t *cause = json_object_get(err, "caused_by");
	const char *ctype = json_string_value(json_object_get(cause, "type"));
	const char *creason = json_string_value(json_object_get(cause, "reason"));

	if (json_is_string(err)) {
		snprintf(buf, len, "%s", json_string_value(err));
		return;
	}
	if (ctype && creason)
		snprintf(buf, len, "%s: %s (%s: %s)", type ? type : "error", reason ? reason : "",
			 ctype, creason);
	else
		snprintf(buf, len, "%s: %s", type ? type : "error", reason ? reason : "");
}

static enum esbulk_outcome classify(int status, json_t *err, bool *dup)
{
	const char *type = json_string_value(json_object_get(err, "type"));

	*dup = false;
	if (status >= 200 && status < 300)
		return ESB_OK;
	if (status == 409) {
		/* "create" of an _id that is already there: a previous delivery of
		 * the same incident succeeded, its answer was lost */
		*dup = true;
		return ESB_OK;
	}
	/* read-only or disk-full blocks lift when the cluster recovers */
	if (type && strcmp(type, "cluster_block_exception") == 0)
		return ESB_RETRY;
	if (esbulk_status_retryable(status))
		return ESB_RETRY;
	return ESB_REJECT;
}

int esbulk_parse_response(const char *body, size_t len, const char *const *ids, size_t n,
			  struct esbulk_item *items)
{
	json_error_t jerr;
	json_t *root, *arr;
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&items[i], 0, sizeof(items[i]));
		items[i].outcome = ESB_RETRY;
		snprintf(items[i].reason, sizeof(items[i].reason),
			 "no result for it in the answer");
	}
	root = json_loadb(body, len, 0, &jerr);
	arr = json_object_get(root, "items");
	if (!json_is_array(arr)) {
		/* filter_path drops "items" when every item succeeded and errors is false */
		if (json_is_false(json_object_get(root, "errors")) && !arr) {
			for (i = 0; i < n; i++) {
				items[i].outcome = ESB_OK;
				items[i].status = 201;
				items[i].reason[0] = '\0';
			}
			json_decref(root);
			return 0;
		}
		json_decref(root);
		return -EINVAL;
	}
	for (i = 0; i < n && i < json_array_size(arr); i++) {
		json_t *wrap = json_array_get(arr, i), *res = NULL, *v;
		const char *op, *id;
		struct esbulk_item *it = &items[i];

		/* each item is {"<op>": {...}} with the op the request used */
		json_object_foreach(wrap, op, v)
		{
			res = v;
			break;
		}
		id = json_string_value(json_object_get(res, "_id"));
		if (!json_is_object(res) || !json_is_integer(json_object_get(res, "status")))
			continue;
		if (id && strcmp(id, ids[i])) {
			snprintf(it->reason, sizeof(it->reason),
				 "answer out of order (got _id %s, sent %s)", id, ids[i]);
			continue;
		}
		it->status = (int)json_integer_value(json_object_get(res, "status"));
		it->outcome = classify(it->status, json_object_get(res, "error"), &it->duplicate);
		it->reason[0] = '\0';
		if (it->outcome != ESB_OK || json_object_get(res, "error"))
			error_text(json_object_get(res, "error"), it->reason, sizeof(it->reason));
		if (it->duplicate)
			snprintf(it->reason, sizeof(it->reason), "already indexed");
	}
	json_decref(root);
	return 0;
}

uint64_t esbulk_backoff_ms(unsigned attempt, uint64_t initial_ms, uint64_t max_ms, uint32_t rnd)
{
	uint64_t d = initial_ms ? initial_ms : 1, half;

	if (max_ms < d)
		max_ms = d;
	for (unsigned i = 1; i < attempt && d < max_ms; i++)
		d = d > max_ms / 2 ? max_ms : d * 2;
	if (d > max_ms)
		d = max_ms;
	/* equal jitter: never less than half the delay, so a fleet that lost its
	 * cluster at the same moment does not come back in one wave */
	half = d / 2;
	return d - half + (half ? rnd % (half + 1) : 0);
}

void esbulk_error_text(const char *body, size_t len, char *buf, size_t buflen)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr), *err = json_object_get(root, "error");
	json_t *rc = json_array_get(json_object_get(err, "root_cause"), 0);

	if (json_is_object(rc) && !json_object_get(err, "caused_by"))
		error_text(rc, buf, buflen);
	else if (err)
		error_text(err, buf, buflen);
	else {
		const char *title = memmem(body, len, "<title>", 7), *start = body;
		size_t n = 0, avail = len;

		/* not JSON (a proxy's page): its title, else its first line */
		if (title) {
			start = title + 7;
			avail = len - (size_t)(start - body);
		}
		while (n < avail && n + 1 < buflen && start[n] != '\n' && start[n] != '<')
			n++;
		snprintf(buf, buflen, "%.*s", (int)n, start);
		for (char *p = buf; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = ' ';
		if (!buf[0])
			snprintf(buf, buflen, "(empty answer)");
	}
	json_decref(root);
}
