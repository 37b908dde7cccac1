// SPDX-License-Identifier: GPL-2.0-only
#include "base/symparse.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/symproto.h"
#include "base/util.h"

#define MAX_SECTIONS   (1u << 16)
#define MAX_NOTE_BYTES (64u << 10) /* a build-id note is 36 bytes */
#define MAX_SHSTRTAB   (4u << 20)
#define MAX_DEBUGLINK  (SYMP_DEBUGLINK_MAX + 8)
#define MAX_SYMS       (1u << 26) /* name offsets are 32-bit; far above any real binary */
#define LINES_CACHE    32	  /* DWARF files kept open at once */
#define PERFMAP_CHUNK  (64u << 10)

/* --- ELF --------------------------------------------------------------- */

/* The section count a header claims, checked before libelf allocates for it
 * (e_shnum 0 with e_shoff set: the count is in section 0's sh_size). */
static int check_header(int fd)
{
	unsigned char ident[EI_NIDENT];
	uint64_t shnum = 0, shoff = 0;

	if (pread(fd, ident, sizeof(ident), 0) != (ssize_t)sizeof(ident) ||
	    memcmp(ident, ELFMAG, SELFMAG))
		return -ENOEXEC;
	if (ident[EI_CLASS] == ELFCLASS64) {
		Elf64_Ehdr eh;
		Elf64_Shdr sh0;

		if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
			return -ENOEXEC;
		shnum = eh.e_shnum;
		shoff = eh.e_shoff;
		if (!shnum && shoff && pread(fd, &sh0, sizeof(sh0), (off_t)shoff) == sizeof(sh0))
			shnum = sh0.sh_size;
	} else if (ident[EI_CLASS] == ELFCLASS32) {
		Elf32_Ehdr eh;
		Elf32_Shdr sh0;

		if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
			return -ENOEXEC;
		shnum = eh.e_shnum;
		shoff = eh.e_shoff;
		if (!shnum && shoff && pread(fd, &sh0, sizeof(sh0), (off_t)shoff) == sizeof(sh0))
			shnum = sh0.sh_size;
	} else {
		return -ENOEXEC;
	}
	return shnum > MAX_SECTIONS ? -EFBIG : 0;
}

/* ELF_C_READ: libelf reads what is asked for with pread, nothing mapped. */
static Elf *open_elf(int fd)
{
	Elf *elf;

	if (check_header(fd))
		return NULL;
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (elf && elf_kind(elf) != ELF_K_ELF) {
		elf_end(elf);
		return NULL;
	}
	return elf;
}

/* Section data, only when the section is no larger than max. */
static Elf_Data *section_data(Elf_Scn *scn, uint64_t max)
{
	GElf_Shdr sh;

	if (!scn || !gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS || sh.sh_size > max)
		return NULL;
	return elf_getdata(scn, NULL);
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
		/* a sparse file can claim a note of gigabytes: never read one */
		data = section_data(scn, MAX_NOTE_BYTES);
		if (!data || !data->d_buf)
			continue;
		while ((off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    memcmp((char *)data->d_buf + name_off, "GNU", 4) == 0) {
				const unsigned char *d = (unsigned char *)data->d_buf + desc_off;
				size_t n = nh.n_descsz;

				if (n * 2 + 1 > outlen)
					n = (outlen - 1) / 2;
				for (size_t i = 0; i < n; i++)
					snprintf(out + 2 * i, 3, "%02x", d[i]);
				return;
			}
		}
	}
}

/* What one ELF offers: its symbol sections and where to look for more. */
struct elf_info {
	Elf_Scn *symtab, *dynsym, *debugdata;
	bool debug_info; /* DWARF for source lines */
	char debuglink[SYMP_DEBUGLINK_MAX];
	uint32_t debuglink_crc;
};

