/* SPDX-License-Identifier: GPL-2.0-only */
/* What the opt-in always-on hook modes share: tp_btf or raw_tp chosen at run
 * time, attach / detach (the guard's throttle), and their cost from kernel
 * BPF run-time statistics, held on while a mode is on. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "probes/watcher.h"

#include "probes/bpfutil.h"

struct bpf_object;
struct tsdb;

struct hookmode {
	const char *owner; /* bpf_object_log_ids() owner: "watch.runqlat" */
	const char *label; /* the hook label of its cost series: "runqlat" */
	struct bpf_object *obj;
	struct bpf_links links;
	bool use_btf;
	bool stats_held;
	uint64_t base_ns, base_cnt; /* run time when the mode was turned on */
	uint64_t prev_ns, prev_cnt, prev_mono_ns;
	struct watcher_hook_cost last;
};

/* Does this kernel's BTF describe every tracepoint (btf_trace_<name>)? */
bool hookmode_btf_has(const char *const *tracepoints);
/* After bpf_skel_load: holds run-time statistics, attaches. */
int hookmode_start(struct hookmode *h, struct bpf_object *obj, const char *owner, const char *label,
		   bool use_btf);
int hookmode_attach(struct hookmode *h);
void hookmode_detach(struct hookmode *h);
/* Detaches and releases statistics (before the object goes). */
void hookmode_stop(struct hookmode *h);
/* The cost since the previous call, into h->last and the watch.hook_* series. */
void hookmode_sample_cost(struct hookmode *h, struct tsdb *db);
/* The throttle of watchers_throttle(): off detaches and stops the statistics. */
int hookmode_throttle(struct hookmode *h, bool off);
