// SPDX-License-Identifier: GPL-2.0-only
/*
 * The cgroup pass: one iterator run per cgroup hierarchy per interval (Linux
 * 6.1+), instead of several cgroupfs reads per cgroup. For every cgroup it
 * visits it stamps the cgroups user space knows (seen: still there, still
 * populated), writes a record for each populated one it does not know yet
 * (how user space finds new containers, within a pass or two), and copies the
 * counters of the watched ones straight from the kernel's structures into an
 * array user space maps: CPU time, throttling, memory, OOM kills, pressure and,
 * when asked, the effective limits. Nothing is hooked: the pass runs only when
 * user space reads the iterator.
 *
 * Two builds of the same code: on 6.2+ the controllers' structures are read
 * with plain loads through read-only casts; on 6.1 with probe reads, which
 * cost a helper call each.
 */
#include "core_fixes.bpf.h"
#include "cgpass.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 nr_cpus = 1; /* possible CPUs, at most CGP_MAX_CPUS */

struct cgp_globals g;
__u64 pcpu_off[CGP_MAX_CPUS]; /* where each CPU's per-CPU area is */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* set at load */
	__type(key, struct cgp_key);
	__type(value, struct cgp_known);
} known SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 16384); /* as known */
	__type(key, __u32);
	__type(value, struct cgp_seen);
} seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 256); /* watch.max_cgroups, set at load */
	__type(key, __u32);
	__type(value, struct cgp_acc);
} acc SEC(".maps");

/* Where each CPU's per-CPU area is, without kernel symbols (kallsyms may list
 * no data): the address of this map's value on CPU c, minus the per-CPU
 * pointer the map keeps for it, is CPU c's offset. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pcpu_probe SEC(".maps");

extern void cgroup_rstat_flush(struct cgroup *cgrp) __ksym __weak;
extern void css_rstat_flush(struct cgroup_subsys_state *css) __ksym __weak;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* PSI embedded in struct cgroup (before 6.1 it was; CO-RE tells). */
struct cgroup___psi_embedded {
	struct psi_group psi;
};

/* Field f of a `type` at address p: a plain load through a read-only cast
 * (cast), or a probe read. cast is a constant at every call site, so each
 * program keeps one of the two. */
#define AS(type, p)	      ((type *)bpf_rdonly_cast((const void *)(p), bpf_core_type_id_kernel(type)))
#define GET(cast, type, p, f) ((cast) ? AS(type, p)->f : BPF_CORE_READ((type *)(p), f))

#define SS_CPU	   0
#define SS_CPUACCT 1
#define SS_MEMORY  2
#define SS_CPUSET  3

static __always_inline int ss_id(int which)
{
	switch (which) {
	case SS_CPU:
		return bpf_core_enum_value_exists(enum cgroup_subsys_id, cpu_cgrp_id)
			       ? bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id)
			       : -1;
	case SS_CPUACCT:
		return bpf_core_enum_value_exists(enum cgroup_subsys_id, cpuacct_cgrp_id)
			       ? bpf_core_enum_value(enum cgroup_subsys_id, cpuacct_cgrp_id)
			       : -1;
	case SS_MEMORY:
		return bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id)
			       ? bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id)
			       : -1;
	default:
		return bpf_core_enum_value_exists(enum cgroup_subsys_id, cpuset_cgrp_id)
			       ? bpf_core_enum_value(enum cgroup_subsys_id, cpuset_cgrp_id)
			       : -1;
	}
}

/* A controller's state of the iterated (trusted) cgroup: a plain load. */
static __always_inline struct cgroup_subsys_state *css_of(struct cgroup *cgrp, int ss)
{
	if (ss < 0)
		return NULL;
	return cgrp->subsys[ss & 15];
}

/* The same for a cgroup reached through a parent pointer, as a number. */
static __always_inline __u64 css_of_addr(__u64 cgrp, int ss, const bool cast)
{
	if (ss < 0 || !cgrp)
		return 0;
	return (__u64)GET(cast, struct cgroup, cgrp, subsys[ss & 15]);
}

