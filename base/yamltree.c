// SPDX-License-Identifier: GPL-2.0-only
#include "base/yamltree.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/util.h"

static void diag_vadd(struct diag *d, const char *file, unsigned line, unsigned col,
		      const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void diag_vadd(struct diag *d, const char *file, unsigned line, unsigned col,
		      const char *fmt, va_list ap)
{
	char msg[1024];
	int off;

	d->errors++;
	if (d->n >= DIAG_MAX_MSGS)
		return;
	if (line)
		off = snprintf(msg, sizeof(msg), "%s:%u:%u: ", file, line, col);
	else
		off = snprintf(msg, sizeof(msg), "%s: ", file);
	if (off < 0 || off >= (int)sizeof(msg))
		off = 0;
	vsnprintf(msg + off, sizeof(msg) - (size_t)off, fmt, ap);
	d->msgs[d->n] = strdup(msg);
	if (d->msgs[d->n])
		d->n++;
}

void diag_add(struct diag *d, const char *file, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, file, line, col, fmt, ap);
	va_end(ap);
}

void diag_at(struct diag *d, const char *file, const struct ynode *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, file, at ? at->line : 0, at ? at->col : 0, fmt, ap);
	va_end(ap);
}

void diag_print(const struct diag *d, void (*out)(const char *msg, void *ctx), void *ctx)
{
	for (unsigned i = 0; i < d->n; i++)
		out(d->msgs[i], ctx);
	if (d->errors > d->n) {
		char more[64];

		snprintf(more, sizeof(more), "... and %u more errors", d->errors - d->n);
		out(more, ctx);
	}
}

void diag_clear(struct diag *d)
{
	for (unsigned i = 0; i < d->n; i++)
		free(d->msgs[i]);
	memset(d, 0, sizeof(*d));
}

const char *ynode_type_name(enum ynode_type t)
{
	switch (t) {
	case YNODE_SCALAR:
		return "a scalar";
	case YNODE_MAP:
		return "a mapping";
	case YNODE_SEQ:
		return "a list";
	}
	return "?";
}

static void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++) {
		if (n->keys)
			ynode_free(n->keys[i]);
		ynode_free(n->items[i]);
	}
	free(n->keys);
	free(n->items);
	free(n->scalar);
	free(n);
}

void ydoc_free(struct ydoc **doc)
{
	if (!doc || !*doc)
		return;
	ynode_free((*doc)->root);
	free((*doc)->file);
	free(*doc);
	*doc = NULL;
}

struct ynode *ynode_get(const struct ynode *map, const char *key)
{
	if (!map || map->type != YNODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++) {
		if (map->keys[i]->type == YNODE_SCALAR && strcmp(map->keys[i]->scalar, key) == 0)
			return map->items[i];
	}
	return NULL;
}

struct loader {
	yaml_parser_t parser;
	const char *file;
	struct diag *diag;
	size_t nodes;
	int err;
};

static struct ynode *node_new(struct loader *l, enum ynode_type type, const yaml_mark_t *mark)
{
	struct ynode *n;

	if (++l->nodes > YDOC_MAX_NODES) {
		diag_add(l->diag, l->file, (unsigned)mark->line + 1, (unsigned)mark->column + 1,
			 "document has more than %u nodes", YDOC_MAX_NODES);
		l->err = -E2BIG;
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		l->err = -ENOMEM;
		return NULL;
	}
	n->type = type;
	n->line = (unsigned)mark->line + 1;
	n->col = (unsigned)mark->column + 1;
	return n;
}

static int node_append(struct loader *l, struct ynode *parent, struct ynode *key,
		       struct ynode *item)
{
	size_t cap = parent->n + 1;
	struct ynode **items = realloc(parent->items, cap * sizeof(*items));

	if (!items)
		return l->err = -ENOMEM;
	parent->items = items;
	if (parent->type == YNODE_MAP) {
		struct ynode **keys = realloc(parent->keys, cap * sizeof(*keys));

		if (!keys)
			return l->err = -ENOMEM;
		parent->keys = keys;
		parent->keys[parent->n] = key;
	}
	parent->items[parent->n++] = item;
	return 0;
}

static bool next_event(struct loader *l, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&l->parser, ev)) {
		const yaml_mark_t *m = &l->parser.problem_mark;

		diag_add(l->diag, l->file, (unsigned)m->line + 1, (unsigned)m->column + 1,
			 "YAML syntax error: %s%s%s", l->parser.problem ? l->parser.problem : "?",
			 l->parser.context ? " " : "", l->parser.context ? l->parser.context : "");
		l->err = -EINVAL;
		return false;
	}
	return true;
}

/* Builds the node that starts with ev (consumed); NULL on error. */
static struct ynode *load_node(struct loader *l, yaml_event_t *ev, unsigned depth)
{
	struct ynode *n = NULL;

	if (depth > YDOC_MAX_DEPTH) {
		diag_add(l->diag, l->file, (unsigned)ev->start_mark.line + 1,
			 (unsigned)ev->start_mark.column + 1, "nesting deeper than %u levels",
			 YDOC_MAX_DEPTH);
		l->err = -E2BIG;
		return NULL;
	}
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		/* aliases let a tiny file expand into a huge tree; rules never need them */
		diag_add(l->diag, l->file, (unsigned)ev->start_mark.line + 1,
			 (unsigned)ev->start_mark.column + 1,
			 "YAML aliases (*name) are not supported");
		l->err = -EINVAL;
		return NULL;
	case YAML_SCALAR_EVENT:
		n = node_new(l, YNODE_SCALAR, &ev->start_mark);
		if (!n)
			return NULL;
		n->scalar = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		if (!n->scalar) {
			l->err = -ENOMEM;
			ynode_free(n);
			return NULL;
		}
		if (strlen(n->scalar) != ev->data.scalar.length) {
			diag_add(l->diag, l->file, n->line, n->col, "NUL byte inside a scalar");
			l->err = -EINVAL;
			ynode_free(n);
			return NULL;
		}
		return n;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		bool is_map = ev->type == YAML_MAPPING_START_EVENT;
		yaml_event_type_t end = is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;

