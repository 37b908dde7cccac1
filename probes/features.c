// SPDX-License-Identifier: GPL-2.0-only
/* Loader for features.bpf.c: one program per load, attached, made to run, detached. */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/log.h"
#include "base/util.h"
#include "probes/features.h"
#include "probes/kcompat.h"
#include "probes/kernel_features.h"
#include "features.skel.h"

#define TRACEFS_MAGIC_ 0x74726163
/* stable, global, called by nanosleep(2): a target for kprobe and fentry */
#define SLEEP_FUNC "hrtimer_nanosleep"

const char *feature_state_name(enum feature_state s)
{
	static const char *const names[] = {"yes", "no", "partial", "info"};

	return s <= FEATURE_INFO ? names[s] : "?";
}

static void nap(long us)
{
	struct timespec ts = {0, us * 1000};

	nanosleep(&ts, NULL);
}

/* Opens the object with only `prog` enabled (and the ring only when it needs it). */
static struct features_bpf *open_only(const char *prog, bool ring, const char *fentry_target,
				      char *why, size_t len)
{
	struct features_bpf *skel = features_bpf__open();
	struct bpf_program *p;
	int err;

	if (!skel) {
		snprintf(why, len, "opening the BPF object: %s", strerror(errno));
		return NULL;
	}
	skel->rodata->target_tgid = (uint32_t)getpid();
	bpf_object__for_each_program(p, skel->obj)
		bpf_program__set_autoload(p, strcmp(bpf_program__name(p), prog) == 0);
	bpf_map__set_autocreate(skel->maps.ring, ring);
	if (fentry_target)
		bpf_program__set_attach_target(skel->progs.feat_fentry, 0, fentry_target);
	err = features_bpf__load(skel);
	if (err) {
		snprintf(why, len, "the kernel refused to load it: %s", strerror(-err));
		features_bpf__destroy(skel);
		return NULL;
	}
	return skel;
}

