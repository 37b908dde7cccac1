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

	/* cpu.user goes silent: no value from then on, and after a whole ring
	 * of rounds there is room again for a new series at once */
	for (int r = 0; r < 3; r++) {
		tsdb_begin_round(db, 2 + r);
		tsdb_put(db, M_CPU_SYS, NULL, 1);
		tsdb_end_round(db);
		assert_false(tsdb_value(db, tsdb_first(db, M_CPU_USER), 0, &(double){0}));
	}
	tsdb_begin_round(db, 5);
	assert_int_equal(tsdb_put(db, M_CPU_IDLE, NULL, 1), 0);
	assert_null(tsdb_first(db, M_CPU_USER));
	tsdb_end_round(db);
	tsdb_free(&db);

	/* without a put to make room, silent series are forgotten within 8 rounds */
	assert_int_equal(tsdb_new(&db, metric_count(), 16, 3), 0);
	tsdb_begin_round(db, 1);
	tsdb_put(db, M_CPU_USER, NULL, 1);
	tsdb_end_round(db);
	for (int r = 0; r < 3 + 8; r++) {
		tsdb_begin_round(db, 2 + r);
		tsdb_put(db, M_CPU_SYS, NULL, 1);
		tsdb_end_round(db);
	}
	assert_int_equal(tsdb_series_count(db), 1);
	assert_null(tsdb_first(db, M_CPU_USER));
	tsdb_free(&db);
}

/* Values across chunk boundaries and ring wraps, uniform chunks kept as one
 * word, gaps in the middle and at the end, handles. */
static void test_chunks(void **state)
{
	static const struct labels cg = {.n = 1, .k = {"cgroup"}, .v = {"/a"}};
	struct tsdb_ref ref = {0}, other = {0};
	struct tsdb_series *vary, *flat, *gappy;
	struct tsdb *db;
	double v;

	(void)state;
	assert_int_equal(tsdb_new(&db, metric_count(), 64, 100), 0);
	for (unsigned r = 1; r <= 1000; r++) {
		tsdb_begin_round(db, r);
		assert_int_equal(tsdb_put_ref(db, M_CG_CPU_USAGE, &ref, &cg, r * 0.5), 0);
		assert_int_equal(tsdb_put_ref(db, M_CG_CPU_LIMIT, &ref, &cg, 4.0), 0);
		/* silent for rounds 301..349 and from 951 on */
		if ((r <= 300 || r >= 350) && r <= 950)
			assert_int_equal(tsdb_put(db, M_CG_MEM_USAGE_BYTES, &cg, r), 0);
		tsdb_end_round(db);
		if (r % 97)
			continue;
		vary = tsdb_find(db, M_CG_CPU_USAGE, &cg);
		flat = tsdb_find(db, M_CG_CPU_LIMIT, &cg);
		assert_non_null(vary);
		assert_non_null(flat);
		for (unsigned ago = 0; ago < 100 && ago < r; ago++) {
			assert_true(tsdb_value(db, vary, ago, &v));
			assert_true(v == (r - ago) * 0.5);
			assert_true(tsdb_value(db, flat, ago, &v));
			assert_true(v == 4.0);
		}
		assert_false(tsdb_value(db, vary, 100, &v));
	}
	/* the constant series holds no arrays: only the varying ones do */
	assert_true(tsdb_chunk_arrays(db) <= 2 * (100 / 32 + 2));
	gappy = tsdb_find(db, M_CG_MEM_USAGE_BYTES, &cg);
	assert_non_null(gappy);
	assert_false(tsdb_value(db, gappy, 0, &v)); /* silent since 951 */
	assert_true(tsdb_value(db, gappy, 50, &v));
	assert_true(v == 950);
	assert_false(tsdb_value(db, gappy, 1000 - 349, &v)); /* beyond the ring */
	/* a handle of another tsdb is refreshed from its labels */
	other = ref;
	tsdb_free(&db);
	assert_int_equal(tsdb_new(&db, metric_count(), 64, 10), 0);
	tsdb_begin_round(db, 1);
	assert_int_equal(tsdb_put_ref(db, M_CG_CPU_USAGE, &other, &cg, 7), 0);
	assert_true(tsdb_value(db, tsdb_find(db, M_CG_CPU_USAGE, &cg), 0, &v));
	assert_true(v == 7);
	tsdb_end_round(db);
	tsdb_free(&db);
}

