// SPDX-License-Identifier: GPL-2.0-only
/* The memtrace capture on the real kernel, against this test's own memory:
 * its RSS growth and page faults, a child hog ranked first host-wide, memory
 * cgroup reclaim stalls (with stacks and the cgroup's events) in a child held
 * to a small limit, and nothing recorded outside the window. */
#include "bpftest.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "probes/capture.h"

#define MiB (1024ull * 1024)

static struct capture_fixture fx;

static int setup(void **s)
{
	capture_fixture_init(&fx, "bpf/memtrace", "memtrace");
	fx.cfg.capture.max_stacks = 2048;
	capture_fixture_prepare(&fx);
	return 0;
}

static int teardown(void **s)
{
	capture_fixture_fini(&fx);
	return 0;
}

static long long num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_integer(v))
		fail_msg("missing integer field %s", k);
	return json_integer_value(v);
}

static void dump(json_t *data)
{
	char *text = json_dumps(data, JSON_INDENT(1));

	fprintf(stderr, "%s\n", text);
	free(text);
}

/* Anonymous memory touched page by page (no huge pages: one fault per 4 KiB). */
static char *grow(size_t bytes)
{
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	madvise(p, bytes, MADV_NOHUGEPAGE);
	for (size_t off = 0; off < bytes; off += 4096)
		p[off] = 1;
	return p;
}

static void start(const struct capture_target *t)
{
	struct capture_params p;

	capture_params_defaults(fx.ops, &p);
	assert_int_equal(fx.ops->start(fx.state, t, &p), 0);
}

static void test_own_growth_and_faults(void **s)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = getpid()};
	struct capture_result res = {0};
	size_t bytes = 200 * MiB;
	json_t *procs, *me;
	char *mem;

	start(&t);
	mem = grow(bytes);
	fx.ops->stop(fx.state);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	procs = json_object_get(res.data, "processes");
	if (json_array_size(procs) != 1)
		dump(res.data);
	assert_int_equal(json_array_size(procs), 1);
	me = json_array_get(procs, 0);
	assert_int_equal(num(me, "pid"), getpid());
	assert_true(num(me, "rss_growth_bytes") >= (long long)(bytes * 9 / 10));
	assert_true(num(me, "anon_growth_bytes") >= (long long)(bytes * 9 / 10));
	assert_true(num(me, "rss_end_bytes") > num(me, "rss_start_bytes"));
	/* one fault per page, seen by the kernel tracepoint and by /proc */
	assert_true(num(me, "page_faults_user") >= (long long)(bytes / 4096 * 9 / 10));
	assert_true(num(me, "minor_faults") >= (long long)(bytes / 4096 * 9 / 10));
	assert_true(num(me, "minor_faults_per_sec") > 0);
	assert_string_equal(json_string_value(json_object_get(res.data, "faults_source")),
			    "tracepoints");
	assert_false(json_is_true(json_object_get(me, "started_in_window")));
	/* the host's counters moved at least by ours */
	assert_true(num(json_object_get(res.data, "vmstat"), "pgfault") >=
		    (long long)(bytes / 4096 * 9 / 10));
	/* the process target names its memory cgroup */
	assert_non_null(json_object_get(res.data, "cgroup"));
	capture_result_clear(&res);
	munmap(mem, bytes);
}

/* A child that grows by `bytes` when told to (fds[0]), says so (fds[1]), and
 * waits to be killed. */
