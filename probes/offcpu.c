// SPDX-License-Identifier: GPL-2.0-only
/* offcpu capture: loader and reader for offcpu.bpf.c. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/consumers.h"
#include "base/log.h"
#include "base/stacks.h"
#include "base/strbuf.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "base/sanitize.h"
#include "probes/bpfutil.h"
#include "probes/capture.h"
#include "probes/offcpu.h"
#include "probes/stackstore.h"
#include "probes/ustack.h"
#include "offcpu.skel.h"

enum { P_MIN_BLOCK_US, P_WAKER, P_USER_STACKS, P_MAX_WALKS };

static const struct capture_param_desc offcpu_params[] = {
	[P_MIN_BLOCK_US] =
		{"min_block_us", CPARAM_UINT, 0, 60000000, "1000",
		 "blocks shorter than this (microseconds) are counted, not kept by stack"},
	[P_WAKER] = {"waker", CPARAM_BOOL, 0, 1, "true",
		     "record who woke each blocked thread, with the waker's kernel stack"},
	[P_USER_STACKS] = {"user_stacks", CPARAM_BOOL, 0, 1, "true",
			   "record user stacks as well as kernel stacks"},
	[P_MAX_WALKS] = {"max_walks_per_s", CPARAM_UINT, 0, 10000000, "2000",
			 "stack walks per CPU per second (0: no limit); past it a thread "
			 "blocking again within 100 ms reuses the stacks of its previous block"},
};

/* the states a blocked thread can be in, each its own stack set */
static const unsigned offcpu_states[] = {SCHED_ST_SLEEP, SCHED_ST_DISK, SCHED_ST_IDLE,
					 SCHED_ST_OTHER};
#define NSTATES (sizeof(offcpu_states) / sizeof(offcpu_states[0]))

struct offcpu_state {
	struct offcpu_bpf *skel;
	struct capture_env env;
	struct bpf_links links;
	bool btf, running;
	uint64_t min_block_us;
	uint64_t max_walks_per_s;
	bool user_stacks;
	uint64_t stopped_ns;	       /* CLOCK_MONOTONIC, the window's end */
	struct ustack_capture *ustack; /* DWARF user stacks; NULL: off */
};

BPF_SKEL_OPS(offcpu);

static int configure(void *skel, void *ctx)
{
	struct offcpu_bpf *s = skel;
	const struct offcpu_state *st = ctx;
	uint32_t nstacks = (uint32_t)st->env.cfg->capture.max_stacks;

	int err;

	bpf_map__set_max_entries(s->maps.counts, nstacks);
	bpf_map__set_max_entries(s->maps.short_time, nstacks);
	bpf_map__set_max_entries(s->maps.wakers, nstacks / 4 > 256 ? nstacks / 4 : 256);
	err = stackstore_size(s->obj, nstacks, SCHED_MAX_DEPTH);
	if (err)
		return err;
	/* DWARF user stacks (ustack.bpf.h): map sizes and rodata as configured */
	return ustack_size_maps(st->env.ustack, s->maps.ustack_rb, s->maps.ustack_scratch,
				(bool *)&s->rodata->ustack_enabled,
				(bool *)&s->rodata->ustack_always,
				(uint32_t *)&s->rodata->ustack_stack_bytes,
				(uint32_t *)&s->rodata->ustack_cpu_stride);
}

/* The user-space half of DWARF user stacks, once the object is loaded. */
static int offcpu_ustack_attach(struct offcpu_state *st)
{
	struct offcpu_bpf *sk = st->skel;
	int err = ustack_capture_new(&st->ustack,
				     sk->rodata->ustack_enabled ? st->env.ustack : NULL, "offcpu",
				     &(struct ustack_capture_maps){
					     .rb = sk->maps.ustack_rb,
					     .modes = sk->maps.ustack_modes,
					     .stats = sk->maps.ustack_stats,
					     .paused = &sk->bss->ustack_paused,
					     .user_stacks = sk->maps.stacks,
				     });

	if (err)
		log_warn("offcpu: DWARF user stacks: %s", strerror(-err));
	return err;
}

static int offcpu_prepare(void **out, const struct capture_env *env)
{
	struct offcpu_state *st = calloc(1, sizeof(*st));
	void *skel;
	int err;

	if (!st)
		return -ENOMEM;
	st->env = *env;
	err = bpf_skel_load(
		&skel, &st->btf, &offcpu_skel_ops,
		&(struct bpf_load_opts){.owner = "offcpu", .configure = configure, .ctx = st});
	if (!err) {
		st->skel = skel;
		err = offcpu_ustack_attach(st);
		if (err)
			bpf_skel_unload(st->skel, &offcpu_skel_ops, "offcpu");
	}
	if (err) {
		free(st);
		return err;
	}
	*out = st;
	return 0;
}

