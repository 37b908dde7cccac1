// SPDX-License-Identifier: GPL-2.0-only
/* runq capture: loader and reader for runq.bpf.c. Events above the threshold
 * arrive through a ring buffer while the window runs; the worst are kept, and
 * every one is summed per victim and per culprit. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/consumers.h"
#include "base/log.h"
#include "base/util.h"
#include "base/sanitize.h"
#include "probes/bpfutil.h"
#include "probes/capture.h"
#include "probes/runq.h"
#include "runq.skel.h"

#define RUNQ_MAX_TASKS	  4096 /* distinct victims, and culprits, summed per window */
#define RUNQ_WAKEUP_BYTES (64 * 1024)

enum { P_THRESHOLD_US, P_TOP, P_QLEN_FREQUENCY };

static const struct capture_param_desc runq_params[] = {
	[P_THRESHOLD_US] = {"threshold_us", CPARAM_UINT, 1, 10000000, "5000",
			    "run-queue waits at least this long (microseconds) are reported"},
	[P_TOP] = {"top", CPARAM_UINT, 1, 1000, "50", "worst waits kept in the incident"},
	[P_QLEN_FREQUENCY] = {"qlen_frequency", CPARAM_UINT, 0, 1000, "99",
			      "run-queue length samples per second per CPU (0: none)"},
};

struct task_sum {
	uint32_t tgid, pid;
	uint64_t cgroup_id;
	char comm[SCHED_TASK_COMM_LEN];
	uint64_t count, total_ns, max_ns;
};

/* Open-addressed (tgid, pid) -> sum, at most RUNQ_MAX_TASKS entries. */
struct task_table {
	struct task_sum *v;
	size_t n;
	uint64_t dropped;
};

#define TABLE_CAP (RUNQ_MAX_TASKS * 2)

struct runq_state {
	struct runq_bpf *skel;
	struct capture_env env;
	struct ring_buffer *rb;
	struct bpf_links links;
	struct bpf_link **perf_links;
	int *perf_fds;
	int ncpus;
	bool btf, discard;
	uint64_t threshold_us, qlen_freq;
	unsigned top_n;
	uint64_t started_ns;
	struct runq_event *top; /* the worst top_n, unordered */
	unsigned ntop;
	uint64_t events;
	struct task_table victims, culprits;
};

static struct task_sum *table_get(struct task_table *t, uint32_t tgid, uint32_t pid)
{
	size_t h = ((size_t)pid * 2654435761u) % TABLE_CAP;

	for (size_t i = 0; i < TABLE_CAP; i++, h = (h + 1) % TABLE_CAP) {
		struct task_sum *s = &t->v[h];

		if (s->count && s->pid == pid && s->tgid == tgid)
			return s;
		if (!s->count) {
			if (t->n >= RUNQ_MAX_TASKS) {
				t->dropped++;
				return NULL;
			}
			t->n++;
			s->tgid = tgid;
			s->pid = pid;
			return s;
		}
	}
	t->dropped++;
	return NULL;
}

static void table_add(struct task_table *t, uint32_t tgid, uint32_t pid, const char *comm,
		      uint64_t cgroup_id, uint64_t ns)
{
	struct task_sum *s = table_get(t, tgid, pid);

	if (!s)
		return;
	sched_comm(s->comm, comm);
	s->cgroup_id = cgroup_id;
	s->count++;
	s->total_ns += ns;
	if (ns > s->max_ns)
		s->max_ns = ns;
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct runq_state *st = ctx;
	const struct runq_event *e = data;

	if (st->discard || size < sizeof(*e) || e->type != RUNQ_REC_WAIT)
		return 0;
	st->events++;
	table_add(&st->victims, e->tgid, e->pid, e->comm, e->cgroup_id, e->wait_ns);
	for (unsigned i = 0; i < e->nculprits && i < RUNQ_MAX_CULPRITS; i++)
		table_add(&st->culprits, e->culprits[i].tgid, e->culprits[i].pid,
			  e->culprits[i].comm, 0, e->culprits[i].ns);
	if (st->ntop < st->top_n) {
		st->top[st->ntop++] = *e;
	} else {
		unsigned min = 0;

		for (unsigned i = 1; i < st->ntop; i++)
			if (st->top[i].wait_ns < st->top[min].wait_ns)
				min = i;
		if (st->ntop && e->wait_ns > st->top[min].wait_ns)
			st->top[min] = *e;
	}
	return 0;
}

BPF_SKEL_OPS(runq);

