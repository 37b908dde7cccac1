// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: the rule parser must reject anything without crashing or leaking. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "triggers/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct rules_limits lim = {.max_capture_ms = 60000, .max_window_ms = 300000};
	struct ruleset *rs = NULL;
	struct diag diag = {0};
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (ruleset_load_string("fuzz.yaml", text, &lim, &rs, &diag) == 0 && rs) {
		char cond[512];

		/* exercise what the agent does with a parsed rule */
		for (unsigned i = 0; i < rs->n; i++)
			rule_condition_text(&rs->rules[i], cond, sizeof(cond));
	}
	ruleset_free(&rs);
	diag_clear(&diag);
	free(text);
	return 0;
}
