// SPDX-License-Identifier: GPL-2.0-only
/* The opt-in block latency hook mode (watch.block_hooks): issue -> completion
 * histograms per disk -> io.latency_{p50,p99,max}_us, and what it costs. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/log.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/biolat.h"
#include "probes/bpfutil.h"
#include "probes/catalogue.h"
#include "probes/hookmode.h"
#include "probes/watcher.h"
#include "biolat.skel.h"

struct dev_hist {
	__u32 dev;
	char name[32];
	uint64_t slots[LATHIST_BUCKETS];
	bool primed, seen;
};

struct biolat {
	struct biolat_bpf *skel;
	struct hookmode hm;
	int ncpus;
	struct bio_hist *vals; /* one per CPU */
	struct dev_hist devs[BIOLAT_DEVICES];
	unsigned ndevs;
	char sysfs[200];
};

static const char *const tracepoints[] = {"block_rq_issue", "block_rq_complete", NULL};

BPF_SKEL_OPS(biolat);

static void biolat_close(void *state)
{
	struct biolat *bl = state;

	if (!bl)
		return;
	hookmode_stop(&bl->hm);
	bpf_skel_unload(bl->skel, &biolat_skel_ops, "watch.biolat");
	free(bl->vals);
	free(bl);
}

static int biolat_open(void **out, const struct watcher_env *env)
{
	struct biolat *bl;
	bool use_btf;
	void *skel;
	int err;

	if (!env->cfg->watch.block_hooks) {
		snprintf(env->why, env->why_len,
			 "opt-in: watch.block_hooks is false (hooks every block IO)");
		return WATCHER_OFF;
	}
	bl = calloc(1, sizeof(*bl));
	if (!bl)
		return -ENOMEM;
	snprintf(bl->sysfs, sizeof(bl->sysfs), "%s", env->sysfs);
	bl->ncpus = libbpf_num_possible_cpus();
	if (bl->ncpus <= 0) {
		err = bl->ncpus ? bl->ncpus : -EINVAL;
		goto fail;
	}
	bl->vals = calloc((size_t)bl->ncpus, sizeof(*bl->vals));
	if (!bl->vals) {
		err = -ENOMEM;
		goto fail;
	}
	err = bpf_skel_load(&skel, &use_btf, &biolat_skel_ops,
			    &(struct bpf_load_opts){.owner = "watch.biolat",
						    .no_tp_btf = !hookmode_btf_has(tracepoints)});
	if (err) {
		snprintf(env->why, env->why_len,
			 "loading the block hooks: %s (needs block_rq_issue(rq): Linux 5.11+)",
			 strerror(-err));
		goto fail;
	}
	bl->skel = skel;
	err = hookmode_start(&bl->hm, bl->skel->obj, "watch.biolat", "biolat", use_btf);
	if (err) {
		snprintf(env->why, env->why_len, "attaching the block hooks: %s", strerror(-err));
		goto fail;
	}
	*out = bl;
	return 0;
fail:
	biolat_close(bl);
	return err;
}

/* Disk name of a kernel dev_t, as /proc/diskstats spells it. */
static void dev_name(const struct biolat *bl, __u32 dev, char *buf, size_t len)
{
	char path[300], *text = NULL, *p;
	size_t n;

	snprintf(buf, len, "%u:%u", dev >> 20, dev & 0xfffff);
	snprintf(path, sizeof(path), "%s/dev/block/%u:%u/uevent", bl->sysfs, dev >> 20,
		 dev & 0xfffff);
	if (read_file(path, 4096, &text, &n))
		return;
	p = strstr(text, "DEVNAME=");
	if (p) {
		p += 8;
		p[strcspn(p, "\n")] = '\0';
		if (*p && strlen(p) < len && !strpbrk(p, "=\x1f/"))
			snprintf(buf, len, "%s", p);
	}
	free(text);
}

