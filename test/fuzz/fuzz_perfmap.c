// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: a JIT's /tmp/perf-PID.map, as the sandboxed helper reads
 * it, then as the agent takes the answer (every offset checked). The first
 * byte picks the limits, so small caps are exercised too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/sandbox.h"
#include "base/symparse.h"
#include "base/symproto.h"
#include "fuzzlib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct symp_perfmap_req req = {.max_table = 1u << 20,
				       .max_bytes = 1u << 20,
				       .max_lines = 100000,
				       .max_line_len = 4096};
	struct strbuf reply = {.max = sizeof(struct symp_perfmap_reply) + (1u << 20)};
	struct sandbox_request rq = {.op = SYMP_OP_PERFMAP, .data = &req, .len = sizeof(req)};
	int fd;

	if (size && (data[0] & 1)) {
		req.max_bytes = 64 + data[0];
		req.max_line_len = 16 + (data[0] >> 2);
		req.max_table = 256;
		req.max_lines = data[0] & 15;
	}
	fd = fuzz_memfd(data, size);
	rq.fds = &fd;
	rq.nfds = 1;
	if (symparse_perfmap(NULL, &rq, &reply) == 0 && !reply.err) {
		struct symp_perfmap_reply h;
		const struct symp_sym *syms;
		const char *names;

		if (reply.len < sizeof(h))
			abort();
		memcpy(&h, reply.p, sizeof(h));
		if (reply.len !=
		    sizeof(h) + (size_t)h.table.nsyms * sizeof(*syms) + h.table.names_len)
			abort();
		if (h.table.nsyms > req.max_lines)
			abort();
		syms = (const struct symp_sym *)(reply.p + sizeof(h));
		names = (const char *)(syms + h.table.nsyms);
		for (uint32_t i = 0; i < h.table.nsyms; i++)
			if (syms[i].name_off >= h.table.names_len ||
			    !memchr(names + syms[i].name_off, '\0',
				    h.table.names_len - syms[i].name_off))
				abort();
	}
	strbuf_free(&reply);
	close(fd);
	return 0;
}