static __always_inline __u64 parent_addr(__u64 cgrp, const bool cast)
{
	/* self is the first member of struct cgroup */
	return cgrp ? (__u64)GET(cast, struct cgroup, cgrp, self.parent) : 0;
}

static __always_inline bool populated(struct cgroup *cgrp)
{
	return cgrp->nr_populated_csets + cgrp->nr_populated_domain_children +
		       cgrp->nr_populated_threaded_children >
	       0;
}

/* The address a pointer holds, as a number. */
static __always_inline __u64 addr_of(const void *p)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), &p);
	return v;
}

static long pcpu_offset(__u32 c, void *ctx)
{
	__u32 zero = 0, i = c & (CGP_MAX_CPUS - 1);
	const void *mine;

	if (c >= CGP_MAX_CPUS)
		return 1;
	mine = bpf_map_lookup_percpu_elem(&pcpu_probe, &zero, c);
	pcpu_off[i] = mine ? addr_of(mine) - *(__u64 *)ctx : 0;
	return 0;
}

/* Per-CPU offsets do not change: read once. */
static __always_inline void pcpu_offsets(void)
{
	__u64 map = addr_of(&pcpu_probe), base = 0;

	if (g.pcpu_pass)
		return;
	g.pcpu_pass = g.pass;
	/* struct bpf_array: pptrs[0], the per-CPU pointer of element 0 */
	bpf_probe_read_kernel(&base, sizeof(base),
			      (const void *)(map + bpf_core_field_offset(struct bpf_array, pptrs)));
	if (base)
		bpf_loop(nr_cpus, pcpu_offset, &base, 0);
}

struct cpuacct_sum {
	const char *usage, *stat;
	int iu, in, is, iirq, isirq;
	__u64 sum, user, sys;
};

static long cpuacct_cpu(__u32 c, void *ctx)
{
	struct cpuacct_sum *x = ctx;
	__u64 off, v = 0, cs[8] = {};

	if (c >= CGP_MAX_CPUS)
		return 1;
	off = pcpu_off[c & (CGP_MAX_CPUS - 1)];
	bpf_probe_read_kernel(&v, sizeof(v), x->usage + off);
	x->sum += v;
	bpf_probe_read_kernel(cs, sizeof(cs), x->stat + off);
	x->user += cs[x->iu & 7] + cs[x->in & 7];
	x->sys += cs[x->is & 7] + cs[x->iirq & 7] + cs[x->isirq & 7];
	return 0;
}

/* v1 cpuacct keeps per-CPU sums; the kernel adds them up the same way. */
static __always_inline void read_cpuacct(__u64 ca, struct cgp_acc *a, const bool cast)
{
	struct cpuacct_sum x = {
		/* per-CPU pointers, as numbers: the per-CPU offsets are added to them */
		.usage = (const char *)addr_of(GET(cast, struct cpuacct, ca, cpuusage)),
		.stat = (const char *)addr_of(GET(cast, struct cpuacct, ca, cpustat)),
		.iu = bpf_core_enum_value(enum cpu_usage_stat, CPUTIME_USER),
		.in = bpf_core_enum_value(enum cpu_usage_stat, CPUTIME_NICE),
		.is = bpf_core_enum_value(enum cpu_usage_stat, CPUTIME_SYSTEM),
		.iirq = bpf_core_enum_value(enum cpu_usage_stat, CPUTIME_IRQ),
		.isirq = bpf_core_enum_value(enum cpu_usage_stat, CPUTIME_SOFTIRQ),
	};

	if (!x.usage || !x.stat)
		return;
	bpf_loop(nr_cpus, cpuacct_cpu, &x, 0);
	a->usage_ns = x.sum;
	a->user_ns = x.user;
	a->sys_ns = x.sys;
	a->have |= CGP_HAVE_CPUACCT;
}

