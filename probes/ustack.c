// SPDX-License-Identifier: GPL-2.0-only
#include "probes/ustack.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "base/sandbox.h"
#include "base/symbolize.h"
#include "base/unwind.h"
#include "base/unwind_remote.h"
#include "base/unwproto.h"
#include "base/util.h"
#include "probes/bpfutil.h"
#include "probes/ustack_abi.h"

#define MAX_PROCS	  1024 /* processes whose mappings are kept */
#define MAX_MAPS_PER_PROC 4096
#define MAPS_REFRESH_NS	  100000000ull /* a pc in no mapping rereads them, at most this often */
#define MAX_WINDOW_PROCS  16384	       /* processes with a mode in one window (ustack_modes) */
#define PROBES		  3	       /* undecided samples compared before a process is decided */
#define SLICE_NS	  100000000ull /* the CPU budget's accounting period */
#define HASH_BUCKETS	  4096
#define PENDING_MIN	  8192

/* --- shared: the unwinder and the processes' mappings --------------------- */

struct pmaps {
	int tgid;
	struct unwind_map *m;
	unsigned n;
	uint64_t read_ns, last_use;
	struct pmaps *next;
};

struct ustack_totals {
	uint64_t samples, ok, truncated, failed, probes, cpu_ns;
	uint64_t processes_dwarf, processes_fp;
	uint64_t paused, ring_full;
};

struct ustack_shared {
	struct unwinder *u;
	struct symbolizer *sym;
	bool always;
	uint32_t stack_bytes;
	uint64_t cpu_pct;
	uint64_t max_entries; /* capture.max_stacks */
	char mode[16];
	/* the unwinder in a sandboxed helper of its own (else u, here): a stack
	 * waits for its answer, so not behind the symbolizer's reading of a binary */
	struct sandbox *sb;
	struct unwind_remote *r;
	unsigned running; /* captures running: the helper is stopped when none is */
	struct pmaps *procs;
	unsigned nprocs;
	uint64_t clock;
	const void *vdso;
	size_t vdso_len;
	struct ustack_totals tot;
};

static void vdso_find(struct ustack_shared *s)
{
	unsigned long base = getauxval(AT_SYSINFO_EHDR);
	char line[256];
	FILE *f;

	if (!base || !(f = fopen("/proc/self/maps", "re")))
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end;

		if (strstr(line, "[vdso]") && sscanf(line, "%llx-%llx", &start, &end) == 2 &&
		    start == base && end > start) {
			s->vdso = (const void *)base;
			s->vdso_len = (size_t)(end - start);
		}
	}
	fclose(f);
}

int ustack_shared_new(struct ustack_shared **out, const struct agent_config *cfg,
		      struct symbolizer *sym)
{
	struct unwinder_opts uo = {.cache_bytes = cfg->unwind.cache_size};
	struct ustack_shared *s;
	int err;

