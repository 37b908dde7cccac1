// SPDX-License-Identifier: GPL-2.0-only
#include "base/unwind.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <gelf.h>
#include <libelf.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"

#define DEFAULT_MAX_FILES 1024
#define HASH_BUCKETS	  256
#define MAX_SEGS	  16
#define EXPR_STACK	  64  /* DWARF expression stack entries */
#define EXPR_STEPS	  256 /* operations run per expression, branches included */
/* libdw keeps parsed CIEs and FDEs beside the section data it read: what a
 * file costs is estimated as this many times the bytes of its CFI sections */
#define CFI_COST_FACTOR 4
#define FILE_OVERHEAD	4096

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#else
#define HOST_MACHINE EM_NONE
#endif

struct ufile {
	uint64_t dev, ino;
	Elf *elf;
	Dwarf *dw;	/* only for .debug_frame */
	Dwarf_CFI *cfi; /* NULL: no usable CFI (remembered) */
	void *image;	/* the copy an in-memory image was read from */
	struct {
		uint64_t off, vaddr, filesz;
	} segs[MAX_SEGS];
	unsigned nsegs;
	uint64_t bytes;
	uint64_t last_use;
	struct ufile *next; /* hash chain */
};

struct unwinder {
	struct unwinder_opts opts;
	struct ufile *buckets[HASH_BUCKETS];
	uint64_t nfiles, bytes, use_clock;
	struct unwinder_stats st;
};

static const char *const status_names[UNWIND_STATUS_MAX] = {
	[UNWIND_OK] = "ok",
	[UNWIND_TRUNCATED] = "truncated",
	[UNWIND_NEED_FILE] = "need_file",
	[UNWIND_NO_MAP] = "no_map",
	[UNWIND_NO_CFI] = "no_cfi",
	[UNWIND_BAD_CFI] = "bad_cfi",
};

const char *unwind_status_name(enum unwind_status s)
{
	return (unsigned)s < UNWIND_STATUS_MAX ? status_names[s] : "?";
}

int unwinder_new(struct unwinder **out, const struct unwinder_opts *opts)
{
	struct unwinder *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->opts = *opts;
	if (!u->opts.max_files)
		u->opts.max_files = DEFAULT_MAX_FILES;
	elf_version(EV_CURRENT);
	*out = u;
	return 0;
}

static unsigned bucket_of(uint64_t dev, uint64_t ino)
{
	uint64_t h = (dev * 0x9e3779b97f4a7c15ull) ^ (ino * 0xc2b2ae3d27d4eb4full);

	return (unsigned)(h >> 32) % HASH_BUCKETS;
}

static void ufile_free(struct ufile *f)
{
	if (f->dw)
		dwarf_end(f->dw); /* owns the CFI it made */
	else if (f->cfi)
		dwarf_cfi_end(f->cfi);
	if (f->elf)
		elf_end(f->elf);
	free(f->image);
	free(f);
}

void unwinder_flush(struct unwinder *u)
{
	for (unsigned b = 0; b < HASH_BUCKETS; b++) {
		while (u->buckets[b]) {
			struct ufile *f = u->buckets[b];

			u->buckets[b] = f->next;
			ufile_free(f);
		}
	}
	u->nfiles = 0;
	u->bytes = 0;
}

void unwinder_free(struct unwinder **pu)
{
	struct unwinder *u = pu ? *pu : NULL;

	if (!u)
		return;
	unwinder_flush(u);
	free(u);
	*pu = NULL;
}

void unwinder_get_stats(const struct unwinder *u, struct unwinder_stats *out)
{
	*out = u->st;
	out->files_cached = u->nfiles;
	out->cache_bytes = u->bytes;
	out->cache_cap = u->opts.cache_bytes;
}

static struct ufile *file_find(struct unwinder *u, uint64_t dev, uint64_t ino)
{
	for (struct ufile *f = u->buckets[bucket_of(dev, ino)]; f; f = f->next) {
		if (f->dev == dev && f->ino == ino) {
			f->last_use = ++u->use_clock;
			return f;
		}
	}
	return NULL;
}

/* Drops least recently used files until one more of `need` bytes fits. */
static void make_room(struct unwinder *u, uint64_t need)
{
	while (u->nfiles &&
	       (u->bytes + need > u->opts.cache_bytes || u->nfiles + 1 > u->opts.max_files)) {
		struct ufile **victim = NULL;

		for (unsigned b = 0; b < HASH_BUCKETS; b++)
			for (struct ufile **pf = &u->buckets[b]; *pf; pf = &(*pf)->next)
				if (!victim || (*pf)->last_use < (*victim)->last_use)
					victim = pf;
		struct ufile *f = *victim;

		*victim = f->next;
		u->bytes -= f->bytes;
		u->nfiles--;
		u->st.evictions++;
		ufile_free(f);
	}
}

