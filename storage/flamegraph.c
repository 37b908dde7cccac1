// SPDX-License-Identifier: GPL-2.0-only
#include "storage/flamegraph.h"
#include "base/sanitize.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"

#define FRAME_HEIGHT 16
#define PAD_TOP	     56
#define PAD_BOTTOM   40
#define PAD_SIDE     10
#define MIN_WIDTH_PX 0.1 /* frames narrower than this are not drawn */
#define MAX_DEPTH    512

struct node {
	char *name;
	uint64_t value;	      /* total: self + children */
	uint32_t first_child; /* index into the node array, 0 = none */
	uint32_t next;	      /* next sibling */
};

struct tree {
	struct node *nodes; /* nodes[0] is the root "all" */
	size_t n, cap, max;
	uint64_t dropped_lines;
	uint64_t dropped_frames; /* frames not stored: tree full */
};

/* XML text: frame names come from binaries and comm, so escape everything.
 * At most n bytes, cut on a character boundary; invalid UTF-8 and control
 * characters (not valid in XML 1.0) become '?'. */
static void put_escaped(struct strbuf *o, const char *raw, size_t n)
{
	char buf[1024];
	const char *s = buf;

	n = strnlen(raw, n);
	str_clean(buf, sizeof(buf), raw, n, STR_INPLACE);
	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '&':
			strbuf_printf(o, "&amp;");
			break;
		case '<':
			strbuf_printf(o, "&lt;");
			break;
		case '>':
			strbuf_printf(o, "&gt;");
			break;
		case '"':
			strbuf_printf(o, "&quot;");
			break;
		case '\'':
			strbuf_printf(o, "&apos;");
			break;
		default:
			strbuf_printf(o, "%c", (char)c);
		}
	}
}

static int32_t node_new(struct tree *t, const char *name, size_t len)
{
	struct node *nd;

	if (t->n >= t->max)
		return -1;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct node *p = realloc(t->nodes, cap * sizeof(*p));

		if (!p)
			return -1;
		t->nodes = p;
		t->cap = cap;
	}
	nd = &t->nodes[t->n];
	memset(nd, 0, sizeof(*nd));
	nd->name = strndup(name, len);
	if (!nd->name)
		return -1;
	return (int32_t)t->n++;
}

static int32_t child(struct tree *t, uint32_t parent, const char *name, size_t len)
{
	uint32_t last = 0;

	for (uint32_t c = t->nodes[parent].first_child; c; c = t->nodes[c].next) {
		if (strlen(t->nodes[c].name) == len && !memcmp(t->nodes[c].name, name, len))
			return (int32_t)c;
		last = c;
	}
	{
		int32_t c = node_new(t, name, len);

		if (c < 0)
			return -1;
		if (last)
			t->nodes[last].next = (uint32_t)c;
		else
			t->nodes[parent].first_child = (uint32_t)c;
		return c;
	}
}

/* "a;b;c 12" -> path a/b/c gets 12. */
static void add_line(struct tree *t, const char *line, size_t len)
{
	const char *sp;
	char *end;
	uint64_t v;
	uint32_t at = 0;
	const char *p = line;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	sp = memrchr(line, ' ', len);
	if (!sp || sp == line) {
		t->dropped_lines++;
		return;
	}
	{
		char num[32];
		size_t nl = len - (size_t)(sp + 1 - line);

		if (nl == 0 || nl >= sizeof(num)) {
			t->dropped_lines++;
			return;
		}
		memcpy(num, sp + 1, nl);
		num[nl] = '\0';
		errno = 0;
		v = strtoull(num, &end, 10);
		if (*end || num[0] == '-' || errno) {
			t->dropped_lines++;
			return;
		}
	}
	t->nodes[0].value += v;
	for (unsigned depth = 0; p < sp && depth < MAX_DEPTH; depth++) {
		const char *semi = memchr(p, ';', (size_t)(sp - p));
		size_t flen = semi ? (size_t)(semi - p) : (size_t)(sp - p);
		int32_t c;

		if (flen == 0) {
			p += 1;
			continue;
		}
		c = child(t, at, p, flen);
		if (c < 0) {
			t->dropped_frames++;
			return;
		}
		t->nodes[c].value += v;
		at = (uint32_t)c;
		if (!semi)
			break;
		p = semi + 1;
	}
}

