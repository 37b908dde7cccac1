// SPDX-License-Identifier: GPL-2.0-only
/* The local incident store: atomic writes, permissions, listing, retention. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "storage/store.h"

#define DAY_MS 86400000ull

static void test_ids(void **state)
{
	char a[64], b[64];

	incident_id_new(1795000000123ull, a, sizeof(a));
	incident_id_new(1795000000124ull, b, sizeof(b));
	assert_int_equal(strlen(a), INCIDENT_ID_LEN);
	assert_true(incident_id_valid(a));
	assert_true(strcmp(a, b) < 0); /* ids sort by time */
	assert_memory_equal(a, "20261118T", 9);
	assert_false(incident_id_valid("../../etc/passwd"));
	assert_false(incident_id_valid("20261116T000000123Z-0123456789abcdeg"));
	assert_false(incident_id_valid(""));
}

static unsigned count_entries(const char *dir)
{
	struct store_entry *list = NULL;
	size_t n = 0;

	assert_int_equal(store_list(dir, &list, &n), 0);
	free(list);
	return (unsigned)n;
}

static void write_one(struct store *s, uint64_t ms, size_t artifact_bytes, char *id)
{
	struct capture_artifact art = {.name = "profile.folded"};
	char dir[4400];

	art.data = calloc(1, artifact_bytes + 1);
	memset(art.data, 'x', artifact_bytes);
	art.len = artifact_bytes;
	incident_id_new(ms, id, 64);
	assert_int_equal(store_write(s, id, ms, "{}", 2, &art, 1, dir, sizeof(dir)), 0);
	free(art.data);
}