	*out = NULL;
	if (strcmp(cfg->unwind.mode, "off") == 0)
		return 0;
	if (UNWIND_NREGS == 0) {
		log_info("unwind: DWARF unwinding is not supported on this architecture");
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	/* tenants' CFI is parsed in a sandboxed helper (base/sandbox.h), as their
	 * symbols are; in process only when the symbolizer parses in process */
	if (sym && symbolizer_sandbox(sym)) {
		struct sandbox_opts so = {.user = cfg->symbolizer.helper_user,
					  .timeout_ms = cfg->symbolizer.helper_timeout_ms,
					  .mem_bytes = cfg->unwind.cache_size * 2 + (128ull << 20)};

		err = sandbox_new(&s->sb, &so);
		if (!err)
			/* a batch's round trips together hold the loop no longer
			 * than one request may take */
			err = unwind_remote_new(&s->r, s->sb, &uo,
						cfg->symbolizer.helper_timeout_ms,
						cfg->symbolizer.helper_timeout_ms);
	} else {
		err = unwinder_new(&s->u, &uo);
	}
	if (err)
		sandbox_free(&s->sb);
	if (err) {
		free(s);
		return err;
	}
	s->sym = sym;
	s->always = strcmp(cfg->unwind.mode, "always") == 0;
	snprintf(s->mode, sizeof(s->mode), "%s", cfg->unwind.mode);
	s->stack_bytes = (uint32_t)MIN(cfg->unwind.stack_size, USTACK_MAX_BYTES);
	s->cpu_pct = cfg->unwind.cpu_pct;
	s->max_entries = cfg->capture.max_stacks;
	vdso_find(s);
	*out = s;
	return 0;
}

static void pmaps_free(struct pmaps *p)
{
	free(p->m);
	free(p);
}

void ustack_shared_free(struct ustack_shared **ps)
{
	struct ustack_shared *s = ps ? *ps : NULL;

	if (!s)
		return;
	while (s->procs) {
		struct pmaps *p = s->procs;

		s->procs = p->next;
		pmaps_free(p);
	}
	unwinder_free(&s->u);
	unwind_remote_free(&s->r);
	sandbox_free(&s->sb);
	free(s);
	*ps = NULL;
}

json_t *ustack_shared_status(const struct ustack_shared *s)
{
	struct unwinder_stats us;
	json_t *o;

	if (!s)
		return json_pack("{s:s}", "mode", "off");
	if (s->r)
		unwind_remote_get_stats(s->r, &us);
	else
		unwinder_get_stats(s->u, &us);
	o = json_pack(
		"{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "mode",
		s->mode, "stack_size", (json_int_t)s->stack_bytes, "cpu_pct",
		(json_int_t)s->cpu_pct, "samples", (json_int_t)s->tot.samples, "unwind_complete",
		(json_int_t)s->tot.ok, "unwind_truncated", (json_int_t)s->tot.truncated,
		"unwind_failed", (json_int_t)s->tot.failed, "probes", (json_int_t)s->tot.probes,
		"processes_dwarf", (json_int_t)s->tot.processes_dwarf, "processes_fp",
		(json_int_t)s->tot.processes_fp, "paused_samples", (json_int_t)s->tot.paused,
		"ring_full", (json_int_t)s->tot.ring_full, "cpu_ms",
		(json_int_t)(s->tot.cpu_ns / 1000000), "files_cached", (json_int_t)us.files_cached,
		"cache_bytes", (json_int_t)us.cache_bytes, "files_refused",
		(json_int_t)us.files_refused, "evictions", (json_int_t)us.evictions);
	if (o && s->r)
		json_object_set_new(o, "waits_cut_short",
				    json_integer((json_int_t)unwind_remote_cut_short(s->r)));
	if (o && s->sb)
		json_object_set_new(o, "helper", sandbox_stats_json(s->sb));
	return o;
}

static uint64_t pow2_at_least(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* What ustack.bpf.h needs: the ring buffer, and the task's user registers,
 * from bpf_task_pt_regs (5.15, with bpf_get_current_task_btf) or, before it,
 * on x86-64, from their place at the top of the task's kernel stack
 * (current_user_regs() in core_fixes.bpf.h). */
static bool kernel_can(void)
{
	static int can = -1;

	if (can < 0) {
#if defined(__x86_64__)
		bool regs = true;
#else
		bool regs = libbpf_probe_bpf_helper(BPF_PROG_TYPE_PERF_EVENT, BPF_FUNC_task_pt_regs,
						    NULL) > 0 &&
			    libbpf_probe_bpf_helper(BPF_PROG_TYPE_PERF_EVENT,
						    BPF_FUNC_get_current_task_btf, NULL) > 0;
#endif

		can = regs && libbpf_probe_bpf_helper(BPF_PROG_TYPE_PERF_EVENT,
						      BPF_FUNC_ringbuf_output, NULL) > 0;
		if (!can)
			log_info("unwind: this kernel lacks the BPF ring buffer (5.8) or "
				 "bpf_task_pt_regs (5.15): user stacks are walked by frame pointer "
				 "only");
	}
	return can > 0;
}

int ustack_size_maps(const struct ustack_shared *s, struct bpf_map *rb, struct bpf_map *scratch,
		     bool *enabled, bool *always, uint32_t *stack_bytes, uint32_t *cpu_stride)
{
	int ncpus = libbpf_num_possible_cpus();
	uint64_t record, ring;
	int err;

	*enabled = *always = false;
	*stack_bytes = 0;
	/* block ids (ustack_next_seq()) leave each CPU its own pending slots */
	*cpu_stride = (uint32_t)pow2_at_least((uint64_t)MAX(ncpus, 1));
	if (!s || ncpus <= 0 || !kernel_can()) {
		/* the smallest a ring buffer may be: one page */
		err = bpf_map__set_max_entries(rb, (uint32_t)sysconf(_SC_PAGESIZE));
		return err;
	}
	record = sizeof(struct ustack_hdr) + s->stack_bytes;
	/* about 8 records per CPU in flight, between 1 and 8 MiB: it is kernel
	 * memory held while the agent runs, and the agent drains it as it fills */
	ring = pow2_at_least(MIN(MAX((uint64_t)ncpus * 8 * record, 1ull << 20), 8ull << 20));
	err = bpf_map__set_max_entries(rb, (uint32_t)ring);
	if (!err)
		err = bpf_map__set_max_entries(scratch, (uint32_t)ncpus);
	/* a page of slack: the verifier's bound for the page-by-page copy */
	if (!err)
		err = bpf_map__set_value_size(scratch, (uint32_t)(record + USTACK_PAGE));
	if (err)
		return err;
	*enabled = true;
	*always = s->always;
	*stack_bytes = s->stack_bytes;
	return 0;
}

/* /proc/PID/maps: executable mappings; anonymous code (JIT) with dev = ino = 0,
 * the vDSO with its own key. */
static int maps_read(int tgid, struct unwind_map **out, unsigned *nout)
{
	char path[64], line[1024];
	struct unwind_map *m = NULL;
	unsigned n = 0, cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", tgid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f) && n < MAX_MAPS_PER_PROC) {
		unsigned long long start, end, pgoff, ino;
		unsigned maj, min;
		char perms[8], file[64] = "";
		size_t len = strlen(line);

		if (len && line[len - 1] != '\n') { /* a longer line: skip its rest */
			int c;

			while ((c = fgetc(f)) != EOF && c != '\n')
				;
		}
		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %63s", &start, &end, perms, &pgoff,
			   &maj, &min, &ino, file) < 7 ||
		    perms[2] != 'x' || end <= start)
			continue;
		if (strcmp(file, "[vsyscall]") == 0)
			continue;
		if (n == cap) {
			unsigned ncap = cap ? cap * 2 : 32;
			struct unwind_map *nm = realloc(m, ncap * sizeof(*nm));

			if (!nm)
				break;
			m = nm;
			cap = ncap;
		}
		m[n] = (struct unwind_map){start, end, pgoff, makedev(maj, min), ino};
		if (strcmp(file, "[vdso]") == 0)
			m[n].dev = m[n].ino = UNWIND_VDSO_DEV;
		else if (file[0] != '/')
			m[n].dev = m[n].ino = 0;
		n++;
	}
	fclose(f);
	*out = m;
	*nout = n;
	return 0;
}