static unsigned max_depth(const struct tree *t, uint32_t n, unsigned d)
{
	unsigned best = d;

	for (uint32_t c = t->nodes[n].first_child; c; c = t->nodes[c].next) {
		unsigned m = max_depth(t, c, d + 1);

		if (m > best)
			best = m;
	}
	return best;
}

static uint32_t hash_name(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* Stable colours per name, by kind of frame. */
static void colour(const char *name, unsigned depth, char *buf, size_t len)
{
	uint32_t h = hash_name(name);
	unsigned a = h % 55, b = (h >> 8) % 55, c = (h >> 16) % 40;

	if (depth == 1) /* process (comm) */
		snprintf(buf, len, "rgb(%u,%u,%u)", 140 + c, 140 + c, 200 + a % 55);
	else if (ends_with(name, "_[k]")) /* kernel: orange */
		snprintf(buf, len, "rgb(%u,%u,%u)", 220 + a % 35, 120 + b, 30 + c);
	else if (ends_with(name, "_[j]")) /* JIT: green */
		snprintf(buf, len, "rgb(%u,%u,%u)", 60 + c, 190 + a % 65, 70 + b);
	else if (name[0] == '[' || !strncmp(name, "0x", 2)) /* unresolved: grey */
		snprintf(buf, len, "rgb(%u,%u,%u)", 170 + c, 170 + c, 170 + c);
	else /* user: red to yellow */
		snprintf(buf, len, "rgb(%u,%u,%u)", 205 + a % 50, 60 + b * 2, 40 + c);
}

struct layout {
	struct strbuf *o;
	const struct tree *t;
	double scale; /* px per count */
	unsigned height;
	uint64_t hidden;
	const char *unit;
};

static void draw(struct layout *l, uint32_t n, double x, unsigned depth)
{
	const struct node *nd = &l->t->nodes[n];
	double w = (double)nd->value * l->scale;
	double y = (double)l->height - PAD_BOTTOM - (double)(depth + 1) * FRAME_HEIGHT;
	char fill[32];
	size_t shown;

	if (w < MIN_WIDTH_PX) {
		l->hidden++;
		return;
	}
	colour(nd->name, depth, fill, sizeof(fill));
	strbuf_printf(l->o, "<g><title>");
	put_escaped(l->o, nd->name, strlen(nd->name));
	strbuf_printf(l->o,
		      " (%" PRIu64 " %s, %.2f%%)</title><rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" "
		      "height=\"%d\" fill=\"%s\" rx=\"2\"/><text x=\"%.2f\" y=\"%.1f\">",
		      nd->value, l->unit, 100.0 * (double)nd->value / (double)l->t->nodes[0].value,
		      x, y, w, FRAME_HEIGHT - 1, fill, x + 3, y + 11.5);
	/* as much of the name as fits at ~7px per character */
	shown = w > 21 ? (size_t)((w - 6) / 7) : 0;
	if (shown >= strlen(nd->name)) {
		put_escaped(l->o, nd->name, strlen(nd->name));
	} else if (shown > 2) {
		put_escaped(l->o, nd->name, shown - 2);
		strbuf_printf(l->o, "..");
	}
	strbuf_printf(l->o, "</text></g>\n");
	for (uint32_t c = nd->first_child; c; c = l->t->nodes[c].next) {
		draw(l, c, x, depth + 1);
		x += (double)l->t->nodes[c].value * l->scale;
	}
}

/* The interactive part: our own small script, no external resources. */
static const char script[] =
	"<script type=\"text/ecmascript\"><![CDATA[\n"
	"var svg, details, frames, total, searching = null;\n"
	"function init(evt) {\n"
	"  svg = document.documentElement; details = document.getElementById('details');\n"
	"  frames = Array.prototype.slice.call(document.querySelectorAll('#frames > g'));\n"
	"  frames.forEach(function (g) {\n"
	"    var r = g.querySelector('rect'), t = g.querySelector('text');\n"
	"    g.dataset.x = r.getAttribute('x'); g.dataset.w = r.getAttribute('width');\n"
	"    g.dataset.label = t.textContent; g.dataset.name = "
	"g.querySelector('title').textContent;\n"
	"    g.onmouseover = function () { details.textContent = g.dataset.name; };\n"
	"    g.onmouseout = function () { details.textContent = ' '; };\n"
	"    g.onclick = function () { zoom(g); };\n"
	"  });\n"
	"  total = parseFloat(frames.length ? frames[0].dataset.w : 1);\n"
	"}\n"
	"function fit(g, x, w) {\n"
	"  var r = g.querySelector('rect'), t = g.querySelector('text');\n"
	"  r.setAttribute('x', x); r.setAttribute('width', Math.max(w, 0));\n"
	"  t.setAttribute('x', x + 3);\n"
	"  var name = g.dataset.name.replace(/ \\([^(]*\\)$/, ''), n = Math.floor((w - 6) / 7);\n"
	"  t.textContent = w < 21 ? '' : (n >= name.length ? name : name.substr(0, n - 2) + "
	"'..');\n"
	"}\n"
	"function zoom(target) {\n"
	"  var x0 = parseFloat(target.dataset.x), w0 = parseFloat(target.dataset.w);\n"
	"  var y0 = parseFloat(target.querySelector('rect').getAttribute('y'));\n"
	"  var left = parseFloat(frames[0].dataset.x), k = total / w0;\n"
	"  frames.forEach(function (g) {\n"
	"    var x = parseFloat(g.dataset.x), w = parseFloat(g.dataset.w);\n"
	"    var y = parseFloat(g.querySelector('rect').getAttribute('y'));\n"
	"    var inside = x >= x0 - 0.01 && x + w <= x0 + w0 + 0.01;\n"
	"    var above = y < y0, below = y >= y0;\n"
	"    if ((above && inside) || (below && x <= x0 + 0.01 && x + w >= x0 + w0 - 0.01)) {\n"
	"      g.style.display = '';\n"
	"      var nx = left + (Math.max(x, x0) - x0) * k;\n"
	"      var nw = (Math.min(x + w, x0 + w0) - Math.max(x, x0)) * k;\n"
	"      fit(g, nx, nw); g.style.opacity = below && g !== target ? 0.6 : 1;\n"
	"    } else { g.style.display = 'none'; }\n"
	"  });\n"
	"  document.getElementById('unzoom').style.display = '';\n"
	"}\n"
	"function unzoom() {\n"
	"  frames.forEach(function (g) { g.style.display = ''; g.style.opacity = 1;\n"
	"    fit(g, parseFloat(g.dataset.x), parseFloat(g.dataset.w)); });\n"
	"  document.getElementById('unzoom').style.display = 'none';\n"
	"}\n"
	"function search() {\n"
	"  var term = searching ? null : prompt('Search frames (regular expression)', '');\n"
	"  var re = term ? new RegExp(term) : null, matched = 0, spans = [];\n"
	"  frames.forEach(function (g) {\n"
	"    var r = g.querySelector('rect');\n"
	"    if (!g.dataset.fill) g.dataset.fill = r.getAttribute('fill');\n"
	"    var hit = re && re.test(g.dataset.name.replace(/ \\([^(]*\\)$/, ''));\n"
	"    r.setAttribute('fill', hit ? 'rgb(230,0,230)' : g.dataset.fill);\n"
	"    if (hit) spans.push([parseFloat(g.dataset.x), parseFloat(g.dataset.w)]);\n"
	"  });\n"
	"  spans.sort(function (a, b) { return a[0] - b[0]; });\n"
	"  var end = -1;\n"
	"  spans.forEach(function (s) { if (s[0] >= end) { matched += s[1]; end = s[0] + s[1]; }\n"
	"    else if (s[0] + s[1] > end) { matched += s[0] + s[1] - end; end = s[0] + s[1]; } });\n"
	"  searching = re;\n"
	"  document.getElementById('search').textContent = re ? 'Reset search' : 'Search';\n"
	"  document.getElementById('matched').textContent =\n"
	"    re ? 'Matched: ' + (100 * matched / total).toFixed(2) + '%' : ' ';\n"
	"}\n"
	"]]></script>\n";

int flamegraph_render(const char *folded, size_t len, const struct flamegraph_opts *opt, char **svg,
		      size_t *svg_len)
{
	struct tree t = {.max = opt->max_nodes ? opt->max_nodes : 100000};
	unsigned width = opt->width ? opt->width : 1200, depth, height;
	struct strbuf o = {0};
	struct layout l;
	int err;
	const char *p = folded, *end = folded + len;

	*svg = NULL;
	if (node_new(&t, "all", 3) < 0)
		return -ENOMEM;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (ll)
			add_line(&t, p, ll);
		p += ll + 1;
	}
	depth = max_depth(&t, 0, 0) + 1;
	height = PAD_TOP + PAD_BOTTOM + depth * FRAME_HEIGHT;

	strbuf_printf(&o,
		      "<?xml version=\"1.0\" standalone=\"no\"?>\n"
		      "<svg version=\"1.1\" width=\"%u\" height=\"%u\" onload=\"init(evt)\" "
		      "viewBox=\"0 0 %u %u\" xmlns=\"http://www.w3.org/2000/svg\">\n",
		      width, height, width, height);
	strbuf_printf(&o,
		      "<style>text { font-family: monospace; font-size: 12px; fill: rgb(0,0,0); }\n"
		      "#frames rect:hover { stroke: black; stroke-width: 0.5; cursor: pointer; }\n"
		      ".button { cursor: pointer; fill: rgb(30,30,160); }\n"
		      ".button:hover { text-decoration: underline; }</style>\n");
	strbuf_printf(&o, "%s", script);
	strbuf_printf(
		&o,
		"<rect x=\"0\" y=\"0\" width=\"%u\" height=\"%u\" fill=\"rgb(250,250,244)\"/>\n",
		width, height);
	strbuf_printf(&o,
		      "<text x=\"%u\" y=\"20\" text-anchor=\"middle\" style=\"font-size:16px\">",
		      width / 2);
	put_escaped(&o, opt->title ? opt->title : "Flame graph", 4096);
	strbuf_printf(&o, "</text>\n");
	if (opt->subtitle) {
		strbuf_printf(
			&o,
			"<text x=\"%u\" y=\"38\" text-anchor=\"middle\" fill=\"rgb(90,90,90)\">",
			width / 2);
		put_escaped(&o, opt->subtitle, 4096);
		strbuf_printf(&o, "</text>\n");
	}
	strbuf_printf(&o,
		      "<text id=\"unzoom\" class=\"button\" x=\"%d\" y=\"20\" onclick=\"unzoom()\" "
		      "style=\"display:none\">Reset zoom</text>\n",
		      PAD_SIDE);
	strbuf_printf(&o,
		      "<text id=\"search\" class=\"button\" x=\"%u\" y=\"20\" text-anchor=\"end\" "
		      "onclick=\"search()\">Search</text>\n",
		      width - PAD_SIDE);
	strbuf_printf(&o, "<text id=\"matched\" x=\"%u\" y=\"%u\" text-anchor=\"end\"> </text>\n",
		      width - PAD_SIDE, height - 12);
	strbuf_printf(&o, "<text id=\"details\" x=\"%d\" y=\"%u\"> </text>\n", PAD_SIDE,
		      height - 12);

	l = (struct layout){
		.o = &o, .t = &t, .height = height, .unit = opt->unit ? opt->unit : "samples"};
	l.scale = t.nodes[0].value ? (double)(width - 2 * PAD_SIDE) / (double)t.nodes[0].value : 0;
	strbuf_printf(&o, "<g id=\"frames\">\n");
	if (t.nodes[0].value)
		draw(&l, 0, PAD_SIDE, 0);
	strbuf_printf(&o, "</g>\n");
	/* nothing is hidden silently: say what was left out and why */
	if (l.hidden || t.dropped_lines || t.dropped_frames)
		strbuf_printf(
			&o,
			"<text x=\"%u\" y=\"%u\" text-anchor=\"middle\" fill=\"rgb(120,120,120)\">"
			"not drawn: %" PRIu64 " frames too narrow, %" PRIu64
			" frames over the size "
			"cap, %" PRIu64 " malformed lines</text>\n",
			width / 2, height - 28, l.hidden, t.dropped_frames, t.dropped_lines);
	strbuf_printf(&o, "</svg>\n");

	for (size_t i = 0; i < t.n; i++)
		free(t.nodes[i].name);
	free(t.nodes);
	err = o.err;
	*svg = strbuf_take(&o, svg_len);
	return *svg ? 0 : err ? err : -ENOMEM;
}

const char *flamegraph_unit_of(const char *artifact_name)
{
	static const struct {
		const char *prefix, *unit;
	} units[] = {
		{"profile", "samples"},	   {"offcpu", "us"},	      {"dstate", "ms"},
		{"iotrace-blocked", "us"}, {"memtrace-stalls", "us"},
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strncmp(artifact_name, units[i].prefix, strlen(units[i].prefix)))
			return units[i].unit;
	return "samples";
}
