/* SPDX-License-Identifier: GPL-2.0-only */
/* What this kernel really supports, for `autotrace probes`: each BPF feature is
 * tested by loading, attaching and running a tiny program (features.bpf.c). */
#pragma once
#include <stdbool.h>

enum feature_state { FEATURE_YES, FEATURE_NO, FEATURE_PARTIAL, FEATURE_INFO };

struct feature_result {
	const char *name; /* "tp_btf", "kprobes", ... */
	const char *what; /* one line: what it is and what uses it */
	enum feature_state state;
	char detail[320]; /* how it was tested, or why it fails */
};

#define FEATURES_MAX 24

/* Runs every probe (root needed for the BPF ones; without root they say so).
 * Leaves nothing loaded or attached. Fills out[0..*n). */
void kernel_features_probe(struct feature_result *out, unsigned max, unsigned *n);
const char *feature_state_name(enum feature_state s);
