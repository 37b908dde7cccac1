// SPDX-License-Identifier: GPL-2.0-only
/* Opening inside a root that is not ours: absolute symlinks and ".." stay in
 * it, procfs magic links are refused, only regular files under the size cap
 * come back, a FIFO never blocks. Every case runs through openat2 and
 * through the fallback walk that older kernels get. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/safeopen.h"

static const char *dir;
static int rootfd;

static void mk(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void ln(const char *target, const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(symlink(target, path), 0);
}

static int setup(void **state)
{
	char path[512];

	dir = test_tmpdir(0);
	/* dir/root is the container's root; dir/host.txt is outside it */
	snprintf(path, sizeof(path), "%s/root", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/root/tmp", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/root/etc", dir);
	mkdir(path, 0755);
	mk("host.txt", "HOST SECRET\n");
	mk("root/etc/target", "inside\n");
	mk("root/big", "0123456789");
	ln("/etc/target", "root/tmp/abs");
	ln("../../../../../../../../etc/target", "root/tmp/dotdot");
	ln("../host.txt", "root/tmp/up");
	ln("/tmp/abs", "root/tmp/chain");
	ln("loop2", "root/tmp/loop1");
	ln("loop1", "root/tmp/loop2");
	snprintf(path, sizeof(path), "%s/root/tmp/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/root", dir);
	rootfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(rootfd >= 0);
	return 0;
}

static int teardown(void **state)
{
	close(rootfd);
	test_rmtree(dir);
	return 0;
}

static void expect_content(const char *path, const char *want)
{
	char buf[64] = "";
	int fd = open_in_root(rootfd, path, 0, NULL);

	if (fd < 0)
		print_error("%s: %d\n", path, fd);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	assert_string_equal(buf, want);
	close(fd);
}

static void cases(void)
{
	struct stat st;
	int fd;

	expect_content("/etc/target", "inside\n");
	expect_content("etc/target", "inside\n");
	expect_content("/tmp/abs", "inside\n");	   /* absolute: re-rooted */
	expect_content("/tmp/dotdot", "inside\n"); /* "..": clamped at the root */
	expect_content("/tmp/chain", "inside\n");
	expect_content("/../../etc/./target", "inside\n");
	/* the way out of the root does not exist inside it */
	assert_int_equal(open_in_root(rootfd, "/tmp/up", 0, NULL), -ENOENT);
	assert_int_equal(open_in_root(rootfd, "/tmp/loop1", 0, NULL), -ELOOP);
	assert_int_equal(open_in_root(rootfd, "/tmp/fifo", 0, NULL), -EINVAL);
	assert_int_equal(open_in_root(rootfd, "/tmp", 0, NULL) < 0, 1);
	assert_int_equal(open_in_root(rootfd, "/big", 5, NULL), -EFBIG);
	fd = open_in_root(rootfd, "/big", 10, &st);
	assert_true(fd >= 0);
	assert_int_equal(st.st_size, 10);
	close(fd);
}

/* procfs magic links lead anywhere: refused both ways */
static void magic_links(void)
{
	int host = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), fd;
	char path[64];

	assert_true(host >= 0);
	assert_int_equal(open_in_root(host, "/proc/self/root/etc/hostname", 0, NULL), -ELOOP);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", rootfd);
	assert_true(open_in_root(host, path, 0, NULL) < 0);
	fd = open_in_root(host, "/proc/self/status", 0, NULL); /* not a link: fine */
	assert_true(fd >= 0);
	close(fd);
	close(host);
}

static void test_openat2(void **state)
{
	if (!safeopen_have_openat2()) {
		print_message("no openat2 on this kernel: the fallback serves both\n");
		safeopen_force_fallback = true;
	}
	cases();
	magic_links();
	safeopen_force_fallback = false;
}

static void test_fallback_walk(void **state)
{
	safeopen_force_fallback = true;
	cases();
	magic_links();
	safeopen_force_fallback = false;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openat2),
		cmocka_unit_test(test_fallback_walk),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