static void file_insert(struct unwinder *u, struct ufile *f)
{
	unsigned b = bucket_of(f->dev, f->ino);

	make_room(u, f->bytes);
	f->last_use = ++u->use_clock;
	f->next = u->buckets[b];
	u->buckets[b] = f;
	u->nfiles++;
	u->bytes += f->bytes;
}

/* The CFI sections of elf and what reading them costs, or -errno when the
 * file has none or they are larger than a file may be. */
static int cfi_sections(Elf *elf, uint64_t cap, bool *eh, uint64_t *bytes)
{
	uint64_t eh_bytes = 0, debug_bytes = 0;
	bool have_eh = false, have_debug_frame = false;
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(elf, &shstrndx))
		return -EINVAL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS ||
		    !(name = elf_strptr(elf, shstrndx, sh.sh_name)))
			continue;
		if (strcmp(name, ".eh_frame") == 0 || strcmp(name, ".eh_frame_hdr") == 0) {
			have_eh |= strcmp(name, ".eh_frame") == 0 && sh.sh_size > 0;
			eh_bytes += sh.sh_size;
		} else if (strncmp(name, ".debug_", 7) == 0 || strncmp(name, ".zdebug_", 8) == 0) {
			/* libdw reads every debug section it knows when it opens them */
			have_debug_frame |= strcmp(name, ".debug_frame") == 0 && sh.sh_size > 0;
			debug_bytes += sh.sh_size;
		}
		if (eh_bytes > cap || debug_bytes > UINT64_MAX / 2)
			return -EFBIG;
	}
	if (have_eh) {
		*eh = true;
		*bytes = eh_bytes;
		return 0;
	}
	if (have_debug_frame) {
		if (debug_bytes > cap)
			return -EFBIG;
		*eh = false;
		*bytes = debug_bytes;
		return 0;
	}
	return -ENOENT;
}

static void read_segments(struct ufile *f)
{
	size_t phnum;

	if (elf_getphdrnum(f->elf, &phnum))
		return;
	for (size_t i = 0; i < phnum && f->nsegs < MAX_SEGS; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(f->elf, (int)i, &ph) && ph.p_type == PT_LOAD)
			f->segs[f->nsegs++] =
				(typeof(f->segs[0])){ph.p_offset, ph.p_vaddr, ph.p_filesz};
	}
}

/* Reads what unwinding needs from f->elf, everything before returning:
 * afterwards nothing touches the descriptor or the file again. */
static int load_cfi(struct unwinder *u, struct ufile *f)
{
	uint64_t cap = u->opts.cache_bytes / CFI_COST_FACTOR, bytes = 0;
	GElf_Ehdr eh;
	bool use_eh = false;
	int err;

	if (elf_kind(f->elf) != ELF_K_ELF || !gelf_getehdr(f->elf, &eh) ||
	    eh.e_machine != HOST_MACHINE || gelf_getclass(f->elf) != ELFCLASS64)
		return -ENOEXEC;
	read_segments(f);
	if (!f->nsegs)
		return -ENOEXEC;
	err = cfi_sections(f->elf, cap, &use_eh, &bytes);
	if (err)
		return err;
	if (use_eh) {
		f->cfi = dwarf_getcfi_elf(f->elf);
	} else {
		f->dw = dwarf_begin_elf(f->elf, DWARF_C_READ, NULL);
		f->cfi = f->dw ? dwarf_getcfi(f->dw) : NULL;
	}
	if (!f->cfi)
		return -ENOENT;
	f->bytes += bytes * CFI_COST_FACTOR;
	return 0;
}

