/* SPDX-License-Identifier: GPL-2.0-only */
/* A YAML document loaded into a small tree that remembers where every node
 * came from, so configuration and rule errors can say FILE:LINE:COL. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

enum ynode_type { YNODE_SCALAR, YNODE_MAP, YNODE_SEQ };

struct ynode {
	enum ynode_type type;
	unsigned line, col; /* 1-based */
	char *scalar;	    /* YNODE_SCALAR */
	bool plain;	    /* unquoted scalar: "null"/"~" mean nothing */
	/* YNODE_MAP: keys[i] -> items[i]; YNODE_SEQ: items[i] */
	struct ynode **keys;
	struct ynode **items;
	size_t n;
};

struct ydoc {
	char *file;
	struct ynode *root; /* NULL for an empty document */
};

/* Diagnostics with a location; bounded so hostile input cannot grow it. */
#define DIAG_MAX_MSGS 64
struct diag {
	char *msgs[DIAG_MAX_MSGS];
	unsigned n;	 /* messages kept */
	unsigned errors; /* errors seen, including those not kept */
};

void diag_add(struct diag *d, const char *file, unsigned line, unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void diag_at(struct diag *d, const char *file, const struct ynode *at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void diag_print(const struct diag *d, void (*out)(const char *msg, void *ctx), void *ctx);
void diag_clear(struct diag *d);

/* Limits for a loaded document; the loader refuses anything larger. */
#define YDOC_MAX_BYTES	  (1u << 20)
#define YDOC_MAX_DEPTH	  32
#define YDOC_MAX_NODES	  100000
#define YDOC_MAX_MAP_KEYS 4096 /* duplicate-key check is quadratic */

/* Returns 0, or a negative errno with the reason added to diag. */
int ydoc_load_file(const char *path, struct ydoc **out, struct diag *diag);
int ydoc_load_string(const char *name, const char *text, size_t len, struct ydoc **out,
		     struct diag *diag);
void ydoc_free(struct ydoc **doc);

/* Looks a key up in a mapping; NULL when absent or node is not a mapping. */
struct ynode *ynode_get(const struct ynode *map, const char *key);
const char *ynode_type_name(enum ynode_type t);
