// SPDX-License-Identifier: GPL-2.0-only
/* bench_task_walk REPS: runs each variant of task_walk.bpf.c REPS times, 100 ms
 * apart (as the agent's passes come, with caches cooled in between), and
 * prints one JSON line per variant: tasks visited, median and minimum µs per
 * pass. Needs Linux 6.7+ (open-coded task iterator). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "probes/bpfutil.h"
#include "probes/filter.h" /* u32/u64 for the skeleton */
#include "task_walk.skel.h"

static const char *const variants[] = {
	"walk",	      "walk+sched_info", "walk+sched_info+state",
	"walk+state", "processes",	 "walk+sched_info+state, 4 processes in step"};

enum { IN_STEP = 5 }; /* the variant with a program of its own */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run(int variant, int reps, double *us)
{
	struct task_walk_bpf *skel = task_walk_bpf__open();
	union bpf_iter_link_info li;
	struct bpf_link *link = NULL;
	int err = 0;

	if (!skel)
		return -1;
	memset(&li, 0, sizeof(li));
	li.task.tid = (__u32)gettid();
	skel->rodata->variant = variant;
	if (task_walk_bpf__load(skel) ||
	    !(link = iter_attach(variant == IN_STEP ? skel->progs.task_walk_interleaved
						    : skel->progs.task_walk,
				 &li))) {
		err = -1;
		goto cleanup;
	}
	for (int r = 0; r < reps; r++) {
		char buf[64];
		double t0 = now_us();
		int fd = bpf_iter_create(bpf_link__fd(link));

		if (fd < 0) {
			err = -1;
			goto cleanup;
		}
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		close(fd);
		us[r] = now_us() - t0;
		usleep(100000);
	}
	qsort(us, (size_t)reps, sizeof(*us), cmp);
	printf("{\"variant\": \"%s\", \"tasks\": %llu, \"median_us\": %.1f, \"min_us\": %.1f}\n",
	       variants[variant], (unsigned long long)skel->bss->tasks, us[reps / 2], us[0]);
cleanup:
	bpf_link__destroy(link);
	task_walk_bpf__destroy(skel);
	return err;
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 21;
	double *us;
	int err = 0;

	if (reps < 1)
		return 2;
	us = calloc((size_t)reps, sizeof(*us));
	if (!us)
		return 1;
	for (int v = 0; v < (int)(sizeof(variants) / sizeof(variants[0])) && !err; v++)
		err = run(v, reps, us);
	free(us);
	if (err)
		fprintf(stderr, "bench_task_walk: load or run failed (needs root, Linux 6.7+)\n");
	return err ? 1 : 0;
}