static struct pmaps *pmaps_get(struct ustack_shared *s, int tgid, bool refresh)
{
	struct pmaps *p, **pp;

	for (pp = &s->procs; *pp; pp = &(*pp)->next)
		if ((*pp)->tgid == tgid)
			break;
	p = *pp;
	if (p && (!refresh || now_mono_ns() - p->read_ns < MAPS_REFRESH_NS)) {
		p->last_use = ++s->clock;
		return p;
	}
	if (!p) {
		if (s->nprocs >= MAX_PROCS) {
			struct pmaps **victim = &s->procs;

			for (pp = &s->procs; *pp; pp = &(*pp)->next)
				if ((*pp)->last_use < (*victim)->last_use)
					victim = pp;
			p = *victim;
			*victim = p->next;
			pmaps_free(p);
			s->nprocs--;
		}
		p = calloc(1, sizeof(*p));
		if (!p)
			return NULL;
		p->tgid = tgid;
		p->next = s->procs;
		s->procs = p;
		s->nprocs++;
	}
	free(p->m);
	p->m = NULL;
	p->n = 0;
	maps_read(tgid, &p->m, &p->n);
	p->read_ns = now_mono_ns();
	p->last_use = ++s->clock;
	return p;
}

/* The exact file mapped there, even deleted or in another mount namespace. */
static int open_mapped(int tgid, const struct unwind_map *m)
{
	char path[96];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, tgid, m->start,
		 m->end);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * One stack: the registers and stack copy of h, the process's mappings, files
 * opened here when the unwinder asks for them. Everything the unwinder reads
 * is in its arguments: this call can run in another process.
 */
static int ustack_unwind_one(struct ustack_shared *s, const struct ustack_hdr *h,
			     const uint8_t *stack, uint64_t *pcs, unsigned max,
			     struct unwind_result *res)
{
	struct pmaps *p = pmaps_get(s, (int)h->tgid, false);
	struct unwind_input in = {0};
	bool refreshed = false;
	int err = 0;

	if (!p)
		return -ENOMEM;
	memcpy(in.regs, h->regs,
	       sizeof(in.regs) < sizeof(h->regs) ? sizeof(in.regs) : sizeof(h->regs));
	in.regs_valid = h->regs_valid;
	in.pc = h->pc;
	in.stack = stack;
	in.stack_len = h->stack_len;
	in.stack_addr = h->regs[UNWIND_REG_SP];
	for (unsigned tries = 0; tries < p->n + 2; tries++) {
		in.maps = p->m;
		in.nmaps = p->n;
		if (s->r)
			err = unwind_remote_unwind(s->r, (int)h->tgid, p->read_ns, &in, pcs, max,
						   res);
		else
			err = unwinder_unwind(s->u, &in, pcs, max, res);
		if (err)
			return err;
		if (res->status == UNWIND_NEED_FILE) {
			const struct unwind_map *m = &p->m[res->need_map];

			if (m->dev == UNWIND_VDSO_DEV && m->ino == UNWIND_VDSO_INO) {
				if (s->r)
					unwind_remote_add_image(s->r, m, s->vdso, s->vdso_len);
				else
					unwinder_add_image(s->u, m, s->vdso, s->vdso_len);
			} else {
				int fd = open_mapped((int)h->tgid, m);

				if (s->r)
					unwind_remote_add_file(s->r, m, fd);
				else
					unwinder_add_file(s->u, m, fd);
				if (fd >= 0)
					close(fd);
			}
			continue;
		}
		/* a library loaded since the mappings were read */
		if (res->status == UNWIND_NO_MAP && !refreshed) {
			refreshed = true;
			p = pmaps_get(s, (int)h->tgid, true);
			if (!p)
				return -ENOMEM;
			continue;
		}
		return 0;
	}
	res->status = UNWIND_BAD_CFI;
	return 0;
}

