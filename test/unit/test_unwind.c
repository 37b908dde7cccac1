// SPDX-License-Identifier: GPL-2.0-only
/* The DWARF CFI unwinder on this process's own stack: a snapshot taken at the
 * end of a call chain built with -O2 -fomit-frame-pointer unwinds through
 * every link to main; the same snapshot cut short says truncated; hostile
 * input (garbage registers, a file that is not ELF) ends cleanly. */
#include "testutil.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/symbolize.h"
#include "base/unwind.h"
#include "unwind_chain.h"

#define MAX_MAPS 512

struct own_maps {
	struct unwind_map m[MAX_MAPS];
	char path[MAX_MAPS][256];
	unsigned n;
	uint64_t stack_end;
};

static void read_own_maps(struct own_maps *o)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[1024];

	assert_non_null(f);
	o->n = 0;
	while (fgets(line, sizeof(line), f) && o->n < MAX_MAPS) {
		unsigned long long start, end, pgoff, ino;
		unsigned maj, min;
		char perms[8], file[512] = "";

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %511[^\n]", &start, &end, perms,
			   &pgoff, &maj, &min, &ino, file) < 7)
			continue;
		if (strstr(file, "[stack]"))
			o->stack_end = end;
		if (perms[2] != 'x')
			continue;
		o->m[o->n] =
			(struct unwind_map){start, end, pgoff, ((uint64_t)maj << 32) | min, ino};
		if (strstr(file, "[vdso]"))
			o->m[o->n].dev = o->m[o->n].ino = UINT64_MAX;
		snprintf(o->path[o->n], sizeof(o->path[0]), "%s", file + strspn(file, " "));
		o->n++;
	}
	fclose(f);
}

static struct unwinder *u;
static struct own_maps maps;
static struct unwind_chain_snap snap;

static int setup(void **s)
{
	struct unwinder_opts o = {.cache_bytes = 64 << 20};

	(void)s;
	assert_int_equal(unwinder_new(&u, &o), 0);
	read_own_maps(&maps);
	assert_true(maps.stack_end != 0);
	snap.cap = 64 << 10;
	snap.stack = malloc(snap.cap);
	assert_non_null(snap.stack);
	snap.stack_end = maps.stack_end;
	assert_true(unwind_chain_01(unwind_chain_snapshot, &snap, 0) != 0);
	assert_true(snap.len > 0);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	unwinder_free(&u);
	free(snap.stack);
	return 0;
}

static void input_of(struct unwind_input *in, size_t stack_len)
{
	memset(in, 0, sizeof(*in));
	memcpy(in->regs, snap.regs, sizeof(snap.regs));
	in->regs_valid = (1ull << 3) | (1ull << 6) | (1ull << 7) | (0xfull << 12) | (1ull << 16);
	in->pc = snap.pc;
	in->stack = snap.stack;
	in->stack_len = stack_len;
	in->stack_addr = snap.stack_addr;
	in->maps = maps.m;
	in->nmaps = maps.n;
}

/* Unwinds, adding files as the unwinder asks for them. */
static void unwind(struct unwind_input *in, uint64_t *pcs, unsigned max, struct unwind_result *r)
{
	for (int tries = 0; tries < MAX_MAPS; tries++) {
		assert_int_equal(unwinder_unwind(u, in, pcs, max, r), 0);
		if (r->status != UNWIND_NEED_FILE)
			return;
		int fd = open(maps.path[r->need_map], O_RDONLY | O_CLOEXEC);

		unwinder_add_file(u, &maps.m[r->need_map], fd);
		if (fd >= 0)
			close(fd);
	}
	fail_msg("the unwinder kept asking for files");
}

static void names_of(const uint64_t *pcs, unsigned n, char names[][64])
{
	struct symbolizer_opts so = {.cache_bytes = 64 << 20};
	struct symbolizer *sym;

	assert_int_equal(symbolizer_new(&sym, &so), 0);
	for (unsigned i = 0; i < n; i++) {
		struct sym_frame f;

		symbolizer_user(sym, getpid(), pcs[i], &f);
		snprintf(names[i], 64, "%s", f.name[0] ? f.name : "?");
	}
	symbolizer_free(&sym);
}