static void clear_maps(struct offcpu_state *st)
{
	map_clear(st->skel->maps.start);
	map_clear(st->skel->maps.counts);
	map_clear(st->skel->maps.short_time);
	map_clear(st->skel->maps.wakers);
	stackstore_reset(st->skel->obj);
	map_clear(st->skel->maps.last); /* its ids point into the stacks just cleared */
}

static void offcpu_stop(void *state)
{
	struct offcpu_state *st = state;

	bpf_links_detach(&st->links);
	if (st->running)
		st->stopped_ns = now_mono_ns();
	st->running = false;
	ustack_capture_stop(st->ustack);
}

static int offcpu_ring_fd(void *state)
{
	return ustack_capture_fd(((struct offcpu_state *)state)->ustack);
}

static void offcpu_ring_ready(void *state)
{
	ustack_capture_poll(((struct offcpu_state *)state)->ustack);
}

static int offcpu_start(void *state, const struct capture_target *t, const struct capture_params *p)
{
	struct offcpu_state *st = state;
	struct offcpu_config c = {0};
	struct capture_filter f;
	uint32_t zero = 0;
	int err;

	clear_maps(st);
	percpu_counters_zero(st->skel->maps.stats, OFFCPU_STAT_MAX);
	err = capture_filter_fill(&f, t, st->env.cgroups);
	if (err)
		return err;
	err = capture_filter_set(st->skel->maps.filter, &f);
	if (!err)
		err = sched_set_self(st->skel->maps.sched_self, t);
	if (err)
		return err;
	st->min_block_us = p->v[P_MIN_BLOCK_US];
	c.min_block_ns = st->min_block_us * 1000;
	c.flags = (p->v[P_WAKER] ? OFFCPU_F_WAKER : 0) |
		  (p->v[P_USER_STACKS] ? OFFCPU_F_USER_STACK : 0);
	st->max_walks_per_s = p->v[P_MAX_WALKS];
	st->user_stacks = p->v[P_USER_STACKS];
	if (st->max_walks_per_s)
		c.walks_per_tick =
			(uint32_t)MAX(1u, st->max_walks_per_s * OFFCPU_TICK_NS / 1000000000ull);
	err = bpf_map__update_elem(st->skel->maps.offcpu_cfg, &zero, sizeof(zero), &c, sizeof(c),
				   0);
	if (!err)
		err = ustack_capture_start(st->ustack);
	if (err)
		return err;
	st->stopped_ns = 0;
	err = bpf_links_attach(&st->links, st->skel->obj, NULL, NULL, "offcpu");
	st->running = err == 0;
	return err;
}

struct thread_sum {
	uint32_t tgid, pid;
	uint64_t cgroup_id;
	char comm[SCHED_TASK_COMM_LEN];
	uint64_t ns[SCHED_ST_MAX];
	uint64_t blocks, max_ns;
	bool still_blocked;
};

struct thread_table {
	struct thread_sum *v;
	size_t n, cap;
};

/* Rows come grouped by thread (sorted), so a thread is the last entry or new. */
static int thread_add(struct thread_table *t, const struct offcpu_key *k,
		      const struct offcpu_val *v, bool ongoing)
{
	struct thread_sum *s = t->n ? &t->v[t->n - 1] : NULL;

	if (!s || s->pid != k->pid || s->tgid != k->tgid) {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 32;
			struct thread_sum *p = realloc(t->v, cap * sizeof(*p));

			if (!p)
				return -ENOMEM;
			t->v = p;
			t->cap = cap;
		}
		s = &t->v[t->n++];
		memset(s, 0, sizeof(*s));
		s->tgid = k->tgid;
		s->pid = k->pid;
		s->cgroup_id = k->cgroup_id;
		sched_comm(s->comm, k->comm);
	}
	if (k->state < SCHED_ST_MAX)
		s->ns[k->state] += v->total_ns;
	s->still_blocked |= ongoing;
	s->blocks += v->count;
	if (v->max_ns > s->max_ns)
		s->max_ns = v->max_ns;
	return 0;
}