static struct dev_hist *dev_of(struct biolat *bl, __u32 dev)
{
	for (unsigned i = 0; i < bl->ndevs; i++)
		if (bl->devs[i].dev == dev)
			return &bl->devs[i];
	if (bl->ndevs >= BIOLAT_DEVICES)
		return NULL;
	memset(&bl->devs[bl->ndevs], 0, sizeof(bl->devs[0]));
	bl->devs[bl->ndevs].dev = dev;
	dev_name(bl, dev, bl->devs[bl->ndevs].name, sizeof(bl->devs[0].name));
	return &bl->devs[bl->ndevs++];
}

static int biolat_sample(void *state, struct tsdb *db)
{
	struct biolat *bl = state;
	const struct bpf_map *map = bl->skel->maps.hist;
	struct bio_globals *bg = &bl->skel->bss->bg;
	__u32 key, *prev = NULL;
	int err = 0;

	hookmode_sample_cost(&bl->hm, db);
	while (bpf_map__get_next_key(map, prev, &key, sizeof(key)) == 0) {
		uint64_t sum[LATHIST_BUCKETS] = {0}, d[LATHIST_BUCKETS], max_ns = 0;
		struct dev_hist *h;

		prev = &key;
		if (bpf_map__lookup_elem(map, &key, sizeof(key), bl->vals,
					 (size_t)bl->ncpus * sizeof(*bl->vals), 0))
			continue;
		for (int c = 0; c < bl->ncpus; c++) {
			for (int b = 0; b < LATHIST_BUCKETS; b++)
				sum[b] += bl->vals[c].slots[b];
			if (bl->vals[c].epoch == bg->epoch)
				max_ns = MAX(max_ns, bl->vals[c].max_ns);
		}
		h = dev_of(bl, key);
		if (!h)
			continue;
		if (h->primed) {
			struct labels l = {.n = 1, .k = {"device"}, .v = {h->name}};
			double p50, p99;

			for (int b = 0; b < LATHIST_BUCKETS; b++)
				d[b] = sum[b] >= h->slots[b] ? sum[b] - h->slots[b] : 0;
			p50 = lathist_quantile(d, LATHIST_BUCKETS, 0.50);
			p99 = lathist_quantile(d, LATHIST_BUCKETS, 0.99);
			/* an idle disk reports nothing rather than zero latency */
			if (p50 >= 0) {
				/* interpolation inside the top bucket must not pass the real max */
				if (max_ns) {
					p50 = MIN(p50, (double)max_ns);
					p99 = MIN(p99, (double)max_ns);
				}
				tsdb_put(db, M_IO_LAT_P50, &l, p50 / 1000.0);
				tsdb_put(db, M_IO_LAT_P99, &l, p99 / 1000.0);
				tsdb_put(db, M_IO_LAT_MAX, &l, (double)max_ns / 1000.0);
			}
		}
		memcpy(h->slots, sum, sizeof(sum));
		h->primed = true;
	}
	bg->epoch++;
	return err;
}

static void biolat_status(void *state, json_t *o)
{
	struct biolat *bl = state;

	json_object_set_new(o, "attach", json_string(bl->hm.use_btf ? "tp_btf" : "raw_tp"));
	json_object_set_new(o, "devices", json_integer(bl->ndevs));
	json_object_set_new(o, "drops_inflight",
			    json_integer((json_int_t)bl->skel->bss->bg.drops_inflight));
	json_object_set_new(o, "drops_devices",
			    json_integer((json_int_t)bl->skel->bss->bg.drops_devices));
}

static int biolat_throttle(void *state, bool off)
{
	struct biolat *bl = state;

	for (unsigned i = 0; i < bl->ndevs; i++)
		bl->devs[i].primed = false;
	return hookmode_throttle(&bl->hm, off);
}

static int biolat_cost(void *state, struct watcher_hook_cost *out)
{
	struct biolat *bl = state;

	*out = bl->hm.last;
	return 0;
}

const struct watcher_ops biolat_watcher = {
	.name = "biolat",
	.help = "opt-in: block-layer latency histograms per disk (watch.block_hooks)",
	.open = biolat_open,
	.sample = biolat_sample,
	.close = biolat_close,
	.status = biolat_status,
	.throttle = biolat_throttle,
	.cost = biolat_cost,
};
