// SPDX-License-Identifier: GPL-2.0-only
/* The iotrace capture on the real kernel, against this test's own IO on a real
 * block device: O_DIRECT writes, page-cache misses, fsync, flusher writeback of
 * pages this process dirtied, a child in a cgroup; filters, paths, latency,
 * blocked stacks, and nothing recorded outside the window. */
#include "bpftest.h"
#include "testutil.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "probes/bpfutil.h"
#include "probes/capture.h"
#include "probes/iotrace.h"
#include "iotrace.skel.h"
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#define MiB (1024 * 1024)

static struct capture_fixture fx;
static char dir[256];

/* A directory on a block device: tmpfs has no block layer. */
static void make_dir_on_disk(void)
{
	static const char *const bases[] = {"/var/tmp", "/tmp", "/root"};
	struct statfs sf;

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (statfs(bases[i], &sf) || sf.f_type == TMPFS_MAGIC)
			continue;
		snprintf(dir, sizeof(dir), "%s/autotrace-iotrace-XXXXXX", bases[i]);
		if (mkdtemp(dir))
			return;
	}
	fail_msg("no directory on a block device for the test files");
}

static int setup(void **s)
{
	capture_fixture_init(&fx, "bpf/iotrace", "iotrace");
	fx.cfg.capture.max_stacks = 2048;
	fx.cfg.capture.max_files = 1024;
	capture_fixture_prepare(&fx);
	make_dir_on_disk();
	return 0;
}

static int teardown(void **s)
{
	capture_fixture_fini(&fx);
	if (dir[0])
		test_rmtree(dir);
	return 0;
}

static const char *path_of(const char *name)
{
	static char paths[8][512];
	static unsigned next;
	char *p = paths[next++ & 7];

	snprintf(p, 512, "%s/%s", dir, name);
	return p;
}

static void write_direct(const char *path, size_t bytes)
{
	size_t chunk = 64 * 1024;
	/* NULL: cmocka's asserts are not noreturn, so the compiler sees a path past a
	 * failed posix_memalign */
	void *buf = NULL;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0600);

	assert_true(fd >= 0);
	assert_int_equal(posix_memalign(&buf, 4096, chunk), 0);
	assert_non_null(buf);
	memset(buf, 'd', chunk);
	for (size_t off = 0; off < bytes; off += chunk)
		assert_int_equal(pwrite(fd, buf, chunk, (off_t)off), (ssize_t)chunk);
	free(buf);
	close(fd);
}

static void write_buffered(const char *path, size_t bytes, bool do_fsync)
{
	char buf[65536];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	memset(buf, 'b', sizeof(buf));
	for (size_t off = 0; off < bytes; off += sizeof(buf))
		assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	if (do_fsync)
		assert_int_equal(fsync(fd), 0);
	close(fd);
}

/* Reads a file that is on disk but not in the page cache. */
static void read_cold(const char *path, size_t bytes)
{
	char buf[65536];
	size_t got = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		got += (size_t)n;
	assert_int_equal(got, bytes);
	close(fd);
}

static json_t *find_process(json_t *data, int pid)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(data, "processes"), i,
			   p) if (json_integer_value(json_object_get(p, "pid")) == pid) return p;
	return NULL;
}

static json_t *find_file(json_t *proc, const char *path)
{
	json_t *f;
	size_t i;

	json_array_foreach(json_object_get(proc, "files"), i,
			   f) if (strcmp(json_string_value(json_object_get(f, "path")), path) ==
				  0) return f;
	return NULL;
}

static long long num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_integer(v))
		fail_msg("missing field %s", k);
	return json_integer_value(v);
}

static void dump(json_t *data)
{
	char *text = json_dumps(data, JSON_INDENT(1));

	fprintf(stderr, "%s\n", text);
	free(text);
}

static void check_device_and_inode(json_t *file, const char *path)
{
	struct stat st;
	char dev[32];

	assert_int_equal(stat(path, &st), 0);
	snprintf(dev, sizeof(dev), "%u:%u", major(st.st_dev), minor(st.st_dev));
	assert_string_equal(json_string_value(json_object_get(file, "device")), dev);
	assert_int_equal(num(file, "inode"), (long long)st.st_ino);
	assert_non_null(strstr(json_string_value(json_object_get(file, "file_stat")), path));
}