static void elf_scan(Elf *elf, struct elf_info *info)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	GElf_Shdr ssh;

	memset(info, 0, sizeof(*info));
	if (elf_getshdrstrndx(elf, &shstrndx) || !gelf_getshdr(elf_getscn(elf, shstrndx), &ssh) ||
	    ssh.sh_size > MAX_SHSTRTAB)
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
		} else if (strcmp(name, ".gnu_debuglink") == 0 &&
			   (d = section_data(scn, MAX_DEBUGLINK)) && d->d_buf && d->d_size >= 8) {
			/* file name, NUL, padding to 4, CRC32 of the debug file */
			size_t len = strnlen(d->d_buf, d->d_size - 4);

			if (len && len < sizeof(info->debuglink) && !memchr(d->d_buf, '/', len) &&
			    strcmp(d->d_buf, ".") && strcmp(d->d_buf, "..")) {
				memcpy(info->debuglink, d->d_buf, len);
				info->debuglink[len] = '\0';
				memcpy(&info->debuglink_crc, (char *)d->d_buf + d->d_size - 4, 4);
			}
		}
	}
}

static void read_segments(Elf *elf, struct symp_elf_reply *rep)
{
	size_t phnum;

	if (elf_getphdrnum(elf, &phnum))
		return;
	for (size_t i = 0; i < phnum && rep->nsegs < SYMP_MAX_SEGS; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
			rep->segs[rep->nsegs++] =
				(struct symp_seg){ph.p_offset, ph.p_vaddr, ph.p_filesz};
	}
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

/* Bytes of the symbol and string sections: what reading them costs. */
static uint64_t symsrc_file_bytes(const struct symsrc *src)
{
	GElf_Shdr sh, strsh;
	Elf_Scn *str;

	if (!src->scn || !gelf_getshdr(src->scn, &sh))
		return 0;
	str = elf_getscn(src->elf, sh.sh_link);
	return sh.sh_size + (str && gelf_getshdr(str, &strsh) ? strsh.sh_size : 0);
}

/* Walks the FUNC symbols of src: counts them, or (t != NULL) writes them. */
static void symsrc_walk(const struct symsrc *src, uint64_t max, size_t *nsyms, size_t *name_bytes,
			struct symp_sym *syms, char *names, size_t cap_syms, size_t cap_names)
{
	GElf_Shdr sh, strsh;
	Elf_Scn *str;
	Elf_Data *data;

	if (!src->scn || !gelf_getshdr(src->scn, &sh) || !sh.sh_entsize ||
	    !(data = section_data(src->scn, max)) || !(str = elf_getscn(src->elf, sh.sh_link)) ||
	    !gelf_getshdr(str, &strsh) || strsh.sh_size > max)
		return;
	for (size_t i = 0, count = sh.sh_size / sh.sh_entsize; i < count && i <= INT32_MAX; i++) {
		GElf_Sym sym;
		const char *name;
		size_t len;

		if (!gelf_getsym(data, (int)i, &sym) || !is_func(&sym))
			continue;
		name = elf_strptr(src->elf, sh.sh_link, sym.st_name);
		if (!name || !*name)
			continue;
		len = strlen(name) + 1;
		if (syms) {
			if (*nsyms >= cap_syms || *name_bytes + len > cap_names)
				return;
			memcpy(names + *name_bytes, name, len);
			syms[*nsyms] = (struct symp_sym){sym.st_value, sym.st_size,
							 (uint32_t)*name_bytes, 0};
		}
		(*nsyms)++;
		*name_bytes += len;
	}
}

/* Appends the FUNC symbols of srcs as one table, sized exactly. */
static uint32_t table_from(struct strbuf *reply, size_t rep_off, const struct symsrc *srcs,
			   unsigned nsrcs, uint64_t max_table)
{
	size_t nsyms = 0, name_bytes = 0, n2 = 0, b2 = 0;
	uint64_t file_bytes = 0;
	struct symp_sym *syms;
	char *names;
	struct symp_elf_reply *rep;

	/* sections larger than the cap are not even read */
	for (unsigned i = 0; i < nsrcs; i++)
		file_bytes += symsrc_file_bytes(&srcs[i]);
	if (file_bytes > max_table)
		return SYMP_R_TOO_BIG;
	for (unsigned i = 0; i < nsrcs; i++)
		symsrc_walk(&srcs[i], max_table, &nsyms, &name_bytes, NULL, NULL, 0, 0);
	if (nsyms > MAX_SYMS || name_bytes > UINT32_MAX ||
	    nsyms * sizeof(struct symp_sym) + name_bytes > max_table)
		return SYMP_R_TOO_BIG;
	syms = strbuf_extend(reply, nsyms * sizeof(*syms) + name_bytes);
	if (!syms)
		return SYMP_R_TOO_BIG;
	names = (char *)(syms + nsyms);
	for (unsigned i = 0; i < nsrcs; i++)
		symsrc_walk(&srcs[i], max_table, &n2, &b2, syms, names, nsyms, name_bytes);
	rep = (struct symp_elf_reply *)(reply->p + rep_off);
	/* a second walk finding less (it cannot find more) leaves zeroed room */
	rep->table.nsyms = (uint32_t)n2;
	rep->table.names_len = (uint32_t)name_bytes;
	strbuf_truncate(reply, rep_off + sizeof(*rep) + nsyms * sizeof(*syms) + name_bytes);
	if (n2 < nsyms) {
		memmove(syms + n2, names, name_bytes);
		strbuf_truncate(reply, reply->len - (nsyms - n2) * sizeof(*syms));
	}
	return SYMP_R_TABLE;
}

static uint32_t fd_crc(int fd, uint64_t max, bool *ok)
{
	char *buf = malloc(1 << 16);
	uint32_t crc = 0;
	uint64_t off = 0;
	ssize_t n;

	*ok = false;
	if (!buf)
		return 0;
	while ((n = pread(fd, buf, 1 << 16, (off_t)off)) > 0 && off <= max) {
		crc = (uint32_t)crc32(crc, (const Bytef *)buf, (uInt)n);
		off += (uint64_t)n;
	}
	*ok = n == 0 && off <= max;
	free(buf);
	return crc;
}

/* .gnu_debugdata: an xz-compressed ELF with the symbols .dynsym lacks. */
static void *unxz_section(Elf_Scn *scn, uint64_t limit, size_t *out_len)
{
	Elf_Data *d = section_data(scn, limit);
	lzma_stream strm = LZMA_STREAM_INIT;
	size_t cap = 1 << 20;
	uint8_t *buf = NULL;
	lzma_ret r;

	if (!d || !d->d_buf || !d->d_size || lzma_stream_decoder(&strm, limit, 0) != LZMA_OK)
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

/* A debug file candidate: the right one (build-id equal, or CRC equal) with
 * a .symtab. */
static Elf *try_candidate(int fd, uint32_t kind, const struct symp_elf_req *req,
			  const struct symp_elf_reply *rep, struct elf_info *dinfo)
{
	char bid[SYMP_BUILD_ID_HEX];
	Elf *delf;

	if (kind == SYMP_CAND_DEBUGLINK) {
		bool ok;
		uint32_t crc = fd_crc(fd, req->max_crc_bytes, &ok);

		if (!ok || crc != rep->debuglink_crc)
			return NULL;
	}
	delf = open_elf(fd);
	if (!delf)
		return NULL;
	if (kind == SYMP_CAND_BUILD_ID) {
		read_build_id(delf, bid, sizeof(bid));
		if (strcmp(bid, rep->build_id)) {
			elf_end(delf);
			return NULL;
		}
	}
	elf_scan(delf, dinfo);
	if (!dinfo->symtab) {
		elf_end(delf);
		return NULL;
	}
	return delf;
}

int symparse_elf(void *state, const struct sandbox_request *rq, struct strbuf *reply)
{
	struct symp_elf_req req;
	struct symp_elf_reply *rep;
	struct elf_info info, dinfo;
	Elf *elf = NULL, *delf = NULL, *melf = NULL;
	void *mini = NULL;
	size_t mini_len = 0;
	uint32_t result;

	(void)state;
	if (rq->len != sizeof(req) || rq->nfds < 1)
		return -EINVAL;
	memcpy(&req, rq->data, sizeof(req));
	if (req.ncand > SYMP_MAX_CAND || ((req.flags & SYMP_SEARCHED) && rq->nfds != 1 + req.ncand))
		return -EINVAL;
	elf_version(EV_CURRENT);
	if (!(rep = strbuf_extend(reply, sizeof(*rep))))
		return reply->err;
	rep->dwarf = -1;
	elf = open_elf(rq->fds[0]);
	if (!elf) {
		rep->result = SYMP_R_NOT_ELF;
		return 0;
	}
	read_build_id(elf, rep->build_id, sizeof(rep->build_id));
	read_segments(elf, rep);
	elf_scan(elf, &info);
	memcpy(rep->debuglink, info.debuglink, sizeof(rep->debuglink));
	rep->debuglink_crc = info.debuglink_crc;
	if (info.debug_info)
		rep->dwarf = 0;
	if (info.symtab) {
		struct symsrc src = {elf, info.symtab};

		result = table_from(reply, 0, &src, 1, req.max_table);
		rep = (struct symp_elf_reply *)reply->p;
		rep->source = SYMP_SRC_SYMTAB;
		goto out;
	}
	if (!(req.flags & SYMP_SEARCHED) && (rep->build_id[0] || info.debuglink[0])) {
		result = SYMP_R_NEED_DEBUG;
		goto out;
	}
	for (unsigned i = 0; (req.flags & SYMP_SEARCHED) && i < req.ncand && !delf; i++) {
		delf = try_candidate(rq->fds[1 + i], req.cand_kind[i], &req, rep, &dinfo);
		if (delf) {
			struct symsrc src = {delf, dinfo.symtab};

			if (dinfo.debug_info)
				rep->dwarf = (int32_t)(1 + i);
			result = table_from(reply, 0, &src, 1, req.max_table);
			rep = (struct symp_elf_reply *)reply->p;
			rep->source = SYMP_SRC_DEBUG_FILE;
			goto out;
		}
	}
	if (info.debugdata && (mini = unxz_section(info.debugdata, req.max_table, &mini_len)) &&
	    (melf = elf_memory(mini, mini_len))) {
		elf_scan(melf, &dinfo);
		if (dinfo.symtab) {
			struct symsrc srcs[2] = {{elf, info.dynsym}, {melf, dinfo.symtab}};

			result = table_from(reply, 0, srcs, 2, req.max_table);
			rep = (struct symp_elf_reply *)reply->p;
			rep->source = SYMP_SRC_MINIDEBUGINFO;
			goto out;
		}
	}
	{
		struct symsrc src = {elf, info.dynsym};

		result = table_from(reply, 0, &src, 1, req.max_table);
		rep = (struct symp_elf_reply *)reply->p;
		rep->source = info.dynsym ? SYMP_SRC_DYNSYM : SYMP_SRC_NONE;
	}
out:
	if (reply->err)
		result = SYMP_R_TOO_BIG;
	rep = (struct symp_elf_reply *)reply->p;
	rep->result = result;
	if (result != SYMP_R_TABLE) {
		rep->table.nsyms = 0;
		rep->table.names_len = 0;
		strbuf_truncate(reply, sizeof(*rep));
		reply->err = 0;
	}
	if (melf)
		elf_end(melf);
	free(mini);
	if (delf)
		elf_end(delf);
	elf_end(elf);
	return 0;
}

/* --- perf maps ---------------------------------------------------------- */

/* Strict hex: optional 0x, 1..16 digits. Returns the end, or NULL. */
static const char *parse_hex(const char *s, const char *end, uint64_t *out)
{
	uint64_t v = 0;
	int digits = 0;

	if (end - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (; s < end; s++, digits++) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (digits == 16)
			return NULL;
		v = v << 4 | (uint64_t)d;
	}
	if (!digits)
		return NULL;
	*out = v;
	return s;
}

/* "START SIZE NAME" (hex, hex, the rest of the line). */
static bool perfmap_line(const char *line, size_t len, uint64_t *start, uint64_t *size,
			 const char **name, size_t *name_len)
{
	const char *end = line + len, *p = parse_hex(line, end, start);

	if (!p || p == end || *p != ' ')
		return false;
	p = parse_hex(p + 1, end, size);
	if (!p || p == end || *p != ' ')
		return false;
	p++;
	while (p < end && *p == ' ')
		p++;
	while (end > p && (end[-1] == '\r' || end[-1] == ' '))
		end--;
	if (p == end || memchr(p, '\0', (size_t)(end - p)))
		return false;
	*name = p;
	*name_len = (size_t)(end - p);
	return true;
}

int symparse_perfmap(void *state, const struct sandbox_request *rq, struct strbuf *reply)
{
	struct symp_perfmap_req req;
	struct symp_perfmap_reply head = {0}, *rep;
	struct strbuf syms = {0}, names = {0};
	char *buf = NULL;
	size_t have = 0, bufcap;
	uint64_t off = 0;
	bool skip_first = false, skipping = false;
	struct stat st;
	int fd, err = 0;

	(void)state;
	if (rq->len != sizeof(req) || rq->nfds != 1)
		return -EINVAL;
	memcpy(&req, rq->data, sizeof(req));
	if (!req.max_line_len || req.max_line_len > (1u << 20))
		return -EINVAL;
	syms.max = names.max = req.max_table ? req.max_table : 1;
	fd = rq->fds[0];
	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > req.max_bytes) {
		/* the newest code is at the end: read the last max_bytes */
		off = (uint64_t)st.st_size - req.max_bytes;
		head.truncated = 1;
		skip_first = true;
	}
	bufcap = req.max_line_len + PERFMAP_CHUNK;
	buf = malloc(bufcap + 1);
	if (!buf)
		return -ENOMEM;
	for (bool eof = false; !eof || have;) {
		ssize_t n = 0;
		char *nl;
		size_t used;

		if (!eof && have < bufcap) {
			n = pread(fd, buf + have, bufcap - have, (off_t)off);
			if (n < 0) {
				err = -errno;
				break;
			}
			eof = n == 0;
			off += (uint64_t)n;
			have += (size_t)n;
		}
		nl = memchr(buf, '\n', have);
		if (!nl && !eof && have < bufcap)
			continue;
		if (!nl && have == bufcap) {
			/* longer than any line we keep: drop it whole, up to its newline */
			head.bad_lines += !skipping;
			skipping = true;
			have = 0;
			continue;
		}
		used = nl ? (size_t)(nl - buf) : have;
		if (skipping || skip_first) {
			skipping = false;
			skip_first = false;
		} else if (used) {
			uint64_t start, size;
			const char *name;
			size_t name_len;

			if (used > req.max_line_len ||
			    !perfmap_line(buf, used, &start, &size, &name, &name_len)) {
				head.bad_lines++;
			} else {
				struct symp_sym s = {start, size, (uint32_t)names.len, 0};
				uint64_t room = req.max_table;

				if (head.lines >= req.max_lines ||
				    syms.len + sizeof(s) + names.len + name_len + 1 > room ||
				    names.len + name_len + 1 > UINT32_MAX) {
					head.too_big = 1;
					break;
				}
				if ((err = strbuf_append(&syms, &s, sizeof(s))) ||
				    (err = strbuf_append(&names, name, name_len)) ||
				    (err = strbuf_append(&names, "", 1)))
					break;
				head.lines++;
			}
		}
		used = nl ? used + 1 : have;
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	if (err == -EFBIG) {
		head.too_big = 1;
		err = 0;
	}
	if (!err) {
		head.table.nsyms = (uint32_t)(syms.len / sizeof(struct symp_sym));
		head.table.names_len = (uint32_t)names.len;
		if ((rep = strbuf_extend(reply, sizeof(*rep) + syms.len + names.len))) {
			*rep = head;
			if (syms.len)
				memcpy(rep + 1, syms.p, syms.len);
			if (names.len)
				memcpy((char *)(rep + 1) + syms.len, names.p, names.len);
		}
		err = reply->err;
	}
	free(buf);
	strbuf_free(&syms);
	strbuf_free(&names);
	return err;
}

/* --- DWARF: source lines and inlined functions -------------------------- */

struct lines_file {
	uint64_t key;
	int fd;
	Elf *elf;
	Dwarf *dw;
	uint64_t last_use;
};

struct lines_state {
	struct lines_file f[LINES_CACHE];
	uint64_t clock;
};

void *symparse_lines_new(void)
{
	return calloc(1, sizeof(struct lines_state));
}

static void lines_close(struct lines_file *f)
{
	if (f->dw)
		dwarf_end(f->dw);
	if (f->elf)
		elf_end(f->elf);
	if (f->fd > 0)
		close(f->fd);
	memset(f, 0, sizeof(*f));
}

void symparse_lines_free(void *state)
{
	struct lines_state *ls = state;

	if (!ls)
		return;
	for (unsigned i = 0; i < LINES_CACHE; i++)
		lines_close(&ls->f[i]);
	free(ls);
}

/* Bytes of the DWARF sections libdw would read. */
static uint64_t dwarf_bytes(Elf *elf)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	GElf_Shdr ssh;
	uint64_t total = 0;

	if (elf_getshdrstrndx(elf, &shstrndx) || !gelf_getshdr(elf_getscn(elf, shstrndx), &ssh) ||
	    ssh.sh_size > MAX_SHSTRTAB)
		return UINT64_MAX;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (gelf_getshdr(scn, &sh) && (name = elf_strptr(elf, shstrndx, sh.sh_name)) &&
		    (!strncmp(name, ".debug_", 7) || !strncmp(name, ".zdebug_", 8)))
			total += sh.sh_size;
	}
	return total;
}

