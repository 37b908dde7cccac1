// SPDX-License-Identifier: GPL-2.0-only
/* The task-iterator watcher: drives one taskwatch.bpf.c pass per interval and
 * turns its sums into D-state and run-queue metrics, host, per CPU and per
 * watched cgroup. No per-event hook: the cost is the pass itself. */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/sysstate.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/bpfutil.h"
#include "probes/catalogue.h"
#include "probes/kcompat.h"
#include "probes/taskwatch.h"
#include "probes/watcher.h"
#include "taskwatch.skel.h"

#define OWNER "watch.taskwatch"

struct taskwatch {
	struct taskwatch_bpf *skel;
	struct bpf_link *link;
	struct bpf_link *free_link;	/* the walk: per-task state dropped at task free */
	struct bpf_link *move_links[2]; /* tasks moved between cgroups: kept slots checked */
	struct cgroups *cg;
	struct tw_acc *cg_acc, *cpu_acc; /* mmapped BPF arrays */
	size_t cg_acc_len, cpu_acc_len;
	unsigned max_cgroups, ncpus;
	uint64_t gen; /* watched-set generation the slot map reflects */
	/* the watched cgroups as the slot map has them, by serial, so that a
	 * change of the set touches only the cgroups that came or went */
	struct tw_slot {
		uint64_t serial, id;
		uint32_t slot;
	} * slots;
	unsigned nslots;
	uint32_t *slot_of; /* slot of cgroups_watch_at(i), UINT32_MAX: none */
	uint32_t *up;	   /* index of the nearest watched ancestor with a slot, or UINT32_MAX */
	unsigned nslot_of;
	uint32_t *free_slots;
	unsigned nfree;
	struct tsdb_ref *refs; /* by slot: the labels of the cgroup's series */
	uint64_t prev_pass_ns;
	uint64_t last_pass_us, tasks, skipped;
	char delayacct_path[256];
	bool walk;	     /* one program run walks every task (6.7+) */
	bool delayacct;	     /* reading reclaim stalls */
	bool delayacct_ours; /* we turned it on, and turn it off at exit */
	char state_dir[256]; /* where that is recorded (base/sysstate.h) */
	char procfs[200];
	uint64_t storage_fail, cpu_overflow;
	uint64_t state_lost;	/* tasks whose state the hash or table had lost, since start */
	bool pidmap;		/* no task storage: taskwatch_pidmap and its hash */
	bool state_at_bound;	/* said once: the hash or table cannot grow further */
	unsigned state_entries; /* the pid hash's size, or the walk's table's */
	bool moves_hooked;	/* both migration hooks attached */
	uint64_t free_missed;	/* freed tasks whose entry may have stayed, in unloaded objects */
};

static int read_sysctl(const char *path, int *v)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	*v = atoi(buf);
	return 0;
}

/* Delay accounting supplies direct-reclaim stall time; turning it on costs a
 * few clock reads on each reclaim, IO wait and swap-in of every task. */
static void delayacct_setup(struct taskwatch *tw, const struct watcher_env *env)
{
	int on = 0;

	snprintf(tw->delayacct_path, sizeof(tw->delayacct_path), "%s/sys/kernel/task_delayacct",
		 env->procfs);
	snprintf(tw->procfs, sizeof(tw->procfs), "%s", env->procfs);
	sysstate_dir_of(env->cfg->agent.control_socket, tw->state_dir, sizeof(tw->state_dir));
	/* an agent that crashed with it on left a record: put the old value back */
	sysstate_restore(tw->state_dir, tw->procfs, "kernel.task_delayacct");
	if (read_sysctl(tw->delayacct_path, &on))
		return;
	if (!on && env->cfg->watch.delayacct) {
		int err =
			sysstate_set(tw->state_dir, tw->procfs, "kernel.task_delayacct", "0", "1");

		if (err)
			log_warn("watch.delayacct: cannot turn on %s: %s", tw->delayacct_path,
				 strerror(-err));
		else
			log_info("watch.delayacct: kernel.task_delayacct turned on until exit");
		on = !err;
		tw->delayacct_ours = !err;
	}
	tw->delayacct = on;
}

