// SPDX-License-Identifier: GPL-2.0-only
#include "base/webconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

static const char bcrypt_chars[] =
	"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

bool webconfig_hash_valid(const char *hash, char *why, size_t whylen)
{
	size_t len = strlen(hash);
	int cost;

	if (len != WEBCONFIG_HASH_LEN || hash[0] != '$' || hash[1] != '2' ||
	    !strchr("aby", hash[2]) || hash[3] != '$' || hash[6] != '$') {
		snprintf(why, whylen,
			 "not a bcrypt hash ($2y$10$ and 53 more characters, as htpasswd -B "
			 "makes)");
		return false;
	}
	if (hash[4] < '0' || hash[4] > '9' || hash[5] < '0' || hash[5] > '9') {
		snprintf(why, whylen, "bcrypt cost '%.2s' is not a number", hash + 4);
		return false;
	}
	cost = (hash[4] - '0') * 10 + (hash[5] - '0');
	if (cost < 4 || cost > WEBCONFIG_MAX_BCRYPT) {
		/* every check of a new password runs on the agent's CPU */
		snprintf(why, whylen, "bcrypt cost %d is outside 4..%d", cost,
			 WEBCONFIG_MAX_BCRYPT);
		return false;
	}
	if (strspn(hash + 7, bcrypt_chars) != len - 7) {
		snprintf(why, whylen, "bcrypt hash holds characters outside its alphabet");
		return false;
	}
	return true;
}

static const struct ynode *scalar_of(const struct ynode *v, const char *file, const char *key,
				     struct diag *diag)
{
	if (v->type != YNODE_SCALAR) {
		diag_at(diag, file, v, "%s: expected a string, got %s", key,
			ynode_type_name(v->type));
		return NULL;
	}
	return v;
}

static void path_value(const struct ynode *v, const char *file, const char *key, char *dst,
		       size_t len, struct diag *diag)
{
	if (!scalar_of(v, file, key, diag))
		return;
	if (v->scalar[0] != '/')
		diag_at(diag, file, v, "%s: '%s' is not an absolute path", key, v->scalar);
	else if (copy_str(dst, len, v->scalar))
		diag_at(diag, file, v, "%s: path too long", key);
}

static enum webconfig_tls_version tls_version(const struct ynode *v, const char *file,
					      const char *key, struct diag *diag)
{
	if (!scalar_of(v, file, key, diag))
		return WEB_TLS_DEFAULT;
	if (!strcmp(v->scalar, "TLS12"))
		return WEB_TLS12;
	if (!strcmp(v->scalar, "TLS13"))
		return WEB_TLS13;
	if (!strcmp(v->scalar, "TLS10") || !strcmp(v->scalar, "TLS11"))
		diag_at(diag, file, v, "%s: %s is not offered (TLS12 or TLS13)", key, v->scalar);
	else
		diag_at(diag, file, v, "%s: '%s' is not TLS12 or TLS13", key, v->scalar);
	return WEB_TLS_DEFAULT;
}

