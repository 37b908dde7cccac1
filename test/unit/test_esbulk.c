// SPDX-License-Identifier: GPL-2.0-only
/* The Elasticsearch client's pure parts: index names, NDJSON bodies, gzip,
 * per-item results of _bulk, and the retry backoff. */
#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "storage/esbulk.h"

static void test_index_names(void **state)
{
	char buf[128];

	/* the incident's own day (UTC), so a re-send lands where the first one did */
	esbulk_index_name("autotrace-incidents", false, 1795000000123ull, buf, sizeof(buf));
	assert_string_equal(buf, "autotrace-incidents-2026.11.18");
	esbulk_index_name("x", false, 0, buf, sizeof(buf));
	assert_string_equal(buf, "x-1970.01.01");
	esbulk_index_name("autotrace-incidents", true, 1795000000123ull, buf, sizeof(buf));
	assert_string_equal(buf, "autotrace-incidents-default");
}

static void test_bulk_body(void **state)
{
	struct strbuf b = {0};
	const char *doc = "{\"@timestamp\":\"2026-11-18T00:00:00.000Z\",\"a\":\"x\\ny\"}";
	const char *pretty = "{\n  \"a\": 1\n}\n";
	char *line2;

	assert_int_equal(esbulk_append(&b, "idx-2026.11.18", "ID1", doc, strlen(doc)), 0);
	assert_string_equal(b.p, "{\"create\":{\"_index\":\"idx-2026.11.18\",\"_id\":\"ID1\"}}\n"
				 "{\"@timestamp\":\"2026-11-18T00:00:00.000Z\",\"a\":\"x\\ny\"}\n");
	/* NDJSON: a multi-line document is re-encoded onto one line */
	assert_int_equal(esbulk_append(&b, "i", "ID2", pretty, strlen(pretty)), 0);
	line2 = strstr(b.p, "\"ID2\"}}\n");
	assert_non_null(line2);
	assert_string_equal(line2 + strlen("\"ID2\"}}\n"), "{\"a\":1}\n");
	/* garbage is refused, not sent */
	assert_int_equal(esbulk_append(&b, "i", "ID3", "not json\n", 9), -EINVAL);
	assert_int_equal(esbulk_append(&b, "i", "ID3", "[1,2]", 5), -EINVAL);
	strbuf_free(&b);

	/* a bounded buffer says so */
	b.max = 16;
	assert_int_equal(strbuf_append(&b, "0123456789", 10), 0);
	assert_int_equal(strbuf_append(&b, "0123456789", 10), -EFBIG);
	assert_int_equal(b.err, -EFBIG);
	strbuf_free(&b);
}

static void test_gzip_round_trip(void **state)
{
	char in[20000], out[20000];
	void *z = NULL;
	size_t zlen = 0;
	z_stream s = {0};

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = "{\"incident\":{}}\n"[i % 16];
	assert_int_equal(esbulk_gzip(in, sizeof(in), &z, &zlen), 0);
	assert_true(zlen < sizeof(in) / 10);
	/* gzip magic: what Content-Encoding: gzip promises */
	assert_int_equal(((unsigned char *)z)[0], 0x1f);
	assert_int_equal(((unsigned char *)z)[1], 0x8b);
	assert_int_equal(inflateInit2(&s, 15 + 16), Z_OK);
	s.next_in = z;
	s.avail_in = (uInt)zlen;
	s.next_out = (Bytef *)out;
	s.avail_out = sizeof(out);
	assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
	assert_int_equal(s.total_out, sizeof(in));
	assert_memory_equal(in, out, sizeof(in));
	inflateEnd(&s);
	free(z);
}

