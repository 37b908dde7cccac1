// SPDX-License-Identifier: GPL-2.0-only
#include "base/symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include "base/lines.h"
#include "base/log.h"
#include "base/safeopen.h"
#include "base/sandbox.h"
#include "base/sanitize.h"
#include "base/symproto.h"
#include "base/util.h"

#define MAX_TRACKED_PROCS 4096
#define MAX_MAPS_PER_PROC 4096
#define MAX_PENDING_LOADS 64 /* binaries queued for the helper, each holding descriptors */
#define MAX_JIT_SYMS	  (1u << 20)
#define MAX_MAPS_LINE	  (PATH_MAX + 256)
#define MAX_KSYM_LINE	  1024
#define DEBUG_FILE_MAX	  (8ull << 30)	/* larger "debug files" are not passed on */
#define CRC_MAX		  (1ull << 30)	/* debuglink candidates whose CRC is checked */
#define PERF_MAP_MAX	  (64ull << 20) /* past it, the newest 64 MiB are read */
#define PERF_LINE_MAX	  4096
#define DEBUG_ROOT	  "/usr/lib/debug"

struct ksym {
	uint64_t addr;
	uint32_t name_off;
	uint32_t mod_off; /* 0: vmlinux */
};

/* Function symbols sorted by address: a helper's answer, adopted whole. */
struct symtab {
	void *block; /* owns syms and names */
	struct symp_sym *syms;
	size_t n;
	const char *names;
	size_t names_len;
	uint64_t bytes;
};

enum load_state {
	L_QUEUED,    /* asked of the helper */
	L_READY,     /* answered (the table may be empty) */
	L_FAILED,    /* the helper failed on it: why says how */
	L_CANCELLED, /* the helper was stopped first: dropped, asked again next time */
};

/* How to open again a file whose DWARF gives source lines. */
enum where { W_NONE, W_PROC_PATH, W_ROOT, W_HOST };

struct elf_syms {
	struct symbolizer *s;
	dev_t dev;
	ino_t ino;
	char *path; /* as the process maps it */
	char build_id[SYMP_BUILD_ID_HEX];
	struct symtab t;
	struct symp_seg segs[SYMP_MAX_SEGS];
	unsigned nsegs;
	enum load_state state;
	const char *why; /* L_FAILED */
	bool waiting;	 /* a request is out; its id in req */
	bool searched;	 /* debug files were looked for: the second round */
	unsigned pinned; /* a lookup is using it: not evicted */
	int64_t req;
	int fd;	 /* the binary until it is read: the debug-file round needs it again */
	int pid; /* whose root the debug files are looked up in */
	/* candidates sent with the debug-file round, for where DWARF was found */
	struct {
		enum where w;
		char *path;
	} cand[SYMP_MAX_CAND];
	unsigned ncand;
	/* symbolizer.lines: where this binary's DWARF is; the file is opened
	 * on first use in an incident and closed after it */
	enum where dwarf_where;
	char *dwarf_path;
	int dwarf_pid;
	int dwarf_fd; /* 0: not tried in this incident, -1: unreadable */
	uint64_t key;
	uint64_t bytes;
	uint64_t last_use;
	struct elf_syms *next;
};

struct proc_map {
	uint64_t start, end, pgoff;
	dev_t dev;
	ino_t ino;
	char *path;
};

enum jit_state { J_NONE, J_QUEUED, J_READY };

struct proc_maps {
	struct symbolizer *s;
	int pid;
	struct proc_map *maps;
	unsigned n;
	struct symtab jit; /* /tmp/perf-PID.map */
	enum jit_state jit_state;
	bool jit_waiting;
	int64_t jit_req;
	char exe[256]; /* /proc/PID/exe when tracked, for naming the program later */
	uint64_t bytes;
	struct proc_maps *next;
};

struct symbolizer {
	struct symbolizer_opts opts;
	char procfs[128];
	struct sandbox *sb;
	struct ksym *ksyms;
	size_t nksyms;
	char *knames;
	size_t knames_cap;
	bool kloaded, kcheck;
	uint32_t modules_crc;
	struct elf_syms *elves;
	unsigned pending;
	uint64_t elf_bytes, proc_bytes;
	uint64_t use_clock;
	struct proc_maps *procs;
	unsigned nprocs;
	uint64_t waited_ms; /* since the last forget, against opts.max_wait_ms */
	struct symbolizer_stats st;
};

static void symtab_free(struct symtab *t)
{
	free(t->block);
	memset(t, 0, sizeof(*t));
}

int symbolizer_new(struct symbolizer **out, const struct symbolizer_opts *opts)
{
	struct symbolizer *s = calloc(1, sizeof(*s));
	struct sandbox_opts so = {0};
	int err;

	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	snprintf(s->procfs, sizeof(s->procfs), "%s", opts->procfs ? opts->procfs : "/proc");
	so.loop = opts->loop;
	so.exe = opts->helper_exe;
	so.user = opts->helper_user;
	so.timeout_ms = opts->helper_timeout_ms;
	/* the largest table, the sections it is read from, and slack for the
	 * libraries' own allocations */
	so.mem_bytes = opts->cache_bytes * 2 + (128ull << 20);
	so.in_process = opts->in_process;
	err = sandbox_new(&s->sb, &so);
	if (err) {
		free(s);
		return err;
	}
	s->opts.helper_exe = NULL;
	s->opts.helper_user = NULL;
	*out = s;
	return 0;
}

static void dwarf_close(struct elf_syms *e)
{
	if (e->dwarf_fd > 0)
		close(e->dwarf_fd);
	e->dwarf_fd = 0;
}

static void elf_syms_free(struct elf_syms *e)
{
	dwarf_close(e);
	if (e->fd >= 0)
		close(e->fd);
	for (unsigned i = 0; i < e->ncand; i++)
		free(e->cand[i].path);
	free(e->dwarf_path);
	free(e->path);
	symtab_free(&e->t);
	free(e);
}

