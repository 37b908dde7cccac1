// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: the /proc readers, over a crafted procfs tree. The first
 * byte picks the file the rest of the input becomes; the readers of that file
 * then run as the agent runs them (open, two samples, close): the watchers of
 * /proc/stat, loadavg, schedstat, pressure, meminfo, vmstat and diskstats;
 * the symbolizer's /proc/PID/maps, status and kallsyms; mountinfo; the top
 * process scan's /proc/PID/stat, status, cgroup and io. Every other file holds
 * a plausible default, put back after each input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/procscan.h"
#include "base/config.h"
#include "base/log.h"
#include "base/mounts.h"
#include "base/symbolize.h"
#include "base/tsdb.h"
#include "fuzzlib.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"

extern const struct watcher_ops cpustat_watcher, schedstat_watcher, psi_watcher, memstat_watcher,
	diskstats_watcher;

#define PID "4242"

struct pfile {
	const char *rel;
	const char *def;
	const struct watcher_ops *w;
	int reader; /* what else reads it */
};

enum { R_NONE, R_SYM, R_KSYM, R_MOUNTS, R_PROCSCAN };

static const struct pfile files[] = {
	{"stat", "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nctxt 5\nprocs_running 1\n",
	 &cpustat_watcher, R_NONE},
	{"loadavg", "0.10 0.20 0.30 1/100 4242\n", &cpustat_watcher, R_NONE},
	{"schedstat", "version 15\ntimestamp 1\ncpu0 0 0 0 0 0 0 100 200 3\n", &schedstat_watcher,
	 R_NONE},
	{"pressure/cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n", &psi_watcher, R_NONE},
	{"pressure/memory",
	 "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 "
	 "avg300=0.00 total=1\n",
	 &psi_watcher, R_NONE},
	{"pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n", &psi_watcher, R_NONE},
	{"meminfo", "MemTotal: 1000 kB\nMemFree: 500 kB\nMemAvailable: 600 kB\n", &memstat_watcher,
	 R_NONE},
	{"vmstat", "pgfault 1\npgmajfault 0\nallocstall_normal 0\n", &memstat_watcher, R_NONE},
	{"diskstats", "   8       0 sda 1 0 8 1 1 0 8 1 0 1 2 0 0 0 0\n", &diskstats_watcher,
	 R_NONE},
	{PID "/maps",
	 "55d0c3a00000-55d0c3a01000 r-xp 00001000 08:01 123 /usr/bin/app\n"
	 "7f0000000000-7f0000001000 rwxp 00000000 00:00 0 \n",
	 NULL, R_SYM},
	{PID "/status",
	 "Name:\tapp\nUid:\t1000\t1000\t1000\t1000\nNSpid:\t4242\t1\nVmRSS:\t100 kB\n", NULL,
	 R_PROCSCAN},
	{"kallsyms", "ffffffff81000000 T _stext\nffffffffc0000000 t mod_fn [mod]\n", NULL, R_KSYM},
	{"self/mountinfo", "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n", NULL,
	 R_MOUNTS},
	{PID "/stat", "4242 (app) S 1 4242 4242 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 1 100 25\n", NULL,
	 R_PROCSCAN},
	{PID "/cgroup", "0::/kubepods/pod1/abc\n", NULL, R_PROCSCAN},
	{PID "/io", "read_bytes: 1\nwrite_bytes: 2\n", NULL, R_PROCSCAN},
};

#define NFILES (sizeof(files) / sizeof(files[0]))

static const char *proc, *sys;
static struct agent_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char procbuf[128], sysbuf[128];

	log_set_level(LOG_LVL_ERROR);
	snprintf(procbuf, sizeof(procbuf), "%s/proc", fuzz_dir());
	snprintf(sysbuf, sizeof(sysbuf), "%s/sys", fuzz_dir());
	proc = procbuf;
	sys = sysbuf;
	for (size_t i = 0; i < NFILES; i++)
		fuzz_file(proc, files[i].rel, files[i].def, strlen(files[i].def));
	fuzz_file(proc, "modules", "", 0);
	fuzz_file(proc, PID "/task/" PID "/stat", files[13].def, strlen(files[13].def));
	fuzz_file(sys, "block/sda/queue/rotational", "0\n", 2);
	config_defaults(&cfg);
	return 0;
}

static void run_watcher(const struct watcher_ops *w)
{
	struct watcher_env env = {.cfg = &cfg, .procfs = proc, .sysfs = sys};
	struct tsdb *db = NULL;
	char why[256] = "";
	void *st = NULL;

	env.why = why;
	env.why_len = sizeof(why);
	if (tsdb_new(&db, metric_count(), 256, 2))
		abort();
	if (w->open(&st, &env) == 0) {
		for (int round = 0; round < 2; round++) {
			tsdb_begin_round(db, 1000 + (uint64_t)round * 1000);
			w->sample(st, db);
			tsdb_end_round(db);
		}
		w->close(st);
	}
	tsdb_free(&db);
}

static void run_symbolizer(bool kernel)
{
	struct symbolizer_opts o = {.cache_bytes = 8u << 20, .procfs = proc, .in_process = true};
	struct symbolizer *s = NULL;
	struct sym_frame f;

	if (symbolizer_new(&s, &o))
		abort();
	if (kernel) {
		symbolizer_kernel(s, 0xffffffff81000010, &f);
		symbolizer_kernel(s, 0xffffffffc0000010, &f);
	} else {
		symbolizer_track(s, 4242);
		symbolizer_user(s, 4242, 0x55d0c3a00010, &f);
		symbolizer_user(s, 4242, 0x7f0000000010, &f);
	}
	symbolizer_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct pfile *pf;

	if (!size)
		return 0;
	pf = &files[data[0] % NFILES];
	fuzz_file(proc, pf->rel, data + 1, size - 1);
	if (pf->w)
		run_watcher(pf->w);
	switch (pf->reader) {
	case R_SYM:
		run_symbolizer(false);
		break;
	case R_KSYM:
		run_symbolizer(true);
		break;
	case R_MOUNTS: {
		char p[512], buf[256];
		struct mounts *m = NULL;

		snprintf(p, sizeof(p), "%s/self/mountinfo", proc);
		if (mounts_new(&m, p) == 0) {
			mounts_full_path(m, (8u << 20) | 1, "/x", buf, sizeof(buf));
			device_name(m, (8u << 20) | 1, buf, sizeof(buf));
			mounts_free(&m);
		}
		break;
	}
	case R_PROCSCAN: {
		struct top_process top;

		procscan_top(proc, NULL, PROCSCAN_RSS, 0, &top);
		procscan_top(proc, "/kubepods/pod1", PROCSCAN_CPU, 0, &top);
		procscan_top(proc, NULL, PROCSCAN_DSTATE, 0, &top);
		procscan_top(proc, NULL, PROCSCAN_IO, 0, &top);
		run_symbolizer(false); /* status: the perf map's pid and owner */
		break;
	}
	}
	fuzz_file(proc, pf->rel, pf->def, strlen(pf->def));
	return 0;
}
