// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: what an Elasticsearch cluster (or anything at its
 * address) answers to _bulk, and its error bodies. Every item gets an
 * outcome, texts stay NUL-terminated within their buffers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "storage/esbulk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ids[] = {"ID1", "ID2", "ID3", "0123456789abcdef-incident"};
	struct esbulk_item items[4];
	char text[300];
	size_t n = size ? (data[0] & 3) + 1 : 1;

	memset(items, 0xa5, sizeof(items));
	esbulk_parse_response((const char *)data, size, ids, n, items);
	for (size_t i = 0; i < n; i++) {
		if (items[i].outcome != ESB_OK && items[i].outcome != ESB_RETRY &&
		    items[i].outcome != ESB_REJECT)
			abort();
		if (!memchr(items[i].reason, '\0', sizeof(items[i].reason)))
			abort();
	}
	memset(text, 0xa5, sizeof(text));
	esbulk_error_text((const char *)data, size, text, sizeof(text));
	if (!memchr(text, '\0', sizeof(text)))
		abort();
	return 0;
}