		n = node_new(l, is_map ? YNODE_MAP : YNODE_SEQ, &ev->start_mark);
		if (!n)
			return NULL;
		for (;;) {
			yaml_event_t cev;
			struct ynode *key = NULL, *item;

			if (!next_event(l, &cev))
				goto fail;
			if (cev.type == end) {
				yaml_event_delete(&cev);
				return n;
			}
			if (is_map) {
				key = load_node(l, &cev, depth + 1);
				yaml_event_delete(&cev);
				if (!key)
					goto fail;
				if (key->type != YNODE_SCALAR) {
					diag_add(l->diag, l->file, key->line, key->col,
						 "mapping keys must be plain scalars");
					l->err = -EINVAL;
					ynode_free(key);
					goto fail;
				}
				if (n->n >= YDOC_MAX_MAP_KEYS) {
					diag_add(l->diag, l->file, key->line, key->col,
						 "mapping has more than %u keys",
						 YDOC_MAX_MAP_KEYS);
					l->err = -E2BIG;
					ynode_free(key);
					goto fail;
				}
				if (ynode_get(n, key->scalar)) {
					diag_add(l->diag, l->file, key->line, key->col,
						 "duplicate key '%s'", key->scalar);
					l->err = -EINVAL;
					ynode_free(key);
					goto fail;
				}
				if (!next_event(l, &cev)) {
					ynode_free(key);
					goto fail;
				}
			}
			item = load_node(l, &cev, depth + 1);
			yaml_event_delete(&cev);
			if (!item) {
				ynode_free(key);
				goto fail;
			}
			if (node_append(l, n, key, item)) {
				ynode_free(key);
				ynode_free(item);
				goto fail;
			}
		}
	}
	default:
		diag_add(l->diag, l->file, (unsigned)ev->start_mark.line + 1,
			 (unsigned)ev->start_mark.column + 1, "unexpected YAML event");
		l->err = -EINVAL;
		return NULL;
	}
fail:
	ynode_free(n);
	return NULL;
}

int ydoc_load_string(const char *name, const char *text, size_t len, struct ydoc **out,
		     struct diag *diag)
{
	struct loader l = {.file = name, .diag = diag};
	struct ydoc *doc = NULL;
	yaml_event_t ev;
	bool have_ev = false;
	int err = 0;

	*out = NULL;
	if (len > YDOC_MAX_BYTES) {
		diag_add(diag, name, 0, 0, "file larger than %u bytes", YDOC_MAX_BYTES);
		return -EFBIG;
	}
	doc = calloc(1, sizeof(*doc));
	if (!doc || !(doc->file = strdup(name))) {
		free(doc);
		return -ENOMEM;
	}
	if (!yaml_parser_initialize(&l.parser)) {
		ydoc_free(&doc);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&l.parser, (const unsigned char *)text, len);

	/* stream start, then either stream end (empty) or one document */
	for (;;) {
		if (!next_event(&l, &ev)) {
			err = l.err;
			goto cleanup;
		}
		have_ev = true;
		if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT) {
			yaml_event_delete(&ev);
			have_ev = false;
			continue;
		}
		break;
	}
	if (ev.type == YAML_STREAM_END_EVENT)
		goto done; /* empty file */
	doc->root = load_node(&l, &ev, 0);
	yaml_event_delete(&ev);
	have_ev = false;
	if (!doc->root) {
		err = l.err ? l.err : -EINVAL;
		goto cleanup;
	}
	/* document end, then stream end; a second document is an error */
	for (;;) {
		if (!next_event(&l, &ev)) {
			err = l.err;
			goto cleanup;
		}
		have_ev = true;
		if (ev.type == YAML_DOCUMENT_END_EVENT) {
			yaml_event_delete(&ev);
			have_ev = false;
			continue;
		}
		if (ev.type == YAML_STREAM_END_EVENT)
			break;
		diag_add(diag, name, (unsigned)ev.start_mark.line + 1,
			 (unsigned)ev.start_mark.column + 1,
			 "only one YAML document per file is supported");
		err = -EINVAL;
		goto cleanup;
	}
done:
	*out = doc;
	doc = NULL;
cleanup:
	if (have_ev)
		yaml_event_delete(&ev);
	yaml_parser_delete(&l.parser);
	ydoc_free(&doc);
	return err;
}

int ydoc_load_file(const char *path, struct ydoc **out, struct diag *diag)
{
	char *text = NULL;
	size_t len = 0;
	int err;

	*out = NULL;
	err = read_file(path, YDOC_MAX_BYTES, &text, &len);
	if (err == -EFBIG) {
		diag_add(diag, path, 0, 0, "file larger than %u bytes", YDOC_MAX_BYTES);
		return err;
	}
	if (err) {
		diag_add(diag, path, 0, 0, "cannot read: %s", strerror(-err));
		return err;
	}
	err = ydoc_load_string(path, text, len, out, diag);
	free(text);
	return err;
}
