// SPDX-License-Identifier: GPL-2.0-only
/* The task-iterator watcher on the real kernel: a vfork parent waiting for
 * its sleeping child is in D (host and its cgroup) and its D time grows;
 * 3 x nproc spinners in a test cgroup wait for CPUs and that cgroup shows it;
 * idle kernel threads (TASK_IDLE) are not counted as D; every thread of
 * every process is visited once a pass; the per-task state hash grows with
 * the node's threads. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"

extern const struct watcher_ops taskwatch_watcher;

static struct agent_config cfg;
static struct cgroups *cg;
static struct tsdb *db;
static void *state;
static char cg_rel[64];			 /* "/autotrace-tw-<pid>" */
static char cg_dirs[CG_CTRL_COUNT][512]; /* the test cgroup in each hierarchy */

static void msleep(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* The test's own cgroup: in the v2 tree on v2 hosts, else in the v1 cpu (the
 * id hierarchy), cpuacct and memory controllers under the same path. */
static void cgroup_create(void)
{
	static const enum cgroup_ctrl v1[] = {CG_CTRL_CPU, CG_CTRL_CPUACCT, CG_CTRL_MEMORY};

	snprintf(cg_rel, sizeof(cg_rel), "/autotrace-tw-%d", (int)getpid());
	if (cgroups_layout(cg) == CGROUP_V2) {
		snprintf(cg_dirs[0], sizeof(cg_dirs[0]), "%s%s", cgroups_id_root(cg), cg_rel);
		assert_int_equal(mkdir(cg_dirs[0], 0755), 0);
		return;
	}
	for (size_t i = 0; i < sizeof(v1) / sizeof(v1[0]); i++) {
		const char *root = cgroups_ctrl_root(cg, v1[i]);

		if (!root)
			continue;
		snprintf(cg_dirs[i], sizeof(cg_dirs[i]), "%s%s", root, cg_rel);
		/* cpu and cpuacct may be one mount */
		if (mkdir(cg_dirs[i], 0755) && errno != EEXIST)
			fail_msg("mkdir %s: %s", cg_dirs[i], strerror(errno));
	}
}

/* Moves process pid into the test cgroup, or back out to each hierarchy's root. */
static void cgroup_move(pid_t pid, bool into_test)
{
	for (int i = 0; i < CG_CTRL_COUNT; i++) {
		size_t len = strlen(cg_dirs[i]);
		char path[600];
		FILE *f;

		if (!len)
			continue;
		if (!into_test)
			len -= strlen(cg_rel);
		snprintf(path, sizeof(path), "%.*s/cgroup.procs", (int)len, cg_dirs[i]);
		f = fopen(path, "w");
		assert_non_null(f);
		fprintf(f, "%d\n", (int)pid);
		assert_int_equal(fclose(f), 0);
	}
}

static void cgroup_enter(pid_t pid)
{
	cgroup_move(pid, true);
}

/* Processes in the test cgroup (in the hierarchy of the cgroup ids). */
static int cgroup_nprocs(void)
{
	char path[600], line[32];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg_dirs[0]);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

/* The state letter of a process (/proc/PID/stat), '?' when unreadable. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static void cgroup_remove(void)
{
	for (int i = 0; i < CG_CTRL_COUNT; i++) {
		/* the processes are reaped by now; rmdir may need a moment */
		for (int tries = 0; cg_dirs[i][0] && tries < 50; tries++) {
			if (rmdir(cg_dirs[i]) == 0 || errno == ENOENT)
				break;
			msleep(100);
		}
		cg_dirs[i][0] = '\0';
	}
}

