// SPDX-License-Identifier: GPL-2.0-only
/* bench_empty_tp TRACEPOINT...: attaches empty programs to the named
 * tracepoints (sched_switch, sched_wakeup, sched_wakeup_new, block_rq_issue,
 * block_rq_complete, sys_enter), prints "ready" and their ids, holds them
 * until SIGINT/SIGTERM, then prints each program's ns per event (kernel BPF
 * statistics, turned on while it runs). The floor the benchmarks compare with. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "probes/filter.h" /* u32/u64 for the skeleton */
#include "empty_tp.skel.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct empty_tp_bpf *skel;
	struct bpf_program *prog;
	int stats_fd, err;

	if (argc < 2) {
		fprintf(stderr, "usage: %s TRACEPOINT...\n", argv[0]);
		return 2;
	}
	skel = empty_tp_bpf__open();
	if (!skel)
		return 1;
	bpf_object__for_each_program(prog, skel->obj)
	{
		const char *name = bpf_program__name(prog) + strlen("empty_");
		bool want = false;

		for (int i = 1; i < argc; i++)
			want |= strcmp(argv[i], name) == 0;
		bpf_program__set_autoload(prog, want);
	}
	err = empty_tp_bpf__load(skel);
	if (!err)
		err = empty_tp_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "loading/attaching: %s\n", strerror(-err));
		empty_tp_bpf__destroy(skel);
		return 1;
	}
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("ready\n");
	fflush(stdout);
	while (!stop)
		pause();
	bpf_object__for_each_program(prog, skel->obj)
	{
		struct bpf_prog_info info = {0};
		__u32 len = sizeof(info);

		if (!bpf_program__autoload(prog) ||
		    bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
			continue;
		printf("%s run_cnt=%llu run_time_ns=%llu ns_per_event=%.1f\n",
		       bpf_program__name(prog), (unsigned long long)info.run_cnt,
		       (unsigned long long)info.run_time_ns,
		       info.run_cnt ? (double)info.run_time_ns / (double)info.run_cnt : 0.0);
	}
	if (stats_fd >= 0)
		close(stats_fd);
	empty_tp_bpf__destroy(skel);
	return 0;
}