static void procs_free(struct symbolizer *s)
{
	while (s->procs) {
		struct proc_maps *p = s->procs;

		s->procs = p->next;
		symtab_free(&p->jit);
		for (unsigned i = 0; i < p->n; i++)
			free(p->maps[i].path);
		free(p->maps);
		free(p);
	}
	s->nprocs = 0;
	s->proc_bytes = 0;
}

/* Tables the stopped helper never read are forgotten, to be asked again. */
static void drop_cancelled(struct symbolizer *s)
{
	for (struct elf_syms **pe = &s->elves; *pe;) {
		struct elf_syms *e = *pe;

		if (e->state == L_CANCELLED) {
			*pe = e->next;
			s->elf_bytes -= e->bytes;
			elf_syms_free(e);
		} else {
			pe = &e->next;
		}
	}
}

void symbolizer_forget_processes(struct symbolizer *s)
{
	/* callbacks of requests still queued run now, while what they name lives */
	sandbox_stop(s->sb);
	drop_cancelled(s);
	procs_free(s);
	s->kcheck = true;
	s->waited_ms = 0;
	for (struct elf_syms *e = s->elves; e; e = e->next)
		dwarf_close(e);
}

void symbolizer_free(struct symbolizer **ps)
{
	struct symbolizer *s = ps ? *ps : NULL;

	if (!s)
		return;
	sandbox_free(&s->sb);
	procs_free(s);
	while (s->elves) {
		struct elf_syms *e = s->elves;

		s->elves = e->next;
		elf_syms_free(e);
	}
	free(s->ksyms);
	free(s->knames);
	free(s);
	*ps = NULL;
}

struct sandbox *symbolizer_sandbox(struct symbolizer *s)
{
	return s->opts.in_process ? NULL : s->sb;
}

uint64_t symbolizer_cache_bytes(const struct symbolizer *s)
{
	return s->elf_bytes + s->proc_bytes + s->nksyms * sizeof(struct ksym) + s->knames_cap;
}

void symbolizer_get_stats(const struct symbolizer *s, struct symbolizer_stats *out)
{
	*out = s->st;
	out->cache_bytes = symbolizer_cache_bytes(s);
	out->cache_cap = s->opts.cache_bytes;
	out->binaries_cached = 0;
	for (const struct elf_syms *e = s->elves; e; e = e->next)
		out->binaries_cached += e->state == L_READY;
}

json_t *symbolizer_stats_json(const struct symbolizer *s)
{
	struct symbolizer_stats st;
	json_t *j;

	symbolizer_get_stats(s, &st);
	j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "cache_bytes",
		      (json_int_t)st.cache_bytes, "cache_cap", (json_int_t)st.cache_cap,
		      "binaries_cached", (json_int_t)st.binaries_cached, "evictions",
		      (json_int_t)st.evictions, "refused_too_big", (json_int_t)st.refused_too_big,
		      "refused_procs", (json_int_t)st.refused_procs, "debug_files",
		      (json_int_t)st.debug_files, "minidebuginfo", (json_int_t)st.minidebuginfo,
		      "jit_maps", (json_int_t)st.jit_maps, "kallsyms_reloads",
		      (json_int_t)st.kallsyms_reloads);
	if (!j)
		return NULL;
	json_object_update_new(j, json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "helper_failed",
					    (json_int_t)st.helper_failed, "frames_failed",
					    (json_int_t)st.frames_failed, "frames_pending",
					    (json_int_t)st.frames_pending, "loads_deferred",
					    (json_int_t)st.loads_deferred, "perf_maps_refused",
					    (json_int_t)st.perf_maps_refused, "perf_map_bad_lines",
					    (json_int_t)st.perf_map_bad_lines, "maps_lines_dropped",
					    (json_int_t)st.maps_lines_dropped));
	json_object_set_new(j, "helper", sandbox_stats_json(s->sb));
	return j;
}

json_t *sym_frame_json(const struct sym_frame *f)
{
	json_t *j = json_object();
	char hex[32];

	snprintf(hex, sizeof(hex), "0x%" PRIx64, f->addr);
	json_object_set_new(j, "addr", json_string(hex));
	if (f->name[0]) {
		json_object_set_new(j, "func", json_string_clean(f->name));
		json_object_set_new(j, "offset", json_integer((json_int_t)f->offset));
	}
	if (f->module[0])
		json_object_set_new(j, "module", json_string_clean(f->module));
	if (!f->kernel) {
		if (f->build_id[0])
			json_object_set_new(j, "build_id", json_string_clean(f->build_id));
		snprintf(hex, sizeof(hex), "0x%" PRIx64, f->file_offset);
		if (!f->name[0] && f->module[0])
			json_object_set_new(j, "file_offset", json_string(hex));
		if (!f->name[0] && f->unresolved)
			json_object_set_new(j, "unresolved", json_string(f->unresolved));
	}
	json_object_set_new(j, "kernel", json_boolean(f->kernel));
	if (f->jit)
		json_object_set_new(j, "jit", json_true());
	if (f->source[0])
		json_object_set_new(j, "source", json_string_clean(f->source));
	if (f->ninlined) {
		json_t *arr = json_array();

		for (unsigned i = 0; i < f->ninlined; i++)
			json_array_append_new(arr, json_string_clean(f->inlined[i]));
		json_object_set_new(j, "inlined", arr);
	}
	return j;
}

/* Frame strings: valid UTF-8 without control characters, cut on a
 * character boundary. */
static void frame_str(char *dst, size_t cap, const char *src)
{
	size_t n = 0;

	/* printable ASCII, nearly every name: nothing to clean, nothing to cut
	 * mid-character */
	while (src[n] && n < cap - 1 && (unsigned char)src[n] >= 0x20 &&
	       (unsigned char)src[n] < 0x7f)
		n++;
	if (!src[n] || n == cap - 1) {
		memcpy(dst, src, n);
		dst[n] = '\0';
		return;
	}
	str_clean(dst, cap, src, strlen(src), STR_INPLACE);
}

/* --- kernel ------------------------------------------------------------- */

