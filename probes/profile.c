// SPDX-License-Identifier: GPL-2.0-only
/* profile capture: loader and reader for profile.bpf.c. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/config.h"
#include "base/consumers.h"
#include "base/log.h"
#include "base/stacks.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "probes/bpfutil.h"
#include "probes/capture.h"
#include "probes/profile.h"
#include "probes/stackstore.h"
#include "probes/ustack.h"
#include "profile.skel.h"

enum { P_FREQUENCY, P_INCLUDE_IDLE };

static const struct capture_param_desc profile_params[] = {
	[P_FREQUENCY] = {"frequency", CPARAM_UINT, 1, 1000, "99",
			 "samples per second per CPU (99 avoids lockstep with timers)"},
	[P_INCLUDE_IDLE] = {"include_idle", CPARAM_BOOL, 0, 1, "false",
			    "also count samples of idle CPUs"},
};

#define CPU_RECHECK_NS 1000000000ull /* how often a window looks for CPUs that came online */

struct profile_state {
	struct profile_bpf *skel;
	struct capture_env env;
	int ncpus;
	struct bpf_link **links;
	int *fds;
	bool *seen;	      /* CPUs sampled at some point of the window */
	unsigned stack_depth; /* frames per stack: 127, or what perf_event_max_stack allows */
	int timer_fd;	      /* CPU hotplug recheck while a window runs */
	bool running;
	uint64_t frequency;	       /* samples/s per CPU in this window */
	uint64_t requested_hz;	       /* what the rule asked for */
	int attached;		       /* CPUs with an event now */
	int cpus;		       /* CPUs sampled at some point of the window */
	int cpus_added;		       /* of those, CPUs that came online during it */
	struct ustack_capture *ustack; /* DWARF user stacks; NULL: off */
};