struct count_row {
	struct offcpu_key k;
	struct offcpu_val v;
	bool ongoing;	   /* still blocked when the window ended */
	bool dwarf;	   /* the user stack is uframes (DWARF-unwound), not k.user_stack_id */
	bool short_blocks; /* blocks under min_block_us: the thread's, without stacks */
	const uint64_t *uframes;
	unsigned nu;
};

static int cmp_row_thread(const void *a, const void *b)
{
	const struct count_row *x = a, *y = b;

	if (x->k.tgid != y->k.tgid)
		return x->k.tgid < y->k.tgid ? -1 : 1;
	return x->k.pid < y->k.pid ? -1 : x->k.pid > y->k.pid;
}

static uint64_t thread_total(const struct thread_sum *s)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < SCHED_ST_MAX; i++)
		t += s->ns[i];
	return t;
}

static int cmp_thread(const void *a, const void *b)
{
	uint64_t x = thread_total(a), y = thread_total(b);

	return x > y ? -1 : x < y;
}

static json_t *threads_json(struct offcpu_state *st, struct thread_table *t, unsigned top_n)
{
	json_t *arr = json_array();

	if (t->n)
		qsort(t->v, t->n, sizeof(*t->v), cmp_thread);
	for (size_t i = 0; i < t->n && i < top_n; i++) {
		const struct thread_sum *s = &t->v[i];
		json_t *o = json_object();

		json_object_set_new(o, "pid", json_integer(s->tgid));
		json_object_set_new(o, "tid", json_integer(s->pid));
		json_object_set_new(o, "comm", json_string_clean(s->comm));
		json_object_set_new(o, "blocked_us",
				    json_integer((json_int_t)(thread_total(s) / 1000)));
		json_object_set_new(o, "sleep_us",
				    json_integer((json_int_t)(s->ns[SCHED_ST_SLEEP] / 1000)));
		json_object_set_new(o, "disk_us",
				    json_integer((json_int_t)(s->ns[SCHED_ST_DISK] / 1000)));
		json_object_set_new(
			o, "other_us",
			json_integer((json_int_t)((s->ns[SCHED_ST_IDLE] + s->ns[SCHED_ST_OTHER]) /
						  1000)));
		json_object_set_new(o, "blocks", json_integer((json_int_t)s->blocks));
		json_object_set_new(o, "max_block_us",
				    json_integer((json_int_t)(s->max_ns / 1000)));
		json_object_set_new(o, "still_blocked", json_boolean(s->still_blocked));
		cgroup_json_set(o, st->env.cgroups, s->cgroup_id);
		json_array_append_new(arr, o);
	}
	return arr;
}

static bool has_prefix(const char *s, const char *const *prefixes, size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (strncmp(s, prefixes[j], strlen(prefixes[j])) == 0)
			return true;
	return false;
}

/* The first frame that is not the scheduler itself: where the thread blocked.
 * The tracing glue above the scheduler ends at its first frame: a program
 * loaded after kernel symbols were read has no name of its own there (its
 * address takes the name of whatever precedes it, a module's function on
 * 5.10), so nothing above the scheduler is a candidate. */
static void blocked_in(struct offcpu_state *st, const uint64_t *frames, unsigned n, char *buf,
		       size_t len)
{
	static const char *const sched[] = {"__schedule", "schedule", "preempt_schedule"};
	static const char *const skip[] = {"__schedule",     "schedule", "__traceiter_",
					   "bpf_",	     "__bpf_",	 "preempt_schedule",
					   "trace_call_bpf", "perf_"};
	unsigned first;

	buf[0] = '\0';
	for (first = 0; first < n; first++) {
		stack_frame_text(st->env.sym, 0, frames[first], true, buf, len);
		if (has_prefix(buf, sched, ARRAY_SIZE(sched)))
			break;
	}
	if (first == n)
		first = 0; /* no scheduler frame: from the top */
	for (unsigned i = first; i < n; i++) {
		stack_frame_text(st->env.sym, 0, frames[i], true, buf, len);
		if (!has_prefix(buf, skip, ARRAY_SIZE(skip)))
			return;
	}
}

struct waker_row {
	struct offcpu_waker_key k;
	struct offcpu_val v;
	char blocked_in[128]; /* where the wakee slept, by name */
};

/* Rows that read the same: same wakee, state and place of sleep, same waker
 * and waker frames. The wakee's stack id is left out: two stacks that differ
 * only below the same blocking function read the same. */
