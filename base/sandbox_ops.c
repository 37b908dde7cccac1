// SPDX-License-Identifier: GPL-2.0-only
/* What the sandboxed helper serves. An operation that parses tenant input is
 * added here with an opcode of its own, a state if it keeps one between
 * requests, and a handler. */
#include "base/sandbox.h"
#include "base/symparse.h"
#include "base/symproto.h"
#include "base/unwind_ops.h"
#include "base/unwproto.h"

const struct sandbox_op sandbox_ops[] = {
	{SYMP_OP_ELF, "elf", NULL, NULL, symparse_elf},
	{SYMP_OP_PERFMAP, "perfmap", NULL, NULL, symparse_perfmap},
	{SYMP_OP_LINES, "lines", symparse_lines_new, symparse_lines_free, symparse_lines},
	{SYMP_OP_UNWIND, "unwind", unwind_op_new, unwind_op_free, unwind_op},
	{SANDBOX_OP_SELFTEST, "selftest", NULL, NULL, sandbox_selftest},
};

const unsigned sandbox_nops = sizeof(sandbox_ops) / sizeof(sandbox_ops[0]);