static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Appends str to a growable arena; returns its offset or -1. */
static int64_t arena_add(char **arena, size_t *len, size_t *cap, const char *str)
{
	size_t n = strlen(str) + 1;

	if (*len + n > *cap) {
		size_t ncap = *cap ? *cap * 2 : 4096;
		char *p;

		while (ncap < *len + n)
			ncap *= 2;
		if (ncap > UINT32_MAX)
			return -1;
		p = realloc(*arena, ncap);
		if (!p)
			return -1;
		*arena = p;
		*cap = ncap;
	}
	memcpy(*arena + *len, str, n);
	*len += n;
	return (int64_t)(*len - n);
}

/* CRC of a small procfs file (modules): changes when a module comes or goes. */
static uint32_t file_crc(const char *path)
{
	char buf[8192];
	uint32_t crc = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		crc = (uint32_t)crc32(crc, (const Bytef *)buf, (uInt)n);
	close(fd);
	return crc;
}

static int load_kallsyms(struct symbolizer *s)
{
	char path[160], *line;
	size_t cap = 0, nlen = 0, len;
	struct linereader *lr = NULL;
	int err;

	free(s->ksyms);
	free(s->knames);
	s->ksyms = NULL;
	s->knames = NULL;
	s->nksyms = 0;
	s->knames_cap = 0;
	s->kloaded = true;
	snprintf(path, sizeof(path), "%s/modules", s->procfs);
	s->modules_crc = file_crc(path);
	snprintf(path, sizeof(path), "%s/kallsyms", s->procfs);
	if ((err = linereader_open(&lr, path, MAX_KSYM_LINE)))
		return err;
	/* offset 0 of the name arena is "" so mod_off 0 means vmlinux */
	if (arena_add(&s->knames, &nlen, &s->knames_cap, "") < 0)
		goto nomem;
	while (linereader_next(lr, &line, &len) > 0) {
		char name[256], mod[128] = "", type;
		unsigned long long addr;
		int64_t noff, moff = 0;
		int n;

		n = sscanf(line, "%llx %c %255s [%127[^]]]", &addr, &type, name, mod);
		if (n < 3 || addr == 0)
			continue;
		if (type != 't' && type != 'T' && type != 'w' && type != 'W')
			continue;
		if (s->nksyms == cap) {
			/* a kernel's ~150k text symbols: a few doublings, once */
			size_t ncap2 = cap ? cap * 2 : 4096;
			struct ksym *p = realloc(s->ksyms, ncap2 * sizeof(*p));

			if (!p)
				goto nomem;
			s->ksyms = p;
			cap = ncap2;
		}
		noff = arena_add(&s->knames, &nlen, &s->knames_cap, name);
		if (noff < 0)
			goto nomem;
		if (n == 4) {
			moff = arena_add(&s->knames, &nlen, &s->knames_cap, mod);
			if (moff < 0)
				goto nomem;
		}
		s->ksyms[s->nksyms++] = (struct ksym){addr, (uint32_t)noff, (uint32_t)moff};
	}
	linereader_free(&lr);
	if (s->nksyms)
		qsort(s->ksyms, s->nksyms, sizeof(*s->ksyms), ksym_cmp);
	if (s->nksyms == 0)
		log_warn("no kernel symbols readable in %s (kptr_restrict?)", path);
	return 0;
nomem:
	linereader_free(&lr);
	return -ENOMEM;
}

/* Once per incident: modules loaded or unloaded since move kernel symbols. */
static void kernel_refresh(struct symbolizer *s)
{
	char path[160];

	if (!s->kloaded) {
		load_kallsyms(s);
		return;
	}
	if (!s->kcheck)
		return;
	s->kcheck = false;
	snprintf(path, sizeof(path), "%s/modules", s->procfs);
	if (file_crc(path) != s->modules_crc) {
		s->st.kallsyms_reloads++;
		log_info("kernel modules changed: reloading kernel symbols");
		load_kallsyms(s);
	}
}

int symbolizer_kernel(struct symbolizer *s, uint64_t addr, struct sym_frame *out)
{
	size_t lo = 0, hi;

	memset(out, 0, sizeof(*out));
	out->addr = addr;
	out->kernel = true;
	snprintf(out->module, sizeof(out->module), "[kernel]");
	kernel_refresh(s);
	hi = s->nksyms;
	if (hi == 0 || addr < s->ksyms[0].addr)
		return -ENOENT;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (s->ksyms[mid].addr <= addr)
			lo = mid;
		else
			hi = mid;
	}
	frame_str(out->name, sizeof(out->name), s->knames + s->ksyms[lo].name_off);
	out->offset = addr - s->ksyms[lo].addr;
	if (s->ksyms[lo].mod_off)
		snprintf(out->module, sizeof(out->module), "[%.250s]",
			 s->knames + s->ksyms[lo].mod_off);
	return 0;
}

/* --- symbol tables from the helper ------------------------------------- */

static int usym_cmp(const void *a, const void *b)
{
	const struct symp_sym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* at one address prefer the sized symbol */
	return (x->size < y->size) - (x->size > y->size);
}

/* Takes a table out of an answer: block[off..] holds hdr->nsyms symbols and
 * hdr->names_len bytes of names, ending the block. Nothing in it is trusted:
 * counts must add up, every name offset must land in the arena, names are
 * cleaned of control characters and invalid UTF-8, and the symbols are
 * sorted here. */
static int symtab_adopt(struct symtab *t, void *block, size_t len, size_t off,
			const struct symp_table *hdr)
{
	uint64_t need = (uint64_t)hdr->nsyms * sizeof(struct symp_sym) + hdr->names_len;
	struct symp_sym *syms = (struct symp_sym *)((char *)block + off);
	char *names = (char *)(syms + hdr->nsyms);
	size_t w = 0;

	if (off > len || need != len - off || (hdr->nsyms && !hdr->names_len) ||
	    (hdr->names_len && names[hdr->names_len - 1] != '\0'))
		return -EPROTO;
	for (size_t i = 0; i < hdr->nsyms; i++)
		if (syms[i].name_off >= hdr->names_len)
			return -EPROTO;
	str_clean_inplace(names, hdr->names_len);
	if (hdr->nsyms) {
		qsort(syms, hdr->nsyms, sizeof(*syms), usym_cmp);
		/* one symbol per address (.dynsym and MiniDebugInfo overlap) */
		for (size_t i = 0; i < hdr->nsyms; i++)
			if (!w || syms[w - 1].addr != syms[i].addr)
				syms[w++] = syms[i];
	}
	t->block = block;
	t->syms = syms;
	t->n = w;
	t->names = names;
	t->names_len = hdr->names_len;
	t->bytes = len;
	return 0;
}