static int cmp_waker_row(const void *a, const void *b)
{
	const struct waker_row *x = a, *y = b;
	const struct offcpu_waker_key *p = &x->k, *q = &y->k;
	int c;

	if (p->tgid != q->tgid || p->pid != q->pid)
		return p->pid != q->pid ? (p->pid < q->pid ? -1 : 1) : (p->tgid < q->tgid ? -1 : 1);
	if (p->state != q->state)
		return p->state < q->state ? -1 : 1;
	if (p->waker_pid != q->waker_pid || p->waker_tgid != q->waker_tgid)
		return p->waker_pid != q->waker_pid ? (p->waker_pid < q->waker_pid ? -1 : 1)
						    : (p->waker_tgid < q->waker_tgid ? -1 : 1);
	if ((c = memcmp(p->waker_comm, q->waker_comm, sizeof(p->waker_comm))) ||
	    (c = memcmp(p->comm, q->comm, sizeof(p->comm))) ||
	    (c = memcmp(p->waker_frames, q->waker_frames, sizeof(p->waker_frames))))
		return c;
	return strcmp(x->blocked_in, y->blocked_in);
}

/*
 * Makes rows comparable, then merges those that read the same. The tracing
 * glue at the top of a waker's stack is dropped. A wakeup from an interrupt
 * (a timer for nanosleep, a device completion) runs on the back of whatever
 * task was current: that task is not the waker, so such rows become
 * "[interrupt]", keyed by the interrupt's own frames.
 */
static size_t merge_wakers(struct offcpu_state *st, struct waker_row *rows, size_t n)
{
	uint64_t frames[SCHED_MAX_DEPTH];
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		struct offcpu_waker_key *k = &rows[i].k;
		uint64_t *wf = (uint64_t *)k->waker_frames;
		unsigned nf = MIN(k->waker_nframes, OFFCPU_WAKER_DEPTH), skip, irq, nk;

		rows[i].blocked_in[0] = '\0';
		if (stack_map_read(st->skel->maps.stacks, k->kern_stack_id, frames, SCHED_MAX_DEPTH,
				   &nk) == 0 &&
		    nk)
			blocked_in(st, frames, nk, rows[i].blocked_in, sizeof(rows[i].blocked_in));
		skip = stack_bpf_frames(st->env.sym, wf, nf);
		memmove(wf, wf + skip, (nf - skip) * sizeof(uint64_t));
		nf -= skip;
		memset(wf + nf, 0, (OFFCPU_WAKER_DEPTH - nf) * sizeof(uint64_t));
		k->waker_nframes = nf;
		irq = stack_irq_frames(st->env.sym, wf, nf);
		if (!irq)
			continue;
		k->waker_tgid = 0;
		k->waker_pid = 0;
		memset(k->waker_comm, 0, sizeof(k->waker_comm));
		snprintf(k->waker_comm, sizeof(k->waker_comm), "[interrupt]");
		/* the interrupted task's frames below the entry point are not the waker's */
		memset(wf + irq, 0, (OFFCPU_WAKER_DEPTH - irq) * sizeof(uint64_t));
		k->waker_nframes = irq;
	}
	if (n)
		qsort(rows, n, sizeof(*rows), cmp_waker_row);
	for (size_t i = 0; i < n; i++) {
		if (out && cmp_waker_row(&rows[out - 1], &rows[i]) == 0) {
			rows[out - 1].v.total_ns += rows[i].v.total_ns;
			rows[out - 1].v.count += rows[i].v.count;
			rows[out - 1].v.max_ns = MAX(rows[out - 1].v.max_ns, rows[i].v.max_ns);
			continue;
		}
		rows[out++] = rows[i];
	}
	return out;
}

static int cmp_waker(const void *a, const void *b)
{
	const struct waker_row *x = a, *y = b;

	return x->v.total_ns > y->v.total_ns ? -1 : x->v.total_ns < y->v.total_ns;
}

