// SPDX-License-Identifier: GPL-2.0-only
/* base/cgroups on its own: container and pod identity from a path, a process's cgroup from
 * /proc/PID/cgroup (v2, v1, hybrid, hostile names), the subtree test, and the cgroup
 * fields of a JSON object. The watched set is tested with its watcher in
 * test_cgroupstat.c. */
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cgroups.h"

#define CID1  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define CID2  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define POD1  "11111111-2222-3333-4444-555555555555"
#define POD1_ "11111111_2222_3333_4444_555555555555"

static void test_identity_from_paths(void **s)
{
	char cid[65], pod[37];

	(void)s;
	cgroup_path_identity("/docker/" CID1, cid, sizeof(cid), pod, sizeof(pod));
	assert_string_equal(cid, CID1);
	assert_string_equal(pod, "");
	cgroup_path_identity("/system.slice/docker-" CID1 ".scope", cid, sizeof(cid), pod,
			     sizeof(pod));
	assert_string_equal(cid, CID1);
	cgroup_path_identity("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" POD1_
			     ".slice/cri-containerd-" CID2 ".scope",
			     cid, sizeof(cid), pod, sizeof(pod));
	assert_string_equal(cid, CID2);
	assert_string_equal(pod, POD1);
	cgroup_path_identity("/kubepods/besteffort/pod" POD1 "/" CID1, cid, sizeof(cid), pod,
			     sizeof(pod));
	assert_string_equal(cid, CID1);
	assert_string_equal(pod, POD1);
	cgroup_path_identity("/machine.slice/libpod-" CID2 ".scope/container", cid, sizeof(cid),
			     pod, sizeof(pod));
	assert_string_equal(cid, CID2);
	/* not ids: too short, upper case, one hex digit too many */
	cgroup_path_identity("/process_api/950e3d499bbdf3fda2310f6076d63a81", cid, sizeof(cid), pod,
			     sizeof(pod));
	assert_string_equal(cid, "");
	cgroup_path_identity("/docker/0" CID1, cid, sizeof(cid), pod, sizeof(pod));
	assert_string_equal(cid, "");
	cgroup_path_identity("/docker/" CID1 "0/x", cid, sizeof(cid), pod, sizeof(pod));
	assert_string_equal(cid, "");
	cgroup_path_identity(
		"/docker/0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", cid,
		sizeof(cid), pod, sizeof(pod));
	assert_string_equal(cid, "");
	/* the last of several */
	cgroup_path_identity("/" CID1 "/x-" CID2 ".scope/" CID1 "0", cid, sizeof(cid), pod,
			     sizeof(pod));
	assert_string_equal(cid, CID2);
	cgroup_path_identity("/podxyz/pod1234", cid, sizeof(cid), pod, sizeof(pod));
	assert_string_equal(pod, "");

	assert_string_equal(cgroup_path_qos("/kubepods/besteffort/pod" POD1 "/" CID1),
			    "besteffort");
	assert_string_equal(cgroup_path_qos("/kubepods/burstable/pod" POD1), "burstable");
	assert_string_equal(cgroup_path_qos("/kubepods/pod" POD1 "/" CID1), "guaranteed");
	assert_string_equal(cgroup_path_qos("/kubepods.slice/kubepods-besteffort.slice/"
					    "kubepods-besteffort-pod" POD1_ ".slice"),
			    "besteffort");
	assert_string_equal(cgroup_path_qos("/kubepods.slice/kubepods-pod" POD1_ ".slice"),
			    "guaranteed");
	assert_string_equal(cgroup_path_qos("/kubepods.slice"), "");
	assert_string_equal(cgroup_path_qos("/system.slice/docker-" CID1 ".scope"), "");
}

/* what the kernel prints on a hybrid host: v1 hierarchies, then the unified one last */
static const char hybrid[] = "12:memory:/system.slice/mem.service\n"
			     "11:cpu,cpuacct:/kubepods/burstable/pod" POD1 "\n"
			     "4:net_cls,net_prio:/\n"
			     "1:name=systemd:/user.slice/x.scope\n"
			     "0::/user.slice/x.scope\n";