/* libdw takes the strings of .debug_str and .debug_line_str as they are: a
 * section whose last byte is not NUL lets its last string run past the end
 * (elfutils 0.188 measures the line table's directories with strlen). Checked
 * after dwarf_begin_elf, which decompresses the sections it uses in place. */
static bool dwarf_strings_terminated(Elf *elf)
{
	static const char *const names[] = {"debug_str", "debug_line_str", "debug_str.dwo",
					    "debug_line_str.dwo"};
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(elf, &shstrndx))
		return false;
	while ((scn = elf_nextscn(elf, scn))) {
		const char *name;
		Elf_Data *d;
		GElf_Shdr sh;
		bool strings = false;

		/* still compressed: libdw could not decompress it and does not use it */
		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS ||
		    (sh.sh_flags & SHF_COMPRESSED) ||
		    !(name = elf_strptr(elf, shstrndx, sh.sh_name)) || name[0] != '.')
			continue;
		/* .debug_str or, compressed the GNU way, .zdebug_str */
		name += !strncmp(name, ".zdebug_", 8) ? 2 : 1;
		for (size_t i = 0; i < ARRAY_SIZE(names); i++)
			strings |= !strcmp(name, names[i]);
		if (!strings)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d || (d->d_size && ((const char *)d->d_buf)[d->d_size - 1]))
			return false;
	}
	return true;
}

