/* SPDX-License-Identifier: GPL-2.0-only */
/* Kernel compatibility: what the oldest supported kernels lack, and the
 * fallbacks the probes take there (docs/compatibility.md). A loader notes the
 * fallback it chose, so that `autotrace probes` and `status` can name every
 * one in use. */
#pragma once
#include <jansson.h>
#include <stdbool.h>

struct btf;

#define KCOMPAT_MAX_NOTES 16

/* Does the kernel (its BTF) know BPF helper BPF_FUNC_<name>? The BPF side's
 * HAVE_HELPER() asks the same question at load time. */
bool kcompat_has_helper(const struct btf *vmlinux, const char *name);
/* Can this kernel create BPF task-local storage (Linux 5.11+)? Probed once. */
bool kcompat_task_storage(void);

/* Notes that `who` (a watcher or capture kind) runs on a fallback. A note
 * already made is not repeated; past KCOMPAT_MAX_NOTES they are counted only.
 * The probes load from the main thread: no locking. */
void kcompat_note(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* [{"component": who, "fallback": what}, ...] in the order noted. */
json_t *kcompat_notes_json(void);
/* Forgets every note (tests). */
void kcompat_notes_clear(void);