static void test_gaps_in_history(void **state)
{
	struct tsdb *db;
	struct tsdb_series *s;
	double v;

	(void)state;
	assert_int_equal(tsdb_new(&db, metric_count(), 16, 50), 0);
	for (unsigned r = 1; r <= 90; r++) {
		tsdb_begin_round(db, r);
		if (r % 10 < 5)
			tsdb_put(db, M_CPU_SYS, NULL, r);
		tsdb_end_round(db);
	}
	s = tsdb_find(db, M_CPU_SYS, NULL);
	for (unsigned ago = 0; ago < 50; ago++) {
		unsigned r = 90 - ago;

		assert_int_equal(tsdb_value(db, s, ago, &v), r % 10 < 5);
		if (r % 10 < 5)
			assert_true(v == r);
	}
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

/* A widened watcher's held rounds read as its last values, and cost nothing per series. */
static void test_held_rounds(void **state)
{
	struct tsdb *db;
	struct tsdb_series *a, *b, *other;
	double v;

	assert_int_equal(tsdb_new(&db, metric_count(), 16, 64), 0);
	/* rounds 1-2 sampled, 3-5 held, 6 sampled, 7 held; source 3 is the watcher,
	 * source 4 another one that samples every round but skipped round 4 */
	for (int r = 1; r <= 7; r++) {
		bool held = (r >= 3 && r <= 5) || r == 7;

		tsdb_begin_round(db, 1000ull * r);
		tsdb_set_source(db, 3);
		if (held) {
			tsdb_hold_source(db, 3);
		} else {
			assert_int_equal(tsdb_put(db, M_CPU_SYS, NULL, r * 10.0), 0);
			if (r != 6) /* b vanished with round 6's pass */
				assert_int_equal(tsdb_put(db, M_CPU_USER, NULL, r), 0);
		}
		tsdb_set_source(db, 4);
		if (r != 4)
			assert_int_equal(tsdb_put(db, M_CPU_IDLE, NULL, r), 0);
		tsdb_end_round(db);
	}
	a = tsdb_find(db, M_CPU_SYS, NULL);
	b = tsdb_find(db, M_CPU_USER, NULL);
	other = tsdb_find(db, M_CPU_IDLE, NULL);
	assert_true(tsdb_value(db, a, 0, &v) && v == 60.0); /* round 7 holds round 6 */
	assert_true(tsdb_held(db, a, 0));
	assert_true(tsdb_value(db, a, 1, &v) && v == 60.0);
	assert_false(tsdb_held(db, a, 1));
	for (unsigned ago = 2; ago <= 4; ago++) /* rounds 5, 4, 3 hold round 2 */
		assert_true(tsdb_value(db, a, ago, &v) && v == 20.0);
	assert_true(tsdb_value(db, a, 5, &v) && v == 20.0);
	/* gone at a pass: no value from then on, held rounds or not */
	assert_false(tsdb_value(db, b, 0, &v));
	assert_false(tsdb_value(db, b, 1, &v));
	assert_true(tsdb_value(db, b, 2, &v) && v == 2.0);
	/* another source's gap stays a gap */
	assert_false(tsdb_value(db, other, 3, &v));
	assert_false(tsdb_held(db, other, 3));
	assert_true(tsdb_value(db, other, 2, &v) && v == 5.0);
	/* sources past the bitmap are ignored, not written out of bounds */
	tsdb_begin_round(db, 8000);
	tsdb_hold_source(db, TSDB_HOLD_SOURCES);
	tsdb_hold_source(db, 0);
	tsdb_end_round(db);
	assert_false(tsdb_value(db, other, 0, &v));
	tsdb_free(&db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_and_gaps), cmocka_unit_test(test_bounds_and_forgetting),
		cmocka_unit_test(test_chunks),	      cmocka_unit_test(test_gaps_in_history),
		cmocka_unit_test(test_units),	      cmocka_unit_test(test_held_rounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
