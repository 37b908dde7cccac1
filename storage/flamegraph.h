/* SPDX-License-Identifier: GPL-2.0-only */
/* Flame graphs: folded stacks ("a;b;c 12" lines) -> one self-contained,
 * interactive SVG (hover details, click to zoom, search), coloured by
 * kernel (_[k]), JIT (_[j]) and user frames. */
#pragma once
#include <stddef.h>

struct flamegraph_opts {
	const char *title;    /* top line */
	const char *subtitle; /* second line, may be NULL */
	const char *unit;     /* what the counts are: "samples", "us", "ms" */
	unsigned width;	      /* pixels, 0: 1200 */
	size_t max_nodes;     /* tree size cap, 0: 100000; the rest is counted, not drawn */
};

/* Renders folded text (len bytes, need not be NUL-terminated). Malformed lines
 * are skipped and counted in the SVG's footer. Returns 0 and a malloc'd SVG. */
int flamegraph_render(const char *folded, size_t len, const struct flamegraph_opts *o, char **svg,
		      size_t *svg_len);
/* The unit of a capture artifact's counts, from its name ("profile.folded" -> "samples"). */
const char *flamegraph_unit_of(const char *artifact_name);