static void *map_mmap(const struct bpf_map *map, size_t *len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *p;

	*len = ((size_t)bpf_map__value_size(map) * bpf_map__max_entries(map) + page - 1) &
	       ~(page - 1);
	p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
	return p == MAP_FAILED ? NULL : p;
}

BPF_SKEL_OPS(taskwatch);

/* The pid-keyed hash's size for a node of this many threads: twice as many,
 * so that tasks that come later fit too, within bounds (an LRU hash is
 * preallocated). The first pass gives every task an entry (its baseline),
 * later passes only the tasks that did something. Plus what the LRU's
 * per-CPU free lists may hold back: it evicts once its shared free list is
 * empty, even with free entries parked on other CPUs (up to
 * TW_LRU_LOCAL_FREE each), which the pass meets as tasks on whatever CPUs
 * the agent ran on. The walk's table: four entries a thread, a power of two
 * (a cuckoo table rarely has to move an entry while under a quarter full). */
static unsigned state_size(const struct taskwatch *tw, uint64_t threads)
{
	unsigned n = TW_TABLE_MIN;

	if (!tw->walk) {
		threads = MIN(threads, TW_PIDMAP_MAX); /* no overflow below */
		return (unsigned)MIN(
			MAX(2 * threads + (uint64_t)tw->ncpus * TW_LRU_LOCAL_FREE, TW_PIDMAP_MIN),
			TW_PIDMAP_MAX);
	}
	while (n < TW_TABLE_MAX && n < 4 * MIN(threads, (uint64_t)TW_TABLE_MAX))
		n *= 2;
	return n;
}

static unsigned state_max(const struct taskwatch *tw)
{
	return tw->walk ? TW_TABLE_MAX : TW_PIDMAP_MAX;
}

static const char *state_kind(const struct taskwatch *tw)
{
	return tw->walk ? "table" : "hash";
}

/* The threads alive now (the fourth field of loadavg). */
static uint64_t threads_now(const struct watcher_env *env)
{
	char path[256], *text = NULL, *slash;
	uint64_t threads = 0;
	size_t len;

	snprintf(path, sizeof(path), "%s/loadavg", env->procfs);
	if (read_file(path, 256, &text, &len) == 0 && (slash = strchr(text, '/')))
		threads = strtoull(slash + 1, NULL, 10);
	free(text);
	return threads;
}

static int configure(void *skel, void *ctx)
{
	struct taskwatch_bpf *s = skel;
	const struct taskwatch *tw = ctx;

	s->rodata->cgroup_subsys = tw->cg ? cgroups_bpf_subsys(tw->cg) : -1;
	bpf_program__set_autoload(s->progs.taskwatch_walk, tw->walk);
	bpf_program__set_autoload(s->progs.taskwatch_free, tw->walk);
	bpf_map__set_max_entries(s->maps.cg_slot, tw->max_cgroups);
	bpf_map__set_max_entries(s->maps.cg_acc, tw->max_cgroups);
	bpf_map__set_max_entries(s->maps.cpu_acc, tw->ncpus);
	/* per-task state: task storage, the pid-keyed hash before 5.11, or for
	 * the walk (which reaches tasks through casts task storage refuses) its
	 * address-keyed table */
	bpf_map__set_autocreate(s->maps.tasks, !tw->pidmap && !tw->walk);
	bpf_program__set_autoload(s->progs.taskwatch, !tw->pidmap && !tw->walk);
	bpf_map__set_autocreate(s->maps.tasks_by_pid, tw->pidmap);
	bpf_program__set_autoload(s->progs.taskwatch_pidmap, tw->pidmap);
	if (tw->pidmap)
		bpf_map__set_max_entries(s->maps.tasks_by_pid, tw->state_entries);
	bpf_map__set_autocreate(s->maps.task_table, tw->walk);
	bpf_map__set_autocreate(s->maps.free_addr, tw->walk);
	if (tw->walk) {
		bpf_map__set_max_entries(s->maps.task_table, tw->state_entries);
		s->rodata->table_mask = tw->state_entries - 1;
	}
	return 0;
}

