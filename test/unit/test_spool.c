// SPDX-License-Identifier: GPL-2.0-only
/* The Elasticsearch spool: durable puts, restart, ack, park, size and age bounds. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "storage/spool.h"
#include "storage/store.h"

#define DAY_MS 86400000ull
#define T0     1795000000000ull /* 2026-11-18 */

static const char *doc = "{\"incident\":{\"id\":\"x\"},\"pad\":\"0123456789012345678901234567\"}";

static struct spool *open_at(const char *dir, uint64_t max_size, uint64_t max_age_ms)
{
	struct spool_opts o = {.dir = dir, .max_size = max_size, .max_age_ms = max_age_ms};
	struct spool *s = NULL;

	assert_int_equal(spool_open(&s, &o), 0);
	return s;
}

static void id_at(uint64_t ms, char *buf)
{
	incident_id_new(ms, buf, 64);
}

static int files_in(const char *dir, const char *suffix)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name), sl = strlen(suffix);

		n += l > sl && strcmp(de->d_name + l - sl, suffix) == 0;
	}
	closedir(d);
	return n;
}

static void test_put_read_ack_and_restart(void **state)
{
	const char *dir = test_tmpdir(0);
	char spool_path[4200], a[64], b[64], *got = NULL;
	struct spool *s;
	struct stat st;
	size_t len = 0;

	snprintf(spool_path, sizeof(spool_path), "%s/spool", dir);
	s = open_at(spool_path, 1 << 20, 7 * DAY_MS);
	id_at(T0 + 2, b);
	id_at(T0 + 1, a);
	assert_int_equal(spool_put(s, b, doc, strlen(doc), T0, NULL), 0);
	assert_int_equal(spool_put(s, a, doc, strlen(doc), T0, NULL), 0);
	/* oldest first, whatever the order they came in */
	assert_int_equal(spool_count(s), 2);
	assert_string_equal(spool_item_at(s, 0)->id, a);
	assert_string_equal(spool_item_at(s, 1)->id, b);
	assert_null(spool_item_at(s, 2));
	assert_int_equal(spool_item_at(s, 0)->real_ms, T0 + 1);
	assert_int_equal(spool_read(s, a, &got, &len), 0);
	assert_int_equal(len, strlen(doc));
	assert_string_equal(got, doc);
	free(got);
	/* private: incidents hold stacks and command lines */
	assert_int_equal(stat(spool_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(spool_path + strlen(spool_path), 100, "/%s.json", a);
	assert_int_equal(stat(spool_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	*strrchr(spool_path, '/') = '\0';

	/* a restart finds what was queued; a crash's temporary is cleaned up */
	spool_free(&s);
	assert_null(s);
	test_write_file(spool_path, "20261118T000000000Z-0000000000000000.json.tmp.99", "{", 0600);
	test_write_file(spool_path, "README", "not an incident", 0600);
	s = open_at(spool_path, 1 << 20, 7 * DAY_MS);
	assert_int_equal(spool_count(s), 2);
	assert_int_equal(files_in(spool_path, ".tmp.99"), 0);
	assert_int_equal(spool_ack(s, a), 0);
	assert_int_equal(spool_ack(s, a), -ENOENT);
	assert_int_equal(spool_count(s), 1);
	assert_null(spool_find(s, a));
	assert_non_null(spool_find(s, b));
	spool_free(&s);
	s = open_at(spool_path, 1 << 20, 7 * DAY_MS);
	assert_int_equal(spool_count(s), 1); /* acknowledged means gone for good */
	assert_int_equal(spool_read(s, a, &got, &len), -ENOENT);
	spool_free(&s);
	test_rmtree(dir);
}

static void test_park(void **state)
{
	const char *dir = test_tmpdir(0);
	char id[64], parked[4200], *reason = NULL;
	struct spool_stats st;
	struct spool *s;

	s = open_at(dir, 1 << 20, 7 * DAY_MS);
	id_at(T0, id);
	assert_int_equal(spool_put(s, id, doc, strlen(doc), T0, NULL), 0);
	assert_int_equal(spool_park(s, id, "HTTP 400: mapper_parsing_exception: bad"), 0);
	assert_int_equal(spool_count(s), 0);
	spool_stats(s, &st);
	assert_int_equal(st.parked, 1);
	assert_int_equal(st.parked_total, 1);
	snprintf(parked, sizeof(parked), "%s/parked/%s.reason", dir, id);
	assert_int_equal(read_file(parked, 4096, &reason, NULL), 0);
	assert_string_equal(reason, "HTTP 400: mapper_parsing_exception: bad");
	free(reason);
	spool_free(&s);
	/* parked incidents are not queued again by a restart */
	s = open_at(dir, 1 << 20, 7 * DAY_MS);
	assert_int_equal(spool_count(s), 0);
	spool_stats(s, &st);
	assert_int_equal(st.parked, 1);
	spool_free(&s);
	test_rmtree(dir);
}

static void test_size_bound_evicts_oldest(void **state)
{
	const char *dir = test_tmpdir(0);
	size_t len = strlen(doc);
	struct spool_evicted ev = {0};
	struct spool_stats st;
	char ids[10][64];
	struct spool *s;

	/* room for four documents */
	s = open_at(dir, 4 * len, 7 * DAY_MS);
	for (int i = 0; i < 10; i++) {
		id_at(T0 + (uint64_t)i * 1000, ids[i]);
		assert_int_equal(spool_put(s, ids[i], doc, len, T0 + 10000, &ev), 0);
	}
	assert_int_equal(spool_count(s), 4);
	assert_int_equal(ev.by_size, 6);
	assert_int_equal(ev.by_age, 0);
	assert_string_equal(ev.oldest, ids[0]);
	assert_string_equal(ev.newest, ids[5]);
	assert_string_equal(spool_item_at(s, 0)->id, ids[6]);
	spool_stats(s, &st);
	assert_int_equal(st.evicted_size, 6);
	assert_int_equal(st.bytes, 4 * len);
	assert_int_equal(files_in(dir, ".json"), 4);

	/* an item on its way to the cluster is not evicted under it */
	spool_item_at(s, 0)->inflight = true;
	memset(&ev, 0, sizeof(ev));
	{
		char id[64];

		id_at(T0 + 20000, id);
		assert_int_equal(spool_put(s, id, doc, len, T0 + 20000, &ev), 0);
	}
	assert_int_equal(ev.by_size, 1);
	assert_non_null(spool_find(s, ids[6]));
	assert_null(spool_find(s, ids[7]));
	spool_free(&s);
	test_rmtree(dir);
}

static void test_a_single_large_incident_stays(void **state)
{
	const char *dir = test_tmpdir(0);
	struct spool_evicted ev = {0};
	struct spool *s;
	char id[64];

	s = open_at(dir, 8, 7 * DAY_MS);
	id_at(T0, id);
	/* larger than the whole bound: the newest incident is kept rather than lost at once */
	assert_int_equal(spool_put(s, id, doc, strlen(doc), T0, &ev), 0);
	assert_int_equal(spool_count(s), 1);
	assert_int_equal(ev.by_size, 0);
	spool_free(&s);
	test_rmtree(dir);
}

static void test_age_bound(void **state)
{
	const char *dir = test_tmpdir(0);
	struct spool_evicted ev = {0};
	struct spool_stats st;
	char old[64], fresh[64];
	struct spool *s;

	s = open_at(dir, 1 << 20, DAY_MS);
	id_at(T0, old);
	id_at(T0 + 2 * DAY_MS, fresh);
	assert_int_equal(spool_put(s, old, doc, strlen(doc), T0, &ev), 0);
	assert_int_equal(spool_put(s, fresh, doc, strlen(doc), T0 + 2 * DAY_MS, &ev), 0);
	assert_int_equal(ev.by_age, 1);
	assert_int_equal(spool_count(s), 1);
	assert_string_equal(spool_item_at(s, 0)->id, fresh);
	spool_enforce(s, T0 + 4 * DAY_MS, &ev);
	assert_int_equal(ev.by_age, 2);
	assert_int_equal(spool_count(s), 0);
	spool_stats(s, &st);
	assert_int_equal(st.evicted_age, 2);
	spool_free(&s);
	test_rmtree(dir);
}

static void test_bad_ids_and_dirs(void **state)
{
	const char *dir = test_tmpdir(0);
	struct spool_opts o = {
		.dir = "/proc/no/such/spool", .max_size = 1 << 20, .max_age_ms = DAY_MS};
	struct spool *s = NULL;

	assert_int_not_equal(spool_open(&s, &o), 0);
	assert_null(s);
	s = open_at(dir, 1 << 20, DAY_MS);
	/* ids become file names: nothing but real incident ids */
	assert_int_equal(spool_put(s, "../../etc/passwd", doc, strlen(doc), T0, NULL), -EINVAL);
	assert_int_equal(spool_count(s), 0);
	assert_int_equal(spool_park(s, "20261118T000000000Z-0000000000000000", "x"), -ENOENT);
	spool_free(&s);
	spool_free(&s); /* NULL-safe */
	test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_read_ack_and_restart),
		cmocka_unit_test(test_park),
		cmocka_unit_test(test_size_bound_evicts_oldest),
		cmocka_unit_test(test_a_single_large_incident_stays),
		cmocka_unit_test(test_age_bound),
		cmocka_unit_test(test_bad_ids_and_dirs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
