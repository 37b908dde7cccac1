// SPDX-License-Identifier: GPL-2.0-only
/* DWARF user stacks on the real kernel: a program built with -O2
 * -fomit-frame-pointer (unwind_target, a known 12-link chain under main) is
 * profiled, and its stacks must reach main through every link of the chain;
 * with unwinding off the frame-pointer walk must not (so the binary really
 * has no frame pointers and the first result means something). */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/config.h"
#include "base/log.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "probes/capture.h"
#include "probes/ustack.h"
#include "unwind_chain.h"

static struct agent_config cfg;
static struct symbolizer *sym;
static struct cgroups *cgroups;
static struct ustack_shared *ustack;

static int setup(void **s)
{
	struct symbolizer_opts so = {.cache_bytes = 64 << 20};

	(void)s;
	require_root_or_exit("bpf/unwind");
	log_route_libbpf();
	config_defaults(&cfg);
	cfg.capture.max_stacks = 4096;
	assert_string_equal(cfg.unwind.mode, "auto");
	/* what is checked is the walk, not the budget: under the sanitizers a
	 * stack costs two to three times what it does in a release build, more
	 * than the default 10% covers at this sampling rate */
	cfg.unwind.cpu_pct = 50;
	assert_int_equal(symbolizer_new(&sym, &so), 0);
	assert_int_equal(cgroups_new(&cgroups, "/sys/fs/cgroup"), 0);
	assert_int_equal(ustack_shared_new(&ustack, &cfg, sym), 0);
	assert_non_null(ustack);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	ustack_shared_free(&ustack);
	symbolizer_free(&sym);
	cgroups_free(&cgroups);
	return 0;
}

/* Starts unwind_target MODE SECONDS and waits until it is in its leaf. */
static pid_t spawn(const char *mode, const char *seconds)
{
	const char *dir = getenv("AUTOTRACE_BUILD_DIR");
	char path[512], line[64] = "";
	int p[2];
	pid_t pid;
	FILE *f;

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/test/unwind_target", dir);
	assert_int_equal(access(path, X_OK), 0);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl(path, "unwind_target", mode, seconds, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "ready\n");
	fclose(f);
	return pid;
}

