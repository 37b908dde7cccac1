// SPDX-License-Identifier: GPL-2.0-only
/* Metric history: rings, gaps, label keys, bounds, forgetting silent series. */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"

static const struct labels cpu0 = {.n = 1, .k = {"cpu"}, .v = {"0"}};

static void test_ring_and_gaps(void **state)
{
	struct tsdb *db;
	struct tsdb_series *s;
	double v;

	assert_int_equal(tsdb_new(&db, metric_count(), 16, 4), 0);
	for (int r = 1; r <= 6; r++) {
		tsdb_begin_round(db, 1000ull * r);
		if (r != 5) /* round 5 has no value: a gap */
			assert_int_equal(tsdb_put(db, M_CPU_SYS, NULL, r * 10.0), 0);
		assert_int_equal(tsdb_put(db, M_CPU_SYS, &cpu0, r), 0);
		tsdb_end_round(db);
	}
	s = tsdb_find(db, M_CPU_SYS, NULL);
	assert_non_null(s);
	assert_true(tsdb_value(db, s, 0, &v));
	assert_true(v == 60.0);
	assert_false(tsdb_value(db, s, 1, &v)); /* the gap */
	assert_true(tsdb_value(db, s, 2, &v));
	assert_true(v == 40.0);
	assert_false(tsdb_value(db, s, 4, &v)); /* beyond the ring */
	assert_int_equal(tsdb_round_time(db, 0), 6000);
	assert_int_equal(tsdb_round_time(db, 3), 3000);
	assert_int_equal(tsdb_round_time(db, 4), 0);

	/* series of one metric iterate in creation order; labels round-trip */
	s = tsdb_first(db, M_CPU_SYS);
	assert_string_equal(tsdb_series_key(s), "");
	s = tsdb_next(s);
	assert_string_equal(tsdb_series_key(s), "cpu=0");
	{
		char buf[16];

		assert_int_equal(tsdb_series_label(s, "cpu", buf, sizeof(buf)), 1);
		assert_string_equal(buf, "0");
		assert_int_equal(tsdb_series_label(s, "device", buf, sizeof(buf)), -ENOENT);
	}
	assert_null(tsdb_next(s));
	tsdb_free(&db);
	assert_null(db);
}

static void test_bounds_and_forgetting(void **state)
{
	struct tsdb *db;
	char big[600];
	struct labels huge = {.n = 1, .k = {"cgroup"}, .v = {big}};

	assert_int_equal(tsdb_new(&db, metric_count(), 2, 3), 0);
	tsdb_begin_round(db, 1);
	assert_int_equal(tsdb_put(db, M_CPU_SYS, NULL, 1), 0);
	assert_int_equal(tsdb_put(db, M_CPU_USER, NULL, 1), 0);
	assert_int_equal(tsdb_put(db, M_CPU_IDLE, NULL, 1), -ENOSPC);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(tsdb_put(db, M_CPU_SYS, &huge, 1), -E2BIG);
	assert_int_equal(tsdb_dropped(db), 2);
	tsdb_end_round(db);
	assert_int_equal(tsdb_series_count(db), 2);

	/* cpu.user goes silent: forgotten after a whole ring of rounds */
	for (int r = 0; r < 3; r++) {
		tsdb_begin_round(db, 2 + r);
		tsdb_put(db, M_CPU_SYS, NULL, 1);
		tsdb_end_round(db);
	}
	assert_int_equal(tsdb_series_count(db), 1);
	assert_null(tsdb_first(db, M_CPU_USER));
	/* room again for a new series */
	tsdb_begin_round(db, 9);
	assert_int_equal(tsdb_put(db, M_CPU_IDLE, NULL, 1), 0);
	tsdb_end_round(db);
	tsdb_free(&db);
}

static void test_units(void **state)
{
	uint64_t v;
	char buf[32];

	assert_int_equal(parse_duration_ms("500ms", &v), 0);
	assert_int_equal(v, 500);
	assert_int_equal(parse_duration_ms("1.5s", &v), 0);
	assert_int_equal(v, 1500);
	assert_int_equal(parse_duration_ms("7d", &v), 0);
	assert_int_equal(v, 7 * 86400000ull);
	assert_int_equal(parse_duration_ms("3", &v), 0);
	assert_int_equal(v, 3000);
	assert_int_not_equal(parse_duration_ms("", &v), 0);
	assert_int_not_equal(parse_duration_ms("s", &v), 0);
	assert_int_not_equal(parse_duration_ms("1e999s", &v), 0);
	assert_int_equal(parse_size("512MiB", &v), 0);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(parse_size("100MB", &v), 0);
	assert_int_equal(v, 100000000);
	assert_int_not_equal(parse_size("10 GiB", &v), 0);
	assert_int_not_equal(parse_size("99999999999TiB", &v), 0);
	format_duration(600000, buf, sizeof(buf));
	assert_string_equal(buf, "10m");
	format_size(1ull << 30, buf, sizeof(buf));
	assert_string_equal(buf, "1GiB");
	format_iso8601(1795000000123ull, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-18T11:06:40.123Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_and_gaps),
		cmocka_unit_test(test_bounds_and_forgetting),
		cmocka_unit_test(test_units),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