static int setup(void **s)
{
	struct watcher_env env = {.cfg = &cfg, .procfs = "/proc", .sysfs = "/sys"};
	char why[256] = "";

	(void)s;
	require_root_or_exit("bpf/taskwatch");
	log_route_libbpf();
	config_defaults(&cfg);
	assert_int_equal(cgroups_new(&cg, "/sys/fs/cgroup"), 0);
	assert_true(cgroups_layout(cg) != CGROUP_NONE);
	cgroup_create();
	env.cgroups = cg;
	env.why = why;
	env.why_len = sizeof(why);
	if (taskwatch_watcher.open(&state, &env))
		fail_msg("taskwatch unavailable: %s", why);
	assert_int_equal(tsdb_new(&db, metric_count(), 8192, 64), 0);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	if (state)
		taskwatch_watcher.close(state);
	tsdb_free(&db);
	cgroup_remove();
	cgroups_free(&cg);
	return 0;
}

static void round_(void)
{
	/* the test cgroup is new: make the watched set see it now */
	cgroups_watch_refresh(cg, now_mono_ns() / 1000000, true);
	tsdb_begin_round(db, now_real_ms());
	assert_int_equal(taskwatch_watcher.sample(state, db), 0);
	tsdb_end_round(db);
}

static double host(unsigned metric)
{
	struct tsdb_series *s = tsdb_find(db, metric, NULL);
	double v;

	return s && tsdb_value(db, s, 0, &v) ? v : NAN;
}

static double of_test_cgroup(unsigned metric)
{
	for (struct tsdb_series *s = tsdb_first(db, metric); s; s = tsdb_next(s)) {
		char path[512];
		double v;

		if (tsdb_series_label(s, "cgroup", path, sizeof(path)) >= 0 &&
		    !strcmp(path, cg_rel) && tsdb_value(db, s, 0, &v))
			return v;
	}
	return NAN;
}

/* A child in the test cgroup that vforks: the child sleeps, so the parent
 * waits in D (TASK_UNINTERRUPTIBLE | TASK_KILLABLE) until it exits. */
static pid_t start_vfork_waiter(unsigned sleep_s)
{
	int ready[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pid_t v;

		setpgid(0, 0);
		close(ready[1]);
		/* wait until the parent put us in the test cgroup */
		if (read(ready[0], &c, 1) != 1)
			_exit(1);
		v = vfork();
		if (v == 0) {
			sleep(sleep_s);
			_exit(0);
		}
		waitpid(v, NULL, 0);
		_exit(0);
	}
	close(ready[0]);
	setpgid(pid, pid);
	cgroup_enter(pid);
	assert_int_equal(write(ready[1], "x", 1), 1);
	close(ready[1]);
	return pid;
}

/* Kills a test process group and reaps its leader. */
static void kill_group(pid_t leader)
{
	kill(-leader, SIGKILL);
	while (waitpid(leader, NULL, 0) < 0 && errno == EINTR)
		;
}

static void test_vfork_parent_in_dstate(void **s)
{
	pid_t pid;
	double d1, d2;

	(void)s;
	round_();
	pid = start_vfork_waiter(5);
	msleep(700);
	round_();
	assert_true(host(M_SCHED_DSTATE_TASKS) >= 1);
	assert_true(of_test_cgroup(M_CG_DSTATE_TASKS) >= 1);
	d1 = of_test_cgroup(M_CG_DSTATE_MAX);
	assert_true(d1 >= 300 && d1 < 5000);
	assert_true(host(M_SCHED_DSTATE_MAX) >= d1);
	msleep(1000);
	round_();
	d2 = of_test_cgroup(M_CG_DSTATE_MAX);
	/* it grows with time: about one second more */
	print_message("D for %.0f ms, then %.0f ms\n", d1, d2);
	assert_true(d2 >= d1 + 800 && d2 <= d1 + 3000);
	assert_true(of_test_cgroup(M_CG_DSTATE_TASKS) >= 1);
	kill_group(pid);
	msleep(200);
	round_();
	/* gone from D (0), or with no task left, gone from the watched set */
	assert_false(of_test_cgroup(M_CG_DSTATE_TASKS) >= 1);
}

static void spin(int n, unsigned seconds)
{
	/* n spinning processes: more runnable tasks than CPUs. They sleep first,
	 * through a pass or two, so the iterator passes them by as idle; their
	 * waits once they spin must be counted all the same. */
	for (int i = 1; i < n; i++)
		if (fork() == 0)
			break;
	alarm(seconds);
	sleep(2);
	for (volatile unsigned long x = 0;; x++)
		;
}