static json_t *wakers_json(struct offcpu_state *st, unsigned top_n, uint64_t *missing)
{
	int fd = bpf_map__fd(st->skel->maps.wakers);
	struct offcpu_waker_key key, next;
	struct waker_row *rows = NULL;
	size_t n = 0, cap = 0;
	json_t *arr = json_array();
	bool first = true;

	while (bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
		first = false;
		key = next;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct waker_row *p = realloc(rows, ncap * sizeof(*p));

			if (!p)
				break;
			rows = p;
			cap = ncap;
		}
		rows[n].k = key;
		if (bpf_map_lookup_elem(fd, &key, &rows[n].v) == 0)
			n++;
	}
	n = merge_wakers(st, rows, n);
	if (n)
		qsort(rows, n, sizeof(*rows), cmp_waker);
	for (size_t i = 0; i < n && i < top_n; i++) {
		const struct waker_row *r = &rows[i];
		json_t *o = json_object();
		char comm[SCHED_TASK_COMM_LEN];
		unsigned nf;

		sched_comm(comm, r->k.comm);
		json_object_set_new(o, "pid", json_integer(r->k.tgid));
		json_object_set_new(o, "tid", json_integer(r->k.pid));
		json_object_set_new(o, "comm", json_string_clean(comm));
		json_object_set_new(o, "state", json_string_clean(sched_state_name(r->k.state)));
		if (r->blocked_in[0])
			json_object_set_new(o, "blocked_in", json_string_clean(r->blocked_in));
		sched_comm(comm, r->k.waker_comm);
		json_object_set_new(o, "waker_pid", json_integer(r->k.waker_tgid));
		json_object_set_new(o, "waker_tid", json_integer(r->k.waker_pid));
		json_object_set_new(o, "waker_comm",
				    json_string_clean(r->k.waker_pid || comm[0] ? comm : "[idle]"));
		json_object_set_new(o, "blocked_us",
				    json_integer((json_int_t)(r->v.total_ns / 1000)));
		json_object_set_new(o, "wakeups", json_integer((json_int_t)r->v.count));
		nf = MIN(r->k.waker_nframes, OFFCPU_WAKER_DEPTH);
		json_object_set_new(o, "frames",
				    stack_frames_json(st->env.sym, 0,
						      (const uint64_t *)r->k.waker_frames, nf, NULL,
						      0));
		json_array_append_new(arr, o);
	}
	free(rows);
	return arr;
}

/* "comm;frames value" -> "comm;[S];frames value": the state becomes the
 * flame graph's second level. */
static int folded_append_state(struct strbuf *b, const char *folded, const char *state)
{
	for (const char *line = folded; *line;) {
		const char *end = strchr(line, '\n');
		size_t l = end ? (size_t)(end - line) + 1 : strlen(line);
		size_t comm = MIN(strcspn(line, "; "), l);

		strbuf_printf(b, "%.*s;[%s]%.*s", (int)comm, line, state, (int)(l - comm),
			      line + comm);
		line += l;
	}
	return b->err;
}

static int cmp_top_desc(const void *a, const void *b)
{
	json_t *const *x = a, *const *y = b;
	json_int_t vx = json_integer_value(json_object_get(*x, "blocked_us"));
	json_int_t vy = json_integer_value(json_object_get(*y, "blocked_us"));

	return vx > vy ? -1 : vx < vy;
}

/* Appends a row to the table, growing it by doubling. */
static struct count_row *row_new(struct count_row **rows, size_t *n, size_t *cap)
{
	struct count_row *r;

	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		struct count_row *p = realloc(*rows, c * sizeof(*p));

		if (!p)
			return NULL;
		*rows = p;
		*cap = c;
	}
	r = &(*rows)[(*n)++];
	memset(r, 0, sizeof(*r));
	return r;
}

/*
 * Threads still blocked when the window ended have a start record and no
 * switch-in: their time so far counts too, or a thread stuck through the
 * whole window would not show at all.
 */
static int add_ongoing(struct offcpu_state *st, struct count_row **rows, size_t *n, size_t *cap,
		       uint64_t *ongoing)
{
	int fd = bpf_map__fd(st->skel->maps.start);
	uint64_t end = st->stopped_ns ? st->stopped_ns : now_mono_ns();
	uint32_t tid, next;
	struct offcpu_start s;
	bool first = true;

	while (bpf_map_get_next_key(fd, first ? NULL : &tid, &next) == 0) {
		struct count_row *r;

		first = false;
		tid = next;
		if (bpf_map_lookup_elem(fd, &tid, &s) || end <= s.ts ||
		    end - s.ts < st->min_block_us * 1000)
			continue;
		r = row_new(rows, n, cap);
		if (!r)
			return -ENOMEM;
		r->k.tgid = s.tgid;
		r->k.pid = tid;
		r->k.cgroup_id = s.cgroup_id;
		r->k.user_stack_id = s.user_stack_id;
		r->k.kern_stack_id = s.kern_stack_id;
		r->k.state = s.state;
		memcpy(r->k.comm, s.comm, sizeof(r->k.comm));
		r->dwarf = ustack_capture_block(st->ustack, s.ustack_seq, &r->uframes, &r->nu);
		r->v.total_ns = end - s.ts;
		r->v.count = 1;
		r->v.max_ns = end - s.ts;
		r->ongoing = true;
		(*ongoing)++;
	}
	return 0;
}

