/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libcurl, loaded the first time an HTTP client is made instead of linked:
 * an agent without an Elasticsearch sink never maps it, nor the libraries it
 * brings (GnuTLS, LDAP, Kerberos, SSH, IDN, ...), which otherwise put about
 * 4 MiB of resident pages into every agent at start-up (docs/performance.md,
 * "Start-up peak and idle memory").
 */
#pragma once
#define CURL_DISABLE_TYPECHECK /* the calls go through the pointers below */
#include <curl/curl.h>

/* The functions storage/httpclient.c calls, by libcurl's names without curl_. */
struct curl_api {
	CURLcode (*global_init)(long flags);
	void (*global_cleanup)(void);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *m);
	CURLMcode (*multi_setopt)(CURLM *m, CURLMoption option, ...);
	CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
	CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
	CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t s, int ev_bitmask,
					 int *running_handles);
	CURLMsg *(*multi_info_read)(CURLM *m, int *msgs_in_queue);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *e);
	CURLcode (*easy_setopt)(CURL *e, CURLoption option, ...);
	CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
	const char *(*easy_strerror)(CURLcode code);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
};

/* Loads libcurl once (later calls return the same table): 0 with *out set,
 * or -ENOENT with the loader's message logged. */
int curl_api_get(const struct curl_api **out);
