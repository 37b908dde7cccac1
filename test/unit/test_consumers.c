// SPDX-License-Identifier: GPL-2.0-only
/* Ranking by consumption: processes, programs (name + executable), containers,
 * against a crafted /proc. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/consumers.h"
#include "base/sanitize.h"

static const char *procfs;

/* procfs/PID/exe -> exe (when given) and procfs/PID/comm */
static void fake_proc(int pid, const char *comm, const char *exe)
{
	char dir[512], path[600];

	snprintf(dir, sizeof(dir), "%s/%d", procfs, pid);
	mkdir(dir, 0700);
	if (comm) {
		char text[64];

		snprintf(text, sizeof(text), "%s\n", comm);
		test_write_file(dir, "comm", text, 0600);
	}
	if (exe) {
		snprintf(path, sizeof(path), "%s/exe", dir);
		assert_int_equal(symlink(exe, path), 0);
	}
}

static int setup(void **state)
{
	procfs = test_tmpdir(0);
	return 0;
}

static int teardown(void **state)
{
	test_rmtree(procfs);
	return 0;
}

static struct consumers *new_set(unsigned max_procs)
{
	struct consumers *c = NULL;
	struct consumers_opts o = {
		.measure = "samples",
		.top_n = 10,
		.stacks_per = 3,
		.max_procs = max_procs,
		.procfs = procfs,
	};

	assert_int_equal(consumers_new(&c, &o), 0);
	return c;
}

static json_t *find(json_t *arr, const char *key, const char *value)
{
	json_t *e;
	size_t i;

	json_array_foreach(arr, i, e)
	{
		const char *v = json_string_value(json_object_get(e, key));

		if (v && !strcmp(v, value))
			return e;
	}
	return NULL;
}

/* Six workers of one server, each over many small stacks, and a client with
 * one big stack: the client is the largest process and stack, the server the
 * largest program. */
static void test_prefork_server_ranks_first(void **state)
{
	struct consumers *c = new_set(0);
	json_t *j, *progs, *srv, *stacks;
	char folded[64];

	for (int w = 0; w < 6; w++) {
		fake_proc(100 + w, "srv", "/usr/sbin/srv");
		for (int s = 0; s < 10; s++) {
			snprintf(folded, sizeof(folded), "srv;main;handle;path%d", s);
			assert_int_equal(consumers_add(c, 100 + w, 100 + w, "srv", 0, 10, 0), 0);
			assert_int_equal(consumers_add_stack(c, 100 + w, folded, 10), 0);
		}
	}
	fake_proc(200, "cli", "/usr/bin/cli");
	consumers_add(c, 200, 200, "cli", 0, 150, 0);
	consumers_add_stack(c, 200, "cli;main;spin_[k]", 150);

	j = consumers_json(c);
	assert_string_equal(json_string_value(json_object_get(j, "measure")), "samples");
	assert_int_equal(json_integer_value(json_object_get(j, "total")), 750);
	/* the largest process is the client... */
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(j, "processes"), 0), "pid")),
			 200);
	/* ...the largest program the server, its six processes together */
	progs = json_object_get(j, "programs");
	srv = json_array_get(progs, 0);
	assert_string_equal(json_string_value(json_object_get(srv, "program")), "srv");
	assert_string_equal(json_string_value(json_object_get(srv, "exe")), "/usr/sbin/srv");
	assert_int_equal(json_integer_value(json_object_get(srv, "processes")), 6);
	assert_int_equal(json_array_size(json_object_get(srv, "pids")), 6);
	assert_int_equal(json_integer_value(json_object_get(srv, "samples")), 600);
	assert_true(json_real_value(json_object_get(srv, "pct")) == 80.0);
	/* one stack in six workers is one stack of the program */
	stacks = json_object_get(srv, "stacks");
	assert_int_equal(json_array_size(stacks), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(stacks, 0), "samples")),
			 60);
	assert_true(json_real_value(json_object_get(srv, "kernel_pct")) == 0.0);
	/* the client: all its time in one kernel leaf */
	assert_true(json_real_value(json_object_get(find(progs, "program", "cli"), "kernel_pct")) ==
		    100.0);
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(find(progs, "program", "cli"), "functions"),
				       0),
			"name")),
		"spin");
	json_decref(j);
	consumers_free(&c);
	assert_null(c);
}

/* A process that exited (no /proc entry, no symbolizer) joins the one program
 * of its name; a same-named binary elsewhere is another program; kernel
 * threads count as one program by their name before the '/'. */
