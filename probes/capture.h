/* SPDX-License-Identifier: GPL-2.0-only */
/* The interface every capture kind implements. A kind's programs are opened,
 * sized and loaded once at start-up (prepare), attached only for a rule's window
 * (start/stop), then read out into the incident (collect). */
#pragma once
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/value.h"

struct agent_config;
struct symbolizer;
struct cgroups;
struct ustack_shared;

enum capture_target_kind { TARGET_HOST = 0, TARGET_CGROUP, TARGET_PID };

struct capture_target {
	enum capture_target_kind kind;
	int pid;	    /* TARGET_PID: a process (all its threads) */
	uint64_t cgroup_id; /* TARGET_CGROUP: this cgroup and its descendants */
	char cgroup[512];   /* its path, for the incident */
};

/* The scalar types are base/value's, parsed and range-checked there. CPARAM_STRINGS: a
 * list of text entries (a YAML sequence in rules); at most one such parameter per kind,
 * its entries kept in capture_params.text. */
enum cparam_type {
	CPARAM_UINT = VALUE_UINT,
	CPARAM_DURATION = VALUE_DURATION,
	CPARAM_BOOL = VALUE_BOOL,
	CPARAM_STRINGS = VALUE_BOOL + 1,
};

struct capture_param_desc {
	const char *name;
	enum cparam_type type;
	uint64_t min, max; /* inclusive; durations in ms; CPARAM_STRINGS: entries */
	const char *def;
	const char *help;
	/* CPARAM_STRINGS: checks one entry (NULL: any non-empty text will do) */
	int (*check)(const char *entry, char *why, size_t whylen);
};

#define CAPTURE_MAX_PARAMS 8

#define CAPTURE_PARAM_TEXT  2048
#define CAPTURE_PARAM_ENTRY 256 /* longest CPARAM_STRINGS entry, NUL included */

/* Values in the order of the kind's param table (durations in ms, bools 0/1,
 * CPARAM_STRINGS: the number of entries, which are in text). */
struct capture_params {
	uint64_t duration_ms;
	uint64_t v[CAPTURE_MAX_PARAMS];
	char text[CAPTURE_PARAM_TEXT]; /* NUL-terminated entries back to back */
};

struct capture_env {
	const struct agent_config *cfg;
	struct symbolizer *sym;
	struct cgroups *cgroups;
	struct ustack_shared *ustack; /* DWARF user stacks; NULL: off (probes/ustack.h) */
};

#define CAPTURE_MAX_ARTIFACTS 4

struct capture_artifact {
	char name[64]; /* file name beside incident.json, e.g. "profile.folded" */
	char *data;    /* malloc'd, owned by the result */
	size_t len;
};

struct capture_result {
	json_t *data;	      /* kind-specific fields, merged into captures[i] */
	uint64_t lost_events; /* everything the kernel side could not record */
	bool partial;	      /* some data missing (lost events, truncated tables) */
	char error[256];      /* non-empty: the capture failed and says why */
	struct capture_artifact artifacts[CAPTURE_MAX_ARTIFACTS];
	unsigned nartifacts;
};

struct capture_ops {
	const char *kind;
	const char *help;
	const struct capture_param_desc *params;
	unsigned nparams;
	int (*prepare)(void **state, const struct capture_env *env);
	int (*start)(void *state, const struct capture_target *t, const struct capture_params *p);
	/* Detaches; must be quick and must always leave nothing attached. */
	void (*stop)(void *state);
	int (*collect)(void *state, struct capture_result *out);
	void (*release)(void *state);
	/* Optional: a ring buffer consumed while the capture runs. */
	int (*ring_fd)(void *state);
	void (*ring_ready)(void *state);
	/* Optional: once per agent interval while the capture runs. */
	void (*tick)(void *state);
};

/* Every kind this build knows, NULL-terminated. */
extern const struct capture_ops *const capture_kinds[];
const struct capture_ops *capture_kind_lookup(const char *kind);
/* Index of a parameter in a kind's table, or -1. */
int capture_param_index(const struct capture_ops *ops, const char *name);
/* Fills p with the kind's defaults. */
void capture_params_defaults(const struct capture_ops *ops, struct capture_params *p);
int capture_param_parse(const struct capture_param_desc *d, const char *s, uint64_t *out, char *why,
			size_t whylen);
/* Sets the CPARAM_STRINGS parameter idx of ops from n entries; checks each. */
int capture_param_set_strings(const struct capture_ops *ops, unsigned idx, struct capture_params *p,
			      const char *const *entries, size_t n, char *why, size_t whylen);
/* The entry after prev (NULL: the first) of a CPARAM_STRINGS parameter; NULL at the end. */
const char *capture_param_next_string(const struct capture_params *p, unsigned idx,
				      const char *prev);

void capture_result_clear(struct capture_result *r);
int capture_result_add_artifact(struct capture_result *r, const char *name, char *data, size_t len);
