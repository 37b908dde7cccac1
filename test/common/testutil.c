// SPDX-License-Identifier: GPL-2.0-only
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

bool test_allow_skip(void)
{
	const char *allow = getenv("AUTOTRACE_TEST_ALLOW_SKIP");

	return allow && strcmp(allow, "1") == 0;
}

void require_root_or_exit(const char *test)
{
	if (geteuid() == 0)
		return;
	if (test_allow_skip()) {
		fprintf(stderr, "%s: needs root; skipped (AUTOTRACE_TEST_ALLOW_SKIP=1)\n", test);
		exit(77);
	}
	fprintf(stderr,
		"%s: needs root and BPF; run as root (or set AUTOTRACE_TEST_ALLOW_SKIP=1 "
		"to skip on a developer machine)\n",
		test);
	exit(1);
}

const char *test_tmpdir(int slot)
{
	static char dirs[4][64];

	snprintf(dirs[slot & 3], sizeof(dirs[0]), "/tmp/autotrace-test-XXXXXX");
	if (!mkdtemp(dirs[slot & 3])) {
		perror("mkdtemp");
		exit(1);
	}
	return dirs[slot & 3];
}

const char *test_write_file(const char *dir, const char *name, const char *text, int mode)
{
	static char paths[8][4096];
	static unsigned next;
	char *path = paths[next++ & 7];
	FILE *f;

	snprintf(path, 4096, "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	chmod(path, (mode_t)mode);
	return path;
}

void test_rmtree(const char *path)
{
	remove_tree(path);
}
