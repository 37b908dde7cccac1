// SPDX-License-Identifier: GPL-2.0-only
/* Paths and device names for what iotrace reports as numbers: mount table
 * parsing (escapes, bind mounts, several mounts of one file system) and the
 * open-file scan of /proc/<pid>/fd. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/mounts.h"

static const char *const MOUNTINFO =
	"22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
	"30 22 254:0 /srv/data /data rw,relatime shared:1 - ext4 /dev/vda rw\n"
	"31 22 8:1 / /mnt/with\\040space rw - xfs /dev/sda1 rw\n"
	"32 22 8:1 / /mnt/second rw - xfs /dev/sda1 rw\n"
	"33 22 0:45 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw\n"
	"34 22 8:2 /sub /only-sub rw - ext4 /dev/sda2 rw\n"
	"garbage line without separator\n";

static struct mounts *load(void)
{
	const char *dir = test_tmpdir(0);
	struct mounts *m = NULL;

	assert_int_equal(mounts_new(&m, test_write_file(dir, "mountinfo", MOUNTINFO, 0600)), 0);
	test_rmtree(dir);
	return m;
}

static void check(struct mounts *m, uint32_t dev, const char *fs_path, int want_err,
		  const char *want)
{
	char buf[512];

	assert_int_equal(mounts_full_path(m, dev, fs_path, buf, sizeof(buf)), want_err);
	assert_string_equal(buf, want);
}

static void test_full_paths(void **s)
{
	struct mounts *m = load();

	/* the whole file system at / wins over the bind mount of a subdirectory */
	check(m, KDEV_MAKE(254, 0), "/srv/data/x.log", 0, "/srv/data/x.log");
	check(m, KDEV_MAKE(254, 0), "/etc/passwd", 0, "/etc/passwd");
	/* escaped mount points; of two whole mounts the shorter path */
	check(m, KDEV_MAKE(8, 1), "/db/file", 0, "/mnt/second/db/file");
	check(m, KDEV_MAKE(8, 1), "/", 0, "/mnt/second");
	check(m, KDEV_MAKE(0, 45), "/etc/hosts", 0,
	      "/var/lib/docker/overlay2/abc/merged/etc/hosts");
	/* only a subdirectory is mounted: paths inside it, and a path outside it */
	check(m, KDEV_MAKE(8, 2), "/sub/a/b", 0, "/only-sub/a/b");
	check(m, KDEV_MAKE(8, 2), "/subway/x", -ENOENT, "[8:2]/subway/x");
	/* a file system with no mount here */
	check(m, KDEV_MAKE(9, 9), "/x", -ENOENT, "[9:9]/x");
	mounts_free(&m);
	assert_null(m);
	mounts_free(&m);
}

static void test_escaped_space(void **s)
{
	const char *dir = test_tmpdir(1);
	struct mounts *m = NULL;
	char buf[256];

	assert_int_equal(mounts_new(&m, test_write_file(dir, "mi",
							"31 22 8:1 / /mnt/with\\040space rw - xfs "
							"/dev/sda1 rw\n",
							0600)),
			 0);
	assert_int_equal(mounts_full_path(m, KDEV_MAKE(8, 1), "/f", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/mnt/with space/f");
	mounts_free(&m);
	test_rmtree(dir);
}

static void test_device_names(void **s)
{
	struct mounts *m = load();
	char buf[64];

	/* no /sys/dev/block entry for an anonymous device: the mount's source */
	device_name(m, KDEV_MAKE(0, 45), buf, sizeof(buf));
	assert_string_equal(buf, "overlay");
	device_name(NULL, KDEV_MAKE(0, 4095), buf, sizeof(buf));
	assert_string_equal(buf, "0:4095");
	mounts_free(&m);
}

static void test_missing_mountinfo(void **s)
{
	struct mounts *m = NULL;
	char buf[64];

	assert_int_equal(mounts_new(&m, "/nonexistent/mountinfo"), -ENOENT);
	assert_null(m);
	/* NULL tables still answer */
	assert_int_equal(mounts_full_path(NULL, KDEV_MAKE(1, 2), "/a", buf, sizeof(buf)), -ENOENT);
	assert_string_equal(buf, "[1:2]/a");
}

static void test_proc_fd_scan(void **s)
{
	const char *dir = test_tmpdir(2);
	const char *path = test_write_file(dir, "open.txt", "x", 0600);
	struct stat st;
	char buf[512];
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(proc_fd_path("/proc", getpid(),
				      KDEV_MAKE(major(st.st_dev), minor(st.st_dev)), st.st_ino, buf,
				      sizeof(buf)),
			 0);
	assert_string_equal(buf, path);
	/* same inode number on another device is another file */
	assert_int_equal(
		proc_fd_path("/proc", getpid(), KDEV_MAKE(999, 1), st.st_ino, buf, sizeof(buf)),
		-ENOENT);
	close(fd);
	assert_true(proc_fd_path("/proc", 0x7ffffff0, 1, 1, buf, sizeof(buf)) < 0);
	test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_paths),   cmocka_unit_test(test_escaped_space),
		cmocka_unit_test(test_device_names), cmocka_unit_test(test_missing_mountinfo),
		cmocka_unit_test(test_proc_fd_scan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
