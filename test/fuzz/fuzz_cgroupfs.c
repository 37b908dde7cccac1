// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: the cgroupfs readers over a crafted v2 hierarchy. The
 * first byte picks what the rest of the input becomes: one of a container
 * cgroup's files (cpu.stat, memory.*, *.pressure, io.stat, cpu.max, cpuset),
 * or the name of a cgroup directory of its own (tenants name their cgroups),
 * or a path whose container and pod identity is parsed. Then the hierarchy is
 * walked and the cgroup watcher samples it twice, as the agent does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "fuzzlib.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "probes/watchutil.h"

extern const struct watcher_ops cgroupstat_watcher;

#define CG                                                                                         \
	"v2/system.slice/"                                                                         \
	"docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope"

static const struct {
	const char *file, *def;
} files[] = {
	{"cgroup.events", "populated 1\nfrozen 0\n"},
	{"cpu.stat", "usage_usec 10\nuser_usec 5\nsystem_usec 5\nnr_periods 1\nnr_throttled 0\n"
		     "throttled_usec 0\n"},
	{"cpu.max", "50000 100000\n"},
	{"memory.current", "1048576\n"},
	{"memory.max", "max\n"},
	{"memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"},
	{"cpu.pressure", "some avg10=0 avg60=0 avg300=0 total=1\nfull avg10=0 avg60=0 avg300=0 "
			 "total=0\n"},
	{"memory.pressure", "some avg10=0 avg60=0 avg300=0 total=1\nfull avg10=0 avg60=0 "
			    "avg300=0 total=0\n"},
	{"io.pressure", "some avg10=0 avg60=0 avg300=0 total=1\n"},
	{"io.stat", "8:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n"},
	{"cpuset.cpus.effective", "0-1,4\n"},
	{"memory.stat", "anon 1\nfile 2\n"},
};

#define NFILES (sizeof(files) / sizeof(files[0]))

static const char *root;
static struct agent_config cfg;
static uint64_t fake_ns = 1000000000ull;

static uint64_t fake_clock(void)
{
	return fake_ns;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	root = fuzz_dir();
	log_set_level(LOG_LVL_ERROR);
	for (size_t i = 0; i < NFILES; i++) {
		char rel[512];

		snprintf(rel, sizeof(rel), "%s/%s", CG, files[i].file);
		fuzz_file(root, rel, files[i].def, strlen(files[i].def));
	}
	fuzz_file(root, "v2/system.slice/cgroup.events", "populated 1\n", 12);
	fuzz_file(root, "proc/meminfo", "MemTotal: 8388608 kB\n", 21);
	config_defaults(&cfg);
	/* the files, not the BPF cgroup pass: that one reads the kernel's own
	 * cgroups (not this tree) and loads a program per input (20 inputs/s) */
	cfg.watch.cgroup_iterator = false;
	watch_clock_override(fake_clock);
	return 0;
}

static void walk_and_sample(void)
{
	char v2[256], procfs[256];
	struct watcher_env env = {.cfg = &cfg, .procfs = procfs, .sysfs = "/nonexistent"};
	struct cgroups *cg = NULL;
	struct tsdb *db = NULL;
	void *st = NULL;
	char why[256];

	snprintf(v2, sizeof(v2), "%s/v2", root);
	snprintf(procfs, sizeof(procfs), "%s/proc", root);
	env.why = why;
	env.why_len = sizeof(why);
	if (cgroups_new_at(&cg, v2, CGROUP_V2) || tsdb_new(&db, metric_count(), 256, 2))
		abort();
	env.cgroups = cg;
	if (cgroupstat_watcher.open(&st, &env) == 0) {
		for (int round = 0; round < 2; round++) {
			fake_ns += 1000000000ull;
			tsdb_begin_round(db, (uint64_t)round + 1);
			cgroupstat_watcher.sample(st, db);
			tsdb_end_round(db);
		}
		cgroupstat_watcher.close(st);
	}
	tsdb_free(&db);
	cgroups_free(&cg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned pick;

	if (!size)
		return 0;
	pick = data[0] % (NFILES + 2);
	data++;
	size--;
	if (pick < NFILES) {
		char rel[512];

		snprintf(rel, sizeof(rel), "%s/%s", CG, files[pick].file);
		fuzz_file(root, rel, data, size);
		walk_and_sample();
		fuzz_file(root, rel, files[pick].def, strlen(files[pick].def));
	} else if (pick == NFILES) {
		/* a cgroup named by the tenant: any byte but '/' and NUL */
		char name[256], dir[600], rel[600];
		size_t n = size < 200 ? size : 200;

		for (size_t i = 0; i < n; i++)
			name[i] = data[i] == '/' || !data[i] ? '_' : (char)data[i];
		name[n] = '\0';
		if (!n || !strcmp(name, ".") || !strcmp(name, ".."))
			return 0;
		snprintf(rel, sizeof(rel), "v2/system.slice/%s/cgroup.events", name);
		fuzz_file(root, rel, "populated 1\n", 12);
		snprintf(rel, sizeof(rel), "v2/system.slice/%s/memory.current", name);
		fuzz_file(root, rel, "4096\n", 5);
		walk_and_sample();
		snprintf(dir, sizeof(dir), "%s/v2/system.slice/%s", root, name);
		remove_tree(dir);
	} else {
		char path[512], cid[65], pod[37];
		size_t n = size < sizeof(path) - 1 ? size : sizeof(path) - 1;

		memcpy(path, data, n);
		path[n] = '\0';
		cgroup_path_identity(path, cid, sizeof(cid), pod, sizeof(pod));
		cgroup_path_qos(path);
	}
	return 0;
}
