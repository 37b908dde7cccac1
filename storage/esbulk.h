/* SPDX-License-Identifier: GPL-2.0-only */
/* The pure parts of the Elasticsearch client: index names, _bulk bodies,
 * gzip, per-item results and retry delays. No I/O, so unit tests cover them. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"

/* storage/essink.c and storage/httpclient.c still say esbuf for the one growable buffer,
 * base/strbuf.h; these go when they say strbuf. */
#define esbuf	     strbuf
#define esbuf_append strbuf_append
#define esbuf_free   strbuf_free

/* Daily index PREFIX-YYYY.MM.DD of the incident time (UTC), or the data
 * stream PREFIX-default. */
void esbulk_index_name(const char *prefix, bool data_stream, uint64_t real_ms, char *buf,
		       size_t len);
/* The data stream's name: PREFIX-default. */
void esbulk_data_stream_name(const char *prefix, char *buf, size_t len);

/* Appends a "create" action with _id = id, then the document on one line. A
 * document that is not single-line JSON is re-encoded; invalid JSON is -EINVAL. */
int esbulk_append(struct strbuf *b, const char *index, const char *id, const char *doc, size_t len);

/* gzip (RFC 1952) of in; *out is malloc'd. */
int esbulk_gzip(const void *in, size_t len, void **out, size_t *out_len);

enum esbulk_outcome {
	ESB_OK,	    /* stored (201/200), or already there (409 on create) */
	ESB_RETRY,  /* 429, 5xx, a blocked cluster, or no answer for it */
	ESB_REJECT, /* refused for good: mapping conflicts and other 4xx */
};

struct esbulk_item {
	enum esbulk_outcome outcome;
	int status;	  /* HTTP status of the item; 0 when the answer had none */
	bool duplicate;	  /* 409: a previous delivery got there */
	char reason[512]; /* "type: reason" of a failed item */
};

/* Matches the answer of a _bulk request to the n ids that were sent (in order);
 * every item gets an outcome, missing or mismatched ones ESB_RETRY. Returns
 * -EINVAL when the body is not a bulk answer at all (then all are ESB_RETRY). */
int esbulk_parse_response(const char *body, size_t len, const char *const *ids, size_t n,
			  struct esbulk_item *items);

/* How an HTTP status of a whole request is handled. */
bool esbulk_status_retryable(long http_status);

/* Delay before retry `attempt` (1 = first retry): initial * 2^(attempt-1)
 * capped at max, then "equal jitter": half fixed, half from rnd. */
uint64_t esbulk_backoff_ms(unsigned attempt, uint64_t initial_ms, uint64_t max_ms, uint32_t rnd);

/* Elasticsearch's own error text of a failed non-bulk answer:
 * "type: reason" of error.root_cause[0] or error, else the body's start. */
void esbulk_error_text(const char *body, size_t len, char *buf, size_t buflen);
