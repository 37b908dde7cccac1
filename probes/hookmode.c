// SPDX-License-Identifier: GPL-2.0-only
#include "probes/hookmode.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/bpfutil.h"
#include "probes/catalogue.h"

bool hookmode_btf_has(const char *const *tracepoints)
{
	const struct btf *btf = kernel_btf();
	bool all = btf != NULL;

	for (const char *const *tp = tracepoints; all && *tp; tp++)
		all = btf_has_tracepoint(btf, *tp);
	return all;
}

int hookmode_attach(struct hookmode *h)
{
	if (h->links.n)
		return 0;
	return bpf_links_attach(&h->links, h->obj, NULL, NULL, h->owner);
}

void hookmode_detach(struct hookmode *h)
{
	bpf_links_detach(&h->links);
}

static void runtime(struct hookmode *h, uint64_t *ns, uint64_t *cnt)
{
	bpf_owner_runtime(h->owner, ns, cnt);
}

int hookmode_start(struct hookmode *h, struct bpf_object *obj, const char *owner, const char *label,
		   bool use_btf)
{
	int err;

	h->obj = obj;
	h->owner = owner;
	h->label = label;
	h->use_btf = use_btf;
	h->last.name = label;
	/* the cost is part of the contract of a hook mode: measured all along */
	err = bpf_stats_hold();
	if (err)
		log_warn("%s: no kernel BPF run-time statistics (%s): its cost is not reported",
			 owner, strerror(-err));
	h->stats_held = err == 0;
	runtime(h, &h->base_ns, &h->base_cnt);
	h->prev_ns = h->base_ns;
	h->prev_cnt = h->base_cnt;
	h->prev_mono_ns = now_mono_ns();
	err = hookmode_attach(h);
	if (err)
		hookmode_stop(h);
	else
		log_info("%s: always-on hooks attached (%s)", owner, use_btf ? "tp_btf" : "raw_tp");
	return err;
}

void hookmode_stop(struct hookmode *h)
{
	hookmode_detach(h);
	if (h->stats_held)
		bpf_stats_release();
	h->stats_held = false;
}

void hookmode_sample_cost(struct hookmode *h, struct tsdb *db)
{
	struct labels l = {.n = 1, .k = {"hook"}, .v = {h->label}};
	uint64_t ns, cnt, now = now_mono_ns();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t dns, dcnt;

	if (!h->stats_held)
		return;
	runtime(h, &ns, &cnt);
	dns = ns >= h->prev_ns ? ns - h->prev_ns : 0;
	dcnt = cnt >= h->prev_cnt ? cnt - h->prev_cnt : 0;
	h->last.ns_per_event = dcnt ? (double)dns / (double)dcnt : 0;
	h->last.cpu_pct =
		now > h->prev_mono_ns
			? 100.0 * (double)dns /
				  ((double)(now - h->prev_mono_ns) * (double)MAX(ncpu, 1L))
			: 0;
	h->last.events = cnt - MIN(cnt, h->base_cnt);
	h->last.ns_per_event_avg =
		h->last.events ? (double)(ns - MIN(ns, h->base_ns)) / (double)h->last.events : 0;
	if (dcnt)
		tsdb_put(db, M_WATCH_HOOK_NS, &l, h->last.ns_per_event);
	tsdb_put(db, M_WATCH_HOOK_CPU, &l, h->last.cpu_pct);
	h->prev_ns = ns;
	h->prev_cnt = cnt;
	h->prev_mono_ns = now;
}

int hookmode_throttle(struct hookmode *h, bool off)
{
	int err;

	if (off) {
		hookmode_detach(h);
		if (h->stats_held)
			bpf_stats_release();
		h->stats_held = false;
		return 0;
	}
	err = hookmode_attach(h);
	if (err)
		return err;
	h->stats_held = bpf_stats_hold() == 0;
	bpf_owner_runtime(h->owner, &h->prev_ns, &h->prev_cnt);
	h->prev_mono_ns = now_mono_ns();
	return 0;
}
