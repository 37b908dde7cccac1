/* SPDX-License-Identifier: GPL-2.0-only */
/* The symbolizer's requests to the sandboxed helper (base/sandbox.h) and its
 * answers, as plain structs on one machine (the helper is the same binary).
 * The agent treats every answer as hostile too: sizes, offsets and strings
 * are checked before use (base/symbolize.c). */
#pragma once
#include <stdint.h>

/* opcodes 16..31 are kept for stack unwinding (DWARF CFI) */
enum symp_op {
	SYMP_OP_ELF = 1,     /* fds: binary [, debug file candidates] */
	SYMP_OP_PERFMAP = 2, /* fds: /tmp/perf-PID.map */
	SYMP_OP_LINES = 3,   /* fds: the file with DWARF (or none: forget) */
};

#define SYMP_MAX_CAND	   6
#define SYMP_MAX_SEGS	   16
#define SYMP_BUILD_ID_HEX  41
#define SYMP_DEBUGLINK_MAX 256
#define SYMP_SOURCE_MAX	   256
#define SYMP_INLINED	   4
#define SYMP_INLINED_MAX   96

/* One symbol of a table; names in the arena after the symbols. */
struct symp_sym {
	uint64_t addr, size;
	uint32_t name_off;
	uint32_t pad;
};

/* Followed by nsyms symp_sym, then names_len bytes of NUL-terminated names. */
struct symp_table {
	uint32_t nsyms;
	uint32_t names_len;
};

enum symp_cand_kind { SYMP_CAND_BUILD_ID = 1, SYMP_CAND_DEBUGLINK = 2 };

#define SYMP_SEARCHED 1u /* the agent looked for debug files: candidates follow */

struct symp_elf_req {
	uint64_t max_table;	/* bytes a table may take; refused past it */
	uint64_t max_crc_bytes; /* a debuglink candidate larger than this is not checked */
	uint32_t flags;
	uint32_t ncand;
	uint32_t cand_kind[SYMP_MAX_CAND]; /* fds[1 + i] */
};

enum symp_result {
	SYMP_R_TABLE = 1,      /* a table follows (maybe empty) */
	SYMP_R_NEED_DEBUG = 2, /* no .symtab: look for build_id / debuglink, ask again */
	SYMP_R_TOO_BIG = 3,    /* over max_table: refused without reading */
	SYMP_R_NOT_ELF = 4,
};

enum symp_source {
	SYMP_SRC_NONE,
	SYMP_SRC_SYMTAB,
	SYMP_SRC_DEBUG_FILE,
	SYMP_SRC_MINIDEBUGINFO,
	SYMP_SRC_DYNSYM,
};

struct symp_seg {
	uint64_t off, vaddr, filesz;
};

struct symp_elf_reply {
	uint32_t result;
	uint32_t source;
	int32_t dwarf; /* where DWARF is: -1 nowhere, 0 the binary, 1.. fds[dwarf] */
	uint32_t nsegs;
	struct symp_seg segs[SYMP_MAX_SEGS];
	char build_id[SYMP_BUILD_ID_HEX];
	char pad[3];
	uint32_t debuglink_crc;
	char debuglink[SYMP_DEBUGLINK_MAX];
	struct symp_table table; /* SYMP_R_TABLE */
};

struct symp_perfmap_req {
	uint64_t max_table;
	uint64_t max_bytes; /* past it only the newest (last) bytes are read */
	uint32_t max_lines;
	uint32_t max_line_len;
};

struct symp_perfmap_reply {
	uint32_t lines;	    /* symbols read */
	uint32_t bad_lines; /* unparsable or too long, skipped whole */
	uint32_t truncated; /* the file was larger than max_bytes */
	uint32_t too_big;   /* stopped at max_table */
	struct symp_table table;
};

#define SYMP_LINES_FORGET 1u /* close every DWARF file kept open; nothing else */

struct symp_lines_req {
	uint64_t key; /* the agent's name for this file: DWARF is kept open under it */
	uint64_t vaddr;
	uint64_t max_dwarf; /* bytes of DWARF sections the helper may read */
	uint32_t flags;
	uint32_t pad;
};

struct symp_lines_reply {
	char source[SYMP_SOURCE_MAX];
	uint32_t ninlined;
	char inlined[SYMP_INLINED][SYMP_INLINED_MAX];
};