static void test_chain_to_main(void **s)
{
	struct unwind_input in;
	struct unwind_result r;
	uint64_t pcs[128];
	char names[128][64], want[32];
	unsigned i, link = 0;
	bool main_seen = false;

	(void)s;
	input_of(&in, snap.len);
	unwind(&in, pcs, 128, &r);
	names_of(pcs, r.n, names);
	for (i = 0; i < r.n; i++)
		print_message("  #%u %#" PRIx64 " %s\n", i, pcs[i], names[i]);
	assert_int_equal(r.status, UNWIND_OK);
	assert_string_equal(names[0], "unwind_chain_snapshot");
	/* 12, 11, ... 01 in order, right above the leaf */
	for (link = 0; link < UNWIND_CHAIN_DEPTH; link++) {
		snprintf(want, sizeof(want), "unwind_chain_%02u", UNWIND_CHAIN_DEPTH - link);
		assert_string_equal(names[1 + link], want);
	}
	for (i = 1 + link; i < r.n; i++)
		main_seen |= strcmp(names[i], "main") == 0;
	assert_true(main_seen);
	assert_int_equal(r.fp_frames, 0);
}

static void test_short_copy_is_truncated(void **s)
{
	struct unwind_input in;
	struct unwind_result r;
	uint64_t pcs[128];

	(void)s;
	input_of(&in, 256);
	unwind(&in, pcs, 128, &r);
	assert_int_equal(r.status, UNWIND_TRUNCATED);
	assert_true(r.n >= 1 && r.n < UNWIND_CHAIN_DEPTH);
	/* a frame limit ends it the same way */
	input_of(&in, snap.len);
	unwind(&in, pcs, 4, &r);
	assert_int_equal(r.status, UNWIND_TRUNCATED);
	assert_int_equal(r.n, 4);
}

static void test_garbage_ends_cleanly(void **s)
{
	struct unwind_input in;
	struct unwind_result r;
	uint64_t pcs[128];
	uint64_t seed = 0x1234567;

	(void)s;
	for (int round = 0; round < 2000; round++) {
		input_of(&in, snap.len);
		for (int reg = 0; reg < 17; reg++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			if (round % 3 == 0)
				in.regs[reg] = seed;
			else if (reg == 7 || reg == 6) /* somewhere in the copy */
				in.regs[reg] = snap.stack_addr + (seed >> 40) % snap.len;
		}
		/* a pc somewhere in our own code */
		in.pc = maps.m[(seed >> 20) % maps.n].start + (seed >> 33) % 4096;
		unwind(&in, pcs, 128, &r);
		assert_true(r.n >= 1 && r.n <= 128);
		assert_true(r.status < UNWIND_STATUS_MAX && r.status != UNWIND_NEED_FILE);
	}
}

static void test_not_elf_is_refused_once(void **s)
{
	char path[] = "/tmp/autotrace-unwind-XXXXXX";
	struct unwind_map m = {0x1000, 0x2000, 0, 1, 424242};
	struct unwinder_stats st;
	int fd = mkstemp(path);

	(void)s;
	assert_true(fd >= 0);
	assert_int_equal(write(fd,
			       "\x7f"
			       "ELF garbage",
			       12),
			 12);
	assert_true(unwinder_add_file(u, &m, fd) < 0);
	unwinder_get_stats(u, &st);
	assert_true(st.files_refused >= 1);
	/* remembered: a pc in it falls back (no CFI) instead of asking again */
	{
		struct unwind_input in = {.pc = 0x1800, .maps = &m, .nmaps = 1};
		struct unwind_result r;
		uint64_t pcs[4];

		assert_int_equal(unwinder_unwind(u, &in, pcs, 4, &r), 0);
		assert_int_not_equal(r.status, UNWIND_NEED_FILE);
		assert_int_equal(r.n, 1);
	}
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_to_main),
		cmocka_unit_test(test_short_copy_is_truncated),
		cmocka_unit_test(test_garbage_ends_cleanly),
		cmocka_unit_test(test_not_elf_is_refused_once),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