static void test_spinners_wait_in_their_cgroup(void **s)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int n = (int)(3 * (ncpu > 0 ? ncpu : 1));
	double best_max = 0, best_avg = 0;
	pid_t pid;
	int sock[2];

	(void)s;
	assert_int_equal(pipe(sock), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;

		setpgid(0, 0);
		close(sock[1]);
		/* wait until the parent put us in the test cgroup, then spin */
		if (read(sock[0], &c, 1) != 1)
			_exit(1);
		spin(n, 20);
	}
	close(sock[0]);
	setpgid(pid, pid);
	cgroup_enter(pid);
	assert_int_equal(write(sock[1], "x", 1), 1);
	close(sock[1]);
	round_();
	for (int i = 0; i < 8; i++) {
		msleep(1000);
		round_();
		if (i == 1) {
			/* the spinners still sleep: passed by as idle */
			json_t *o = json_object();

			taskwatch_watcher.status(state, o);
			assert_true(json_integer_value(json_object_get(o, "tasks_idle")) >= n);
			json_decref(o);
		}
		best_max = fmax(best_max, of_test_cgroup(M_CG_RUNQ_MAX));
		best_avg = fmax(best_avg, of_test_cgroup(M_CG_RUNQ_AVG));
		if (best_max >= 1000 && best_avg > 0)
			break;
	}
	print_message(
		"%d spinners on %ld CPUs: cgroup runq max %.0f us, avg %.0f us; host max %.0f\n", n,
		ncpu, best_max, best_avg, host(M_SCHED_RUNQ_MAX));
	kill_group(pid);
	/* the spinners' own cgroup shows the waits (at least one millisecond) */
	assert_true(best_max >= 1000);
	assert_true(best_avg > 0);
	assert_true(host(M_SCHED_RUNQ_MAX) >= 1000);
	/* per CPU too */
	{
		char num[16];
		struct labels l = {.n = 1, .k = {"cpu"}, .v = {num}};
		double any = 0, v;

		for (long c = 0; c < ncpu; c++) {
			struct tsdb_series *ser;

			snprintf(num, sizeof(num), "%ld", c);
			ser = tsdb_find(db, M_SCHED_RUNQ_MAX, &l);
			if (ser && tsdb_value(db, ser, 0, &v))
				any = fmax(any, v);
		}
		assert_true(any > 0);
	}
}

/*
 * Spinners busy before they move into the test cgroup and after they move
 * out again: the pass keeps a busy task's cgroup slot in its state, and that
 * must follow the task both ways. A sleeper keeps the test cgroup watched
 * throughout, so that the set of watched cgroups does not change with the
 * moves (which would drop every kept slot anyway).
 */
