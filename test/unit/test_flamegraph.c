// SPDX-License-Identifier: GPL-2.0-only
/* Flame graph SVG: structure, escaping, colours by frame kind, and bounds. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sanitize.h"
#include "storage/flamegraph.h"

static char *render(const char *folded, const struct flamegraph_opts *o)
{
	/* static: with the address of a local passed out and its value returned, gcc -O3
	 * inlines this and takes every later use of the SVG for a dangling pointer */
	static char *svg;
	static size_t len;

	assert_int_equal(flamegraph_render(folded, strlen(folded), o, &svg, &len), 0);
	assert_int_equal(strlen(svg), len);
	return svg;
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_tree_and_titles(void **s)
{
	struct flamegraph_opts o = {.title = "profile: rule <x>", .unit = "samples"};
	char *svg = render("app;main;work 60\n"
			   "app;main;work;read_[k] 30\n"
			   "app;main;idle 10\n"
			   "kworker;worker_thread_[k] 100\n",
			   &o);

	assert_true(!strncmp(svg, "<?xml", 5));
	assert_non_null(strstr(svg, "</svg>\n"));
	/* all + app, main, work, read, idle + kworker, worker_thread = 8 frames */
	assert_int_equal(count(svg, "<g><title>"), 8);
	assert_non_null(strstr(svg, "<title>all (200 samples, 100.00%)</title>"));
	assert_non_null(strstr(svg, "<title>work (90 samples, 45.00%)</title>"));
	assert_non_null(strstr(svg, "<title>read_[k] (30 samples, 15.00%)</title>"));
	/* the title is escaped, the script is self-contained */
	assert_non_null(strstr(svg, "profile: rule &lt;x&gt;"));
	assert_non_null(strstr(svg, "function zoom("));
	assert_null(strstr(svg, "http://"
				"www.example"));
	assert_null(strstr(svg, "not drawn"));
	free(svg);
}

static void test_hostile_names_and_lines(void **s)
{
	struct flamegraph_opts o = {0};
	char *svg = render("evil;<script>alert(1)</script> 5\n"
			   "a&b;\"q\";'s' 3\n"
			   "no count here\n"
			   "x;y -4\n"
			   "x;y 99999999999999999999999\n"
			   ";;;lonely 1\n"
			   "ctl;\x01\x02 2\n",
			   &o);

	assert_null(strstr(svg, "<script>alert"));
	assert_non_null(strstr(svg, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_non_null(strstr(svg, "a&amp;b"));
	assert_non_null(strstr(svg, "&quot;q&quot;"));
	assert_non_null(strstr(svg, "&apos;s&apos;"));
	assert_null(strstr(svg, "\x01"));
	/* malformed lines are counted, never silently dropped */
	assert_non_null(strstr(svg, "3 malformed lines"));
	free(svg);
}

/* Invalid UTF-8 and a label cut mid-character would make the SVG invalid
 * XML, which browsers refuse to show at all. */
static void test_utf8_and_cuts(void **s)
{
	struct flamegraph_opts o = {.width = 200};
	char *svg = render("caf\xc3\xa9;\xff\xfe;\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
			   "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac 10\n"
			   "esc;\x1b]52;c;aGk=\x07;\x7f\xc2\x9b 5\n",
			   &o);

	assert_true(utf8_valid(svg, strlen(svg)));
	for (const char *p = svg; *p; p++)
		assert_true((unsigned char)*p >= 0x20 || *p == '\n' || *p == '\t');
	assert_null(strstr(svg, "\x7f"));
	assert_null(strstr(svg, "\xc2\x9b"));
	assert_non_null(strstr(svg, "caf\xc3\xa9"));
	free(svg);
}

static void test_bounds(void **s)
{
	struct flamegraph_opts o = {.max_nodes = 5, .width = 400};
	char *svg = render("a;b;c;d;e;f;g 10\nz 1000000000\n", &o);

	/* the node cap stops the tree; what was left out is reported */
	assert_non_null(strstr(svg, "frames over the size cap"));
	assert_non_null(strstr(svg, "frames too narrow"));
	assert_non_null(strstr(svg, "width=\"400\""));
	free(svg);
	svg = render("", &o);
	assert_non_null(strstr(svg, "</svg>"));
	free(svg);
}

static void test_colours_and_units(void **s)
{
	struct flamegraph_opts o = {0};
	char *svg = render("p;user_fn;kern_fn_[k] 1\np;jit_fn_[j] 1\np;0x7f00 1\n", &o);
	const char *k = strstr(svg, "kern_fn_[k] (");
	const char *j = strstr(svg, "jit_fn_[j] (");

	assert_non_null(k);
	assert_non_null(j);
	/* kernel frames are orange (high red, low blue), JIT frames green */
	{
		unsigned r, g, b;
		const char *f = strstr(k, "fill=\"rgb(");

		assert_int_equal(sscanf(f, "fill=\"rgb(%u,%u,%u)", &r, &g, &b), 3);
		assert_true(r >= 220 && b < 80);
		f = strstr(j, "fill=\"rgb(");
		assert_int_equal(sscanf(f, "fill=\"rgb(%u,%u,%u)", &r, &g, &b), 3);
		assert_true(g >= 190 && r < 110);
	}
	free(svg);
	assert_string_equal(flamegraph_unit_of("profile.folded"), "samples");
	assert_string_equal(flamegraph_unit_of("offcpu.folded"), "us");
	assert_string_equal(flamegraph_unit_of("dstate.folded"), "ms");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_and_titles),
		cmocka_unit_test(test_hostile_names_and_lines),
		cmocka_unit_test(test_utf8_and_cuts),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_colours_and_units),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
