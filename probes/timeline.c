// SPDX-License-Identifier: GPL-2.0-only
/* timeline capture: loader and reader for timeline.bpf.c; draws timeline.svg. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "base/stacks.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "base/sanitize.h"
#include "probes/bpfutil.h"
#include "probes/capture.h"
#include "probes/timeline.h"
#include "probes/stackstore.h"
#include "probes/timeline_svg.h"
#include "timeline.skel.h"

#define TL_MAX_STACKS	2048 /* distinct (kernel, user) stacks named in one incident */
#define TL_STACK_FRAMES 24   /* frames kept per stack in the incident */
#define TL_WAKEUP_BYTES (256 * 1024)

enum { P_MAX_INTERVALS, P_MAX_THREADS, P_USER_STACKS };

static const struct capture_param_desc timeline_params[] = {
	[P_MAX_INTERVALS] = {"max_intervals", CPARAM_UINT, 10, 100000, "2000",
			     "intervals kept per thread (later ones are counted, not kept)"},
	[P_MAX_THREADS] = {"max_threads", CPARAM_UINT, 1, 1024, "64", "threads drawn"},
	[P_USER_STACKS] = {"user_stacks", CPARAM_BOOL, 0, 1, "true",
			   "record user stacks at each switch-out as well as kernel stacks"},
};

struct tl_iv {
	uint64_t start_ns, end_ns;
	int32_t stack; /* index in the stack table, -1: none */
	uint8_t state;
};

struct tl_lane {
	uint32_t tgid, pid;
	char comm[SCHED_TASK_COMM_LEN];
	uint64_t ns[SCHED_ST_MAX];
	uint64_t switches, dropped;
	struct tl_iv *iv;
	size_t n, cap;
};

struct stack_ref {
	int32_t k, u;
	int32_t idx;
	bool used;
};

struct timeline_state {
	struct timeline_bpf *skel;
	struct capture_env env;
	struct ring_buffer *rb;
	struct bpf_links links;
	struct bpf_link *iter;
	bool btf, discard, running;
	uint64_t window_start_ns, window_end_ns;
	uint64_t max_intervals, max_threads;
	uint32_t flags;
	int target_pid;
	struct tl_lane *lanes;
	size_t nlanes;
	uint64_t threads_dropped;
	struct stack_ref *stacks; /* open-addressed, 2 * TL_MAX_STACKS */
	int32_t *stack_order;	  /* slot of stack index i */
	unsigned nstacks;
	uint64_t stacks_dropped;
};

static int32_t stack_index(struct timeline_state *st, int32_t k, int32_t u)
{
	size_t cap = 2 * TL_MAX_STACKS, h;

	if (k < 0 && u < 0)
		return -1;
	h = ((size_t)(uint32_t)k * 31 + (size_t)(uint32_t)u) % cap;
	for (size_t i = 0; i < cap; i++, h = (h + 1) % cap) {
		struct stack_ref *r = &st->stacks[h];

		if (r->used && r->k == k && r->u == u)
			return r->idx;
		if (!r->used) {
			if (st->nstacks >= TL_MAX_STACKS) {
				st->stacks_dropped++;
				return -1;
			}
			r->used = true;
			r->k = k;
			r->u = u;
			r->idx = (int32_t)st->nstacks;
			st->stack_order[st->nstacks] = (int32_t)h;
			return (int32_t)st->nstacks++;
		}
	}
	return -1;
}

static struct tl_lane *lane_of(struct timeline_state *st, const struct tl_interval *r)
{
	for (size_t i = 0; i < st->nlanes; i++)
		if (st->lanes[i].pid == r->pid)
			return &st->lanes[i];
	if (st->nlanes >= st->max_threads) {
		st->threads_dropped++;
		return NULL;
	}
	memset(&st->lanes[st->nlanes], 0, sizeof(st->lanes[0]));
	st->lanes[st->nlanes].pid = r->pid;
	st->lanes[st->nlanes].tgid = r->tgid;
	return &st->lanes[st->nlanes++];
}

