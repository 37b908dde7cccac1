// SPDX-License-Identifier: GPL-2.0-only
/* The exporters' web configuration: what is accepted, and that everything
 * else is refused with its place in the file rather than ignored. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/webconfig.h"

#define HASH "$2y$10$7lITOAT7dgSGqlnOJYrMHOchC5Kvt/VpVr1c0KWRckfUEIcoGgOEy"

static int load(const char *text, struct webconfig *w, char *msg, size_t len)
{
	struct diag d = {0};
	int err = webconfig_load_string("web.yml", text, w, &d);

	snprintf(msg, len, "%s", d.n ? d.msgs[0] : "");
	diag_clear(&d);
	return err;
}

static void expect_error(const char *text, const char *want)
{
	struct webconfig *w = calloc(1, sizeof(*w));
	char msg[1024];

	if (load(text, w, msg, sizeof(msg)) == 0 || !strstr(msg, want)) {
		print_error("for:\n%s\nwanted \"%s\", got \"%s\"\n", text, want, msg);
		fail();
	}
	free(w);
}

static void test_accepted(void **s)
{
	struct webconfig *w = calloc(1, sizeof(*w));
	char msg[1024];

	(void)s;
	assert_int_equal(
		load("tls_server_config:\n"
		     "  cert_file: /etc/a.crt\n"
		     "  key_file: /etc/a.key\n"
		     "  client_auth_type: RequireAndVerifyClientCert\n"
		     "  client_ca_file: /etc/ca.crt\n"
		     "  min_version: TLS12\n"
		     "  max_version: TLS13\n"
		     "http_server_config:\n"
		     "  http2: false\n"
		     "basic_auth_users:\n"
		     "  prometheus: " HASH "\n"
		     "  other: '$2b$04$abcdefghijklmnopqrstuu5Zs6/1pUrZrZc0n9nXYR7ek0m0tzQPq'\n",
		     w, msg, sizeof(msg)),
		0);
	assert_true(w->tls);
	assert_string_equal(w->cert_file, "/etc/a.crt");
	assert_string_equal(w->key_file, "/etc/a.key");
	assert_int_equal(w->client_auth, WEB_CLIENT_REQUIRE_AND_VERIFY);
	assert_int_equal(w->min_version, WEB_TLS12);
	assert_int_equal(w->max_version, WEB_TLS13);
	assert_int_equal(w->nusers, 2);
	assert_string_equal(w->users[0].name, "prometheus");
	assert_string_equal(w->users[0].hash, HASH);
	/* auth only, TLS only, empty */
	assert_int_equal(load("basic_auth_users:\n  u: " HASH "\n", w, msg, sizeof(msg)), 0);
	assert_false(w->tls);
	assert_int_equal(w->nusers, 1);
	assert_int_equal(
		load("tls_server_config:\n  cert_file: /a\n  key_file: /b\n", w, msg, sizeof(msg)),
		0);
	assert_true(w->tls);
	assert_int_equal(w->nusers, 0);
	assert_int_equal(load("tls_server_config:\nbasic_auth_users:\n", w, msg, sizeof(msg)), 0);
	assert_false(w->tls);
	free(w);
}

static void test_refused(void **s)
{
	char text[8192];
	size_t off;

	(void)s;
	expect_error("tls_server_confg:\n  cert_file: /a\n", "web.yml:1:1: unknown key");
	expect_error("tls_server_config:\n  cert_file: /a\n  key_file: /b\n  cipher_suites: [x]\n",
		     "web.yml:4:3: tls_server_config.cipher_suites is not supported");
	expect_error("tls_server_config:\n  cert_file: /a\n  key_file: /b\n"
		     "  client_auth_type: RequireAnyClientCert\n",
		     "web.yml:4:21: tls_server_config.client_auth_type: 'RequireAnyClientCert' is "
		     "not supported");
	expect_error("tls_server_config:\n  cert_file: /a\n  key_file: /b\n"
		     "  client_auth_type: VerifyClientCertIfGiven\n",
		     "client_auth_type needs client_ca_file");
	expect_error("tls_server_config:\n  cert_file: /a\n",
		     "tls_server_config needs both cert_file and key_file");
	expect_error("tls_server_config:\n  cert_file: a.crt\n  key_file: /b\n",
		     "'a.crt' is not an absolute path");
	expect_error("tls_server_config:\n  cert_file: /a\n  key_file: /b\n  min_version: TLS11\n",
		     "TLS11 is not offered");
	expect_error("tls_server_config:\n  cert_file: /a\n  key_file: /b\n"
		     "  min_version: TLS13\n  max_version: TLS12\n",
		     "min_version is above max_version");
	expect_error("tls_server_config: [1]\n", "tls_server_config: expected a mapping");
	expect_error("http_server_config:\n  headers: {X-A: b}\n",
		     "http_server_config.headers is not supported");
	expect_error("basic_auth_users:\n  u: secret\n",
		     "web.yml:2:6: basic_auth_users.u: not a bcrypt hash");
	expect_error("basic_auth_users:\n  u: "
		     "'$2y$15$abcdefghijklmnopqrstuu5Zs6/1pUrZrZc0n9nXYR7ek0m0tzQPq'\n",
		     "bcrypt cost 15 is outside 4..14");
	expect_error("basic_auth_users:\n  u: "
		     "'$2y$10$abcdefghijklmnopqrstuu5Zs6/1pUrZrZc0n9nXYR7ek0m0tz!Pq'\n",
		     "outside its alphabet");
	expect_error("basic_auth_users:\n  'a:b': " HASH "\n", "without ':'");
	expect_error("basic_auth_users:\n  u: [1]\n", "basic_auth_users: expected a string");
	off = (size_t)snprintf(text, sizeof(text), "basic_auth_users:\n");
	for (int i = 0; i < WEBCONFIG_MAX_USERS + 1; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "  u%d: " HASH "\n", i);
	expect_error(text, "at most 32 users");
}

static void test_files(void **s)
{
	const char *dir = test_tmpdir(0);
	struct webconfig *w = calloc(1, sizeof(*w));
	struct diag d = {0};
	char text[1024];
	const char *cert = test_write_file(dir, "c.crt", "cert\n", 0644);
	const char *key = test_write_file(dir, "c.key", "key\n", 0600);
	char certp[512], keyp[512];
	const char *path;

	(void)s;
	snprintf(certp, sizeof(certp), "%s", cert);
	snprintf(keyp, sizeof(keyp), "%s", key);
	snprintf(text, sizeof(text), "tls_server_config:\n  cert_file: %s\n  key_file: %s\n", certp,
		 keyp);
	path = test_write_file(dir, "web.yml", text, 0600);
	assert_int_equal(webconfig_load(path, w, &d), 0);
	assert_int_equal(d.errors, 0);
	/* a key others can read is no secret */
	chmod(keyp, 0644);
	assert_int_not_equal(webconfig_load(path, w, &d), 0);
	assert_non_null(strstr(d.msgs[0], "accessible by group or others (mode 0644)"));
	diag_clear(&d);
	chmod(keyp, 0600);
	/* the file itself decides who reads the node: trusted like the configuration */
	chmod(path, 0666);
	assert_int_not_equal(webconfig_load(path, w, &d), 0);
	assert_non_null(strstr(d.msgs[0], "refusing web configuration file: writable by group or "
					  "others"));
	diag_clear(&d);
	chmod(path, 0600);
	unlink(certp);
	assert_int_not_equal(webconfig_load(path, w, &d), 0);
	assert_non_null(strstr(d.msgs[0], "tls_server_config.cert_file"));
	diag_clear(&d);
	test_rmtree(dir);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