static pid_t spawn_hog(size_t bytes, int fds[2])
{
	int go[2], ready[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		close(ready[0]);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		grow(bytes);
		if (write(ready[1], "g", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(go[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	fds[0] = go[1];
	fds[1] = ready[0];
	return pid;
}

static void test_host_hog_ranked_first(void **s)
{
	struct capture_target t = {.kind = TARGET_HOST};
	struct capture_result res = {0};
	int fds[2];
	pid_t hog = spawn_hog(400 * MiB, fds);
	json_t *first;
	char c;

	start(&t);
	assert_int_equal(write(fds[0], "g", 1), 1);
	assert_int_equal(read(fds[1], &c, 1), 1);
	fx.ops->stop(fx.state);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	kill(hog, SIGKILL);
	waitpid(hog, NULL, 0);
	close(fds[0]);
	close(fds[1]);
	first = json_array_get(json_object_get(res.data, "processes"), 0);
	if (!first || num(first, "pid") != hog)
		dump(res.data);
	assert_non_null(first);
	assert_int_equal(num(first, "pid"), hog);
	assert_true(num(first, "rss_growth_bytes") >= (long long)(360 * MiB));
	assert_true(num(res.data, "processes_seen") > 1);
	/* the host has no memory cgroup section, only the host counters */
	assert_null(json_object_get(res.data, "cgroup"));
	assert_non_null(json_object_get(res.data, "vmstat"));
	capture_result_clear(&res);
}

/* A directory on a block device, for a file whose pages the cgroup must reclaim. */
static const char *disk_dir(void)
{
	static char dir[256];
	static const char *const bases[] = {"/var/tmp", "/tmp", "/root"};
	struct statfs sf;

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (statfs(bases[i], &sf) || sf.f_type == TMPFS_MAGIC)
			continue;
		snprintf(dir, sizeof(dir), "%s/autotrace-memtrace-XXXXXX", bases[i]);
		if (mkdtemp(dir))
			return dir;
	}
	fail_msg("no directory on a block device");
	return NULL;
}

static void write_file_of(const char *path, size_t bytes)
{
	char buf[65536];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	memset(buf, 'm', sizeof(buf));
	for (size_t off = 0; off < bytes; off += sizeof(buf))
		assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
}

static void write_text(const char *dir, const char *file, const char *text)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* A memory cgroup limited to 16 MiB (v1 controller or v2), made for this test. */
static void make_memcg(char *dir, size_t len, bool *v2)
{
	*v2 = cgroups_layout(fx.cgroups) == CGROUP_V2;
	if (*v2)
		snprintf(dir, len, "%s/autotrace-memtest-%d", cgroups_id_root(fx.cgroups),
			 getpid());
	else
		snprintf(dir, len, "/sys/fs/cgroup/memory/autotrace-memtest-%d", getpid());
	assert_int_equal(mkdir_p(dir, 0755), 0);
	write_text(dir, *v2 ? "memory.max" : "memory.limit_in_bytes", "16777216\n");
}

static void test_memcg_reclaim_stalls(void **s)
{
	const char *dir = disk_dir();
	struct capture_result res = {0};
	struct capture_target t = {.kind = TARGET_PID};
	char cgdir[512], file[600], pidtext[32], buf[65536];
	json_t *mc, *st, *cg, *ev;
	bool v2, reclaim_seen = false;
	int go[2], done[2], status;
	size_t i;
	pid_t child;

	snprintf(file, sizeof(file), "%s/cold.dat", dir);
	write_file_of(file, 96 * MiB);
	make_memcg(cgdir, sizeof(cgdir), &v2);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int fd;

		close(go[1]);
		close(done[0]);
		if (read(go[0], buf, 1) != 1)
			_exit(1);
		/* reading 96 MiB through a 16 MiB cgroup: it reclaims its own page cache */
		fd = open(file, O_RDONLY);
		if (fd < 0)
			_exit(2);
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		/* stay alive (and in the cgroup) until the capture is read out */
		if (write(done[1], "d", 1) != 1)
			_exit(3);
		pause();
		_exit(0);
	}
	close(go[0]);
	close(done[1]);
	snprintf(pidtext, sizeof(pidtext), "%d\n", child);
	write_text(cgdir, "cgroup.procs", pidtext);
	t.pid = child;
	start(&t);
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[1]);
	assert_int_equal(read(done[0], buf, 1), 1);
	close(done[0]);
	fx.ops->stop(fx.state);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status));

	if (getenv("MEMTRACE_DUMP"))
		dump(res.data);
	mc = json_object_get(json_object_get(res.data, "stalls"), "memcg_reclaim");
	if (!mc || num(mc, "count") <= 0)
		dump(res.data);
	assert_non_null(mc);
	assert_true(num(mc, "count") > 0);
	assert_true(num(mc, "total_us") > 0);
	json_array_foreach(json_object_get(mc, "top_stacks"), i, st)
	{
		json_t *f;
		size_t j;

		assert_int_equal(num(st, "pid"), child);
		json_array_foreach(json_object_get(st, "frames"), j, f)
		{
			const char *fn = json_string_value(json_object_get(f, "func"));

			if (fn && (strstr(fn, "try_to_free_mem_cgroup_pages") ||
				   strstr(fn, "try_charge") || strstr(fn, "charge_memcg")))
				reclaim_seen = true;
		}
	}
	if (!reclaim_seen)
		dump(mc);
	assert_true(reclaim_seen);
	assert_non_null(res.artifacts[0].name);
	assert_string_equal(res.artifacts[0].name, "memtrace-stalls.folded");
	assert_non_null(strstr(res.artifacts[0].data, "memcg_reclaim;"));

	/* the cgroup's own account of it */
	cg = json_object_get(res.data, "cgroup");
	if (!cg)
		dump(res.data);
	assert_non_null(cg);
	assert_string_equal(json_string_value(json_object_get(cg, "hierarchy")), v2 ? "v2" : "v1");
	assert_int_equal(num(cg, "limit_bytes"), 16 * MiB);
	ev = json_object_get(cg, "events");
	assert_true(num(ev, v2 ? "max" : "failcnt") > 0);
	capture_result_clear(&res);
	assert_int_equal(rmdir(cgdir), 0);
	test_rmtree(dir);
}

static void test_nothing_recorded_outside_window(void **s)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = getpid()};
	struct capture_result res = {0};
	json_t *me;
	char *mem;

	start(&t);
	fx.ops->stop(fx.state);
	mem = grow(64 * MiB);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	me = json_array_get(json_object_get(res.data, "processes"), 0);
	assert_non_null(me);
	/* the 16384 faults of the growth came after stop; what is left is the
	 * capture's own start-up (reading /proc) inside the window */
	assert_true(num(me, "page_faults_user") < 2000);
	assert_true(num(res.data, "page_faults_counted") < 2000);
	capture_result_clear(&res);
	munmap(mem, 64 * MiB);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_growth_and_faults),
		cmocka_unit_test(test_host_hog_ranked_first),
		cmocka_unit_test(test_memcg_reclaim_stalls),
		cmocka_unit_test(test_nothing_recorded_outside_window),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