static void set(struct feature_result *r, enum feature_state st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set(struct feature_result *r, enum feature_state st, const char *fmt, ...)
{
	va_list ap;

	r->state = st;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}

/* Loads prog, attaches it with attach(), runs trigger(), checks it counted. */
static void probe_prog(struct feature_result *r, const char *prog, enum feature_hit slot,
		       struct bpf_link *(*attach)(struct features_bpf *s, char *why, size_t len),
		       void (*trigger)(void), const char *how)
{
	struct features_bpf *skel;
	struct bpf_link *link;
	char why[256];

	skel = open_only(prog, false, NULL, why, sizeof(why));
	if (!skel) {
		set(r, FEATURE_NO, "%s", why);
		return;
	}
	why[0] = '\0';
	link = attach(skel, why, sizeof(why));
	if (!link) {
		set(r, FEATURE_NO, "loads, but attaching fails: %s",
		    why[0] ? why : strerror(errno));
		features_bpf__destroy(skel);
		return;
	}
	for (int i = 0; i < 20 && !skel->bss->hits[slot]; i++)
		trigger();
	if (skel->bss->hits[slot])
		set(r, FEATURE_YES, "%s: attached and ran (%llu hits)", how,
		    (unsigned long long)skel->bss->hits[slot]);
	else
		set(r, FEATURE_PARTIAL, "%s: attached but never ran", how);
	bpf_link__destroy(link);
	features_bpf__destroy(skel);
}

static void trigger_switch(void)
{
	nap(2000);
}

static void trigger_getppid(void)
{
	syscall(SYS_getppid);
}

static struct bpf_link *attach_auto_tp_btf(struct features_bpf *s, char *why, size_t len)
{
	return bpf_program__attach(s->progs.feat_tp_btf);
}

static struct bpf_link *attach_auto_raw_tp(struct features_bpf *s, char *why, size_t len)
{
	return bpf_program__attach(s->progs.feat_raw_tp);
}

static struct bpf_link *attach_tracepoint(struct features_bpf *s, char *why, size_t len)
{
	return bpf_program__attach(s->progs.feat_tracepoint);
}

static struct bpf_link *attach_kprobe(struct features_bpf *s, char *why, size_t len)
{
	return bpf_program__attach_kprobe(s->progs.feat_kprobe, false, SLEEP_FUNC);
}

/* A function of our own for the uprobe: never inlined, never optimised away. */
__attribute__((noinline, used)) int autotrace_features_uprobe_target(int x);
__attribute__((noinline, used)) int autotrace_features_uprobe_target(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

static int (*volatile uprobe_target)(int) = autotrace_features_uprobe_target;

static void trigger_uprobe(void)
{
	uprobe_target(1);
}

static struct bpf_link *attach_uprobe(struct features_bpf *s, char *why, size_t len)
{
	LIBBPF_OPTS(bpf_uprobe_opts, o, .func_name = "autotrace_features_uprobe_target");

	return bpf_program__attach_uprobe_opts(s->progs.feat_uprobe, 0, "/proc/self/exe", 0, &o);
}

static void probe_fentry(struct feature_result *r, struct btf *vmlinux)
{
	struct features_bpf *skel;
	struct bpf_link *link;
	char why[256];

	if (!vmlinux) {
		set(r, FEATURE_NO, "needs kernel BTF");
		return;
	}
	if (btf__find_by_name_kind(vmlinux, SLEEP_FUNC, BTF_KIND_FUNC) < 0) {
		set(r, FEATURE_NO, "no BTF for %s to test with", SLEEP_FUNC);
		return;
	}
	skel = open_only("feat_fentry", false, SLEEP_FUNC, why, sizeof(why));
	if (!skel) {
		set(r, FEATURE_NO, "%s", why);
		return;
	}
	link = bpf_program__attach(skel->progs.feat_fentry);
	if (!link) {
		set(r, FEATURE_NO, "loads, but attaching to %s fails: %s", SLEEP_FUNC,
		    strerror(errno));
		features_bpf__destroy(skel);
		return;
	}
	for (int i = 0; i < 20 && !skel->bss->hits[FHIT_FENTRY]; i++)
		trigger_switch();
	if (skel->bss->hits[FHIT_FENTRY])
		set(r, FEATURE_YES, "fentry/%s: attached and ran (%llu hits)", SLEEP_FUNC,
		    (unsigned long long)skel->bss->hits[FHIT_FENTRY]);
	else
		set(r, FEATURE_PARTIAL, "fentry/%s: attached but never ran", SLEEP_FUNC);
	bpf_link__destroy(link);
	features_bpf__destroy(skel);
}

static void probe_perf_event(struct feature_result *r)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.size = sizeof(attr),
		.sample_period = 100000, /* every 100us of our own CPU time */
	};
	struct features_bpf *skel;
	struct bpf_link *link;
	char why[256];
	uint64_t t0;
	int fd;

	skel = open_only("feat_perf_event", false, NULL, why, sizeof(why));
	if (!skel) {
		set(r, FEATURE_NO, "%s", why);
		return;
	}
	fd = (int)syscall(__NR_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		set(r, FEATURE_NO, "perf_event_open(cpu-clock): %s", strerror(errno));
		features_bpf__destroy(skel);
		return;
	}
	link = bpf_program__attach_perf_event(skel->progs.feat_perf_event, fd);
	if (!link) {
		set(r, FEATURE_NO, "attaching to a cpu-clock event: %s", strerror(errno));
		close(fd);
		features_bpf__destroy(skel);
		return;
	}
	t0 = now_mono_ns();
	while (!skel->bss->hits[FHIT_PERF_EVENT] && now_mono_ns() - t0 < 200000000ull)
		; /* burn CPU: the event counts our own CPU time */
	if (skel->bss->hits[FHIT_PERF_EVENT])
		set(r, FEATURE_YES, "software cpu-clock event: attached and sampled (%llu hits)",
		    (unsigned long long)skel->bss->hits[FHIT_PERF_EVENT]);
	else
		set(r, FEATURE_PARTIAL, "cpu-clock event attached but never sampled");
	bpf_link__destroy(link);
	close(fd);
	features_bpf__destroy(skel);
}

