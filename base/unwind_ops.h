/* SPDX-License-Identifier: GPL-2.0-only */
/* The unwinder as an operation of the sandboxed helper (base/unwproto.h). */
#pragma once
#include "base/sandbox.h"

void *unwind_op_new(void);
void unwind_op_free(void *state);
int unwind_op(void *state, const struct sandbox_request *rq, struct strbuf *reply);
