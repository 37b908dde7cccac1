// SPDX-License-Identifier: GPL-2.0-only
#include "base/strbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for need more bytes and the NUL: doubling keeps appends amortised O(1). */
static int reserve(struct strbuf *b, size_t need)
{
	size_t ncap;
	char *np;

	if (b->max && (need > b->max || b->len > b->max - need))
		return b->err = -EFBIG;
	if (need >= SIZE_MAX / 2 - b->len)
		return b->err = -ENOMEM;
	if (b->len + need + 1 <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + need + 1)
		ncap *= 2;
	np = realloc(b->p, ncap);
	if (!np)
		return b->err = -ENOMEM;
	b->p = np;
	b->cap = ncap;
	return 0;
}

int strbuf_append(struct strbuf *b, const void *data, size_t len)
{
	if (b->err || reserve(b, len))
		return b->err;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

int strbuf_puts(struct strbuf *b, const char *s)
{
	return strbuf_append(b, s, strlen(s));
}

int strbuf_vprintf(struct strbuf *b, const char *fmt, va_list ap)
{
	va_list again;
	size_t room;
	int n;

	if (b->err)
		return b->err;
	/* most appends fit what is left: format once, and again only after growing */
	room = b->cap - b->len;
	va_copy(again, ap);
	n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
	if (n < 0) {
		b->err = -EINVAL;
		goto cleanup;
	}
	if ((size_t)n >= room) {
		if (reserve(b, (size_t)n))
			goto cleanup;
		vsnprintf(b->p + b->len, (size_t)n + 1, fmt, again);
	} else if (b->max && b->len + (size_t)n > b->max) {
		b->p[b->len] = '\0';
		b->err = -EFBIG;
		goto cleanup;
	}
	b->len += (size_t)n;
cleanup:
	va_end(again);
	return b->err;
}

int strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = strbuf_vprintf(b, fmt, ap);
	va_end(ap);
	return err;
}

void *strbuf_extend(struct strbuf *b, size_t len)
{
	if (b->err || reserve(b, len))
		return NULL;
	memset(b->p + b->len, 0, len + 1);
	b->len += len;
	return b->p + b->len - len;
}

void strbuf_truncate(struct strbuf *b, size_t len)
{
	if (len >= b->len)
		return;
	b->len = len;
	b->p[len] = '\0';
}

void strbuf_reset(struct strbuf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->p)
		b->p[0] = '\0';
}

char *strbuf_take(struct strbuf *b, size_t *len)
{
	char *s = b->err ? NULL : b->p ? b->p : strdup("");
	size_t n = s ? b->len : 0;

	if (!s)
		free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->err = 0;
	if (len)
		*len = n;
	return s;
}

void strbuf_free(struct strbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