static int on_interval(void *ctx, void *data, size_t size)
{
	struct timeline_state *st = ctx;
	const struct tl_interval *r = data;
	struct tl_lane *l;
	uint64_t start, end;

	if (st->discard || size < sizeof(*r) || r->type != TL_REC_INTERVAL)
		return 0;
	l = lane_of(st, r);
	if (!l)
		return 0;
	sched_comm(l->comm, r->comm);
	/* clip to the window: seeded states start at its beginning */
	start = MAX(r->start_ns, st->window_start_ns);
	end = r->end_ns;
	if (end <= start)
		return 0;
	if (r->state < SCHED_ST_MAX)
		l->ns[r->state] += end - start;
	if (r->state == SCHED_ST_ON_CPU)
		l->switches++;
	if (l->n >= st->max_intervals) {
		l->dropped++;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct tl_iv *p;

		if (cap > st->max_intervals)
			cap = st->max_intervals;
		p = realloc(l->iv, cap * sizeof(*p));
		if (!p) {
			l->dropped++;
			return 0;
		}
		l->iv = p;
		l->cap = cap;
	}
	l->iv[l->n++] = (struct tl_iv){
		.start_ns = start,
		.end_ns = end,
		.state = r->state,
		.stack = stack_index(st, r->kern_stack_id, r->user_stack_id),
	};
	return 0;
}

static void lanes_clear(struct timeline_state *st)
{
	for (size_t i = 0; i < st->nlanes; i++)
		free(st->lanes[i].iv);
	st->nlanes = 0;
	st->threads_dropped = 0;
	memset(st->stacks, 0, 2 * TL_MAX_STACKS * sizeof(*st->stacks));
	st->nstacks = 0;
	st->stacks_dropped = 0;
}

BPF_SKEL_OPS(timeline);

static int configure(void *skel, void *ctx)
{
	struct timeline_bpf *s = skel;
	const struct timeline_state *st = ctx;

	return stackstore_size(s->obj, (unsigned)st->env.cfg->capture.max_stacks, SCHED_MAX_DEPTH);
}

static void timeline_free(struct timeline_state *st)
{
	lanes_clear(st);
	ring_buffer__free(st->rb);
	bpf_skel_unload(st->skel, &timeline_skel_ops, "timeline");
	free(st->lanes);
	free(st->stacks);
	free(st->stack_order);
	free(st);
}

static int timeline_prepare(void **out, const struct capture_env *env)
{
	struct timeline_state *st = calloc(1, sizeof(*st));
	void *skel;
	int err;

	if (!st)
		return -ENOMEM;
	st->env = *env;
	st->lanes = calloc(timeline_params[P_MAX_THREADS].max, sizeof(*st->lanes));
	st->stacks = calloc(2 * TL_MAX_STACKS, sizeof(*st->stacks));
	st->stack_order = calloc(TL_MAX_STACKS, sizeof(*st->stack_order));
	if (!st->lanes || !st->stacks || !st->stack_order) {
		err = -ENOMEM;
		goto cleanup;
	}
	err = bpf_skel_load(
		&skel, &st->btf, &timeline_skel_ops,
		&(struct bpf_load_opts){.owner = "timeline", .configure = configure, .ctx = st});
	if (err)
		goto cleanup;
	st->skel = skel;
	*out = st;
	return 0;
cleanup:
	timeline_free(st);
	return err;
}

static int set_config(struct timeline_state *st, uint32_t mode, uint32_t flags)
{
	struct timeline_config c = {
		.window_start_ns = st->window_start_ns,
		.wakeup_bytes = TL_WAKEUP_BYTES,
		.mode = mode,
		.flags = flags,
	};
	uint32_t zero = 0;

	return bpf_map__update_elem(st->skel->maps.tl_cfg, &zero, sizeof(zero), &c, sizeof(c), 0);
}

/* One pass of the task iterator (seed or close). */
static int run_iter(struct timeline_state *st)
{
	char buf[256];
	int fd = bpf_iter_create(bpf_link__fd(st->iter));

	if (fd < 0)
		return log_ret(-errno, "timeline: task iterator: %s", strerror(errno));
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return 0;
}

