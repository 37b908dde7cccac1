// SPDX-License-Identifier: GPL-2.0-only
/* Incident size cap: artifacts first, then capture details; never silent. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "agent/incident.h"
#include "probes/capture.h"

static json_t *doc_with_capture(size_t detail_bytes)
{
	char *big = malloc(detail_bytes + 1);
	json_t *doc;

	memset(big, 'f', detail_bytes);
	big[detail_bytes] = '\0';
	doc = json_pack("{s:{s:s,s:s},s:[{s:s,s:s,s:i,s:s}]}", "incident", "id", "x", "status",
			"complete", "captures", "kind", "profile", "status", "ok", "lost_events", 0,
			"top_stacks", big);
	free(big);
	return doc;
}

static void test_fits_untouched(void **state)
{
	struct capture_artifact arts[1] = {{.name = "a.folded", .data = "x", .len = 1}};
	unsigned n = 1;
	json_t *doc = doc_with_capture(10);
	char *text = incident_serialize_fit(doc, arts, &n, 1 << 20);

	assert_int_equal(n, 1);
	assert_null(strstr(text, "truncated"));
	free(text);
	json_decref(doc);
}

static void test_drops_largest_artifact_first(void **state)
{
	char *small = calloc(1, 1000), *large = calloc(1, 50000);
	struct capture_artifact arts[2] = {{.name = "small.folded", .data = small, .len = 1000},
					   {.name = "large.folded", .data = large, .len = 50000}};
	unsigned n = 2;
	json_t *doc = doc_with_capture(10);
	char *text = incident_serialize_fit(doc, arts, &n, 10000);

	assert_int_equal(n, 1);
	assert_string_equal(arts[0].name, "small.folded");
	assert_non_null(strstr(text, "\"status\":\"truncated\""));
	assert_non_null(strstr(text, "\"dropped\":[\"large.folded\"]"));
	assert_non_null(strstr(text, "max_incident_size"));
	assert_true(strlen(text) + arts[0].len <= 10000);
	free(text);
	json_decref(doc);
	free(small);
	free(large);
}

static void test_drops_capture_details_last(void **state)
{
	unsigned n = 0;
	json_t *doc = doc_with_capture(20000);
	char *text = incident_serialize_fit(doc, NULL, &n, 5000);

	assert_true(strlen(text) <= 5000);
	assert_null(strstr(text, "top_stacks"));
	/* the common capture fields survive */
	assert_non_null(strstr(text, "\"kind\":\"profile\""));
	assert_non_null(strstr(text, "captures.details"));
	free(text);
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fits_untouched),
		cmocka_unit_test(test_drops_largest_artifact_first),
		cmocka_unit_test(test_drops_capture_details_last),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
