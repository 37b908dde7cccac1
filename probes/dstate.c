// SPDX-License-Identifier: GPL-2.0-only
/* dstate capture: snapshots of the target's tasks in D state (task iterator +
 * bpf_get_task_stack) at the start of the window, every interval, and at the
 * end; stacks matching known-issue patterns are labelled. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/consumers.h"
#include "base/log.h"
#include "base/stacks.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "base/sanitize.h"
#include "probes/bpfutil.h"
#include "probes/capture.h"
#include "probes/dstate.h"
#include "dstate.skel.h"

#define DSTATE_MAX_TASKS    4096 /* distinct tasks remembered over a window */
#define DSTATE_MAX_PATTERNS 32	 /* a rule's own patterns */

enum { P_THRESHOLD, P_INTERVAL, P_PATTERNS };

static int pattern_check(const char *entry, char *why, size_t whylen);

static const struct capture_param_desc dstate_params[] = {
	[P_THRESHOLD] = {"threshold", CPARAM_DURATION, 0, 3600000, "500ms",
			 "report tasks blocked in D state at least this long"},
	[P_INTERVAL] = {"interval", CPARAM_DURATION, 0, 60000, "1s",
			"snapshot period within the window (0: only at its start and end)"},
	[P_PATTERNS] = {"patterns", CPARAM_STRINGS, 0, DSTATE_MAX_PATTERNS, "",
			"known-issue labels, 'label=glob|glob...' over kernel function names, "
			"checked before the built-in ones",
			pattern_check},
};

/* Known causes of long D states, most specific first: the first pattern with a
 * glob matching any kernel frame labels the task. */
static const struct {
	const char *label;
	const char *globs;
} builtin_patterns[] = {
	{"vfork wait", "__do_sys_vfork|__x64_sys_vfork|wait_for_vfork_done"},
	{"jbd2 journal", "jbd2_*|__jbd2_*|start_this_handle|wait_transaction_locked|"
			 "add_transaction_credits"},
	{"xfs log", "xlog_*|xfs_log_force*|xfs_trans_reserve"},
	{"nfs server", "nfs_*|nfs4_*|rpc_wait_bit_killable|__rpc_execute"},
	{"fuse daemon", "fuse_*|request_wait_answer"},
	{"writeback throttling",
	 "balance_dirty_pages*|wbt_wait|rq_qos_wait|wb_wait_for_completion"},
	{"memory reclaim", "try_to_free_pages|try_to_free_mem_cgroup_pages|shrink_*|"
			   "reclaim_throttle|throttle_direct_reclaim|__alloc_pages_slowpath*|"
			   "compact_zone*|mem_cgroup_handle_over_high"},
	{"fsync flush", "do_fsync|vfs_fsync_range|file_write_and_wait_range|filemap_fdatawait*|"
			"blkdev_issue_flush|submit_bio_wait"},
	{"page lock or writeback",
	 "folio_wait_bit*|__folio_lock*|folio_wait_writeback|wait_on_page_bit*|__lock_page*"},
	{"block IO", "io_schedule*|blk_mq_get_tag|bit_wait_io|blk_*"},
	{"rcu grace period", "synchronize_rcu*|wait_rcu_gp|__wait_rcu_gp|synchronize_srcu*"},
	{"mmap_lock", "lock_mm_and_find_vma|mmap_*lock*"},
	{"mutex", "__mutex_lock*|mutex_lock*"},
	{"rwsem", "rwsem_down_*|down_read*|down_write*|percpu_down_*|percpu_rwsem_wait"},
	{"completion", "wait_for_completion*|__wait_for_common"},
};

struct dstate_task {
	uint32_t tgid, pid;
	uint64_t cgroup_id;
	char comm[SCHED_TASK_COMM_LEN];
	uint32_t state;
	uint64_t blocked_ns;	/* longest seen */
	uint64_t last_arrival;	/* of the latest sighting */
	uint64_t start_arrival; /* of the start snapshot's sighting */
	bool at_start, at_end;
	unsigned snapshots;
	unsigned nframes;
	uint64_t frames[SCHED_MAX_DEPTH]; /* latest stack */
};

struct dstate_state {
	struct dstate_bpf *skel;
	struct capture_env env;
	struct bpf_link *iter;
	int timerfd;
	bool running;
	uint64_t threshold_ms, interval_ms;
	struct capture_params params; /* the rule's patterns */
	struct dstate_task *tasks;
	size_t ntasks;
	uint64_t dropped;
	unsigned snapshots;
	uint64_t snapshot_errors;
	char *buf;
	size_t buf_len;
};

