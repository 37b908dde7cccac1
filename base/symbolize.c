// SPDX-License-Identifier: GPL-2.0-only
#include "base/symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include "base/log.h"
#include "base/util.h"

#define MAX_TRACKED_PROCS 4096
#define MAX_MAPS_PER_PROC 4096
#define MAX_JIT_SYMS	  (1u << 20)
#define MAX_SYMS	  (1u << 26) /* name offsets are 32-bit; far above any real binary */
#define DEBUG_ROOT	  "/usr/lib/debug"

struct ksym {
	uint64_t addr;
	uint32_t name_off;
	uint32_t mod_off; /* 0: vmlinux */
};

struct usym {
	uint64_t addr, size;
	uint32_t name_off;
};

/* Function symbols sorted by address, names in one arena. */
struct symtab {
	struct usym *syms;
	size_t n, cap;
	char *names;
	size_t names_len, names_cap;
};

/* The symbols of one binary. */
struct elf_syms {
	dev_t dev;
	ino_t ino;
	char path[256];
	char build_id[41];
	struct symtab t;
	/* executable PT_LOAD segments: file offset -> virtual address */
	struct seg {
		uint64_t off, vaddr, filesz;
	} segs[16];
	unsigned nsegs;
	bool failed; /* remembered so a broken binary is not reread per frame */
	/* with opts.lines: the file with this binary's DWARF, opened on first use
	 * and closed after each incident (libdw's caches are not bounded) */
	char *dwarf_path;
	int dwarf_fd;
	Dwarf *dw;
	uint64_t bytes;
	uint64_t last_use;
	struct elf_syms *next;
};

struct proc_map {
	uint64_t start, end, pgoff;
	dev_t dev;
	ino_t ino;
	char path[256];
};

struct proc_maps {
	int pid;
	struct proc_map *maps;
	unsigned n;
	struct symtab jit; /* /tmp/perf-PID.map */
	bool jit_tried;
	char exe[256]; /* /proc/PID/exe when tracked, for naming the program later */
	uint64_t bytes;
	struct proc_maps *next;
};

struct symbolizer {
	struct symbolizer_opts opts;
	char procfs[128];
	struct ksym *ksyms;
	size_t nksyms;
	char *knames;
	size_t knames_cap;
	bool kloaded, kcheck;
	uint32_t modules_crc;
	struct elf_syms *elves;
	uint64_t elf_bytes, proc_bytes;
	uint64_t use_clock;
	struct proc_maps *procs;
	unsigned nprocs;
	struct symbolizer_stats st;
};

int symbolizer_new(struct symbolizer **out, const struct symbolizer_opts *opts)
{
	struct symbolizer *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	snprintf(s->procfs, sizeof(s->procfs), "%s", opts->procfs ? opts->procfs : "/proc");
	elf_version(EV_CURRENT);
	*out = s;
	return 0;
}

static void symtab_free(struct symtab *t)
{
	free(t->syms);
	free(t->names);
	memset(t, 0, sizeof(*t));
}

static uint64_t symtab_bytes(const struct symtab *t)
{
	return t->cap * sizeof(*t->syms) + t->names_cap;
}

static void dwarf_close(struct elf_syms *e)
{
	if (e->dw)
		dwarf_end(e->dw);
	if (e->dwarf_fd > 0)
		close(e->dwarf_fd);
	e->dw = NULL;
	e->dwarf_fd = 0;
}

static void elf_syms_free(struct elf_syms *e)
{
	dwarf_close(e);
	free(e->dwarf_path);
	symtab_free(&e->t);
	free(e);
}

void symbolizer_forget_processes(struct symbolizer *s)
{
	while (s->procs) {
		struct proc_maps *p = s->procs;

		s->procs = p->next;
		symtab_free(&p->jit);
		free(p->maps);
		free(p);
	}
	s->nprocs = 0;
	s->proc_bytes = 0;
	s->kcheck = true;
	for (struct elf_syms *e = s->elves; e; e = e->next)
		dwarf_close(e);
}

void symbolizer_free(struct symbolizer **ps)
{
	struct symbolizer *s = ps ? *ps : NULL;

	if (!s)
		return;
	symbolizer_forget_processes(s);
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
		out->binaries_cached++;
}

