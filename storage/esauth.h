/* SPDX-License-Identifier: GPL-2.0-only */
/* Credentials and TLS material of the Elasticsearch client, read from files
 * an operator controls: a secret another user can read or replace is no
 * secret, so ownership and modes are checked before anything is used. */
#pragma once
#include <stddef.h>

#include "base/config.h"

/* Reads a secret file: owned by root or the agent's user, no access for group
 * or others, a regular file, one line of at most 4 KiB (trailing newline and
 * blanks dropped). key names the config key in errors. *out is malloc'd: free
 * it with secret_free, which wipes it. -EPERM / -EINVAL / -EFBIG, logged. */
int secret_read(const char *key, const char *path, char **out);
void secret_free(char **p);
/* Standard base64 (RFC 4648, padded) of a string; malloc'd, NULL on ENOMEM. */
char *base64_encode(const char *in);

struct esauth {
	char username[CFG_STR_MAX];
	char *password; /* with username: HTTP basic authentication */
	char *header;	/* or "Authorization: ApiKey ..." */
};

/* storage.elasticsearch username + password_file, or api_key_file (as the
 * create API key call lists it, "id:api_key", or already encoded). */
int esauth_setup(struct esauth *a, const struct agent_config *cfg);
void esauth_clear(struct esauth *a);
/* The TLS files named in the config can be used: the CA file and client
 * certificate readable, the client key held to the rules of a secret. */
int esauth_check_tls(const struct agent_config *cfg);