/* --- one capture --------------------------------------------------------- */

/* an interned user stack */
struct ustk {
	uint64_t hash;
	unsigned n;
	uint64_t *frames;
	struct ustk *next;
};

struct uagg {
	uint32_t tgid, pid;
	uint64_t cgroup_id;
	char comm[USTACK_COMM_LEN];
	int32_t kern_stack_id;
	uint32_t state;
	const struct ustk *stk;
	uint64_t value, count, max;
	struct uagg *next;
};

struct uproc {
	uint32_t tgid;
	uint8_t mode, votes_dwarf, votes_fp;
	struct uproc *next;
};

struct upend {
	uint64_t seq;
	const struct ustk *stk;
};

struct window {
	uint64_t samples, ok, truncated, failed, probes, cpu_ns, fp_frames;
	uint64_t processes_dwarf, processes_fp;
	uint64_t keys_full, stacks_full, procs_full, gone;
};

struct ustack_capture {
	struct ustack_shared *s;
	char kind[16];
	struct ustack_capture_maps maps;
	struct ring_buffer *rb;
	int epfd, timer_fd;
	bool running;
	struct ustk *stacks[HASH_BUCKETS];
	struct uagg *aggs[HASH_BUCKETS];
	struct uproc *procs[HASH_BUCKETS];
	size_t nstacks, naggs, nprocs;
	struct upend *pending;
	size_t npending;
	struct window w;
	uint64_t slice_start, spent;
	/* with the unwinder in the helper: records held until a batch of their
	 * stacks is unwound in one round trip, then handled in their order */
	void *batch[UNWR_BATCH_MAX];
	unsigned nbatch;
};