/* Linux 6.7+: the open-coded task and number iterators and read-only casts,
 * for one program run that walks every task. */
static bool kernel_can_walk(void)
{
	static const char *const kfuncs[] = {"bpf_iter_task_new", "bpf_iter_num_new",
					     "bpf_rdonly_cast"};
	const struct btf *vmlinux = kernel_btf();

	if (!vmlinux)
		return false;
	for (size_t i = 0; i < sizeof(kfuncs) / sizeof(kfuncs[0]); i++)
		if (btf__find_by_name_kind(vmlinux, kfuncs[i], BTF_KIND_FUNC) <= 0)
			return false;
	return true;
}

static void detach_moves(struct taskwatch *tw)
{
	for (int i = 0; i < 2; i++) {
		bpf_link__destroy(tw->move_links[i]);
		tw->move_links[i] = NULL;
	}
}

static void unload(struct taskwatch *tw)
{
	bpf_link__destroy(tw->link);
	bpf_link__destroy(tw->free_link);
	tw->link = tw->free_link = NULL;
	detach_moves(tw);
	bpf_skel_unload(tw->skel, &taskwatch_skel_ops, OWNER);
	tw->skel = NULL;
}

/* Our mappings of the per-CPU and per-cgroup sums of the loaded object. */
static void unmap_sums(struct taskwatch *tw)
{
	if (tw->cg_acc)
		munmap(tw->cg_acc, tw->cg_acc_len);
	if (tw->cpu_acc)
		munmap(tw->cpu_acc, tw->cpu_acc_len);
	tw->cg_acc = tw->cpu_acc = NULL;
}

static void taskwatch_close(void *state)
{
	struct taskwatch *tw = state;

	if (!tw)
		return;
	unmap_sums(tw);
	unload(tw);
	if (tw->delayacct_ours &&
	    sysstate_restore(tw->state_dir, tw->procfs, "kernel.task_delayacct") < 0)
		log_warn("watch.delayacct: could not turn kernel.task_delayacct off again");
	free(tw->slots);
	free(tw->slot_of);
	free(tw->up);
	free(tw->free_slots);
	free(tw->refs);
	free(tw);
}

/* The one of a program's twins (tp_btf, raw_tp) that loaded, attached. */
static struct bpf_link *attach_loaded(struct bpf_program *btf, struct bpf_program *raw)
{
	return bpf_program__attach(bpf_program__fd(btf) >= 0 ? btf : raw);
}

static int load(struct taskwatch *tw, char *why, size_t why_len)
{
	void *skel;
	int err;

	unload(tw);
	err = bpf_skel_load(
		&skel, NULL, &taskwatch_skel_ops,
		&(struct bpf_load_opts){.owner = OWNER, .configure = configure, .ctx = tw});
	if (err) {
		snprintf(
			why, why_len,
			"loading the task iterator: %s (needs BPF iter/task, Linux 5.8+, and root)",
			strerror(-err));
		return err;
	}
	tw->skel = skel;
	tw->skel->bss->g.slot_gen = 1; /* a task's slot cache starts empty (0) */
	/* without them, the kept slots are checked again at every pass */
	tw->move_links[0] =
		attach_loaded(tw->skel->progs.taskwatch_moved, tw->skel->progs.taskwatch_moved_raw);
	tw->move_links[1] = attach_loaded(tw->skel->progs.taskwatch_transferred,
					  tw->skel->progs.taskwatch_transferred_raw);
	tw->moves_hooked = tw->move_links[0] && tw->move_links[1];
	if (!tw->moves_hooked) {
		detach_moves(tw); /* user space counts a move at every pass instead */
		kcompat_note("taskwatch", "the cgroup migration tracepoints did not attach: each "
					  "busy task reads its cgroup id at every pass");
	}
	/* its size is in the status (task_state_entries): it can grow */
	if (tw->pidmap)
		kcompat_note("taskwatch", "per-task state in a thread-id-keyed LRU hash: no BPF "
					  "task storage (Linux 5.11+)");
	if (tw->walk) {
		/* attached to the agent's own thread: the program runs once per pass */
		union bpf_iter_link_info li;

		memset(&li, 0, sizeof(li));
		li.task.tid = (__u32)gettid();
		tw->link = iter_attach(tw->skel->progs.taskwatch_walk, &li);
		tw->free_link = bpf_program__attach(tw->skel->progs.taskwatch_free);
		if (!tw->free_link) {
			err = -errno;
			snprintf(why, why_len, "attaching the task walk's task-free hook: %s",
				 strerror(-err));
			return err;
		}
	} else {
		tw->link = bpf_program__attach_iter(tw->pidmap ? tw->skel->progs.taskwatch_pidmap
							       : tw->skel->progs.taskwatch,
						    NULL);
	}
	if (!tw->link) {
		err = -errno;
		snprintf(why, why_len, "attaching the task iterator: %s", strerror(-err));
		return err;
	}
	return 0;
}