static __always_inline void read_cfs(__u64 tg, struct cgp_acc *a, const bool cast)
{
	if (!bpf_core_field_exists(struct task_group, cfs_bandwidth))
		return;
	a->nr_periods = GET(cast, struct task_group, tg, cfs_bandwidth.nr_periods);
	a->nr_throttled = GET(cast, struct task_group, tg, cfs_bandwidth.nr_throttled);
	a->throttled_ns = GET(cast, struct task_group, tg, cfs_bandwidth.throttled_time);
	a->have |= CGP_HAVE_CFS;
}

static __always_inline void read_psi(struct cgroup *cgrp, struct cgp_acc *a)
{
	struct psi_group *psi;

	if (bpf_core_field_exists(((struct cgroup___psi_embedded *)cgrp)->psi) &&
	    bpf_core_field_size(((struct cgroup___psi_embedded *)cgrp)->psi) > 8)
		psi = (struct psi_group *)((char *)cgrp +
					   bpf_core_field_offset(struct cgroup___psi_embedded,
								 psi));
	else if (bpf_core_field_exists(cgrp->psi))
		psi = BPF_CORE_READ(cgrp, psi);
	else
		return;
	if (!psi)
		return;
	/* total[PSI_AVGS][...]: io some/full, memory some/full, cpu some/full */
	bpf_probe_read_kernel(a->psi_ns, sizeof(a->psi_ns), &psi->total);
	a->psi_time_ns = BPF_CORE_READ(psi, avg_last_update);
	a->have |= CGP_HAVE_PSI;
}

static __always_inline __u32 popcount64(__u64 x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (__u32)((x * 0x0101010101010101ull) >> 56);
}

static __always_inline __u32 cpuset_count(__u64 cs)
{
	__u64 words[8] = {};
	const char *bits;
	__u32 n = 0, nwords = (nr_cpus + 63) / 64;

	/* cpumask_var_t is a pointer with CONFIG_CPUMASK_OFFSTACK, else the mask */
	if (bpf_core_field_size(((struct cpuset *)0)->effective_cpus) == sizeof(void *))
		bpf_probe_read_kernel(&bits, sizeof(bits),
				      (const char *)cs +
					      bpf_core_field_offset(struct cpuset, effective_cpus));
	else
		bits = (const char *)cs + bpf_core_field_offset(struct cpuset, effective_cpus);
	for (__u32 i = 0; i < CGP_CPUSET_WORDS / 8 && i * 8 < nwords; i++) {
		if (bpf_probe_read_kernel(words, sizeof(words), bits + i * 64))
			break;
		for (int w = 0; w < 8; w++)
			if (i * 8 + w < nwords)
				n += popcount64(words[w]);
	}
	return n;
}

struct limits {
	__u64 cgrp; /* the level being looked at */
	__u64 quota_milli, mem_max;
	__u32 cpus;
	bool cpu, mem, set; /* the hierarchy has the controller */
	bool cast;
};

static __always_inline long limits_level(struct limits *l, const bool cast)
{
	__u64 c = l->cgrp, css, parent = parent_addr(c, cast);

	if (!c || !parent)
		return 1; /* the root has no limits */
	if ((css = css_of_addr(c, ss_id(SS_CPU), cast))) {
		l->cpu = true;
		if (bpf_core_field_exists(struct task_group, cfs_bandwidth)) {
			__u64 q = GET(cast, struct task_group, css, cfs_bandwidth.quota);
			__s64 p = GET(cast, struct task_group, css, cfs_bandwidth.period);

			/* RUNTIME_INF (~0) is no quota */
			if (q != ~0ull && p > 0 && q < (1ull << 40) &&
			    q * 1000 / (__u64)p < l->quota_milli)
				l->quota_milli = q * 1000 / (__u64)p;
		}
	}
	if ((css = css_of_addr(c, ss_id(SS_MEMORY), cast))) {
		__u64 m = GET(cast, struct mem_cgroup, css, memory.max);

		l->mem = true;
		if (m < l->mem_max)
			l->mem_max = m;
	}
	if (!l->cpus && (css = css_of_addr(c, ss_id(SS_CPUSET), cast))) {
		l->set = true;
		l->cpus = cpuset_count(css);
	}
	l->cgrp = parent;
	return 0;
}

