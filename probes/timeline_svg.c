// SPDX-License-Identifier: GPL-2.0-only
#include "probes/timeline_svg.h"
#include "base/sanitize.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVG_WIDTH    1200
#define LABEL_X	     8
#define PLOT_X	     250
#define PLOT_W	     (SVG_WIDTH - PLOT_X - 20)
#define TOP	     64
#define LANE_H	     16
#define LANE_GAP     5
#define MAX_LANES    256
#define TITLE_FRAMES 16

static const struct {
	const char *code, *name, *color;
} states[] = {
	{"C", "on CPU", "#2e7d32"},
	{"R", "runnable (waiting for a CPU)", "#f9a825"},
	{"S", "sleeping (S)", "#90caf9"},
	{"D", "uninterruptible (D)", "#c62828"},
	{"I", "idle kernel thread (I)", "#cfd8dc"},
	{"T", "stopped / traced (T)", "#8d6e63"},
	{"?", "off CPU, state unknown", "#e0e0e0"},
};
#define NSTATES (sizeof(states) / sizeof(states[0]))

static unsigned state_index(const char *code)
{
	for (unsigned i = 0; i < NSTATES; i++)
		if (code && strcmp(code, states[i].code) == 0)
			return i;
	return NSTATES - 1;
}

/* Process and function names: the tenants'. Valid UTF-8 without control
 * characters (XML 1.0 refuses them), then escaped. */
static void xml_text(FILE *f, const char *raw)
{
	char buf[1024];
	const char *s = buf;

	str_clean(buf, sizeof(buf), raw ? raw : "", raw ? strlen(raw) : 0, STR_INPLACE);
	for (; *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\n':
			fputs("&#10;", f);
			break;
		default:
			if ((unsigned char)*s >= 0x20)
				fputc(*s, f);
		}
	}
}

static double nice_step(double raw)
{
	double p = pow(10, floor(log10(raw > 0 ? raw : 1)));

	for (int m = 1; m <= 10; m = m == 1 ? 2 : m == 2 ? 5 : 10)
		if (m * p >= raw)
			return m * p;
	return 10 * p;
}

/* Sub-pixel intervals of one lane, merged until they fill a pixel. */
struct bucket {
	double x0, x1;
	double ms[NSTATES];
	unsigned n;
};

static void bucket_flush(FILE *f, struct bucket *b, double y)
{
	unsigned best = 0;

	if (!b->n)
		return;
	for (unsigned i = 1; i < NSTATES; i++)
		if (b->ms[i] > b->ms[best])
			best = i;
	fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" fill=\"%s\"><title>",
		b->x0, y, b->x1 - b->x0 < 1.0 ? 1.0 : b->x1 - b->x0, LANE_H, states[best].color);
	fprintf(f, "%u short intervals:", b->n);
	for (unsigned i = 0; i < NSTATES; i++)
		if (b->ms[i] > 0)
			fprintf(f, "&#10;%s %.3f ms", states[i].name, b->ms[i]);
	fputs("</title></rect>\n", f);
	memset(b, 0, sizeof(*b));
}

static void interval_title(FILE *f, json_t *lane, json_t *stacks, double start_ms, double dur_ms,
			   unsigned si, json_int_t stack)
{
	json_t *names = stack >= 0 ? json_array_get(stacks, (size_t)stack) : NULL, *n;
	size_t i;

	fputs("<title>", f);
	xml_text(f, json_string_value(json_object_get(lane, "comm")));
	fprintf(f, " %lld: %s %.3f ms at +%.3f ms",
		(long long)json_integer_value(json_object_get(lane, "tid")), states[si].name,
		dur_ms, start_ms);
	if (json_array_size(names))
		fputs(si == 0 ? "&#10;switched out at:" : "&#10;blocked in:", f);
	json_array_foreach(names, i, n)
	{
		if (i >= TITLE_FRAMES) {
			fputs("&#10;  ...", f);
			break;
		}
		fputs("&#10;  ", f);
		xml_text(f, json_string_value(n));
	}
	fputs("</title>", f);
}

