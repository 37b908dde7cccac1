/* SPDX-License-Identifier: GPL-2.0-only */
/* Hostile strings made inert. Anything a tenant controls (process names,
 * function names, paths, perf map lines, cgroup names) reaches terminals,
 * logs, folded stacks, SVG and JSON; each of those has its own dangerous
 * bytes, and invalid UTF-8 makes JSON encoders and XML parsers refuse the
 * whole document. These helpers never fail and never grow a string past the
 * room given: truncation always falls on a UTF-8 character boundary. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Length of the valid UTF-8 sequence at s (1..4), 0 when s[0..len) does not
 * start with one (overlong forms, surrogates and code points past U+10FFFF
 * are invalid). */
size_t utf8_seq_len(const char *s, size_t len);
bool utf8_valid(const char *s, size_t len);
/* The largest n <= len such that s[0..n) does not end inside a multi-byte
 * sequence (s itself is assumed valid UTF-8). */
size_t utf8_boundary(const char *s, size_t len);

enum str_mode {
	/* valid UTF-8 out: each invalid byte becomes U+FFFD (JSON, SVG, folded) */
	STR_UTF8,
	/* STR_UTF8, and C0 (tab and newline included), DEL, C1 and the bidi
	 * controls become visible escapes ("\x1b", "\u009b", "\u202e"); invalid
	 * bytes become "\xNN" rather than U+FFFD, so nothing is lost */
	STR_TERMINAL,
	/* one byte for one byte: each invalid or control byte becomes '?', so a
	 * string keeps its length and can be cleaned in place (symbol names) */
	STR_INPLACE,
};

/* Copies src[0..srclen) into dst (cap bytes, NUL-terminated when cap > 0) in
 * mode; returns the bytes written without the NUL. A NUL in src ends it. */
size_t str_clean(char *dst, size_t cap, const char *src, size_t srclen, enum str_mode mode);
/* str_clean into a malloc'd string (NULL only when out of memory). */
char *str_clean_dup(const char *src, enum str_mode mode);
/* STR_INPLACE over buf[0..len): same bytes count, returns how many changed. */
size_t str_clean_inplace(char *buf, size_t len);
/* Whether str_clean(mode) would change s. */
bool str_is_clean(const char *s, enum str_mode mode);

/* Into a fixed buffer, for one-line messages: returns dst. */
const char *str_term(char *dst, size_t cap, const char *src);

/* A JSON string from any bytes (comm, paths, frames are the tenant's):
 * invalid UTF-8 and control characters become '?' byte for byte
 * (STR_INPLACE). jansson refuses invalid UTF-8 and returns NULL, which would
 * silently drop the field. Never NULL unless out of memory. */
json_t *json_string_clean(const char *s);
/* Makes every string (and object key) of a document safe to print on a
 * terminal (STR_TERMINAL), in place; returns j. */
json_t *json_clean_for_terminal(json_t *j);
/* json_dumpf for a terminal or a pipe: ASCII only (C1 and bidi controls
 * become \uXXXX like C0 already does) and DEL escaped too. */
int json_dumpf_safe(const json_t *j, FILE *f, size_t flags);
