// SPDX-License-Identifier: GPL-2.0-only
#include "agent/metrics_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/exposition.h"
#include "base/config.h"
#include "base/httpd.h"
#include "base/log.h"
#include "base/tsdb.h"
#include "base/util.h"
#include "base/webconfig.h"
#include "probes/watcher.h"

static const char landing[] =
	"<html><head><title>autotrace</title></head><body>\n"
	"<h1>autotrace</h1>\n"
	"<p><a href=\"/metrics\">metrics</a>: the watch layer and the agent's own health "
	"(docs/prometheus.md)</p>\n"
	"</body></html>\n";

struct metrics_http {
	struct metrics_http_opts opts;
	struct httpd *httpd;
	struct expo_counters *counters;
	char web_config[4096];
	struct {
		uint64_t text, openmetrics, render_errors;
		uint64_t last_body_bytes;
		unsigned last_series, last_skipped;
		double last_render_ms;
	} st;
};

static void on_request(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct metrics_http *m = ctx;
	enum expo_format f;
	struct expo_result r;
	json_t *status;
	uint64_t t0;
	int err;

	if (!strcmp(req->path, "/")) {
		resp->content_type = "text/html; charset=utf-8";
		resp->body = strdup(landing);
		resp->len = resp->body ? strlen(landing) : 0;
		resp->status = resp->body ? 200 : 500;
		return;
	}
	if (strcmp(req->path, "/metrics")) {
		resp->status = 404;
		return;
	}
	t0 = now_mono_ns();
	f = expo_negotiate(req->accept);
	status = m->opts.status ? m->opts.status(m->opts.ctx) : NULL;
	err = expo_render(m->opts.db ? m->opts.db(m->opts.ctx) : NULL, status, m->counters, f,
			  req->max_body, m->st.last_body_bytes, &r);
	json_decref(status);
	if (err) {
		m->st.render_errors++;
		resp->status = 500;
		return;
	}
	if (r.skipped && !m->st.last_skipped)
		log_warn("metrics endpoint: %u series left out to stay under "
			 "metrics.max_response_size; raise it (docs/prometheus.md)",
			 r.skipped);
	if (f == EXPO_OPENMETRICS)
		m->st.openmetrics++;
	else
		m->st.text++;
	m->st.last_body_bytes = r.len;
	m->st.last_series = r.series;
	m->st.last_skipped = r.skipped;
	m->st.last_render_ms = (double)(now_mono_ns() - t0) / 1e6;
	resp->content_type = expo_content_type(f);
	resp->body = r.body;
	resp->len = r.len;
}

int metrics_http_new(struct metrics_http **out, const struct metrics_http_opts *opts)
{
	const struct agent_config *cfg = opts->cfg;
	struct metrics_http *m = NULL;
	struct webconfig *web = NULL;
	struct httpd_opts ho;
	struct diag diag = {0};
	int err = 0;

	*out = NULL;
	if (!cfg->metrics.listen[0])
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->opts = *opts;
	m->opts.prev = NULL;
	if (cfg->metrics.web_config[0]) {
		web = calloc(1, sizeof(*web));
		if (!web) {
			err = -ENOMEM;
			goto cleanup;
		}
		err = webconfig_load(cfg->metrics.web_config, web, &diag);
		for (unsigned i = 0; i < diag.n; i++)
			log_error("metrics.web_config: %s", diag.msgs[i]);
		diag_clear(&diag);
		if (err)
			goto cleanup;
		snprintf(m->web_config, sizeof(m->web_config), "%s", cfg->metrics.web_config);
	}
	if (opts->prev && opts->prev->counters) {
		m->counters = opts->prev->counters;
		opts->prev->counters = NULL;
	} else if ((err = expo_counters_new(&m->counters, watchers_series_budget(cfg)))) {
		goto cleanup;
	}
	ho = (struct httpd_opts){
		.loop = opts->loop,
		.listen = cfg->metrics.listen,
		.web = web,
		.allow_insecure = cfg->metrics.allow_insecure,
		.max_clients = (unsigned)cfg->metrics.max_clients,
		.max_response = cfg->metrics.max_response_size,
		.timeout_ms = cfg->metrics.timeout_ms,
		.handler = on_request,
		.ctx = m,
		.prev = opts->prev ? opts->prev->httpd : NULL,
	};
	err = httpd_new(&m->httpd, &ho);
	if (err)
		goto cleanup;
	log_info("metrics endpoint http%s://%s/metrics%s", web && web->tls ? "s" : "",
		 httpd_address(m->httpd), web && web->nusers ? " (basic authentication)" : "");
	*out = m;
	m = NULL;
cleanup:
	if (web)
		explicit_bzero(web, sizeof(*web));
	free(web);
	if (m && opts->prev && !opts->prev->counters) {
		/* hand the counters back: the old endpoint keeps running */
		opts->prev->counters = m->counters;
		m->counters = NULL;
	}
	metrics_http_free(&m);
	return err;
}

void metrics_http_free(struct metrics_http **pm)
{
	struct metrics_http *m = pm ? *pm : NULL;

	if (!m)
		return;
	httpd_free(&m->httpd);
	expo_counters_free(&m->counters);
	free(m);
	*pm = NULL;
}

void metrics_http_round(struct metrics_http *m, const struct tsdb *db)
{
	if (m)
		expo_counters_round(m->counters, db);
}

json_t *metrics_http_status(const struct metrics_http *m)
{
	json_t *o;

	if (!m)
		return json_pack("{s:b}", "enabled", false);
	o = httpd_stats(m->httpd);
	json_object_set_new(o, "enabled", json_true());
	if (m->web_config[0])
		json_object_set_new(o, "web_config", json_string(m->web_config));
	json_object_set_new(o, "scrapes",
			    json_pack("{s:I,s:I}", "openmetrics", (json_int_t)m->st.openmetrics,
				      "text", (json_int_t)m->st.text));
	json_object_set_new(o, "render_errors", json_integer((json_int_t)m->st.render_errors));
	json_object_set_new(o, "last_body_bytes", json_integer((json_int_t)m->st.last_body_bytes));
	json_object_set_new(o, "last_series", json_integer(m->st.last_series));
	json_object_set_new(o, "last_series_skipped", json_integer(m->st.last_skipped));
	json_object_set_new(o, "last_render_ms", json_real(m->st.last_render_ms));
	json_object_set_new(o, "counters", json_integer(expo_counters_count(m->counters)));
	return o;
}
