// SPDX-License-Identifier: GPL-2.0-only
#include "bpftest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/log.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "probes/bpfutil.h"
#include "testutil.h"

void capture_fixture_init(struct capture_fixture *f, const char *test, const char *kind)
{
	struct symbolizer_opts so = {.cache_bytes = 64 << 20};

	memset(f, 0, sizeof(*f));
	require_root_or_exit(test);
	log_route_libbpf();
	config_defaults(&f->cfg);
	assert_int_equal(symbolizer_new(&f->sym, &so), 0);
	assert_int_equal(cgroups_new(&f->cgroups, "/sys/fs/cgroup"), 0);
	f->ops = capture_kind_lookup(kind);
	assert_non_null(f->ops);
}

void capture_fixture_prepare(struct capture_fixture *f)
{
	struct capture_env env = {.cfg = &f->cfg, .sym = f->sym, .cgroups = f->cgroups};

	if (f->state)
		f->ops->release(f->state);
	f->state = NULL;
	assert_int_equal(f->ops->prepare(&f->state, &env), 0);
}

void capture_fixture_prepare_tp(struct capture_fixture *f, bool raw_tp)
{
	bpf_force_raw_tp = raw_tp;
	capture_fixture_prepare(f);
	bpf_force_raw_tp = false;
}

void capture_fixture_fini(struct capture_fixture *f)
{
	if (f->ops && f->state)
		f->ops->release(f->state);
	f->state = NULL;
	symbolizer_free(&f->sym);
	cgroups_free(&f->cgroups);
}

void test_cgroup_make(struct test_cgroup *c, struct cgroups *cg, const char *prefix)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->rel, sizeof(c->rel), "/%s-%d", prefix, (int)getpid());
	snprintf(c->dir, sizeof(c->dir), "%s%s", cgroups_id_root(cg), c->rel);
	assert_int_equal(mkdir_p(c->dir, 0755), 0);
	assert_int_equal(cgroups_id_of(cg, c->rel, &c->id), 0);
}

void test_cgroup_enter(const char *dir, pid_t pid)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%d\n", (int)pid);
	assert_int_equal(fclose(f), 0);
}

void test_cgroup_remove(struct test_cgroup *c, struct cgroups *cg)
{
	if (!c->dir[0])
		return;
	test_cgroup_enter(cgroups_id_root(cg), getpid());
	/* exited children leave their cgroup a little after they are reaped */
	for (int i = 0; i < 50 && rmdir(c->dir) && errno == EBUSY; i++)
		usleep(100 * 1000);
	assert_int_equal(access(c->dir, F_OK), -1);
	c->dir[0] = '\0';
}