/* Short blocks, one row per (thread, state): they count for the thread and its
 * process, program and container, and have no stack. */
static int read_short_rows(struct offcpu_state *st, struct count_row **rows, size_t *n, size_t *cap)
{
	int fd = bpf_map__fd(st->skel->maps.short_time);
	struct offcpu_thread_key key, next;
	struct offcpu_val v;
	bool first = true;

	while (bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
		struct count_row *r;

		first = false;
		key = next;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		r = row_new(rows, n, cap);
		if (!r)
			return -ENOMEM;
		r->k.tgid = key.tgid;
		r->k.pid = key.pid;
		r->k.cgroup_id = key.cgroup_id;
		r->k.state = key.state;
		r->k.user_stack_id = r->k.kern_stack_id = -1;
		memcpy(r->k.comm, key.comm, sizeof(r->k.comm));
		r->v = v;
		r->short_blocks = true;
	}
	return 0;
}

struct ustack_rows {
	struct count_row **rows;
	size_t *n, *cap;
};

/* Blocks counted in user space, with their DWARF-unwound user stacks. */
static int offcpu_ustack_row(void *ctx, const struct ustack_row *u)
{
	struct ustack_rows *t = ctx;
	struct count_row *r;

	r = row_new(t->rows, t->n, t->cap);
	if (!r)
		return -ENOMEM;
	r->k.tgid = u->tgid;
	r->k.pid = u->pid;
	r->k.cgroup_id = u->cgroup_id;
	r->k.user_stack_id = -1;
	r->k.kern_stack_id = u->kern_stack_id;
	r->k.state = u->state;
	snprintf(r->k.comm, sizeof(r->k.comm), "%s", u->comm);
	r->v = (struct offcpu_val){u->value, u->count, u->max};
	r->dwarf = true;
	r->uframes = u->frames;
	r->nu = u->nframes;
	return 0;
}