static void reap(pid_t pid)
{
	int status;

	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

/* Runs kind on pid for ms with env.ustack = us; returns the result. */
static void capture(const char *kind, struct ustack_shared *us, pid_t pid, unsigned ms,
		    struct capture_result *res)
{
	const struct capture_ops *ops = capture_kind_lookup(kind);
	struct capture_env env = {.cfg = &cfg, .sym = sym, .cgroups = cgroups, .ustack = us};
	struct capture_target t = {.kind = TARGET_PID, .pid = pid};
	struct capture_params p;
	void *state = NULL;
	uint64_t end;

	assert_non_null(ops);
	assert_int_equal(ops->prepare(&state, &env), 0);
	capture_params_defaults(ops, &p);
	if (strcmp(kind, "profile") == 0)
		p.v[capture_param_index(ops, "frequency")] = 499;
	assert_int_equal(ops->start(state, &t, &p), 0);
	/* what the agent's loop does while the window runs */
	end = now_mono_ns() + ms * 1000000ull;
	while (now_mono_ns() < end) {
		usleep(20000);
		if (ops->ring_ready)
			ops->ring_ready(state);
	}
	ops->stop(state);
	if (ops->ring_ready)
		ops->ring_ready(state);
	memset(res, 0, sizeof(*res));
	assert_int_equal(ops->collect(state, res), 0);
	ops->release(state);
}

/* Share of the folded value (samples or µs) of unwind_target whose stack
 * holds main and the whole chain down to leaf, in order. */
static double chain_share(const char *folded, const char *leaf)
{
	char want[512];
	size_t o;
	double all = 0, chain = 0;

	o = (size_t)snprintf(want, sizeof(want), ";main");
	for (int i = 1; i <= UNWIND_CHAIN_DEPTH; i++)
		o += (size_t)snprintf(want + o, sizeof(want) - o, ";unwind_chain_%02d", i);
	snprintf(want + o, sizeof(want) - o, ";%s", leaf);
	for (const char *line = folded; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char buf[8192];
		const char *sp;

		snprintf(buf, sizeof(buf), "%.*s", (int)MIN(len, sizeof(buf) - 1), line);
		sp = strrchr(buf, ' ');
		if (sp && strncmp(buf, "unwind_target;", 14) == 0) {
			double v = atof(sp + 1);

			all += v;
			if (strstr(buf, want))
				chain += v;
		}
		line = end ? end + 1 : NULL;
	}
	print_message("unwind_target: %.0f in all, %.0f through the chain\n", all, chain);
	return all > 0 ? chain / all : 0;
}

static json_int_t unwind_field(const struct capture_result *res, const char *name)
{
	return json_integer_value(json_object_get(json_object_get(res->data, "unwind"), name));
}

static void print_unwind(const char *what, json_int_t n, const struct capture_result *res)
{
	char *u = json_dumps(json_object_get(res->data, "unwind"), JSON_COMPACT);

	print_message("%s %lld, unwind %s\n", what, (long long)n, u ? u : "?");
	free(u);
}

/* The share of the value the chain must hold: 0.9. Under emulation
 * (AUTOTRACE_TEST_SLOWDOWN: the kernel matrix's TCG guests) the unwinder runs
 * ten times slower, outruns its CPU budget and lets the ring buffer fill, so
 * that many samples are counted and walked by frame pointer instead: there 0.9
 * of the share DWARF unwound, which must be 50 samples at least. */
static double want_share(const struct capture_result *res, json_int_t n)
{
	json_int_t complete = unwind_field(res, "complete");

	if (!getenv("AUTOTRACE_TEST_SLOWDOWN"))
		return 0.9;
	assert_true(complete >= 50);
	return 0.9 * (double)MIN(complete, n) / (double)n;
}

static void test_profile_reaches_main_through_the_chain(void **s)
{
	struct capture_result res;
	pid_t pid = spawn("cpu", "10");
	json_int_t samples;

	(void)s;
	capture("profile", ustack, pid, 2000, &res);
	reap(pid);
	samples = json_integer_value(json_object_get(res.data, "samples"));
	print_unwind("samples", samples, &res);
	assert_true(samples > 300);
	assert_true(chain_share(res.artifacts[0].data, "burn") >= want_share(&res, samples));
	/* auto: decided DWARF for this process after comparing */
	assert_int_equal(unwind_field(&res, "processes_dwarf"), 1);
	assert_int_equal(unwind_field(&res, "processes_fp"), 0);
	assert_true(json_integer_value(json_object_get(res.data, "unwind_failed")) * 20 < samples);
	assert_int_equal(res.lost_events, 0);
	capture_result_clear(&res);
}

static void test_profile_without_unwinding_does_not(void **s)
{
	struct capture_result res;
	pid_t pid = spawn("cpu", "10");

	(void)s;
	capture("profile", NULL, pid, 1000, &res);
	reap(pid);
	assert_true(json_integer_value(json_object_get(res.data, "samples")) > 100);
	assert_true(chain_share(res.artifacts[0].data, "burn") < 0.5);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(res.data, "unwind"), "mode")),
		"off");
	capture_result_clear(&res);
}

static void test_offcpu_reaches_main_through_the_chain(void **s)
{
	struct capture_result res;
	pid_t pid = spawn("sleep", "10");
	json_int_t blocks;

	(void)s;
	capture("offcpu", ustack, pid, 2000, &res);
	reap(pid);
	blocks = json_integer_value(json_object_get(res.data, "blocks"));
	print_unwind("blocks", blocks, &res);
	assert_true(blocks > 100);
	assert_true(chain_share(res.artifacts[0].data, "block") >= want_share(&res, blocks));
	assert_int_equal(unwind_field(&res, "processes_dwarf"), 1);
	assert_int_equal(res.lost_events, 0);
	capture_result_clear(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profile_reaches_main_through_the_chain),
		cmocka_unit_test(test_profile_without_unwinding_does_not),
		cmocka_unit_test(test_offcpu_reaches_main_through_the_chain),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