static long limits_level_cast(__u32 i, void *ctx)
{
	return limits_level(ctx, true);
}

static long limits_level_probe(__u32 i, void *ctx)
{
	return limits_level(ctx, false);
}

/* The effective limits of the controllers this hierarchy has: the tightest
 * quota and memory limit of the cgroup and its ancestors, the CPUs of its
 * nearest cpuset. Fields of controllers it lacks are another pass's. */
static __always_inline void read_limits(struct cgroup *cgrp, struct cgp_acc *a, const bool cast)
{
	struct limits l = {.cgrp = (__u64)cgrp, .quota_milli = ~0ull, .mem_max = ~0ull};

	bpf_loop(CGP_MAX_DEPTH, cast ? limits_level_cast : limits_level_probe, &l, 0);
	if (l.cpu) {
		a->quota_milli = l.quota_milli;
		if (l.quota_milli != ~0ull)
			a->have |= CGP_HAVE_QUOTA;
	}
	if (l.mem) {
		a->mem_max_pages = l.mem_max;
		if (l.mem_max != ~0ull)
			a->have |= CGP_HAVE_MEM_MAX;
	}
	if (l.set) {
		a->cpuset_cpus = l.cpus;
		if (l.cpus)
			a->have |= CGP_HAVE_CPUSET;
	}
}

static __always_inline void read_counters(struct cgroup *cgrp, bool dfl, struct cgp_acc *a,
					  const bool cast)
{
	struct cgroup_subsys_state *css;

	if (a->pass != (__u32)g.pass) {
		/* the first hierarchy to visit it this pass */
		a->pass = (__u32)g.pass;
		a->have = 0;
		a->limits_due = a->limits_pass < g.limits_pass || !a->limits_pass;
		if (a->limits_due)
			a->limits_pass = (__u32)g.pass;
	}
	if (dfl) {
		/* flushed at the root of the walk by the sleepable variant */
		a->usage_ns = cgrp->bstat.cputime.sum_exec_runtime;
		a->user_ns = cgrp->bstat.cputime.utime;
		a->sys_ns = cgrp->bstat.cputime.stime;
		a->have |= CGP_HAVE_BSTAT;
		read_psi(cgrp, a);
	}
	if ((css = css_of(cgrp, ss_id(SS_CPUACCT))))
		read_cpuacct((__u64)css, a, cast);
	if ((css = css_of(cgrp, ss_id(SS_CPU))))
		read_cfs((__u64)css, a, cast);
	if ((css = css_of(cgrp, ss_id(SS_MEMORY)))) {
		int oom = bpf_core_enum_value(enum memcg_memory_event, MEMCG_OOM_KILL);

		a->mem_pages = GET(cast, struct mem_cgroup, css, memory.usage.counter);
		a->oom_kills = GET(cast, struct mem_cgroup, css, memory_events[oom & 15].counter);
		a->have |= CGP_HAVE_MEM | CGP_HAVE_OOM;
	}
	if (a->limits_due)
		read_limits(cgrp, a, cast);
}

