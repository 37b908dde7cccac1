/* SPDX-License-Identifier: GPL-2.0-only */
/* The web configuration file Prometheus exporters use (tls_server_config,
 * basic_auth_users with bcrypt hashes), so one file can serve node_exporter
 * and autotrace alike. docs/prometheus.md lists what is accepted. */
#pragma once
#include <limits.h>
#include <stdbool.h>

#include "base/yamltree.h"

#define WEBCONFIG_MAX_USERS  32
#define WEBCONFIG_MAX_BCRYPT 14 /* cost; one check takes ~2 s at 14 */
#define WEBCONFIG_USER_MAX   64
#define WEBCONFIG_HASH_LEN   60 /* $2y$10$ + 22 salt + 31 hash characters */

enum webconfig_client_auth {
	WEB_CLIENT_NONE,	      /* NoClientCert */
	WEB_CLIENT_VERIFY_IF_GIVEN,   /* VerifyClientCertIfGiven */
	WEB_CLIENT_REQUIRE_AND_VERIFY /* RequireAndVerifyClientCert */
};

enum webconfig_tls_version { WEB_TLS_DEFAULT, WEB_TLS12, WEB_TLS13 };

struct webconfig_user {
	char name[WEBCONFIG_USER_MAX];
	char hash[WEBCONFIG_HASH_LEN + 1];
};

/* Plain data: a reload builds a new one. */
struct webconfig {
	char path[PATH_MAX];
	bool tls;
	char cert_file[PATH_MAX];
	char key_file[PATH_MAX];
	char client_ca_file[PATH_MAX];
	enum webconfig_client_auth client_auth;
	enum webconfig_tls_version min_version, max_version;
	unsigned nusers;
	struct webconfig_user users[WEBCONFIG_MAX_USERS];
};

/* Parses and checks the file: it must be trusted like the agent's own
 * configuration, the key file must be a secret (root's, mode 0600 or
 * stricter), certificates readable, hashes bcrypt. Errors go to diag. */
int webconfig_load(const char *path, struct webconfig *out, struct diag *diag);
/* The same from text, without the file checks (tests). */
int webconfig_load_string(const char *name, const char *text, struct webconfig *out,
			  struct diag *diag);
/* A bcrypt hash ($2a$, $2b$ or $2y$, cost 4..WEBCONFIG_MAX_BCRYPT); why says what is wrong. */
bool webconfig_hash_valid(const char *hash, char *why, size_t whylen);
