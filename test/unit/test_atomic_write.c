// SPDX-License-Identifier: GPL-2.0-only
/* write_file_atomic in a directory others can write to (flamegraph -o
 * /tmp/x.svg): the temp file's name cannot be guessed, it is created O_EXCL
 * next to the target, a symlink or file planted under the old predictable
 * name is neither followed nor truncated, and a symlink at the target itself
 * is replaced, not written through. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

static void read_back(const char *path, const char *want)
{
	char *text = NULL;

	assert_int_equal(read_file(path, 4096, &text, NULL), 0);
	assert_string_equal(text, want);
	free(text);
}

static void test_planted_names(void **state)
{
	const char *dir = test_tmpdir(0);
	char target[512], planted[600], victim[512], link[512];
	struct stat st;
	unsigned entries = 0;
	struct dirent *de;
	DIR *d;

	snprintf(target, sizeof(target), "%s/out.svg", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	test_write_file(dir, "victim", "precious\n", 0644);
	/* the name the old code used: out.svg.tmp.PID -> victim */
	snprintf(planted, sizeof(planted), "%s.tmp.%d", target, (int)getpid());
	assert_int_equal(symlink(victim, planted), 0);
	assert_int_equal(write_file_atomic(target, "<svg/>\n", 7, 0640), 0);
	read_back(target, "<svg/>\n");
	read_back(victim, "precious\n");
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	/* nothing left behind but the three names */
	d = opendir(dir);
	while ((de = readdir(d)))
		entries += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(entries, 3);

	/* a symlink at the target is replaced by the file, the victim untouched */
	snprintf(link, sizeof(link), "%s/link.svg", dir);
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(write_file_atomic(link, "new\n", 4, 0600), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	read_back(victim, "precious\n");
	test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_planted_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