static struct lines_file *lines_open(struct lines_state *ls, uint64_t key, int fd, uint64_t max)
{
	struct lines_file *f = NULL, *victim = &ls->f[0];
	int own;

	for (unsigned i = 0; i < LINES_CACHE; i++) {
		if (ls->f[i].key == key && ls->f[i].dw) {
			ls->f[i].last_use = ++ls->clock;
			return &ls->f[i];
		}
		if (ls->f[i].last_use < victim->last_use)
			victim = &ls->f[i];
	}
	if (fd < 0)
		return NULL;
	f = victim;
	lines_close(f);
	own = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* libelf reads it after this request */
	if (own < 0)
		return NULL;
	f->fd = own;
	f->elf = open_elf(own);
	if (!f->elf || dwarf_bytes(f->elf) > max ||
	    !(f->dw = dwarf_begin_elf(f->elf, DWARF_C_READ, NULL)) ||
	    !dwarf_strings_terminated(f->elf)) {
		lines_close(f);
		return NULL;
	}
	f->key = key;
	f->last_use = ++ls->clock;
	return f;
}

/* The named inlined subroutines on the way down to pc, the last SYMP_INLINED
 * of them kept (names[(n - 1) % SYMP_INLINED] the innermost). */
struct inlined {
	char names[SYMP_INLINED][SYMP_INLINED_MAX];
	unsigned n, steps;
};

