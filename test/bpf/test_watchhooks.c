// SPDX-License-Identifier: GPL-2.0-only
/* The opt-in always-on hook modes on the real kernel: run-queue latency
 * percentiles under more runnable tasks than CPUs, block latency of this
 * test's O_DIRECT writes on a real disk, the cost each mode reports, and the
 * throttle the run-time guard uses. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

static struct agent_config cfg;
static struct cgroups *cg;
static struct tsdb *db;
static struct watchers *w;

static void msleep(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int setup(void **s)
{
	struct watcher_env env = {.cfg = &cfg, .procfs = "/proc", .sysfs = "/sys"};

	(void)s;
	require_root_or_exit("bpf/watchhooks");
	log_route_libbpf();
	config_defaults(&cfg);
	cfg.watch.runq_hooks = true;
	cfg.watch.block_hooks = true;
	cfg.watch.max_cgroups = 0;
	assert_int_equal(cgroups_new(&cg, "/sys/fs/cgroup"), 0);
	env.cgroups = cg;
	assert_int_equal(tsdb_new(&db, metric_count(), 8192, 64), 0);
	assert_int_equal(watchers_open(&w, &env), 0);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	watchers_free(&w);
	tsdb_free(&db);
	cgroups_free(&cg);
	return 0;
}

static json_t *status_of(const char *name)
{
	json_t *arr = watchers_status(w), *it, *found = NULL;
	size_t i;

	json_array_foreach(arr, i, it) if (!strcmp(json_string_value(json_object_get(it, "name")),
						   name)) found = json_incref(it);
	json_decref(arr);
	assert_non_null(found);
	return found;
}

static double labeled(unsigned metric, const char *k, const char *v)
{
	struct labels l = {.n = 1, .k = {k}, .v = {v}};
	struct tsdb_series *s = tsdb_find(db, metric, &l);
	double out;

	return s && tsdb_value(db, s, 0, &out) ? out : NAN;
}

static double host(unsigned metric)
{
	struct tsdb_series *s = tsdb_find(db, metric, NULL);
	double out;

	return s && tsdb_value(db, s, 0, &out) ? out : NAN;
}

static pid_t spinners(int n)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0);
		for (int i = 1; i < n; i++)
			if (fork() == 0)
				break;
		alarm(30);
		/* exec, so the children do not keep the agent's BPF link fds (and its
		 * hooks) alive after the throttle closes them */
		execl("/bin/sh", "sh", "-c", "while :; do :; done", (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	return pid;
}

static void stop(pid_t pid)
{
	kill(-pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static json_int_t waits_measured(void)
{
	json_t *st = status_of("runqlat");
	json_int_t n = json_integer_value(json_object_get(st, "waits_measured"));

	json_decref(st);
	return n;
}

static void test_runq_hooks(void **s)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pid_t pid;
	json_t *st;
	double p50, p99;

	(void)s;
	st = status_of("runqlat");
	if (strcmp(json_string_value(json_object_get(st, "state")), "ok"))
		fail_msg("runqlat: %s", json_dumps(st, 0));
	json_decref(st);
	pid = spinners((int)(3 * ncpu));
	watchers_sample(w, db, now_real_ms());
	msleep(1500);
	watchers_sample(w, db, now_real_ms());
	p50 = host(M_SCHED_RUNQ_P50);
	p99 = host(M_SCHED_RUNQ_P99);
	print_message("runq p50 %.1f us, p99 %.1f us, %.0f ns per event\n", p50, p99,
		      labeled(M_WATCH_HOOK_NS, "hook", "runqlat"));
	assert_true(p50 > 0 && p99 >= p50);
	/* spinners on every CPU: someone waited a millisecond or more */
	assert_true(p99 >= 1000);
	assert_true(labeled(M_SCHED_RUNQ_P99, "cpu", "0") > 0);
	/* the cost is reported: in the series and in status */
	assert_true(labeled(M_WATCH_HOOK_NS, "hook", "runqlat") > 0);
	assert_true(labeled(M_WATCH_HOOK_CPU, "hook", "runqlat") > 0);
	st = status_of("runqlat");
	assert_true(json_real_value(json_object_get(st, "ns_per_event")) > 0);
	assert_true(json_integer_value(json_object_get(st, "events")) > 0);
	json_decref(st);
	{
		struct watcher_hook_cost c[4];
		unsigned n = watchers_hook_costs(w, c, 4);

		assert_true(n >= 1);
		assert_string_equal(c[0].name, "runqlat");
		assert_true(c[0].ns_per_event > 0 && !c[0].throttled);
	}

	/* the guard's throttle: hooks off, nothing measured, status says why */
	assert_int_equal(watchers_throttle(w, "runqlat", "load 12 on 2 CPUs"), 0);
	st = status_of("runqlat");
	assert_string_equal(json_string_value(json_object_get(st, "state")), "throttled");
	assert_string_equal(json_string_value(json_object_get(st, "throttled_reason")),
			    "load 12 on 2 CPUs");
	json_decref(st);
	{
		json_int_t before = waits_measured();

		msleep(500);
		assert_int_equal(waits_measured(), before);
		watchers_sample(w, db, now_real_ms());
		assert_true(isnan(host(M_SCHED_RUNQ_P99)));
		/* and back on */
		assert_int_equal(watchers_throttle(w, "runqlat", NULL), 0);
		msleep(500);
		assert_true(waits_measured() > before);
	}
	st = status_of("runqlat");
	assert_string_equal(json_string_value(json_object_get(st, "state")), "ok");
	json_decref(st);
	watchers_sample(w, db, now_real_ms());
	msleep(1000);
	watchers_sample(w, db, now_real_ms());
	assert_true(host(M_SCHED_RUNQ_P99) > 0);
	stop(pid);

	/* only hook modes throttle */
	assert_int_equal(watchers_throttle(w, "cpustat", "x"), -EOPNOTSUPP);
	assert_int_equal(watchers_throttle(w, "nosuch", "x"), -ENOENT);
}

/* A directory on a real block device and the name of its whole disk. */
static bool disk_dir(char *dir, size_t dlen, char *disk, size_t klen)
{
	const char *cands[] = {getenv("AUTOTRACE_BUILD_DIR"), "/var/tmp", "/tmp", "/root"};

	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		char path[256], link[512], *base;
		struct stat st;
		ssize_t n;

		if (!cands[i] || stat(cands[i], &st) || major(st.st_dev) == 0)
			continue;
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(st.st_dev),
			 minor(st.st_dev));
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		/* a partition's directory sits inside its disk's */
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", major(st.st_dev),
			 minor(st.st_dev));
		if (access(path, F_OK) == 0)
			*strrchr(link, '/') = '\0';
		base = strrchr(link, '/');
		snprintf(disk, klen, "%s", base ? base + 1 : link);
		snprintf(dir, dlen, "%s", cands[i]);
		return true;
	}
	return false;
}

