/* SPDX-License-Identifier: GPL-2.0-only */
/* The Elasticsearch sink: every incident is spooled on disk (storage/spool.h)
 * and leaves the spool only once the cluster has acknowledged it. The client
 * runs on the agent's event loop (libcurl multi interface driven by epoll and
 * a timerfd): nothing here blocks on the network. */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct essink;
struct loop;
struct agent_config;

/* config/es-index-template.json, embedded at build time */
extern const char es_index_template_json[];

struct essink_opts {
	struct loop *loop;
	const struct agent_config *cfg; /* storage.elasticsearch.* */
	const char *template_json;	/* NULL: es_index_template_json */
	const struct essink *prev;	/* on reload: carry its counters over */
};

/* Checks the configuration (URLs, secret files and their permissions, TLS
 * files) and opens the spool; a cluster that cannot be reached is not an
 * error. The first connection (index template, then the spool) starts from
 * the loop. */
int essink_new(struct essink **out, const struct essink_opts *opts);
/* Aborts a request in flight; whatever it carried stays in the spool. */
void essink_free(struct essink **s);

/* Spools one incident (fsync'd) and ships it when it can. */
int essink_submit(struct essink *s, const char *id, const char *doc, size_t len);

/* For `autotrace status`: state, spool, counters, last error. */
json_t *essink_status(const struct essink *s);
/* Incidents that will never reach Elasticsearch: evicted from the spool, or
 * rejected by the cluster (parked). */
uint64_t essink_evicted(const struct essink *s);
uint64_t essink_rejected(const struct essink *s);
