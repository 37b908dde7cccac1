/* SPDX-License-Identifier: GPL-2.0-only */
/* The timeline capture drawn as SVG: one lane per thread, a coloured bar per
 * interval (on CPU, runnable, S, D...), hover titles with the stacks. */
#pragma once
#include <jansson.h>
#include <stddef.h>

/* Renders a timeline capture's data (see docs/captures.md, timeline) to *out
 * (malloc'd, *len bytes). Intervals narrower than a pixel are merged, so the
 * size is bounded by lanes x width whatever the number of intervals. */
int timeline_svg_render(const json_t *data, char **out, size_t *len);