/* The per-CPU and per-cgroup sums of the loaded object, in our memory. */
static int map_sums(struct taskwatch *tw, char *why, size_t why_len)
{
	int err;

	unmap_sums(tw);
	tw->cg_acc = map_mmap(tw->skel->maps.cg_acc, &tw->cg_acc_len);
	tw->cpu_acc = map_mmap(tw->skel->maps.cpu_acc, &tw->cpu_acc_len);
	if (tw->cg_acc && tw->cpu_acc)
		return 0;
	err = errno ? -errno : -ENOMEM;
	snprintf(why, why_len, "mapping the iterator's arrays: %s", strerror(-err));
	return err;
}

/* Every slot free and none handed out, as at start (a new object's slot
 * map is empty): the next sample hands them out again. */
static void slots_reset(struct taskwatch *tw)
{
	free(tw->slots);
	free(tw->slot_of);
	free(tw->up);
	tw->slots = NULL;
	tw->slot_of = tw->up = NULL;
	tw->nslots = tw->nslot_of = tw->nfree = 0;
	for (unsigned i = 0; i < tw->max_cgroups; i++)
		tw->free_slots[tw->nfree++] = tw->max_cgroups - 1 - i;
	tw->gen = UINT64_MAX;
}

static int taskwatch_open(void **out, const struct watcher_env *env)
{
	struct taskwatch *tw;
	uint64_t threads;
	int err, ncpus;

	if (!env->cfg->watch.task_iterator) {
		snprintf(env->why, env->why_len, "watch.task_iterator is false");
		return WATCHER_OFF;
	}
	tw = calloc(1, sizeof(*tw));
	if (!tw)
		return -ENOMEM;
	ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0) {
		err = ncpus ? ncpus : -EINVAL;
		goto fail;
	}
	tw->ncpus = (unsigned)ncpus;
	tw->cg = env->cgroups;
	tw->max_cgroups = (unsigned)MAX(env->cfg->watch.max_cgroups, 1);
	tw->free_slots = malloc(tw->max_cgroups * sizeof(*tw->free_slots));
	tw->refs = calloc(tw->max_cgroups, sizeof(*tw->refs));
	if (!tw->free_slots || !tw->refs) {
		err = -ENOMEM;
		goto fail;
	}
	slots_reset(tw);
	tw->pidmap = !kcompat_task_storage();
	/* the walk needs 6.7+, which always has task storage */
	tw->walk = env->cfg->watch.task_walk && !tw->pidmap && kernel_can_walk();
	threads = threads_now(env);
	tw->state_entries = state_size(tw, threads);
	err = load(tw, env->why, env->why_len);
	if (err && tw->walk) {
		log_warn("watcher taskwatch: the one-run task walk did not load (%s): visiting "
			 "tasks one by one",
			 env->why);
		env->why[0] = '\0';
		tw->walk = false;
		tw->state_entries = state_size(tw, threads); /* the hash's, now */
		err = load(tw, env->why, env->why_len);
	}
	if (!err)
		err = map_sums(tw, env->why, env->why_len);
	if (err)
		goto fail;
	if (tw->cg)
		cgroups_watch_setup(tw->cg, (unsigned)env->cfg->watch.max_cgroups,
				    env->cfg->watch.cgroup_scan_ms);
	delayacct_setup(tw, env);
	*out = tw;
	return 0;