static void probe_task_iter(struct feature_result *r)
{
	struct features_bpf *skel;
	struct bpf_link *link;
	char why[256], buf[256];
	int fd;

	skel = open_only("feat_task_iter", false, NULL, why, sizeof(why));
	if (!skel) {
		set(r, FEATURE_NO, "%s", why);
		return;
	}
	link = bpf_program__attach_iter(skel->progs.feat_task_iter, NULL);
	if (!link) {
		set(r, FEATURE_NO, "attaching iter/task: %s", strerror(errno));
		features_bpf__destroy(skel);
		return;
	}
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0) {
		set(r, FEATURE_NO, "creating the iterator: %s", strerror(errno));
	} else {
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		close(fd);
		if (skel->bss->iter_tasks)
			set(r, FEATURE_YES, "iter/task walked %llu tasks, read %llu stacks",
			    (unsigned long long)skel->bss->iter_tasks,
			    (unsigned long long)skel->bss->iter_stacks);
		else
			set(r, FEATURE_PARTIAL, "iter/task ran but saw no task");
	}
	bpf_link__destroy(link);
	features_bpf__destroy(skel);
}

static int ring_record(void *ctx, void *data, size_t len)
{
	const struct feature_record *rec = data;

	if (len >= sizeof(*rec) && rec->type == FEATURE_RECORD_HELLO &&
	    rec->magic == FEATURE_MAGIC && rec->pid == (uint32_t)getpid())
		(*(unsigned *)ctx)++;
	return 0;
}

static void probe_ringbuf(struct feature_result *r)
{
	struct ring_buffer *rb = NULL;
	struct features_bpf *skel;
	struct bpf_link *link;
	unsigned got = 0;
	char why[256];

	skel = open_only("feat_ringbuf", true, NULL, why, sizeof(why));
	if (!skel) {
		set(r, FEATURE_NO, "%s", why);
		return;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.ring), ring_record, &got, NULL);
	link = rb ? bpf_program__attach(skel->progs.feat_ringbuf) : NULL;
	if (!link) {
		set(r, FEATURE_NO, "%s: %s", rb ? "attaching the producer" : "mapping the ring",
		    strerror(errno));
	} else {
		for (int i = 0; i < 20 && !got; i++) {
			trigger_switch();
			ring_buffer__consume(rb);
		}
		if (got)
			set(r, FEATURE_YES, "BPF_MAP_TYPE_RINGBUF: %u records read back", got);
		else
			set(r, FEATURE_PARTIAL, "ring created but no record arrived");
	}
	bpf_link__destroy(link);
	ring_buffer__free(rb);
	features_bpf__destroy(skel);
}

static void probe_task_storage(struct feature_result *r)
{
	if (kcompat_task_storage())
		set(r, FEATURE_YES, "BPF_MAP_TYPE_TASK_STORAGE: a map was created");
	else
		set(r, FEATURE_NO,
		    "no BPF task storage (Linux 5.11+): taskwatch and watch.runq_hooks keep "
		    "per-task state in pid-keyed hashes instead");
}

static void probe_task_helpers(struct feature_result *r, struct btf *vmlinux)
{
	bool btf_task = kcompat_has_helper(vmlinux, "get_current_task_btf");
	bool regs = kcompat_has_helper(vmlinux, "task_pt_regs");

	if (!vmlinux)
		set(r, FEATURE_NO, "needs kernel BTF to tell");
	else if (btf_task && regs)
		set(r, FEATURE_YES, "bpf_get_current_task_btf and bpf_task_pt_regs");
	else
		set(r, btf_task ? FEATURE_PARTIAL : FEATURE_NO,
		    "%s%s%s: the programs use their fallbacks (see FALLBACK)",
		    btf_task ? "" : "no bpf_get_current_task_btf (Linux 5.11+)",
		    !btf_task && !regs ? ", " : "",
		    regs ? "" : "no bpf_task_pt_regs (Linux 5.15+)");
}

static bool tracefs_mounted(const char *path)
{
	struct statfs fs;

	return statfs(path, &fs) == 0 && fs.f_type == TRACEFS_MAGIC_;
}