static void test_write_is_atomic_and_private(void **state)
{
	const char *root = test_tmpdir(0);
	char dir[4200], path[4400], id[64];
	struct store_opts o = {.max_size = 1 << 30, .max_age_ms = 7 * DAY_MS};
	struct store *s;
	struct stat st;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/store", root);
	o.dir = dir;
	assert_int_equal(store_open(&s, &o), 0);
	write_one(s, now_real_ms(), 100, id);

	assert_int_equal(store_find(dir, id, path, sizeof(path)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	strcat(path, "/incident.json");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* no temporary directory is left behind */
	path[strlen(path) - strlen("/incident.json") - strlen(id) - 1] = '\0';
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		assert_true(de->d_name[0] != '.' || !strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."));
	closedir(d);

	/* a bad artifact name fails the whole incident and leaves nothing */
	{
		struct capture_artifact bad = {.name = "../escape", .data = "x", .len = 1};
		char id2[64];

		incident_id_new(now_real_ms(), id2, sizeof(id2));
		assert_int_equal(store_write(s, id2, now_real_ms(), "{}", 2, &bad, 1, NULL, 0),
				 -EINVAL);
		assert_int_equal(store_find(dir, id2, path, sizeof(path)), -ENOENT);
	}
	assert_int_equal(count_entries(dir), 1);
	store_free(&s);
	test_rmtree(root);
}

static void test_retention_by_age_and_size(void **state)
{
	const char *root = test_tmpdir(1);
	uint64_t now = now_real_ms();
	char dir[4200], ids[5][64], path[4400];
	struct store_opts o = {.max_size = 1 << 30, .max_age_ms = 7 * DAY_MS};
	struct store_retention st;
	struct store *s;

	snprintf(dir, sizeof(dir), "%s/store", root);
	o.dir = dir;
	assert_int_equal(store_open(&s, &o), 0);
	write_one(s, now - 9 * DAY_MS, 1000, ids[0]); /* past max_age */
	write_one(s, now - 8 * DAY_MS, 1000, ids[1]); /* past max_age */
	write_one(s, now - 2 * DAY_MS, 300000, ids[2]);
	write_one(s, now - 1 * DAY_MS, 300000, ids[3]);
	write_one(s, now, 300000, ids[4]);
	assert_int_equal(count_entries(dir), 5);

	assert_int_equal(store_enforce_retention(s, now, &st), 0);
	assert_int_equal(st.removed_age, 2);
	assert_int_equal(st.removed_size, 0);
	assert_int_equal(count_entries(dir), 3);
	assert_int_equal(store_find(dir, ids[0], path, sizeof(path)), -ENOENT);

	/* shrink the size cap: oldest go first until the rest fits */
	store_free(&s);
	o.max_size = 700 * 1024;
	assert_int_equal(store_open(&s, &o), 0);
	assert_int_equal(store_enforce_retention(s, now, &st), 0);
	assert_int_equal(st.removed_size, 1);
	assert_int_equal(store_find(dir, ids[2], path, sizeof(path)), -ENOENT);
	assert_int_equal(store_find(dir, ids[3], path, sizeof(path)), 0);
	assert_int_equal(store_find(dir, ids[4], path, sizeof(path)), 0);
	assert_true(st.bytes <= o.max_size);
	store_free(&s);
	test_rmtree(root);
}

static void test_list_ignores_junk(void **state)
{
	const char *root = test_tmpdir(2);
	char p[4200];

	snprintf(p, sizeof(p), "%s/2026-01-01/not-an-id", root);
	assert_int_equal(mkdir_p(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/2026-01-01/.20260101T000000000Z-0123456789abcdef.tmp", root);
	assert_int_equal(mkdir_p(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/junk/20260101T000000000Z-0123456789abcdef", root);
	assert_int_equal(mkdir_p(p, 0700), 0);
	assert_int_equal(count_entries(root), 0);
	assert_int_equal(count_entries("/nonexistent-store"), 0);
	test_rmtree(root);
}

/* A crash between mkdir and rename leaves .ID.tmp behind: retention removes
 * and counts it, and leaves everything else alone. */
static void test_crash_leftovers(void **state)
{
	const char *root = test_tmpdir(0);
	char dir[4200], day[4300], tmp[4400], id[64], other[4400];
	struct store_opts o = {.max_size = 1 << 30, .max_age_ms = 7 * DAY_MS};
	struct store_retention r;
	struct store_stats st;
	struct store *s;

	snprintf(dir, sizeof(dir), "%s/store", root);
	o.dir = dir;
	assert_int_equal(store_open(&s, &o), 0);
	write_one(s, now_real_ms(), 100, id);
	snprintf(day, sizeof(day), "%s/%.4s-%.2s-%.2s", dir, id, id + 4, id + 6);
	/* what a crash mid-write leaves: a hidden directory with some artifacts */
	id[INCIDENT_ID_LEN - 1] = id[INCIDENT_ID_LEN - 1] == '0' ? '1' : '0';
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", day, id);
	assert_int_equal(mkdir(tmp, 0700), 0);
	test_write_file(tmp, "profile.folded", "a;b 1\n", 0600);
	/* and a name that only looks similar: not ours to remove */
	snprintf(other, sizeof(other), "%s/.keepme.tmp", day);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_int_equal(store_enforce_retention(s, now_real_ms(), &r), 0);
	assert_int_equal(r.removed_leftovers, 1);
	assert_true(r.leftover_bytes > 0);
	assert_int_equal(r.incidents, 1);
	assert_int_not_equal(access(tmp, F_OK), 0);
	assert_int_equal(access(other, F_OK), 0);
	store_stats_get(s, &st);
	assert_int_equal(st.leftovers_removed, 1);
	store_free(&s);
	test_rmtree(root);
}

/* A store on a tiny file system of its own (a tmpfs in a private user and
 * mount namespace, no root needed): the incident the full disk refuses is
 * kept in memory, bounded, and written once retention makes room. */
static void test_disk_full_is_retried(void **state)
{
	const char *root = test_tmpdir(1);
	char dir[4200], id[64], where[4400], path[4400], opts[64];
	struct store_opts o = {.max_size = 1 << 30, .max_age_ms = 7 * DAY_MS};
	struct capture_artifact big = {.name = "profile.folded", .len = 96 * 1024};
	struct store_retention r;
	struct store_stats st;
	struct store *s;
	int err;

	if (geteuid() == 0) {
		assert_int_equal(unshare(CLONE_NEWNS), 0);
	} else {
		/* become root of a user namespace of our own, mapped to ourselves */
		char map[64];
		uid_t uid = geteuid();
		gid_t gid = getegid();

		assert_int_equal(unshare(CLONE_NEWUSER | CLONE_NEWNS), 0);
		test_write_file("/proc/self", "setgroups", "deny", 0);
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		test_write_file("/proc/self", "uid_map", map, 0);
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		test_write_file("/proc/self", "gid_map", map, 0);
	}
	mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	snprintf(opts, sizeof(opts), "size=256k,mode=0700");
	assert_int_equal(mount("tmpfs", root, "tmpfs", 0, opts), 0);
	snprintf(dir, sizeof(dir), "%s/store", root);
	o.dir = dir;
	assert_int_equal(store_open(&s, &o), 0);
	big.data = calloc(1, big.len);
	memset(big.data, 'x', big.len);
	/* fill it: two fit, the third does not */
	for (int i = 0; i < 2; i++) {
		incident_id_new(now_real_ms() - 86400000ull * 3 + (uint64_t)i, id, sizeof(id));
		assert_int_equal(store_write(s, id, now_real_ms() - 86400000ull * 3, "{}", 2, &big,
					     1, NULL, 0),
				 0);
	}
	incident_id_new(now_real_ms(), id, sizeof(id));
	err = store_write(s, id, now_real_ms(), "{\"late\":1}", 10, &big, 1, where, sizeof(where));
	assert_int_equal(err, -EAGAIN);
	assert_non_null(strstr(where, id));
	store_stats_get(s, &st);
	assert_int_equal(st.pending, 1);
	assert_true(st.pending_bytes >= big.len);
	assert_int_equal(store_retry(s, now_mono_ns() / 1000000, true), 0); /* still full */
	/* the memory bound: past it an incident is lost, and counted */
	for (int i = 0; i < STORE_PENDING_MAX; i++) {
		char id2[64];

		incident_id_new(now_real_ms(), id2, sizeof(id2));
		store_write(s, id2, now_real_ms(), "{}", 2, &big, 1, NULL, 0);
	}
	store_stats_get(s, &st);
	assert_true(st.pending <= STORE_PENDING_MAX);
	assert_true(st.pending_bytes <= STORE_PENDING_BYTES_MAX);
	assert_true(st.dropped >= 1);
	/* retention removes the old ones (max_age 2 days): room for the kept ones */
	s = (store_free(&s), NULL);
	o.max_age_ms = 2 * DAY_MS;
	assert_int_equal(store_open(&s, &o), 0);
	incident_id_new(now_real_ms(), id, sizeof(id));
	assert_int_equal(store_write(s, id, now_real_ms(), "{}", 2, &big, 1, NULL, 0), -EAGAIN);
	assert_int_equal(store_enforce_retention(s, now_real_ms(), &r), 0);
	assert_int_equal(r.removed_age, 2);
	store_stats_get(s, &st);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.written_late, 1);
	assert_int_equal(store_find(dir, id, path, sizeof(path)), 0);
	store_free(&s);
	free(big.data);
	umount(root);
	test_rmtree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_write_is_atomic_and_private),
		cmocka_unit_test(test_retention_by_age_and_size),
		cmocka_unit_test(test_list_ignores_junk),
		cmocka_unit_test(test_crash_leftovers),
		cmocka_unit_test(test_disk_full_is_retried),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