json_t *symbolizer_stats_json(const struct symbolizer *s)
{
	struct symbolizer_stats st;

	symbolizer_get_stats(s, &st);
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "cache_bytes",
			 (json_int_t)st.cache_bytes, "cache_cap", (json_int_t)st.cache_cap,
			 "binaries_cached", (json_int_t)st.binaries_cached, "evictions",
			 (json_int_t)st.evictions, "refused_too_big",
			 (json_int_t)st.refused_too_big, "refused_procs",
			 (json_int_t)st.refused_procs, "debug_files", (json_int_t)st.debug_files,
			 "minidebuginfo", (json_int_t)st.minidebuginfo, "jit_maps",
			 (json_int_t)st.jit_maps, "kallsyms_reloads",
			 (json_int_t)st.kallsyms_reloads);
}

json_t *sym_frame_json(const struct sym_frame *f)
{
	json_t *j = json_object();
	char hex[32];

	snprintf(hex, sizeof(hex), "0x%" PRIx64, f->addr);
	json_object_set_new(j, "addr", json_string(hex));
	if (f->name[0]) {
		json_object_set_new(j, "func", json_string(f->name));
		json_object_set_new(j, "offset", json_integer((json_int_t)f->offset));
	}
	if (f->module[0])
		json_object_set_new(j, "module", json_string(f->module));
	if (!f->kernel) {
		if (f->build_id[0])
			json_object_set_new(j, "build_id", json_string(f->build_id));
		snprintf(hex, sizeof(hex), "0x%" PRIx64, f->file_offset);
		if (!f->name[0] && f->module[0])
			json_object_set_new(j, "file_offset", json_string(hex));
	}
	json_object_set_new(j, "kernel", json_boolean(f->kernel));
	if (f->jit)
		json_object_set_new(j, "jit", json_true());
	if (f->source[0])
		json_object_set_new(j, "source", json_string(f->source));
	if (f->ninlined) {
		json_t *arr = json_array();

		for (unsigned i = 0; i < f->ninlined; i++)
			json_array_append_new(arr, json_string(f->inlined[i]));
		json_object_set_new(j, "inlined", arr);
	}
	return j;
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
		size_t ncap = *cap ? *cap * 2 : 65536;
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
	char path[160], line[512];
	size_t cap = 0, nlen = 0;
	FILE *f;

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
	f = fopen(path, "re");
	if (!f)
		return -errno;
	/* offset 0 of the name arena is "" so mod_off 0 means vmlinux */
	if (arena_add(&s->knames, &nlen, &s->knames_cap, "") < 0)
		goto nomem;
	while (fgets(line, sizeof(line), f)) {
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
			size_t ncap2 = cap ? cap * 2 : 65536;
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
	fclose(f);
	if (s->nksyms)
		qsort(s->ksyms, s->nksyms, sizeof(*s->ksyms), ksym_cmp);
	if (s->nksyms == 0)
		log_warn("no kernel symbols readable in %s (kptr_restrict?)", path);
	return 0;
nomem:
	fclose(f);
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
	snprintf(out->name, sizeof(out->name), "%s", s->knames + s->ksyms[lo].name_off);
	out->offset = addr - s->ksyms[lo].addr;
	if (s->ksyms[lo].mod_off)
		snprintf(out->module, sizeof(out->module), "[%s]",
			 s->knames + s->ksyms[lo].mod_off);
	return 0;
}

/* --- symbol tables ------------------------------------------------------ */

static int usym_cmp(const void *a, const void *b)
{
	const struct usym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* at one address prefer the sized symbol */
	return (x->size < y->size) - (x->size > y->size);
}

/* Sorts and drops duplicate addresses (.dynsym + MiniDebugInfo overlap). */
static void symtab_finish(struct symtab *t)
{
	size_t w = 0;

	if (!t->n)
		return;
	qsort(t->syms, t->n, sizeof(*t->syms), usym_cmp);
	for (size_t i = 0; i < t->n; i++)
		if (!w || t->syms[w - 1].addr != t->syms[i].addr)
			t->syms[w++] = t->syms[i];
	t->n = w;
}

static const struct usym *symtab_find(const struct symtab *t, uint64_t addr)
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

static bool is_func(const GElf_Sym *sym)
{
	return GELF_ST_TYPE(sym->st_info) == STT_FUNC && sym->st_value &&
	       sym->st_shndx != SHN_UNDEF;
}

/* One symbol section of one ELF. */
struct symsrc {
	Elf *elf;
	Elf_Scn *scn;
};

/* Counts what the FUNC symbols of src need, without keeping anything. */
static void symsrc_count(const struct symsrc *src, size_t *nsyms, size_t *name_bytes)
{
	GElf_Shdr sh;
	Elf_Data *data;

	if (!src->scn || !gelf_getshdr(src->scn, &sh) || !sh.sh_entsize ||
	    !(data = elf_getdata(src->scn, NULL)))
		return;
	for (size_t i = 0, count = sh.sh_size / sh.sh_entsize; i < count; i++) {
		GElf_Sym sym;
		const char *name;

		if (!gelf_getsym(data, (int)i, &sym) || !is_func(&sym))
			continue;
		name = elf_strptr(src->elf, sh.sh_link, sym.st_name);
		if (!name || !*name)
			continue;
		(*nsyms)++;
		*name_bytes += strlen(name) + 1;
	}
}

static void symsrc_fill(const struct symsrc *src, struct symtab *t)
{
	GElf_Shdr sh;
	Elf_Data *data;

	if (!src->scn || !gelf_getshdr(src->scn, &sh) || !sh.sh_entsize ||
	    !(data = elf_getdata(src->scn, NULL)))
		return;
	for (size_t i = 0, count = sh.sh_size / sh.sh_entsize; i < count && t->n < t->cap; i++) {
		GElf_Sym sym;
		const char *name;
		size_t len;

		if (!gelf_getsym(data, (int)i, &sym) || !is_func(&sym))
			continue;
		name = elf_strptr(src->elf, sh.sh_link, sym.st_name);
		if (!name || !*name)
			continue;
		len = strlen(name) + 1;
		if (t->names_len + len > t->names_cap)
			break;
		memcpy(t->names + t->names_len, name, len);
		t->syms[t->n++] = (struct usym){sym.st_value, sym.st_size, (uint32_t)t->names_len};
		t->names_len += len;
	}
}

/* Drops least recently used tables until `need` more bytes fit under the cap. */
static void make_room(struct symbolizer *s, uint64_t need)
{
	while (s->elves && symbolizer_cache_bytes(s) + need > s->opts.cache_bytes) {
		struct elf_syms **victim = NULL;

		for (struct elf_syms **pe = &s->elves; *pe; pe = &(*pe)->next)
			if (!victim || (*pe)->last_use < (*victim)->last_use)
				victim = pe;
		struct elf_syms *e = *victim;

		*victim = e->next;
		s->elf_bytes -= e->bytes;
		s->st.evictions++;
		elf_syms_free(e);
	}
}

/* Bytes of the symbol and string sections: what counting would read. */
static uint64_t symsrc_file_bytes(const struct symsrc *src)
{
	GElf_Shdr sh, strsh;
	Elf_Scn *str;

	if (!src->scn || !gelf_getshdr(src->scn, &sh))
		return 0;
	str = elf_getscn(src->elf, sh.sh_link);
	return sh.sh_size + (str && gelf_getshdr(str, &strsh) ? strsh.sh_size : 0);
}

/* Reads the FUNC symbols of the sources into t, exactly sized, within the cap. */
static int symtab_load(struct symbolizer *s, struct symtab *t, const struct symsrc *srcs,
		       unsigned nsrcs)
{
	size_t nsyms = 0, name_bytes = 0;
	uint64_t need, file_bytes = 0;

	/* sections larger than the cap are not even read: a huge binary must not
	 * page its symbol table into the agent */
	for (unsigned i = 0; i < nsrcs; i++)
		file_bytes += symsrc_file_bytes(&srcs[i]);
	if (file_bytes > s->opts.cache_bytes) {
		s->st.refused_too_big++;
		return -EFBIG;
	}
	for (unsigned i = 0; i < nsrcs; i++)
		symsrc_count(&srcs[i], &nsyms, &name_bytes);
	if (!nsyms)
		return 0;
	need = nsyms * sizeof(*t->syms) + name_bytes;
	/* a table that alone would pass the cap is refused, not loaded and evicted */
	if (nsyms > MAX_SYMS || name_bytes > UINT32_MAX ||
	    need + s->nksyms * sizeof(struct ksym) + s->knames_cap + s->proc_bytes >
		    s->opts.cache_bytes) {
		s->st.refused_too_big++;
		return -EFBIG;
	}
	make_room(s, need);
	t->syms = malloc(nsyms * sizeof(*t->syms));
	t->names = malloc(name_bytes);
	if (!t->syms || !t->names) {
		symtab_free(t);
		return -ENOMEM;
	}
	t->cap = nsyms;
	t->names_cap = name_bytes;
	for (unsigned i = 0; i < nsrcs; i++)
		symsrc_fill(&srcs[i], t);
	symtab_finish(t);
	return 0;
}

/* --- finding an ELF's symbols ------------------------------------------ */

/* Opens a regular file only: a hostile container may put a FIFO or a device
 * where a debug file is expected. */
static int open_regular(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void read_build_id(Elf *elf, char *out, size_t outlen)
{
	Elf_Scn *scn = NULL;

	out[0] = '\0';
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *data;
		size_t off = 0, name_off, desc_off;
		GElf_Nhdr nh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		while ((off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    memcmp((char *)data->d_buf + name_off, "GNU", 4) == 0) {
				const unsigned char *d = (unsigned char *)data->d_buf + desc_off;
				size_t n = nh.n_descsz;

				if (n * 2 + 1 > outlen)
					n = (outlen - 1) / 2;
				for (size_t i = 0; i < n; i++)
					sprintf(out + 2 * i, "%02x", d[i]);
				return;
			}
		}
	}
}

/* What one ELF offers: its symbol sections and where to look for more. */
struct elf_info {
	Elf_Scn *symtab, *dynsym, *debugdata;
	bool debug_info; /* DWARF for source lines */
	char debuglink[256];
	uint32_t debuglink_crc;
};

static void elf_scan(Elf *elf, struct elf_info *info)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	memset(info, 0, sizeof(*info));
	if (elf_getshdrstrndx(elf, &shstrndx))
		return;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_SYMTAB)
			info->symtab = scn;
		else if (sh.sh_type == SHT_DYNSYM)
			info->dynsym = scn;
		if (sh.sh_type != SHT_PROGBITS || !(name = elf_strptr(elf, shstrndx, sh.sh_name)))
			continue;
		if (strcmp(name, ".debug_info") == 0) {
			info->debug_info = true;
		} else if (strcmp(name, ".gnu_debugdata") == 0) {
			info->debugdata = scn;
		} else if (strcmp(name, ".gnu_debuglink") == 0 && (d = elf_getdata(scn, NULL)) &&
			   d->d_size >= 8 && d->d_size <= sizeof(info->debuglink) + 4) {
			/* file name, NUL, padding to 4, CRC32 of the debug file */
			size_t len = strnlen(d->d_buf, d->d_size - 4);

			if (len && len < sizeof(info->debuglink) && !strchr(d->d_buf, '/')) {
				memcpy(info->debuglink, d->d_buf, len);
				info->debuglink[len] = '\0';
				memcpy(&info->debuglink_crc, (char *)d->d_buf + d->d_size - 4, 4);
			}
		}
	}
}