static void probe_tracefs(struct feature_result *r)
{
	if (tracefs_mounted("/sys/kernel/tracing")) {
		set(r, FEATURE_YES, "mounted at /sys/kernel/tracing");
		return;
	}
	if (tracefs_mounted("/sys/kernel/debug/tracing")) {
		set(r, FEATURE_YES, "mounted at /sys/kernel/debug/tracing");
		return;
	}
	/* as the agent does when a probe needs it */
	if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) == 0)
		set(r, FEATURE_YES, "was not mounted: mounted it at /sys/kernel/tracing");
	else
		set(r, FEATURE_NO, "not mounted, and mounting it failed: %s", strerror(errno));
}

static void probe_btf(struct feature_result *r, struct btf **vmlinux)
{
	struct stat st;

	*vmlinux = btf__load_vmlinux_btf();
	if (!*vmlinux) {
		set(r, FEATURE_NO,
		    "no usable kernel BTF (/sys/kernel/btf/vmlinux): %s; CO-RE "
		    "programs cannot load",
		    strerror(errno));
		return;
	}
	stat("/sys/kernel/btf/vmlinux", &st);
	set(r, FEATURE_YES, "/sys/kernel/btf/vmlinux, %u types, %lld KiB", btf__type_cnt(*vmlinux),
	    (long long)st.st_size / 1024);
}

static void probe_bpf(struct feature_result *r)
{
	int ok = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACEPOINT, NULL);

	if (ok == 1)
		set(r, FEATURE_YES, "bpf(2) loads programs");
	else
		set(r, FEATURE_NO, "bpf(2) cannot load a trivial program: %s%s",
		    strerror(ok < 0 ? -ok : EINVAL),
		    geteuid() ? " (not root: run autotrace probes as root)" : "");
}

static void probe_psi(struct feature_result *r)
{
	static const char *const files[] = {"cpu", "memory", "io"};
	char path[64], *text = NULL, okay[64] = "";
	size_t len, off = 0;
	int err = 0;

	for (unsigned i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "/proc/pressure/%s", files[i]);
		err = read_file(path, 4096, &text, &len);
		if (!err && strncmp(text, "some avg10=", 11))
			err = -EPROTO;
		free(text);
		text = NULL;
		if (err)
			break;
		off += (size_t)snprintf(okay + off, sizeof(okay) - off, "%s%s", off ? "," : "",
					files[i]);
	}
	if (!err)
		set(r, FEATURE_YES, "/proc/pressure/{%s}", okay);
	else if (err == -ENOENT)
		set(r, FEATURE_NO, "no /proc/pressure: kernel built without CONFIG_PSI");
	else if (err == -EOPNOTSUPP)
		set(r, FEATURE_NO, "PSI disabled: boot with psi=1");
	else
		set(r, FEATURE_NO, "%s: %s", path, strerror(-err));
}

static void probe_cgroups(struct feature_result *r)
{
	struct cgroups *cg = NULL;

	if (cgroups_new(&cg, "/sys/fs/cgroup")) {
		set(r, FEATURE_NO, "no cgroup hierarchy under /sys/fs/cgroup");
		return;
	}
	set(r, cgroups_layout(cg) == CGROUP_NONE ? FEATURE_NO : FEATURE_YES,
	    "%s; cgroup ids and paths come from %s", cgroups_layout_name(cgroups_layout(cg)),
	    cgroups_id_root(cg) ? cgroups_id_root(cg) : "nowhere");
	cgroups_free(&cg);
}

static void read_setting(struct feature_result *r, const char *path, const char *meaning)
{
	char *text = NULL;
	size_t len;

	if (read_file(path, 4096, &text, &len)) {
		set(r, FEATURE_INFO, "%s unreadable", path);
		return;
	}
	text[strcspn(text, "\n")] = '\0';
	set(r, FEATURE_INFO, "%s = %s (%s)", path, text, meaning);
	free(text);
}

