// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: a tenant's binary, as the sandboxed helper parses it
 * (libelf, libdw for source lines, liblzma for MiniDebugInfo): first as the
 * binary, then as its own debug-file candidate, then for source lines. The
 * answers must hold together: sizes, offsets, NUL-terminated strings. The
 * last byte of e_ident (padding, ignored by ELF readers; the first byte is
 * the ELF magic) picks the table cap, so refusals are exercised too, and
 * the kind of debug-file candidate. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/sandbox.h"
#include "base/symparse.h"
#include "base/symproto.h"
#include "base/util.h"
#include "fuzzlib.h"

/* Checks a reply; keeps a few symbols' addresses for the lines round. */
static void check_elf_reply(const struct strbuf *reply, uint64_t max_table, uint64_t *addrs,
			    unsigned naddrs)
{
	struct symp_elf_reply r;
	const struct symp_sym *syms;
	const char *names;

	if (reply->len < sizeof(r))
		abort();
	memcpy(&r, reply->p, sizeof(r));
	if (r.nsegs > SYMP_MAX_SEGS || !memchr(r.build_id, '\0', sizeof(r.build_id)) ||
	    !memchr(r.debuglink, '\0', sizeof(r.debuglink)))
		abort();
	if (r.result != SYMP_R_TABLE) {
		if (reply->len != sizeof(r))
			abort();
		return;
	}
	if (reply->len != sizeof(r) + (size_t)r.table.nsyms * sizeof(*syms) + r.table.names_len ||
	    reply->len - sizeof(r) > max_table)
		abort();
	syms = (const struct symp_sym *)(reply->p + sizeof(r));
	names = (const char *)(syms + r.table.nsyms);
	for (uint32_t i = 0; i < r.table.nsyms; i++)
		if (syms[i].name_off >= r.table.names_len ||
		    !memchr(names + syms[i].name_off, '\0', r.table.names_len - syms[i].name_off))
			abort();
	/* up to naddrs symbols' addresses, spread over the table */
	for (unsigned i = 0; i < naddrs && r.table.nsyms; i++) {
		uint64_t at = (uint64_t)(r.table.nsyms - 1) * i / (naddrs - 1);

		addrs[i] = syms[at].addr;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t pick = size > 15 ? data[15] : 0;
	uint64_t max_table = pick & 1 ? 512 : 16u << 20;
	struct symp_elf_req req = {.max_table = max_table, .max_crc_bytes = 1u << 20};
	struct strbuf reply = {.max = sizeof(struct symp_elf_reply) + max_table};
	struct sandbox_request rq = {.op = SYMP_OP_ELF, .data = &req, .len = sizeof(req)};
	uint64_t vaddrs[11] = {0, 0x1000, 0x2000};
	int fds[2];
	void *lines;

	fds[0] = fuzz_memfd(data, size);
	fds[1] = dup(fds[0]); /* the same bytes: the parser only preads */
	if (fds[1] < 0)
		abort();
	rq.fds = fds;
	rq.nfds = 1;
	if (symparse_elf(NULL, &rq, &reply) == 0 && !reply.err)
		check_elf_reply(&reply, max_table, vaddrs + 3, 8);
	/* the debug-file round: the same bytes as a build-id or a debuglink
	 * candidate (whose CRC is then checked) */
	strbuf_free(&reply);
	reply.max = sizeof(struct symp_elf_reply) + max_table;
	req.flags = SYMP_SEARCHED;
	req.ncand = 1;
	req.cand_kind[0] = pick & 2 ? SYMP_CAND_DEBUGLINK : SYMP_CAND_BUILD_ID;
	rq.nfds = 2;
	if (symparse_elf(NULL, &rq, &reply) == 0 && !reply.err)
		check_elf_reply(&reply, max_table, NULL, 0);
	strbuf_free(&reply);
	/* source lines at a few addresses, up to eight symbols' among them */
	lines = symparse_lines_new();
	for (unsigned i = 0; i < ARRAY_SIZE(vaddrs); i++) {
		struct symp_lines_req lq = {.key = 1, .vaddr = vaddrs[i], .max_dwarf = 1u << 20};
		struct sandbox_request lrq = {
			.op = SYMP_OP_LINES, .data = &lq, .len = sizeof(lq), .fds = fds, .nfds = 1};
		struct strbuf lr = {.max = sizeof(struct symp_lines_reply)};

		if (symparse_lines(lines, &lrq, &lr) == 0 && !lr.err) {
			struct symp_lines_reply l;

			memcpy(&l, lr.p, sizeof(l));
			if (l.ninlined > SYMP_INLINED || !memchr(l.source, '\0', sizeof(l.source)))
				abort();
		}
		strbuf_free(&lr);
	}
	symparse_lines_free(lines);
	close(fds[0]);
	close(fds[1]);
	return 0;
}