static void draw_lane(FILE *f, json_t *lane, json_t *stacks, double window_ms, double y)
{
	struct bucket b = {0};
	json_t *tl = json_object_get(lane, "timeline");
	json_t *starts = json_object_get(tl, "start_us"), *durs = json_object_get(tl, "dur_us");
	json_t *stk = json_object_get(tl, "stack");
	const char *codes = json_string_value(json_object_get(tl, "state"));
	size_t i, n = json_array_size(starts), ncodes = codes ? strlen(codes) : 0;
	char label[96];
	/* merged short intervals go on top, so a short run between two long
	 * sleeps stays visible as a one-pixel tick */
	char *top = NULL;
	size_t top_len = 0;
	FILE *tf = open_memstream(&top, &top_len);

	if (!tf)
		tf = f;

	snprintf(label, sizeof(label), "%s %lld",
		 json_string_value(json_object_get(lane, "comm"))
			 ? json_string_value(json_object_get(lane, "comm"))
			 : "?",
		 (long long)json_integer_value(json_object_get(lane, "tid")));
	fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"lbl\">", LABEL_X, y + LANE_H - 4);
	xml_text(f, label);
	fprintf(f, "<tspan class=\"pct\"> %.0f%% on CPU</tspan></text>\n",
		json_number_value(json_object_get(lane, "on_cpu_pct")));
	fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%d\" class=\"lane\"/>\n",
		PLOT_X, y, PLOT_W, LANE_H);
	for (i = 0; i < n; i++) {
		char code[2] = {i < ncodes ? codes[i] : '?', '\0'};
		double start_ms = (double)json_integer_value(json_array_get(starts, i)) / 1000.0;
		double dur_ms = (double)json_integer_value(json_array_get(durs, i)) / 1000.0;
		unsigned si = state_index(code);
		double x0 = PLOT_X + start_ms / window_ms * PLOT_W;
		double w = dur_ms / window_ms * PLOT_W;

		if (x0 > PLOT_X + PLOT_W)
			break;
		if (x0 + w > PLOT_X + PLOT_W)
			w = PLOT_X + PLOT_W - x0;
		if (w >= 1.0) {
			bucket_flush(tf, &b, y);
			fprintf(f,
				"<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" "
				"fill=\"%s\">",
				x0, y, w, LANE_H, states[si].color);
			interval_title(f, lane, stacks, start_ms, dur_ms, si,
				       json_is_integer(json_array_get(stk, i))
					       ? json_integer_value(json_array_get(stk, i))
					       : -1);
			fputs("</rect>\n", f);
			continue;
		}
		if (b.n && x0 - b.x1 > 1.0)
			bucket_flush(tf, &b, y); /* a gap: do not bridge it */
		if (!b.n)
			b.x0 = x0;
		b.x1 = x0 + w;
		b.ms[si] += dur_ms;
		b.n++;
		if (b.x1 - b.x0 >= 1.0)
			bucket_flush(tf, &b, y);
	}
	bucket_flush(tf, &b, y);
	if (tf != f && fclose(tf) == 0 && top)
		fwrite(top, 1, top_len, f);
	free(top);
}

int timeline_svg_render(const json_t *data, char **out, size_t *len)
{
	json_t *threads = json_object_get(data, "threads"),
	       *stacks = json_object_get(data, "stacks");
	double window_ms = json_number_value(json_object_get(data, "window_ms"));
	size_t nlanes = json_array_size(threads), drawn = nlanes < MAX_LANES ? nlanes : MAX_LANES;
	int height = TOP + (int)drawn * (LANE_H + LANE_GAP) + 40;
	double step;
	FILE *f;
	char *buf = NULL;
	size_t blen = 0;

	*out = NULL;
	*len = 0;
	if (!(window_ms > 0))
		window_ms = 1;
	f = open_memstream(&buf, &blen);
	if (!f)
		return -errno;
	fprintf(f,
		"<?xml version=\"1.0\" standalone=\"no\"?>\n"
		"<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		"height=\"%d\" viewBox=\"0 0 %d %d\">\n"
		"<style>text{font-family:Verdana,sans-serif;font-size:11px;fill:#222}"
		".lbl{font-size:11px}.pct{fill:#666}.lane{fill:#f5f5f5}.axis{stroke:#bbb;"
		"stroke-width:0.5}.ttl{font-size:15px}rect:hover{stroke:#000;stroke-width:0.5}"
		"</style>\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
		SVG_WIDTH, height, SVG_WIDTH, height);
	fprintf(f,
		"<text x=\"%d\" y=\"20\" class=\"ttl\">Thread timeline: %zu threads over %.1f ms",
		LABEL_X, nlanes, window_ms);
	if (drawn < nlanes)
		fprintf(f, " (first %zu drawn)", drawn);
	fputs("</text>\n", f);
	/* legend */
	for (unsigned i = 0; i < NSTATES; i++) {
		int x = LABEL_X + (int)i * 165;

		fprintf(f, "<rect x=\"%d\" y=\"30\" width=\"12\" height=\"12\" fill=\"%s\"/>", x,
			states[i].color);
		fprintf(f, "<text x=\"%d\" y=\"40\">%s</text>\n", x + 16, states[i].name);
	}
	/* time axis: grid lines and labels */
	step = nice_step(window_ms / 10);
	for (double t = 0; t <= window_ms + 1e-9; t += step) {
		double x = PLOT_X + t / window_ms * PLOT_W;

		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" class=\"axis\"/>", x,
			TOP - 4, x, height - 30);
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g ms</text>\n", x,
			height - 16, t);
	}
	for (size_t i = 0; i < drawn; i++)
		draw_lane(f, json_array_get(threads, i), stacks, window_ms,
			  TOP + (double)i * (LANE_H + LANE_GAP));
	fputs("</svg>\n", f);
	if (fclose(f)) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = blen;
	return 0;
}