static int add(struct unwinder *u, const struct unwind_map *m, int fd, const void *image,
	       size_t len)
{
	struct ufile *f;
	int err = -ENOENT;

	if (file_find(u, m->dev, m->ino))
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->dev = m->dev;
	f->ino = m->ino;
	f->bytes = sizeof(*f) + FILE_OVERHEAD;
	if (image) {
		f->image = malloc(len);
		if (!f->image) {
			free(f);
			return -ENOMEM;
		}
		memcpy(f->image, image, len);
		f->bytes += len;
		f->elf = elf_memory(f->image, len);
	} else if (fd >= 0) {
		struct stat st;

		/* only regular files: a FIFO or a device would block or never end */
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			f->elf = elf_begin(fd, ELF_C_READ, NULL);
	}
	if (f->elf)
		err = load_cfi(u, f);
	if (err) {
		/* remembered without its data, so the file is not asked for again */
		if (f->dw)
			dwarf_end(f->dw);
		else if (f->cfi)
			dwarf_cfi_end(f->cfi);
		if (f->elf)
			elf_end(f->elf);
		free(f->image);
		f->dw = NULL;
		f->cfi = NULL;
		f->elf = NULL;
		f->image = NULL;
		f->bytes = sizeof(*f);
		u->st.files_refused++;
	} else {
		if (fd >= 0)
			elf_cntl(f->elf, ELF_C_FDDONE);
		u->st.files_added++;
	}
	file_insert(u, f);
	return err;
}

int unwinder_add_file(struct unwinder *u, const struct unwind_map *m, int fd)
{
	return add(u, m, fd, NULL, 0);
}

int unwinder_add_image(struct unwinder *u, const struct unwind_map *m, const void *image,
		       size_t len)
{
	if (!image || !len || len > u->opts.cache_bytes / CFI_COST_FACTOR)
		return add(u, m, -1, NULL, 0);
	return add(u, m, -1, image, len);
}

/* --- one thread's state ------------------------------------------------- */

struct walk {
	const struct unwind_input *in;
	uint64_t regs[UNWIND_MAX_REGS];
	uint64_t valid;
	uint64_t cfa;
	bool have_cfa;
	bool past_copy; /* a read above the copy failed: the copy was too short */
};

static bool reg_ok(const struct walk *w, uint64_t r)
{
	return r < UNWIND_MAX_REGS && (w->valid & (1ull << r));
}

/* Reads size bytes at addr from the stack copy, and nowhere else. */
static bool read_mem(struct walk *w, uint64_t addr, unsigned size, uint64_t *out)
{
	const struct unwind_input *in = w->in;
	uint64_t v = 0;

	if (size == 0 || size > 8)
		return false;
	if (addr < in->stack_addr || addr - in->stack_addr > in->stack_len ||
	    in->stack_len - (addr - in->stack_addr) < size) {
		if (addr >= in->stack_addr)
			w->past_copy = true;
		return false;
	}
	memcpy(&v, in->stack + (addr - in->stack_addr), size);
	*out = v;
	return true;
}

/* Runs a DWARF expression (what libdw decoded from the CFI) on the walk's
 * registers; the result is the top of the stack. */
