// SPDX-License-Identifier: GPL-2.0-only
/* Credentials of the Elasticsearch client: secret files are refused unless
 * private, single-line and small; API keys become the header Elasticsearch
 * expects; TLS files are checked before the first connection. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "storage/esauth.h"

static void test_base64(void **state)
{
	/* RFC 4648 section 10 */
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

	(void)state;
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		char *b = base64_encode(in[i]);

		assert_non_null(b);
		assert_string_equal(b, out[i]);
		free(b);
	}
}

static void test_secret_files(void **state)
{
	const char *dir = test_tmpdir(0);
	char big[5000], *s = NULL;

	(void)state;
	assert_int_equal(
		secret_read("password_file", test_write_file(dir, "ok", "hunter2 \n", 0600), &s),
		0);
	assert_string_equal(s, "hunter2");
	secret_free(&s);
	assert_null(s);
	/* readable by others, or by the group */
	assert_int_equal(
		secret_read("password_file", test_write_file(dir, "world", "x\n", 0604), &s),
		-EPERM);
	assert_int_equal(
		secret_read("password_file", test_write_file(dir, "group", "x\n", 0640), &s),
		-EPERM);
	assert_null(s);
	/* two lines, or nothing */
	assert_int_equal(
		secret_read("password_file", test_write_file(dir, "two", "a\nb\n", 0600), &s),
		-EINVAL);
	assert_int_equal(
		secret_read("password_file", test_write_file(dir, "empty", "\n", 0600), &s),
		-EINVAL);
	/* more than 4 KiB */
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(secret_read("api_key_file", test_write_file(dir, "big", big, 0600), &s),
			 -EFBIG);
	/* not a file */
	assert_int_equal(secret_read("api_key_file", dir, &s), -EINVAL);
	assert_int_equal(secret_read("api_key_file", "/nonexistent/key", &s), -ENOENT);
	test_rmtree(dir);
}

static void test_auth_setup(void **state)
{
	const char *dir = test_tmpdir(0);
	struct agent_config cfg;
	struct esauth a = {0};

	(void)state;
	config_defaults(&cfg);
	/* nothing configured: no credentials */
	assert_int_equal(esauth_setup(&a, &cfg), 0);
	assert_null(a.password);
	assert_null(a.header);

	/* "id:api_key" as the create API key call lists it is encoded */
	snprintf(
		cfg.es.api_key_file, sizeof(cfg.es.api_key_file), "%s",
		test_write_file(dir, "key", "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw\n", 0600));
	assert_int_equal(esauth_setup(&a, &cfg), 0);
	assert_string_equal(a.header,
			    "Authorization: ApiKey "
			    "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==");
	esauth_clear(&a);
	assert_null(a.header);
	/* an already encoded key is used as it is */
	test_write_file(dir, "key",
			"VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==", 0600);
	assert_int_equal(esauth_setup(&a, &cfg), 0);
	assert_string_equal(a.header,
			    "Authorization: ApiKey "
			    "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==");
	esauth_clear(&a);

	/* both kinds at once, or a user without a password, are configuration errors */
	snprintf(cfg.es.username, sizeof(cfg.es.username), "elastic");
	assert_int_equal(esauth_setup(&a, &cfg), -EINVAL);
	cfg.es.api_key_file[0] = '\0';
	assert_int_equal(esauth_setup(&a, &cfg), -EINVAL);
	snprintf(cfg.es.password_file, sizeof(cfg.es.password_file), "%s",
		 test_write_file(dir, "pw", "changeme\n", 0600));
	assert_int_equal(esauth_setup(&a, &cfg), 0);
	assert_string_equal(a.username, "elastic");
	assert_string_equal(a.password, "changeme");
	assert_null(a.header);
	esauth_clear(&a);
	assert_null(a.password);
	test_rmtree(dir);
}

static void test_tls_files(void **state)
{
	const char *dir = test_tmpdir(0);
	struct agent_config cfg;

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(esauth_check_tls(&cfg), 0);
	/* a client certificate without its key */
	snprintf(cfg.es.client_cert, sizeof(cfg.es.client_cert), "%s",
		 test_write_file(dir, "cert.pem", "-----BEGIN CERTIFICATE-----\n", 0644));
	assert_int_equal(esauth_check_tls(&cfg), -EINVAL);
	/* the key is a secret: a many-line PEM is fine, others reading it is not */
	snprintf(cfg.es.client_key, sizeof(cfg.es.client_key), "%s",
		 test_write_file(dir, "key.pem", "-----BEGIN PRIVATE KEY-----\nAA\n", 0644));
	assert_int_equal(esauth_check_tls(&cfg), -EPERM);
	test_write_file(dir, "key.pem", "-----BEGIN PRIVATE KEY-----\nAA\n", 0600);
	assert_int_equal(esauth_check_tls(&cfg), 0);
	snprintf(cfg.es.ca_file, sizeof(cfg.es.ca_file), "%s/missing-ca.pem", dir);
	assert_int_equal(esauth_check_tls(&cfg), -ENOENT);
	/* a CA (or certificate) others can replace lets them pose as the cluster */
	snprintf(cfg.es.ca_file, sizeof(cfg.es.ca_file), "%s",
		 test_write_file(dir, "ca.pem", "-----BEGIN CERTIFICATE-----\n", 0666));
	assert_int_equal(esauth_check_tls(&cfg), -EPERM);
	test_write_file(dir, "ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
	assert_int_equal(esauth_check_tls(&cfg), 0);
	test_write_file(dir, "cert.pem", "-----BEGIN CERTIFICATE-----\n", 0620);
	assert_int_equal(esauth_check_tls(&cfg), -EPERM);
	test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_secret_files),
		cmocka_unit_test(test_auth_setup),
		cmocka_unit_test(test_tls_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