static uint32_t fd_crc(int fd)
{
	char buf[65536];
	uint32_t crc = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		crc = (uint32_t)crc32(crc, (const Bytef *)buf, (uInt)n);
	lseek(fd, 0, SEEK_SET);
	return crc;
}

/* Tries path in the process's root, then on the host. */
static int open_in_roots(const struct symbolizer *s, int pid, const char *path, bool check_crc,
			 uint32_t crc, char *found, size_t found_len)
{
	char full[PATH_MAX];

	for (int host = 0; host < 2; host++) {
		int fd;

		if (host)
			snprintf(full, sizeof(full), "%s", path);
		else
			snprintf(full, sizeof(full), "%s/%d/root%s", s->procfs, pid, path);
		fd = open_regular(full);
		if (fd < 0)
			continue;
		if (!check_crc || fd_crc(fd) == crc) {
			snprintf(found, found_len, "%s", full);
			return fd;
		}
		close(fd);
	}
	return -1;
}

/* A separate debug file: by build-id, then by .gnu_debuglink (GDB's order). */
static int open_debug_file(const struct symbolizer *s, int pid, const char *bin_path,
			   const char *build_id, const struct elf_info *info, char *found,
			   size_t found_len)
{
	char path[PATH_MAX], dir[PATH_MAX];
	const char *slash;
	int fd;

	if (strlen(build_id) > 2) {
		snprintf(path, sizeof(path), DEBUG_ROOT "/.build-id/%.2s/%s.debug", build_id,
			 build_id + 2);
		if ((fd = open_in_roots(s, pid, path, false, 0, found, found_len)) >= 0)
			return fd;
	}
	if (!info->debuglink[0] || !(slash = strrchr(bin_path, '/')))
		return -1;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - bin_path), bin_path);
	for (int i = 0; i < 3; i++) {
		if (i == 0)
			snprintf(path, sizeof(path), "%s/%s", dir, info->debuglink);
		else if (i == 1)
			snprintf(path, sizeof(path), "%s/.debug/%s", dir, info->debuglink);
		else
			snprintf(path, sizeof(path), DEBUG_ROOT "%s/%s", dir, info->debuglink);
		if (strcmp(path, bin_path) == 0)
			continue;
		if ((fd = open_in_roots(s, pid, path, true, info->debuglink_crc, found,
					found_len)) >= 0)
			return fd;
	}
	return -1;
}