static bool eval(struct walk *w, const Dwarf_Op *ops, size_t nops, uint64_t *out)
{
	uint64_t st[EXPR_STACK];
	unsigned sp = 0, steps = 0;
	size_t i = 0;

#define NEED(n)                                                                                    \
	do {                                                                                       \
		if (sp < (n))                                                                      \
			return false;                                                              \
	} while (0)
#define PUSH(v)                                                                                    \
	do {                                                                                       \
		uint64_t pushed_ = (v);                                                            \
		if (sp >= EXPR_STACK)                                                              \
			return false;                                                              \
		st[sp] = pushed_;                                                                  \
		sp++;                                                                              \
	} while (0)

	while (i < nops) {
		const Dwarf_Op *op = &ops[i];
		uint64_t a, b, r;

		if (++steps > EXPR_STEPS)
			return false;
		if (op->atom >= DW_OP_lit0 && op->atom <= DW_OP_lit31) {
			PUSH((uint64_t)(op->atom - DW_OP_lit0));
			i++;
			continue;
		}
		if (op->atom >= DW_OP_breg0 && op->atom <= DW_OP_breg31) {
			unsigned reg = op->atom - DW_OP_breg0;

			if (!reg_ok(w, reg))
				return false;
			PUSH(w->regs[reg] + op->number);
			i++;
			continue;
		}
		switch (op->atom) {
		case DW_OP_addr: /* a link-time address: meaningless without the load bias */
			return false;
		case DW_OP_const1u:
		case DW_OP_const1s:
		case DW_OP_const2u:
		case DW_OP_const2s:
		case DW_OP_const4u:
		case DW_OP_const4s:
		case DW_OP_const8u:
		case DW_OP_const8s:
		case DW_OP_constu:
		case DW_OP_consts:
			PUSH(op->number);
			break;
		case DW_OP_bregx:
			if (!reg_ok(w, op->number))
				return false;
			PUSH(w->regs[op->number] + op->number2);
			break;
		case DW_OP_call_frame_cfa:
			if (!w->have_cfa)
				return false;
			PUSH(w->cfa);
			break;
		case DW_OP_dup:
			NEED(1);
			PUSH(st[sp - 1]);
			break;
		case DW_OP_drop:
			NEED(1);
			sp--;
			break;
		case DW_OP_over:
			NEED(2);
			PUSH(st[sp - 2]);
			break;
		case DW_OP_pick:
			if (op->number >= sp)
				return false;
			PUSH(st[sp - 1 - op->number]);
			break;
		case DW_OP_swap:
			NEED(2);
			a = st[sp - 1];
			st[sp - 1] = st[sp - 2];
			st[sp - 2] = a;
			break;
		case DW_OP_rot:
			NEED(3);
			a = st[sp - 1];
			st[sp - 1] = st[sp - 2];
			st[sp - 2] = st[sp - 3];
			st[sp - 3] = a;
			break;
		case DW_OP_deref:
		case DW_OP_deref_size:
			NEED(1);
			if (!read_mem(w, st[sp - 1],
				      op->atom == DW_OP_deref ? 8 : (unsigned)op->number, &r))
				return false;
			st[sp - 1] = r;
			break;
		case DW_OP_abs:
			NEED(1);
			if ((int64_t)st[sp - 1] < 0)
				st[sp - 1] = -st[sp - 1];
			break;
		case DW_OP_neg:
			NEED(1);
			st[sp - 1] = -st[sp - 1];
			break;
		case DW_OP_not:
			NEED(1);
			st[sp - 1] = ~st[sp - 1];
			break;
		case DW_OP_plus_uconst:
			NEED(1);
			st[sp - 1] += op->number;
			break;
		case DW_OP_and:
		case DW_OP_or:
		case DW_OP_xor:
		case DW_OP_plus:
		case DW_OP_minus:
		case DW_OP_mul:
		case DW_OP_div:
		case DW_OP_mod:
		case DW_OP_shl:
		case DW_OP_shr:
		case DW_OP_shra:
		case DW_OP_eq:
		case DW_OP_ne:
		case DW_OP_lt:
		case DW_OP_le:
		case DW_OP_gt:
		case DW_OP_ge:
			NEED(2);
			b = st[--sp];
			a = st[sp - 1];
			switch (op->atom) {
			case DW_OP_and:
				r = a & b;
				break;
			case DW_OP_or:
				r = a | b;
				break;
			case DW_OP_xor:
				r = a ^ b;
				break;
			case DW_OP_plus:
				r = a + b;
				break;
			case DW_OP_minus:
				r = a - b;
				break;
			case DW_OP_mul:
				r = a * b;
				break;
			case DW_OP_div:
				if (b == 0 || ((int64_t)a == INT64_MIN && (int64_t)b == -1))
					return false;
				r = (uint64_t)((int64_t)a / (int64_t)b);
				break;
			case DW_OP_mod:
				if (b == 0)
					return false;
				r = a % b;
				break;
			case DW_OP_shl:
				r = b >= 64 ? 0 : a << b;
				break;
			case DW_OP_shr:
				r = b >= 64 ? 0 : a >> b;
				break;
			case DW_OP_shra:
				r = (uint64_t)((int64_t)a >> (b >= 64 ? 63 : b));
				break;
			case DW_OP_eq:
				r = a == b;
				break;
			case DW_OP_ne:
				r = a != b;
				break;
			case DW_OP_lt:
				r = (int64_t)a < (int64_t)b;
				break;
			case DW_OP_le:
				r = (int64_t)a <= (int64_t)b;
				break;
			case DW_OP_gt:
				r = (int64_t)a > (int64_t)b;
				break;
			default:
				r = (int64_t)a >= (int64_t)b;
				break;
			}
			st[sp - 1] = r;
			break;
		case DW_OP_skip:
		case DW_OP_bra: {
			/* the target is a byte offset from the end of this 3-byte op */
			uint64_t target = op->offset + 3 + (uint64_t)(int64_t)(int16_t)op->number;
			bool jump = true;
			size_t j;

			if (op->atom == DW_OP_bra) {
				NEED(1);
				jump = st[--sp] != 0;
			}
			if (!jump)
				break;
			for (j = 0; j < nops && ops[j].offset != target; j++)
				;
			if (j == nops && target != ops[nops - 1].offset + 1)
				return false;
			i = j;
			continue;
		}
		case DW_OP_nop:
			break;
		default:
			return false;
		}
		i++;
	}
	NEED(1);
	*out = st[sp - 1];
	return true;
#undef NEED
#undef PUSH
}

