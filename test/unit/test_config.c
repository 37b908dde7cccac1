// SPDX-License-Identifier: GPL-2.0-only
/* The agent config table: defaults, the shipped file, and every error path. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/config.h"
#include "base/util.h"

/* Loads text; returns the error code and leaves the first message in msg. */
static int load(const char *text, struct agent_config *cfg, char *msg, size_t len)
{
	struct diag diag = {0};
	int err = config_load_string("t.yaml", text, cfg, &diag);

	snprintf(msg, len, "%s", diag.n ? diag.msgs[0] : "");
	diag_clear(&diag);
	return err;
}

static void expect_error(const char *text, const char *want)
{
	struct agent_config cfg, before;
	char msg[1024];

	config_defaults(&cfg);
	strcpy(cfg.source, "marker");
	before = cfg;
	assert_int_not_equal(load(text, &cfg, msg, sizeof(msg)), 0);
	if (!strstr(msg, want)) {
		print_error("config:\n%s\nwanted '%s' in '%s'\n", text, want, msg);
		fail();
	}
	/* an error changes nothing */
	assert_memory_equal(&cfg, &before, sizeof(cfg));
}

static void test_defaults(void **state)
{
	struct agent_config cfg;

	config_defaults(&cfg);
	assert_int_equal(cfg.agent.interval_ms, 1000);
	assert_int_equal(cfg.agent.history_ms, 300000);
	assert_string_equal(cfg.agent.rules_dir, "/etc/autotrace/rules.d");
	assert_string_equal(cfg.local.dir, "/var/lib/autotrace/incidents");
	assert_int_equal(cfg.local.max_size, 1024ull * 1024 * 1024);
	assert_int_equal(cfg.local.max_age_ms, 7 * 86400000ull);
	assert_false(cfg.es.enabled);
	assert_int_equal(cfg.es.urls.n, 1);
	assert_string_equal(cfg.es.urls.v[0], "https://localhost:9200");
	assert_string_equal(cfg.source, "(built-in defaults)");
}

static void test_parse_values(void **state)
{
	struct agent_config cfg;
	char msg[1024];

	assert_int_equal(
		load("agent:\n  interval: 500ms\n  history: 10m\n  dry_run: yes\n"
		     "storage:\n  local:\n    max_size: 512MiB\n    max_age: 2d\n"
		     "  elasticsearch:\n    urls: [\"http://a:9200\", \"http://b:9200\"]\n",
		     &cfg, msg, sizeof(msg)),
		0);
	assert_int_equal(cfg.agent.interval_ms, 500);
	assert_int_equal(cfg.agent.history_ms, 600000);
	assert_true(cfg.agent.dry_run);
	assert_int_equal(cfg.local.max_size, 512ull * 1024 * 1024);
	assert_int_equal(cfg.local.max_age_ms, 2 * 86400000ull);
	assert_int_equal(cfg.es.urls.n, 2);
	assert_string_equal(cfg.es.urls.v[1], "http://b:9200");
	/* keys not given keep their defaults */
	assert_string_equal(cfg.local.dir, "/var/lib/autotrace/incidents");
	assert_string_equal(cfg.source, "t.yaml");
	/* the metrics endpoint is off unless asked for; every address form parses */
	assert_string_equal(cfg.metrics.listen, "");
	assert_int_equal(cfg.metrics.max_clients, 4);
	assert_int_equal(cfg.metrics.max_response_size, 32ull << 20);
	assert_int_equal(cfg.metrics.timeout_ms, 10000);
	assert_false(cfg.metrics.allow_insecure);
	for (const char *const *l =
		     (const char *const[]){"127.0.0.1:9464", "\"[::1]:9464\"", "\":9464\"",
					   "localhost:0", "/run/x/metrics.sock", NULL};
	     *l; l++) {
		char text[128];

		snprintf(text, sizeof(text), "metrics:\n  listen: %s\n", *l);
		assert_int_equal(load(text, &cfg, msg, sizeof(msg)), 0);
	}
}

static void test_empty_document_is_defaults(void **state)
{
	struct agent_config cfg, def;
	char msg[256];

	assert_int_equal(load("# nothing here\n", &cfg, msg, sizeof(msg)), 0);
	config_defaults(&def);
	strcpy(def.source, "t.yaml");
	assert_memory_equal(&cfg, &def, sizeof(cfg));
}

