// SPDX-License-Identifier: GPL-2.0-only
/* The one growable string: appends and printf across growth, the bound, a failure that
 * sticks, reset, handing the string over, and room for binary replies. */
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"

static void test_grows_across_appends(void **s)
{
	struct strbuf b = {0};
	char big[5000];

	assert_int_equal(strbuf_puts(&b, "a"), 0);
	assert_int_equal(strbuf_printf(&b, "%d;%s", 42, "x"), 0);
	assert_string_equal(b.p, "a42;x");
	assert_int_equal(b.len, 5);
	/* one append larger than every capacity so far, then many small ones */
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(strbuf_printf(&b, "<%s>", big), 0);
	assert_int_equal(b.len, 5 + 2 + sizeof(big) - 1);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(strbuf_printf(&b, "%04d", i % 10000), 0);
	assert_int_equal(b.len, 5 + 2 + sizeof(big) - 1 + 40000);
	assert_int_equal(strlen(b.p), b.len);
	assert_true(b.cap > b.len);
	assert_int_equal(memcmp(b.p + b.len - 8, "99989999", 8), 0);
	/* bytes, NULs included, and nothing at all */
	assert_int_equal(strbuf_append(&b, "p\0q", 3), 0);
	assert_int_equal(b.p[b.len - 2], '\0');
	assert_int_equal(strbuf_append(&b, "", 0), 0);
	strbuf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len + b.cap, 0);
}

static void test_bound_sticks(void **s)
{
	struct strbuf b = {.max = 10};

	assert_int_equal(strbuf_puts(&b, "0123456789"), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(strbuf_puts(&b, "x"), -EFBIG);
	/* the failure sticks and nothing more is written, printf or not */
	assert_int_equal(strbuf_printf(&b, "%s", ""), -EFBIG);
	assert_string_equal(b.p, "0123456789");
	assert_null(strbuf_take(&b, NULL));
	assert_null(b.p);

	/* printf that fits the memory but not the bound */
	b = (struct strbuf){.max = 200};
	assert_int_equal(strbuf_printf(&b, "%s", "abc"), 0);
	assert_true(b.cap > 250);
	assert_int_equal(strbuf_printf(&b, "%250s", "x"), -EFBIG);
	assert_string_equal(b.p, "abc");
	assert_int_equal(b.len, 3);
	/* reset clears the failure and keeps the memory and the bound */
	strbuf_reset(&b);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.max, 200);
	assert_string_equal(b.p, "");
	assert_int_equal(strbuf_printf(&b, "%197s", "y"), 0);
	assert_int_equal(strbuf_puts(&b, "zzz"), 0);
	assert_int_equal(b.len, 200);
	assert_int_equal(strbuf_puts(&b, "!"), -EFBIG);
	strbuf_free(&b);
	assert_int_equal(b.max, 0);
}

static void test_take(void **s)
{
	struct strbuf b = {0};
	size_t len = 99;
	char *t = strbuf_take(&b, &len);

	/* nothing appended is still a string */
	assert_non_null(t);
	assert_string_equal(t, "");
	assert_int_equal(len, 0);
	free(t);
	strbuf_printf(&b, "%s-%u", "id", 7u);
	t = strbuf_take(&b, &len);
	assert_string_equal(t, "id-7");
	assert_int_equal(len, 4);
	assert_null(b.p);
	assert_int_equal(b.len + b.cap, 0);
	free(t);
	/* reusable after a take */
	strbuf_puts(&b, "again");
	assert_string_equal(b.p, "again");
	strbuf_free(&b);
}

static void test_extend_truncate(void **s)
{
	struct strbuf b = {.max = 64};
	uint32_t *v;

	/* binary replies: room handed out zeroed, filled in place, cut back */
	assert_non_null(strbuf_extend(&b, 8));
	v = strbuf_extend(&b, 2 * sizeof(*v));
	assert_non_null(v);
	assert_int_equal(v[0] + v[1], 0);
	v[1] = 7;
	assert_int_equal(b.len, 16);
	assert_int_equal(((uint32_t *)(b.p + 8))[1], 7);
	strbuf_truncate(&b, 12);
	assert_int_equal(b.len, 12);
	assert_int_equal(b.p[12], '\0');
	strbuf_truncate(&b, 40); /* not longer: nothing changes */
	assert_int_equal(b.len, 12);
	/* the bound holds and sticks */
	assert_null(strbuf_extend(&b, 53));
	assert_int_equal(b.err, -EFBIG);
	assert_int_equal(b.len, 12);
	assert_null(strbuf_extend(&b, 1));
	strbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows_across_appends),
		cmocka_unit_test(test_bound_sticks),
		cmocka_unit_test(test_take),
		cmocka_unit_test(test_extend_truncate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
