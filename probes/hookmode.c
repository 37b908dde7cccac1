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
	struct btf *btf = btf__load_vmlinux_btf();
	bool all = btf != NULL;

	for (const char *const *tp = tracepoints; all && *tp; tp++)
		all = btf_has_tracepoint(btf, *tp);
	btf__free(btf);
	return all;
}

int hookmode_attach(struct hookmode *h)
{
	struct bpf_program *prog;
	int err;

	if (h->nlinks)
		return 0;
	bpf_object__for_each_program(prog, h->obj)
	{
		struct bpf_link *l;

		if (!bpf_program__autoload(prog))
			continue;
		if (h->nlinks == HOOKMODE_LINKS) {
			err = -E2BIG;
			goto fail;
		}
		l = bpf_program__attach(prog);
		if (!l) {
			err = -errno;
			log_warn("%s: attaching %s: %s", h->owner, bpf_program__name(prog),
				 strerror(-err));
			goto fail;
		}
		h->links[h->nlinks++] = l;
	}
	return 0;
fail:
	hookmode_detach(h);
	return err;
}

void hookmode_detach(struct hookmode *h)
{
	while (h->nlinks)
		bpf_link__destroy(h->links[--h->nlinks]);
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
	bpf_object_log_ids(owner, obj);
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
	if (h->owner)
		bpf_owner_forget(h->owner);
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