static void start_pid(int pid, bool blocked)
{
	struct capture_target t = {.kind = TARGET_PID, .pid = pid};
	struct capture_params p;

	capture_params_defaults(fx.ops, &p);
	p.v[capture_param_index(fx.ops, "blocked_threshold")] = 0;
	p.v[capture_param_index(fx.ops, "blocked_stacks")] = blocked;
	p.v[capture_param_index(fx.ops, "top_files")] = 20;
	assert_int_equal(fx.ops->start(fx.state, &t, &p), 0);
}

static void test_own_io_by_file(void **s)
{
	const char *direct = path_of("direct.dat"), *cold = path_of("cold.dat");
	const char *synced = path_of("fsynced.dat"), *flushed = path_of("flushed.dat");
	struct capture_result res = {0};
	json_t *me, *f, *blocked, *st;
	int dfd;
	size_t i;
	bool io_schedule_seen = false;

	/* the cold file exists before the window, so only its reads count */
	write_buffered(cold, 2 * MiB, true);

	start_pid(getpid(), true);
	write_direct(direct, 4 * MiB);
	write_buffered(synced, 1 * MiB, true);
	read_cold(cold, 2 * MiB);
	write_buffered(flushed, 2 * MiB, false);
	/* syncfs hands the dirty pages to the flusher threads and waits for them */
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(syncfs(dfd), 0);
	close(dfd);
	fx.ops->stop(fx.state);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	if (getenv("IOTRACE_DUMP"))
		dump(res.data);

	me = find_process(res.data, getpid());
	if (!me)
		dump(res.data);
	assert_non_null(me);
	/* filtered in the kernel: only this process */
	assert_int_equal(json_array_size(json_object_get(res.data, "processes")), 1);
	assert_true(json_is_true(json_object_get(res.data, "fs_level")));

	f = find_file(me, direct);
	if (!f)
		dump(res.data);
	assert_non_null(f);
	check_device_and_inode(f, direct);
	assert_int_equal(num(f, "fs_write_bytes"), 4 * MiB);
	assert_int_equal(num(f, "fs_writes"), 64);
	assert_true(num(f, "disk_write_bytes") >= 4 * MiB);
	assert_true(num(f, "disk_writes") > 0);
	assert_true(num(f, "d2c_avg_us") > 0);
	assert_true(num(f, "q2c_avg_us") >= num(f, "d2c_avg_us"));
	assert_true(num(f, "q2c_max_us") >= num(f, "q2c_avg_us"));
	assert_string_equal(json_string_value(json_object_get(f, "path_source")), "dentry");

	f = find_file(me, synced);
	assert_non_null(f);
	assert_int_equal(num(f, "fs_write_bytes"), 1 * MiB);
	assert_true(num(f, "disk_write_bytes") >= 1 * MiB);

	f = find_file(me, cold);
	if (!f)
		dump(res.data);
	assert_non_null(f);
	assert_int_equal(num(f, "fs_read_bytes"), 2 * MiB);
	assert_true(num(f, "disk_read_bytes") > 0);
	assert_true(num(f, "disk_reads") > 0);

	/* written by a flusher thread, attributed to who dirtied it */
	f = find_file(me, flushed);
	if (!f || num(f, "writeback_bytes") <= 0)
		dump(res.data);
	assert_non_null(f);
	assert_true(num(f, "writeback_bytes") > 0);
	assert_true(num(f, "disk_write_bytes") >= num(f, "writeback_bytes"));
	assert_true(num(res.data, "writeback_requests") > 0);

	/* every block of the window, with the stack that waited */
	blocked = json_object_get(res.data, "blocked");
	assert_non_null(blocked);
	assert_true(num(blocked, "events") > 0);
	json_array_foreach(json_object_get(blocked, "top_stacks"), i, st)
	{
		json_t *fr;
		size_t j;

		assert_int_equal(num(st, "pid"), getpid());
		json_array_foreach(json_object_get(st, "frames"), j, fr)
		{
			const char *fn = json_string_value(json_object_get(fr, "func"));

			if (fn && strstr(fn, "io_schedule"))
				io_schedule_seen = true;
		}
	}
	if (!io_schedule_seen)
		dump(blocked);
	assert_true(io_schedule_seen);
	assert_int_equal(res.nartifacts, 1);
	assert_string_equal(res.artifacts[0].name, "iotrace-blocked.folded");

	/* the device table names the disk */
	assert_true(json_array_size(json_object_get(res.data, "devices")) > 0);
	capture_result_clear(&res);
}