static __always_inline int visit(struct seq_file *seq, struct cgroup *cgrp, const bool cast)
{
	struct cgp_key key = {};
	struct cgp_known *k;
	struct cgp_rec rec = {};
	char name[CGP_NAME_MAX + 1];
	const char *kname;
	__u64 parent;
	bool pop;
	long n;

	if (!cgrp)
		return 0;
	pcpu_offsets();
	g.visited++;
	key.id = cgrp->kn->id;
	key.hier = cgrp->root->hierarchy_id;
	pop = populated(cgrp);
	k = bpf_map_lookup_elem(&known, &key);
	if (k) {
		__u32 idx = k->idx, slot = k->slot;
		struct cgp_seen *s = bpf_map_lookup_elem(&seen, &idx);
		struct cgp_acc *a;

		if (s) {
			s->pass = (__u32)g.pass;
			s->flags = pop ? CGP_SEEN_POPULATED : 0;
		}
		if (slot != CGP_NO_SLOT && (a = bpf_map_lookup_elem(&acc, &slot)))
			read_counters(cgrp, key.hier == 0, a, cast);
		return 0;
	}
	if (!pop)
		return 0; /* nothing runs in it or below it: not worth knowing yet */
	if (g.emit_used + sizeof(rec) + CGP_NAME_MAX > g.emit_room) {
		g.deferred++;
		return 0;
	}
	parent = parent_addr((__u64)cgrp, cast);
	rec.id = key.id;
	rec.parent_id = parent ? BPF_CORE_READ((struct cgroup *)parent, kn, id) : 0;
	rec.hier = key.hier;
	rec.level = cgrp->level;
	kname = BPF_CORE_READ(cgrp, kn, name);
	n = bpf_probe_read_kernel_str(name, sizeof(name), kname);
	if (n < 1)
		n = 1;
	if (n >= (long)sizeof(name))
		rec.flags |= CGP_REC_NAME_CUT;
	rec.name_len = (__u16)(n - 1);
	g.emitted++;
	g.emit_used += sizeof(rec) + rec.name_len;
	bpf_seq_write(seq, &rec, sizeof(rec));
	if (rec.name_len)
		bpf_seq_write(seq, name, rec.name_len & CGP_NAME_MAX);
	return 0;
}

/* 6.1: v1 hierarchies, and v2 where per-cgroup CPU time is not wanted from it. */
SEC("iter/cgroup")
int cgpass(struct bpf_iter__cgroup *ctx)
{
	struct seq_file *seq = ctx->meta->seq;

	return visit(seq, ctx->cgroup, false);
}

/* The same on 6.2+, with plain loads. */
SEC("iter/cgroup")
int cgpass_cast(struct bpf_iter__cgroup *ctx)
{
	struct seq_file *seq = ctx->meta->seq;

	return visit(seq, ctx->cgroup, true);
}

/* The v2 hierarchy on 6.15+: base statistics flushed once, at the root. */
SEC("iter.s/cgroup")
int cgpass_css_flush(struct bpf_iter__cgroup *ctx)
{
	struct bpf_iter_meta *meta = ctx->meta;
	struct cgroup *cgrp = ctx->cgroup;
	struct seq_file *seq = meta->seq;

	if (cgrp && meta->seq_num == 0) {
		css_rstat_flush(&cgrp->self);
		g.flushes++;
	}
	return visit(seq, cgrp, true);
}

/* 6.2 to 6.14. */
SEC("iter.s/cgroup")
int cgpass_cgroup_flush(struct bpf_iter__cgroup *ctx)
{
	struct bpf_iter_meta *meta = ctx->meta;
	struct cgroup *cgrp = ctx->cgroup;
	struct seq_file *seq = meta->seq;

	if (cgrp && meta->seq_num == 0) {
		cgroup_rstat_flush(cgrp);
		g.flushes++;
	}
	return visit(seq, cgrp, true);
}

/* 6.1. */
SEC("iter.s/cgroup")
int cgpass_cgroup_flush_probe(struct bpf_iter__cgroup *ctx)
{
	struct bpf_iter_meta *meta = ctx->meta;
	struct cgroup *cgrp = ctx->cgroup;
	struct seq_file *seq = meta->seq;

	if (cgrp && meta->seq_num == 0) {
		cgroup_rstat_flush(cgrp);
		g.flushes++;
	}
	return visit(seq, cgrp, false);
}