static int offcpu_collect(void *state, struct capture_result *out)
{
	struct offcpu_state *st = state;
	const struct agent_config *cfg = st->env.cfg;
	unsigned top_n = (unsigned)cfg->capture.top_stacks;
	uint64_t stats[OFFCPU_STAT_MAX] = {0};
	uint64_t kframes[SCHED_MAX_DEPTH], uframes[SCHED_MAX_DEPTH];
	struct stackset *ss[NSTATES] = {0};
	struct stackset_render r[NSTATES];
	struct thread_table threads = {0};
	struct offcpu_key key, next;
	struct count_row *rows = NULL;
	size_t nrows = 0, rows_cap = 0;
	uint64_t ongoing = 0;
	int fd = bpf_map__fd(st->skel->maps.counts);
	uint64_t stack_missing = 0, total_ns = 0, short_ns = 0, dropped = 0, folded_dropped = 0;
	json_t *tops = json_array(), *by_state = json_object(), *arr;
	struct strbuf folded = {0};
	struct consumers *cons = NULL;
	bool first = true;
	int err = 0;

	memset(r, 0, sizeof(r));
	err = consumers_new(&cons, &(struct consumers_opts){
					   .measure = "blocked_us",
					   .top_n = CONSUMERS_TOP,
					   .stacks_per = CONSUMERS_STACKS,
					   .sym = st->env.sym,
					   .cgroups = st->env.cgroups,
				   });
	for (unsigned i = 0; i < NSTATES && !err; i++)
		err = stackset_new(&ss[i], (unsigned)cfg->capture.max_stacks);
	if (err)
		goto cleanup;
	percpu_counters_read(st->skel->maps.stats, stats, OFFCPU_STAT_MAX);
	while (bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
		struct count_row *row;

		first = false;
		key = next;
		row = row_new(&rows, &nrows, &rows_cap);
		if (!row) {
			err = -ENOMEM;
			goto cleanup;
		}
		row->k = key;
		if (bpf_map_lookup_elem(fd, &key, &row->v))
			nrows--; /* removed between the two calls */
	}
	err = read_short_rows(st, &rows, &nrows, &rows_cap);
	if (!err)
		err = ustack_capture_foreach(st->ustack, offcpu_ustack_row,
					     &(struct ustack_rows){&rows, &nrows, &rows_cap});
	if (!err)
		err = add_ongoing(st, &rows, &nrows, &rows_cap, &ongoing);
	if (err)
		goto cleanup;
	if (nrows)
		qsort(rows, nrows, sizeof(*rows), cmp_row_thread);
	for (size_t i = 0; i < nrows; i++) {
		struct offcpu_key *k = &rows[i].k;
		struct stack_sample s = {0};
		unsigned si = 0, skip;

		for (unsigned j = 0; j < NSTATES; j++)
			if (offcpu_states[j] == k->state)
				si = j;
		k->comm[sizeof(k->comm) - 1] = '\0';
		if (rows[i].short_blocks) {
			err = thread_add(&threads, k, &rows[i].v, false);
			if (!err)
				err = consumers_add(cons, k->tgid, k->pid, k->comm, k->cgroup_id,
						    rows[i].v.total_ns / 1000, 0);
			if (err)
				goto cleanup;
			short_ns += rows[i].v.total_ns;
			continue;
		}
		if (stack_map_read(st->skel->maps.stacks, k->kern_stack_id, kframes,
				   SCHED_MAX_DEPTH, &s.nk) ||
		    (!rows[i].dwarf && stack_map_read(st->skel->maps.stacks, k->user_stack_id,
						      uframes, SCHED_MAX_DEPTH, &s.nu)))
			stack_missing++;
		skip = stack_bpf_frames(st->env.sym, kframes, s.nk);
		s.tgid = k->tgid;
		s.pid = k->pid;
		s.cgroup_id = k->cgroup_id;
		s.comm = k->comm;
		s.kstack = kframes + skip;
		s.nk -= skip;
		s.ustack = uframes;
		if (rows[i].dwarf) {
			s.ustack = rows[i].uframes;
			s.nu = rows[i].nu;
		}
		s.value = rows[i].v.total_ns / 1000;
		stackset_add(ss[si], &s);
		err = thread_add(&threads, k, &rows[i].v, rows[i].ongoing);
		if (err)
			goto cleanup;
		total_ns += rows[i].v.total_ns;
	}
	for (unsigned i = 0; i < NSTATES; i++) {
		const char *name = sched_state_name(offcpu_states[i]);
		struct stackset_render_opts ro = {
			.top_n = top_n,
			.folded_max = cfg->local.max_incident_size / 2 / NSTATES,
			.value_key = "blocked_us",
			.sym = st->env.sym,
			.cgroups = st->env.cgroups,
			.consumers = cons,
		};
		size_t j;
		json_t *e;

		err = stackset_render(ss[i], &ro, &r[i]);
		if (err)
			goto cleanup;
		json_object_set_new(by_state, name, json_integer((json_int_t)r[i].total));
		json_array_foreach(r[i].top, j, e)
		{
			json_object_set_new(e, "state", json_string_clean(name));
			json_array_append(tops, e);
		}
		err = folded_append_state(&folded, r[i].folded, name);
		if (err)
			goto cleanup;
		folded_dropped += r[i].folded_dropped;
		dropped += stackset_dropped(ss[i]);
	}
	/* one list over all states, largest first, shares of all blocked time */
	{
		size_t n = json_array_size(tops);
		json_t **v = calloc(n ? n : 1, sizeof(*v)), *sorted = json_array();

		if (!v) {
			json_decref(sorted);
			err = -ENOMEM;
			goto cleanup;
		}
		for (size_t i = 0; i < n; i++)
			v[i] = json_array_get(tops, i);
		if (n)
			qsort(v, n, sizeof(*v), cmp_top_desc);
		for (size_t i = 0; i < n && i < top_n; i++) {
			double us = (double)json_integer_value(json_object_get(v[i], "blocked_us"));

			json_object_set_new(
				v[i], "pct",
				json_real(total_ns ? 100.0 * us * 1000 / (double)total_ns : 0));
			json_array_append(sorted, v[i]);
		}
		free(v);
		json_decref(tops);
		tops = sorted;
	}

	out->data = json_object();
	json_object_set_new(out->data, "min_block_us", json_integer((json_int_t)st->min_block_us));
	json_object_set_new(out->data, "blocks",
			    json_integer((json_int_t)stats[OFFCPU_STAT_BLOCKS]));
	json_object_set_new(out->data, "blocks_ongoing", json_integer((json_int_t)ongoing));
	json_object_set_new(out->data, "short_blocks",
			    json_integer((json_int_t)stats[OFFCPU_STAT_SHORT]));
	json_object_set_new(out->data, "short_blocked_us",
			    json_integer((json_int_t)(short_ns / 1000)));
	json_object_set_new(out->data, "max_walks_per_s",
			    json_integer((json_int_t)st->max_walks_per_s));
	json_object_set_new(out->data, "stacks_reused",
			    json_integer((json_int_t)stats[OFFCPU_STAT_REUSED]));
	json_object_set_new(out->data, "waker_stacks_unwalked",
			    json_integer((json_int_t)stats[OFFCPU_STAT_WAKER_UNWALKED]));
	json_object_set_new(out->data, "blocked_us", json_integer((json_int_t)(total_ns / 1000)));
	json_object_set_new(out->data, "blocked_us_by_state", by_state);
	by_state = NULL;
	json_object_set_new(out->data, "tracepoints",
			    json_string_clean(st->btf ? "tp_btf" : "raw_tp"));
	json_object_set_new(
		out->data, "distinct_stacks",
		json_integer((json_int_t)(stackset_count(ss[0]) + stackset_count(ss[1]) +
					  stackset_count(ss[2]) + stackset_count(ss[3]))));
	json_object_set_new(out->data, "folded_stacks_dropped",
			    json_integer((json_int_t)folded_dropped));
	json_object_set_new(out->data, "top_stacks", tops);
	tops = NULL;
	json_object_set_new(out->data, "threads", threads_json(st, &threads, top_n));
	json_object_set_new(out->data, "consumers", consumers_json(cons));
	arr = wakers_json(st, top_n, &stack_missing);
	json_object_set_new(out->data, "wakers", arr);

	json_object_set_new(out->data, "lost",
			    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "start_full",
				      (json_int_t)stats[OFFCPU_STAT_START_FULL], "keys_full",
				      (json_int_t)stats[OFFCPU_STAT_KEYS_FULL], "short_full",
				      (json_int_t)stats[OFFCPU_STAT_SHORT_FULL], "wakers_full",
				      (json_int_t)stats[OFFCPU_STAT_WAKERS_FULL], "stacks",
				      (json_int_t)stats[OFFCPU_STAT_STACK_LOST], "stacks_gone",
				      (json_int_t)stack_missing, "stacks_over_max_stacks",
				      (json_int_t)dropped));
	out->lost_events = stats[OFFCPU_STAT_START_FULL] + stats[OFFCPU_STAT_KEYS_FULL] +
			   stats[OFFCPU_STAT_SHORT_FULL] + stats[OFFCPU_STAT_WAKERS_FULL] +
			   stats[OFFCPU_STAT_STACK_LOST] + stack_missing + dropped;
	{
		uint64_t ulost = ustack_capture_report(st->ustack, out->data);

		json_object_set_new(json_object_get(out->data, "lost"), "unwind",
				    json_integer((json_int_t)ulost));
		out->lost_events += ulost;
	}
	out->partial = out->lost_events > 0 || folded_dropped > 0;
	{
		size_t len;
		char *text = strbuf_take(&folded, &len);

		err = text ? capture_result_add_artifact(out, "offcpu.folded", text, len) : -ENOMEM;
	}
