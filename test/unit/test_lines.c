// SPDX-License-Identifier: GPL-2.0-only
/* Lines of any length: returned whole, or skipped whole and counted, never
 * split into attacker-shaped pieces; a last line without its newline counts. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/lines.h"

static struct linereader *reader_of(const char *text, size_t len, size_t max)
{
	struct linereader *lr = NULL;
	FILE *f = tmpfile();
	int fd;

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fflush(f);
	fd = dup(fileno(f));
	fclose(f);
	lseek(fd, 0, SEEK_SET);
	assert_int_equal(linereader_new(&lr, fd, max), 0);
	return lr;
}

static void test_long_lines_are_dropped_whole(void **state)
{
	char *text = malloc(20000), *line;
	struct linereader *lr;
	size_t len, n = 0;

	/* a 10000-byte line whose tail looks like a maps entry of its own */
	n += (size_t)sprintf(text, "first\n");
	memset(text + n, 'A', 9000);
	n += 9000;
	n += (size_t)sprintf(text + n, "7f00-7f01 r-xp 0 00:00 0 /etc/shadow\nlast");
	lr = reader_of(text, n, 4096);
	assert_int_equal(linereader_next(lr, &line, &len), 1);
	assert_string_equal(line, "first");
	assert_int_equal(linereader_next(lr, &line, &len), 1);
	assert_string_equal(line, "last");
	assert_int_equal(len, 4);
	assert_int_equal(linereader_next(lr, &line, &len), 0);
	assert_int_equal(linereader_dropped(lr), 1);
	linereader_free(&lr);
	free(text);
}

static void test_exact_fit_and_overlong_last_line(void **state)
{
	char text[64], *line;
	struct linereader *lr;
	size_t len;

	/* 8 bytes fit a max of 8; 9 do not; the unterminated last line is too long */
	snprintf(text, sizeof(text), "12345678\n123456789\nabc\n123456789");
	lr = reader_of(text, strlen(text), 8);
	assert_int_equal(linereader_next(lr, &line, &len), 1);
	assert_string_equal(line, "12345678");
	assert_int_equal(linereader_next(lr, &line, &len), 1);
	assert_string_equal(line, "abc");
	assert_int_equal(linereader_next(lr, &line, &len), 0);
	assert_int_equal(linereader_dropped(lr), 2);
	linereader_free(&lr);
}

static void test_many_small_reads(void **state)
{
	struct linereader *lr;
	char *text = malloc(1 << 20), *line;
	size_t n = 0, len, count = 0;

	for (int i = 0; i < 50000; i++)
		n += (size_t)sprintf(text + n, "line %d\n", i);
	lr = reader_of(text, n, 64);
	while (linereader_next(lr, &line, &len) == 1) {
		char want[32];

		snprintf(want, sizeof(want), "line %zu", count);
		assert_string_equal(line, want);
		count++;
	}
	assert_int_equal(count, 50000);
	assert_int_equal(linereader_dropped(lr), 0);
	linereader_free(&lr);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_lines_are_dropped_whole),
		cmocka_unit_test(test_exact_fit_and_overlong_last_line),
		cmocka_unit_test(test_many_small_reads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
