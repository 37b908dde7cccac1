// SPDX-License-Identifier: GPL-2.0-only
/* One log call, one record: a process name holding a newline and a journald
 * priority cannot forge a record of its own, nor send escapes to whoever
 * reads the log on a terminal. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/sanitize.h"

static char *capture(void (*fn)(void))
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = tmpfile();
	int saved = dup(2);

	assert_non_null(f);
	fflush(stderr);
	dup2(fileno(f), 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fseek(f, 0, SEEK_END);
	len = (size_t)ftell(f);
	rewind(f);
	text = calloc(1, len + 1);
	assert_int_equal(fread(text, 1, len, f), len);
	fclose(f);
	return text;
}

static void hostile(void)
{
	log_warn("process %s (pid %d) blocked", "x\n<0>autotrace: all good\x1b[2J\xff", 7);
}

static void test_one_record(void **state)
{
	char *text;
	unsigned lines = 0;

	setenv("JOURNAL_STREAM", "8:1234", 1); /* the journald form: "<N>" prefixes */
	text = capture(hostile);
	for (char *p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 1);
	assert_non_null(strstr(text, "<4>process x\\x0a<0>autotrace: all good"));
	assert_true(text[0] == '<' && text[1] == '4');
	assert_null(strchr(text, 0x1b));
	assert_non_null(strstr(text, "\\x1b[2J\\xff (pid 7) blocked"));
	assert_true(utf8_valid(text, strlen(text)));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_record),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