static void probe_caps(struct feature_result *r)
{
	char *text = NULL, *p;
	unsigned long long eff = 0;
	size_t len;

	if (read_file("/proc/self/status", 65536, &text, &len) == 0 &&
	    (p = strstr(text, "CapEff:")))
		eff = strtoull(p + 7, NULL, 16);
	free(text);
	set(r,
	    eff & (1ull << 21) || (eff & (1ull << 39) && eff & (1ull << 38)) ? FEATURE_YES
									     : FEATURE_NO,
	    "euid %u; CAP_SYS_ADMIN %s, CAP_BPF %s, CAP_PERFMON %s", (unsigned)geteuid(),
	    eff & (1ull << 21) ? "yes" : "no", eff & (1ull << 39) ? "yes" : "no",
	    eff & (1ull << 38) ? "yes" : "no");
}

void kernel_features_probe(struct feature_result *out, unsigned max, unsigned *n)
{
	enum log_level level = log_get_level();
	struct btf *vmlinux = NULL;
	unsigned i = 0;

#define NEXT(nm, w)                                                                                \
	(i < max ? (out[i] = (struct feature_result){.name = nm, .what = w}, &out[i++])            \
		 : &(struct feature_result){0})
	/* a refusal is an answer here, not a warning (libbpf would print the verifier log) */
	log_set_level(LOG_LVL_ERROR);
	probe_caps(NEXT("privileges", "root, or CAP_BPF + CAP_PERFMON, to load programs"));
	probe_bpf(NEXT("bpf", "the bpf(2) system call"));
	probe_btf(NEXT("btf", "kernel type information: CO-RE programs need it"), &vmlinux);
	probe_prog(NEXT("tp_btf", "BTF-typed tracepoints: captures' first choice"), "feat_tp_btf",
		   FHIT_TP_BTF, attach_auto_tp_btf, trigger_switch, "tp_btf/sched_switch");
	probe_prog(NEXT("raw_tp", "raw tracepoints: the fallback for tp_btf"), "feat_raw_tp",
		   FHIT_RAW_TP, attach_auto_raw_tp, trigger_switch, "raw_tp/sched_switch");
	probe_tracefs(NEXT("tracefs", "needed to attach classic tracepoints"));
	probe_prog(NEXT("tracepoints", "classic tracepoints"), "feat_tracepoint", FHIT_TRACEPOINT,
		   attach_tracepoint, trigger_getppid, "tracepoint/syscalls/sys_enter_getppid");
	probe_prog(NEXT("kprobes", "kernel function probes: optional extras only"), "feat_kprobe",
		   FHIT_KPROBE, attach_kprobe, trigger_switch, "kprobe/" SLEEP_FUNC);
	probe_fentry(NEXT("fentry", "BPF trampolines: optional extras only"), vmlinux);
	probe_perf_event(NEXT("perf_events", "cpu-clock sampling: the profile capture"));
	probe_task_iter(NEXT("task_iter", "task iterators: D-state and run-queue snapshots"));
	probe_ringbuf(NEXT("ringbuf", "BPF ring buffer: event streams from captures"));
	probe_task_storage(NEXT("task_storage", "per-task BPF state: taskwatch, runq_hooks"));
	probe_task_helpers(NEXT("task_helpers", "BTF task helpers: offcpu, iotrace, memtrace"),
			   vmlinux);
	probe_prog(NEXT("uprobes", "user function probes"), "feat_uprobe", FHIT_UPROBE,
		   attach_uprobe, trigger_uprobe, "uprobe on this binary");
	probe_psi(NEXT("psi", "pressure stall information: psi.* metrics"));
	probe_cgroups(NEXT("cgroups", "cgroup layout: per-cgroup metrics and capture filters"));
	read_setting(NEXT("bpf_jit", "JIT-compiled programs cost less"),
		     "/proc/sys/net/core/bpf_jit_enable", "1 = JIT on");
	read_setting(NEXT("kptr_restrict", "kernel symbols for stacks"),
		     "/proc/sys/kernel/kptr_restrict", "2 hides kernel addresses even from root");
	read_setting(NEXT("lockdown", "kernel lockdown"), "/sys/kernel/security/lockdown",
		     "confidentiality blocks reading kernel memory from BPF");
#undef NEXT
	log_set_level(level);
	btf__free(vmlinux);
	*n = i;
}