static void timeline_stop(void *state)
{
	struct timeline_state *st = state;

	bpf_links_detach(&st->links);
	if (st->running && st->iter) {
		/* close every open interval at the window's end */
		st->window_end_ns = now_mono_ns();
		if (!set_config(st, TL_ITER_CLOSE, st->flags))
			run_iter(st);
	}
	st->running = false;
	bpf_link__destroy(st->iter);
	st->iter = NULL;
}

/* The ring buffer is mapped for a window only: mapped, its pages count in the
 * agent's resident memory twice over, capture or not. */
static int ring_map(struct timeline_state *st)
{
	if (st->rb)
		return 0;
	st->rb = ring_buffer__new(bpf_map__fd(st->skel->maps.events), on_interval, st, NULL);
	return st->rb ? 0 : log_ret(-errno, "timeline: ring buffer: %s", strerror(errno));
}

/* The window's last records, then the mapping goes (the programs are detached). */
static void ring_drain_unmap(struct timeline_state *st)
{
	if (!st->rb)
		return;
	ring_buffer__consume(st->rb);
	ring_buffer__free(st->rb);
	st->rb = NULL;
}

static int timeline_start(void *state, const struct capture_target *t,
			  const struct capture_params *p)
{
	struct timeline_state *st = state;
	struct capture_filter f;
	int err;

	err = ring_map(st);
	if (err)
		return err;
	st->discard = true;
	ring_buffer__consume(st->rb);
	st->discard = false;
	lanes_clear(st);
	map_clear(st->skel->maps.threads);
	stackstore_reset(st->skel->obj);
	percpu_counters_zero(st->skel->maps.stats, TL_STAT_MAX);
	err = capture_filter_fill(&f, t, st->env.cgroups);
	if (err)
		return err;
	err = capture_filter_set(st->skel->maps.filter, &f);
	if (!err)
		err = sched_set_self(st->skel->maps.sched_self, t);
	if (err)
		return err;
	st->target_pid = t->kind == TARGET_PID ? t->pid : 0;
	st->max_intervals = p->v[P_MAX_INTERVALS];
	st->max_threads = p->v[P_MAX_THREADS];
	st->window_start_ns = now_mono_ns();
	st->window_end_ns = 0;
	st->flags = p->v[P_USER_STACKS] ? TL_F_USER_STACK : 0;
	err = set_config(st, TL_ITER_SEED, st->flags);
	if (err)
		return err;
	st->iter = bpf_program__attach_iter(st->skel->progs.timeline_iter, NULL);
	if (!st->iter)
		return log_ret(-errno, "timeline: attaching the task iterator: %s",
			       strerror(errno));
	err = bpf_links_attach(&st->links, st->skel->obj, NULL, NULL, "timeline");
	if (err)
		return err;
	st->running = true;
	/* after attaching, so no change falls between the seed and the events */
	return run_iter(st);
}

static int timeline_ring_fd(void *state)
{
	struct timeline_state *st = state;

	return st->rb ? ring_buffer__epoll_fd(st->rb) : -1;
}

static void timeline_ring_ready(void *state)
{
	struct timeline_state *st = state;

	if (st->rb)
		ring_buffer__consume(st->rb);
}

static int cmp_iv(const void *a, const void *b)
{
	const struct tl_iv *x = a, *y = b;

	return x->start_ns < y->start_ns ? -1 : x->start_ns > y->start_ns;
}