static const struct symp_sym *symtab_find(const struct symtab *t, uint64_t addr)
{
	size_t lo = 0, hi = t->n;

	if (!hi || addr < t->syms[0].addr)
		return NULL;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (t->syms[mid].addr <= addr)
			lo = mid;
		else
			hi = mid;
	}
	/* past the end of a sized symbol: a gap (e.g. a stripped local function) */
	if (t->syms[lo].size && addr >= t->syms[lo].addr + t->syms[lo].size)
		return NULL;
	return &t->syms[lo];
}

/* Drops least recently used tables until `need` more bytes fit under the cap. */
static void make_room(struct symbolizer *s, uint64_t need)
{
	while (symbolizer_cache_bytes(s) + need > s->opts.cache_bytes) {
		struct elf_syms **victim = NULL;

		for (struct elf_syms **pe = &s->elves; *pe; pe = &(*pe)->next)
			if ((*pe)->state != L_QUEUED && !(*pe)->pinned &&
			    (!victim || (*pe)->last_use < (*victim)->last_use))
				victim = pe;
		if (!victim)
			return;
		struct elf_syms *e = *victim;

		*victim = e->next;
		s->elf_bytes -= e->bytes;
		s->st.evictions++;
		elf_syms_free(e);
	}
}

/* Room a new binary's table may take: the cap less what is not evictable. */
static uint64_t table_room(const struct symbolizer *s)
{
	uint64_t fixed = s->nksyms * sizeof(struct ksym) + s->knames_cap + s->proc_bytes;

	return s->opts.cache_bytes > fixed ? s->opts.cache_bytes - fixed : 0;
}

/* --- reading binaries, through the helper ------------------------------ */

static void load_done(struct elf_syms *e, enum load_state state, const char *why)
{
	struct symbolizer *s = e->s;

	if (e->state == L_QUEUED && s->pending)
		s->pending--;
	e->state = state;
	e->why = why;
	if (e->fd >= 0) {
		close(e->fd);
		e->fd = -1;
	}
	for (unsigned i = 0; i < e->ncand; i++) {
		/* the one DWARF was found in keeps its path (dwarf_path) */
		free(e->cand[i].path);
		e->cand[i].path = NULL;
	}
	e->ncand = 0;
}

static const char *fail_reason(enum sandbox_fail f)
{
	switch (f) {
	case SANDBOX_CRASHED:
		return "helper crashed";
	case SANDBOX_TIMEOUT:
		return "helper timeout";
	case SANDBOX_LIMIT:
		return "helper limit";
	case SANDBOX_UNAVAILABLE:
		return "helper unavailable";
	default:
		return "helper failed";
	}
}

static void elf_answer(void *ctx, struct sandbox_reply *r);

static void send_elf(struct elf_syms *e, uint32_t flags, int *cand_fds, const uint32_t *kinds,
		     unsigned ncand)
{
	struct symbolizer *s = e->s;
	struct symp_elf_req req = {.max_table = table_room(s),
				   .max_crc_bytes = CRC_MAX,
				   .flags = flags,
				   .ncand = ncand};
	int fds[1 + SYMP_MAX_CAND];
	int64_t id;

	fds[0] = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
	for (unsigned i = 0; i < ncand; i++) {
		fds[1 + i] = cand_fds[i];
		req.cand_kind[i] = kinds[i];
	}
	if (fds[0] < 0) {
		for (unsigned i = 0; i < ncand; i++)
			close(cand_fds[i]);
		load_done(e, L_FAILED, "descriptors exhausted");
		return;
	}
	e->waiting = true;
	id = sandbox_call(s->sb, SYMP_OP_ELF, &req, sizeof(req), fds, 1 + ncand,
			  sizeof(struct symp_elf_reply) + req.max_table, elf_answer, e);
	if (id < 0) {
		e->waiting = false;
		s->st.loads_deferred++;
		load_done(e, L_CANCELLED, NULL);
	} else if (e->waiting) {
		e->req = id; /* not answered yet (in-process answers come at once) */
	}
}

/* Debug file candidates, GDB's order: build-id, then .gnu_debuglink next to
 * the binary, in its .debug/, and under /usr/lib/debug; each in the
 * process's root. The host's /usr/lib/debug is tried too, for build-id (the
 * name is the content's hash) and the debuglink's /usr/lib/debug place. */
