// SPDX-License-Identifier: GPL-2.0-only
/* bench_stackstore MAX_STACKS SECONDS [HZ]: samples every CPU with both stack
 * schemes of stackstore_cmp.bpf.c at once (one perf cpu-clock event each, HZ
 * per CPU, default 99), sized for MAX_STACKS stacks, for SECONDS; prints one
 * JSON line per scheme: samples, stacks lost, distinct stacks kept, ns per
 * program run (kernel BPF statistics). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probes/bpfutil.h"
#include "probes/filter.h" /* u32/u64 for the skeleton */
#include "probes/stackstore.h"
#include "stackstore_cmp.skel.h"

static unsigned map_count(const struct bpf_map *m)
{
	unsigned char key[8], next[8];
	unsigned n = 0;
	int fd = bpf_map__fd(m);

	for (int more = bpf_map_get_next_key(fd, NULL, next) == 0; more;
	     more = bpf_map_get_next_key(fd, key, next) == 0) {
		memcpy(key, next, sizeof(key));
		n++;
	}
	return n;
}

static double ns_per_run(struct bpf_program *p)
{
	struct bpf_prog_info info = {0};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len) || !info.run_cnt)
		return 0;
	return (double)info.run_time_ns / (double)info.run_cnt;
}

int main(int argc, char **argv)
{
	struct stackstore_cmp_bpf *skel;
	unsigned max = argc > 1 ? (unsigned)atoi(argv[1]) : 16384;
	int seconds = argc > 2 ? atoi(argv[2]) : 10, ncpus = libbpf_num_possible_cpus();
	uint64_t hz = argc > 3 ? strtoull(argv[3], NULL, 10) : 99, st[4] = {0};
	struct bpf_link **la, **lb;
	int *fa, *fb, err;

	skel = stackstore_cmp_bpf__open();
	if (!skel || ncpus <= 0)
		return 1;
	bpf_map__set_max_entries(skel->maps.trace_stacks, max);
	stackstore_size(skel->obj, max, 127);
	err = stackstore_cmp_bpf__load(skel);
	if (err || stackstore_reset(skel->obj) || bpf_stats_hold()) {
		fprintf(stderr, "loading: %s\n", strerror(err ? -err : 1));
		return 1;
	}
	la = calloc((size_t)ncpus, sizeof(*la));
	lb = calloc((size_t)ncpus, sizeof(*lb));
	fa = calloc((size_t)ncpus, sizeof(*fa));
	fb = calloc((size_t)ncpus, sizeof(*fb));
	if (!la || !lb || !fa || !fb)
		return 1;
	for (int i = 0; i < ncpus; i++)
		fa[i] = fb[i] = -1;
	if (perf_clock_attach(skel->progs.trace_map_sample, hz, la, fa, ncpus) <= 0 ||
	    perf_clock_attach(skel->progs.store_sample, hz, lb, fb, ncpus) <= 0) {
		fprintf(stderr, "no perf clock events\n");
		return 1;
	}
	sleep((unsigned)seconds);
	perf_clock_detach(la, fa, ncpus);
	perf_clock_detach(lb, fb, ncpus);
	percpu_counters_read(skel->maps.stats, st, 4);
	printf("{\"scheme\": \"stack_trace_map\", \"max_stacks\": %u, \"samples\": %llu, "
	       "\"stacks_lost\": %llu, \"stacks_kept\": %u, \"ns_per_sample\": %.0f}\n",
	       max, (unsigned long long)st[0], (unsigned long long)st[1],
	       map_count(skel->maps.trace_stacks), ns_per_run(skel->progs.trace_map_sample));
	printf("{\"scheme\": \"content_store\", \"max_stacks\": %u, \"samples\": %llu, "
	       "\"stacks_lost\": %llu, \"stacks_kept\": %u, \"ns_per_sample\": %.0f}\n",
	       max, (unsigned long long)st[2], (unsigned long long)st[3],
	       map_count(skel->maps.stacks), ns_per_run(skel->progs.store_sample));
	bpf_stats_release();
	stackstore_cmp_bpf__destroy(skel);
	free(la);
	free(lb);
	free(fa);
	free(fb);
	return 0;
}
