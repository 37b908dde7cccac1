// SPDX-License-Identifier: GPL-2.0-only
/* The cgroupfs watcher and the watched cgroup set it samples, against crafted v2, v1 and
 * hybrid trees: identity labels (docker, containerd, cri-o, kubelet), QoS class, limits,
 * cgroups that come and go, the bound, hostile names and contents. Identity from a path
 * alone is in test_cgroups.c. */
#include "testutil.h"
#include "watchtest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "probes/watchutil.h"

extern const struct watcher_ops cgroupstat_watcher;

#define CID1  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define CID2  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define POD1  "11111111-2222-3333-4444-555555555555"
#define POD1_ "11111111_2222_3333_4444_555555555555"

static struct cgroups *cg;

static int setup(void **s)
{
	watch_fixture_init(4096, 10);
	watch_put("proc/meminfo", "MemTotal: 8388608 kB\n"); /* 8 GiB */
	return 0;
}

static int teardown(void **s)
{
	watch_fixture_fini();
	cgroups_free(&cg);
	return 0;
}

static void open_cgroups(const char *sub, enum cgroup_layout layout)
{
	char root[512];

	snprintf(root, sizeof(root), "%s/%s", wfx.root, sub);
	mkdir(root, 0700);
	assert_int_equal(cgroups_new_at(&cg, root, layout), 0);
	assert_int_equal(watch_open(&cgroupstat_watcher, cg), 0);
}

/* Latest value of metric for the cgroup at path; NaN when none. */
static double cg_value(unsigned metric, const char *path)
{
	for (struct tsdb_series *s = tsdb_first(wfx.db, metric); s; s = tsdb_next(s)) {
		char buf[512];
		double v;

		if (tsdb_series_label(s, "cgroup", buf, sizeof(buf)) < 0 || strcmp(buf, path))
			continue;
		return tsdb_value(wfx.db, s, 0, &v) ? v : NAN;
	}
	return NAN;
}

static const struct cgroup_entry *entry(const char *path)
{
	for (unsigned i = 0; i < cgroups_watch_count(cg); i++)
		if (!strcmp(cgroups_watch_at(cg, i)->path, path))
			return cgroups_watch_at(cg, i);
	return NULL;
}

#define DOCKER	"system.slice/docker-" CID1 ".scope"
#define K8S_POD "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" POD1_ ".slice"
#define K8S_CTR K8S_POD "/cri-containerd-" CID2 ".scope"

static void v2_cgroup(const char *rel, bool populated)
{
	char p[1024];

	snprintf(p, sizeof(p), "v2/%s/cgroup.events", rel);
	watch_put(p, populated ? "populated 1\nfrozen 0\n" : "populated 0\nfrozen 0\n");
}

static void v2_set(const char *rel, const char *file, const char *text)
{
	char p[1024];

	snprintf(p, sizeof(p), "v2/%s/%s", rel, file);
	watch_put(p, text);
}

static const char *cpu_stat_v2(unsigned long usage, unsigned long user, unsigned long sys,
			       unsigned long periods, unsigned long throttled,
			       unsigned long throttled_us)
{
	static char buf[512];

	snprintf(buf, sizeof(buf),
		 "usage_usec %lu\nuser_usec %lu\nsystem_usec %lu\nnr_periods %lu\n"
		 "nr_throttled %lu\nthrottled_usec %lu\nnr_bursts 0\nburst_usec 0\n",
		 usage, user, sys, periods, throttled, throttled_us);
	return buf;
}