static void test_shipped_config_matches_defaults(void **state)
{
	char path[4096];
	struct agent_config cfg, def;
	struct diag diag = {0};
	char *text = NULL;

	snprintf(path, sizeof(path), "%s/config/autotrace.yaml", getenv("AUTOTRACE_SOURCE_DIR"));
	assert_int_equal(read_file(path, 1 << 20, &text, NULL), 0);
	if (config_load_string("autotrace.yaml", text, &cfg, &diag)) {
		print_error("%s\n", diag.n ? diag.msgs[0] : "?");
		fail();
	}
	config_defaults(&def);
	strcpy(def.source, "autotrace.yaml");
	/* the shipped file documents the built-in defaults; it must not drift */
	assert_memory_equal(&cfg, &def, sizeof(cfg));
	free(text);
	diag_clear(&diag);
}

struct doc_check {
	const char *doc;
	int missing;
};

static void key_documented(const char *dotted, void *ctx)
{
	struct doc_check *c = ctx;
	char needle[160];

	snprintf(needle, sizeof(needle), "`%s`", dotted);
	if (!strstr(c->doc, needle)) {
		print_error("docs/configuration.md does not document %s\n", dotted);
		c->missing++;
	}
}

static void test_every_key_documented(void **state)
{
	char path[4096];
	struct doc_check c = {0};
	char *text = NULL;

	snprintf(path, sizeof(path), "%s/docs/configuration.md", getenv("AUTOTRACE_SOURCE_DIR"));
	assert_int_equal(read_file(path, 1 << 20, &text, NULL), 0);
	c.doc = text;
	config_foreach_key(key_documented, &c);
	assert_int_equal(c.missing, 0);
	free(text);
}

static void test_unknown_keys(void **state)
{
	expect_error("agent:\n  intervall: 1s\n", "t.yaml:2:3: unknown key 'agent.intervall'");
	expect_error("bogus: 1\n", "t.yaml:1:1: unknown key 'bogus'");
	expect_error("storage:\n  remote:\n    dir: /x\n",
		     "t.yaml:2:3: unknown key 'storage.remote'");
	expect_error("storage:\n  local:\n    dirr: /x\n",
		     "t.yaml:3:5: unknown key 'storage.local.dirr'");
}

static void test_wrong_types(void **state)
{
	expect_error("agent: 5\n", "t.yaml:1:8: agent: expected a mapping, got a scalar");
	expect_error("agent:\n  interval: [1s]\n",
		     "t.yaml:2:13: agent.interval: expected a duration, got a list");
	expect_error("agent:\n  interval:\n    a: 1\n",
		     "agent.interval: expected a duration, got a mapping");
	expect_error("storage:\n  elasticsearch:\n    urls: http://x\n",
		     "t.yaml:3:11: storage.elasticsearch.urls: expected a list, got a scalar");
	expect_error("storage:\n  elasticsearch:\n    urls: [[a]]\n",
		     "storage.elasticsearch.urls: entries must be non-empty strings");
	expect_error("storage:\n  elasticsearch:\n    urls: [\"\"]\n",
		     "storage.elasticsearch.urls: entries must be non-empty strings");
}

