// SPDX-License-Identifier: GPL-2.0-only
#include "agent/symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/log.h"
#include "agent/util.h"

#define MAX_TRACKED_PROCS 4096
#define MAX_MAPS_PER_PROC 4096

struct ksym {
	uint64_t addr;
	uint32_t name_off;
	uint32_t mod_off; /* 0: vmlinux */
};

/* One symbol table of one binary, sorted by address. */
struct elf_syms {
	dev_t dev;
	ino_t ino;
	char path[256];
	char build_id[41];
	struct usym {
		uint64_t addr, size;
		uint32_t name_off;
	} *syms;
	size_t nsyms;
	char *names;
	size_t names_len;
	/* PT_LOAD segments: file offset -> virtual address */
	struct seg {
		uint64_t off, vaddr, filesz;
	} segs[16];
	unsigned nsegs;
	bool failed; /* could not be read; remembered so we do not retry per frame */
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
	struct proc_maps *next;
};

struct symbolizer {
	struct symbolizer_opts opts;
	char procfs[128];
	struct ksym *ksyms;
	size_t nksyms;
	char *knames;
	bool kloaded;
	struct elf_syms *elves;
	uint64_t elf_bytes;
	uint64_t use_clock;
	struct proc_maps *procs;
	unsigned nprocs;
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

static void elf_syms_free(struct elf_syms *e)
{
	free(e->syms);
	free(e->names);
	free(e);
}

void symbolizer_forget_processes(struct symbolizer *s)
{
	while (s->procs) {
		struct proc_maps *p = s->procs;

		s->procs = p->next;
		free(p->maps);
		free(p);
	}
	s->nprocs = 0;
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
	return s->elf_bytes + s->nksyms * sizeof(struct ksym);
}

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

static int load_kallsyms(struct symbolizer *s)
{
	char path[160], line[512];
	size_t cap = 0, nlen = 0, ncap = 0;
	FILE *f;

	s->kloaded = true;
	snprintf(path, sizeof(path), "%s/kallsyms", s->procfs);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	/* offset 0 of the name arena is "" so mod_off 0 means vmlinux */
	if (arena_add(&s->knames, &nlen, &ncap, "") < 0)
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
		noff = arena_add(&s->knames, &nlen, &ncap, name);
		if (noff < 0)
			goto nomem;
		if (n == 4) {
			moff = arena_add(&s->knames, &nlen, &ncap, mod);
			if (moff < 0)
				goto nomem;
		}
		s->ksyms[s->nksyms++] = (struct ksym){ addr, (uint32_t)noff, (uint32_t)moff };
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

int symbolizer_kernel(struct symbolizer *s, uint64_t addr, struct sym_frame *out)
{
	size_t lo = 0, hi;

	memset(out, 0, sizeof(*out));
	out->addr = addr;
	out->kernel = true;
	snprintf(out->module, sizeof(out->module), "[kernel]");
	if (!s->kloaded)
		load_kallsyms(s);
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
		snprintf(out->module, sizeof(out->module), "[%s]", s->knames + s->ksyms[lo].mod_off);
	return 0;
}

static struct proc_maps *find_proc(struct symbolizer *s, int pid)
{
	for (struct proc_maps *p = s->procs; p; p = p->next)
		if (p->pid == pid)
			return p;
	return NULL;
}

int symbolizer_track(struct symbolizer *s, int pid)
{
	char path[160], line[1024];
	struct proc_maps *p;
	unsigned cap = 0;
	FILE *f;

	if (find_proc(s, pid))
		return 0;
	if (s->nprocs >= MAX_TRACKED_PROCS)
		return -ENOSPC;
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
		struct proc_map *m;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %511[^\n]", &start, &end, perms,
			   &pgoff, &maj, &min, &ino, file) < 7)
			continue;
		if (perms[2] != 'x')
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
		{
			/* leading spaces pad the path column */
			const char *fp = file;

			while (*fp == ' ')
				fp++;
			snprintf(m->path, sizeof(m->path), "%s", fp);
		}
	}
	fclose(f);
	p->next = s->procs;
	s->procs = p;
	s->nprocs++;
	return 0;
}