static uint64_t hash64(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

static const struct ustk *intern(struct ustack_capture *c, const uint64_t *frames, unsigned n)
{
	uint64_t h = n;
	struct ustk *k;

	for (unsigned i = 0; i < n; i++)
		h = hash64(h, frames[i]);
	for (k = c->stacks[h % HASH_BUCKETS]; k; k = k->next)
		if (k->hash == h && k->n == n && !memcmp(k->frames, frames, n * sizeof(*frames)))
			return k;
	if (c->nstacks >= c->s->max_entries) {
		c->w.stacks_full++;
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (!k || !(k->frames = malloc((n ? n : 1) * sizeof(*frames)))) {
		free(k);
		return NULL;
	}
	memcpy(k->frames, frames, n * sizeof(*frames));
	k->n = n;
	k->hash = h;
	k->next = c->stacks[h % HASH_BUCKETS];
	c->stacks[h % HASH_BUCKETS] = k;
	c->nstacks++;
	return k;
}

static void aggregate(struct ustack_capture *c, const struct ustack_hdr *h, const struct ustk *stk)
{
	uint64_t hv = hash64(hash64(hash64(h->tgid, h->pid), (uint64_t)(uint32_t)h->kern_stack_id),
			     hash64(h->state, (uint64_t)(uintptr_t)stk));
	struct uagg *a;

	for (a = c->aggs[hv % HASH_BUCKETS]; a; a = a->next)
		if (a->tgid == h->tgid && a->pid == h->pid &&
		    a->kern_stack_id == h->kern_stack_id && a->state == h->state && a->stk == stk &&
		    a->cgroup_id == h->cgroup_id && !memcmp(a->comm, h->comm, sizeof(a->comm)))
			break;
	if (!a) {
		if (c->naggs >= c->s->max_entries || !(a = calloc(1, sizeof(*a)))) {
			c->w.keys_full++;
			return;
		}
		a->tgid = h->tgid;
		a->pid = h->pid;
		a->cgroup_id = h->cgroup_id;
		memcpy(a->comm, h->comm, sizeof(a->comm));
		a->comm[sizeof(a->comm) - 1] = '\0';
		a->kern_stack_id = h->kern_stack_id;
		a->state = h->state;
		a->stk = stk;
		a->next = c->aggs[hv % HASH_BUCKETS];
		c->aggs[hv % HASH_BUCKETS] = a;
		c->naggs++;
	}
	a->value += h->value;
	a->count++;
	a->max = MAX(a->max, h->value);
}

static struct uproc *proc_get(struct ustack_capture *c, uint32_t tgid)
{
	struct uproc *p;

	for (p = c->procs[tgid % HASH_BUCKETS]; p; p = p->next)
		if (p->tgid == tgid)
			return p;
	if (c->nprocs >= MAX_WINDOW_PROCS || !(p = calloc(1, sizeof(*p))))
		return NULL;
	p->tgid = tgid;
	p->next = c->procs[tgid % HASH_BUCKETS];
	c->procs[tgid % HASH_BUCKETS] = p;
	c->nprocs++;
	/* its symbols are read while it is alive */
	if (c->s->sym)
		symbolizer_track(c->s->sym, (int)tgid);
	return p;
}

static void decide(struct ustack_capture *c, uint32_t tgid, uint32_t mode)
{
	if (c->maps.modes)
		bpf_map__update_elem(c->maps.modes, &tgid, sizeof(tgid), &mode, sizeof(mode), 0);
	if (mode == USTACK_DWARF)
		c->w.processes_dwarf++;
	else
		c->w.processes_fp++;
}

/* Budget: CPU spent unwinding per SLICE_NS; past it BPF walks by frame pointer. */
static void budget_check(struct ustack_capture *c, uint64_t now)
{
	uint64_t budget = c->s->cpu_pct * SLICE_NS / 100;

	if (now - c->slice_start >= SLICE_NS) {
		uint64_t slices = (now - c->slice_start) / SLICE_NS;

		/* time over the budget is a debt the next slices pay off, so a long
		 * wait for the helper pauses unwinding for as long as it outspent */
		c->slice_start += slices * SLICE_NS;
		c->spent = c->spent > slices * budget ? c->spent - slices * budget : 0;
	}
	if (c->maps.paused)
		*c->maps.paused = c->spent >= budget;
}

/* The user stack of record h from its unwinding (pcs, res, err): or for a
 * probe the deeper of the unwound and the frame-pointer one; votes toward
 * the process's mode. */
static const struct ustk *user_stack_of(struct ustack_capture *c, const struct ustack_hdr *h,
					const uint64_t *pcs, struct unwind_result res, int err)
{
	uint64_t fp[USTACK_MAX_FRAMES];
	unsigned nfp = 0;
	bool probe = h->flags & USTACK_F_PROBE;

	c->w.samples++;
	if (err) {
		res.n = 0;
		res.status = UNWIND_BAD_CFI;
	}
	c->w.fp_frames += res.fp_frames;
	if (res.status == UNWIND_OK)
		c->w.ok++;
	else if (res.status == UNWIND_TRUNCATED)
		c->w.truncated++;
	else
		c->w.failed++;
	if (!probe)
		return intern(c, pcs, res.n);

	c->w.probes++;
	if (c->maps.user_stacks)
		stack_map_read(c->maps.user_stacks, h->user_stack_id, fp, USTACK_MAX_FRAMES, &nfp);
	{
		bool dwarf_better =
			(res.status == UNWIND_OK || res.status == UNWIND_TRUNCATED) && res.n > nfp;
		struct uproc *p = proc_get(c, h->tgid);

		if (!p) {
			decide(c, h->tgid, USTACK_FP);
		} else if (!p->mode) {
			if (dwarf_better)
				p->votes_dwarf++;
			else
				p->votes_fp++;
			if (p->votes_dwarf + p->votes_fp >= PROBES) {
				p->mode = p->votes_dwarf > p->votes_fp ? USTACK_DWARF : USTACK_FP;
				decide(c, h->tgid, p->mode);
			}
		}
		return dwarf_better ? intern(c, pcs, res.n) : intern(c, fp, nfp);
	}
}

/* The user stack of record h, unwound here and now. */
static const struct ustk *user_stack(struct ustack_capture *c, const struct ustack_hdr *h,
				     const uint8_t *stack)
{
	uint64_t pcs[USTACK_MAX_FRAMES];
	struct unwind_result res = {0};
	uint64_t t0 = now_mono_ns(), t1;
	int err;

	err = ustack_unwind_one(c->s, h, stack, pcs, USTACK_MAX_FRAMES, &res);
	t1 = now_mono_ns();
	c->spent += t1 - t0;
	c->w.cpu_ns += t1 - t0;
	return user_stack_of(c, h, pcs, res, err);
}

static int helper_open(void *ctx, int tgid, const struct unwind_map *m)
{
	(void)ctx;
	return open_mapped(tgid, m);
}

static void handle(struct ustack_capture *c, const struct ustack_hdr *h, const struct ustk *stk);

/* The held records: their stacks unwound by the helper in one round trip,
 * then each handled in order, as on_record would have. */
static void batch_flush(struct ustack_capture *c)
{
	struct unwind_remote_item *items;
	uint64_t *pcs;
	unsigned n = c->nbatch, nitems = 0, idx[UNWR_BATCH_MAX];
	uint64_t t0 = now_mono_ns(), t1;
	struct unwind_remote_files files = {
		.open = helper_open, .vdso = c->s->vdso, .vdso_len = c->s->vdso_len};

	if (!n)
		return;
	c->nbatch = 0;
	items = calloc(n, sizeof(*items));
	pcs = calloc((size_t)n * USTACK_MAX_FRAMES, sizeof(*pcs));
	for (unsigned i = 0; items && pcs && i < n; i++) {
		const struct ustack_hdr *h = c->batch[i];
		struct pmaps *p;

		if (h->type == USTACK_REC_BLOCK_END)
			continue;
		p = pmaps_get(c->s, (int)h->tgid, false);
		idx[nitems] = i;
		items[nitems] =
			(struct unwind_remote_item){.tgid = (int)h->tgid,
						    .gen = p ? p->read_ns : 0,
						    .pcs = pcs + (size_t)nitems * USTACK_MAX_FRAMES,
						    .max = USTACK_MAX_FRAMES,
						    .err = p ? 0 : -ENOMEM};
		memcpy(items[nitems].in.regs, h->regs,
		       MIN(sizeof(items[nitems].in.regs), sizeof(h->regs)));
		items[nitems].in.regs_valid = h->regs_valid;
		items[nitems].in.pc = h->pc;
		items[nitems].in.stack = (const uint8_t *)(h + 1);
		items[nitems].in.stack_len = h->stack_len;
		items[nitems].in.stack_addr = h->regs[UNWIND_REG_SP];
		items[nitems].in.maps = p ? p->m : NULL;
		items[nitems].in.nmaps = p ? p->n : 0;
		nitems++;
	}
	if (items && pcs && nitems) {
		unsigned again = 0;

		unwind_remote_batch(c->s->r, items, nitems, &files);
		/* a library loaded since the mappings were read: read them again */
		for (unsigned i = 0; i < nitems; i++) {
			struct pmaps *p;

			if (items[i].err || items[i].res.status != UNWIND_NO_MAP)
				continue;
			p = pmaps_get(c->s, items[i].tgid, true);
			if (!p)
				continue;
			items[i].gen = p->read_ns;
			items[i].in.maps = p->m;
			items[i].in.nmaps = p->n;
			if (again != i) {
				struct unwind_remote_item t = items[again];

				items[again] = items[i];
				items[i] = t;
				unsigned x = idx[again];

				idx[again] = idx[i];
				idx[i] = x;
			}
			again++;
		}
		if (again)
			unwind_remote_batch(c->s->r, items, again, &files);
	}
	t1 = now_mono_ns();
	c->spent += t1 - t0;
	c->w.cpu_ns += t1 - t0;
	for (unsigned i = 0; i < n; i++) {
		const struct ustack_hdr *h = c->batch[i];
		const struct ustk *stk = NULL;

		if (h->type != USTACK_REC_BLOCK_END) {
			unsigned j = 0;

			while (j < nitems && idx[j] != i)
				j++;
			if (j < nitems)
				stk = user_stack_of(c, h, items[j].pcs, items[j].res, items[j].err);
			else
				stk = user_stack_of(c, h, pcs, (struct unwind_result){0}, -ENOMEM);
		}
		handle(c, h, stk);
		free(c->batch[i]);
	}
	free(items);
	free(pcs);
}

/* One record, its user stack known (stk; unused for BLOCK_END). */
static void handle(struct ustack_capture *c, const struct ustack_hdr *h, const struct ustk *stk)
{
	switch (h->type) {
	case USTACK_REC_SAMPLE:
		aggregate(c, h, stk);
		break;
	case USTACK_REC_BLOCK:
		c->pending[h->seq % c->npending] = (struct upend){h->seq, stk};
		break;
	case USTACK_REC_BLOCK_END: {
		const struct upend *p = &c->pending[h->seq % c->npending];

		if (p->seq != h->seq) {
			/* its stack record was overwritten or lost: kernel stack only */
			c->w.gone++;
			aggregate(c, h, NULL);
		} else {
			aggregate(c, h, p->stk);
		}
		break;
	}
	default:
		break;
	}
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct ustack_capture *c = ctx;
	const struct ustack_hdr *h = data;
	const uint8_t *stack = (const uint8_t *)data + sizeof(*h);

	if (size < sizeof(*h) || h->stack_len > size - sizeof(*h))
		return 0;
	budget_check(c, now_mono_ns());
	/* every process met is tracked, so its frames resolve even if it exits */
	if (h->type != USTACK_REC_BLOCK_END && !proc_get(c, h->tgid))
		c->w.procs_full++;
	if (c->s->r) {
		/* held, in order, until its batch is unwound */
		void *copy = malloc(sizeof(*h) + h->stack_len);

		if (!copy)
			return 0;
		memcpy(copy, data, sizeof(*h) + h->stack_len);
		c->batch[c->nbatch++] = copy;
		if (c->nbatch == UNWR_BATCH_MAX)
			batch_flush(c);
		return 0;
	}
	handle(c, h, h->type == USTACK_REC_BLOCK_END ? NULL : user_stack(c, h, stack));
	return 0;
}

int ustack_capture_new(struct ustack_capture **out, struct ustack_shared *s, const char *kind,
		       const struct ustack_capture_maps *maps)
{
	struct ustack_capture *c;
	struct epoll_event ev = {.events = EPOLLIN};
	int ncpus = libbpf_num_possible_cpus();
	int err;

	*out = NULL;
	if (!s)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->s = s;
	snprintf(c->kind, sizeof(c->kind), "%s", kind);
	c->maps = *maps;
	c->epfd = c->timer_fd = -1;
	/* a power of two, a multiple of the block ids' CPU stride (ustack_next_seq()
	 * in ustack.bpf.h): 512 slots or more for each CPU's blocks */
	c->npending = pow2_at_least(MAX(PENDING_MIN, (uint64_t)MAX(ncpus, 1) * 512));
	c->pending = calloc(c->npending, sizeof(*c->pending));
	/* the ring is mapped for a window only (ring_map): mapped, its pages
	 * count in the agent's resident memory twice over */
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!c->pending || c->epfd < 0 || c->timer_fd < 0) {
		err = errno ? -errno : -ENOMEM;
		goto fail;
	}
	ev.data.fd = c->timer_fd;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->timer_fd, &ev))
		goto fail_errno;
	*out = c;
	return 0;
