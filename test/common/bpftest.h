/* SPDX-License-Identifier: GPL-2.0-only */
/* The set-up the bpf tests share: a capture kind ready to run on the real kernel, and a
 * cgroup of the test's own in the hierarchy the BPF side reports. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/config.h"
#include "probes/capture.h"

struct symbolizer;
struct cgroups;

struct capture_fixture {
	struct agent_config cfg; /* the defaults: adjust before capture_fixture_prepare */
	struct symbolizer *sym;
	struct cgroups *cgroups;
	const struct capture_ops *ops;
	void *state; /* the loaded kind, after capture_fixture_prepare */
};

/* Needs root (fails without it, or exits 77 with the developer's opt-out); routes libbpf's
 * messages to the log; default configuration, a symbolizer (64 MiB cache) and the host's
 * cgroup hierarchy; looks the kind up. Loads nothing yet. */
void capture_fixture_init(struct capture_fixture *f, const char *test, const char *kind);
/* Loads the kind with the fixture's configuration, releasing what an earlier call loaded. */
void capture_fixture_prepare(struct capture_fixture *f);
/* The same for the scheduler kinds (offcpu, runq, timeline): with their tp_btf programs, or
 * with raw_tp forced, as on a kernel without tp_btf. */
void capture_fixture_prepare_tp(struct capture_fixture *f, bool raw_tp);
/* Releases the kind, the symbolizer and the hierarchy. */
void capture_fixture_fini(struct capture_fixture *f);

/* A cgroup made for one test: "/<prefix>-<pid>" in the id hierarchy (v2, or v1's cpu). */
struct test_cgroup {
	char rel[64];  /* the path the agent reports: "/<prefix>-<pid>" */
	char dir[512]; /* where it is in cgroupfs */
	uint64_t id;   /* what the BPF side sees */
};

void test_cgroup_make(struct test_cgroup *c, struct cgroups *cg, const char *prefix);
/* Moves pid (all its threads) into the cgroup at dir. */
void test_cgroup_enter(const char *dir, pid_t pid);
/* Moves this process back to the hierarchy's root and removes the cgroup, waiting (up to
 * 5 s) for tasks that are still leaving it. */
void test_cgroup_remove(struct test_cgroup *c, struct cgroups *cg);