/* The caller's value of register reg under CFI frame fr, in *val; false
 * when it cannot be known (undefined or unreadable). */
static bool caller_reg(struct walk *w, Dwarf_Frame *fr, int reg, uint64_t *val, bool *same,
		       bool *undefined)
{
	Dwarf_Op mem[3], *ops = NULL;
	size_t nops = 0;
	uint64_t addr;

	*same = *undefined = false;
	if (dwarf_frame_register(fr, reg, mem, &ops, &nops) < 0)
		return false;
	if (nops == 0) {
		if (ops == NULL) {
			*same = true;
			if (!reg_ok(w, (uint64_t)reg))
				return false;
			*val = w->regs[reg];
			return true;
		}
		*undefined = true;
		return false;
	}
	if (ops[nops - 1].atom == DW_OP_stack_value)
		return eval(w, ops, nops - 1, val);
	if (nops == 1 && (ops[0].atom == DW_OP_regx ||
			  (ops[0].atom >= DW_OP_reg0 && ops[0].atom <= DW_OP_reg31))) {
		uint64_t r = ops[0].atom == DW_OP_regx ? ops[0].number
						       : (uint64_t)(ops[0].atom - DW_OP_reg0);

		if (!reg_ok(w, r))
			return false;
		*val = w->regs[r];
		return true;
	}
	return eval(w, ops, nops, &addr) && read_mem(w, addr, 8, val);
}

static const struct unwind_map *map_of(const struct unwind_input *in, uint64_t pc, int *idx)
{
	unsigned lo = 0, hi = in->nmaps;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (pc < in->maps[mid].start)
			hi = mid;
		else if (pc >= in->maps[mid].end)
			lo = mid + 1;
		else {
			*idx = (int)mid;
			return &in->maps[mid];
		}
	}
	return NULL;
}

/* The address of pc in the file's own (link-time) address space. */
static bool file_vaddr(const struct ufile *f, const struct unwind_map *m, uint64_t pc,
		       uint64_t *out)
{
	uint64_t off = pc - m->start + m->pgoff;

	for (unsigned i = 0; i < f->nsegs; i++) {
		if (off >= f->segs[i].off && off - f->segs[i].off < f->segs[i].filesz) {
			*out = off - f->segs[i].off + f->segs[i].vaddr;
			return true;
		}
	}
	return false;
}

enum step_result { STEP_NEXT, STEP_END, STEP_NO_CFI, STEP_FAIL };

/* One frame up by CFI: the caller's registers replace the walk's. */
static enum step_result step_cfi(struct walk *w, Dwarf_CFI *cfi, uint64_t vaddr, bool *signal_frame,
				 uint64_t *ra_out)
{
	uint64_t next[UNWIND_MAX_REGS] = {0}, next_valid = 0, ra_val;
	Dwarf_Frame *fr = NULL;
	Dwarf_Op *ops;
	size_t nops;
	bool same, undefined, sp_given = false;
	enum step_result res = STEP_FAIL;
	int ra;

	if (dwarf_cfi_addrframe(cfi, vaddr, &fr) != 0)
		return STEP_NO_CFI;
	ra = dwarf_frame_info(fr, NULL, NULL, signal_frame);
	if (ra < 0 || ra >= UNWIND_MAX_REGS)
		goto out;
	if (dwarf_frame_cfa(fr, &ops, &nops) != 0 || nops == 0)
		goto out;
	w->have_cfa = false;
	if (!eval(w, ops, nops, &w->cfa))
		goto out;
	w->have_cfa = true;
	for (int r = 0; r < UNWIND_NREGS; r++) {
		uint64_t v;

		if (r == ra)
			continue;
		if (caller_reg(w, fr, r, &v, &same, &undefined)) {
			next[r] = v;
			next_valid |= 1ull << r;
			sp_given |= r == UNWIND_REG_SP && !same;
		}
	}
	if (!caller_reg(w, fr, ra, &ra_val, &same, &undefined)) {
		res = undefined ? STEP_END : STEP_FAIL;
		goto out;
	}
	/* the CFA is the stack pointer before the call, unless CFI says otherwise */
	if (!sp_given) {
		next[UNWIND_REG_SP] = w->cfa;
		next_valid |= 1ull << UNWIND_REG_SP;
	}
	memcpy(w->regs, next, sizeof(next));
	w->valid = next_valid;
	w->regs[ra] = ra_val;
	w->valid |= 1ull << ra;
	*ra_out = ra_val;
	res = ra_val ? STEP_NEXT : STEP_END;
out:
	free(fr);
	return res;
}

