// SPDX-License-Identifier: GPL-2.0-only
/* procscan, "the top process of a scope", against crafted /proc trees: each criterion (RSS,
 * D-state threads, and the rates CPU and IO between two scans), the cgroup filter in v2
 * and hybrid layouts, hostile comm and malformed files, and no process at all. */
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/procscan.h"

static const char *root;

static int setup(void **s)
{
	root = test_tmpdir(0);
	return 0;
}

static int teardown(void **s)
{
	test_rmtree(root);
	return 0;
}

/* Writes root/rel whole (temp file + rename: a concurrent scan never reads half of it). */
static void put(const char *rel, const char *text)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (slash = strchr(path + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(rename(tmp, path), 0);
}

/* /proc/PID/stat with the fields procscan reads: state, utime + stime, rss (pages). */
static void proc(int pid, const char *comm, char state, unsigned long long ticks, long rss_pages,
		 const char *cgroup)
{
	char rel[64], text[512];

	snprintf(rel, sizeof(rel), "%d/stat", pid);
	snprintf(text, sizeof(text),
		 "%d (%s) %c 1 %d %d 0 -1 4194560 100 0 0 0 %llu %llu 0 0 20 0 1 0 100 "
		 "10000000 %ld 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
		 pid, comm, state, pid, pid, ticks / 2, ticks - ticks / 2, rss_pages);
	put(rel, text);
	snprintf(rel, sizeof(rel), "%d/task/%d/stat", pid, pid);
	put(rel, text);
	if (cgroup) {
		snprintf(rel, sizeof(rel), "%d/cgroup", pid);
		put(rel, cgroup);
	}
}

static void thread_state(int pid, int tid, char state)
{
	char rel[64], text[128];

	snprintf(rel, sizeof(rel), "%d/task/%d/stat", pid, tid);
	snprintf(text, sizeof(text), "%d (worker) %c 1 %d %d 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0\n",
		 tid, state, pid, pid);
	put(rel, text);
}

static void io(int pid, unsigned long long rd, unsigned long long wr)
{
	char rel[64], text[256];

	snprintf(rel, sizeof(rel), "%d/io", pid);
	snprintf(text, sizeof(text),
		 "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: %llu\nwrite_bytes: %llu\n"
		 "cancelled_write_bytes: 0\n",
		 rd, wr);
	put(rel, text);
}

static void test_criteria_names(void **s)
{
	assert_int_equal(procscan_by_for_metric("sched.dstate_tasks"), PROCSCAN_DSTATE);
	assert_int_equal(procscan_by_for_metric("cgroup.dstate_tasks"), PROCSCAN_DSTATE);
	assert_int_equal(procscan_by_for_metric("mem.anon_growth_pct"), PROCSCAN_RSS);
	assert_int_equal(procscan_by_for_metric("cgroup.mem.usage_pct"), PROCSCAN_RSS);
	assert_int_equal(procscan_by_for_metric("io.util_pct"), PROCSCAN_IO);
	assert_int_equal(procscan_by_for_metric("cpu.sys_pct"), PROCSCAN_CPU);
	assert_int_equal(procscan_by_for_metric("sched.runq_max_us"), PROCSCAN_CPU);
	assert_string_equal(procscan_by_name(PROCSCAN_CPU), "cpu");
	assert_string_equal(procscan_by_name(PROCSCAN_DSTATE), "dstate");
	assert_string_equal(procscan_by_name(PROCSCAN_RSS), "rss");
	assert_string_equal(procscan_by_name(PROCSCAN_IO), "io");
	assert_string_equal(procscan_by_name((enum procscan_by)99), "?");
}

static void test_rss_and_hostile_comm(void **s)
{
	struct top_process t;

	proc(100, "small", 'S', 0, 10, NULL);
	/* comm is the tenant's: spaces and parentheses must not shift the fields */
	proc(200, "a) b (c", 'S', 0, 5000, NULL);
	proc(300, "mid", 'R', 0, 300, NULL);
	/* not processes, or not readable as one: skipped */
	put("self/stat", "1 (self) R 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 99999999\n");
	put("400/stat", "400 (no closing paren R 1 2 3\n");
	put("500/stat", "500 (short) S 1\n");
	put("0600/x", "");
	assert_int_equal(procscan_top(root, NULL, PROCSCAN_RSS, 0, &t), 0);
	assert_int_equal(t.pid, 200);
	assert_string_equal(t.comm, "a) b (c");
	assert_float_equal(t.score, 5000.0 * (double)sysconf(_SC_PAGESIZE), 0.5);
}

static void test_dstate_threads(void **s)
{
	struct top_process t;

	proc(10, "one_d", 'S', 0, 1, NULL);
	thread_state(10, 11, 'D');
	proc(20, "three_d", 'D', 0, 1, NULL);
	thread_state(20, 21, 'D');
	thread_state(20, 22, 'D');
	thread_state(20, 23, 'S');
	proc(30, "none", 'R', 0, 1, NULL);
	assert_int_equal(procscan_top(root, NULL, PROCSCAN_DSTATE, 0, &t), 0);
	assert_int_equal(t.pid, 20);
	assert_string_equal(t.comm, "three_d");
	assert_float_equal(t.score, 3, 0);
}

static void test_cgroup_filter(void **s)
{
	static const char hybrid_a[] = "11:cpu,cpuacct:/a\n1:name=systemd:/elsewhere\n0::/x\n";
	struct top_process t;

	/* v2 lines, a hybrid one (its v1 cpu hierarchy counts), a sibling named like a prefix */
	proc(1, "in_a", 'S', 0, 100, "0::/a\n");
	proc(2, "deep_in_a", 'S', 0, 200, "0::/a/b/c\n");
	proc(3, "hybrid_a", 'S', 0, 300, hybrid_a);
	proc(4, "sibling_ab", 'S', 0, 9000, "0::/ab\n");
	proc(5, "no_cgroup_file", 'S', 0, 8000, NULL);
	proc(6, "in_b", 'S', 0, 7000, "0::/b\n");

	assert_int_equal(procscan_top(root, "/a", PROCSCAN_RSS, 0, &t), 0);
	assert_int_equal(t.pid, 3);
	assert_int_equal(procscan_top(root, "/a/b", PROCSCAN_RSS, 0, &t), 0);
	assert_int_equal(t.pid, 2);
	assert_int_equal(procscan_top(root, "/b", PROCSCAN_RSS, 0, &t), 0);
	assert_int_equal(t.pid, 6);
	/* the root holds every process that names a cgroup; host-wide holds all */
	assert_int_equal(procscan_top(root, "/", PROCSCAN_RSS, 0, &t), 0);
	assert_int_equal(t.pid, 4);
	assert_int_equal(procscan_top(root, NULL, PROCSCAN_RSS, 0, &t), 0);
	assert_int_equal(t.pid, 4);
	/* nobody there */
	assert_int_equal(procscan_top(root, "/nope", PROCSCAN_RSS, 0, &t), -ESRCH);
	assert_int_equal(procscan_top(root, "/a/b/c/d", PROCSCAN_DSTATE, 0, &t), -ESRCH);
}

static void test_nothing_to_find(void **s)
{
	char missing[PATH_MAX];
	struct top_process t;

	assert_int_equal(procscan_top(root, NULL, PROCSCAN_RSS, 0, &t), -ESRCH);
	assert_int_equal(procscan_top(root, NULL, PROCSCAN_CPU, 1, &t), -ESRCH);
	/* zero RSS is no top process */
	proc(7, "empty", 'S', 0, 0, NULL);
	assert_int_equal(procscan_top(root, NULL, PROCSCAN_RSS, 0, &t), -ESRCH);
	snprintf(missing, sizeof(missing), "%s/none", root);
	assert_int_equal(procscan_top(missing, NULL, PROCSCAN_RSS, 0, &t), -ENOENT);
}

/*
 * The rates: procscan reads every process, sleeps sample_ms, reads again. The writer
 * waits (inotify) until the first scan has read each file it will change, then moves the
 * counters on, well inside the sleep; no guessing at timing.
 */
struct writer {
	int fd;
	unsigned reads_before;
	void (*advance)(void);
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	unsigned seen = 0;

	while (seen < w->reads_before) {
		struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
		ssize_t n;

		/* a scan that never reads them fails the test below instead of hanging it */
		if (poll(&pfd, 1, 10000) != 1)
			break;
		n = read(w->fd, buf, sizeof(buf));

		for (char *p = buf; n > 0 && p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			seen += (ev->mask & IN_CLOSE_NOWRITE) != 0;
			p += sizeof(*ev) + ev->len;
		}
		if (n <= 0)
			break;
	}
	w->advance();
	return NULL;
}

static void watch_file(struct writer *w, const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_true(inotify_add_watch(w->fd, path, IN_CLOSE_NOWRITE) >= 0);
	w->reads_before++;
}

static void run_rate(enum procscan_by by, const char *cgroup, void (*advance)(void),
		     const char *const *watched, struct top_process *t)
{
	struct writer w = {.fd = inotify_init1(IN_CLOEXEC), .advance = advance};
	pthread_t th;

	assert_true(w.fd >= 0);
	for (const char *const *r = watched; *r; r++)
		watch_file(&w, *r);
	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
	/* 2 s of sleep between the scans: only the order matters, this is slack */
	assert_int_equal(procscan_top(root, cgroup, by, 2000, t), 0);
	pthread_join(th, NULL);
	close(w.fd);
}

static void cpu_advance(void)
{
	/* 40 ticks for pid 1 and 150 for pid 2 over 2 s; pid 3 had the most but stays idle */
	proc(1, "steady", 'R', 1000 + 40, 10, "0::/app\n");
	proc(2, "busy", 'R', 500 + 150, 10, "0::/app/worker\n");
	proc(3, "old_hog", 'S', 90000, 10, "0::/app\n");
	proc(4, "outside", 'R', 100 + 400, 10, "0::/other\n");
}

static void test_cpu_rate(void **s)
{
	/* pid 4 is outside the cgroup: its stat is never read */
	static const char *const watched[] = {"1/stat", "2/stat", "3/stat", NULL};
	long hz = sysconf(_SC_CLK_TCK);
	struct top_process t;

	proc(1, "steady", 'R', 1000, 10, "0::/app\n");
	proc(2, "busy", 'R', 500, 10, "0::/app/worker\n");
	proc(3, "old_hog", 'S', 90000, 10, "0::/app\n");
	proc(4, "outside", 'R', 100, 10, "0::/other\n");
	run_rate(PROCSCAN_CPU, "/app", cpu_advance, watched, &t);
	assert_int_equal(t.pid, 2);
	assert_string_equal(t.comm, "busy");
	/* 150 ticks in 2 s */
	assert_float_equal(t.score, 100.0 * 150.0 / (double)hz / 2.0, 0.01);
}

static void io_advance(void)
{
	io(1, 4096, 1 << 20);
	io(2, 64 << 20, 0);
	/* a counter that went backwards (pid reused) is no rate */
	io(3, 0, 0);
}

static void test_io_rate(void **s)
{
	static const char *const watched[] = {"1/io", "2/io", "3/io", NULL};
	struct top_process t;

	proc(1, "writer", 'S', 0, 1, NULL);
	proc(2, "reader", 'D', 0, 1, NULL);
	proc(3, "reused", 'S', 0, 1, NULL);
	io(1, 4096, 0);
	io(2, 0, 0);
	io(3, 1ull << 40, 1ull << 40);
	run_rate(PROCSCAN_IO, NULL, io_advance, watched, &t);
	assert_int_equal(t.pid, 2);
	assert_string_equal(t.comm, "reader");
	assert_float_equal(t.score, (double)(64 << 20) / 2.0, 0.5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_criteria_names),
		cmocka_unit_test_setup_teardown(test_rss_and_hostile_comm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dstate_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cgroup_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_to_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cpu_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_rate, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