static void search_debug_files(struct elf_syms *e, const struct symp_elf_reply *rep)
{
	struct symbolizer *s = e->s;
	char path[PATH_MAX + 64], dir[PATH_MAX];
	int fds[SYMP_MAX_CAND];
	uint32_t kinds[SYMP_MAX_CAND];
	unsigned n = 0;
	const char *slash;

	if (strlen(rep->build_id) > 2) {
		snprintf(path, sizeof(path), DEBUG_ROOT "/.build-id/%.2s/%s.debug", rep->build_id,
			 rep->build_id + 2);
		for (int host = 0; host < 2 && n < SYMP_MAX_CAND; host++) {
			int fd = host ? open_regular(path, DEBUG_FILE_MAX, NULL)
				      : open_in_proc_root(s->procfs, e->pid, path, DEBUG_FILE_MAX,
							  NULL);

			if (fd < 0)
				continue;
			e->cand[e->ncand].w = host ? W_HOST : W_ROOT;
			e->cand[e->ncand++].path = strdup(path);
			kinds[n] = SYMP_CAND_BUILD_ID;
			fds[n++] = fd;
		}
	}
	if (rep->debuglink[0] && e->path[0] == '/' && (slash = strrchr(e->path, '/'))) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - e->path), e->path);
		for (int i = 0; i < 4 && n < SYMP_MAX_CAND; i++) {
			bool host = i == 3;
			int fd;

			if (i == 0)
				snprintf(path, sizeof(path), "%s/%s", dir, rep->debuglink);
			else if (i == 1)
				snprintf(path, sizeof(path), "%s/.debug/%s", dir, rep->debuglink);
			else
				snprintf(path, sizeof(path), DEBUG_ROOT "%s/%s", dir,
					 rep->debuglink);
			if (strcmp(path, e->path) == 0)
				continue;
			fd = host ? open_regular(path, DEBUG_FILE_MAX, NULL)
				  : open_in_proc_root(s->procfs, e->pid, path, DEBUG_FILE_MAX,
						      NULL);
			if (fd < 0)
				continue;
			e->cand[e->ncand].w = host ? W_HOST : W_ROOT;
			e->cand[e->ncand++].path = strdup(path);
			kinds[n] = SYMP_CAND_DEBUGLINK;
			fds[n++] = fd;
		}
	}
	send_elf(e, SYMP_SEARCHED, fds, kinds, n);
}