/* One frame up through the frame pointer chain: where there is no CFI (JIT
 * code, hand-written assembly), the saved frame pointer and return address
 * sit at fp and fp + 8. */
static enum step_result step_fp(struct walk *w, uint64_t *ra_out)
{
	uint64_t fp, saved_fp, ra;

	if (!reg_ok(w, UNWIND_REG_FP) || !reg_ok(w, UNWIND_REG_SP))
		return STEP_FAIL;
	fp = w->regs[UNWIND_REG_FP];
	if (fp == 0)
		return STEP_END;
	if (fp < w->regs[UNWIND_REG_SP] || fp % 8)
		return STEP_FAIL;
	if (!read_mem(w, fp, 8, &saved_fp) || !read_mem(w, fp + 8, 8, &ra))
		return STEP_FAIL;
	w->regs[UNWIND_REG_FP] = saved_fp;
	w->regs[UNWIND_REG_SP] = fp + 16;
	w->valid = (1ull << UNWIND_REG_FP) | (1ull << UNWIND_REG_SP);
	*ra_out = ra;
	return ra ? STEP_NEXT : STEP_END;
}

int unwinder_unwind(struct unwinder *u, const struct unwind_input *in, uint64_t *pcs, unsigned max,
		    struct unwind_result *res)
{
	struct walk w = {.in = in};
	uint64_t pc = in->pc;
	bool exact = true; /* pc is where the thread is, not a return address */

	memset(res, 0, sizeof(*res));
	res->need_map = -1;
	if (!pcs || !max || (in->nmaps && !in->maps) || (in->stack_len && !in->stack))
		return -EINVAL;
	if (UNWIND_NREGS == 0)
		return -EOPNOTSUPP;
	memcpy(w.regs, in->regs, sizeof(w.regs));
	w.valid = in->regs_valid;
	res->status = UNWIND_TRUNCATED;
	while (res->n < max) {
		const struct unwind_map *m;
		struct ufile *f = NULL;
		enum step_result sr = STEP_NO_CFI;
		uint64_t sp = w.regs[UNWIND_REG_SP], vaddr, ra = 0;
		bool sp_known = reg_ok(&w, UNWIND_REG_SP), signal_frame = false;
		int idx = -1;

		pcs[res->n++] = pc;
		if (res->n == max)
			break;
		m = map_of(in, exact ? pc : pc - 1, &idx);
		if (m && (m->dev || m->ino)) {
			f = file_find(u, m->dev, m->ino);
			if (!f) {
				res->status = UNWIND_NEED_FILE;
				res->need_map = idx;
				return 0;
			}
		}
		if (f && f->cfi && file_vaddr(f, m, exact ? pc : pc - 1, &vaddr)) {
			sr = step_cfi(&w, f->cfi, vaddr, &signal_frame, &ra);
		}
		if (sr == STEP_NO_CFI) {
			sr = step_fp(&w, &ra);
			if (sr == STEP_NEXT)
				res->fp_frames++;
			else if (sr == STEP_FAIL)
				sr = STEP_NO_CFI;
		}
		if (sr == STEP_END) {
			res->status = UNWIND_OK;
			break;
		}
		if (sr != STEP_NEXT) {
			if (w.past_copy)
				res->status = UNWIND_TRUNCATED;
			else if (sr == STEP_NO_CFI)
				res->status = m ? UNWIND_NO_CFI : UNWIND_NO_MAP;
			else
				res->status = UNWIND_BAD_CFI;
			break;
		}
		/* each caller's frame is above its callee's; a signal frame may
		 * switch stacks, but must still move */
		if (!reg_ok(&w, UNWIND_REG_SP) ||
		    (sp_known && !signal_frame && w.regs[UNWIND_REG_SP] <= sp) ||
		    (sp_known && w.regs[UNWIND_REG_SP] == sp && ra == pc)) {
			res->status = UNWIND_BAD_CFI;
			break;
		}
		pc = ra;
		exact = signal_frame;
	}
	u->st.unwinds++;
	u->st.frames += res->n;
	u->st.by_status[res->status]++;
	return 0;
}