static void runq_free(struct runq_state *st)
{
	ring_buffer__free(st->rb);
	bpf_skel_unload(st->skel, &runq_skel_ops, "runq");
	free(st->perf_links);
	free(st->perf_fds);
	free(st->top);
	free(st->victims.v);
	free(st->culprits.v);
	free(st);
}

static int runq_prepare(void **out, const struct capture_env *env)
{
	struct runq_state *st = calloc(1, sizeof(*st));
	void *skel;
	int err;

	if (!st)
		return -ENOMEM;
	st->env = *env;
	st->ncpus = libbpf_num_possible_cpus();
	st->top = calloc(1000, sizeof(*st->top));
	st->victims.v = calloc(TABLE_CAP, sizeof(struct task_sum));
	st->culprits.v = calloc(TABLE_CAP, sizeof(struct task_sum));
	if (st->ncpus > 0) {
		st->perf_links = calloc((size_t)st->ncpus, sizeof(*st->perf_links));
		st->perf_fds = calloc((size_t)st->ncpus, sizeof(*st->perf_fds));
	}
	if (st->ncpus <= 0 || !st->top || !st->victims.v || !st->culprits.v || !st->perf_links ||
	    !st->perf_fds) {
		err = st->ncpus <= 0 ? -EINVAL : -ENOMEM;
		goto cleanup;
	}
	for (int i = 0; i < st->ncpus; i++)
		st->perf_fds[i] = -1;
	err = bpf_skel_load(&skel, &st->btf, &runq_skel_ops,
			    &(struct bpf_load_opts){.owner = "runq"});
	if (err)
		goto cleanup;
	st->skel = skel;
	*out = st;
	return 0;
cleanup:
	runq_free(st);
	return err;
}

static void runq_stop(void *state)
{
	struct runq_state *st = state;

	bpf_links_detach(&st->links);
	perf_clock_detach(st->perf_links, st->perf_fds, st->ncpus);
}

/* The ring buffer is mapped for a window only: mapped, its pages count in the
 * agent's resident memory twice over, capture or not. */
static int ring_map(struct runq_state *st)
{
	if (st->rb)
		return 0;
	st->rb = ring_buffer__new(bpf_map__fd(st->skel->maps.events), on_event, st, NULL);
	return st->rb ? 0 : log_ret(-errno, "runq: ring buffer: %s", strerror(errno));
}

/* The window's last records, then the mapping goes (the programs are detached). */
static void ring_drain_unmap(struct runq_state *st)
{
	if (!st->rb)
		return;
	ring_buffer__consume(st->rb);
	ring_buffer__free(st->rb);
	st->rb = NULL;
}

static int runq_start(void *state, const struct capture_target *t, const struct capture_params *p)
{
	struct runq_state *st = state;
	struct runq_config c = {.wakeup_bytes = RUNQ_WAKEUP_BYTES};
	struct capture_filter f;
	uint32_t zero = 0;
	int err;

	/* whatever an earlier window left in the ring is not ours */
	err = ring_map(st);
	if (err)
		return err;
	st->discard = true;
	ring_buffer__consume(st->rb);
	st->discard = false;
	map_clear(st->skel->maps.enq);
	percpu_counters_zero(st->skel->maps.stats, RUNQ_STAT_MAX);
	percpu_counters_zero(st->skel->maps.wait_hist, RUNQ_WAIT_SLOTS);
	percpu_counters_zero(st->skel->maps.qlen, RUNQ_QLEN_SLOTS);
	st->ntop = 0;
	st->events = 0;
	memset(st->victims.v, 0, TABLE_CAP * sizeof(struct task_sum));
	memset(st->culprits.v, 0, TABLE_CAP * sizeof(struct task_sum));
	st->victims.n = st->culprits.n = 0;
	st->victims.dropped = st->culprits.dropped = 0;

	err = capture_filter_fill(&f, t, st->env.cgroups);
	if (err)
		return err;
	err = capture_filter_set(st->skel->maps.filter, &f);
	if (!err)
		err = sched_set_self(st->skel->maps.sched_self, t);
	if (err)
		return err;
	st->threshold_us = p->v[P_THRESHOLD_US];
	st->top_n = (unsigned)p->v[P_TOP];
	st->qlen_freq = p->v[P_QLEN_FREQUENCY];
	c.threshold_ns = st->threshold_us * 1000;
	err = bpf_map__update_elem(st->skel->maps.runq_cfg, &zero, sizeof(zero), &c, sizeof(c), 0);
	if (err)
		return err;
	st->started_ns = now_mono_ns();
	err = bpf_links_attach(&st->links, st->skel->obj, NULL, NULL, "runq");
	if (err)
		return err;
	if (st->qlen_freq && perf_clock_attach(st->skel->progs.runq_qlen, st->qlen_freq,
					       st->perf_links, st->perf_fds, st->ncpus) == 0)
		log_warn("runq: no CPU accepted a cpu-clock perf event; no run-queue lengths");
	return 0;
}