/* kernel.perf_event_max_sample_rate: perf_event_open refuses frequencies above it */
static uint64_t max_sample_rate(void)
{
	FILE *f = fopen("/proc/sys/kernel/perf_event_max_sample_rate", "re");
	unsigned long long v = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

BPF_SKEL_OPS(profile);

static int configure(void *skel, void *ctx)
{
	struct profile_bpf *s = skel;
	const struct profile_state *st = ctx;

	int err;

	bpf_map__set_max_entries(s->maps.counts, (uint32_t)st->env.cfg->capture.max_stacks);
	err = stackstore_size(s->obj, (unsigned)st->env.cfg->capture.max_stacks, st->stack_depth);
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
static int profile_ustack_attach(struct profile_state *st)
{
	struct profile_bpf *sk = st->skel;
	int err = ustack_capture_new(&st->ustack,
				     sk->rodata->ustack_enabled ? st->env.ustack : NULL, "profile",
				     &(struct ustack_capture_maps){
					     .rb = sk->maps.ustack_rb,
					     .modes = sk->maps.ustack_modes,
					     .stats = sk->maps.ustack_stats,
					     .paused = &sk->bss->ustack_paused,
					     .user_stacks = sk->maps.stacks,
				     });

	if (!err && st->ustack)
		err = ustack_capture_watch_fd(st->ustack, st->timer_fd);
	if (err) {
		ustack_capture_free(&st->ustack);
		return log_ret(err, "profile: DWARF user stacks: %s", strerror(-err));
	}
	return 0;
}

static int profile_prepare(void **out, const struct capture_env *env)
{
	struct profile_state *st;
	void *skel;
	int err;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->timer_fd = -1;
	st->env = *env;
	st->ncpus = libbpf_num_possible_cpus();
	if (st->ncpus <= 0) {
		err = st->ncpus ? st->ncpus : -EINVAL;
		goto cleanup;
	}
	st->links = calloc((size_t)st->ncpus, sizeof(*st->links));
	st->fds = calloc((size_t)st->ncpus, sizeof(*st->fds));
	st->seen = calloc((size_t)st->ncpus, sizeof(*st->seen));
	if (!st->links || !st->fds || !st->seen) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (int i = 0; i < st->ncpus; i++)
		st->fds[i] = -1;
	st->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (st->timer_fd < 0) {
		err = log_ret(-errno, "profile: timerfd: %s", strerror(errno));
		goto cleanup;
	}
	/* the kernel refuses stack maps deeper than kernel.perf_event_max_stack */
	st->stack_depth = stack_depth_limit(PROFILE_MAX_DEPTH);
	if (st->stack_depth < PROFILE_MAX_DEPTH)
		log_warn("profile: kernel.perf_event_max_stack=%u: stacks keep at most %u frames "
			 "(raise it to %u for deeper stacks; takes effect on restart)",
			 st->stack_depth, st->stack_depth, PROFILE_MAX_DEPTH);
	err = bpf_skel_load(
		&skel, NULL, &profile_skel_ops,
		&(struct bpf_load_opts){.owner = "profile", .configure = configure, .ctx = st});
	if (err)
		goto cleanup;
	st->skel = skel;
	err = profile_ustack_attach(st);
	if (err) {
		bpf_skel_unload(st->skel, &profile_skel_ops, "profile");
		goto cleanup;
	}
	*out = st;
	return 0;
cleanup:
	if (st->timer_fd >= 0)
		close(st->timer_fd);
	free(st->links);
	free(st->fds);
	free(st->seen);
	free(st);
	return err;
}

static void profile_stop(void *state)
{
	struct profile_state *st = state;
	struct itimerspec off = {0};

	st->running = false;
	timerfd_settime(st->timer_fd, 0, &off, NULL);
	perf_clock_detach(st->links, st->fds, st->ncpus);
	st->attached = 0;
	ustack_capture_stop(st->ustack);
}

/* the timer, and the DWARF stack records when there are any (they wait on both) */
static int profile_timer_fd(void *state)
{
	struct profile_state *st = state;

	return st->ustack ? ustack_capture_fd(st->ustack) : st->timer_fd;
}

/* Once a second while a window runs: CPUs that came online get an event too,
 * and the processes sampled so far are tracked while they are alive. */
static void profile_timer_ready(void *state)
{
	struct profile_state *st = state;
	uint64_t ticks;
	bool tick = false;
	int added;

	ustack_capture_poll(st->ustack);
	while (read(st->timer_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
		tick = true;
	if (!st->running || !tick)
		return;
	/* processes sampled so far, read while alive: they may exit before the end */
	track_key_tgids(st->env.sym, st->skel->maps.counts, sizeof(struct profile_key),
			offsetof(struct profile_key, tgid),
			offsetof(struct profile_key, user_stack_id));
	added = perf_clock_refresh(st->skel->progs.profile_sample, st->frequency, st->links,
				   st->fds, st->ncpus);
	if (added > 0)
		st->cpus_added += added;
	st->attached = 0;
	for (int c = 0; c < st->ncpus; c++) {
		if (st->fds[c] < 0)
			continue;
		st->attached++;
		if (!st->seen[c]) {
			st->seen[c] = true;
			st->cpus++;
		}
	}
}

static int profile_start(void *state, const struct capture_target *t,
			 const struct capture_params *p)
{
	struct profile_state *st = state;
	struct capture_filter f;
	uint64_t max_rate;
	int err;

	map_clear(st->skel->maps.counts);
	stackstore_reset(st->skel->obj);
	percpu_counters_zero(st->skel->maps.stats, PROFILE_STAT_MAX);
	err = capture_filter_fill(&f, t, st->env.cgroups);
	if (err)
		return err;
	if (p->v[P_INCLUDE_IDLE])
		f.flags |= FILTER_F_IDLE;
	err = capture_filter_set(st->skel->maps.filter, &f);
	if (!err)
		err = ustack_capture_start(st->ustack);
	if (err)
		return err;
	st->requested_hz = p->v[P_FREQUENCY];
	st->frequency = st->requested_hz;
	max_rate = max_sample_rate();
	if (max_rate && st->frequency > max_rate) {
		log_warn("profile: %llu Hz is above kernel.perf_event_max_sample_rate: sampling at "
			 "%llu Hz",
			 (unsigned long long)st->frequency, (unsigned long long)max_rate);
		st->frequency = max_rate;
	}
	st->attached = perf_clock_attach(st->skel->progs.profile_sample, st->frequency, st->links,
					 st->fds, st->ncpus);
	st->cpus = st->attached;
	st->cpus_added = 0;
	for (int c = 0; c < st->ncpus; c++)
		st->seen[c] = st->fds[c] >= 0;
	if (st->attached == 0)
		return log_ret(-ENODEV, "profile: no CPU accepted a cpu-clock perf event");
	st->running = true;
	timerfd_settime(st->timer_fd, 0,
			&(struct itimerspec){.it_interval = {.tv_sec = CPU_RECHECK_NS / 1000000000},
					     .it_value = {.tv_sec = CPU_RECHECK_NS / 1000000000}},
			NULL);
	return 0;
}

struct ustack_rows {
	struct profile_state *st;
	struct stackset *ss;
	uint64_t *kframes;
	uint64_t truncated, stack_missing;
};

/* A sample counted in user space, with its DWARF-unwound user stack. */
static int profile_ustack_row(void *ctx, const struct ustack_row *r)
{
	struct ustack_rows *u = ctx;
	struct stack_sample s = {0};

	if (stack_map_read(u->st->skel->maps.stacks, r->kern_stack_id, u->kframes,
			   PROFILE_MAX_DEPTH, &s.nk))
		u->stack_missing++;
	if (s.nk == u->st->stack_depth || r->nframes >= USTACK_MAX_FRAMES)
		u->truncated += r->value;
	s.tgid = r->tgid;
	s.pid = r->pid;
	s.cgroup_id = r->cgroup_id;
	s.comm = r->comm;
	s.kstack = u->kframes;
	s.ustack = r->frames;
	s.nu = r->nframes;
	s.value = r->value;
	stackset_add(u->ss, &s);
	return 0;
}

static int profile_collect(void *state, struct capture_result *out)
{
	struct profile_state *st = state;
	const struct agent_config *cfg = st->env.cfg;
	uint64_t stats[PROFILE_STAT_MAX] = {0};
	uint64_t kframes[PROFILE_MAX_DEPTH], uframes[PROFILE_MAX_DEPTH], truncated = 0;
	struct profile_key key, next;
	struct stackset *ss = NULL;
	struct stackset_render r = {0};
	struct stackset_render_opts ro = {
		.top_n = (unsigned)cfg->capture.top_stacks,
		.folded_max = cfg->local.max_incident_size / 2,
		.value_key = "samples",
		.sym = st->env.sym,
		.cgroups = st->env.cgroups,
	};
	uint64_t stack_missing = 0;
	json_t *lost;
	int fd = bpf_map__fd(st->skel->maps.counts);
	bool first = true;
	int err;

	err = stackset_new(&ss, (unsigned)cfg->capture.max_stacks);
	if (!err)
		err = consumers_new(&ro.consumers, &(struct consumers_opts){
							   .measure = "samples",
							   .top_n = CONSUMERS_TOP,
							   .stacks_per = CONSUMERS_STACKS,
							   .sym = st->env.sym,
							   .cgroups = st->env.cgroups,
						   });
	if (err)
		goto cleanup;
	percpu_counters_read(st->skel->maps.stats, stats, PROFILE_STAT_MAX);
	while (bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
		struct stack_sample s = {0};
		uint64_t count;

		first = false;
		key = next;
		if (bpf_map_lookup_elem(fd, &key, &count))
			continue;
		if (stack_map_read(st->skel->maps.stacks, key.kern_stack_id, kframes,
				   PROFILE_MAX_DEPTH, &s.nk) ||
		    stack_map_read(st->skel->maps.stacks, key.user_stack_id, uframes,
				   PROFILE_MAX_DEPTH, &s.nu))
			stack_missing++;
		/* a stack that fills every frame was most likely cut there */
		if (s.nk == st->stack_depth || s.nu == st->stack_depth)
			truncated += count;
		key.comm[sizeof(key.comm) - 1] = '\0';
		s.tgid = key.tgid;
		s.pid = key.pid;
		s.cgroup_id = key.cgroup_id;
		s.comm = key.comm;
		s.kstack = kframes;
		s.ustack = uframes;
		s.value = count;
		stackset_add(ss, &s);
	}
	{
		struct ustack_rows u = {.st = st, .ss = ss, .kframes = kframes};

		ustack_capture_foreach(st->ustack, profile_ustack_row, &u);
		truncated += u.truncated;
		stack_missing += u.stack_missing;
	}
	err = stackset_render(ss, &ro, &r);
	if (err)
		goto cleanup;

	out->lost_events = stats[PROFILE_STAT_KEYS_FULL] + stats[PROFILE_STAT_STACK_LOST] +
			   stack_missing + stackset_dropped(ss);
	out->partial = out->lost_events > 0 || r.folded_dropped > 0;
	out->data = json_object();
	json_object_set_new(out->data, "frequency_hz", json_integer((json_int_t)st->frequency));
	if (st->frequency != st->requested_hz)
		json_object_set_new(out->data, "frequency_requested_hz",
				    json_integer((json_int_t)st->requested_hz));
	json_object_set_new(out->data, "samples",
			    json_integer((json_int_t)stats[PROFILE_STAT_SAMPLES]));
	json_object_set_new(out->data, "idle_samples_skipped",
			    json_integer((json_int_t)stats[PROFILE_STAT_IDLE]));
	json_object_set_new(out->data, "cpus", json_integer(st->cpus));
	json_object_set_new(out->data, "cpus_added", json_integer(st->cpus_added));
	json_object_set_new(out->data, "max_stack_depth", json_integer(st->stack_depth));
	json_object_set_new(out->data, "samples_truncated_stacks",
			    json_integer((json_int_t)truncated));
	json_object_set_new(out->data, "samples_unreadable_user_stacks",
			    json_integer((json_int_t)stats[PROFILE_STAT_USER_UNREADABLE]));
	json_object_set_new(out->data, "distinct_stacks",
			    json_integer((json_int_t)stackset_count(ss)));
	json_object_set_new(out->data, "folded_stacks_dropped",
			    json_integer((json_int_t)r.folded_dropped));
	lost = json_object();
	json_object_set_new(lost, "keys_full",
			    json_integer((json_int_t)stats[PROFILE_STAT_KEYS_FULL]));
	json_object_set_new(
		lost, "stacks",
		json_integer((json_int_t)(stats[PROFILE_STAT_STACK_LOST] + stack_missing)));
	json_object_set_new(lost, "stacks_over_max_stacks",
			    json_integer((json_int_t)stackset_dropped(ss)));
	json_object_set_new(out->data, "lost", lost);
	{
		uint64_t ulost = ustack_capture_report(st->ustack, out->data);

		json_object_set_new(lost, "unwind", json_integer((json_int_t)ulost));
		out->lost_events += ulost;
		out->partial |= ulost > 0;
	}
	json_object_set_new(out->data, "top_stacks", r.top);
	r.top = NULL;
	json_object_set_new(out->data, "consumers", consumers_json(ro.consumers));
	err = capture_result_add_artifact(out, "profile.folded", r.folded, r.folded_len);
	r.folded = NULL;
cleanup:
	stackset_render_clear(&r);
	stackset_free(&ss);
	consumers_free(&ro.consumers);
	map_clear(st->skel->maps.counts);
	stackstore_reset(st->skel->obj);
	return err;
}

static void profile_release(void *state)
{
	struct profile_state *st = state;

	if (!st)
		return;
	profile_stop(st);
	ustack_capture_free(&st->ustack);
	bpf_skel_unload(st->skel, &profile_skel_ops, "profile");
	close(st->timer_fd);
	free(st->links);
	free(st->fds);
	free(st->seen);
	free(st);
}

const struct capture_ops profile_capture = {
	.kind = "profile",
	.help = "on-CPU stacks (kernel + user) sampled on every CPU",
	.params = profile_params,
	.nparams = sizeof(profile_params) / sizeof(profile_params[0]),
	.prepare = profile_prepare,
	.start = profile_start,
	.stop = profile_stop,
	.collect = profile_collect,
	.release = profile_release,
	.ring_fd = profile_timer_fd,
	.ring_ready = profile_timer_ready,
};