static void test_bad_values(void **state)
{
	expect_error("agent:\n  interval: 1 s\n",
		     "t.yaml:2:13: agent.interval: '1 s' is not a duration");
	expect_error("agent:\n  interval: -1s\n", "'-1s' is not a duration");
	expect_error("agent:\n  interval: 1y\n", "'1y' is not a duration");
	expect_error("agent:\n  interval: 10ms\n",
		     "t.yaml:2:13: agent.interval: '10ms' is out of range [100ms, 1m]");
	expect_error("agent:\n  history: 2h\n", "agent.history: '2h' is out of range [10s, 1h]");
	expect_error("storage:\n  local:\n    max_size: lots\n", "'lots' is not a size");
	expect_error("storage:\n  local:\n    max_size: 1KiB\n",
		     "'1KiB' is out of range [1MiB, 1TiB]");
	expect_error("capture:\n  max_concurrent: 0\n", "'0' is out of range [1, 16]");
	expect_error("capture:\n  max_concurrent: 2.5\n", "'2.5' is not a non-negative integer");
	expect_error("capture:\n  max_concurrent: 99999999999999999999999\n",
		     "is not a non-negative integer");
	expect_error("agent:\n  dry_run: maybe\n", "agent.dry_run: 'maybe' is not a boolean");
	expect_error("agent:\n  rules_dir: relative/dir\n",
		     "'relative/dir' is not an absolute path");
	expect_error("agent:\n  log_level: loud\n", "'loud' is not one of the allowed values");
	expect_error(
		"metrics:\n  listen: node1.example.com:9464\n",
		"t.yaml:2:11: metrics.listen: 'node1.example.com:9464': the host must be an IP "
		"address or localhost");
	expect_error("metrics:\n  listen: 127.0.0.1:99999\n", "port '99999' is not in 0..65535");
	expect_error("metrics:\n  listen: 127.0.0.1\n", "expected HOST:PORT, [IPv6]:PORT or an "
							"absolute unix socket path");
	expect_error("metrics:\n  listen: \"[::1:9464\"\n", "expected [IPv6]:PORT");
	expect_error("metrics:\n  max_response_size: 1KiB\n", "out of range [64KiB, 1GiB]");
	{
		char text[1024] = "agent:\n  hostname: ";
		size_t n = strlen(text);

		memset(text + n, 'h', 300);
		text[n + 300] = '\n';
		text[n + 301] = '\0';
		expect_error(text, "agent.hostname: value longer than 255 characters");
	}
	expect_error("storage:\n  elasticsearch:\n    urls: [a,b,c,d,e,f,g,h,i]\n",
		     "storage.elasticsearch.urls: needs 1 to 8 entries, got 9");
}

static void test_yaml_errors(void **state)
{
	expect_error("agent:\n  interval: [1s\n", "t.yaml:3:1: YAML syntax error");
	expect_error("agent:\n  interval: 1s\n  interval: 2s\n",
		     "t.yaml:3:3: duplicate key 'interval'");
	expect_error("a: &x 1\nagent:\n  interval: *x\n",
		     "t.yaml:3:13: YAML aliases (*name) are not supported");
	expect_error("agent: {}\n---\nagent: {}\n", "only one YAML document per file is supported");
	expect_error("- 1\n- 2\n", "t.yaml:1:1: the configuration must be a mapping");
	expect_error("? [a, b]\n: 1\n", "mapping keys must be plain scalars");
}

static void test_refuses_untrusted_files(void **state)
{
	const char *dir = test_tmpdir(0);
	const char *ok = test_write_file(dir, "ok.yaml", "agent:\n  interval: 2s\n", 0600);
	const char *gw = test_write_file(dir, "gw.yaml", "agent:\n  interval: 2s\n", 0620);
	const char *ww = test_write_file(dir, "ww.yaml", "agent:\n  interval: 2s\n", 0606);
	struct agent_config cfg;
	struct diag diag = {0};

	config_defaults(&cfg);
	assert_int_equal(config_load(ok, &cfg, &diag), 0);
	assert_int_equal(cfg.agent.interval_ms, 2000);

	config_defaults(&cfg);
	assert_int_not_equal(config_load(gw, &cfg, &diag), 0);
	assert_non_null(
		strstr(diag.msgs[0], "refusing configuration file: writable by group or others"));
	assert_int_not_equal(config_load(ww, &cfg, &diag), 0);
	assert_int_equal(cfg.agent.interval_ms, 1000);
	if (geteuid() == 0) {
		/* as root, only root-owned files are trusted */
		assert_int_equal(chown(ok, 65534, 65534), 0);
		assert_int_not_equal(config_load(ok, &cfg, &diag), 0);
		assert_non_null(strstr(diag.msgs[diag.n - 1], "owned by uid 65534, not root"));
	}
	assert_int_not_equal(config_load("/nonexistent/autotrace.yaml", &cfg, &diag), 0);
	diag_clear(&diag);
	test_rmtree(dir);
}

static void test_reference_printing(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	config_print_reference(f);
	config_print_reference_markdown(f);
	fclose(f);
	assert_non_null(strstr(buf, "interval"));
	assert_non_null(strstr(buf, "| `storage.local.max_size` | size | `1GiB` | 1MiB..1TiB |"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_parse_values),
		cmocka_unit_test(test_empty_document_is_defaults),
		cmocka_unit_test(test_shipped_config_matches_defaults),
		cmocka_unit_test(test_every_key_documented),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_yaml_errors),
		cmocka_unit_test(test_refuses_untrusted_files),
		cmocka_unit_test(test_reference_printing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