/* .gnu_debugdata: an xz-compressed ELF with the symbols .dynsym lacks. */
static void *unxz_section(Elf_Scn *scn, uint64_t limit, size_t *out_len)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	lzma_stream strm = LZMA_STREAM_INIT;
	size_t cap = 1 << 20;
	uint8_t *buf = NULL;
	lzma_ret r;

	if (!d || !d->d_size || lzma_stream_decoder(&strm, limit, 0) != LZMA_OK)
		return NULL;
	strm.next_in = d->d_buf;
	strm.avail_in = d->d_size;
	do {
		uint8_t *nb = cap <= limit ? realloc(buf, cap) : NULL;

		if (!nb) {
			r = LZMA_MEM_ERROR;
			break;
		}
		buf = nb;
		strm.next_out = buf + strm.total_out;
		strm.avail_out = cap - strm.total_out;
		r = lzma_code(&strm, LZMA_FINISH);
		cap *= 2;
	} while (r == LZMA_OK);
	*out_len = strm.total_out;
	lzma_end(&strm);
	if (r != LZMA_STREAM_END) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void read_segments(Elf *elf, struct elf_syms *e)
{
	size_t phnum;

	if (elf_getphdrnum(elf, &phnum))
		return;
	for (size_t i = 0; i < phnum && e->nsegs < ARRAY_SIZE(e->segs); i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
			e->segs[e->nsegs++] = (struct seg){ph.p_offset, ph.p_vaddr, ph.p_filesz};
	}
}