static bool hex_string(const char *s, size_t cap)
{
	size_t len = strnlen(s, cap);

	if (len == cap)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void elf_answer(void *ctx, struct sandbox_reply *r)
{
	struct elf_syms *e = ctx;
	struct symbolizer *s = e->s;
	struct symp_elf_reply rep;
	e->waiting = false;
	e->req = 0;
	if (r->fail == SANDBOX_CANCELLED) {
		load_done(e, L_CANCELLED, NULL);
		return;
	}
	if (r->fail != SANDBOX_OK) {
		s->st.helper_failed++;
		log_warn("symbolizer: %s reading %.200s (pid %d): its frames stay unresolved",
			 fail_reason(r->fail), e->path, e->pid);
		load_done(e, L_FAILED, fail_reason(r->fail));
		return;
	}
	if (r->status == -ENOMEM) {
		s->st.helper_failed++;
		load_done(e, L_FAILED, "helper limit");
		return;
	}
	if (r->status || r->len < sizeof(rep)) {
		load_done(e, L_READY, NULL);
		return;
	}
	memcpy(&rep, r->data, sizeof(rep));
	if (!hex_string(rep.build_id, sizeof(rep.build_id)) ||
	    strnlen(rep.debuglink, sizeof(rep.debuglink)) == sizeof(rep.debuglink) ||
	    memchr(rep.debuglink, '/', strlen(rep.debuglink)) || rep.nsegs > SYMP_MAX_SEGS) {
		s->st.helper_failed++;
		load_done(e, L_FAILED, "helper answer invalid");
		return;
	}
	snprintf(e->build_id, sizeof(e->build_id), "%s", rep.build_id);
	e->nsegs = rep.nsegs;
	memcpy(e->segs, rep.segs, sizeof(rep.segs[0]) * rep.nsegs);
	if (rep.result == SYMP_R_NEED_DEBUG && !e->searched) {
		e->searched = true;
		search_debug_files(e, &rep);
		return;
	}
	if (s->opts.lines && rep.dwarf >= 0 && !e->dwarf_where) {
		if (rep.dwarf == 0) {
			e->dwarf_where = e->path[0] == '/' ? W_PROC_PATH : W_NONE;
		} else if ((unsigned)rep.dwarf <= e->ncand && e->cand[rep.dwarf - 1].path) {
			e->dwarf_where = e->cand[rep.dwarf - 1].w;
			e->dwarf_path = e->cand[rep.dwarf - 1].path;
			e->cand[rep.dwarf - 1].path = NULL;
		}
		e->dwarf_pid = e->pid;
	}
	if (rep.result == SYMP_R_TOO_BIG) {
		s->st.refused_too_big++;
		load_done(e, L_READY, NULL);
		return;
	}
	if (rep.result == SYMP_R_TABLE && rep.table.nsyms) {
		uint64_t before = e->bytes;

		/* room for the whole answer; a table that still cannot fit is refused */
		make_room(s, r->len);
		if (symbolizer_cache_bytes(s) + r->len > s->opts.cache_bytes) {
			s->st.refused_too_big++;
		} else if (symtab_adopt(&e->t, r->data, r->len, sizeof(rep), &rep.table) == 0) {
			r->data = NULL; /* the table's now */
			e->bytes += e->t.bytes;
			s->elf_bytes += e->bytes - before;
			if (rep.source == SYMP_SRC_DEBUG_FILE)
				s->st.debug_files++;
			else if (rep.source == SYMP_SRC_MINIDEBUGINFO)
				s->st.minidebuginfo++;
		} else {
			s->st.helper_failed++;
			load_done(e, L_FAILED, "helper answer invalid");
			return;
		}
	}
	load_done(e, L_READY, NULL);
}

static struct elf_syms *cache_find(struct symbolizer *s, dev_t dev, ino_t ino, const char *path)
{
	for (struct elf_syms **pe = &s->elves; *pe; pe = &(*pe)->next) {
		struct elf_syms *e = *pe;

		if (e->dev != dev || e->ino != ino || strcmp(e->path, path))
			continue;
		if (e->state == L_CANCELLED && !e->pinned) {
			/* never read (queue full, helper stopped): asked again */
			*pe = e->next;
			s->elf_bytes -= e->bytes;
			elf_syms_free(e);
			return NULL;
		}
		e->last_use = ++s->use_clock;
		return e;
	}
	return NULL;
}

static struct elf_syms *cache_new(struct symbolizer *s, dev_t dev, ino_t ino, const char *path,
				  int pid)
{
	struct elf_syms *e = calloc(1, sizeof(*e));

	if (!e || !(e->path = strdup(path))) {
		free(e);
		return NULL;
	}
	e->s = s;
	e->dev = dev;
	e->ino = ino;
	e->fd = -1;
	e->pid = pid;
	e->key = ++s->use_clock;
	e->last_use = e->key;
	e->bytes = sizeof(*e) + strlen(path) + 1;
	e->state = L_QUEUED;
	s->elf_bytes += e->bytes;
	s->pending++;
	e->next = s->elves;
	s->elves = e;
	return e;
}

/* The symbols of the binary behind m: cached, or asked of the helper now
 * (the descriptor is opened while the process is alive). NULL when too many
 * are pending already: asked again at the next lookup. */
static struct elf_syms *get_elf(struct symbolizer *s, int pid, const struct proc_map *m)
{
	struct elf_syms *e = cache_find(s, m->dev, m->ino, m->path);
	char path[200];
	int fd;

	if (e)
		return e;
	if (s->pending >= MAX_PENDING_LOADS) {
		s->st.loads_deferred++;
		return NULL;
	}
	/* map_files reaches the exact file mapped, even deleted or in another
	 * mount namespace; the process's root is the fallback */
	snprintf(path, sizeof(path), "%s/%d/map_files/%" PRIx64 "-%" PRIx64, s->procfs, pid,
		 m->start, m->end);
	fd = open_regular(path, 0, NULL);
	if (fd < 0)
		fd = open_in_proc_root(s->procfs, pid, m->path, 0, NULL);
	e = cache_new(s, m->dev, m->ino, m->path, pid);
	if (!e) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (fd < 0) {
		load_done(e, L_READY, NULL); /* unreadable: frames keep module + offset */
		return e;
	}
	e->fd = fd;
	send_elf(e, 0, NULL, NULL, 0);
	return e;
}

/* The vDSO is the same image in every process: the agent's own, copied into
 * a memfd for the helper. */
static struct elf_syms *get_vdso(struct symbolizer *s)
{
	struct elf_syms *e = cache_find(s, 0, 0, "[vdso]");
	unsigned long base = getauxval(AT_SYSINFO_EHDR);
	struct linereader *lr = NULL;
	size_t len = 0, llen;
	char *line;
	int fd;

	if (e)
		return e;
	e = cache_new(s, 0, 0, "[vdso]", 0);
	if (!e)
		return NULL;
	if (linereader_open(&lr, "/proc/self/maps", MAX_MAPS_LINE) == 0) {
		while (linereader_next(lr, &line, &llen) > 0) {
			unsigned long long start, end;

			if (strstr(line, "[vdso]") &&
			    sscanf(line, "%llx-%llx", &start, &end) == 2 && start == base)
				len = (size_t)(end - start);
		}
		linereader_free(&lr);
	}
	fd = base && len ? memfd_create("vdso", MFD_CLOEXEC) : -1;
	if (fd < 0 || write(fd, (const void *)base, len) != (ssize_t)len) {
		if (fd >= 0)
			close(fd);
		load_done(e, L_READY, NULL);
		return e;
	}
	e->fd = fd;
	e->searched = true;
	send_elf(e, SYMP_SEARCHED, NULL, NULL, 0);
	return e;
}

/* --- processes ---------------------------------------------------------- */

static struct proc_maps *find_proc(struct symbolizer *s, int pid)
{
	for (struct proc_maps *p = s->procs; p; p = p->next)
		if (p->pid == pid)
			return p;
	return NULL;
}

/* From /proc/PID/status: the pid the process has in its own pid namespace
 * (what names its perf map) and its real and effective uid. */
static int proc_status(const struct symbolizer *s, int pid, int *nspid, long *ruid, long *euid)
{
	char path[160], *line;
	struct linereader *lr = NULL;
	size_t len;
	int err;

	*nspid = pid;
	*ruid = *euid = -1;
	snprintf(path, sizeof(path), "%s/%d/status", s->procfs, pid);
	if ((err = linereader_open(&lr, path, 4096)))
		return err;
	while (linereader_next(lr, &line, &len) > 0) {
		if (strncmp(line, "NSpid:", 6) == 0) {
			char *save = NULL, *tok = strtok_r(line + 6, " \t", &save);

			while (tok) {
				*nspid = atoi(tok);
				tok = strtok_r(NULL, " \t", &save);
			}
		} else if (strncmp(line, "Uid:", 4) == 0) {
			if (sscanf(line + 4, "%ld %ld", ruid, euid) != 2)
				*ruid = *euid = -1;
		}
	}
	linereader_free(&lr);
	if (*nspid <= 0)
		*nspid = pid;
	return 0;
}

static void jit_answer(void *ctx, struct sandbox_reply *r)
{
	struct proc_maps *p = ctx;
	struct symbolizer *s = p->s;
	struct symp_perfmap_reply rep;

	p->jit_waiting = false;
	p->jit_req = 0;
	p->jit_state = J_READY;
	if (r->fail != SANDBOX_OK || r->status || r->len < sizeof(rep)) {
		if (r->fail != SANDBOX_OK && r->fail != SANDBOX_CANCELLED)
			s->st.helper_failed++;
		if (r->fail == SANDBOX_CANCELLED)
			p->jit_state = J_NONE;
		return;
	}
	memcpy(&rep, r->data, sizeof(rep));
	s->st.perf_map_bad_lines += rep.bad_lines;
	if (!rep.table.nsyms || rep.table.nsyms > MAX_JIT_SYMS)
		return;
	if (s->proc_bytes + r->len > s->opts.cache_bytes / 4) {
		s->st.refused_too_big++;
		return;
	}
	if (symtab_adopt(&p->jit, r->data, r->len, sizeof(rep), &rep.table) == 0) {
		r->data = NULL;
		p->bytes += p->jit.bytes;
		s->proc_bytes += p->jit.bytes;
	} else {
		s->st.helper_failed++;
	}
}

/* /tmp/perf-PID.map (JITs: V8, the JVM with perf-map-agent, .NET, LuaJIT...),
 * in the process's root, used only when the process's own user owns it (as
 * perf requires): a symlink to someone else's file is refused. */
static void load_perf_map(struct symbolizer *s, struct proc_maps *p)
{
	struct symp_perfmap_req req = {.max_bytes = PERF_MAP_MAX,
				       .max_lines = MAX_JIT_SYMS,
				       .max_line_len = PERF_LINE_MAX};
	char rel[64];
	struct stat st;
	long ruid, euid;
	int nspid, fd;
	int64_t id;

	if (p->jit_state != J_NONE)
		return;
	p->jit_state = J_READY; /* unless asked below */
	if (proc_status(s, p->pid, &nspid, &ruid, &euid))
		return;
	snprintf(rel, sizeof(rel), "/tmp/perf-%d.map", nspid);
	fd = open_in_proc_root(s->procfs, p->pid, rel, 0, &st);
	if (fd == -ENOENT)
		return;
	if (fd < 0 || ((long)st.st_uid != euid && (long)st.st_uid != ruid)) {
		if (fd >= 0)
			close(fd);
		s->st.perf_maps_refused++;
		return;
	}
	s->st.jit_maps++;
	req.max_table = s->opts.cache_bytes / 4 > s->proc_bytes
				? s->opts.cache_bytes / 4 - s->proc_bytes
				: 0;
	p->jit_state = J_QUEUED;
	p->jit_waiting = true;
	id = sandbox_call(s->sb, SYMP_OP_PERFMAP, &req, sizeof(req), &fd, 1,
			  sizeof(struct symp_perfmap_reply) + req.max_table, jit_answer, p);
	if (id < 0) {
		p->jit_waiting = false;
		p->jit_state = J_NONE;
	} else if (p->jit_waiting) {
		p->jit_req = id;
	}
}

static bool anonymous_code(const struct proc_map *m)
{
	return m->path[0] != '/' && strcmp(m->path, "[vdso]") && strcmp(m->path, "[vsyscall]");
}

/* Reads what pid's frames will need while it is alive. */
static void preload(struct symbolizer *s, struct proc_maps *p)
{
	bool anon = false;

	for (unsigned i = 0; i < p->n; i++) {
		const struct proc_map *m = &p->maps[i];

		if (m->path[0] == '/')
			get_elf(s, p->pid, m);
		else
			anon |= anonymous_code(m);
	}
	if (anon)
		load_perf_map(s, p);
}

/* One line of /proc/PID/maps: "START-END PERMS PGOFF MAJ:MIN INODE   PATH".
 * The path is everything after the inode's padding, spaces included. */
static bool parse_maps_line(char *line, struct proc_map *m, char *perms, const char **path)
{
	unsigned long long start, end, pgoff, ino;
	unsigned maj, min;
	int pos = 0;

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu%n", &start, &end, perms, &pgoff, &maj, &min,
		   &ino, &pos) < 7 ||
	    end <= start)
		return false;
	*path = line + pos;
	while (**path == ' ')
		(*path)++;
	m->start = start;
	m->end = end;
	m->pgoff = pgoff;
	m->dev = makedev(maj, min);
	m->ino = (ino_t)ino;
	return true;
}