cleanup:
	for (unsigned i = 0; i < NSTATES; i++) {
		stackset_render_clear(&r[i]);
		stackset_free(&ss[i]);
	}
	consumers_free(&cons);
	json_decref(tops);
	json_decref(by_state);
	strbuf_free(&folded);
	free(threads.v);
	free(rows);
	clear_maps(st);
	return err;
}

static void offcpu_release(void *state)
{
	struct offcpu_state *st = state;

	if (!st)
		return;
	offcpu_stop(st);
	ustack_capture_free(&st->ustack);
	bpf_skel_unload(st->skel, &offcpu_skel_ops, "offcpu");
	free(st);
}

/* Once per interval: records the maps of the processes blocked so far while
 * they are alive, so their user frames resolve if they exit before the end. */
static void offcpu_tick(void *state)
{
	struct offcpu_state *st = state;

	if (st->running && st->user_stacks)
		track_key_tgids(st->env.sym, st->skel->maps.counts, sizeof(struct offcpu_key),
				offsetof(struct offcpu_key, tgid),
				offsetof(struct offcpu_key, user_stack_id));
}

const struct capture_ops offcpu_capture = {
	.kind = "offcpu",
	.help = "blocked (off-CPU) time by thread, state (S/D) and kernel + user stack, with "
		"wakers",
	.params = offcpu_params,
	.nparams = ARRAY_SIZE(offcpu_params),
	.prepare = offcpu_prepare,
	.start = offcpu_start,
	.stop = offcpu_stop,
	.collect = offcpu_collect,
	.release = offcpu_release,
	.ring_fd = offcpu_ring_fd,
	.ring_ready = offcpu_ring_ready,
	.tick = offcpu_tick,
};