static void test_parse_mixed_results(void **state)
{
	const char *ids[] = {"a", "b", "c", "d", "e", "f", "g"};
	struct esbulk_item it[7];
	/* what Elasticsearch answers with
	 * filter_path=errors,items.*._id,items.*.status,items.*.error */
	const char *body =
		"{\"errors\":true,\"items\":["
		"{\"create\":{\"_id\":\"a\",\"status\":201}},"
		"{\"create\":{\"_id\":\"b\",\"status\":409,\"error\":{\"type\":"
		"\"version_conflict_engine_exception\",\"reason\":\"[b]: version conflict, "
		"document "
		"already exists\"}}},"
		"{\"create\":{\"_id\":\"c\",\"status\":429,\"error\":{\"type\":"
		"\"es_rejected_execution_exception\",\"reason\":\"rejected execution\"}}},"
		"{\"create\":{\"_id\":\"d\",\"status\":503,\"error\":{\"type\":"
		"\"unavailable_shards_exception\",\"reason\":\"primary shard is not active\"}}},"
		"{\"create\":{\"_id\":\"e\",\"status\":400,\"error\":{\"type\":"
		"\"document_parsing_exception\",\"reason\":\"[1:42] failed to parse field "
		"[rule.name] of type "
		"[long]\",\"caused_by\":{\"type\":\"illegal_argument_exception\","
		"\"reason\":\"For input string: \\\"bad\\\"\"}}}},"
		"{\"create\":{\"_id\":\"f\",\"status\":403,\"error\":{\"type\":"
		"\"cluster_block_exception\",\"reason\":\"index [x] blocked by: "
		"[FORBIDDEN/12/index read-only / allow delete (api)];\"}}}"
		"]}";

	assert_int_equal(esbulk_parse_response(body, strlen(body), ids, 7, it), 0);
	assert_int_equal(it[0].outcome, ESB_OK);
	assert_false(it[0].duplicate);
	/* 409 on create: an earlier attempt got there, its answer was lost */
	assert_int_equal(it[1].outcome, ESB_OK);
	assert_true(it[1].duplicate);
	assert_int_equal(it[2].outcome, ESB_RETRY);
	assert_int_equal(it[2].status, 429);
	assert_int_equal(it[3].outcome, ESB_RETRY);
	/* a mapping conflict is final: parked, not retried */
	assert_int_equal(it[4].outcome, ESB_REJECT);
	assert_int_equal(it[4].status, 400);
	assert_non_null(strstr(it[4].reason, "document_parsing_exception"));
	assert_non_null(strstr(it[4].reason, "rule.name"));
	assert_non_null(strstr(it[4].reason, "For input string"));
	/* a read-only (disk full) block lifts: retry */
	assert_int_equal(it[5].outcome, ESB_RETRY);
	/* the answer had nothing for g: not stored, so retried */
	assert_int_equal(it[6].outcome, ESB_RETRY);
	assert_int_equal(it[6].status, 0);
}

static void test_parse_edge_cases(void **state)
{
	const char *ids[] = {"a", "b"};
	struct esbulk_item it[2];
	const char *all_ok = "{\"errors\":false,\"items\":[{\"create\":{\"_id\":\"a\",\"status\":"
			     "201}},{\"index\":{\"_id\":\"b\",\"status\":200}}]}";
	const char *swapped = "{\"errors\":false,\"items\":[{\"create\":{\"_id\":\"b\",\"status\":"
			      "201}},{\"create\":{\"_id\":\"a\",\"status\":201}}]}";
	const char *html = "<html><body>502 Bad Gateway</body></html>";
	const char *other_4xx =
		"{\"errors\":true,\"items\":[{\"create\":{\"_id\":\"a\",\"status\":"
		"404,\"error\":{\"type\":\"index_not_found_exception\",\"reason\":"
		"\"no such index\"}}},{\"create\":{\"_id\":\"b\",\"status\":408}}]}";

	assert_int_equal(esbulk_parse_response(all_ok, strlen(all_ok), ids, 2, it), 0);
	assert_int_equal(it[0].outcome, ESB_OK);
	assert_int_equal(it[1].outcome, ESB_OK);
	/* answers are positional; one that names another id is not trusted */
	assert_int_equal(esbulk_parse_response(swapped, strlen(swapped), ids, 2, it), 0);
	assert_int_equal(it[0].outcome, ESB_RETRY);
	assert_int_equal(it[1].outcome, ESB_RETRY);
	assert_non_null(strstr(it[0].reason, "out of order"));
	/* not a bulk answer at all (a proxy's error page): everything is retried */
	assert_int_equal(esbulk_parse_response(html, strlen(html), ids, 2, it), -EINVAL);
	assert_int_equal(it[0].outcome, ESB_RETRY);
	assert_int_equal(it[1].outcome, ESB_RETRY);
	assert_int_equal(esbulk_parse_response("", 0, ids, 2, it), -EINVAL);
	assert_int_equal(esbulk_parse_response(other_4xx, strlen(other_4xx), ids, 2, it), 0);
	assert_int_equal(it[0].outcome, ESB_REJECT);
	assert_int_equal(it[1].outcome, ESB_RETRY); /* 408: the request timed out */
}

