/* SPDX-License-Identifier: GPL-2.0-only */
/* What the symbolizer's sandboxed helper does: tenants' ELF files, debug
 * files, MiniDebugInfo and perf maps turned into symbol tables, and DWARF
 * into source lines (requests and answers: base/symproto.h). Runs in the
 * helper process (base/sandbox.h); never in the agent unless asked for
 * in-process symbolization. Every size is checked before the bytes behind it
 * are read; files are read with pread (a file truncated underneath gives
 * short reads, not SIGBUS). */
#pragma once
#include "base/sandbox.h"

int symparse_elf(void *state, const struct sandbox_request *rq, struct strbuf *reply);
int symparse_perfmap(void *state, const struct sandbox_request *rq, struct strbuf *reply);
void *symparse_lines_new(void);
void symparse_lines_free(void *state);
int symparse_lines(void *state, const struct sandbox_request *rq, struct strbuf *reply);