static void test_v2_watch_set_and_metrics(void **s)
{
	const struct cgroup_entry *e;
	struct cgroups_watch_stats st;

	(void)s;
	v2_cgroup("system.slice", true);
	v2_cgroup(DOCKER, true);
	v2_cgroup("kubepods.slice", true);
	v2_cgroup("kubepods.slice/kubepods-burstable.slice", true);
	v2_cgroup(K8S_POD, true);
	v2_cgroup(K8S_CTR, true);
	v2_cgroup("empty.slice", false);
	v2_cgroup("bad\x1fname", true); /* would forge a label */
	v2_cgroup("nofile.slice/x", true);
	watch_rm("v2/nofile.slice/x/cgroup.events"); /* not a cgroup we can read */
	v2_set(DOCKER, "cpu.stat", cpu_stat_v2(1000000, 600000, 400000, 10, 0, 0));
	v2_set(DOCKER, "cpu.max", "50000 100000\n");
	v2_set(DOCKER, "memory.current", "1073741824\n");
	v2_set(DOCKER, "memory.max", "2147483648\n");
	v2_set(DOCKER, "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
	v2_set(DOCKER, "cpu.pressure",
	       "some avg10=0 avg60=0 avg300=0 total=100\n"
	       "full avg10=0 avg60=0 avg300=0 total=0\n");
	v2_set(DOCKER, "memory.pressure",
	       "some avg10=0 avg60=0 avg300=0 total=0\n"
	       "full avg10=0 avg60=0 avg300=0 total=0\n");
	v2_set("system.slice", "memory.max", "max\n");
	v2_set("system.slice", "cpu.max", "max 100000\n");
	/* the pod's limit binds its container, which has none of its own */
	v2_set(K8S_POD, "memory.max", "536870912\n");
	v2_set(K8S_CTR, "memory.max", "max\n");
	v2_set(K8S_CTR, "memory.current", "268435456\n");
	v2_set(K8S_CTR, "cpu.stat", cpu_stat_v2(0, 0, 0, 0, 0, 0));
	v2_set(K8S_CTR, "cpuset.cpus.effective", "0-1,4\n");
	open_cgroups("v2", CGROUP_V2);

	assert_int_equal(watch_round(), 0);
	cgroups_watch_stats(cg, &st);
	assert_int_equal(st.watched, 6);
	assert_int_equal(st.unsafe, 1);
	assert_int_equal(st.dropped, 0);
	assert_null(entry("/empty.slice"));
	assert_null(entry("/nofile.slice/x"));
	e = entry("/" DOCKER);
	assert_non_null(e);
	assert_string_equal(e->container_id, CID1);
	assert_string_equal(e->pod_uid, "");
	assert_true(e->id != 0);
	e = entry("/" K8S_CTR);
	assert_non_null(e);
	assert_string_equal(e->container_id, CID2);
	assert_string_equal(e->pod_uid, POD1);
	assert_string_equal(e->qos, "burstable");
	assert_ptr_equal(cgroups_watch_find_id(cg, e->id), e);
	{
		struct labels l;
		char key[LABELS_KEY_MAX];

		cgroup_entry_labels(e, &l);
		assert_int_equal(l.n, 4);
		assert_int_equal(labels_key(&l, key, sizeof(key)), 0);
		assert_non_null(strstr(key, "qos=burstable"));
	}
	/* gauges from the first round */
	assert_near(cg_value(M_CG_MEM_USAGE_BYTES, "/" DOCKER), 1073741824.0);
	assert_near(cg_value(M_CG_MEM_USAGE_PCT, "/" DOCKER), 50);
	assert_near(cg_value(M_CG_CPU_LIMIT, "/" DOCKER), 0.5);
	assert_near(cg_value(M_CG_MEM_LIMIT, "/" K8S_CTR), 536870912.0);
	assert_near(cg_value(M_CG_MEM_USAGE_PCT, "/" K8S_CTR), 50);
	/* its cpuset has three CPUs; the host may have fewer */
	assert_near(cg_value(M_CG_CPU_LIMIT, "/" K8S_CTR),
		    fmin(3.0, (double)sysconf(_SC_NPROCESSORS_ONLN)));
	assert_true(isnan(cg_value(M_CG_CPU_USAGE, "/" DOCKER)));

	/* one second later: 0.25 CPU used of a 0.5 CPU quota, throttled 4 of 10 periods */
	v2_set(DOCKER, "cpu.stat", cpu_stat_v2(1250000, 750000, 500000, 20, 4, 200000));
	v2_set(DOCKER, "memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 3\n");
	v2_set(DOCKER, "cpu.pressure",
	       "some avg10=0 avg60=0 avg300=0 total=300100\n"
	       "full avg10=0 avg60=0 avg300=0 total=0\n");
	assert_int_equal(watch_round(), 0);
	assert_near(cg_value(M_CG_CPU_CORES, "/" DOCKER), 0.25);
	assert_near(cg_value(M_CG_CPU_USAGE, "/" DOCKER), 50);
	assert_near(cg_value(M_CG_CPU_USER, "/" DOCKER), 30);
	assert_near(cg_value(M_CG_CPU_SYS, "/" DOCKER), 20);
	assert_near(cg_value(M_CG_CPU_THROTTLED, "/" DOCKER), 40);
	assert_near(cg_value(M_CG_CPU_THROTTLED_MS, "/" DOCKER), 200);
	assert_near(cg_value(M_CG_MEM_OOM_KILLS, "/" DOCKER), 2);
	assert_near(cg_value(M_CG_PSI_CPU_SOME, "/" DOCKER), 30);
	assert_true(isnan(cg_value(M_CG_PSI_IO_SOME, "/" DOCKER))); /* no io.pressure file */

	/* memory growth over the window (10 s), as % of the limit */
	v2_set(DOCKER, "memory.current", "1610612736\n");
	assert_int_equal(watch_round(), 0);
	assert_int_equal(watch_round(), 0);
	assert_near(cg_value(M_CG_MEM_GROWTH, "/" DOCKER), 25);
}

static void test_v2_come_and_go(void **s)
{
	const struct cgroup_entry *e;
	uint64_t serial, gen;

	(void)s;
	wfx.cfg.watch.cgroup_scan_ms = 5000;
	v2_cgroup(DOCKER, true);
	v2_set(DOCKER, "memory.current", "4096\n");
	open_cgroups("v2", CGROUP_V2);
	assert_int_equal(watch_round(), 0);
	e = entry("/" DOCKER);
	assert_non_null(e);
	serial = e->serial;
	gen = cgroups_watch_generation(cg);
	assert_near(cg_value(M_CG_MEM_USAGE_BYTES, "/" DOCKER), 4096);

	/* a new container shows up at the next scan, not before */
	v2_cgroup("system.slice/docker-" CID2 ".scope", true);
	assert_int_equal(watch_round(), 0);
	assert_null(entry("/system.slice/docker-" CID2 ".scope"));
	for (int i = 0; i < 5; i++)
		assert_int_equal(watch_round(), 0);
	assert_non_null(entry("/system.slice/docker-" CID2 ".scope"));
	assert_true(cgroups_watch_generation(cg) > gen);
	assert_int_equal(entry("/" DOCKER)->serial, serial); /* the old one kept its state */

	/* the first goes away: no value from then on, its state freed (ASan checks) */
	watch_rm("v2/" DOCKER);
	for (int i = 0; i < 6; i++)
		assert_int_equal(watch_round(), 0);
	assert_null(entry("/" DOCKER));
	assert_true(isnan(cg_value(M_CG_MEM_USAGE_BYTES, "/" DOCKER)));
	/* and comes back under the same path: a new cgroup, a new serial */
	v2_cgroup(DOCKER, true);
	v2_set(DOCKER, "memory.current", "8192\n");
	for (int i = 0; i < 6; i++)
		assert_int_equal(watch_round(), 0);
	e = entry("/" DOCKER);
	assert_non_null(e);
	assert_true(e->serial != serial);
	assert_near(cg_value(M_CG_MEM_USAGE_BYTES, "/" DOCKER), 8192);
	{
		struct cgroups_watch_stats st;

		cgroups_watch_stats(cg, &st);
		assert_true(st.appeared >= 3);
		assert_true(st.vanished >= 1);
	}
}

static void test_bound_prefers_workloads(void **s)
{
	struct cgroups_watch_stats st;

	(void)s;
	wfx.cfg.watch.max_cgroups = 2;
	v2_cgroup("a.slice", true);
	v2_cgroup("b.slice", true);
	v2_cgroup("c.slice/deep", true);
	v2_cgroup("c.slice", true);
	v2_cgroup("z/docker/" CID1, true);
	v2_cgroup("z", true);
	v2_cgroup("z/docker", true);
	open_cgroups("v2", CGROUP_V2);
	assert_int_equal(watch_round(), 0);
	cgroups_watch_stats(cg, &st);
	assert_int_equal(st.watched, 2);
	assert_int_equal(st.candidates, 7);
	assert_int_equal(st.dropped, 5);
	/* the container first, then the shallowest */
	assert_non_null(entry("/z/docker/" CID1));
	assert_non_null(entry("/a.slice"));
	assert_null(entry("/c.slice/deep"));
}

static void v1_cgroup(const char *ctrl, const char *rel, const char *file, const char *text)
{
	char p[1024];

	snprintf(p, sizeof(p), "v1/%s/%s/%s", ctrl, rel, file);
	watch_put(p, text);
}

static void test_v1_and_hybrid(void **s)
{
	(void)s;
	/* cgroups are populated through their descendants' tasks on v1 */
	v1_cgroup("cpu", "docker", "cgroup.procs", "");
	v1_cgroup("cpu", "docker/" CID1, "cgroup.procs", "4242\n");
	v1_cgroup("cpu", "docker/" CID1, "cpu.cfs_quota_us", "150000\n");
	v1_cgroup("cpu", "docker/" CID1, "cpu.cfs_period_us", "100000\n");
	v1_cgroup("cpu", "docker/" CID1, "cpu.stat",
		  "nr_periods 10\nnr_throttled 1\n"
		  "throttled_time 1000000\n");
	v1_cgroup("cpu", "docker", "cpu.cfs_quota_us", "-1\n");
	v1_cgroup("cpu", "docker", "cpu.cfs_period_us", "100000\n");
	v1_cgroup("cpu", "idle", "cgroup.procs", "");
	v1_cgroup("cpuacct", "docker/" CID1, "cpuacct.usage", "2000000000\n");
	v1_cgroup("cpuacct", "docker/" CID1, "cpuacct.usage_user", "1500000000\n");
	v1_cgroup("cpuacct", "docker/" CID1, "cpuacct.usage_sys", "500000000\n");
	v1_cgroup("memory", "docker/" CID1, "cgroup.procs", "4242\n");
	v1_cgroup("memory", "docker/" CID1, "memory.usage_in_bytes", "104857600\n");
	v1_cgroup("memory", "docker/" CID1, "memory.limit_in_bytes", "9223372036854771712\n");
	v1_cgroup("memory", "docker/" CID1, "memory.stat",
		  "cache 0\nrss 0\nhierarchical_memory_limit 209715200\n");
	v1_cgroup("memory", "docker/" CID1, "memory.oom_control",
		  "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n");
	/* only in the memory hierarchy, as some sandboxes do */
	v1_cgroup("memory", "sandbox", "cgroup.procs", "99\n");
	v1_cgroup("memory", "sandbox", "memory.usage_in_bytes", "1000\n");
	/* hybrid: pressure in the v2 tree under the same path */
	watch_put("v1/unified/docker/" CID1 "/cpu.pressure",
		  "some avg10=0 avg60=0 avg300=0 total=0\nfull avg10=0 avg60=0 avg300=0 total=0\n");
	open_cgroups("v1", CGROUP_HYBRID);
	assert_int_equal(watch_round(), 0);
	assert_non_null(entry("/docker"));
	assert_non_null(entry("/docker/" CID1));
	assert_null(entry("/idle"));
	assert_non_null(entry("/sandbox"));
	assert_int_equal(entry("/sandbox")->id, 0); /* not in the id (cpu) hierarchy */
	assert_near(cg_value(M_CG_CPU_LIMIT, "/docker/" CID1), 1.5);
	assert_near(cg_value(M_CG_MEM_LIMIT, "/docker/" CID1), 209715200.0);
	assert_near(cg_value(M_CG_MEM_USAGE_PCT, "/docker/" CID1), 50);
	assert_near(cg_value(M_CG_MEM_USAGE_BYTES, "/sandbox"), 1000);

	v1_cgroup("cpu", "docker/" CID1, "cpu.stat",
		  "nr_periods 20\nnr_throttled 6\n"
		  "throttled_time 51000000\n");
	v1_cgroup("cpuacct", "docker/" CID1, "cpuacct.usage", "2750000000\n");
	v1_cgroup("cpuacct", "docker/" CID1, "cpuacct.usage_user", "2100000000\n");
	v1_cgroup("cpuacct", "docker/" CID1, "cpuacct.usage_sys", "650000000\n");
	v1_cgroup("memory", "docker/" CID1, "memory.oom_control",
		  "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n");
	watch_put("v1/unified/docker/" CID1 "/cpu.pressure",
		  "some avg10=0 avg60=0 avg300=0 total=500000\nfull avg10=0 avg60=0 avg300=0 "
		  "total=0\n");
	assert_int_equal(watch_round(), 0);
	assert_near(cg_value(M_CG_CPU_CORES, "/docker/" CID1), 0.75);
	assert_near(cg_value(M_CG_CPU_USAGE, "/docker/" CID1), 50);
	assert_near(cg_value(M_CG_CPU_USER, "/docker/" CID1), 40);
	assert_near(cg_value(M_CG_CPU_SYS, "/docker/" CID1), 10);
	assert_near(cg_value(M_CG_CPU_THROTTLED, "/docker/" CID1), 50);
	assert_near(cg_value(M_CG_CPU_THROTTLED_MS, "/docker/" CID1), 50);
	assert_near(cg_value(M_CG_MEM_OOM_KILLS, "/docker/" CID1), 1);
	assert_near(cg_value(M_CG_PSI_CPU_SOME, "/docker/" CID1), 50);
}

static void test_v1_old_cpuacct(void **s)
{
	(void)s;
	/* before usage_user existed: cpuacct.stat in clock ticks */
	v1_cgroup("cpu", "svc", "cgroup.procs", "1\n");
	v1_cgroup("cpuacct", "svc", "cpuacct.usage", "0\n");
	v1_cgroup("cpuacct", "svc", "cpuacct.stat", "user 0\nsystem 0\n");
	open_cgroups("v1", CGROUP_V1);
	assert_int_equal(watch_round(), 0);
	{
		long hz = sysconf(_SC_CLK_TCK);
		char text[64];

		snprintf(text, sizeof(text), "user %ld\nsystem %ld\n", hz / 2, hz / 4);
		v1_cgroup("cpuacct", "svc", "cpuacct.stat", text);
	}
	v1_cgroup("cpuacct", "svc", "cpuacct.usage", "750000000\n");
	assert_int_equal(watch_round(), 0);
	{
		double limit = cg_value(M_CG_CPU_LIMIT, "/svc");

		assert_near(cg_value(M_CG_CPU_USER, "/svc"), 50.0 / limit);
		assert_near(cg_value(M_CG_CPU_SYS, "/svc"), 25.0 / limit);
	}
}

static void test_hostile_contents(void **s)
{
	(void)s;
	v2_cgroup("h.slice", true);
	v2_set("h.slice", "cpu.stat", "usage_usec -5\nuser_usec x\nsystem_usec 1e9\n");
	v2_set("h.slice", "cpu.max", "0 0\n");
	v2_set("h.slice", "memory.max", "-1\n");
	v2_set("h.slice", "memory.current", "99999999999999999999999\n");
	v2_set("h.slice", "memory.events", "oom_kill\n");
	v2_set("h.slice", "cpuset.cpus.effective", "99999-1,,x\n");
	v2_set("h.slice", "cpu.pressure", "some total=\n");
	v2_cgroup("q.slice", true);
	v2_set("q.slice", "cpu.max", "1 100000\n"); /* a hundredth of a CPU at most */
	v2_set("q.slice", "cpu.stat", cpu_stat_v2(0, 0, 0, 0, 0, 0));
	open_cgroups("v2", CGROUP_V2);
	assert_int_equal(watch_round(), 0);
	assert_int_equal(watch_round(), 0);
	assert_true(isnan(cg_value(M_CG_CPU_USAGE, "/h.slice")));
	assert_true(isnan(cg_value(M_CG_MEM_USAGE_BYTES, "/h.slice")));
	assert_true(isnan(cg_value(M_CG_MEM_OOM_KILLS, "/h.slice")));
	/* nonsense limits fall back to the host, never divide by zero */
	assert_true(cg_value(M_CG_CPU_LIMIT, "/h.slice") >= 1);
	assert_near(cg_value(M_CG_CPU_LIMIT, "/q.slice"), 0.01);
	assert_near(cg_value(M_CG_CPU_USAGE, "/q.slice"), 0);
	/* a file turning into garbage after good values: no value, no crash */
	v2_set("q.slice", "cpu.stat", "\n\n\n");
	assert_int_equal(watch_round(), 0);
	assert_true(isnan(cg_value(M_CG_CPU_USAGE, "/q.slice")));
}

static void test_off_and_none(void **s)
{
	struct watcher_env env = {.cfg = &wfx.cfg, .procfs = wfx.procfs};
	char why[128] = "";
	void *st = NULL;

	(void)s;
	env.why = why;
	env.why_len = sizeof(why);
	/* no cgroups object or max_cgroups 0: off, with the reason */
	assert_int_equal(cgroupstat_watcher.open(&st, &env), WATCHER_OFF);
	assert_int_equal(cgroups_new_at(&cg, wfx.root, CGROUP_NONE), 0);
	env.cgroups = cg;
	wfx.cfg.watch.max_cgroups = 0;
	assert_int_equal(cgroupstat_watcher.open(&st, &env), WATCHER_OFF);
	assert_non_null(strstr(why, "max_cgroups"));
	wfx.cfg.watch.max_cgroups = 8;
	assert_int_equal(cgroupstat_watcher.open(&st, &env), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_v2_watch_set_and_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_come_and_go, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound_prefers_workloads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_and_hybrid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_old_cpuacct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_contents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_off_and_none, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