static void test_busy_tasks_counted_where_they_moved(void **s)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int n = (int)(3 * (ncpu > 0 ? ncpu : 1));
	double best_max = 0, best_avg = 0, before_max, after_max, after_avg;
	pid_t sleeper, pids[64];
	int ready[2];
	char c;

	(void)s;
	n = n > 64 ? 64 : n;
	/* the earlier tests' processes gone from the test cgroup (a slow guest
	 * takes its time to run their exits, queued there meanwhile) */
	for (int i = 0; i < 300 && cgroup_nprocs() > 0; i++)
		msleep(100);
	assert_int_equal(cgroup_nprocs(), 0);
	assert_int_equal(pipe(ready), 0);
	sleeper = fork();
	assert_true(sleeper >= 0);
	if (sleeper == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(60);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	/* it has run, and sleeps before it goes in: nothing in the test
	 * cgroup then waits for a CPU */
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	close(ready[1]);
	for (int i = 0; i < 100 && proc_state(sleeper) != 'S'; i++)
		msleep(100);
	assert_int_equal(proc_state(sleeper), 'S');
	cgroup_enter(sleeper);
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			alarm(30);
			for (volatile unsigned long x = 0;; x++)
				;
		}
	}
	/* busy outside the test cgroup for a few passes: their slots are kept */
	for (int i = 0; i < 3; i++) {
		round_();
		msleep(500);
	}
	before_max = of_test_cgroup(M_CG_RUNQ_MAX);
	for (int i = 0; i < n; i++)
		cgroup_move(pids[i], true);
	for (int i = 0; i < 8 && !(best_max >= 1000 && best_avg > 0); i++) {
		msleep(1000);
		round_();
		best_max = fmax(best_max, of_test_cgroup(M_CG_RUNQ_MAX));
		best_avg = fmax(best_avg, of_test_cgroup(M_CG_RUNQ_AVG));
	}
	for (int i = 0; i < n; i++)
		cgroup_move(pids[i], false);
	/* the first pass after the move out may still see one of them queued
	 * there; the second sees them all outside */
	round_();
	msleep(1000);
	round_();
	after_max = of_test_cgroup(M_CG_RUNQ_MAX);
	after_avg = of_test_cgroup(M_CG_RUNQ_AVG);
	for (int i = 0; i < n; i++) {
		kill(pids[i], SIGKILL);
		while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
			;
	}
	kill(sleeper, SIGKILL);
	while (waitpid(sleeper, NULL, 0) < 0 && errno == EINTR)
		;
	print_message("%d spinners: test cgroup runq max %.0f us before they moved in; moved in: "
		      "max %.0f us, avg %.0f us; moved out: max %.0f us, avg %.0f us\n",
		      n, before_max, best_max, best_avg, after_max, after_avg);
	/* watched (the sleeper) and nothing waiting there */
	assert_true(before_max == 0);
	assert_true(best_max >= 1000);
	assert_true(best_avg > 0);
	assert_true(after_max == 0);
	assert_true(after_avg == 0);
}

/* Tasks in D and in I (idle kernel threads) according to /proc. */
static void proc_states(int *d, int *idle)
{
	DIR *dir = opendir("/proc");
	struct dirent *de;

	*d = *idle = 0;
	assert_non_null(dir);
	while ((de = readdir(dir))) {
		char st;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		st = proc_state((pid_t)atoi(de->d_name));
		*d += st == 'D';
		*idle += st == 'I';
	}
	closedir(dir);
}

static void test_idle_kthreads_not_counted(void **s)
{
	int d, idle;
	double counted;

	(void)s;
	round_();
	counted = host(M_SCHED_DSTATE_TASKS);
	proc_states(&d, &idle);
	print_message("D tasks: %.0f counted; /proc: %d in D, %d idle (I)\n", counted, d, idle);
	/* Slack of 8 for tasks entering D between the two looks: counting idle kernel
	 * threads shows only when there are more of them than that. Every kernel this runs
	 * on has dozens (idle kworkers, workqueue rescuers); with too few the test could
	 * not tell, and says so rather than pass. */
	if (idle < d + 10) {
		if (test_allow_skip())
			skip();
		fail_msg("only %d idle kernel threads (I) next to %d tasks in D: too few to tell "
			 "whether they are counted as D (AUTOTRACE_TEST_ALLOW_SKIP=1 skips this)",
			 idle, d);
	}
	assert_true(counted <= d + 8);
	/* not by looking away: the pass visited every task, kernel threads included */
	{
		json_t *o = json_object();

		taskwatch_watcher.status(state, o);
		print_message("the pass visited %lld tasks\n",
			      (long long)json_integer_value(json_object_get(o, "tasks")));
		assert_true(json_integer_value(json_object_get(o, "tasks")) >= idle + d);
		json_decref(o);
	}
}

static void *sleeper(void *arg)
{
	for (;;)
		pause();
	return arg;
}

/* A process of 1 + extra threads, all asleep, in its own process group; it
 * dies with the test, should an assertion end the test first. */