fail_errno:
	err = -errno;
fail:
	ustack_capture_free(&c);
	return err;
}

static void window_clear(struct ustack_capture *c)
{
	for (unsigned b = 0; b < HASH_BUCKETS; b++) {
		while (c->stacks[b]) {
			struct ustk *k = c->stacks[b];

			c->stacks[b] = k->next;
			free(k->frames);
			free(k);
		}
		while (c->aggs[b]) {
			struct uagg *a = c->aggs[b];

			c->aggs[b] = a->next;
			free(a);
		}
		while (c->procs[b]) {
			struct uproc *p = c->procs[b];

			c->procs[b] = p->next;
			free(p);
		}
	}
	c->nstacks = c->naggs = c->nprocs = 0;
	if (c->pending)
		memset(c->pending, 0, c->npending * sizeof(*c->pending));
	memset(&c->w, 0, sizeof(c->w));
}

void ustack_capture_free(struct ustack_capture **pc)
{
	struct ustack_capture *c = pc ? *pc : NULL;

	if (!c)
		return;
	for (unsigned i = 0; i < c->nbatch; i++)
		free(c->batch[i]);
	window_clear(c);
	ring_buffer__free(c->rb);
	if (c->epfd >= 0)
		close(c->epfd);
	if (c->timer_fd >= 0)
		close(c->timer_fd);
	free(c->pending);
	free(c);
	*pc = NULL;
}