static void test_programs_by_name_and_executable(void **state)
{
	struct consumers *c = new_set(0);
	json_t *j, *progs, *e;

	fake_proc(300, "worker", "/opt/a/worker");
	fake_proc(301, "worker", "/opt/a/worker");
	fake_proc(302, "worker", "/opt/b/worker");
	consumers_add(c, 300, 300, "worker", 0, 10, 0);
	consumers_add(c, 301, 301, "worker", 0, 10, 0);
	consumers_add(c, 302, 302, "worker", 0, 15, 0);
	/* exited: two same-named programs exist, so it cannot join either */
	consumers_add(c, 303, 303, "worker", 0, 1, 0);
	fake_proc(310, "kworker/0:1", NULL);
	fake_proc(311, "kworker/u4:2", NULL);
	consumers_add(c, 310, 310, "kworker/0:1", 0, 7, 0);
	consumers_add(c, 311, 311, "kworker/u4:2", 0, 7, 0);
	fake_proc(320, "db", "/usr/bin/db");
	consumers_add(c, 320, 320, "db", 0, 3, 0);
	consumers_add(c, 321, 321, "db", 0, 2, 0); /* exited: joins /usr/bin/db */

	j = consumers_json(c);
	progs = json_object_get(j, "programs");
	e = json_array_get(progs, 0);
	assert_string_equal(json_string_value(json_object_get(e, "exe")), "/opt/a/worker");
	assert_int_equal(json_integer_value(json_object_get(e, "processes")), 2);
	e = json_array_get(progs, 1);
	assert_string_equal(json_string_value(json_object_get(e, "exe")), "/opt/b/worker");
	e = find(progs, "program", "kworker");
	assert_non_null(e);
	assert_int_equal(json_integer_value(json_object_get(e, "processes")), 2);
	assert_null(json_object_get(e, "exe"));
	e = find(progs, "program", "db");
	assert_int_equal(json_integer_value(json_object_get(e, "processes")), 2);
	assert_int_equal(json_integer_value(json_object_get(e, "samples")), 5);
	json_decref(j);
	consumers_free(&c);
}

/* The leader's name names the process; threads named otherwise do not. */
static void test_process_named_by_leader(void **state)
{
	struct consumers *c = new_set(0);
	json_t *j;

	consumers_add(c, 400, 401, "io-thread", 0, 50, 0);
	consumers_add(c, 400, 400, "mysqld", 0, 1, 0);
	j = consumers_json(c);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(j, "processes"), 0), "comm")),
			    "mysqld");
	json_decref(j);
	consumers_free(&c);
}

/* Containers by cgroup path, with their ids. */
static void test_containers(void **state)
{
	static const char *const cg =
		"/kubepods/pod0b2f6d5c-1c1e-4a3b-9f3e-2d1c0b9a8f7e/"
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	struct consumers *c = new_set(0);
	json_t *j, *conts;

	consumers_add_path(c, 500, 500, "app", cg, 30, 0);
	consumers_add_path(c, 501, 501, "app", cg, 30, 0);
	consumers_add_path(c, 502, 502, "sidecar", "/system.slice/x.service", 10, 0);
	j = consumers_json(c);
	conts = json_object_get(j, "containers");
	assert_int_equal(json_array_size(conts), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(conts, 0), "cgroup")),
			    cg);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(conts, 0), "processes")),
			 2);
	assert_non_null(json_object_get(json_array_get(conts, 0), "container_id"));
	assert_non_null(
		json_object_get(json_array_get(json_object_get(j, "programs"), 0), "container_id"));
	json_decref(j);
	consumers_free(&c);
}

/* Past max_procs, processes count in the total only, and say so. */
static void test_bounded(void **state)
{
	struct consumers *c = new_set(2);
	json_t *j;

	assert_int_equal(consumers_add(c, 1, 1, "a", 0, 1, 0), 0);
	assert_int_equal(consumers_add(c, 2, 2, "b", 0, 1, 0), 0);
	assert_int_equal(consumers_add(c, 3, 3, "c", 0, 1, 0), -ENOSPC);
	j = consumers_json(c);
	assert_int_equal(json_integer_value(json_object_get(j, "total")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "processes_seen")), 2);
	assert_int_equal(json_integer_value(
				 json_object_get(json_object_get(j, "lost"), "processes_over_max")),
			 1);
	json_decref(j);
	consumers_free(&c);
}

/* Names are the tenant's: invalid UTF-8 and control bytes never make a
 * field vanish. */
static void test_hostile_names(void **state)
{
	struct consumers *c = new_set(0);
	json_t *j, *s;

	s = json_string_clean("ok\xff\xfe\x01name\xc3\xa9\xed\xa0\x80");
	assert_string_equal(json_string_value(s), "ok???name\xc3\xa9???");
	json_decref(s);
	consumers_add(c, 600, 600, "bad\xff\n", 0, 1, 0);
	consumers_add_stack(c, 600, "bad\xff\n;f\xc0\x80", 1);
	j = consumers_json(c);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(j, "processes"), 0), "comm")),
			    "bad??");
	assert_non_null(json_object_get(
		json_array_get(json_object_get(json_array_get(json_object_get(j, "programs"), 0),
					       "stacks"),
			       0),
		"stack"));
	json_decref(j);
	consumers_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefork_server_ranks_first),
		cmocka_unit_test(test_programs_by_name_and_executable),
		cmocka_unit_test(test_process_named_by_leader),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_hostile_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