static void parse_tls(const struct ynode *map, const char *file, struct webconfig *w,
		      struct diag *diag)
{
	for (size_t i = 0; i < map->n; i++) {
		const char *k = map->keys[i]->scalar;
		const struct ynode *v = map->items[i];
		char key[96];

		snprintf(key, sizeof(key), "tls_server_config.%s", k);
		if (!strcmp(k, "cert_file")) {
			path_value(v, file, key, w->cert_file, sizeof(w->cert_file), diag);
		} else if (!strcmp(k, "key_file")) {
			path_value(v, file, key, w->key_file, sizeof(w->key_file), diag);
		} else if (!strcmp(k, "client_ca_file")) {
			path_value(v, file, key, w->client_ca_file, sizeof(w->client_ca_file),
				   diag);
		} else if (!strcmp(k, "client_auth_type")) {
			if (!scalar_of(v, file, key, diag))
				continue;
			if (!strcmp(v->scalar, "NoClientCert"))
				w->client_auth = WEB_CLIENT_NONE;
			else if (!strcmp(v->scalar, "VerifyClientCertIfGiven"))
				w->client_auth = WEB_CLIENT_VERIFY_IF_GIVEN;
			else if (!strcmp(v->scalar, "RequireAndVerifyClientCert"))
				w->client_auth = WEB_CLIENT_REQUIRE_AND_VERIFY;
			else
				diag_at(diag, file, v,
					"%s: '%s' is not supported (NoClientCert, "
					"VerifyClientCertIfGiven or RequireAndVerifyClientCert: a "
					"certificate that is not verified proves nothing)",
					key, v->scalar);
		} else if (!strcmp(k, "min_version")) {
			w->min_version = tls_version(v, file, key, diag);
		} else if (!strcmp(k, "max_version")) {
			w->max_version = tls_version(v, file, key, diag);
		} else if (!strcmp(k, "cipher_suites") || !strcmp(k, "curve_preferences") ||
			   !strcmp(k, "prefer_server_cipher_suites") ||
			   !strcmp(k, "client_allowed_sans") || !strcmp(k, "cert") ||
			   !strcmp(k, "key")) {
			/* refused rather than ignored: a setting that silently does
			 * nothing is a security setting that lies */
			diag_at(diag, file, map->keys[i],
				"%s is not supported by autotrace (OpenSSL's defaults apply)", key);
		} else {
			diag_at(diag, file, map->keys[i], "unknown key '%s'", key);
		}
	}
}

static void parse_users(const struct ynode *map, const char *file, struct webconfig *w,
			struct diag *diag)
{
	for (size_t i = 0; i < map->n; i++) {
		const struct ynode *k = map->keys[i], *v = map->items[i];
		struct webconfig_user *u;
		char why[160];

		if (w->nusers >= WEBCONFIG_MAX_USERS) {
			diag_at(diag, file, k, "basic_auth_users: at most %d users",
				WEBCONFIG_MAX_USERS);
			return;
		}
		if (!k->scalar[0] || strchr(k->scalar, ':') ||
		    strlen(k->scalar) >= WEBCONFIG_USER_MAX) {
			diag_at(diag, file, k,
				"basic_auth_users: user '%.64s' must be 1 to %d characters without "
				"':'",
				k->scalar, WEBCONFIG_USER_MAX - 1);
			continue;
		}
		if (!scalar_of(v, file, "basic_auth_users", diag))
			continue;
		if (!webconfig_hash_valid(v->scalar, why, sizeof(why))) {
			diag_at(diag, file, v, "basic_auth_users.%s: %s", k->scalar, why);
			continue;
		}
		u = &w->users[w->nusers++];
		snprintf(u->name, sizeof(u->name), "%s", k->scalar);
		snprintf(u->hash, sizeof(u->hash), "%s", v->scalar);
	}
}

