// SPDX-License-Identifier: GPL-2.0-only
#include "base/sanitize.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_seq_len(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t cp;
	size_t n;

	if (!len)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0; /* continuation byte, 0xc0/0xc1 (overlong) or past U+10FFFF */
	if (len < n)
		return 0;
	cp = s[0] & (0xff >> (n + 1));
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool utf8_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(s + i, len - i);

		if (!n)
			return false;
		i += n;
	}
	return true;
}

size_t utf8_boundary(const char *s, size_t len)
{
	size_t i = len;

	/* back over at most 3 continuation bytes to the lead byte */
	while (i > 0 && len - i < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return 0;
	if (((unsigned char)s[i - 1] & 0x80) == 0)
		return len; /* ends in ASCII: only if nothing trails it */
	/* s[i-1] is a lead byte: keep its sequence only if it is complete */
	return utf8_seq_len(s + i - 1, len - (i - 1)) == len - (i - 1) ? len : i - 1;
}

/* The code point of a valid sequence. */
static uint32_t decode(const unsigned char *s, size_t n)
{
	uint32_t cp = n == 1 ? s[0] : s[0] & (0xff >> (n + 1));

	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (s[i] & 0x3f);
	return cp;
}

/* Terminal controls: C0 (all of it), DEL, C1, and the bidi embeddings,
 * overrides and isolates that reorder what follows them on screen. */
static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

/* Appends piece if all of it fits before the NUL; false once full. */
static bool put(char *dst, size_t cap, size_t *w, const char *piece, size_t n)
{
	if (*w + n + 1 > cap)
		return false;
	memcpy(dst + *w, piece, n);
	*w += n;
	return true;
}

size_t str_clean(char *dst, size_t cap, const char *src, size_t srclen, enum str_mode mode)
{
	static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
	size_t w = 0;

	if (!cap)
		return 0;
	for (size_t i = 0; i < srclen && src[i];) {
		size_t n = utf8_seq_len(src + i, srclen - i);
		char esc[16];
		bool ok;

		if (!n) {
			if (mode == STR_TERMINAL) {
				snprintf(esc, sizeof(esc), "\\x%02x", (unsigned char)src[i]);
				ok = put(dst, cap, &w, esc, 4);
			} else if (mode == STR_INPLACE) {
				ok = put(dst, cap, &w, "?", 1);
			} else {
				ok = put(dst, cap, &w, replacement, 3);
			}
			i++;
		} else {
			uint32_t cp = decode((const unsigned char *)src + i, n);

			if (mode == STR_TERMINAL && is_control(cp)) {
				if (cp < 0x80)
					snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp);
				else
					snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
				ok = put(dst, cap, &w, esc, strlen(esc));
			} else if (mode == STR_INPLACE && is_control(cp)) {
				ok = put(dst, cap, &w, "????", n);
			} else {
				ok = put(dst, cap, &w, src + i, n);
			}
			i += n;
		}
		if (!ok)
			break;
	}
	dst[w] = '\0';
	return w;
}

char *str_clean_dup(const char *src, enum str_mode mode)
{
	size_t len = strlen(src);
	/* the widest expansion: one byte to "\xNN" (4), or a 3-byte bidi
	 * control to "\u202e" (6) */
	size_t cap = len * 4 + 1;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	str_clean(out, cap, src, len, mode);
	return out;
}

size_t str_clean_inplace(char *buf, size_t len)
{
	size_t changed = 0;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(buf + i, len - i);

		if (!n) {
			if (buf[i]) { /* NULs separate strings in an arena: kept */
				buf[i] = '?';
				changed++;
			}
			i++;
			continue;
		}
		if (is_control(decode((unsigned char *)buf + i, n)) && buf[i]) {
			memset(buf + i, '?', n);
			changed++;
		}
		i += n;
	}
	return changed;
}

bool str_is_clean(const char *s, enum str_mode mode)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(s + i, len - i);

		if (!n)
			return false;
		if (mode != STR_UTF8 && is_control(decode((const unsigned char *)s + i, n)))
			return false;
		i += n;
	}
	return true;
}

const char *str_term(char *dst, size_t cap, const char *src)
{
	str_clean(dst, cap, src ? src : "", src ? strlen(src) : 0, STR_TERMINAL);
	return dst;
}

json_t *json_string_clean(const char *s)
{
	json_t *j;
	char *copy;

	if (!s)
		s = "";
	if (str_is_clean(s, STR_INPLACE))
		return json_string(s);
	copy = str_clean_dup(s, STR_INPLACE);
	if (!copy)
		return NULL;
	j = json_string(copy);
	free(copy);
	return j;
}

json_t *json_clean_for_terminal(json_t *j)
{
	if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++) {
			json_t *v = json_array_get(j, i);

			if (json_is_string(v) &&
			    !str_is_clean(json_string_value(v), STR_TERMINAL)) {
				char *c = str_clean_dup(json_string_value(v), STR_TERMINAL);

				if (c)
					json_array_set_new(j, i, json_string(c));
				free(c);
			} else {
				json_clean_for_terminal(v);
			}
		}
	} else if (json_is_object(j)) {
		const char *key;
		json_t *v;
		void *tmp;

		json_object_foreach_safe(j, tmp, key, v)
		{
			if (json_is_string(v) &&
			    !str_is_clean(json_string_value(v), STR_TERMINAL)) {
				char *c = str_clean_dup(json_string_value(v), STR_TERMINAL);

				if (c)
					json_object_set_new(j, key, json_string(c));
				free(c);
			} else {
				json_clean_for_terminal(v);
			}
			if (!str_is_clean(key, STR_TERMINAL)) {
				char *c = str_clean_dup(key, STR_TERMINAL);

				if (c) {
					json_object_set(j, c, json_object_get(j, key));
					json_object_del(j, key);
				}
				free(c);
			}
		}
	}
	return j;
}

int json_dumpf_safe(const json_t *j, FILE *f, size_t flags)
{
	char *text = json_dumps(j, flags | JSON_ENSURE_ASCII);

	if (!text)
		return -1;
	/* DEL is ASCII, so left as is by jansson; it can only be inside a string */
	for (const char *p = text; *p; p++) {
		if (*p == 0x7f)
			fputs("\\u007f", f);
		else
			fputc(*p, f);
	}
	free(text);
	return 0;
}