static int runq_ring_fd(void *state)
{
	struct runq_state *st = state;

	return st->rb ? ring_buffer__epoll_fd(st->rb) : -1;
}

static void runq_ring_ready(void *state)
{
	struct runq_state *st = state;

	if (st->rb)
		ring_buffer__consume(st->rb);
}

static const char *reason_name(uint32_t r)
{
	return r == RUNQ_WAKEUP	      ? "wakeup"
	       : r == RUNQ_WAKEUP_NEW ? "new"
	       : r == RUNQ_PREEMPTED  ? "preempted"
				      : "?";
}

static int cmp_event(const void *a, const void *b)
{
	const struct runq_event *x = a, *y = b;

	return x->wait_ns > y->wait_ns ? -1 : x->wait_ns < y->wait_ns;
}

static json_t *event_json(struct runq_state *st, const struct runq_event *e)
{
	json_t *o = json_object(), *cul = json_array();
	char comm[SCHED_TASK_COMM_LEN], summary[256] = "";
	size_t off = 0;
	unsigned best = 0;

	sched_comm(comm, e->comm);
	json_object_set_new(o, "pid", json_integer(e->tgid));
	json_object_set_new(o, "tid", json_integer(e->pid));
	json_object_set_new(o, "comm", json_string_clean(comm));
	json_object_set_new(o, "wait_us", json_integer((json_int_t)(e->wait_ns / 1000)));
	json_object_set_new(o, "cpu", json_integer(e->cpu));
	json_object_set_new(o, "reason", json_string_clean(reason_name(e->reason)));
	json_object_set_new(o, "nr_running", json_integer(e->nr_running));
	json_object_set_new(o, "at_ms",
			    json_integer(e->ts > st->started_ns
						 ? (json_int_t)((e->ts - st->started_ns) / 1000000)
						 : 0));
	for (unsigned i = 1; i < e->nculprits && i < RUNQ_MAX_CULPRITS; i++)
		if (e->culprits[i].ns > e->culprits[best].ns)
			best = i;
	for (unsigned i = 0; i < e->nculprits && i < RUNQ_MAX_CULPRITS; i++) {
		const struct runq_culprit *c = &e->culprits[i];

		sched_comm(comm, c->comm);
		json_array_append_new(cul,
				      json_pack("{s:i,s:i,s:s,s:I}", "pid", (int)c->tgid, "tid",
						(int)c->pid, "comm", c->pid ? comm : "[idle]",
						"held_us", (json_int_t)(c->ns / 1000)));
	}
	/* the main culprit in words, for tables */
	if (e->nculprits) {
		const struct runq_culprit *c = &e->culprits[best];

		sched_comm(comm, c->comm);
		off += (size_t)snprintf(summary, sizeof(summary), "%s %u (%llu us)",
					c->pid ? comm : "[idle]", c->pid,
					(unsigned long long)(c->ns / 1000));
		if (e->nculprits > 1 && off < sizeof(summary))
			snprintf(summary + off, sizeof(summary) - off, " +%u more",
				 e->nculprits - 1);
	}
	json_object_set_new(o, "culprit", json_string_clean(summary));
	json_object_set_new(o, "culprits", cul);
	json_object_set_new(o, "culprits_complete", json_boolean(e->complete));
	if (e->other_ns)
		json_object_set_new(o, "others_held_us",
				    json_integer((json_int_t)(e->other_ns / 1000)));
	cgroup_json_set(o, st->env.cgroups, e->cgroup_id);
	return o;
}

static int cmp_sum(const void *a, const void *b)
{
	const struct task_sum *x = a, *y = b;

	return x->total_ns > y->total_ns ? -1 : x->total_ns < y->total_ns;
}