static void test_status_classes(void **state)
{
	assert_true(esbulk_status_retryable(0)); /* no answer */
	assert_true(esbulk_status_retryable(429));
	assert_true(esbulk_status_retryable(500));
	assert_true(esbulk_status_retryable(502));
	assert_true(esbulk_status_retryable(503));
	assert_false(esbulk_status_retryable(400));
	assert_false(esbulk_status_retryable(401));
	assert_false(esbulk_status_retryable(413));
}

static void test_backoff(void **state)
{
	uint64_t prev_max = 0;

	/* attempt n: between half and all of initial * 2^(n-1), capped */
	for (unsigned a = 1; a <= 12; a++) {
		uint64_t full = 1000ull << (a - 1);
		uint64_t lo, hi;

		if (full > 60000)
			full = 60000;
		lo = esbulk_backoff_ms(a, 1000, 60000, 0);
		hi = esbulk_backoff_ms(a, 1000, 60000, UINT32_MAX);
		assert_true(lo >= full / 2 && lo <= full);
		assert_true(hi >= full / 2 && hi <= full);
		for (uint32_t r = 0; r < 5000; r += 7) {
			uint64_t d = esbulk_backoff_ms(a, 1000, 60000, r * 2654435761u);

			assert_true(d >= full - full / 2 && d <= full);
		}
		assert_true(full >= prev_max);
		prev_max = full;
	}
	/* jitter spreads a fleet: not everyone waits the same */
	assert_int_not_equal(esbulk_backoff_ms(5, 1000, 60000, 1),
			     esbulk_backoff_ms(5, 1000, 60000, 7919));
	/* no overflow however long the outage */
	assert_true(esbulk_backoff_ms(4000000000u, 1000, 120000, 12345) <= 120000);
	assert_true(esbulk_backoff_ms(4000000000u, 1000, 120000, 12345) >= 60000);
	/* nonsense limits still give a sane delay */
	assert_true(esbulk_backoff_ms(1, 5000, 100, 0) <= 5000);
	assert_true(esbulk_backoff_ms(1, 0, 0, 0) <= 1);
}

static void test_error_text(void **state)
{
	char buf[256];
	const char *es = "{\"error\":{\"root_cause\":[{\"type\":\"security_exception\",\"reason\":"
			 "\"unable to authenticate user [x]\"}],\"type\":\"security_exception\","
			 "\"reason\":\"unable to authenticate user [x]\"},\"status\":401}";
	const char *nginx = "<html>\r\n<head><title>401 Authorization Required</title></head>";

	esbulk_error_text(es, strlen(es), buf, sizeof(buf));
	assert_string_equal(buf, "security_exception: unable to authenticate user [x]");
	esbulk_error_text(nginx, strlen(nginx), buf, sizeof(buf));
	assert_string_equal(buf, "401 Authorization Required");
	esbulk_error_text("plain\ntext", 10, buf, sizeof(buf));
	assert_string_equal(buf, "plain");
	esbulk_error_text("", 0, buf, sizeof(buf));
	assert_string_equal(buf, "(empty answer)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_names),	 cmocka_unit_test(test_bulk_body),
		cmocka_unit_test(test_gzip_round_trip),	 cmocka_unit_test(test_parse_mixed_results),
		cmocka_unit_test(test_parse_edge_cases), cmocka_unit_test(test_status_classes),
		cmocka_unit_test(test_backoff),		 cmocka_unit_test(test_error_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
