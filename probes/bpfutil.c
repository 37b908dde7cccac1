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
#include "probes/sched.h"

static bool has_prefix(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

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

struct bpf_link *iter_attach(struct bpf_program *prog, union bpf_iter_link_info *li)
{
	struct bpf_iter_attach_opts o;

	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.link_info = li;
	o.link_info_len = sizeof(*li);
	return bpf_program__attach_iter(prog, &o);
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

bool stack_is_glue(const char *name)
{
	static const char *const glue[] = {
		"bpf_prog_",	   "bpf_trace_run",   "__bpf_trace_",
		"__traceiter_",	   "__bpf_prog_run",  "trace_call_bpf",
		"bpf_dispatcher_", "bpf_trampoline_", "perf_trace_",
	};

	for (size_t g = 0; g < sizeof(glue) / sizeof(glue[0]); g++)
		if (strncmp(name, glue[g], strlen(glue[g])) == 0)
			return true;
	return false;
}

unsigned stack_bpf_frames(struct symbolizer *sym, const uint64_t *kframes, unsigned n)
{
	unsigned skip = 0;

	if (!sym)
		return 0;
	for (; skip < n; skip++) {
		struct sym_frame f;

		if (symbolizer_kernel(sym, kframes[skip], &f) || !stack_is_glue(f.name))
			break;
	}
	return skip;
}

unsigned stack_irq_frames(struct symbolizer *sym, const uint64_t *kframes, unsigned n)
{
	static const char *const entry[] = {"asm_sysvec_", "asm_common_interrupt"};
	static const char *const irq[] = {"sysvec_",	     "__sysvec_",    "common_interrupt",
					  "handle_softirqs", "__do_softirq", "__irq_exit_rcu",
					  "irq_exit"};
	unsigned last = 0;

	if (!sym)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		struct sym_frame f;

		if (symbolizer_kernel(sym, kframes[i], &f))
			continue;
		/* the entry point ends the interrupt: below it is the interrupted task */
		for (size_t j = 0; j < sizeof(entry) / sizeof(entry[0]); j++)
			if (strncmp(f.name, entry[j], strlen(entry[j])) == 0)
				return i + 1;
		for (size_t j = 0; j < sizeof(irq) / sizeof(irq[0]); j++)
			if (strncmp(f.name, irq[j], strlen(irq[j])) == 0)
				last = i + 1;
	}
	return last;
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

static struct btf *kernel_btf_cached;

const struct btf *kernel_btf(void)
{
	if (!kernel_btf_cached)
		kernel_btf_cached = btf__load_vmlinux_btf();
	return kernel_btf_cached;
}

bool kernel_btf_parsed(void)
{
	return kernel_btf_cached != NULL;
}

void kernel_btf_release(void)
{
	btf__free(kernel_btf_cached);
	kernel_btf_cached = NULL;
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

		if (has_prefix(sec, "tp_btf/"))
			bpf_program__set_autoload(prog, use_btf);
		else if (has_prefix(sec, "raw_tp/"))
			bpf_program__set_autoload(prog, !use_btf);
	}
}

bool bpf_force_raw_tp;

/* Leaves unloaded the programs whose tracepoint this kernel does not have. */
static void drop_missing_tracepoints(struct bpf_object *obj)
{
	const struct btf *btf = kernel_btf();
	struct bpf_program *prog;

	if (!btf)
		return; /* the load itself will say why */
	bpf_object__for_each_program(prog, obj)
	{
		const char *tp = strchr(bpf_program__section_name(prog), '/');

		if (bpf_program__autoload(prog) && tp && !btf_has_tracepoint(btf, tp + 1))
			bpf_program__set_autoload(prog, false);
	}
}

int btf_tracepoint_nargs(const struct btf *vmlinux, const char *name)
{
	const struct btf_type *t;
	char type[128];
	int id;

	if (!vmlinux)
		return -ENOENT;
	snprintf(type, sizeof(type), "btf_trace_%s", name);
	id = btf__find_by_name_kind(vmlinux, type, BTF_KIND_TYPEDEF);
	if (id <= 0)
		return -ENOENT;
	t = btf__type_by_id(vmlinux, id);
	t = t ? btf__type_by_id(vmlinux, t->type) : NULL; /* pointer */
	if (!t || !btf_is_ptr(t))
		return -EINVAL;
	t = btf__type_by_id(vmlinux, t->type); /* function prototype */
	if (!t || !btf_is_func_proto(t))
		return -EINVAL;
	return (int)btf_vlen(t) - 1;
}

void bpf_object_choose_old(struct bpf_object *obj, const char *tp, bool old)
{
	struct bpf_program *prog;
	char twin[128];

	bpf_object__for_each_program(prog, obj)
	{
		const char *name = bpf_program__name(prog);
		const char *sec = strchr(bpf_program__section_name(prog), '/');
		size_t len = strlen(name);

		if (!sec || strcmp(sec + 1, tp))
			continue;
		if (len > 4 && strcmp(name + len - 4, "_old") == 0) {
			if (!old)
				bpf_program__set_autoload(prog, false);
			continue;
		}
		snprintf(twin, sizeof(twin), "%s_old", name);
		if (old && bpf_object__find_program_by_name(obj, twin))
			bpf_program__set_autoload(prog, false);
	}
}

/* One attempt: open, pick the flavour, configure, load. */
static int skel_try(void **out, bool btf, const struct bpf_skel_ops *ops,
		    const struct bpf_load_opts *o)
{
	void *skel = ops->open();
	int err;

	if (!skel)
		return -errno ? -errno : -ENOMEM;
	bpf_object_choose_tp_btf(ops->object(skel), btf);
	err = o->configure ? o->configure(skel, o->ctx) : 0;
	if (!err && o->drop_missing_tps)
		drop_missing_tracepoints(ops->object(skel));
	/* libbpf parses the kernel BTF again for the load: one copy at a time
	 * keeps the start-up peak down (checks after this one parse it anew) */
	kernel_btf_release();
	if (!err)
		err = ops->load(skel);
	if (err) {
		ops->destroy(skel);
		return err;
	}
	*out = skel;
	return 0;
}

int bpf_skel_load(void **skel, bool *btf, const struct bpf_skel_ops *ops,
		  const struct bpf_load_opts *o)
{
	bool use_btf = !bpf_force_raw_tp && !o->no_tp_btf;
	int err;

	*skel = NULL;
	err = skel_try(skel, use_btf, ops, o);
	if (err && use_btf) {
		log_info("%s: tp_btf programs did not load (%s); using raw_tp", o->owner,
			 strerror(-err));
		use_btf = false;
		err = skel_try(skel, false, ops, o);
	}
	if (err) {
		if (o->why)
			snprintf(o->why, o->why_len, "loading BPF programs: %s", strerror(-err));
		return log_ret(err, "%s: loading BPF programs: %s", o->owner, strerror(-err));
	}
	if (btf)
		*btf = use_btf;
	bpf_object_log_ids(o->owner, ops->object(*skel));
	return 0;
}

void bpf_skel_unload(void *skel, const struct bpf_skel_ops *ops, const char *owner)
{
	if (!skel)
		return;
	bpf_owner_forget(owner);
	ops->destroy(skel);
}

int bpf_links_attach(struct bpf_links *l, struct bpf_object *obj,
		     enum bpf_attach_choice (*choose)(const struct bpf_program *p, void *ctx),
		     void *ctx, const char *owner)
{
	struct bpf_program *prog;
	int err;

	l->note[0] = '\0';
	bpf_object__for_each_program(prog, obj)
	{
		const char *sec = bpf_program__section_name(prog);
		enum bpf_attach_choice c;
		struct bpf_link *link;

		if (bpf_program__fd(prog) < 0 || has_prefix(sec, "iter") ||
		    has_prefix(sec, "perf_event"))
			continue; /* not loaded here, or attached by its owner */
		c = choose ? choose(prog, ctx) : BPF_ATTACH_REQUIRED;
		if (c == BPF_ATTACH_SKIP)
			continue;
		if (l->n >= BPF_LINKS_MAX) {
			err = log_ret(-E2BIG, "%s: more than %d programs to attach", owner,
				      BPF_LINKS_MAX);
			goto fail;
		}
		link = bpf_program__attach(prog);
		if (link) {
			l->v[l->n++] = link;
			continue;
		}
		err = -errno;
		if (c == BPF_ATTACH_OPTIONAL) {
			if (!l->note[0])
				snprintf(l->note, sizeof(l->note), "attaching %s: %s",
					 bpf_program__name(prog), strerror(-err));
			continue;
		}
		log_warn("%s: attaching %s: %s", owner, bpf_program__name(prog), strerror(-err));
		goto fail;
	}
	return 0;
fail:
	bpf_links_detach(l);
	return err;
}

void bpf_links_detach(struct bpf_links *l)
{
	while (l->n)
		bpf_link__destroy(l->v[--l->n]);
}

int sched_set_self(const struct bpf_map *self_map, const struct capture_target *t)
{
	uint32_t zero = 0, self = (uint32_t)getpid();

	if (t->kind == TARGET_PID && t->pid == (int)self)
		self = 0;
	return bpf_map__update_elem(self_map, &zero, sizeof(zero), &self, sizeof(self), 0);
}

const char *sched_state_name(unsigned state)
{
	static const char *const names[SCHED_ST_MAX] = {
		[SCHED_ST_UNKNOWN] = "?", [SCHED_ST_ON_CPU] = "on_cpu", [SCHED_ST_RUNNABLE] = "R",
		[SCHED_ST_SLEEP] = "S",	  [SCHED_ST_DISK] = "D",	[SCHED_ST_IDLE] = "I",
		[SCHED_ST_OTHER] = "T",	  [SCHED_ST_DEAD] = "X",
	};

	return state < SCHED_ST_MAX ? names[state] : "?";
}

void sched_comm(char *dst, const char *comm)
{
	memcpy(dst, comm, SCHED_TASK_COMM_LEN);
	dst[SCHED_TASK_COMM_LEN - 1] = '\0';
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