static int cmp_lane(const void *a, const void *b)
{
	const struct tl_lane *x = a, *y = b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static const char *state_code(unsigned s)
{
	return s == SCHED_ST_ON_CPU ? "C" : sched_state_name(s);
}

static json_t *lane_json(struct timeline_state *st, struct tl_lane *l)
{
	json_t *o = json_object(), *iv = json_object();
	json_t *starts = json_array(), *durs = json_array(), *stks = json_array();
	uint64_t observed = 0, off;
	char *codes;

	for (unsigned s = 0; s < SCHED_ST_MAX; s++)
		observed += l->ns[s];
	off = l->ns[SCHED_ST_SLEEP] + l->ns[SCHED_ST_DISK] + l->ns[SCHED_ST_IDLE] +
	      l->ns[SCHED_ST_OTHER];
	json_object_set_new(o, "pid", json_integer(l->tgid));
	json_object_set_new(o, "tid", json_integer(l->pid));
	json_object_set_new(o, "comm", json_string_clean(l->comm));
	json_object_set_new(
		o, "on_cpu_pct",
		json_real(observed ? 100.0 * (double)l->ns[SCHED_ST_ON_CPU] / (double)observed
				   : 0));
	json_object_set_new(
		o, "runnable_pct",
		json_real(observed ? 100.0 * (double)l->ns[SCHED_ST_RUNNABLE] / (double)observed
				   : 0));
	json_object_set_new(o, "off_cpu_pct",
			    json_real(observed ? 100.0 * (double)off / (double)observed : 0));
	json_object_set_new(o, "on_cpu_ms", json_real((double)l->ns[SCHED_ST_ON_CPU] / 1e6));
	json_object_set_new(o, "runnable_ms", json_real((double)l->ns[SCHED_ST_RUNNABLE] / 1e6));
	json_object_set_new(o, "sleep_ms", json_real((double)l->ns[SCHED_ST_SLEEP] / 1e6));
	json_object_set_new(o, "disk_ms", json_real((double)l->ns[SCHED_ST_DISK] / 1e6));
	json_object_set_new(o, "observed_ms", json_real((double)observed / 1e6));
	json_object_set_new(o, "switches", json_integer((json_int_t)l->switches));
	json_object_set_new(o, "intervals_dropped", json_integer((json_int_t)l->dropped));
	if (l->n)
		qsort(l->iv, l->n, sizeof(*l->iv), cmp_iv);
	/* parallel arrays, each of one type (search engines map arrays by type) */
	codes = malloc(l->n + 1);
	for (size_t i = 0; i < l->n; i++) {
		const struct tl_iv *v = &l->iv[i];

		json_array_append_new(
			starts,
			json_integer((json_int_t)((v->start_ns - st->window_start_ns) / 1000)));
		json_array_append_new(durs,
				      json_integer((json_int_t)((v->end_ns - v->start_ns) / 1000)));
		json_array_append_new(stks, json_integer(v->stack));
		if (codes)
			codes[i] = state_code(v->state)[0];
	}
	if (codes)
		codes[l->n] = '\0';
	json_object_set_new(iv, "start_us", starts);
	json_object_set_new(iv, "dur_us", durs);
	json_object_set_new(iv, "state", json_string_clean(codes ? codes : ""));
	json_object_set_new(iv, "stack", stks);
	free(codes);
	json_object_set_new(o, "timeline", iv);
	return o;
}

/* The stack table: each entry the frame names, leaf first, kernel then user. */
static json_t *stacks_json(struct timeline_state *st, int tgid, uint64_t *missing)
{
	json_t *arr = json_array();
	uint64_t frames[SCHED_MAX_DEPTH];

	for (unsigned i = 0; i < st->nstacks; i++) {
		const struct stack_ref *r = &st->stacks[st->stack_order[i]];
		json_t *names = json_array();
		unsigned n, skip, kept = 0;
		char text[256];

		if (stack_map_read(st->skel->maps.stacks, r->k, frames, SCHED_MAX_DEPTH, &n) == 0) {
			skip = stack_bpf_frames(st->env.sym, frames, n);
			for (unsigned j = skip; j < n && kept < TL_STACK_FRAMES; j++, kept++) {
				stack_frame_text(st->env.sym, tgid, frames[j], true, text,
						 sizeof(text));
				json_array_append_new(names, json_string_clean(text));
			}
		} else {
			(*missing)++;
		}
		if (stack_map_read(st->skel->maps.stacks, r->u, frames, SCHED_MAX_DEPTH, &n) == 0) {
			for (unsigned j = 0; j < n && kept < TL_STACK_FRAMES; j++, kept++) {
				stack_frame_text(st->env.sym, tgid, frames[j], false, text,
						 sizeof(text));
				json_array_append_new(names, json_string_clean(text));
			}
		} else {
			(*missing)++;
		}
		json_array_append_new(arr, names);
	}
	return arr;
}

static int timeline_collect(void *state, struct capture_result *out)
{
	struct timeline_state *st = state;
	uint64_t stats[TL_STAT_MAX] = {0}, dropped = 0, missing = 0, kept = 0;
	uint64_t end = st->window_end_ns ? st->window_end_ns : now_mono_ns();
	json_t *threads = json_array();
	char *svg = NULL;
	size_t svg_len = 0;
	int tgid = st->target_pid;
	int err;

	ring_drain_unmap(st);
	percpu_counters_read(st->skel->maps.stats, stats, TL_STAT_MAX);
	if (st->nlanes)
		qsort(st->lanes, st->nlanes, sizeof(*st->lanes), cmp_lane);
	for (size_t i = 0; i < st->nlanes; i++) {
		dropped += st->lanes[i].dropped;
		kept += st->lanes[i].n;
		if (!tgid)
			tgid = (int)st->lanes[i].tgid;
		symbolizer_track(st->env.sym, (int)st->lanes[i].tgid);
		json_array_append_new(threads, lane_json(st, &st->lanes[i]));
	}
	out->data = json_object();
	json_object_set_new(out->data, "tracepoints",
			    json_string_clean(st->btf ? "tp_btf" : "raw_tp"));
	json_object_set_new(out->data, "window_ms",
			    json_real((double)(end - st->window_start_ns) / 1e6));
	json_object_set_new(out->data, "threads_seen",
			    json_integer((json_int_t)(st->nlanes + st->threads_dropped)));
	json_object_set_new(out->data, "threads_dropped",
			    json_integer((json_int_t)st->threads_dropped));
	json_object_set_new(out->data, "intervals", json_integer((json_int_t)kept));
	json_object_set_new(out->data, "intervals_dropped", json_integer((json_int_t)dropped));
	json_object_set_new(out->data, "states",
			    json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "C", "on CPU", "R",
				      "runnable, waiting for a CPU", "S",
				      "sleeping (interruptible)", "D", "uninterruptible (D state)",
				      "I", "idle kernel thread", "T", "stopped, traced or parked",
				      "?", "off CPU since before the window, state unknown"));
	json_object_set_new(out->data, "threads", threads);
	json_object_set_new(out->data, "stacks", stacks_json(st, tgid, &missing));
	json_object_set_new(out->data, "lost",
			    json_pack("{s:I,s:I,s:I,s:I,s:I}", "ring_full",
				      (json_int_t)stats[TL_STAT_RB_FULL], "threads_full",
				      (json_int_t)stats[TL_STAT_THREADS_FULL], "stacks",
				      (json_int_t)stats[TL_STAT_STACK_LOST], "stacks_over_table",
				      (json_int_t)st->stacks_dropped, "threads_over_max",
				      (json_int_t)st->threads_dropped));
	out->lost_events = stats[TL_STAT_RB_FULL] + stats[TL_STAT_THREADS_FULL] +
			   stats[TL_STAT_STACK_LOST] + st->threads_dropped + st->stacks_dropped;
	out->partial = out->lost_events > 0 || dropped > 0;
	err = timeline_svg_render(out->data, &svg, &svg_len);
	if (!err)
		err = capture_result_add_artifact(out, "timeline.svg", svg, svg_len);
	lanes_clear(st);
	return err;
}

static void timeline_release(void *state)
{
	struct timeline_state *st = state;

	if (!st)
		return;
	timeline_stop(st);
	timeline_free(st);
}

const struct capture_ops timeline_capture = {
	.kind = "timeline",
	.help = "each thread's intervals on CPU, runnable and off CPU (S/D) with switch-out "
		"stacks; "
		"timeline.svg",
	.params = timeline_params,
	.nparams = ARRAY_SIZE(timeline_params),
	.prepare = timeline_prepare,
	.start = timeline_start,
	.stop = timeline_stop,
	.collect = timeline_collect,
	.release = timeline_release,
	.ring_fd = timeline_ring_fd,
	.ring_ready = timeline_ring_ready,
};