/* The ring buffer mapped for one window: mapped between windows, its pages
 * would count in the agent's resident memory twice over all the time. */
static int ring_map(struct ustack_capture *c)
{
	struct epoll_event ev = {.events = EPOLLIN};

	if (c->rb)
		return 0;
	c->rb = ring_buffer__new(bpf_map__fd(c->maps.rb), on_record, c, NULL);
	if (!c->rb)
		return -errno;
	ev.data.fd = ring_buffer__epoll_fd(c->rb);
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev)) {
		int err = -errno;

		ring_buffer__free(c->rb);
		c->rb = NULL;
		return err;
	}
	return 0;
}

static void ring_unmap(struct ustack_capture *c)
{
	if (!c->rb)
		return;
	epoll_ctl(c->epfd, EPOLL_CTL_DEL, ring_buffer__epoll_fd(c->rb), NULL);
	ring_buffer__free(c->rb);
	c->rb = NULL;
}

static void ring_consume(struct ustack_capture *c)
{
	if (c->rb)
		ring_buffer__consume(c->rb);
}

int ustack_capture_start(struct ustack_capture *c)
{
	struct itimerspec its = {.it_interval = {0, SLICE_NS}, .it_value = {0, SLICE_NS}};
	int err;

	if (!c)
		return 0;
	err = ring_map(c);
	if (err)
		return err;
	/* the helper is started here, not inside a batch's bounded wait */
	if (c->s->sb)
		sandbox_start(c->s->sb, 0);
	/* what the previous window left in the ring belongs to it */
	ring_buffer__consume(c->rb);
	batch_flush(c);
	window_clear(c);
	map_clear(c->maps.modes);
	percpu_counters_zero(c->maps.stats, USTACK_STAT_MAX);
	c->slice_start = now_mono_ns();
	c->spent = 0;
	if (c->maps.paused)
		*c->maps.paused = 0;
	if (!c->running)
		c->s->running++;
	c->running = true;
	return timerfd_settime(c->timer_fd, 0, &its, NULL) ? -errno : 0;
}

