/* SPDX-License-Identifier: GPL-2.0-only */
/* User side of stackstore.bpf.h: stacks stored by content, read by id like
 * a stack-trace map (stack_map_read works on it unchanged). */
#pragma once
#include <stdint.h>

struct bpf_object;

/* Before load: room for max_stacks distinct stacks of depth frames. */
int stackstore_size(struct bpf_object *obj, unsigned max_stacks, unsigned depth);
/* Before a window: forgets every stack and draws a new hash seed. */
int stackstore_reset(struct bpf_object *obj);
