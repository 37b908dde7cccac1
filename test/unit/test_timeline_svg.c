// SPDX-License-Identifier: GPL-2.0-only
/* timeline.svg from a timeline capture's data: lanes, colours, escaped text,
 * hover stacks, and a size bounded by the picture, not by the intervals. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "probes/timeline_svg.h"

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static json_t *lane(int tid, const char *comm, double on_pct)
{
	return json_pack("{s:i,s:i,s:s,s:f,s:{s:[],s:[],s:s,s:[]}}", "pid", 100, "tid", tid, "comm",
			 comm, "on_cpu_pct", on_pct, "timeline", "start_us", "dur_us", "state", "",
			 "stack");
}

/* Appends an interval to a lane's parallel arrays. */
static void add_iv(json_t *lane, int start_us, int dur_us, char state, int stack)
{
	json_t *tl = json_object_get(lane, "timeline");
	const char *codes = json_string_value(json_object_get(tl, "state"));
	size_t n = strlen(codes);
	char *more = malloc(n + 2);

	memcpy(more, codes, n);
	more[n] = state;
	more[n + 1] = '\0';
	json_object_set_new(tl, "state", json_string(more));
	free(more);
	json_array_append_new(json_object_get(tl, "start_us"), json_integer(start_us));
	json_array_append_new(json_object_get(tl, "dur_us"), json_integer(dur_us));
	json_array_append_new(json_object_get(tl, "stack"), json_integer(stack));
}

static void test_two_lanes(void **s)
{
	json_t *data = json_pack("{s:f,s:[],s:[[s,s]]}", "window_ms", 1000.0, "threads", "stacks",
				 "do_nanosleep", "<evil>&\"frame\"");
	json_t *a = lane(101, "spin", 98.0), *b = lane(102, "we<ird>", 1.0);
	char *svg = NULL;
	size_t len = 0;

	add_iv(a, 0, 990000, 'C', -1);
	add_iv(a, 990000, 10000, 'R', -1);
	add_iv(b, 0, 500000, 'S', 0);
	add_iv(b, 500000, 500000, 'D', 0);
	json_array_append_new(json_object_get(data, "threads"), a);
	json_array_append_new(json_object_get(data, "threads"), b);

	assert_int_equal(timeline_svg_render(data, &svg, &len), 0);
	assert_int_equal(strlen(svg), len);
	assert_true(strncmp(svg, "<?xml", 5) == 0);
	assert_non_null(strstr(svg, "</svg>\n"));
	assert_non_null(strstr(svg, "spin 101"));
	assert_non_null(strstr(svg, "we&lt;ird&gt; 102"));
	assert_null(strstr(svg, "<ird>"));
	assert_null(strstr(svg, "<evil>"));
	assert_non_null(strstr(svg, "&lt;evil&gt;&amp;&quot;frame&quot;"));
	/* on CPU green, runnable amber, S blue, D red */
	assert_non_null(strstr(svg, "fill=\"#2e7d32\"><title>"));
	assert_non_null(strstr(svg, "fill=\"#f9a825\"><title>"));
	assert_non_null(strstr(svg, "fill=\"#90caf9\"><title>"));
	assert_non_null(strstr(svg, "fill=\"#c62828\"><title>"));
	assert_non_null(strstr(svg, "blocked in:&#10;  do_nanosleep"));
	assert_non_null(strstr(svg, "98% on CPU"));
	assert_non_null(strstr(svg, ">1000 ms<"));
	free(svg);
	json_decref(data);
}

static void test_many_short_intervals_stay_small(void **s)
{
	json_t *data = json_pack("{s:f,s:[],s:[]}", "window_ms", 1000.0, "threads", "stacks");
	json_t *l = lane(7, "busy", 50.0), *tl = json_object_get(l, "timeline");
	char *codes = malloc(100001);
	char *svg = NULL;
	size_t len = 0;

	/* 100000 intervals of 10 us: far below a pixel each */
	for (int i = 0; i < 100000; i++) {
		json_array_append_new(json_object_get(tl, "start_us"), json_integer(i * 10));
		json_array_append_new(json_object_get(tl, "dur_us"), json_integer(10));
		json_array_append_new(json_object_get(tl, "stack"), json_integer(-1));
		codes[i] = i % 2 ? 'C' : 'S';
	}
	codes[100000] = '\0';
	json_object_set_new(tl, "state", json_string(codes));
	free(codes);
	json_array_append_new(json_object_get(data, "threads"), l);
	assert_int_equal(timeline_svg_render(data, &svg, &len), 0);
	/* at most one merged bar per pixel of the plot */
	assert_true(count(svg, "<rect") < 1200);
	assert_true(len < 400 * 1024);
	assert_non_null(strstr(svg, "short intervals:"));
	free(svg);
	json_decref(data);
}

static void test_empty(void **s)
{
	json_t *data = json_object();
	char *svg = NULL;
	size_t len = 0;

	assert_int_equal(timeline_svg_render(data, &svg, &len), 0);
	assert_non_null(strstr(svg, "0 threads"));
	assert_non_null(strstr(svg, "</svg>"));
	free(svg);
	json_decref(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_lanes),
		cmocka_unit_test(test_many_short_intervals_stay_small),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
