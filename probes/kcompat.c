// SPDX-License-Identifier: GPL-2.0-only
/* The record of kernel fallbacks in use, and the two kernel facilities most
 * fallbacks hinge on. */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "probes/bpfutil.h"
#include "probes/kcompat.h"

struct kcompat_note {
	char who[64];
	char what[384];
};

static struct kcompat_note notes[KCOMPAT_MAX_NOTES];
static unsigned nnotes, notes_dropped;

bool kcompat_has_helper(const struct btf *vmlinux, const char *name)
{
	const struct btf_enum *e;
	const struct btf_type *t;
	char want[64];
	int id;

	if (!vmlinux)
		return false;
	id = btf__find_by_name_kind(vmlinux, "bpf_func_id", BTF_KIND_ENUM);
	t = id > 0 ? btf__type_by_id(vmlinux, id) : NULL;
	if (!t)
		return false;
	snprintf(want, sizeof(want), "BPF_FUNC_%s", name);
	e = btf_enum(t);
	for (unsigned i = 0; i < btf_vlen(t); i++, e++) {
		const char *n = btf__name_by_offset(vmlinux, e->name_off);

		if (n && strcmp(n, want) == 0)
			return true;
	}
	return false;
}

static void note_helper_fallbacks(void);

bool kcompat_task_storage(void)
{
	static int known = -1;

	if (known < 0) {
		known = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_TASK_STORAGE, NULL) == 1;
		/* asked at start-up, before the BPF objects load: the helper
		 * fallbacks are noted now, while parsing the kernel BTF costs no more
		 * than one of those loads, not later at the first `status` */
		note_helper_fallbacks();
	}
	return known == 1;
}

void kcompat_note(const char *who, const char *fmt, ...)
{
	struct kcompat_note n = {0};
	va_list ap;

	snprintf(n.who, sizeof(n.who), "%s", who);
	va_start(ap, fmt);
	vsnprintf(n.what, sizeof(n.what), fmt, ap);
	va_end(ap);
	for (unsigned i = 0; i < nnotes; i++)
		if (strcmp(notes[i].who, n.who) == 0 && strcmp(notes[i].what, n.what) == 0)
			return;
	if (nnotes == KCOMPAT_MAX_NOTES) {
		notes_dropped++;
		return;
	}
	notes[nnotes++] = n;
	log_info("%s: kernel fallback: %s", n.who, n.what);
}

/* Fallbacks the BPF programs take by themselves (HAVE_HELPER in
 * core_fixes.bpf.h): noted once, from the kernel's BTF. */
static void note_helper_fallbacks(void)
{
	static bool done;
	const struct btf *btf;
	bool parsed_here;

	if (done)
		return;
	done = true;
	/* parsed for this alone (first asked by status, after start-up released
	 * it): released again, or the agent would keep megabytes of BTF for good */
	parsed_here = !kernel_btf_parsed();
	btf = kernel_btf();
	if (!btf)
		return; /* no BTF: nothing loads, and `probes` says so */
	if (!kcompat_has_helper(btf, "get_current_task_btf"))
		kcompat_note("iotrace, memtrace, taskwatch, unwind",
			     "the current task read with probe reads: no "
			     "bpf_get_current_task_btf (Linux 5.11+)");
	if (!kcompat_has_helper(btf, "task_pt_regs"))
		kcompat_note("offcpu, iotrace, unwind",
			     "user registers found at the top of the task's kernel stack (x86-64; "
			     "elsewhere offcpu re-walks every stack, iotrace cannot tell direct "
			     "IO's file and DWARF unwinding falls back to frame pointers): no "
			     "bpf_task_pt_regs (Linux 5.15+)");
	if (parsed_here)
		kernel_btf_release();
}

json_t *kcompat_notes_json(void)
{
	json_t *arr = json_array();

	note_helper_fallbacks();

	for (unsigned i = 0; i < nnotes; i++)
		json_array_append_new(arr, json_pack("{s:s,s:s}", "component", notes[i].who,
						     "fallback", notes[i].what));
	if (notes_dropped)
		json_array_append_new(arr,
				      json_pack("{s:s,s:s}", "component", "kcompat", "fallback",
						"more fallbacks in use than kept: see the log"));
	return arr;
}

void kcompat_notes_clear(void)
{
	nnotes = 0;
	notes_dropped = 0;
}
