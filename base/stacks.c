// SPDX-License-Identifier: GPL-2.0-only
#include "base/stacks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cgroups.h"
#include "base/consumers.h"
#include "base/strbuf.h"
#include "base/symbolize.h"
#include "base/util.h"
#include "base/sanitize.h"

struct stack_entry {
	uint32_t tgid, pid;
	uint64_t cgroup_id;
	char comm[16];
	uint64_t *frames; /* nk kernel frames then nu user frames, leaf first */
	unsigned nk, nu;
	uint64_t value;
	char *folded; /* rendered frames, root first, without the comm */
};

struct stackset {
	struct stack_entry *entries;
	size_t n, cap, max;
	uint64_t dropped;
};

int stackset_new(struct stackset **out, unsigned max_entries)
{
	struct stackset *ss = calloc(1, sizeof(*ss));

	if (!ss)
		return -ENOMEM;
	ss->max = max_entries;
	*out = ss;
	return 0;
}

void stackset_free(struct stackset **pss)
{
	struct stackset *ss = pss ? *pss : NULL;

	if (!ss)
		return;
	for (size_t i = 0; i < ss->n; i++) {
		free(ss->entries[i].frames);
		free(ss->entries[i].folded);
	}
	free(ss->entries);
	free(ss);
	*pss = NULL;
}

uint64_t stackset_dropped(const struct stackset *ss)
{
	return ss->dropped;
}

size_t stackset_count(const struct stackset *ss)
{
	return ss->n;
}