/* Where this binary's DWARF is, for source lines (opts.lines). */
static void remember_dwarf(const struct symbolizer *s, struct elf_syms *e, const char *path)
{
	if (s->opts.lines && path && path[0] && !e->dwarf_path)
		e->dwarf_path = strdup(path);
}

/* The best symbols for a binary: .symtab, a debug file, MiniDebugInfo + .dynsym,
 * .dynsym. opened: the path elf was opened by (NULL: in memory). */
static int elf_load_syms(struct symbolizer *s, struct elf_syms *e, Elf *elf, int pid,
			 const char *opened)
{
	char dpath[PATH_MAX] = "";
	struct elf_info info, dinfo;
	Elf *delf = NULL, *melf = NULL;
	void *mini = NULL;
	size_t mini_len = 0;
	int dfd = -1, err;

	if (elf_kind(elf) != ELF_K_ELF)
		return -EINVAL;
	read_build_id(elf, e->build_id, sizeof(e->build_id));
	read_segments(elf, e);
	elf_scan(elf, &info);
	if (info.debug_info)
		remember_dwarf(s, e, opened);
	if (info.symtab) {
		struct symsrc src = {elf, info.symtab};

		return symtab_load(s, &e->t, &src, 1);
	}
	if (e->path[0] == '/' &&
	    (dfd = open_debug_file(s, pid, e->path, e->build_id, &info, dpath, sizeof(dpath))) >=
		    0 &&
	    (delf = elf_begin(dfd, ELF_C_READ_MMAP, NULL))) {
		elf_scan(delf, &dinfo);
		if (dinfo.debug_info)
			remember_dwarf(s, e, dpath);
		if (dinfo.symtab) {
			struct symsrc src = {delf, dinfo.symtab};

			err = symtab_load(s, &e->t, &src, 1);
			if (!err)
				s->st.debug_files++;
			goto out;
		}
	}
	if (info.debugdata &&
	    (mini = unxz_section(info.debugdata, s->opts.cache_bytes, &mini_len)) &&
	    (melf = elf_memory(mini, mini_len))) {
		elf_scan(melf, &dinfo);
		if (dinfo.symtab) {
			struct symsrc srcs[2] = {{elf, info.dynsym}, {melf, dinfo.symtab}};

			err = symtab_load(s, &e->t, srcs, 2);
			if (!err)
				s->st.minidebuginfo++;
			goto out;
		}
	}
	{
		struct symsrc src = {elf, info.dynsym};

		err = symtab_load(s, &e->t, &src, 1);
	}
out:
	if (melf)
		elf_end(melf);
	free(mini);
	if (delf)
		elf_end(delf);
	if (dfd >= 0)
		close(dfd);
	return err;
}