int symbolizer_track(struct symbolizer *s, int pid)
{
	char path[160], *line;
	struct linereader *lr = NULL;
	struct proc_maps *p;
	unsigned cap = 0;
	size_t len, path_bytes = 0;
	int err;

	if (find_proc(s, pid))
		return 0;
	/* per-process state gets at most a quarter of the cap */
	if (s->nprocs >= MAX_TRACKED_PROCS || s->proc_bytes > s->opts.cache_bytes / 4) {
		s->st.refused_procs++;
		return -ENOSPC;
	}
	snprintf(path, sizeof(path), "%s/%d/maps", s->procfs, pid);
	if ((err = linereader_open(&lr, path, MAX_MAPS_LINE)))
		return err;
	p = calloc(1, sizeof(*p));
	if (!p) {
		linereader_free(&lr);
		return -ENOMEM;
	}
	p->s = s;
	p->pid = pid;
	while (p->n < MAX_MAPS_PER_PROC && linereader_next(lr, &line, &len) > 0) {
		struct proc_map m = {0};
		const char *file;
		char perms[8];

		if (!parse_maps_line(line, &m, perms, &file) || strlen(perms) < 3 ||
		    perms[2] != 'x')
			continue;
		if (p->n == cap) {
			unsigned ncap = cap ? cap * 2 : 16;
			struct proc_map *nm = realloc(p->maps, ncap * sizeof(*nm));

			if (!nm)
				break;
			p->maps = nm;
			cap = ncap;
		}
		m.path = strdup(file);
		if (!m.path)
			break;
		path_bytes += strlen(file) + 1;
		p->maps[p->n++] = m;
	}
	s->st.maps_lines_dropped += linereader_dropped(lr);
	linereader_free(&lr);
	{
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%d/exe", s->procfs, pid);
		n = readlink(path, p->exe, sizeof(p->exe) - 1);
		p->exe[n > 0 ? n : 0] = '\0';
	}
	p->bytes = sizeof(*p) + cap * sizeof(*p->maps) + path_bytes;
	s->proc_bytes += p->bytes;
	p->next = s->procs;
	s->procs = p;
	s->nprocs++;
	preload(s, p);
	return 0;
}

int symbolizer_exe(struct symbolizer *s, int pid, char *buf, size_t len)
{
	struct proc_maps *p = find_proc(s, pid);

	if (!p || !p->exe[0])
		return -ENOENT;
	snprintf(buf, len, "%s", p->exe);
	return 0;
}

/* Waits for a request a frame needs, within what lookups may still block. */
static void wait_for(struct symbolizer *s, int64_t id)
{
	uint64_t left = 86400000, t0; /* no budget: each request's deadline bounds it */

	if (s->opts.max_wait_ms)
		left = s->opts.max_wait_ms > s->waited_ms ? s->opts.max_wait_ms - s->waited_ms : 0;
	if (!left || id <= 0)
		return;
	t0 = now_mono_ns();
	sandbox_wait(s->sb, id, left);
	s->waited_ms += (now_mono_ns() - t0) / 1000000;
}

static int resolve_jit(struct symbolizer *s, struct proc_maps *p, uint64_t addr,
		       struct sym_frame *out)
{
	const struct symp_sym *u;