#define READ_BUF (64 * 1024)

static int pattern_check(const char *entry, char *why, size_t whylen)
{
	const char *eq = strchr(entry, '=');
	const char *globs = eq ? eq + 1 : entry;

	if (eq == entry) {
		snprintf(why, whylen, "'%s': empty label before '='", entry);
		return -EINVAL;
	}
	if (!*globs) {
		snprintf(why, whylen, "'%s': no function glob after '='", entry);
		return -EINVAL;
	}
	for (const char *g = globs; *g;) {
		size_t len = strcspn(g, "|");

		if (len == 0 || strspn(g, " \t") >= len) {
			snprintf(why, whylen, "'%s': empty glob", entry);
			return -EINVAL;
		}
		g += len + (g[len] == '|');
		if (g[-1] == '|' && !*g) {
			snprintf(why, whylen, "'%s': empty glob at the end", entry);
			return -EINVAL;
		}
	}
	return 0;
}

/* Does any name match one of the '|'-separated globs? */
static bool globs_match(const char *globs, size_t globs_len, char (*names)[128], unsigned n)
{
	char glob[CAPTURE_PARAM_ENTRY];

	for (size_t off = 0; off < globs_len;) {
		size_t len = strcspn(globs + off, "|");

		if (len > globs_len - off)
			len = globs_len - off;
		snprintf(glob, sizeof(glob), "%.*s", (int)len, globs + off);
		for (unsigned i = 0; i < n; i++)
			if (fnmatch(glob, names[i], 0) == 0)
				return true;
		off += len + 1;
	}
	return false;
}