fail:
	taskwatch_close(tw);
	return err;
}

/* Index of the watched cgroup at path[0..len), or -1 (the set is sorted by path). */
static int watched_index(struct cgroups *cg, const char *path, size_t len)
{
	unsigned lo = 0, hi = cgroups_watch_count(cg);

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const char *p = cgroups_watch_at(cg, mid)->path;
		int c = strncmp(p, path, len);

		if (c == 0 && p[len])
			c = 1;
		if (c == 0)
			return (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* For each watched cgroup, the nearest watched ancestor with a slot: the pass
 * adds a task to its nearest watched cgroup only, and the sums go up from
 * there in user space, where the hierarchy is known. */
static void link_ancestors(struct taskwatch *tw, uint32_t *up, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		const char *path = cgroups_watch_at(tw->cg, i)->path;
		size_t len = strlen(path);

		up[i] = UINT32_MAX;
		while (len > 1) {
			int j;

			while (len > 0 && path[len - 1] != '/')
				len--;
			if (len > 0)
				len--; /* the '/' before the last component */
			if (len == 0)
				break;
			j = watched_index(tw->cg, path, len);
			if (j >= 0 && tw->slot_of[j] != UINT32_MAX) {
				up[i] = (uint32_t)j;
				break;
			}
		}
	}
}

static void acc_add(struct tw_acc *to, const struct tw_acc *a)
{
	to->run_delay_ns += a->run_delay_ns;
	to->timeslices += a->timeslices;
	to->runq_max_ns = MAX(to->runq_max_ns, a->runq_max_ns);
	to->waiting_tasks += a->waiting_tasks;
	to->dstate_tasks += a->dstate_tasks;
	to->dstate_max_ns = MAX(to->dstate_max_ns, a->dstate_max_ns);
	to->reclaim_ns += a->reclaim_ns;
}

/* Descendants come after their ancestors in path order: from the last one
 * back, each cgroup's sums are complete when they are added upwards. */
static void roll_up(struct taskwatch *tw)
{
	for (unsigned i = tw->nslot_of; i-- > 0;) {
		uint32_t u = tw->up ? tw->up[i] : UINT32_MAX;

		if (u == UINT32_MAX || tw->slot_of[i] == UINT32_MAX)
			continue;
		acc_add(&tw->cg_acc[tw->slot_of[u]], &tw->cg_acc[tw->slot_of[i]]);
	}
}

static int slot_cmp(const void *a, const void *b)
{
	const struct tw_slot *x = a, *y = b;

	return x->serial < y->serial ? -1 : x->serial > y->serial;
}

/* Follows the watched set: the cgroups that stayed keep their slots, those
 * that went give theirs back, new ones take a free one. Map updates only for
 * what changed: a busy node changes its set every few seconds. */
static int sync_slots(struct taskwatch *tw)
{
	const struct bpf_map *map = tw->skel->maps.cg_slot;
	unsigned n = cgroups_watch_count(tw->cg), nn = 0;
	struct tw_slot *next = n ? calloc(n, sizeof(*next)) : NULL;
	uint32_t *slot_of = n ? malloc(n * sizeof(*slot_of)) : NULL;
	bool *kept = tw->nslots ? calloc(tw->nslots, sizeof(*kept)) : NULL;
	struct tw_globals *g;

	if ((n && (!next || !slot_of)) || (tw->nslots && !kept)) {
		free(next);
		free(slot_of);
		free(kept);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		const struct cgroup_entry *e = cgroups_watch_at(tw->cg, i);
		struct tw_slot key = {.serial = e->serial}, *o;

		slot_of[i] = UINT32_MAX;
		o = tw->nslots ? bsearch(&key, tw->slots, tw->nslots, sizeof(key), slot_cmp) : NULL;
		if (o) {
			kept[o - tw->slots] = true;
			slot_of[i] = o->slot;
			next[nn++] = *o;
		}
	}
	for (unsigned j = 0; j < tw->nslots; j++) {
		const struct tw_slot *o = &tw->slots[j];

		if (kept[j])
			continue;
		if (o->id)
			bpf_map__delete_elem(map, &o->id, sizeof(o->id), 0);
		tw->free_slots[tw->nfree++] = o->slot;
	}
	for (unsigned i = 0; i < n; i++) {
		const struct cgroup_entry *e = cgroups_watch_at(tw->cg, i);
		__u32 slot;

		/* not in the id hierarchy: the iterator cannot see it */
		if (slot_of[i] != UINT32_MAX || !e->id || !tw->nfree)
			continue;
		slot = tw->free_slots[--tw->nfree];
		memset(&tw->refs[slot], 0, sizeof(tw->refs[slot]));
		if (bpf_map__update_elem(map, &e->id, sizeof(e->id), &slot, sizeof(slot),
					 BPF_ANY)) {
			tw->free_slots[tw->nfree++] = slot;
			continue;
		}
		slot_of[i] = slot;
		next[nn++] = (struct tw_slot){.serial = e->serial, .id = e->id, .slot = slot};
	}
	if (nn)
		qsort(next, nn, sizeof(*next), slot_cmp);
	free(kept);
	free(tw->slots);
	free(tw->slot_of);
	tw->slots = next;
	tw->nslots = nn;
	tw->slot_of = slot_of;
	tw->nslot_of = n;
	free(tw->up);
	tw->up = n ? malloc(n * sizeof(*tw->up)) : NULL;
	if (tw->up)
		link_ancestors(tw, tw->up, n);
	tw->gen = cgroups_watch_generation(tw->cg);
	g = &tw->skel->bss->g;
	g->slot_gen++; /* slots the tasks keep may be stale now */
	g->slot_epoch = (uint32_t)(g->slot_gen + g->cg_moves);
	return 0;
}

static int run_pass(struct taskwatch *tw)
{
	char buf[256];
	ssize_t n;
	int fd = bpf_iter_create(bpf_link__fd(tw->link)), err = 0;

	if (fd < 0)
		return -errno;
	/* the program writes nothing: reading to the end runs it over every task */
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

static double avg_us(const struct tw_acc *a)
{
	return a->timeslices ? (double)a->run_delay_ns / (double)a->timeslices / 1000.0 : 0.0;
}

static int put_values(struct taskwatch *tw, struct tsdb *db, bool rates, double secs);

/* Freed tasks whose entry the walk's free hook may have left, in the loaded
 * object: it did not find it while a pass was moving entries, or it did not
 * run (the kernel skips a tracing program that would interrupt itself on a
 * CPU, and counts it). Such an entry stays until a new task needs the place. */
static uint64_t free_hook_missed(const struct taskwatch *tw)
{
	struct bpf_prog_info info = {0};
	__u32 len = sizeof(info);
	uint64_t n;

	if (!tw->skel || !tw->free_link)
		return 0;
	n = tw->skel->bss->free_raced;
	if (!bpf_obj_get_info_by_fd(bpf_program__fd(tw->skel->progs.taskwatch_free), &info, &len))
		n += info.recursion_misses;
	return n;
}

/* The programs and maps loaded again (the hash or table at
 * tw->state_entries); the next pass sets baselines, as the first one does. */
static int reload(struct taskwatch *tw, char *why, size_t why_len)
{
	int err;

	tw->free_missed += free_hook_missed(tw);
	err = load(tw, why, why_len);

	if (!err)
		err = map_sums(tw, why, why_len);
	if (err)
		unload(tw); /* nothing half loaded: the next sample tries again */
	slots_reset(tw);
	return err;
}

/*
 * The hash of per-task state (before 5.11) or the walk's table is sized at
 * start for the threads alive then; a node whose workloads start after the
 * agent outgrows it: the hash's LRU evicts the state of the tasks that slept
 * longest, the table's moves end with a task without one, and those tasks
 * lose what they waited in the interval they come back in. Load it again
 * for the threads the pass saw, at least twice as big: one pass of
 * baselines (no run-queue rates that round), no loss after.
 */
static int grow_state(struct taskwatch *tw, uint64_t lost)
{
	unsigned old = tw->state_entries;
	uint64_t want = MIN(MAX(state_size(tw, tw->tasks), 2ull * old), state_max(tw));
	char why[256] = "";
	int err;

	if (old >= state_max(tw)) {
		if (!tw->state_at_bound)
			log_warn("watcher taskwatch: the per-task state %s is full at its bound "
				 "(%u entries, %llu threads): some tasks lose their saved state "
				 "(status task_state_lost)",
				 state_kind(tw), old, (unsigned long long)tw->tasks);
		tw->state_at_bound = true;
		return 0;
	}
	log_warn("watcher taskwatch: %llu tasks lost their saved state to a full %s (%u "
		 "entries, %llu threads): loading it again with %llu",
		 (unsigned long long)lost, state_kind(tw), old, (unsigned long long)tw->tasks,
		 (unsigned long long)want);
	tw->state_entries = (unsigned)want;
	err = reload(tw, why, sizeof(why));
	if (err) {
		log_warn("watcher taskwatch: %s: back to %u entries", why, old);
		tw->state_entries = old;
		err = reload(tw, why, sizeof(why));
	}
	return err;
}

static int taskwatch_sample(void *state, struct tsdb *db)
{
	struct taskwatch *tw = state;
	struct tw_globals *g;
	uint64_t start = now_mono_ns(), lost;
	double secs = tw->prev_pass_ns ? (double)(start - tw->prev_pass_ns) / 1e9 : 0;
	bool rates;
	int err;

	/* a reload that failed: again, each round, until one works */
	if (!tw->skel) {
		char why[256] = "";

		if ((err = reload(tw, why, sizeof(why)))) {
			log_debug("watcher taskwatch: %s", why);
			return err;
		}
	}
	g = &tw->skel->bss->g;
	rates = g->pass >= 1 && secs > 0; /* the first pass only sets baselines */

	if (tw->cg) {
		err = cgroups_watch_refresh(tw->cg, start / 1000000, false);
		if (err < 0)
			return err;
		if (tw->gen != cgroups_watch_generation(tw->cg) && (err = sync_slots(tw)))
			return err;
	}
	memset(tw->cg_acc, 0, tw->cg_acc_len);
	memset(tw->cpu_acc, 0, tw->cpu_acc_len);
	memset(&g->host, 0, sizeof(g->host));
	g->tasks = 0;
	g->skipped = 0;
	g->pass++;
	if (!tw->moves_hooked)
		g->cg_moves++; /* any task may have moved: each checks its cgroup id */
	g->prev_pass_ns = tw->prev_pass_ns;
	g->delayacct = tw->delayacct;
	err = run_pass(tw);
	tw->prev_pass_ns = start;
	tw->last_pass_us = (now_mono_ns() - start) / 1000;
	tw->tasks = g->tasks;
	tw->skipped = g->skipped;
	tw->storage_fail += g->storage_fail;
	tw->cpu_overflow += g->cpu_overflow;
	lost = g->state_lost;
	tw->state_lost += lost;
	g->storage_fail = g->cpu_overflow = g->state_lost = 0;
	if (err)
		return err;

	roll_up(tw);
	err = put_values(tw, db, rates, secs);
	if (!err && lost)
		err = grow_state(tw, lost);
	return err;
}

/* The sums of the last pass as series (again, when held). */
static int put_values(struct taskwatch *tw, struct tsdb *db, bool rates, double secs)
{
	struct tw_globals *g = &tw->skel->bss->g;

	tsdb_put(db, M_SCHED_DSTATE_TASKS, NULL, (double)g->host.dstate_tasks);
	tsdb_put(db, M_SCHED_DSTATE_MAX, NULL, (double)g->host.dstate_max_ns / 1e6);
	if (rates) {
		tsdb_put(db, M_SCHED_RUNQ_AVG, NULL, avg_us(&g->host));
		tsdb_put(db, M_SCHED_RUNQ_MAX, NULL, (double)g->host.runq_max_ns / 1000.0);
		if (tw->delayacct)
			tsdb_put(db, M_MEM_DIRECT_RECLAIM, NULL,
				 (double)g->host.reclaim_ns / 1e6 / secs);
		for (unsigned c = 0; c < tw->ncpus; c++) {
			const struct tw_acc *a = &tw->cpu_acc[c];
			char num[16];
			struct labels l = {.n = 1, .k = {"cpu"}, .v = {num}};

			/* CPUs nothing ran on (offline) have no series */
			if (!a->timeslices && !a->waiting_tasks)
				continue;
			snprintf(num, sizeof(num), "%u", c);
			tsdb_put(db, M_SCHED_RUNQ_AVG, &l, avg_us(a));
			tsdb_put(db, M_SCHED_RUNQ_MAX, &l, (double)a->runq_max_ns / 1000.0);
		}
	}
	for (unsigned i = 0; tw->cg && i < tw->nslot_of; i++) {
		const struct cgroup_entry *e = cgroups_watch_at(tw->cg, i);
		const struct tw_acc *a;
		struct labels l;

		if (!e || tw->slot_of[i] == UINT32_MAX)
			continue;
		a = &tw->cg_acc[tw->slot_of[i]];
		cgroup_entry_labels(e, &l);
		tsdb_put_ref(db, M_CG_DSTATE_TASKS, &tw->refs[tw->slot_of[i]], &l,
			     (double)a->dstate_tasks);
		tsdb_put_ref(db, M_CG_DSTATE_MAX, &tw->refs[tw->slot_of[i]], &l,
			     (double)a->dstate_max_ns / 1e6);
		if (!rates)
			continue;
		tsdb_put_ref(db, M_CG_RUNQ_AVG, &tw->refs[tw->slot_of[i]], &l, avg_us(a));
		tsdb_put_ref(db, M_CG_RUNQ_MAX, &tw->refs[tw->slot_of[i]], &l,
			     (double)a->runq_max_ns / 1000.0);
		if (tw->delayacct)
			tsdb_put_ref(db, M_CG_MEM_DIRECT_RECLAIM, &tw->refs[tw->slot_of[i]], &l,
				     (double)a->reclaim_ns / 1e6 / secs);
	}
	return 0;
}

static void taskwatch_status(void *state, json_t *o)
{
	struct taskwatch *tw = state;

	json_object_set_new(o, "tasks", json_integer((json_int_t)tw->tasks));
	json_object_set_new(o, "tasks_idle", json_integer((json_int_t)tw->skipped));
	json_object_set_new(o, "pass_us", json_integer((json_int_t)tw->last_pass_us));
	json_object_set_new(o, "walk", json_string(tw->walk ? "one run" : "per task"));
	json_object_set_new(o, "cgroups", json_integer(tw->nslots));
	json_object_set_new(o, "task_state_failures", json_integer((json_int_t)tw->storage_fail));
	if (tw->pidmap || tw->walk) {
		json_object_set_new(o, "task_state_entries", json_integer(tw->state_entries));
		json_object_set_new(o, "task_state_lost", json_integer((json_int_t)tw->state_lost));
		if (tw->walk)
			json_object_set_new(
				o, "task_free_missed",
				json_integer((json_int_t)(tw->free_missed + free_hook_missed(tw))));
	}
	json_object_set_new(o, "delayacct", json_boolean(tw->delayacct));
	/* a choice, not a fault: the watcher is not degraded for it */
	if (!tw->delayacct)
		json_object_set_new(o, "note",
				    json_string("no mem.direct_reclaim_ms: delay accounting is off "
						"(kernel.task_delayacct = 0; watch.delayacct: true "
						"turns it on)"));
}

const struct watcher_ops taskwatch_watcher = {
	.name = "taskwatch",
	.help = "D state and run-queue waits from one BPF task-iterator pass per interval",
	.open = taskwatch_open,
	.sample = taskwatch_sample,
	.close = taskwatch_close,
	.status = taskwatch_status,
	.holds = true,
};
