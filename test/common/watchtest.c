// SPDX-License-Identifier: GPL-2.0-only
#include "watchtest.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/watchutil.h"
#include "testutil.h"

struct watch_fixture wfx;

static uint64_t fake_clock(void)
{
	return wfx.now_ns;
}

void watch_fixture_init(unsigned max_series, uint64_t start_s)
{
	memset(&wfx, 0, sizeof(wfx));
	wfx.root = test_tmpdir(3);
	snprintf(wfx.procfs, sizeof(wfx.procfs), "%s/proc", wfx.root);
	snprintf(wfx.sysfs, sizeof(wfx.sysfs), "%s/sys", wfx.root);
	mkdir(wfx.procfs, 0700);
	mkdir(wfx.sysfs, 0700);
	config_defaults(&wfx.cfg);
	assert_int_equal(tsdb_new(&wfx.db, metric_count(), max_series, 16), 0);
	wfx.now_ns = start_s * 1000000000ull;
	watch_clock_override(fake_clock);
}

void watch_fixture_fini(void)
{
	if (wfx.state && wfx.ops)
		wfx.ops->close(wfx.state);
	wfx.state = NULL;
	tsdb_free(&wfx.db);
	test_rmtree(wfx.root);
	watch_clock_override(NULL);
}

int watch_setup(void **s)
{
	watch_fixture_init(256, 1);
	return 0;
}

int watch_teardown(void **s)
{
	watch_fixture_fini();
	return 0;
}

void watch_put(const char *rel, const char *text)
{
	char path[1024], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", wfx.root, rel);
	for (slash = strchr(path + strlen(wfx.root) + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	f = fopen(path, "r+");
	if (!f)
		f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 0), 0);
	fputs(text, f);
	fclose(f);
}

void watch_rm(const char *rel)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", wfx.root, rel);
	remove_tree(path);
}

int watch_open(const struct watcher_ops *ops, struct cgroups *cg)
{
	struct watcher_env env = {.cfg = &wfx.cfg,
				  .procfs = wfx.procfs,
				  .sysfs = wfx.sysfs,
				  .cgroups = cg,
				  .why = wfx.why,
				  .why_len = sizeof(wfx.why)};
	int err = ops->open(&wfx.state, &env);

	wfx.ops = err ? NULL : ops;
	if (err)
		wfx.state = NULL;
	return err;
}

int watch_round(void)
{
	int err;

	wfx.now_ns += 1000000000ull;
	tsdb_begin_round(wfx.db, tsdb_rounds(wfx.db) + 1);
	err = wfx.ops->sample(wfx.state, wfx.db);
	tsdb_end_round(wfx.db);
	return err;
}

double watch_value(unsigned metric, const char *k, const char *v)
{
	struct labels l = {.n = k ? 1 : 0, .k = {k}, .v = {v}};
	struct tsdb_series *s = tsdb_find(wfx.db, metric, k ? &l : NULL);
	double out;

	if (!s || !tsdb_value(wfx.db, s, 0, &out))
		return NAN;
	return out;
}

void assert_near(double got, double want)
{
	if (!(fabs(got - want) <= 1e-6 * fmax(1.0, fabs(want)))) {
		print_error("got %.9g, want %.9g\n", got, want);
		fail();
	}
}