void ustack_capture_stop(struct ustack_capture *c)
{
	struct itimerspec off = {0};

	if (!c || !c->running)
		return;
	c->running = false;
	timerfd_settime(c->timer_fd, 0, &off, NULL);
	/* the programs are detached: this is the window's last record */
	ring_consume(c);
	ring_unmap(c);
	batch_flush(c);
	/* no capture left: the helper and its CFI cache go until the next one */
	if (c->s->running && --c->s->running == 0 && c->s->sb)
		sandbox_stop(c->s->sb);
}

int ustack_capture_fd(const struct ustack_capture *c)
{
	return c ? c->epfd : -1;
}

int ustack_capture_watch_fd(struct ustack_capture *c, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

	return epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

void ustack_capture_poll(struct ustack_capture *c)
{
	uint64_t ticks;

	if (!c)
		return;
	while (read(c->timer_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
		;
	budget_check(c, now_mono_ns());
	ring_consume(c);
	batch_flush(c);
}

int ustack_capture_foreach(struct ustack_capture *c,
			   int (*fn)(void *ctx, const struct ustack_row *r), void *ctx)
{
	if (!c)
		return 0;
	batch_flush(c);
	for (unsigned b = 0; b < HASH_BUCKETS; b++) {
		for (const struct uagg *a = c->aggs[b]; a; a = a->next) {
			struct ustack_row r = {
				.tgid = a->tgid,
				.pid = a->pid,
				.cgroup_id = a->cgroup_id,
				.comm = a->comm,
				.kern_stack_id = a->kern_stack_id,
				.state = a->state,
				.value = a->value,
				.count = a->count,
				.max = a->max,
				.frames = a->stk ? a->stk->frames : NULL,
				.nframes = a->stk ? a->stk->n : 0,
			};
			int err = fn(ctx, &r);

			if (err)
				return err;
		}
	}
	return 0;
}

bool ustack_capture_block(struct ustack_capture *c, uint64_t seq, const uint64_t **frames,
			  unsigned *n)
{
	const struct upend *p;

	if (!c || !seq)
		return false;
	batch_flush(c);
	p = &c->pending[seq % c->npending];
	if (p->seq != seq || !p->stk)
		return false;
	*frames = p->stk->frames;
	*n = p->stk->n;
	return true;
}

uint64_t ustack_capture_report(struct ustack_capture *c, json_t *data)
{
	uint64_t st[USTACK_STAT_MAX] = {0}, lost;
	struct ustack_totals *t;

	if (!c) {
		json_object_set_new(data, "unwind", json_pack("{s:s}", "mode", "off"));
		return 0;
	}
	percpu_counters_read(c->maps.stats, st, USTACK_STAT_MAX);
	lost = c->w.keys_full + c->w.stacks_full;
	json_object_set_new(data, "unwind_failed", json_integer((json_int_t)c->w.failed));
	json_object_set_new(data, "unwind_truncated", json_integer((json_int_t)c->w.truncated));
	json_object_set_new(
		data, "unwind",
		json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
			  "mode", c->s->mode, "stack_size", (json_int_t)c->s->stack_bytes,
			  "samples", (json_int_t)c->w.samples, "complete", (json_int_t)c->w.ok,
			  "probes", (json_int_t)c->w.probes, "processes_dwarf",
			  (json_int_t)c->w.processes_dwarf, "processes_fp",
			  (json_int_t)c->w.processes_fp, "fp_fallback_frames",
			  (json_int_t)c->w.fp_frames, "paused_samples",
			  (json_int_t)st[USTACK_STAT_PAUSED], "ring_full",
			  (json_int_t)st[USTACK_STAT_RING_FULL], "short_copies",
			  (json_int_t)st[USTACK_STAT_SHORT_COPY], "unreadable_stacks",
			  (json_int_t)st[USTACK_STAT_NO_STACK], "cpu_ms",
			  (json_int_t)(c->w.cpu_ns / 1000000), "keys_full",
			  (json_int_t)c->w.keys_full, "stacks_full", (json_int_t)c->w.stacks_full,
			  "stacks_gone", (json_int_t)c->w.gone, "processes_full",
			  (json_int_t)c->w.procs_full));
	t = &c->s->tot;
	t->samples += c->w.samples;
	t->ok += c->w.ok;
	t->truncated += c->w.truncated;
	t->failed += c->w.failed;
	t->probes += c->w.probes;
	t->cpu_ns += c->w.cpu_ns;
	t->processes_dwarf += c->w.processes_dwarf;
	t->processes_fp += c->w.processes_fp;
	t->paused += st[USTACK_STAT_PAUSED];
	t->ring_full += st[USTACK_STAT_RING_FULL];
	return lost;
}