static void child_io(const char *path)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		write_direct(path, 1 * MiB);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_other_process_filtered_out(void **s)
{
	struct capture_result res = {0};
	const char *mine = path_of("mine.dat"), *theirs = path_of("theirs.dat");
	json_t *me;

	start_pid(getpid(), false);
	child_io(theirs);
	write_direct(mine, 1 * MiB);
	fx.ops->stop(fx.state);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	assert_int_equal(json_array_size(json_object_get(res.data, "processes")), 1);
	me = find_process(res.data, getpid());
	assert_non_null(me);
	assert_non_null(find_file(me, mine));
	assert_null(find_file(me, theirs));
	assert_null(json_object_get(res.data, "blocked"));
	capture_result_clear(&res);
}

static void test_cgroup_target_includes_children(void **s)
{
	struct capture_target t = {.kind = TARGET_CGROUP};
	struct capture_result res = {0};
	const char *theirs = path_of("child-in-cgroup.dat");
	struct capture_params p;
	struct test_cgroup c;
	json_t *proc, *f;
	size_t i;
	bool found = false;

	test_cgroup_make(&c, fx.cgroups, "autotrace-iotest");
	test_cgroup_enter(c.dir, getpid());
	snprintf(t.cgroup, sizeof(t.cgroup), "%s", c.rel);
	t.cgroup_id = c.id;
	/* id -> path lookups rescan the hierarchy at most once a second */
	usleep(1100 * 1000);
	capture_params_defaults(fx.ops, &p);
	assert_int_equal(fx.ops->start(fx.state, &t, &p), 0);
	child_io(theirs);
	fx.ops->stop(fx.state);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	json_array_foreach(json_object_get(res.data, "processes"), i, proc)
	{
		/* a forked child is another process of the same cgroup */
		if (!json_is_string(json_object_get(proc, "cgroup")))
			dump(proc);
		assert_string_equal(json_string_value(json_object_get(proc, "cgroup")), t.cgroup);
		f = find_file(proc, theirs);
		if (f && num(proc, "pid") != getpid() && num(f, "disk_write_bytes") >= MiB)
			found = true;
	}
	if (!found)
		dump(res.data);
	assert_true(found);
	capture_result_clear(&res);
	test_cgroup_remove(&c, fx.cgroups);
}

static void test_nothing_recorded_outside_window(void **s)
{
	struct capture_result res = {0};

	start_pid(getpid(), true);
	fx.ops->stop(fx.state);
	write_direct(path_of("after.dat"), 1 * MiB);
	assert_int_equal(fx.ops->collect(fx.state, &res), 0);
	if (json_array_size(json_object_get(res.data, "processes")))
		dump(res.data);
	assert_int_equal(json_array_size(json_object_get(res.data, "processes")), 0);
	assert_int_equal(num(res.data, "fs_calls"), 0);
	assert_int_equal(num(res.data, "disk_requests"), 0);
	capture_result_clear(&res);
}

/* The raw_tp twins (chosen when tp_btf does not load) pass the verifier too. */
static void test_raw_tp_fallback_loads(void **s)
{
	struct iotrace_bpf *skel = iotrace_bpf__open();
	struct btf *btf = btf__load_vmlinux_btf();
	struct bpf_program *prog;
	unsigned raw = 0;

	assert_non_null(skel);
	assert_non_null(btf);
	bpf_object_choose_tp_btf(skel->obj, false);
	bpf_object__for_each_program(prog, skel->obj)
	{
		const char *sec = bpf_program__section_name(prog);

		if (!bpf_program__autoload(prog))
			continue;
		if (!btf_has_tracepoint(btf, strchr(sec, '/') + 1))
			bpf_program__set_autoload(prog, false);
		else
			raw += strncmp(sec, "raw_tp/", 7) == 0;
	}
	assert_int_equal(iotrace_bpf__load(skel), 0);
	assert_true(raw >= 6);
	btf__free(btf);
	iotrace_bpf__destroy(skel);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_io_by_file),
		cmocka_unit_test(test_other_process_filtered_out),
		cmocka_unit_test(test_cgroup_target_includes_children),
		cmocka_unit_test(test_nothing_recorded_outside_window),
		cmocka_unit_test(test_raw_tp_fallback_loads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
