// SPDX-License-Identifier: GPL-2.0-only
/*
 * Opt-in always-on block latency (watch.block_hooks): issue -> completion of
 * every request, into a per-disk, per-CPU histogram with the interval's
 * maximum. One hash update at issue and one lookup at completion per IO;
 * nothing goes to user space per event.
 */
#include "core_fixes.bpf.h"
#include <bpf/bpf_tracing.h>
#include "biolat.h"

char LICENSE[] SEC("license") = "GPL";

struct bio_globals bg;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BIOLAT_INFLIGHT);
	__type(key, __u64);
	__type(value, __u64);
} issued_at SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BIOLAT_DEVICES);
	__type(key, __u32);
	__type(value, struct bio_hist);
} hist SEC(".maps");

/* a zeroed value to create histograms from (too big for the stack) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bio_hist);
} zero SEC(".maps");

static __always_inline void issue(struct request *rq)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns();

	if (bpf_map_update_elem(&issued_at, &key, &now, BPF_ANY))
		__sync_fetch_and_add(&bg.drops_inflight, 1);
}

static __always_inline void complete(struct request *rq)
{
	__u64 key = (__u64)rq, *ts, delta, now = bpf_ktime_get_ns();
	struct bio_hist *h;
	unsigned int b;
	__u32 dev, z = 0;

	ts = bpf_map_lookup_elem(&issued_at, &key);
	if (!ts)
		return; /* issued before the hooks were attached */
	delta = now > *ts ? now - *ts : 0;
	bpf_map_delete_elem(&issued_at, &key);
	dev = request_disk_dev(rq);
	h = bpf_map_lookup_elem(&hist, &dev);
	if (!h) {
		struct bio_hist *zv = bpf_map_lookup_elem(&zero, &z);

		if (!zv)
			return;
		bpf_map_update_elem(&hist, &dev, zv, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hist, &dev);
		if (!h) {
			__sync_fetch_and_add(&bg.drops_devices, 1);
			return;
		}
	}
	b = lathist_bucket(delta);
	barrier_var(b); /* keep the bound check the verifier needs */
	if (b >= LATHIST_BUCKETS)
		return;
	h->slots[b]++;
	h->events++;
	if (h->epoch != bg.epoch) {
		h->epoch = bg.epoch;
		h->max_ns = 0;
	}
	if (delta > h->max_ns)
		h->max_ns = delta;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(bio_issue, struct request *rq)
{
	issue(rq);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(bio_complete, struct request *rq, int error, unsigned int nr_bytes)
{
	complete(rq);
	return 0;
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(bio_issue_raw, struct request *rq)
{
	issue(rq);
	return 0;
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(bio_complete_raw, struct request *rq, int error, unsigned int nr_bytes)
{
	complete(rq);
	return 0;
}
