// SPDX-License-Identifier: GPL-2.0-only
#include "probes/bpfutil.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/log.h"
#include "base/symbolize.h"
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

/* Opens and attaches one CPU's event; -ENODEV when the CPU is offline. */
static int perf_clock_open_cpu(struct bpf_program *prog, uint64_t freq, int cpu,
			       struct bpf_link **link, int *fdp)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.size = sizeof(attr),
		.freq = 1,
		.sample_freq = freq,
	};
	int fd, err;

	*link = NULL;
	*fdp = -1;
	fd = (int)syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err == -ENODEV || err == -ENOENT)
			return -ENODEV; /* CPU offline */
		log_warn("perf_event_open(cpu %d): %s", cpu, strerror(-err));
		return err;
	}
	*link = bpf_program__attach_perf_event(prog, fd);
	if (!*link) {
		err = -errno;
		log_warn("attaching %s to cpu %d: %s", bpf_program__name(prog), cpu,
			 strerror(-err));
		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

int perf_clock_attach(struct bpf_program *prog, uint64_t freq, struct bpf_link **links, int *fds,
		      int n)
{
	int opened = 0;

	for (int cpu = 0; cpu < n; cpu++)
		if (perf_clock_open_cpu(prog, freq, cpu, &links[cpu], &fds[cpu]) == 0)
			opened++;
	return opened;
}

int cpu_list_parse(const char *text, bool *on, int n)
{
	const char *p = text;

	memset(on, 0, (size_t)n * sizeof(*on));
	while (*p && *p != '\n') {
		char *end;
		long lo = strtol(p, &end, 10), hi = lo;

		if (end == p || lo < 0)
			return -EINVAL;
		if (*end == '-') {
			const char *q = end + 1;

			hi = strtol(q, &end, 10);
			if (end == q || hi < lo)
				return -EINVAL;
		}
		if (*end != ',' && *end != '\n' && *end != '\0')
			return -EINVAL;
		for (long c = lo; c <= hi && c < n; c++)
			on[c] = true;
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

static int read_cpu_list(const char *path, bool *on, int n)
{
	char buf[4096];
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	return cpu_list_parse(buf, on, n);
}

int perf_clock_refresh(struct bpf_program *prog, uint64_t freq, struct bpf_link **links, int *fds,
		       int n)
{
	bool *online = calloc((size_t)n, sizeof(*online));
	int added = 0;

	if (!online)
		return -ENOMEM;
	if (read_cpu_list("/sys/devices/system/cpu/online", online, n)) {
		free(online);
		return 0;
	}
	for (int cpu = 0; cpu < n; cpu++) {
		if (online[cpu] && fds[cpu] < 0) {
			if (perf_clock_open_cpu(prog, freq, cpu, &links[cpu], &fds[cpu]) == 0) {
				log_info("cpu %d came online: sampling it too", cpu);
				added++;
			}
		} else if (!online[cpu] && fds[cpu] >= 0) {
			/* an offlined CPU's event is not resumed when it returns: reopen then */
			bpf_link__destroy(links[cpu]);
			links[cpu] = NULL;
			close(fds[cpu]);
			fds[cpu] = -1;
		}
	}
	free(online);
	return added;
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

int stack_map_read(const struct bpf_map *map, int32_t id, uint64_t *frames, unsigned max,
		   unsigned *n)
{
	unsigned depth = bpf_map__value_size(map) / sizeof(uint64_t);

	*n = 0;
	if (id < 0)
		return 0;
	if (depth > max)
		return -EINVAL;
	if (bpf_map__lookup_elem(map, &id, sizeof(id), frames, depth * sizeof(uint64_t), 0))
		return -ENOENT;
	while (*n < depth && frames[*n])
		(*n)++;
	return 0;
}

unsigned stack_bpf_frames(struct symbolizer *sym, const uint64_t *kframes, unsigned n)
{
	static const char *const glue[] = {"bpf_prog_", "bpf_trace_run", "__bpf_trace_",
					   "__traceiter_", "bpf_trampoline_"};
	unsigned skip = 0;

	for (; skip < n && skip < 4; skip++) {
		struct sym_frame f;
		bool is_glue = false;

		if (symbolizer_kernel(sym, kframes[skip], &f))
			break;
		for (size_t g = 0; g < sizeof(glue) / sizeof(glue[0]); g++)
			is_glue |= strncmp(f.name, glue[g], strlen(glue[g])) == 0;
		if (!is_glue)
			break;
	}
	return skip;
}

unsigned stack_depth_limit(unsigned want)
{
	FILE *f = fopen("/proc/sys/kernel/perf_event_max_stack", "re");
	unsigned v = 0;

	if (!f)
		return want;
	if (fscanf(f, "%u", &v) != 1)
		v = want;
	fclose(f);
	return v && v < want ? v : want;
}

bool btf_has_tracepoint(const struct btf *vmlinux, const char *name)
{
	char type[128];

	if (!vmlinux)
		return false;
	snprintf(type, sizeof(type), "btf_trace_%s", name);
	return btf__find_by_name_kind(vmlinux, type, BTF_KIND_TYPEDEF) > 0;
}

void bpf_object_choose_tp_btf(struct bpf_object *obj, bool use_btf)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj)
	{
		const char *sec = bpf_program__section_name(prog);

		if (strncmp(sec, "tp_btf/", 7) == 0)
			bpf_program__set_autoload(prog, use_btf);
		else if (strncmp(sec, "raw_tp/", 7) == 0)
			bpf_program__set_autoload(prog, !use_btf);
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
		struct bpf_prog_info info = {0};
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
		struct bpf_prog_info info = {0};
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
		struct bpf_prog_info info = {0};
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

void track_key_tgids(struct symbolizer *sym, const struct bpf_map *map, size_t key_size,
		     size_t tgid_off, size_t ustack_off)
{
	unsigned char key[256], next[256];
	uint32_t tgid, last = 0;
	int32_t ustack;
	int fd = bpf_map__fd(map);
	bool first = true;

	if (!sym || key_size > sizeof(key))
		return;
	while (bpf_map_get_next_key(fd, first ? NULL : key, next) == 0) {
		first = false;
		memcpy(key, next, key_size);
		memcpy(&tgid, key + tgid_off, sizeof(tgid));
		memcpy(&ustack, key + ustack_off, sizeof(ustack));
		/* keys of one process tend to come together: skip repeats */
		if (tgid && tgid != last && ustack >= 0)
			symbolizer_track(sym, (int)tgid);
		last = tgid;
	}
}
