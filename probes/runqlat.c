// SPDX-License-Identifier: GPL-2.0-only
/* The opt-in run-queue latency hook mode (watch.runq_hooks): exact per-CPU
 * latency histograms -> sched.runq_p50_us / sched.runq_p99_us, host and per
 * CPU, and what the hooks cost per event. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/log.h"
#include "base/tsdb.h"
#include "probes/bpfutil.h"
#include "probes/catalogue.h"
#include "probes/hookmode.h"
#include "probes/kcompat.h"
#include "probes/runqlat.h"
#include "probes/watcher.h"
#include "runqlat.skel.h"

struct runqlat {
	struct runqlat_bpf *skel;
	struct hookmode hm;
	int ncpus;
	struct runq_hist *cur, *prev;
	bool primed;
	uint64_t drops;
};

static const char *const tracepoints[] = {"sched_wakeup", "sched_wakeup_new", "sched_switch", NULL};

BPF_SKEL_OPS(runqlat);

static void runqlat_close(void *state)
{
	struct runqlat *rl = state;

	if (!rl)
		return;
	hookmode_stop(&rl->hm);
	bpf_skel_unload(rl->skel, &runqlat_skel_ops, "watch.runqlat");
	free(rl->cur);
	free(rl->prev);
	free(rl);
}

/* Only the map of the flavour that loads is created: a kernel without task
 * storage refuses the other. */
static int configure(void *s, void *ctx)
{
	struct runqlat_bpf *skel = s;
	bool btf = bpf_program__autoload(skel->progs.runq_switch);

	bpf_map__set_autocreate(skel->maps.queued_at, btf);
	bpf_map__set_autocreate(skel->maps.queued_at_pid, !btf);
	return 0;
}

static int runqlat_open(void **out, const struct watcher_env *env)
{
	struct runqlat *rl;
	bool use_btf;
	void *skel;
	int err;

	if (!env->cfg->watch.runq_hooks) {
		snprintf(env->why, env->why_len,
			 "opt-in: watch.runq_hooks is false (hooks every context switch)");
		return WATCHER_OFF;
	}
	rl = calloc(1, sizeof(*rl));
	if (!rl)
		return -ENOMEM;
	rl->ncpus = libbpf_num_possible_cpus();
	if (rl->ncpus <= 0) {
		err = rl->ncpus ? rl->ncpus : -EINVAL;
		goto fail;
	}
	rl->cur = calloc((size_t)rl->ncpus, sizeof(*rl->cur));
	rl->prev = calloc((size_t)rl->ncpus, sizeof(*rl->prev));
	if (!rl->cur || !rl->prev) {
		err = -ENOMEM;
		goto fail;
	}
	/* the tp_btf programs keep per-task stamps in task storage (5.11+), the
	 * raw_tp ones in a pid-keyed hash */
	if (!kcompat_task_storage())
		kcompat_note("runqlat", "raw tracepoints and a pid-keyed hash: no BPF task storage "
					"(Linux 5.11+)");
	err = bpf_skel_load(&skel, &use_btf, &runqlat_skel_ops,
			    &(struct bpf_load_opts){.owner = "watch.runqlat",
						    .configure = configure,
						    .no_tp_btf = !hookmode_btf_has(tracepoints) ||
								 !kcompat_task_storage()});
	if (err) {
		snprintf(env->why, env->why_len, "loading the run-queue hooks: %s", strerror(-err));
		goto fail;
	}
	rl->skel = skel;
	err = hookmode_start(&rl->hm, rl->skel->obj, "watch.runqlat", "runqlat", use_btf);
	if (err) {
		snprintf(env->why, env->why_len, "attaching the run-queue hooks: %s",
			 strerror(-err));
		goto fail;
	}
	*out = rl;
	return 0;
fail:
	runqlat_close(rl);
	return err;
}

static void put_quantiles(struct tsdb *db, const uint64_t *slots, const struct labels *l)
{
	double p50 = lathist_quantile(slots, LATHIST_BUCKETS, 0.50);
	double p99 = lathist_quantile(slots, LATHIST_BUCKETS, 0.99);

	if (p50 < 0)
		return;
	tsdb_put(db, M_SCHED_RUNQ_P50, l, p50 / 1000.0);
	tsdb_put(db, M_SCHED_RUNQ_P99, l, p99 / 1000.0);
}

static int runqlat_sample(void *state, struct tsdb *db)
{
	struct runqlat *rl = state;
	uint64_t host[LATHIST_BUCKETS] = {0}, drops = 0;
	__u32 zero = 0;
	int err;

	hookmode_sample_cost(&rl->hm, db);
	err = bpf_map__lookup_elem(rl->skel->maps.hist, &zero, sizeof(zero), rl->cur,
				   (size_t)rl->ncpus * sizeof(*rl->cur), 0);
	if (err)
		return err;
	for (int c = 0; c < rl->ncpus; c++) {
		uint64_t d[LATHIST_BUCKETS];
		char num[16];
		struct labels l = {.n = 1, .k = {"cpu"}, .v = {num}};

		drops += rl->cur[c].drops;
		if (!rl->primed)
			continue;
		for (int b = 0; b < LATHIST_BUCKETS; b++) {
			d[b] = rl->cur[c].slots[b] >= rl->prev[c].slots[b]
				       ? rl->cur[c].slots[b] - rl->prev[c].slots[b]
				       : 0;
			host[b] += d[b];
		}
		snprintf(num, sizeof(num), "%d", c);
		put_quantiles(db, d, &l);
	}
	if (rl->primed)
		put_quantiles(db, host, NULL);
	rl->drops = drops;
	memcpy(rl->prev, rl->cur, (size_t)rl->ncpus * sizeof(*rl->cur));
	rl->primed = true;
	return 0;
}

static void runqlat_status(void *state, json_t *o)
{
	struct runqlat *rl = state;
	uint64_t waits = 0;
	__u32 zero = 0;

	json_object_set_new(o, "attach", json_string(rl->hm.use_btf ? "tp_btf" : "raw_tp"));
	json_object_set_new(o, "drops", json_integer((json_int_t)rl->drops));
	/* read now, not at the last sample: shows whether the hooks run */
	if (!bpf_map__lookup_elem(rl->skel->maps.hist, &zero, sizeof(zero), rl->cur,
				  (size_t)rl->ncpus * sizeof(*rl->cur), 0)) {
		for (int c = 0; c < rl->ncpus; c++)
			waits += rl->cur[c].events;
		json_object_set_new(o, "waits_measured", json_integer((json_int_t)waits));
	}
}

static int runqlat_throttle(void *state, bool off)
{
	struct runqlat *rl = state;

	/* a histogram across the pause would mix before and after: start over */
	rl->primed = false;
	return hookmode_throttle(&rl->hm, off);
}

static int runqlat_cost(void *state, struct watcher_hook_cost *out)
{
	struct runqlat *rl = state;

	*out = rl->hm.last;
	return 0;
}

const struct watcher_ops runqlat_watcher = {
	.name = "runqlat",
	.help = "opt-in: run-queue latency histograms from scheduler hooks (watch.runq_hooks)",
	.open = runqlat_open,
	.sample = runqlat_sample,
	.close = runqlat_close,
	.status = runqlat_status,
	.throttle = runqlat_throttle,
	.cost = runqlat_cost,
};