static struct elf_syms *cache_find(struct symbolizer *s, dev_t dev, ino_t ino, const char *path)
{
	for (struct elf_syms *e = s->elves; e; e = e->next) {
		if (e->dev == dev && e->ino == ino && strcmp(e->path, path) == 0) {
			e->last_use = ++s->use_clock;
			return e;
		}
	}
	return NULL;
}

static struct elf_syms *cache_add(struct symbolizer *s, struct elf_syms *e)
{
	e->bytes = symtab_bytes(&e->t) + sizeof(*e);
	e->last_use = ++s->use_clock;
	s->elf_bytes += e->bytes;
	e->next = s->elves;
	s->elves = e;
	return e;
}

static struct elf_syms *get_elf(struct symbolizer *s, int pid, const struct proc_map *m)
{
	struct elf_syms *e = cache_find(s, m->dev, m->ino, m->path);
	char path[600];
	Elf *elf = NULL;
	int fd;

	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->dev = m->dev;
	e->ino = m->ino;
	snprintf(e->path, sizeof(e->path), "%s", m->path);
	/* map_files reaches the exact file mapped, even deleted or in another mount namespace */
	snprintf(path, sizeof(path), "%s/%d/map_files/%" PRIx64 "-%" PRIx64, s->procfs, pid,
		 m->start, m->end);
	fd = open_regular(path);
	if (fd < 0) {
		snprintf(path, sizeof(path), "%s/%d/root%s", s->procfs, pid, m->path);
		fd = open_regular(path);
	}
	if (fd >= 0)
		elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_load_syms(s, e, elf, pid, path))
		e->failed = true;
	if (elf)
		elf_end(elf);
	if (fd >= 0)
		close(fd);
	return cache_add(s, e);
}

/* The vDSO is the same image in every process: read the agent's own. */
static struct elf_syms *get_vdso(struct symbolizer *s)
{
	struct elf_syms *e = cache_find(s, 0, 0, "[vdso]");
	unsigned long base = getauxval(AT_SYSINFO_EHDR);
	char line[256];
	size_t len = 0;
	FILE *f;

	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->path, sizeof(e->path), "[vdso]");
	e->failed = true;
	f = fopen("/proc/self/maps", "re");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long start, end;

		if (strstr(line, "[vdso]") && sscanf(line, "%llx-%llx", &start, &end) == 2 &&
		    start == base)
			len = (size_t)(end - start);
	}
	if (f)
		fclose(f);
	if (base && len) {
		char *copy = malloc(len);
		Elf *elf;

		if (copy) {
			memcpy(copy, (const void *)base, len);
			elf = elf_memory(copy, len);
			if (elf) {
				e->failed = elf_load_syms(s, e, elf, 0, NULL) != 0;
				elf_end(elf);
			}
			free(copy);
		}
	}
	return cache_add(s, e);
}

/* --- processes ---------------------------------------------------------- */