static json_t *table_json(struct runq_state *st, struct task_table *t, bool victims)
{
	json_t *arr = json_array();
	size_t n = 0;

	/* compact the used slots to the front, then sort */
	for (size_t i = 0; i < TABLE_CAP; i++)
		if (t->v[i].count)
			t->v[n++] = t->v[i];
	if (n)
		qsort(t->v, n, sizeof(*t->v), cmp_sum);
	for (size_t i = 0; i < n && i < st->top_n; i++) {
		const struct task_sum *s = &t->v[i];
		json_t *o = json_object();

		json_object_set_new(o, "pid", json_integer(s->tgid));
		json_object_set_new(o, "tid", json_integer(s->pid));
		json_object_set_new(o, "comm", json_string_clean(s->pid ? s->comm : "[idle]"));
		if (victims) {
			json_object_set_new(o, "waits", json_integer((json_int_t)s->count));
			json_object_set_new(o, "total_wait_us",
					    json_integer((json_int_t)(s->total_ns / 1000)));
			json_object_set_new(o, "max_wait_us",
					    json_integer((json_int_t)(s->max_ns / 1000)));
			cgroup_json_set(o, st->env.cgroups, s->cgroup_id);
		} else {
			json_object_set_new(o, "waits_caused", json_integer((json_int_t)s->count));
			json_object_set_new(o, "held_us",
					    json_integer((json_int_t)(s->total_ns / 1000)));
		}
		json_array_append_new(arr, o);
	}
	memset(t->v, 0, TABLE_CAP * sizeof(*t->v));
	return arr;
}

/* Who held CPUs while others waited (caused), and who waited (suffered), by
 * process, program and container: every culprit and victim of the window. */
static json_t *consumers_of(struct runq_state *st)
{
	struct consumers *c = NULL;
	json_t *o;

	if (consumers_new(&c, &(struct consumers_opts){
				      .measure = "held_us",
				      .measure2 = "waited_us",
				      .top_n = CONSUMERS_TOP,
				      .sym = st->env.sym,
				      .cgroups = st->env.cgroups,
			      }))
		return json_object();
	for (size_t i = 0; i < TABLE_CAP; i++) {
		const struct task_sum *s = &st->culprits.v[i];

		/* an idle CPU held nobody back */
		if (s->count && s->pid)
			consumers_add(c, s->tgid, s->pid, s->comm, s->cgroup_id, s->total_ns / 1000,
				      0);
	}
	for (size_t i = 0; i < TABLE_CAP; i++) {
		const struct task_sum *s = &st->victims.v[i];

		if (s->count)
			consumers_add(c, s->tgid, s->pid, s->comm, s->cgroup_id, 0,
				      s->total_ns / 1000);
	}
	o = consumers_json(c);
	consumers_free(&c);
	return o;
}

/* Per-CPU run-queue length distribution from the perf timer samples. */
static json_t *qlen_json(struct runq_state *st)
{
	json_t *arr = json_array();
	uint64_t *vals = calloc((size_t)st->ncpus * RUNQ_QLEN_SLOTS, sizeof(*vals));
	uint64_t *per = calloc((size_t)st->ncpus, sizeof(*per));

	if (!vals || !per) {
		free(vals);
		free(per);
		return arr;
	}
	for (uint32_t k = 0; k < RUNQ_QLEN_SLOTS; k++) {
		if (bpf_map__lookup_elem(st->skel->maps.qlen, &k, sizeof(k), per,
					 (size_t)st->ncpus * sizeof(*per), 0))
			continue;
		for (int c = 0; c < st->ncpus; c++)
			vals[(size_t)c * RUNQ_QLEN_SLOTS + k] = per[c];
	}
	free(per);
	for (int c = 0; c < st->ncpus; c++) {
		const uint64_t *h = &vals[(size_t)c * RUNQ_QLEN_SLOTS];
		uint64_t samples = 0, sum = 0, max = 0, queued = 0;
		json_t *o, *hist = json_array();
		char dist[128];

		for (unsigned k = 0; k < RUNQ_QLEN_SLOTS; k++) {
			samples += h[k];
			sum += h[k] * k;
			if (h[k])
				max = k;
			if (k >= 2)
				queued += h[k];
		}
		if (!samples) {
			json_decref(hist);
			continue;
		}
		for (unsigned k = 0; k <= max; k++)
			json_array_append_new(hist, json_integer((json_int_t)h[k]));
		snprintf(dist, sizeof(dist), "0:%.0f%% 1:%.0f%% 2:%.0f%% 3+:%.0f%%",
			 100.0 * (double)h[0] / (double)samples,
			 100.0 * (double)h[1] / (double)samples,
			 100.0 * (double)h[2] / (double)samples,
			 100.0 * (double)(samples - h[0] - h[1] - h[2]) / (double)samples);
		o = json_object();
		json_object_set_new(o, "cpu", json_integer(c));
		json_object_set_new(o, "samples", json_integer((json_int_t)samples));
		json_object_set_new(o, "mean", json_real((double)sum / (double)samples));
		json_object_set_new(o, "max", json_integer((json_int_t)max));
		json_object_set_new(o, "queued_pct",
				    json_real(100.0 * (double)queued / (double)samples));
		json_object_set_new(o, "dist", json_string_clean(dist));
		json_object_set_new(o, "histogram", hist);
		json_array_append_new(arr, o);
	}
	free(vals);
	return arr;
}