static int usym_cmp(const void *a, const void *b)
{
	const struct usym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
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

/* Loads FUNC symbols from .symtab, else .dynsym. */
static int elf_load_syms(struct elf_syms *e, int fd)
{
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	Elf_Scn *scn = NULL, *symtab = NULL, *dynsym = NULL;
	size_t cap = 0, ncap = 0, phnum;
	int err = 0;

	if (!elf)
		return -EINVAL;
	if (elf_kind(elf) != ELF_K_ELF) {
		err = -EINVAL;
		goto out;
	}
	read_build_id(elf, e->build_id, sizeof(e->build_id));
	if (elf_getphdrnum(elf, &phnum) == 0) {
		for (size_t i = 0; i < phnum && e->nsegs < ARRAY_SIZE(e->segs); i++) {
			GElf_Phdr ph;

			if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD &&
			    (ph.p_flags & PF_X))
				e->segs[e->nsegs++] = (struct seg){ ph.p_offset, ph.p_vaddr,
								    ph.p_filesz };
		}
	}
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_SYMTAB)
			symtab = scn;
		else if (sh.sh_type == SHT_DYNSYM)
			dynsym = scn;
	}
	for (int pass = 0; pass < 2; pass++) {
		Elf_Scn *use = pass == 0 ? symtab : dynsym;
		GElf_Shdr sh;
		Elf_Data *data;
		size_t count;

		if (!use || !gelf_getshdr(use, &sh) || !(data = elf_getdata(use, NULL)) ||
		    !sh.sh_entsize)
			continue;
		count = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < count; i++) {
			GElf_Sym sym;
			const char *name;
			int64_t off;

			if (!gelf_getsym(data, (int)i, &sym))
				continue;
			if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_value == 0 ||
			    sym.st_shndx == SHN_UNDEF)
				continue;
			name = elf_strptr(elf, sh.sh_link, sym.st_name);
			if (!name || !*name)
				continue;
			if (e->nsyms == cap) {
				size_t c2 = cap ? cap * 2 : 1024;
				struct usym *p = realloc(e->syms, c2 * sizeof(*p));

				if (!p) {
					err = -ENOMEM;
					goto out;
				}
				e->syms = p;
				cap = c2;
			}
			off = arena_add(&e->names, &e->names_len, &ncap, name);
			if (off < 0) {
				err = -ENOMEM;
				goto out;
			}
			e->syms[e->nsyms++] = (struct usym){ sym.st_value, sym.st_size,
							     (uint32_t)off };
		}
		if (e->nsyms)
			break; /* .symtab is a superset of .dynsym */
	}
	if (e->nsyms)
		qsort(e->syms, e->nsyms, sizeof(*e->syms), usym_cmp);
	e->bytes = cap * sizeof(*e->syms) + ncap + sizeof(*e);
out:
	elf_end(elf);
	return err;
}

static struct elf_syms *get_elf(struct symbolizer *s, int pid, const struct proc_map *m)
{
	struct elf_syms *e;
	char path[600];
	int fd;

	for (e = s->elves; e; e = e->next) {
		if (e->dev == m->dev && e->ino == m->ino && strcmp(e->path, m->path) == 0) {
			e->last_use = ++s->use_clock;
			return e;
		}
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->dev = m->dev;
	e->ino = m->ino;
	snprintf(e->path, sizeof(e->path), "%s", m->path);
	e->last_use = ++s->use_clock;
	/* map_files reaches the exact file mapped, even deleted or in another mount namespace */
	snprintf(path, sizeof(path), "%s/%d/map_files/%" PRIx64 "-%" PRIx64, s->procfs, pid,
		 m->start, m->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(path, sizeof(path), "%s/%d/root%s", s->procfs, pid, m->path);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0 || elf_load_syms(e, fd))
		e->failed = true;
	if (fd >= 0)
		close(fd);
	s->elf_bytes += e->bytes;
	e->next = s->elves;
	s->elves = e;
	return e;
}

int symbolizer_user(struct symbolizer *s, int pid, uint64_t addr, struct sym_frame *out)
{
	struct proc_maps *p;
	struct proc_map *m = NULL;
	struct elf_syms *e;
	uint64_t vaddr = 0;
	bool have_vaddr = false;
	size_t lo = 0, hi;

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
		return -ENOENT;
	snprintf(out->module, sizeof(out->module), "%s", m->path);
	out->file_offset = addr - m->start + m->pgoff;
	if (m->path[0] != '/')
		return -ENOENT; /* [vdso], anonymous JIT code, ... */
	e = get_elf(s, pid, m);
	if (!e || e->failed)
		return -ENOENT;
	snprintf(out->build_id, sizeof(out->build_id), "%s", e->build_id);
	for (unsigned i = 0; i < e->nsegs; i++) {
		const struct seg *sg = &e->segs[i];

		if (out->file_offset >= sg->off && out->file_offset < sg->off + sg->filesz) {
			vaddr = out->file_offset - sg->off + sg->vaddr;
			have_vaddr = true;
			break;
		}
	}
	if (!have_vaddr || e->nsyms == 0 || vaddr < e->syms[0].addr)
		return -ENOENT;
	hi = e->nsyms;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (e->syms[mid].addr <= vaddr)
			lo = mid;
		else
			hi = mid;
	}
	/* past the end of a sized symbol: a gap (e.g. stripped local function) */
	if (e->syms[lo].size && vaddr >= e->syms[lo].addr + e->syms[lo].size)
		return -ENOENT;
	snprintf(out->name, sizeof(out->name), "%s", e->names + e->syms[lo].name_off);
	out->offset = vaddr - e->syms[lo].addr;
	return 0;
}