static struct proc_maps *find_proc(struct symbolizer *s, int pid)
{
	for (struct proc_maps *p = s->procs; p; p = p->next)
		if (p->pid == pid)
			return p;
	return NULL;
}

/* The pid the process has in its own pid namespace (what names its perf map). */
static int ns_pid(const struct symbolizer *s, int pid)
{
	char path[160], line[256];
	int nspid = pid;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%d/status", s->procfs, pid);
	f = fopen(path, "re");
	if (!f)
		return pid;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "NSpid:", 6) == 0) {
			char *tok = strtok(line + 6, " \t\n");

			while (tok) {
				nspid = atoi(tok);
				tok = strtok(NULL, " \t\n");
			}
			break;
		}
	}
	fclose(f);
	return nspid > 0 ? nspid : pid;
}

/* /tmp/perf-PID.map (JITs: V8, the JVM with perf-map-agent, .NET, LuaJIT...):
 * "START SIZE NAME" per line, hex. Bounded in lines and bytes. */
static void load_perf_map(struct symbolizer *s, struct proc_maps *p)
{
	char path[200], line[1024];
	size_t nlen = 0, ncap = 0, cap = 0;
	struct symtab *t = &p->jit;
	uint64_t before;
	FILE *f;
	int fd;

	p->jit_tried = true;
	snprintf(path, sizeof(path), "%s/%d/root/tmp/perf-%d.map", s->procfs, p->pid,
		 ns_pid(s, p->pid));
	fd = open_regular(path);
	if (fd < 0 || !(f = fdopen(fd, "re"))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	s->st.jit_maps++;
	while (fgets(line, sizeof(line), f) && t->n < MAX_JIT_SYMS) {
		unsigned long long start, size;
		char name[512];
		int64_t off;

		if (sscanf(line, "%llx %llx %511[^\n]", &start, &size, name) != 3)
			continue;
		if (symtab_bytes(t) + s->proc_bytes + s->elf_bytes > s->opts.cache_bytes)
			break;
		if (t->n == cap) {
			size_t c2 = cap ? cap * 2 : 1024;
			struct usym *ns = realloc(t->syms, c2 * sizeof(*ns));

			if (!ns)
				break;
			t->syms = ns;
			cap = c2;
			t->cap = cap;
		}
		off = arena_add(&t->names, &nlen, &ncap, name);
		if (off < 0)
			break;
		t->names_len = nlen;
		t->names_cap = ncap;
		t->syms[t->n++] = (struct usym){start, size, (uint32_t)off};
	}
	fclose(f);
	symtab_finish(t);
	before = p->bytes;
	p->bytes += symtab_bytes(t);
	s->proc_bytes += p->bytes - before;
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

int symbolizer_track(struct symbolizer *s, int pid)
{
	char path[160], line[1024];
	struct proc_maps *p;
	unsigned cap = 0;
	FILE *f;

	if (find_proc(s, pid))
		return 0;
	/* per-process state gets at most a quarter of the cap */
	if (s->nprocs >= MAX_TRACKED_PROCS || s->proc_bytes > s->opts.cache_bytes / 4) {
		s->st.refused_procs++;
		return -ENOSPC;
	}
	snprintf(path, sizeof(path), "%s/%d/maps", s->procfs, pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	p = calloc(1, sizeof(*p));
	if (!p) {
		fclose(f);
		return -ENOMEM;
	}
	p->pid = pid;
	while (fgets(line, sizeof(line), f) && p->n < MAX_MAPS_PER_PROC) {
		unsigned long long start, end, pgoff, ino;
		unsigned maj, min;
		char perms[8], file[512] = "";
		const char *fp = file;
		struct proc_map *m;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %511[^\n]", &start, &end, perms,
			   &pgoff, &maj, &min, &ino, file) < 7)
			continue;
		if (perms[2] != 'x' || end <= start)
			continue;
		if (p->n == cap) {
			unsigned ncap = cap ? cap * 2 : 16;
			struct proc_map *nm = realloc(p->maps, ncap * sizeof(*nm));

			if (!nm)
				break;
			p->maps = nm;
			cap = ncap;
		}
		m = &p->maps[p->n++];
		m->start = start;
		m->end = end;
		m->pgoff = pgoff;
		m->dev = makedev(maj, min);
		m->ino = (ino_t)ino;
		while (*fp == ' ') /* leading spaces pad the path column */
			fp++;
		snprintf(m->path, sizeof(m->path), "%s", fp);
	}
	fclose(f);
	{
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%d/exe", s->procfs, pid);
		n = readlink(path, p->exe, sizeof(p->exe) - 1);
		p->exe[n > 0 ? n : 0] = '\0';
	}
	p->bytes = sizeof(*p) + cap * sizeof(*p->maps);
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

static int resolve_jit(struct symbolizer *s, struct proc_maps *p, uint64_t addr,
		       struct sym_frame *out)
{
	const struct usym *u;

	if (!p->jit_tried)
		load_perf_map(s, p);
	u = symtab_find(&p->jit, addr);
	if (!u)
		return -ENOENT;
	snprintf(out->name, sizeof(out->name), "%s", p->jit.names + u->name_off);
	out->offset = addr - u->addr;
	snprintf(out->module, sizeof(out->module), "[jit]");
	out->jit = true;
	return 0;
}

/* Source line and inlined functions at vaddr, from the binary's DWARF. */
static void resolve_lines(struct elf_syms *e, uint64_t vaddr, struct sym_frame *out)
{
	Dwarf_Die cu, *scopes = NULL;
	Dwarf_Line *line;
	const char *src;
	int lineno = 0, n;

	if (!e->dw) {
		if (e->dwarf_fd < 0)
			return; /* tried in this incident, unreadable */
		e->dwarf_fd = open_regular(e->dwarf_path);
		if (e->dwarf_fd < 0 || !(e->dw = dwarf_begin(e->dwarf_fd, DWARF_C_READ))) {
			dwarf_close(e);
			e->dwarf_fd = -1;
			return;
		}
	}
	if (!dwarf_addrdie(e->dw, vaddr, &cu))
		return;
	line = dwarf_getsrc_die(&cu, vaddr);
	if (line && (src = dwarf_linesrc(line, NULL, NULL)) && dwarf_lineno(line, &lineno) == 0) {
		const char *base = strrchr(src, '/');

		snprintf(out->source, sizeof(out->source), "%s:%d", base ? base + 1 : src, lineno);
	}
	n = dwarf_getscopes(&cu, vaddr, &scopes);
	for (int i = 0; i < n && out->ninlined < ARRAY_SIZE(out->inlined); i++) {
		Dwarf_Attribute attr;
		const char *name;

		if (dwarf_tag(&scopes[i]) != DW_TAG_inlined_subroutine)
			continue;
		name = dwarf_formstring(dwarf_attr_integrate(&scopes[i], DW_AT_name, &attr));
		if (name)
			snprintf(out->inlined[out->ninlined++], sizeof(out->inlined[0]), "%s",
				 name);
	}
	free(scopes);
}

static int resolve_elf(struct elf_syms *e, struct sym_frame *out)
{
	const struct usym *u;
	uint64_t vaddr = 0;
	bool have_vaddr = false;

	if (e->build_id[0])
		snprintf(out->build_id, sizeof(out->build_id), "%s", e->build_id);
	if (e->failed)
		return -ENOENT;
	for (unsigned i = 0; i < e->nsegs; i++) {
		const struct seg *sg = &e->segs[i];

		if (out->file_offset >= sg->off && out->file_offset < sg->off + sg->filesz) {
			vaddr = out->file_offset - sg->off + sg->vaddr;
			have_vaddr = true;
			break;
		}
	}
	if (!have_vaddr || !(u = symtab_find(&e->t, vaddr)))
		return -ENOENT;
	snprintf(out->name, sizeof(out->name), "%s", e->t.names + u->name_off);
	out->offset = vaddr - u->addr;
	if (e->dwarf_path)
		resolve_lines(e, vaddr, out);
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
	snprintf(out->module, sizeof(out->module), "%s", m->path);
	out->file_offset = addr - m->start + m->pgoff;
	if (strcmp(m->path, "[vdso]") == 0)
		e = get_vdso(s);
	else if (m->path[0] == '/')
		e = get_elf(s, pid, m);
	if (e && resolve_elf(e, out) == 0)
		return 0;
	/* anonymous executable memory, or a memfd a JIT writes its code to */
	return resolve_jit(s, p, addr, out) == 0 ? 0 : -ENOENT;
}
