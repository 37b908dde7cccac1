// SPDX-License-Identifier: GPL-2.0-only
#include "probes/bpfutil.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/cgroups.h"
#include "agent/log.h"
#include "probes/capture.h"
#include "probes/filter.h"

/* Programs the agent loaded, by owner, for run-time accounting. */
#define OWNED_MAX 128
static struct {
	char owner[32];
	__u32 id;
} owned[OWNED_MAX];
static unsigned nowned;
static int stats_fd = -1;
static unsigned stats_refs;

static void owner_add(const char *what, __u32 id)
{
	if (nowned >= OWNED_MAX)
		return;
	snprintf(owned[nowned].owner, sizeof(owned[nowned].owner), "%s", what);
	owned[nowned++].id = id;
}

int percpu_counters_read(const struct bpf_map *map, uint64_t *out, unsigned n)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;

	if (ncpu <= 0)
		return -EINVAL;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (unsigned k = 0; k < n; k++) {
		uint32_t key = k;

		out[k] = 0;
		if (bpf_map__lookup_elem(map, &key, sizeof(key), vals, (size_t)ncpu * sizeof(*vals),
					 0))
			continue;
		for (int c = 0; c < ncpu; c++)
			out[k] += vals[c];
	}
	free(vals);
	return 0;
}

int percpu_counters_zero(const struct bpf_map *map, unsigned n)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;
	int err = 0;

	if (ncpu <= 0)
		return -EINVAL;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (unsigned k = 0; k < n && !err; k++) {
		uint32_t key = k;

		err = bpf_map__update_elem(map, &key, sizeof(key), vals,
					   (size_t)ncpu * sizeof(*vals), 0);
	}
	free(vals);
	return err;
}

void map_clear(const struct bpf_map *map)
{
	int fd = bpf_map__fd(map);
	char *key = calloc(1, bpf_map__key_size(map));

	if (!key)
		return;
	/* always restart from the first key: deleting invalidates iteration */
	while (bpf_map_get_next_key(fd, NULL, key) == 0) {
		if (bpf_map_delete_elem(fd, key))
			break;
	}
	free(key);
}

int capture_filter_fill(struct capture_filter *f, const struct capture_target *t,
			struct cgroups *cg)
{
	memset(f, 0, sizeof(*f));
	f->cgroup_subsys = cg ? cgroups_bpf_subsys(cg) : -1;
	switch (t->kind) {
	case TARGET_HOST:
		f->mode = FILTER_ALL;
		return 0;
	case TARGET_PID:
		if (t->pid <= 0)
			return -EINVAL;
		f->mode = FILTER_TGID;
		f->tgid = (uint32_t)t->pid;
		return 0;
	case TARGET_CGROUP:
		if (!t->cgroup_id)
			return -EINVAL;
		f->mode = FILTER_CGROUP;
		f->cgroup_id = t->cgroup_id;
		return 0;
	}
	return -EINVAL;
}

int capture_filter_set(const struct bpf_map *filter_map, const struct capture_filter *f)
{
	uint32_t zero = 0;

	return bpf_map__update_elem(filter_map, &zero, sizeof(zero), f, sizeof(*f), 0);
}

int perf_clock_attach(struct bpf_program *prog, uint64_t freq, struct bpf_link **links, int *fds,
		      int n)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.size = sizeof(attr),
		.freq = 1,
		.sample_freq = freq,
	};
	int opened = 0;

	for (int cpu = 0; cpu < n; cpu++) {
		int fd;

		links[cpu] = NULL;
		fds[cpu] = -1;
		fd = (int)syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			if (errno == ENODEV || errno == ENOENT)
				continue; /* CPU offline */
			log_warn("perf_event_open(cpu %d): %s", cpu, strerror(errno));
			continue;
		}
		links[cpu] = bpf_program__attach_perf_event(prog, fd);
		if (!links[cpu]) {
			log_warn("attaching %s to cpu %d: %s", bpf_program__name(prog), cpu,
				 strerror(errno));
			close(fd);
			continue;
		}
		fds[cpu] = fd;
		opened++;
	}
	return opened;
}

void perf_clock_detach(struct bpf_link **links, int *fds, int n)
{
	for (int cpu = 0; cpu < n; cpu++) {
		bpf_link__destroy(links[cpu]);
		links[cpu] = NULL;
		if (fds[cpu] >= 0)
			close(fds[cpu]);
		fds[cpu] = -1;
	}
}

void bpf_object_log_ids(const char *what, const struct bpf_object *obj)
{
	char buf[1024];
	size_t off = 0;
	struct bpf_program *prog;

	buf[0] = '\0';
	bpf_object__for_each_program(prog, obj)
	{
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(prog);

		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
			continue;
		if (off < sizeof(buf))
			off += (size_t)snprintf(buf + off, sizeof(buf) - off, " %s#%u",
						bpf_program__name(prog), info.id);
	}
	log_info("%s: BPF programs loaded:%s", what, buf[0] ? buf : " none");
	bpf_object__for_each_program(prog, obj)
	{
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(prog);

		if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len))
			owner_add(what, info.id);
	}
}

void bpf_owner_forget(const char *what)
{
	for (unsigned i = 0; i < nowned; i++) {
		if (strcmp(owned[i].owner, what) == 0) {
			owned[i] = owned[--nowned];
			i--;
		}
	}
}

int bpf_owner_runtime(const char *what, uint64_t *run_ns, uint64_t *run_cnt)
{
	*run_ns = 0;
	*run_cnt = 0;
	for (unsigned i = 0; i < nowned; i++) {
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);
		int fd;

		if (strcmp(owned[i].owner, what))
			continue;
		/* by id, not by a kept fd: a kept fd would keep the program loaded */
		fd = bpf_prog_get_fd_by_id(owned[i].id);
		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
			*run_ns += info.run_time_ns;
			*run_cnt += info.run_cnt;
		}
		close(fd);
	}
	return 0;
}

int bpf_stats_hold(void)
{
	if (stats_refs++ == 0) {
		stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
		if (stats_fd < 0) {
			int err = -errno;

			stats_refs = 0;
			return err;
		}
	}
	return 0;
}

void bpf_stats_release(void)
{
	if (stats_refs && --stats_refs == 0) {
		close(stats_fd);
		stats_fd = -1;
	}
}
