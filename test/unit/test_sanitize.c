// SPDX-License-Identifier: GPL-2.0-only
/* Hostile strings made inert: UTF-8 validity, cuts on character boundaries,
 * terminal escapes for C0, DEL, C1 and bidi controls, in-place cleaning of
 * symbol arenas, JSON strings from any bytes. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "base/sanitize.h"

static void test_utf8_validity(void **state)
{
	assert_true(utf8_valid("plain", 5));
	assert_true(utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 16));
	assert_false(utf8_valid("\xc3", 1));		 /* cut */
	assert_false(utf8_valid("\xc0\xaf", 2));	 /* overlong '/' */
	assert_false(utf8_valid("\xe0\x80\xaf", 3));	 /* overlong */
	assert_false(utf8_valid("\xed\xa0\x80", 3));	 /* surrogate */
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
	assert_false(utf8_valid("\x80", 1));
	assert_false(utf8_valid("\xff", 1));
}

static void test_boundary(void **state)
{
	const char *s = "a\xc3\xa9\xe2\x82\xac"; /* a é € */

	assert_int_equal(utf8_boundary(s, 6), 6);
	assert_int_equal(utf8_boundary(s, 5), 3);
	assert_int_equal(utf8_boundary(s, 4), 3);
	assert_int_equal(utf8_boundary(s, 3), 3);
	assert_int_equal(utf8_boundary(s, 2), 1);
	assert_int_equal(utf8_boundary(s, 1), 1);
	assert_int_equal(utf8_boundary(s, 0), 0);
}

static void test_utf8_mode(void **state)
{
	char out[64];

	str_clean(out, sizeof(out), "ok\xff!", 4, STR_UTF8);
	assert_string_equal(out, "ok\xef\xbf\xbd!");
	/* cut on a character boundary: 'a' + U+FFFD does not fit in 4 bytes */
	assert_int_equal(str_clean(out, 4, "a\xff", 2, STR_UTF8), 1);
	assert_string_equal(out, "a");
	assert_int_equal(str_clean(out, 3, "\xe2\x82\xac", 3, STR_UTF8), 0);
	assert_true(utf8_valid(out, strlen(out)));
	/* controls are valid UTF-8: kept (JSON escapes them) */
	str_clean(out, sizeof(out), "a\x1b[31mb", 8, STR_UTF8);
	assert_string_equal(out, "a\x1b[31mb");
}

static void test_terminal_mode(void **state)
{
	char out[128];

	str_term(out, sizeof(out), "\x1b]52;c;aGk=\x07rm\n\t\x7f");
	assert_string_equal(out, "\\x1b]52;c;aGk=\\x07rm\\x0a\\x09\\x7f");
	str_term(out, sizeof(out),
		 "csi\xc2\x9b"
		 "2J bidi\xe2\x80\xae"
		 "txt bad\xff");
	assert_string_equal(out, "csi\\u009b2J bidi\\u202etxt bad\\xff");
	str_term(out, sizeof(out), "caf\xc3\xa9 \xe2\x82\xac");
	assert_string_equal(out, "caf\xc3\xa9 \xe2\x82\xac");
	/* an escape is never cut in half */
	assert_int_equal(str_clean(out, 6, "ab\x1b", 3, STR_TERMINAL), 2);
	assert_string_equal(out, "ab");
	assert_true(str_is_clean("plain \xc3\xa9", STR_TERMINAL));
	assert_false(str_is_clean("a\nb", STR_TERMINAL));
	assert_true(str_is_clean("a\nb", STR_UTF8));
}

static void test_inplace(void **state)
{
	char arena[] = "good\0bad\x1b[2J\0inv\xc3\0ok\xc3\xa9\0";
	size_t n = sizeof(arena) - 1;

	assert_int_equal(str_clean_inplace(arena, n), 2);
	assert_string_equal(arena, "good");
	assert_string_equal(arena + 5, "bad?[2J");
	assert_string_equal(arena + 13, "inv?");
	assert_string_equal(arena + 18, "ok\xc3\xa9");
	assert_true(utf8_valid(arena, n));
}

static void test_json(void **state)
{
	json_t *j = json_string_clean("x\xff\xfe\x1b[0my\xc3\xa9");
	json_t *doc;
	char *text;

	assert_non_null(j);
	assert_string_equal(json_string_value(j), "x???[0my\xc3\xa9");
	json_decref(j);
	doc = json_pack("{s:s,s:[s]}", "comm", "a\x1b]0;x\x07", "k\nk", "\xe2\x80\xae");
	assert_non_null(doc);
	json_clean_for_terminal(doc);
	text = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(text,
			    "{\"comm\":\"a\\\\x1b]0;x\\\\x07\",\"k\\\\x0ak\":[\"\\\\u202e\"]}");
	free(text);
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_validity), cmocka_unit_test(test_boundary),
		cmocka_unit_test(test_utf8_mode),     cmocka_unit_test(test_terminal_mode),
		cmocka_unit_test(test_inplace),	      cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