static void test_proc_cgroup_lines(void **s)
{
	char buf[256];

	/* pure v2: one line, whatever controller is asked for */
	assert_int_equal(cgroup_proc_parse("0::/system.slice/a.service\n", NULL, buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "/system.slice/a.service");
	assert_int_equal(cgroup_proc_parse("0::/system.slice/a.service\n", "cpu", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "/system.slice/a.service");
	assert_int_equal(cgroup_proc_parse("0::/\n", "memory", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/");
	/* hybrid: the controller's v1 hierarchy, an exact token of its list */
	assert_int_equal(cgroup_proc_parse(hybrid, "cpu", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/kubepods/burstable/pod" POD1);
	assert_int_equal(cgroup_proc_parse(hybrid, "cpuacct", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/kubepods/burstable/pod" POD1);
	assert_int_equal(cgroup_proc_parse(hybrid, "memory", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/system.slice/mem.service");
	assert_int_equal(cgroup_proc_parse(hybrid, "net_prio", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/");
	assert_int_equal(cgroup_proc_parse(hybrid, NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/user.slice/x.scope");
	/* "cpu" is not "cpuset", nor a named hierarchy: no v1 line, so the unified one */
	assert_int_equal(
		cgroup_proc_parse("3:cpuset:/a\n2:name=cpu:/b\n0::/c\n", "cpu", buf, sizeof(buf)),
		0);
	assert_string_equal(buf, "/c");
	/* v1 only (no unified line) */
	assert_int_equal(cgroup_proc_parse("5:cpuacct,cpu:/v1only\n", "cpu", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/v1only");
	assert_int_equal(cgroup_proc_parse("5:cpuacct,cpu:/v1only\n", NULL, buf, sizeof(buf)),
			 -ENOENT);
	assert_int_equal(cgroup_proc_parse("5:cpuacct,cpu:/v1only\n", "memory", buf, sizeof(buf)),
			 -ENOENT);
	/* no trailing newline, and a path with colons */
	assert_int_equal(cgroup_proc_parse("0::/a:b:c", NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/a:b:c");
}

static void test_proc_cgroup_hostile(void **s)
{
	char buf[256], small[8];

	/* A tenant may name its cgroup with a newline and a fake line after it: the unified
	 * line is the last the kernel prints, so all that follows is its path. */
	assert_int_equal(
		cgroup_proc_parse("0::/tenant/x\n7:cpu:/victim\n", "cpu", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/tenant/x\n7:cpu:/victim");
	assert_int_equal(cgroup_proc_parse("0::/tenant/x\n0::/victim\n", NULL, buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "/tenant/x\n0::/victim");
	/* malformed lines are skipped, nothing is found in garbage */
	assert_int_equal(cgroup_proc_parse("", NULL, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(cgroup_proc_parse("\n\n", "cpu", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(cgroup_proc_parse("no colons\n1:one colon\n", "cpu", buf, sizeof(buf)),
			 -ENOENT);
	assert_int_equal(cgroup_proc_parse(":cpu:/x\n", "cpu", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/x");
	assert_int_equal(cgroup_proc_parse("1:,,cpu,:/y\n", "cpu", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/y");
	/* a path that does not fit is refused whole, never cut */
	assert_int_equal(cgroup_proc_parse("0::/1234567\n", NULL, small, sizeof(small)),
			 -ENAMETOOLONG);
	assert_int_equal(cgroup_proc_parse("0::/123456\n", NULL, small, sizeof(small)), 0);
	assert_string_equal(small, "/123456");
}

static void test_cgroup_of_pid(void **s)
{
	const char *root = test_tmpdir(0);
	char dir[PATH_MAX], buf[PATH_MAX], self[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/42", root);
	assert_int_equal(mkdir(dir, 0700), 0);
	test_write_file(dir, "cgroup", hybrid, 0600);
	assert_int_equal(cgroup_of_pid(root, 42, "cpu", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/kubepods/burstable/pod" POD1);
	assert_int_equal(cgroup_of_pid(root, 42, NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/user.slice/x.scope");
	/* a process that is gone */
	assert_int_equal(cgroup_of_pid(root, 43, NULL, buf, sizeof(buf)), -ENOENT);
	test_rmtree(root);

	/* this very process, on the real /proc: a cgroup every hierarchy agrees exists */
	assert_int_equal(cgroup_of_pid("/proc", getpid(), NULL, self, sizeof(self)) == 0 ||
				 cgroup_of_pid("/proc", getpid(), "cpu", self, sizeof(self)) == 0,
			 1);
	assert_true(self[0] == '/');
}

static void test_path_under(void **s)
{
	assert_true(cgroup_path_under("/a/b", "/a"));
	assert_true(cgroup_path_under("/a", "/a"));
	assert_true(cgroup_path_under("/a/b/c", "/a/b"));
	assert_false(cgroup_path_under("/ab", "/a"));
	assert_false(cgroup_path_under("/a", "/a/b"));
	assert_false(cgroup_path_under("/b", "/a"));
	assert_true(cgroup_path_under("/anything", "/"));
	assert_true(cgroup_path_under("/", "/"));
}

static void test_json_fields(void **s)
{
	const char *root = test_tmpdir(1);
	char dir[PATH_MAX];
	struct cgroups *cg = NULL;
	struct stat st;
	json_t *o = json_object();

	snprintf(dir, sizeof(dir), "%s/system.slice", root);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(dir, sizeof(dir), "%s/system.slice/docker-" CID1 ".scope", root);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(cgroups_new_at(&cg, root, CGROUP_V2), 0);

	cgroup_json_set(o, cg, (uint64_t)st.st_ino);
	assert_string_equal(json_string_value(json_object_get(o, "cgroup")),
			    "/system.slice/docker-" CID1 ".scope");
	assert_string_equal(json_string_value(json_object_get(o, "container_id")), CID1);
	assert_null(json_object_get(o, "pod_uid"));
	/* unknown, zero, or no hierarchy: the object is left as it was */
	json_object_clear(o);
	cgroup_json_set(o, cg, 0);
	cgroup_json_set(o, cg, 1);
	cgroup_json_set(o, NULL, (uint64_t)st.st_ino);
	assert_int_equal(json_object_size(o), 0);

	json_decref(o);
	cgroups_free(&cg);
	test_rmtree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_from_paths),
		cmocka_unit_test(test_proc_cgroup_lines),
		cmocka_unit_test(test_proc_cgroup_hostile),
		cmocka_unit_test(test_cgroup_of_pid),
		cmocka_unit_test(test_path_under),
		cmocka_unit_test(test_json_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