	if (p->jit_state == J_NONE)
		load_perf_map(s, p);
	if (p->jit_state == J_QUEUED)
		wait_for(s, p->jit_req);
	u = symtab_find(&p->jit, addr);
	if (!u)
		return -ENOENT;
	frame_str(out->name, sizeof(out->name), p->jit.names + u->name_off);
	out->offset = addr - u->addr;
	snprintf(out->module, sizeof(out->module), "[jit]");
	out->jit = true;
	out->unresolved = NULL;
	return 0;
}

static void lines_answer(void *ctx, struct sandbox_reply *r)
{
	struct sym_frame *out = ctx;
	struct symp_lines_reply rep;

	if (r->fail != SANDBOX_OK || r->status || r->len != sizeof(rep))
		return;
	memcpy(&rep, r->data, sizeof(rep));
	rep.source[sizeof(rep.source) - 1] = '\0';
	frame_str(out->source, sizeof(out->source), rep.source);
	for (unsigned i = 0; i < rep.ninlined && i < SYMP_INLINED; i++) {
		rep.inlined[i][SYMP_INLINED_MAX - 1] = '\0';
		frame_str(out->inlined[out->ninlined++], sizeof(out->inlined[0]), rep.inlined[i]);
	}
}

/* Source line and inlined functions at vaddr, from the binary's DWARF. */
static void resolve_lines(struct symbolizer *s, struct elf_syms *e, const struct proc_map *m,
			  int pid, uint64_t vaddr, struct sym_frame *out)
{
	struct symp_lines_req req = {.key = e->key, .vaddr = vaddr, .max_dwarf = CRC_MAX};
	int fd;
	int64_t id;

	if (e->dwarf_fd < 0 || e->dwarf_where == W_NONE)
		return; /* tried in this incident, unreadable */
	if (!e->dwarf_fd) {
		char path[200];

		if (e->dwarf_where == W_PROC_PATH && m) {
			snprintf(path, sizeof(path), "%s/%d/map_files/%" PRIx64 "-%" PRIx64,
				 s->procfs, pid, m->start, m->end);
			fd = open_regular(path, 0, NULL);
			if (fd < 0)
				fd = open_in_proc_root(s->procfs, pid, e->path, 0, NULL);
		} else if (e->dwarf_where == W_ROOT) {
			fd = open_in_proc_root(s->procfs, e->dwarf_pid, e->dwarf_path, 0, NULL);
		} else if (e->dwarf_where == W_HOST) {
			fd = open_regular(e->dwarf_path, 0, NULL);
		} else {
			fd = -1;
		}
		e->dwarf_fd = fd < 0 ? -1 : fd;
		if (fd < 0)
			return;
	}
	fd = fcntl(e->dwarf_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return;
	id = sandbox_call(s->sb, SYMP_OP_LINES, &req, sizeof(req), &fd, 1,
			  sizeof(struct symp_lines_reply), lines_answer, out);
	if (id > 0 && sandbox_pending(s->sb, id)) {
		wait_for(s, id);
		/* too slow: the answer must not land in a frame that is gone */
		sandbox_cancel(s->sb, id);
	}
}

static int resolve_elf(struct symbolizer *s, struct elf_syms *e, const struct proc_map *m, int pid,
		       struct sym_frame *out)
{
	const struct symp_sym *u;
	uint64_t vaddr = 0;
	bool have_vaddr = false;

	/* two rounds at most: the binary, then its debug files */
	for (int round = 0; round < 3 && e->state == L_QUEUED && e->req > 0; round++)
		wait_for(s, e->req);
	if (e->build_id[0])
		snprintf(out->build_id, sizeof(out->build_id), "%s", e->build_id);
	if (e->state == L_QUEUED) {
		s->st.frames_pending++;
		out->unresolved = "pending";
		return -EAGAIN;
	}
	if (e->state == L_FAILED) {
		s->st.frames_failed++;
		out->unresolved = e->why;
		return -ENOENT;
	}
	for (unsigned i = 0; i < e->nsegs; i++) {
		const struct symp_seg *sg = &e->segs[i];

		if (out->file_offset >= sg->off && out->file_offset - sg->off < sg->filesz) {
			vaddr = out->file_offset - sg->off + sg->vaddr;
			have_vaddr = true;
			break;
		}
	}
	if (!have_vaddr || !(u = symtab_find(&e->t, vaddr)))
		return -ENOENT;
	frame_str(out->name, sizeof(out->name), e->t.names + u->name_off);
	out->offset = vaddr - u->addr;
	if (s->opts.lines && e->dwarf_where)
		resolve_lines(s, e, m, pid, vaddr, out);
	return 0;
}

int symbolizer_user(struct symbolizer *s, int pid, uint64_t addr, struct sym_frame *out)
{
	struct proc_maps *p;
	struct proc_map *m = NULL;
	struct elf_syms *e = NULL;

	memset(out, 0, sizeof(*out));
	out->addr = addr;
	p = find_proc(s, pid);
	if (!p && symbolizer_track(s, pid) == 0)
		p = find_proc(s, pid);
	if (!p)
		return -ESRCH;
	for (unsigned i = 0; i < p->n; i++) {
		if (addr >= p->maps[i].start && addr < p->maps[i].end) {
			m = &p->maps[i];
			break;
		}
	}
	if (!m)
		return resolve_jit(s, p, addr, out);
	frame_str(out->module, sizeof(out->module), m->path);
	out->file_offset = addr - m->start + m->pgoff;
	if (strcmp(m->path, "[vdso]") == 0)
		e = get_vdso(s);
	else if (m->path[0] == '/')
		e = get_elf(s, pid, m);
	if (e) {
		int err;

		e->pinned++;
		err = resolve_elf(s, e, m, pid, out);
		e->pinned--;
		if (!err)
			return 0;
	}
	/* anonymous executable memory, or a memfd a JIT writes its code to */
	return resolve_jit(s, p, addr, out) == 0 ? 0 : -ENOENT;
}