#define INLINED_DEPTH 64     /* nesting of scopes followed */
#define INLINED_STEPS 100000 /* DIEs looked at for one address */

/* Descends from parent through the scope whose ranges hold pc, looking through
 * namespaces, classes and imported (dwz) units as dwarf_getscopes does; that
 * one is not used because elfutils 0.188 leaks its array when a malformed tree
 * fails it after a match. Bounded in depth and DIEs visited. */
static bool inlined_find(Dwarf_Die *parent, Dwarf_Addr pc, struct inlined *in, int depth)
{
	Dwarf_Die child, unit;
	Dwarf_Attribute attr;

	if (depth > INLINED_DEPTH || dwarf_child(parent, &child) != 0)
		return false;
	do {
		const char *name;
		int tag;

		if (++in->steps > INLINED_STEPS)
			return false;
		tag = dwarf_tag(&child);
		if (tag == DW_TAG_namespace || tag == DW_TAG_class_type ||
		    tag == DW_TAG_structure_type) {
			if (inlined_find(&child, pc, in, depth + 1))
				return true;
			continue;
		}
		if (tag == DW_TAG_imported_unit) {
			if (dwarf_formref_die(dwarf_attr(&child, DW_AT_import, &attr), &unit) &&
			    inlined_find(&unit, pc, in, depth + 1))
				return true;
			continue;
		}
		if (dwarf_haspc(&child, pc) != 1)
			continue;
		if (tag == DW_TAG_inlined_subroutine &&
		    (name = dwarf_formstring(dwarf_attr_integrate(&child, DW_AT_name, &attr))))
			snprintf(in->names[in->n++ % SYMP_INLINED], SYMP_INLINED_MAX, "%s", name);
		inlined_find(&child, pc, in, depth + 1);
		return true;
	} while (dwarf_siblingof(&child, &child) == 0);
	return false;
}

