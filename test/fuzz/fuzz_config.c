// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: the agent's configuration file. Anything is rejected with
 * a diagnostic or accepted within the table's ranges; nothing crashes or leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "fuzzlib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_config *cfg = malloc(sizeof(*cfg));
	struct diag diag = {0};
	char *text = malloc(size + 1);

	if (!text || !cfg)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	config_defaults(cfg);
	if (config_load_string("fuzz.yaml", text, cfg, &diag) == 0) {
		/* what was accepted is within the table's own ranges */
		if (cfg->agent.interval_ms < 100 || cfg->symbolizer.cache_size < (8u << 20) ||
		    !memchr(cfg->agent.rules_dir, '\0', sizeof(cfg->agent.rules_dir)))
			abort();
	} else if (!diag.errors) {
		abort(); /* refused without saying why */
	}
	diag_clear(&diag);
	free(text);
	free(cfg);
	return 0;
}
