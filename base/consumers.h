/* SPDX-License-Identifier: GPL-2.0-only */
/* What each process, program and container consumed during one capture, by the
 * capture's own measure (on-CPU samples, blocked time, stuck time, IO, memory):
 * the answer to "who caused this". Every capture feeds its full data here (not
 * its top-N lists), so a program whose time is spread over many processes and
 * stacks still ranks by what it used in all.
 *
 * A program is a process name (comm) with its executable, so the N worker
 * processes of one server count together. Stacks, when the capture has them,
 * are kept per process and listed under the programs they belong to. */
#pragma once
#include <jansson.h>
#include <stdint.h>

struct symbolizer;
struct cgroups;

#define CONSUMERS_TOP		 10 /* entries per list in an incident */
#define CONSUMERS_STACKS	 3  /* stacks under each program */
#define CONSUMERS_STACK_PROGRAMS 5  /* programs listed with their stacks */

struct consumers_opts {
	const char *measure;  /* JSON name of the ranking measure: "samples", "blocked_us"... */
	const char *measure2; /* optional second measure, summed and listed, not ranked by */
	unsigned top_n;	      /* entries per list */
	unsigned stacks_per;  /* stacks listed under each program */
	unsigned max_procs;   /* processes tracked; the rest count in total only */
	struct symbolizer *sym;
	struct cgroups *cgroups;
	const char *procfs; /* "/proc" unless testing */
};

struct consumers;

int consumers_new(struct consumers **out, const struct consumers_opts *o);
void consumers_free(struct consumers **c);
/* Charges thread pid of process tgid (named comm, in cgroup cgroup_id). A thread
 * whose pid is its tgid names the process. */
int consumers_add(struct consumers *c, uint32_t tgid, uint32_t pid, const char *comm,
		  uint64_t cgroup_id, uint64_t value, uint64_t value2);
/* Also names the cgroup by path, for captures that read it themselves. */
int consumers_add_path(struct consumers *c, uint32_t tgid, uint32_t pid, const char *comm,
		       const char *cgroup_path, uint64_t value, uint64_t value2);
/* A stack of process tgid worth value, folded root first ("comm;outer;...;leaf",
 * kernel frames suffixed "_[k]"). Counted toward the process only through
 * consumers_add. */
int consumers_add_stack(struct consumers *c, uint32_t tgid, const char *folded, uint64_t value);
/* Makes the ranking and returns the capture's "consumers" object:
 * measure, total, processes[], programs[] (with stacks[]), containers[]. */
json_t *consumers_json(struct consumers *c);