int symparse_lines(void *state, const struct sandbox_request *rq, struct strbuf *reply)
{
	struct lines_state *ls = state;
	struct symp_lines_req req;
	struct symp_lines_reply *rep;
	struct lines_file *f;
	struct inlined in = {0};
	Dwarf_Line *line;
	const char *src;
	int lineno = 0;
	Dwarf_Die cu;

	if (!ls)
		return -ENOMEM;
	if (rq->len != sizeof(req))
		return -EINVAL;
	memcpy(&req, rq->data, sizeof(req));
	if (req.flags & SYMP_LINES_FORGET) {
		for (unsigned i = 0; i < LINES_CACHE; i++)
			lines_close(&ls->f[i]);
		return 0;
	}
	if (rq->nfds != 1 || !req.key)
		return -EINVAL;
	elf_version(EV_CURRENT);
	if (!(rep = strbuf_extend(reply, sizeof(*rep))))
		return reply->err;
	f = lines_open(ls, req.key, rq->fds[0], req.max_dwarf);
	if (!f)
		return -ENOENT;
	if (!dwarf_addrdie(f->dw, req.vaddr, &cu))
		return 0;
	line = dwarf_getsrc_die(&cu, req.vaddr);
	if (line && (src = dwarf_linesrc(line, NULL, NULL)) && dwarf_lineno(line, &lineno) == 0) {
		const char *base = strrchr(src, '/');

		snprintf(rep->source, sizeof(rep->source), "%s:%d", base ? base + 1 : src, lineno);
	}
	inlined_find(&cu, req.vaddr, &in, 0);
	/* innermost first */
	for (unsigned i = 0; i < in.n && i < SYMP_INLINED; i++)
		memcpy(rep->inlined[rep->ninlined++], in.names[(in.n - 1 - i) % SYMP_INLINED],
		       SYMP_INLINED_MAX);
	return 0;
}
