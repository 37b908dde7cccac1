// SPDX-License-Identifier: GPL-2.0-only
/* profile capture: loader and reader for profile.bpf.c. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "agent/log.h"
#include "agent/stacks.h"
#include "agent/util.h"
#include "probes/bpfutil.h"
#include "probes/capture.h"
#include "probes/profile.h"
#include "profile.skel.h"

enum { P_FREQUENCY, P_INCLUDE_IDLE };

static const struct capture_param_desc profile_params[] = {
	[P_FREQUENCY] = { "frequency", CPARAM_UINT, 1, 1000, "99",
			  "samples per second per CPU (99 avoids lockstep with timers)" },
	[P_INCLUDE_IDLE] = { "include_idle", CPARAM_BOOL, 0, 1, "false",
			     "also count samples of idle CPUs" },
};

struct profile_state {
	struct profile_bpf *skel;
	struct capture_env env;
	int ncpus;
	struct bpf_link **links;
	int *fds;
	uint64_t frequency;
	int attached; /* CPUs with an event now */
	int cpus;     /* CPUs sampled in the last window */
};

static int profile_prepare(void **out, const struct capture_env *env)
{
	struct profile_state *st;
	int err;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->env = *env;
	st->ncpus = libbpf_num_possible_cpus();
	if (st->ncpus <= 0) {
		err = st->ncpus ? st->ncpus : -EINVAL;
		goto cleanup;
	}
	st->links = calloc((size_t)st->ncpus, sizeof(*st->links));
	st->fds = calloc((size_t)st->ncpus, sizeof(*st->fds));
	if (!st->links || !st->fds) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (int i = 0; i < st->ncpus; i++)
		st->fds[i] = -1;
	st->skel = profile_bpf__open();
	if (!st->skel) {
		err = log_ret(-errno, "profile: opening BPF object: %s", strerror(errno));
		goto cleanup;
	}
	bpf_map__set_max_entries(st->skel->maps.stacks, (uint32_t)env->cfg->capture.max_stacks);
	bpf_map__set_max_entries(st->skel->maps.counts, (uint32_t)env->cfg->capture.max_stacks);
	err = profile_bpf__load(st->skel);
	if (err) {
		err = log_ret(err, "profile: loading BPF programs: %s", strerror(-err));
		goto cleanup;
	}
	bpf_object_log_ids("profile", st->skel->obj);
	*out = st;
	return 0;
cleanup:
	profile_bpf__destroy(st->skel);
	free(st->links);
	free(st->fds);
	free(st);
	return err;
}

static void profile_stop(void *state)
{
	struct profile_state *st = state;

	perf_clock_detach(st->links, st->fds, st->ncpus);
	st->attached = 0;
}

static int profile_start(void *state, const struct capture_target *t, const struct capture_params *p)
{
	struct profile_state *st = state;
	struct capture_filter f;
	int err;

	map_clear(st->skel->maps.counts);
	map_clear(st->skel->maps.stacks);
	percpu_counters_zero(st->skel->maps.stats, PROFILE_STAT_MAX);
	err = capture_filter_fill(&f, t, st->env.cgroups);
	if (err)
		return err;
	if (p->v[P_INCLUDE_IDLE])
		f.flags |= FILTER_F_IDLE;
	err = capture_filter_set(st->skel->maps.filter, &f);
	if (err)
		return err;
	st->frequency = p->v[P_FREQUENCY];
	st->attached = perf_clock_attach(st->skel->progs.profile_sample, st->frequency, st->links,
					 st->fds, st->ncpus);
	st->cpus = st->attached;
	if (st->attached == 0)
		return log_ret(-ENODEV, "profile: no CPU accepted a cpu-clock perf event");
	return 0;
}

static int read_stack(struct profile_state *st, int32_t id, uint64_t *frames, unsigned *n)
{
	*n = 0;
	if (id < 0)
		return 0;
	if (bpf_map__lookup_elem(st->skel->maps.stacks, &id, sizeof(id), frames,
				 PROFILE_MAX_DEPTH * sizeof(uint64_t), 0))
		return -ENOENT;
	while (*n < PROFILE_MAX_DEPTH && frames[*n])
		(*n)++;
	return 0;
}

static int profile_collect(void *state, struct capture_result *out)
{
	struct profile_state *st = state;
	const struct agent_config *cfg = st->env.cfg;
	uint64_t stats[PROFILE_STAT_MAX] = { 0 };
	uint64_t kframes[PROFILE_MAX_DEPTH], uframes[PROFILE_MAX_DEPTH];
	struct profile_key key, next;
	struct stackset *ss = NULL;
	struct stackset_render r = { 0 };
	struct stackset_render_opts ro = {
		.top_n = (unsigned)cfg->capture.top_stacks,
		.folded_max = cfg->local.max_incident_size / 2,
		.value_key = "samples",
		.sym = st->env.sym,
		.cgroups = st->env.cgroups,
	};
	uint64_t stack_missing = 0;
	int fd = bpf_map__fd(st->skel->maps.counts);
	bool first = true;
	int err;

	err = stackset_new(&ss, (unsigned)cfg->capture.max_stacks);
	if (err)
		return err;
	percpu_counters_read(st->skel->maps.stats, stats, PROFILE_STAT_MAX);
	while (bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
		struct stack_sample s = { 0 };
		uint64_t count;

		first = false;
		key = next;
		if (bpf_map_lookup_elem(fd, &key, &count))
			continue;
		if (read_stack(st, key.kern_stack_id, kframes, &s.nk) ||
		    read_stack(st, key.user_stack_id, uframes, &s.nu))
			stack_missing++;
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
	err = stackset_render(ss, &ro, &r);
	if (err)
		goto cleanup;

	out->lost_events = stats[PROFILE_STAT_KEYS_FULL] + stats[PROFILE_STAT_STACK_LOST] +
			   stack_missing + stackset_dropped(ss);
	out->partial = out->lost_events > 0 || r.folded_dropped > 0;
	out->data = json_object();
	json_object_set_new(out->data, "frequency_hz", json_integer((json_int_t)st->frequency));
	json_object_set_new(out->data, "samples", json_integer((json_int_t)stats[PROFILE_STAT_SAMPLES]));
	json_object_set_new(out->data, "idle_samples_skipped",
			    json_integer((json_int_t)stats[PROFILE_STAT_IDLE]));
	json_object_set_new(out->data, "cpus", json_integer(st->cpus));
	json_object_set_new(out->data, "distinct_stacks", json_integer((json_int_t)stackset_count(ss)));
	json_object_set_new(out->data, "folded_stacks_dropped",
			    json_integer((json_int_t)r.folded_dropped));
	json_object_set_new(out->data, "top_stacks", r.top);
	r.top = NULL;
	err = capture_result_add_artifact(out, "profile.folded", r.folded, r.folded_len);
	r.folded = NULL;
cleanup:
	stackset_render_clear(&r);
	stackset_free(&ss);
	map_clear(st->skel->maps.counts);
	map_clear(st->skel->maps.stacks);
	return err;
}

static void profile_release(void *state)
{
	struct profile_state *st = state;

	if (!st)
		return;
	profile_stop(st);
	bpf_owner_forget("profile");
	profile_bpf__destroy(st->skel);
	free(st->links);
	free(st->fds);
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
};