static pid_t start_threads(unsigned extra)
{
	pid_t parent = getpid(), pid;
	int ready[2];
	char c;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t t;

		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
			_exit(1);
		setpgid(0, 0);
		for (unsigned i = 0; i < extra; i++)
			if (pthread_create(&t, NULL, sleeper, NULL))
				_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	setpgid(pid, pid);
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

/* Threads of the node, as /proc lists them. */
static long threads_in_proc(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	long n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[300];
		DIR *t;
		struct dirent *te;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/task", e->d_name);
		if (!(t = opendir(path)))
			continue; /* exited meanwhile */
		while ((te = readdir(t)))
			n += te->d_name[0] != '.';
		closedir(t);
	}
	closedir(d);
	return n;
}

static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	assert_int_equal(uname(&u), 0);
	assert_int_equal(sscanf(u.release, "%d.%d", &ma, &mi), 2);
	return ma > major || (ma == major && mi >= minor);
}

static long tasks_visited(json_t *o)
{
	round_();
	taskwatch_watcher.status(state, o);
	return (long)json_integer_value(json_object_get(o, "tasks"));
}

/* Nine processes of 1 to 121 threads: the pass visits each of their threads
 * once, none twice, none left out. Counted as the change from a pass before
 * they started, against the change /proc shows (some hosts' init has threads
 * no task iterator lists). */
static void test_every_thread_visited_once(void **s)
{
	static const unsigned extra[] = {0, 120, 6, 49, 0, 2, 0, 33, 1};
	pid_t pids[sizeof(extra) / sizeof(extra[0])];
	long listed0, listed1, visited0, visited1;
	json_t *o = json_object();

	(void)s;
	listed0 = threads_in_proc();
	visited0 = tasks_visited(o);
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		pids[i] = start_threads(extra[i]);
	listed1 = threads_in_proc();
	visited1 = tasks_visited(o);
	print_message("the pass (%s) visited %ld more tasks; /proc listed %ld more\n",
		      json_string_value(json_object_get(o, "walk")), visited1 - visited0,
		      listed1 - listed0);
	/* a few threads of the machine may come or go between the looks */
	assert_true(labs((visited1 - visited0) - (listed1 - listed0)) <= 8);
	assert_true(listed1 - listed0 >= 200);
	/* and the one-run walk is the one in use wherever the kernel has it */
	if (kernel_at_least(6, 7))
		assert_string_equal(json_string_value(json_object_get(o, "walk")), "one run");
	json_decref(o);
	for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++)
		kill_group(pids[i]);
}

/*
 * A process of n threads that all wake, run and sleep again each time a byte
 * is written to its wake pipe (it answers a byte once all have run). Threads
 * by raw clone, each on a small stack of its own and knowing nothing but two
 * futexes: ten thousand sanitized threads would take a gigabyte.
 */
static int pop_gen, pop_ran, pop_n;