static int runq_collect(void *state, struct capture_result *out)
{
	struct runq_state *st = state;
	uint64_t stats[RUNQ_STAT_MAX] = {0}, hist[RUNQ_WAIT_SLOTS] = {0}, total = 0, seen = 0;
	uint64_t p50 = 0, p99 = 0, max_us = 0;
	json_t *evs = json_array(), *h = json_array();

	ring_drain_unmap(st);
	percpu_counters_read(st->skel->maps.stats, stats, RUNQ_STAT_MAX);
	percpu_counters_read(st->skel->maps.wait_hist, hist, RUNQ_WAIT_SLOTS);
	for (unsigned k = 0; k < RUNQ_WAIT_SLOTS; k++)
		total += hist[k];
	for (unsigned k = 0; k < RUNQ_WAIT_SLOTS; k++) {
		/* bucket k holds waits of [2^k, 2^(k+1)) us (k = 0: under 2 us) */
		uint64_t le = 2ull << k;

		if (!hist[k])
			continue;
		seen += hist[k];
		if (!p50 && seen * 2 >= total)
			p50 = le;
		if (!p99 && seen * 100 >= total * 99)
			p99 = le;
		max_us = le;
		json_array_append_new(h, json_pack("{s:I,s:I}", "le_us", (json_int_t)le, "count",
						   (json_int_t)hist[k]));
	}
	if (st->ntop)
		qsort(st->top, st->ntop, sizeof(*st->top), cmp_event);
	for (unsigned i = 0; i < st->ntop; i++)
		json_array_append_new(evs, event_json(st, &st->top[i]));

	out->data = json_object();
	json_object_set_new(out->data, "threshold_us", json_integer((json_int_t)st->threshold_us));
	json_object_set_new(out->data, "tracepoints",
			    json_string_clean(st->btf ? "tp_btf" : "raw_tp"));
	json_object_set_new(out->data, "waits", json_integer((json_int_t)stats[RUNQ_STAT_WAITS]));
	json_object_set_new(out->data, "events", json_integer((json_int_t)st->events));
	/* percentiles are bucket upper bounds; the maximum is exact when an event has it */
	json_object_set_new(out->data, "wait_p50_us", json_integer((json_int_t)p50));
	json_object_set_new(out->data, "wait_p99_us", json_integer((json_int_t)p99));
	json_object_set_new(out->data, "max_wait_us",
			    json_integer(st->ntop ? (json_int_t)(st->top[0].wait_ns / 1000)
						  : (json_int_t)max_us));
	json_object_set_new(out->data, "worst", evs);
	json_object_set_new(out->data, "consumers", consumers_of(st));
	json_object_set_new(out->data, "victims", table_json(st, &st->victims, true));
	json_object_set_new(out->data, "culprits", table_json(st, &st->culprits, false));
	json_object_set_new(out->data, "wait_histogram", h);
	json_object_set_new(out->data, "runq_length", qlen_json(st));
	json_object_set_new(out->data, "lost",
			    json_pack("{s:I,s:I,s:I,s:I}", "ring_full",
				      (json_int_t)stats[RUNQ_STAT_RB_FULL], "enqueue_full",
				      (json_int_t)stats[RUNQ_STAT_ENQ_FULL], "victims_full",
				      (json_int_t)st->victims.dropped, "culprits_full",
				      (json_int_t)st->culprits.dropped));
	out->lost_events = stats[RUNQ_STAT_RB_FULL] + stats[RUNQ_STAT_ENQ_FULL] +
			   st->victims.dropped + st->culprits.dropped;
	out->partial = out->lost_events > 0;
	map_clear(st->skel->maps.enq);
	return 0;
}

static void runq_release(void *state)
{
	struct runq_state *st = state;

	if (!st)
		return;
	runq_stop(st);
	runq_free(st);
}

const struct capture_ops runq_capture = {
	.kind = "runq",
	.help = "run-queue waits above a threshold: victim, wait, CPU, the tasks holding the CPU; "
		"run-queue lengths",
	.params = runq_params,
	.nparams = ARRAY_SIZE(runq_params),
	.prepare = runq_prepare,
	.start = runq_start,
	.stop = runq_stop,
	.collect = runq_collect,
	.release = runq_release,
	.ring_fd = runq_ring_fd,
	.ring_ready = runq_ring_ready,
};