static int from_doc(const struct ydoc *doc, struct webconfig *w, struct diag *diag)
{
	const char *file = doc->file;
	unsigned before = diag->errors;
	const struct ynode *root = doc->root;

	memset(w, 0, sizeof(*w));
	snprintf(w->path, sizeof(w->path), "%s", file);
	if (root && root->type != YNODE_MAP) {
		diag_at(diag, file, root, "the web configuration must be a mapping");
		return -EINVAL;
	}
	for (size_t i = 0; root && i < root->n; i++) {
		const char *k = root->keys[i]->scalar;
		const struct ynode *v = root->items[i];

		if (!strcmp(k, "tls_server_config") || !strcmp(k, "basic_auth_users") ||
		    !strcmp(k, "http_server_config")) {
			if (v->type == YNODE_SCALAR && v->plain &&
			    (!strcmp(v->scalar, "null") || !strcmp(v->scalar, "~") ||
			     !v->scalar[0]))
				continue; /* an empty section */
			if (v->type != YNODE_MAP) {
				diag_at(diag, file, v, "%s: expected a mapping, got %s", k,
					ynode_type_name(v->type));
				continue;
			}
		}
		if (!strcmp(k, "tls_server_config")) {
			w->tls = v->n > 0;
			parse_tls(v, file, w, diag);
		} else if (!strcmp(k, "basic_auth_users")) {
			parse_users(v, file, w, diag);
		} else if (!strcmp(k, "http_server_config")) {
			for (size_t j = 0; j < v->n; j++) {
				/* HTTP/2 is never offered; turning it off is a no-op */
				if (!strcmp(v->keys[j]->scalar, "http2") &&
				    v->items[j]->type == YNODE_SCALAR &&
				    !strcmp(v->items[j]->scalar, "false"))
					continue;
				diag_at(diag, file, v->keys[j],
					"http_server_config.%s is not supported by autotrace",
					v->keys[j]->scalar);
			}
		} else {
			diag_at(diag, file, root->keys[i], "unknown key '%s'", k);
		}
	}
	if (w->tls && (!w->cert_file[0] || !w->key_file[0]))
		diag_add(diag, file, 0, 0, "tls_server_config needs both cert_file and key_file");
	if (w->client_auth != WEB_CLIENT_NONE && !w->client_ca_file[0])
		diag_add(diag, file, 0, 0,
			 "tls_server_config.client_auth_type needs client_ca_file to verify "
			 "client certificates with");
	if (w->min_version && w->max_version && w->min_version > w->max_version)
		diag_add(diag, file, 0, 0, "tls_server_config: min_version is above max_version");
	return diag->errors != before ? -EINVAL : 0;
}

int webconfig_load_string(const char *name, const char *text, struct webconfig *out,
			  struct diag *diag)
{
	struct ydoc *doc = NULL;
	int err;

	err = ydoc_load_string(name, text, strlen(text), &doc, diag);
	if (!err)
		err = from_doc(doc, out, diag);
	ydoc_free(&doc);
	return err;
}

static int check_readable(const char *file, const char *key, const char *path, struct diag *diag)
{
	int err;

	if (!path[0] || access(path, R_OK) == 0)
		return 0;
	err = -errno;
	diag_add(diag, file, 0, 0, "tls_server_config.%s %s: %s", key, path, strerror(-err));
	return err;
}

/* The private key: another user who can read or replace it can impersonate the agent. */
static int check_secret(const char *file, const char *path, struct diag *diag)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int err = 0;

	if (fd < 0) {
		err = -errno;
		diag_add(diag, file, 0, 0, "tls_server_config.key_file %s: %s", path,
			 strerror(-err));
		return err;
	}
	if (fstat(fd, &st)) {
		err = -errno;
	} else if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		diag_add(diag, file, 0, 0, "tls_server_config.key_file %s: not a regular file",
			 path);
	} else if (st.st_uid != 0 && st.st_uid != geteuid()) {
		err = -EPERM;
		diag_add(diag, file, 0, 0,
			 "tls_server_config.key_file %s: owned by uid %u, not root", path,
			 (unsigned)st.st_uid);
	} else if (st.st_mode & 077) {
		err = -EPERM;
		diag_add(
			diag, file, 0, 0,
			"tls_server_config.key_file %s: accessible by group or others (mode %04o); "
			"chmod 600 it",
			path, (unsigned)(st.st_mode & 07777));
	}
	close(fd);
	return err;
}

int webconfig_load(const char *path, struct webconfig *out, struct diag *diag)
{
	struct ydoc *doc = NULL;
	char why[256];
	int err;

	/* it decides who may read the node's metrics: trusted like the config */
	err = check_trusted_file(path, why, sizeof(why));
	if (err) {
		diag_add(diag, path, 0, 0, "refusing web configuration file: %s", why);
		return err;
	}
	err = ydoc_load_file(path, &doc, diag);
	if (!err)
		err = from_doc(doc, out, diag);
	ydoc_free(&doc);
	if (err)
		return err;
	if (out->tls) {
		err = check_readable(path, "cert_file", out->cert_file, diag);
		if (!err)
			err = check_readable(path, "client_ca_file", out->client_ca_file, diag);
		if (!err)
			err = check_secret(path, out->key_file, diag);
	}
	return err;
}
