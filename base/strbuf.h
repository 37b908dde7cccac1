/* SPDX-License-Identifier: GPL-2.0-only */
/* A growable string for builders (folded stacks, SVG, JSON bodies): printf and byte appends,
 * bounded on request. The first failure sticks and later appends do nothing, so a builder
 * checks once at the end. Once anything was appended, p is NUL-terminated. */
#pragma once
#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *p; /* NULL until the first append */
	size_t len, cap;
	size_t max; /* 0: unbounded; an append that would pass it fails with -EFBIG */
	int err;    /* the first failure (-ENOMEM, -EFBIG, -EINVAL), 0 while none */
};

/* Each returns b->err: 0, or the failure that now sticks. */
int strbuf_append(struct strbuf *b, const void *data, size_t len);
int strbuf_puts(struct strbuf *b, const char *s);
int strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vprintf(struct strbuf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Appends len zero bytes for the caller to fill (binary replies) and returns where they
 * start, valid until the next append; NULL once an append failed. */
void *strbuf_extend(struct strbuf *b, size_t len);
/* Shortens b to len bytes (no-op when it is not longer). */
void strbuf_truncate(struct strbuf *b, size_t len);

/* Empties b for reuse: keeps the memory and max, clears err. */
void strbuf_reset(struct strbuf *b);
/* The string, which the caller now owns ("" when nothing was appended); b is left empty.
 * NULL (and b freed) when an append failed or "" cannot be allocated. */
char *strbuf_take(struct strbuf *b, size_t *len);
/* Frees the memory; b is left all zero (max included). */
void strbuf_free(struct strbuf *b);