/* The label of a stack: the rule's patterns first, then the built-in ones. */
static const char *label_of(const struct capture_params *p, char (*names)[128], unsigned n,
			    char *buf, size_t len)
{
	for (const char *e = capture_param_next_string(p, P_PATTERNS, NULL); e;
	     e = capture_param_next_string(p, P_PATTERNS, e)) {
		const char *eq = strchr(e, '=');
		const char *globs = eq ? eq + 1 : e;

		if (globs_match(globs, strlen(globs), names, n)) {
			snprintf(buf, len, "%.*s", eq ? (int)(eq - e) : (int)strlen(e), e);
			return buf;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(builtin_patterns); i++)
		if (globs_match(builtin_patterns[i].globs, strlen(builtin_patterns[i].globs), names,
				n))
			return builtin_patterns[i].label;
	return NULL;
}

BPF_SKEL_OPS(dstate);

static int dstate_prepare(void **out, const struct capture_env *env)
{
	struct dstate_state *st = calloc(1, sizeof(*st));
	void *skel;
	int err;

	if (!st)
		return -ENOMEM;
	st->env = *env;
	st->timerfd = -1;
	st->buf = malloc(READ_BUF);
	if (!st->buf) {
		err = -ENOMEM;
		goto cleanup;
	}
	st->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (st->timerfd < 0) {
		err = log_ret(-errno, "dstate: timerfd: %s", strerror(errno));
		goto cleanup;
	}
	err = bpf_skel_load(&skel, NULL, &dstate_skel_ops,
			    &(struct bpf_load_opts){.owner = "dstate"});
	if (err)
		goto cleanup;
	st->skel = skel;
	*out = st;
	return 0;
cleanup:
	if (st->timerfd >= 0)
		close(st->timerfd);
	free(st->buf);
	free(st);
	return err;
}

enum snap_kind { SNAP_START, SNAP_MID, SNAP_END };

static struct dstate_task *task_slot(struct dstate_state *st, const struct dstate_rec *r)
{
	for (size_t i = 0; i < st->ntasks; i++)
		if (st->tasks[i].pid == r->pid && st->tasks[i].tgid == r->tgid)
			return &st->tasks[i];
	if (st->ntasks >= DSTATE_MAX_TASKS) {
		st->dropped++;
		return NULL;
	}
	if (!st->tasks) {
		st->tasks = calloc(DSTATE_MAX_TASKS, sizeof(*st->tasks));
		if (!st->tasks) {
			st->dropped++;
			return NULL;
		}
	}
	memset(&st->tasks[st->ntasks], 0, sizeof(st->tasks[0]));
	return &st->tasks[st->ntasks++];
}

static void record(struct dstate_state *st, const struct dstate_rec *r, enum snap_kind kind)
{
	struct dstate_task *t;

	if (r->type != DSTATE_REC_TASK)
		return;
	t = task_slot(st, r);
	if (!t)
		return;
	t->tgid = r->tgid;
	t->pid = r->pid;
	t->cgroup_id = r->cgroup_id;
	sched_comm(t->comm, r->comm);
	t->state = r->state;
	if (r->blocked_ns > t->blocked_ns)
		t->blocked_ns = r->blocked_ns;
	t->last_arrival = r->last_arrival;
	t->snapshots++;
	if (kind == SNAP_START) {
		t->at_start = true;
		t->start_arrival = r->last_arrival;
	}
	if (kind == SNAP_END)
		t->at_end = true;
	if (r->nframes > 0) {
		t->nframes = (unsigned)MIN(r->nframes, SCHED_MAX_DEPTH);
		memcpy(t->frames, r->frames, t->nframes * sizeof(uint64_t));
	}
}

/* One pass of the iterator: every target task in D state now. */
static int snapshot(struct dstate_state *st, enum snap_kind kind)
{
	size_t have = 0;
	int fd, err = 0;

	if (!st->iter)
		return -ENOENT;
	fd = bpf_iter_create(bpf_link__fd(st->iter));
	if (fd < 0) {
		st->snapshot_errors++;
		return log_ret(-errno, "dstate: starting the task iterator: %s", strerror(errno));
	}
	for (;;) {
		ssize_t n = read(fd, st->buf + have, READ_BUF - have);
		size_t off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			st->snapshot_errors++;
			break;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		/* whole records only; a partial one waits for the next read */
		for (; have - off >= sizeof(struct dstate_rec); off += sizeof(struct dstate_rec))
			record(st, (const struct dstate_rec *)(st->buf + off), kind);
		memmove(st->buf, st->buf + off, have - off);
		have -= off;
	}
	close(fd);
	st->snapshots++;
	return err;
}

static void arm_timer(struct dstate_state *st, uint64_t ms)
{
	struct itimerspec its = {0};

	its.it_value.tv_sec = (time_t)(ms / 1000);
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
	its.it_interval = its.it_value;
	timerfd_settime(st->timerfd, 0, &its, NULL);
}

static void dstate_stop(void *state)
{
	struct dstate_state *st = state;

	arm_timer(st, 0);
	if (st->running)
		snapshot(st, SNAP_END);
	st->running = false;
	bpf_link__destroy(st->iter);
	st->iter = NULL;
}

static int dstate_start(void *state, const struct capture_target *t, const struct capture_params *p)
{
	struct dstate_state *st = state;
	struct dstate_config c = {0};
	struct capture_filter f;
	uint32_t zero = 0;
	uint64_t junk;
	int err;

	st->ntasks = 0;
	st->dropped = 0;
	st->snapshots = 0;
	st->snapshot_errors = 0;
	percpu_counters_zero(st->skel->maps.stats, DSTATE_STAT_MAX);
	/* expirations left from an earlier window must not count */
	while (read(st->timerfd, &junk, sizeof(junk)) > 0)
		;
	err = capture_filter_fill(&f, t, st->env.cgroups);
	if (err)
		return err;
	err = capture_filter_set(st->skel->maps.filter, &f);
	if (!err)
		err = sched_set_self(st->skel->maps.sched_self, t);
	if (err)
		return err;
	st->threshold_ms = p->v[P_THRESHOLD];
	st->interval_ms = p->v[P_INTERVAL];
	st->params = *p;
	c.threshold_ns = st->threshold_ms * 1000000;
	err = bpf_map__update_elem(st->skel->maps.dstate_cfg, &zero, sizeof(zero), &c, sizeof(c),
				   0);
	if (err)
		return err;
	st->iter = bpf_program__attach_iter(st->skel->progs.dstate_iter, NULL);
	if (!st->iter)
		return log_ret(-errno, "dstate: attaching the task iterator: %s", strerror(errno));
	st->running = true;
	err = snapshot(st, SNAP_START);
	if (err)
		return err;
	if (st->interval_ms)
		arm_timer(st, st->interval_ms);
	return 0;
}

static int dstate_ring_fd(void *state)
{
	struct dstate_state *st = state;

	return st->interval_ms ? st->timerfd : -1;
}

/* The snapshot timer fired (or the window ended and this drains it). */
static void dstate_ring_ready(void *state)
{
	struct dstate_state *st = state;
	uint64_t expirations = 0;

	if (read(st->timerfd, &expirations, sizeof(expirations)) != sizeof(expirations) ||
	    !expirations || !st->running)
		return;
	snapshot(st, SNAP_MID);
}

static int cmp_blocked(const void *a, const void *b)
{
	const struct dstate_task *x = a, *y = b;

	return x->blocked_ns > y->blocked_ns ? -1 : x->blocked_ns < y->blocked_ns;
}

struct label_count {
	const char *label;
	unsigned tasks;
};

static int dstate_collect(void *state, struct capture_result *out)
{
	struct dstate_state *st = state;
	const struct agent_config *cfg = st->env.cfg;
	uint64_t stats[DSTATE_STAT_MAX] = {0};
	struct stackset *ss = NULL;
	struct stackset_render r = {0};
	struct stackset_render_opts ro = {
		.top_n = 1,
		.folded_max = cfg->local.max_incident_size / 4,
		.value_key = "blocked_ms",
		.sym = st->env.sym,
		.cgroups = st->env.cgroups,
	};
	struct consumers_opts co = {
		.measure = "stuck_ms",
		.top_n = CONSUMERS_TOP,
		.stacks_per = CONSUMERS_STACKS,
		.sym = st->env.sym,
		.cgroups = st->env.cgroups,
	};
	struct label_count labels[ARRAY_SIZE(builtin_patterns) + DSTATE_MAX_PATTERNS + 1];
	char(*names)[128] = NULL;
	char rule_labels[DSTATE_MAX_PATTERNS + 1][CAPTURE_PARAM_ENTRY];
	unsigned nlabels = 0, nrule_labels = 0, at_start = 0, at_end = 0, stayed = 0;
	json_t *tasks = json_array(), *larr = json_array();
	size_t limit = MAX((size_t)cfg->capture.top_stacks, 50);
	int err;

	percpu_counters_read(st->skel->maps.stats, stats, DSTATE_STAT_MAX);
	err = stackset_new(&ss, DSTATE_MAX_TASKS);
	if (!err)
		err = consumers_new(&ro.consumers, &co);
	names = calloc(SCHED_MAX_DEPTH, sizeof(*names));
	if (err || !names) {
		err = err ? err : -ENOMEM;
		goto cleanup;
	}
	if (st->ntasks)
		qsort(st->tasks, st->ntasks, sizeof(*st->tasks), cmp_blocked);
	for (size_t i = 0; i < st->ntasks; i++) {
		struct dstate_task *t = &st->tasks[i];
		bool same_sleep = t->at_start && t->at_end && t->start_arrival == t->last_arrival;
		struct stack_sample s = {
			.tgid = t->tgid,
			.pid = t->pid,
			.cgroup_id = t->cgroup_id,
			.comm = t->comm,
			.kstack = t->frames,
			.nk = t->nframes,
			.value = t->blocked_ns / 1000000,
		};
		char labelbuf[CAPTURE_PARAM_ENTRY];
		const char *label;
		unsigned l;

		at_start += t->at_start;
		at_end += t->at_end;
		stayed += same_sleep;
		for (unsigned j = 0; j < t->nframes; j++)
			stack_frame_text(st->env.sym, 0, t->frames[j], true, names[j],
					 sizeof(names[j]));
		label = label_of(&st->params, names, t->nframes, labelbuf, sizeof(labelbuf));
		if (label == labelbuf) {
			/* a rule's label: keep a copy that outlives this iteration */
			for (l = 0; l < nrule_labels; l++)
				if (!strcmp(rule_labels[l], labelbuf))
					break;
			if (l == nrule_labels && nrule_labels < ARRAY_SIZE(rule_labels))
				snprintf(rule_labels[nrule_labels++], CAPTURE_PARAM_ENTRY, "%s",
					 labelbuf);
			label = l < ARRAY_SIZE(rule_labels) ? rule_labels[l] : NULL;
		}
		if (label) {
			for (l = 0; l < nlabels; l++)
				if (labels[l].label == label)
					break;
			if (l == nlabels && nlabels < ARRAY_SIZE(labels))
				labels[nlabels++] = (struct label_count){label, 0};
			if (l < nlabels)
				labels[l].tasks++;
		}
		stackset_add(ss, &s);
		if (i >= limit)
			continue;

		json_t *o = json_object();

		json_object_set_new(o, "pid", json_integer(t->tgid));
		json_object_set_new(o, "tid", json_integer(t->pid));
		json_object_set_new(o, "comm", json_string_clean(t->comm));
		json_object_set_new(o, "blocked_ms",
				    json_integer((json_int_t)(t->blocked_ns / 1000000)));
		json_object_set_new(o, "wchan", json_string_clean(t->nframes ? names[0] : ""));
		json_object_set_new(o, "label", label ? json_string_clean(label) : json_null());
		json_object_set_new(o, "at_start", json_boolean(t->at_start));
		json_object_set_new(o, "at_end", json_boolean(t->at_end));
		json_object_set_new(o, "stayed_stuck", json_boolean(same_sleep));
		json_object_set_new(o, "snapshots", json_integer(t->snapshots));
		json_object_set_new(o, "killable", json_boolean(t->state & 0x100));
		cgroup_json_set(o, st->env.cgroups, t->cgroup_id);
		json_object_set_new(
			o, "frames",
			stack_frames_json(st->env.sym, 0, t->frames, t->nframes, NULL, 0));
		json_array_append_new(tasks, o);
	}
	for (unsigned l = 0; l < nlabels; l++)
		json_array_append_new(larr, json_pack("{s:s,s:i}", "label", labels[l].label,
						      "tasks", labels[l].tasks));
	err = stackset_render(ss, &ro, &r);
	if (err)
		goto cleanup;

	out->data = json_object();
	json_object_set_new(out->data, "threshold_ms", json_integer((json_int_t)st->threshold_ms));
	json_object_set_new(out->data, "interval_ms", json_integer((json_int_t)st->interval_ms));
	json_object_set_new(out->data, "snapshots", json_integer(st->snapshots));
	json_object_set_new(out->data, "tasks_seen", json_integer((json_int_t)st->ntasks));
	json_object_set_new(out->data, "stuck_at_start", json_integer(at_start));
	json_object_set_new(out->data, "stuck_at_end", json_integer(at_end));
	json_object_set_new(out->data, "stayed_stuck", json_integer(stayed));
	json_object_set_new(
		out->data, "max_blocked_ms",
		json_integer(st->ntasks ? (json_int_t)(st->tasks[0].blocked_ns / 1000000) : 0));
	json_object_set_new(out->data, "short_sightings",
			    json_integer((json_int_t)stats[DSTATE_STAT_SHORT]));
	json_object_set_new(out->data, "labels", larr);
	larr = NULL;
	json_object_set_new(out->data, "tasks", tasks);
	tasks = NULL;
	json_object_set_new(out->data, "consumers", consumers_json(ro.consumers));
	json_object_set_new(out->data, "lost",
			    json_pack("{s:I,s:I,s:I,s:I}", "stacks",
				      (json_int_t)stats[DSTATE_STAT_STACK_LOST], "records",
				      (json_int_t)stats[DSTATE_STAT_WRITE_LOST], "tasks_full",
				      (json_int_t)st->dropped, "snapshots_failed",
				      (json_int_t)st->snapshot_errors));
	out->lost_events = stats[DSTATE_STAT_STACK_LOST] + stats[DSTATE_STAT_WRITE_LOST] +
			   st->dropped + st->snapshot_errors;
	out->partial = out->lost_events > 0 || r.folded_dropped > 0;
	err = capture_result_add_artifact(out, "dstate.folded", r.folded, r.folded_len);
	r.folded = NULL;
cleanup:
	json_decref(tasks);
	json_decref(larr);
	free(names);
	stackset_render_clear(&r);
	stackset_free(&ss);
	consumers_free(&ro.consumers);
	st->ntasks = 0;
	return err;
}

static void dstate_release(void *state)
{
	struct dstate_state *st = state;

	if (!st)
		return;
	dstate_stop(st);
	bpf_skel_unload(st->skel, &dstate_skel_ops, "dstate");
	close(st->timerfd);
	free(st->tasks);
	free(st->buf);
	free(st);
}

const struct capture_ops dstate_capture = {
	.kind = "dstate",
	.help = "tasks stuck in D state: kernel stack, wchan, how long, cgroup, known-issue label",
	.params = dstate_params,
	.nparams = ARRAY_SIZE(dstate_params),
	.prepare = dstate_prepare,
	.start = dstate_start,
	.stop = dstate_stop,
	.collect = dstate_collect,
	.release = dstate_release,
	.ring_fd = dstate_ring_fd,
	.ring_ready = dstate_ring_ready,
};