int stackset_add(struct stackset *ss, const struct stack_sample *s)
{
	struct stack_entry *e;

	if (ss->n >= ss->max) {
		ss->dropped++;
		return -ENOSPC;
	}
	if (ss->n == ss->cap) {
		size_t cap = ss->cap ? ss->cap * 2 : 64;
		struct stack_entry *p = realloc(ss->entries, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		ss->entries = p;
		ss->cap = cap;
	}
	e = &ss->entries[ss->n];
	memset(e, 0, sizeof(*e));
	e->frames = malloc((s->nk + s->nu + 1) * sizeof(uint64_t));
	if (!e->frames)
		return -ENOMEM;
	e->tgid = s->tgid;
	e->pid = s->pid;
	e->cgroup_id = s->cgroup_id;
	/* comm is the task's to choose: cut by the kernel mid-character, holding
	 * escapes or newlines; made valid UTF-8 without control characters, and
	 * ';' and spaces, which the folded format splits on, become '_' */
	str_clean(e->comm, sizeof(e->comm), s->comm ? s->comm : "?",
		  s->comm ? strnlen(s->comm, 16) : 1, STR_INPLACE);
	for (char *c = e->comm; *c; c++)
		if (*c == ';' || *c == ' ')
			*c = '_';
	if (s->nk)
		memcpy(e->frames, s->kstack, s->nk * sizeof(uint64_t));
	if (s->nu)
		memcpy(e->frames + s->nk, s->ustack, s->nu * sizeof(uint64_t));
	e->nk = s->nk;
	e->nu = s->nu;
	e->value = s->value;
	ss->n++;
	return 0;
}

/* Folded names must not contain ';' (frame separator), a newline (line
 * separator) or end in " <n>"; valid UTF-8, cut on a character boundary. */
static void sb_frame_name(struct strbuf *b, const char *name, const char *suffix)
{
	char clean[300];

	str_clean(clean, sizeof(clean), name, strlen(name), STR_INPLACE);
	for (char *c = clean; *c; c++)
		if (*c == ';' || *c == ' ')
			*c = '_';
	strbuf_printf(b, ";%s%s", clean, suffix);
}

static void resolve(const struct stackset_render_opts *o, const struct stack_entry *e, unsigned i,
		    struct sym_frame *f)
{
	if (i < e->nk) {
		symbolizer_kernel(o->sym, e->frames[i], f);
	} else {
		symbolizer_user(o->sym, (int)e->tgid, e->frames[i], f);
	}
}

/* Root-first folded frames for one entry: user outermost ... kernel leaf. */
static char *render_folded(const struct stackset_render_opts *o, const struct stack_entry *e)
{
	struct strbuf b = {0};
	struct sym_frame f;

	for (unsigned j = e->nu; j-- > 0;) {
		resolve(o, e, e->nk + j, &f);
		if (f.name[0]) {
			sb_frame_name(&b, f.name, f.jit ? "_[j]" : "");
		} else if (f.module[0]) {
			const char *base = strrchr(f.module, '/');
			char where[300];

			snprintf(where, sizeof(where), "[%s+0x%" PRIx64 "]",
				 base ? base + 1 : f.module, f.file_offset);
			sb_frame_name(&b, where, "");
		} else {
			strbuf_printf(&b, ";0x%" PRIx64, f.addr);
		}
	}
	for (unsigned j = e->nk; j-- > 0;) {
		resolve(o, e, j, &f);
		if (f.name[0])
			sb_frame_name(&b, f.name, "_[k]");
		else
			strbuf_printf(&b, ";0x%" PRIx64 "_[k]", f.addr);
	}
	return strbuf_take(&b, NULL);
}

static int cmp_value_desc(const void *a, const void *b)
{
	const struct stack_entry *x = a, *y = b;

	return x->value > y->value ? -1 : x->value < y->value;
}

/* group equal (comm, folded) for the folded file */
static int cmp_folded(const void *a, const void *b)
{
	const struct stack_entry *const *x = a, *const *y = b;
	int c = strcmp((*x)->comm, (*y)->comm);

	return c ? c : strcmp((*x)->folded, (*y)->folded);
}

/* group equal (tgid, pid, folded) for the top list */
static int cmp_task_folded(const void *a, const void *b)
{
	const struct stack_entry *x = a, *y = b;

	if (x->tgid != y->tgid)
		return x->tgid < y->tgid ? -1 : 1;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return strcmp(x->folded, y->folded);
}

static json_t *entry_json(const struct stackset_render_opts *o, const struct stack_entry *e,
			  uint64_t total)
{
	json_t *j = json_object(), *frames = json_array();
	struct sym_frame f;

	json_object_set_new(j, "pid", json_integer(e->tgid));
	json_object_set_new(j, "tid", json_integer(e->pid));
	json_object_set_new(j, "comm", json_string_clean(e->comm));
	json_object_set_new(j, o->value_key, json_integer((json_int_t)e->value));
	json_object_set_new(j, "pct",
			    json_real(total ? 100.0 * (double)e->value / (double)total : 0));
	cgroup_json_set(j, o->cgroups, e->cgroup_id);
	for (unsigned i = 0; i < e->nk + e->nu; i++) {
		resolve(o, e, i, &f);
		json_array_append_new(frames, sym_frame_json(&f));
	}
	json_object_set_new(j, "frames", frames);
	return j;
}

int stackset_render(struct stackset *ss, const struct stackset_render_opts *o,
		    struct stackset_render *out)
{
	struct stack_entry **order = NULL;
	struct strbuf b = {0};
	size_t n = ss->n, merged = 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		/* make sure every process is tracked before any frame is resolved */
		symbolizer_track(o->sym, (int)ss->entries[i].tgid);
	}
	for (size_t i = 0; i < n; i++) {
		struct stack_entry *e = &ss->entries[i];

		out->total += e->value;
		if (!e->folded && !(e->folded = render_folded(o, e)))
			return -ENOMEM;
	}

	/* top list: merge equal symbolized stacks of the same thread, largest first */
	if (n)
		qsort(ss->entries, n, sizeof(*ss->entries), cmp_task_folded);
	for (size_t i = 0; i < n; i++) {
		if (merged && cmp_task_folded(&ss->entries[merged - 1], &ss->entries[i]) == 0) {
			ss->entries[merged - 1].value += ss->entries[i].value;
			free(ss->entries[i].frames);
			free(ss->entries[i].folded);
			continue;
		}
		ss->entries[merged++] = ss->entries[i];
	}
	ss->n = n = merged;
	for (size_t i = 0; o->consumers && i < n; i++) {
		struct stack_entry *e = &ss->entries[i];
		char *line = malloc(strlen(e->comm) + strlen(e->folded) + 1);

		if (!line)
			return -ENOMEM;
		sprintf(line, "%s%s", e->comm, e->folded);
		consumers_add(o->consumers, e->tgid, e->pid, e->comm, e->cgroup_id, e->value, 0);
		consumers_add_stack(o->consumers, e->tgid, line, e->value);
		free(line);
	}
	if (n)
		qsort(ss->entries, n, sizeof(*ss->entries), cmp_value_desc);
	out->top = json_array();
	for (size_t i = 0; i < n && i < o->top_n; i++)
		json_array_append_new(out->top, entry_json(o, &ss->entries[i], out->total));

	/* folded text: merge by (comm, frames); entries are value-sorted so the
	 * size cap drops the smallest stacks */
	order = malloc((n ? n : 1) * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		order[i] = &ss->entries[i];
	{
		size_t budget = o->folded_max, keep = 0, used = 0;

		for (keep = 0; keep < n; keep++) {
			/* "comm" "folded" " <value>\n" */
			size_t line =
				strlen(order[keep]->comm) + strlen(order[keep]->folded) +
				(size_t)snprintf(NULL, 0, " %" PRIu64 "\n", order[keep]->value);

			if (used + line > budget)
				break;
			used += line;
		}
		out->folded_dropped = n - keep;
		if (keep)
			qsort(order, keep, sizeof(*order), cmp_folded);
		for (size_t i = 0; i < keep;) {
			uint64_t v = order[i]->value;
			size_t j = i + 1;

			while (j < keep && cmp_folded(&order[i], &order[j]) == 0)
				v += order[j++]->value;
			strbuf_printf(&b, "%s%s %" PRIu64 "\n", order[i]->comm, order[i]->folded,
				      v);
			i = j;
		}
	}
	free(order);
	err = b.err;
	out->folded = strbuf_take(&b, &out->folded_len);
	if (!out->folded) {
		stackset_render_clear(out);
		return err ? err : -ENOMEM;
	}
	return 0;
}

void stackset_render_clear(struct stackset_render *r)
{
	json_decref(r->top);
	free(r->folded);
	memset(r, 0, sizeof(*r));
}

json_t *stack_frames_json(struct symbolizer *sym, int tgid, const uint64_t *kframes, unsigned nk,
			  const uint64_t *uframes, unsigned nu)
{
	json_t *arr = json_array();
	struct sym_frame f;

	for (unsigned i = 0; i < nk; i++) {
		memset(&f, 0, sizeof(f));
		f.addr = kframes[i];
		f.kernel = true;
		if (sym)
			symbolizer_kernel(sym, kframes[i], &f);
		json_array_append_new(arr, sym_frame_json(&f));
	}
	for (unsigned i = 0; i < nu; i++) {
		memset(&f, 0, sizeof(f));
		f.addr = uframes[i];
		if (sym)
			symbolizer_user(sym, tgid, uframes[i], &f);
		json_array_append_new(arr, sym_frame_json(&f));
	}
	return arr;
}

void stack_frame_text(struct symbolizer *sym, int tgid, uint64_t addr, bool kernel, char *buf,
		      size_t len)
{
	struct sym_frame f;

	memset(&f, 0, sizeof(f));
	f.addr = addr;
	if (sym) {
		if (kernel)
			symbolizer_kernel(sym, addr, &f);
		else
			symbolizer_user(sym, tgid, addr, &f);
	}
	if (f.name[0]) {
		snprintf(buf, len, "%s", f.name);
	} else if (f.module[0] && !kernel) {
		const char *base = strrchr(f.module, '/');

		snprintf(buf, len, "%s+0x%" PRIx64, base ? base + 1 : f.module, f.file_offset);
	} else {
		snprintf(buf, len, "0x%" PRIx64, addr);
	}
}
