// SPDX-License-Identifier: GPL-2.0-only
#include "storage/esauth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define SECRET_MAX 4096

int secret_read(const char *key, const char *path, char **out)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd, err = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		err = -errno;
		return log_ret(err, "storage.elasticsearch.%s %s: %s", key, path, strerror(-err));
	}
	if (fstat(fd, &st)) {
		err = -errno;
		log_error("storage.elasticsearch.%s %s: %s", key, path, strerror(-err));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		err = log_ret(-EINVAL, "storage.elasticsearch.%s %s: not a regular file", key,
			      path);
		goto cleanup;
	}
	/* a secret another user can read or replace is no secret */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		err = log_ret(-EPERM, "storage.elasticsearch.%s %s: owned by uid %u, not root", key,
			      path, (unsigned)st.st_uid);
		goto cleanup;
	}
	if (st.st_mode & 077) {
		err = log_ret(-EPERM,
			      "storage.elasticsearch.%s %s: accessible by group or others (mode "
			      "%04o); chmod 600 it",
			      key, path, (unsigned)(st.st_mode & 07777));
		goto cleanup;
	}
	buf = calloc(1, SECRET_MAX + 1);
	if (!buf) {
		err = -ENOMEM;
		goto cleanup;
	}
	n = read(fd, buf, SECRET_MAX + 1);
	if (n < 0 || n > SECRET_MAX) {
		err = n < 0 ? -errno : -EFBIG;
		log_error("storage.elasticsearch.%s %s: %s", key, path,
			  n < 0 ? strerror(-err) : "larger than 4 KiB");
		goto cleanup;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n == 0 || memchr(buf, '\n', (size_t)n)) {
		err = log_ret(-EINVAL, "storage.elasticsearch.%s %s: %s", key, path,
			      n ? "more than one line" : "empty");
		goto cleanup;
	}
	*out = buf;
	buf = NULL;
cleanup:
	if (buf) {
		explicit_bzero(buf, SECRET_MAX + 1);
		free(buf);
	}
	close(fd);
	return err;
}

void secret_free(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

char *base64_encode(const char *in)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = strlen(in), o = 0;
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)(unsigned char)in[i + 1] << 8;
		if (i + 2 < len)
			v |= (unsigned char)in[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

/* TLS material the agent trusts: readable, and nobody but root able to
 * replace it (a CA another user can write lets them pose as the cluster). */
static int check_readable(const char *key, const char *path)
{
	char why[128];
	int fd, err;

	if (!path[0])
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		return log_ret(err, "storage.elasticsearch.%s %s: %s", key, path, strerror(-err));
	}
	close(fd);
	if ((err = check_trusted_file(path, why, sizeof(why))))
		return log_ret(err, "storage.elasticsearch.%s %s: refused: %s", key, path, why);
	return 0;
}

int esauth_setup(struct esauth *a, const struct agent_config *cfg)
{
	const char *user = cfg->es.username, *pwfile = cfg->es.password_file;
	const char *keyfile = cfg->es.api_key_file;
	char *key = NULL;
	int err;

	if (keyfile[0] && (user[0] || pwfile[0]))
		return log_ret(-EINVAL, "storage.elasticsearch: give either username + "
					"password_file or api_key_file, not both");
	if (!user[0] != !pwfile[0])
		return log_ret(-EINVAL, "storage.elasticsearch: username and password_file go "
					"together");
	if (user[0]) {
		snprintf(a->username, sizeof(a->username), "%s", user);
		return secret_read("password_file", pwfile, &a->password);
	}
	if (!keyfile[0])
		return 0;
	err = secret_read("api_key_file", keyfile, &key);
	if (err)
		return err;
	{
		/* "id:api_key" as the create API key call lists them, or its encoded form */
		char *enc = strchr(key, ':') ? base64_encode(key) : strdup(key);
		size_t len = enc ? strlen(enc) + 32 : 0;

		a->header = enc ? malloc(len) : NULL;
		if (a->header)
			snprintf(a->header, len, "Authorization: ApiKey %s", enc);
		secret_free(&enc);
	}
	secret_free(&key);
	return a->header ? 0 : -ENOMEM;
}

void esauth_clear(struct esauth *a)
{
	secret_free(&a->password);
	secret_free(&a->header);
	a->username[0] = '\0';
}

int esauth_check_tls(const struct agent_config *cfg)
{
	char *key = NULL;
	int err;

	if (!!cfg->es.client_cert[0] != !!cfg->es.client_key[0])
		return log_ret(-EINVAL, "storage.elasticsearch: client_cert and client_key go "
					"together");
	if ((err = check_readable("ca_file", cfg->es.ca_file)) ||
	    (err = check_readable("client_cert", cfg->es.client_cert)))
		return err;
	if (!cfg->es.client_key[0])
		return 0;
	/* the key is a secret like the password: same ownership rules */
	err = secret_read("client_key", cfg->es.client_key, &key);
	if (err == -EINVAL)
		err = 0; /* a PEM key has many lines; only its permissions matter here */
	secret_free(&key);
	return err;
}