__attribute__((no_sanitize_address)) static int pop_thread(void *arg)
{
	int seen = 0, g;

	(void)arg;
	for (;;) {
		while ((g = __atomic_load_n(&pop_gen, __ATOMIC_ACQUIRE)) == seen)
			syscall(SYS_futex, &pop_gen, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
		seen = g;
		if (__atomic_add_fetch(&pop_ran, 1, __ATOMIC_ACQ_REL) == pop_n)
			syscall(SYS_futex, &pop_ran, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	}
	return 0;
}

static void pop_main(unsigned n, int in, int out)
{
	const int thread =
		CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
	const size_t stack = 16384;
	char c;

	pop_n = (int)n;
	for (unsigned i = 0; i < n; i++) {
		char *st = mmap(NULL, stack, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

		if (st == MAP_FAILED || clone(pop_thread, st + stack, thread, NULL) < 0)
			_exit(1);
	}
	if (write(out, "r", 1) != 1)
		_exit(1);
	while (read(in, &c, 1) == 1) {
		int r;

		__atomic_store_n(&pop_ran, 0, __ATOMIC_RELEASE);
		__atomic_add_fetch(&pop_gen, 1, __ATOMIC_ACQ_REL);
		syscall(SYS_futex, &pop_gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
		while ((r = __atomic_load_n(&pop_ran, __ATOMIC_ACQUIRE)) < pop_n)
			syscall(SYS_futex, &pop_ran, FUTEX_WAIT_PRIVATE, r, NULL, NULL, 0);
		if (write(out, "r", 1) != 1)
			_exit(1);
	}
	_exit(0);
}

static pid_t start_thread_population(unsigned n, int *wake, int *answer)
{
	pid_t parent = getpid(), pid;
	int in[2], out[2];
	char c;

	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
			_exit(1);
		setpgid(0, 0);
		close(in[1]);
		close(out[0]);
		pop_main(n, in[0], out[1]);
	}
	setpgid(pid, pid);
	close(in[0]);
	close(out[1]);
	*wake = in[1];
	*answer = out[0];
	assert_int_equal(read(*answer, &c, 1), 1);
	return pid;
}

static void wake_all(int wake, int answer)
{
	char c;

	assert_int_equal(write(wake, "w", 1), 1);
	assert_int_equal(read(answer, &c, 1), 1);
}

static long long status_int(const char *key)
{
	json_t *o = json_object();
	json_t *v;
	long long n;

	taskwatch_watcher.status(state, o);
	v = json_object_get(o, key);
	n = v ? (long long)json_integer_value(v) : -1;
	json_decref(o);
	return n;
}

/* The hash of per-task state (the walk, and kernels before 5.11) is sized to
 * the threads alive at start; more threads than it holds come later: the
 * tasks whose state it evicted are counted when they next run, the hash is
 * loaded again at twice the threads, and after that nothing is lost. */
static void test_state_hash_grows_with_the_node(void **s)
{
	long long entries = status_int("task_state_entries"), lost0, lost1, lost2;
	int wake, answer;
	unsigned n;
	pid_t pid;

	(void)s;
	round_();
	if (entries < 0) {
		/* task storage (5.11-6.6): the kernel keeps one entry per task */
		json_t *o = json_object();

		taskwatch_watcher.status(state, o);
		print_message("no hash: the pass (%s) keeps its state in task storage\n",
			      json_string_value(json_object_get(o, "walk")));
		assert_false(kernel_at_least(6, 7));
		assert_string_equal(json_string_value(json_object_get(o, "walk")), "per task");
		json_decref(o);
		return;
	}
	n = (unsigned)entries + 2000;
	lost0 = status_int("task_state_lost");
	pid = start_thread_population(n, &wake, &answer);
	/* the new threads take entries, and the full hash (its LRU) or table
	 * (its moves) leaves some tasks without one; they are found out when
	 * they next run, at the latest once all of them ran, and it grows on
	 * the first */
	round_();
	round_();
	wake_all(wake, answer);
	round_();
	lost1 = status_int("task_state_lost");
	print_message("per-task state of %lld entries, %u more threads: %lld tasks lost their "
		      "state, now %lld entries\n",
		      entries, n, lost1 - lost0, status_int("task_state_entries"));
	assert_true(lost1 > lost0);
	assert_true(lost1 - lost0 <= n + 2000);
	assert_true(status_int("task_state_entries") >= 2 * (long long)n);
	/* grown: all of them run again, and none loses its state */
	round_();
	wake_all(wake, answer);
	round_();
	lost2 = status_int("task_state_lost");
	print_message("after it grew, all ran again: %lld lost\n", lost2 - lost1);
	assert_int_equal(lost2, lost1);
	/* and the pass still counts what they do: they got the CPU n times */
	assert_false(isnan(host(M_SCHED_RUNQ_AVG)));
	close(wake);
	close(answer);
	kill_group(pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vfork_parent_in_dstate),
		cmocka_unit_test(test_spinners_wait_in_their_cgroup),
		cmocka_unit_test(test_busy_tasks_counted_where_they_moved),
		cmocka_unit_test(test_idle_kthreads_not_counted),
		cmocka_unit_test(test_every_thread_visited_once),
		cmocka_unit_test(test_state_hash_grows_with_the_node),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