static void test_block_hooks(void **s)
{
	char dir[256], disk[64], file[320];
	void *buf = NULL;
	int fd;
	double p50 = NAN, p99 = NAN, max = NAN;

	(void)s;
	if (!disk_dir(dir, sizeof(dir), disk, sizeof(disk)))
		fail_msg("no directory on a block device to write to");
	snprintf(file, sizeof(file), "%s/autotrace-biolat-%d", dir, (int)getpid());
	fd = open(file, O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(posix_memalign(&buf, 4096, 1 << 16), 0);
	memset(buf, 0x5a, 1 << 16);
	watchers_sample(w, db, now_real_ms());
	for (int round = 0; round < 5 && !(p99 > 0); round++) {
		for (int i = 0; i < 64; i++)
			assert_int_equal(pwrite(fd, buf, 1 << 16, (off_t)i << 16), 1 << 16);
		fdatasync(fd);
		msleep(300);
		watchers_sample(w, db, now_real_ms());
		p50 = labeled(M_IO_LAT_P50, "device", disk);
		p99 = labeled(M_IO_LAT_P99, "device", disk);
		max = labeled(M_IO_LAT_MAX, "device", disk);
	}
	close(fd);
	unlink(file);
	free(buf);
	print_message("%s: block latency p50 %.1f us, p99 %.1f us, max %.1f us, %.0f ns/event\n",
		      disk, p50, p99, max, labeled(M_WATCH_HOOK_NS, "hook", "biolat"));
	assert_true(p50 > 0);
	assert_true(p99 >= p50);
	assert_true(max >= p99 * 0.999);
	assert_true(labeled(M_WATCH_HOOK_NS, "hook", "biolat") > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runq_hooks),
		cmocka_unit_test(test_block_hooks),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
