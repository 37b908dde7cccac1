// SPDX-License-Identifier: GPL-2.0-only
/* Folded-stack aggregation and the top-stacks list, against a crafted kallsyms. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sanitize.h"
#include "base/stacks.h"
#include "base/symbolize.h"

static const char *procfs;
static struct symbolizer *sym;

static int setup(void **state)
{
	struct symbolizer_opts o = {.cache_bytes = 1 << 20};

	procfs = test_tmpdir(0);
	test_write_file(procfs, "kallsyms",
			"ffffffff81000000 T entry_SYSCALL_64\n"
			"ffffffff81000100 T do_syscall_64\n"
			"ffffffff81000200 t ksys_read\n"
			"ffffffff81000300 d some_data\n"
			"ffffffffc0000000 t ext4_read [ext4]\n",
			0600);
	o.procfs = procfs;
	assert_int_equal(symbolizer_new(&sym, &o), 0);
	return 0;
}

static int teardown(void **state)
{
	symbolizer_free(&sym);
	test_rmtree(procfs);
	return 0;
}

static void add(struct stackset *ss, uint32_t pid, const char *comm, const uint64_t *k, unsigned nk,
		uint64_t value)
{
	struct stack_sample s = {
		.tgid = pid, .pid = pid, .comm = comm, .kstack = k, .nk = nk, .value = value};

	assert_int_equal(stackset_add(ss, &s), 0);
}

static void test_folded_merges_equal_symbols(void **state)
{
	/* leaf first: two raw stacks that differ only in offsets within the same functions */
	const uint64_t a[] = {0xffffffff81000210, 0xffffffff81000110, 0xffffffff81000010};
	const uint64_t b[] = {0xffffffff81000250, 0xffffffff81000150, 0xffffffff81000020};
	const uint64_t c[] = {0xffffffffc0000010, 0xffffffff81000110};
	struct stackset_render_opts o = {
		.top_n = 10, .folded_max = 1 << 20, .value_key = "samples", .sym = sym};
	struct stackset_render r;
	struct stackset *ss;

	assert_int_equal(stackset_new(&ss, 100), 0);
	add(ss, 42, "reader", a, 3, 5);
	add(ss, 42, "reader", b, 3, 7);
	add(ss, 43, "my;odd comm", c, 2, 1);
	assert_int_equal(stackset_render(ss, &o, &r), 0);

	assert_string_equal(r.folded,
			    "my_odd_comm;do_syscall_64_[k];ext4_read_[k] 1\n"
			    "reader;entry_SYSCALL_64_[k];do_syscall_64_[k];ksys_read_[k] 12\n");
	assert_int_equal(r.total, 13);
	assert_int_equal(r.folded_dropped, 0);

	/* top list: merged per thread, largest first, frames leaf first */
	assert_int_equal(json_array_size(r.top), 2);
	json_t *top = json_array_get(r.top, 0);
	assert_int_equal(json_integer_value(json_object_get(top, "samples")), 12);
	assert_int_equal(json_integer_value(json_object_get(top, "pid")), 42);
	assert_string_equal(json_string_value(json_object_get(top, "comm")), "reader");
	json_t *f0 = json_array_get(json_object_get(top, "frames"), 0);
	assert_string_equal(json_string_value(json_object_get(f0, "func")), "ksys_read");
	assert_true(json_is_true(json_object_get(f0, "kernel")));
	json_t *other = json_array_get(r.top, 1);
	json_t *mod = json_array_get(json_object_get(other, "frames"), 0);
	assert_string_equal(json_string_value(json_object_get(mod, "module")), "[ext4]");
	assert_int_equal(json_integer_value(json_object_get(mod, "offset")), 0x10);

	stackset_render_clear(&r);
	stackset_free(&ss);
}

static void test_bounds_are_counted(void **state)
{
	const uint64_t a[] = {0xffffffff81000210};
	const uint64_t b[] = {0xffffffff81000110};
	const uint64_t unknown[] = {0x10};
	struct stackset_render_opts o = {
		.top_n = 1, .folded_max = 40, .value_key = "samples", .sym = sym};
	struct stack_sample s = {
		.tgid = 1, .pid = 1, .comm = "x", .kstack = a, .nk = 1, .value = 1};
	struct stackset_render r;
	struct stackset *ss;

	assert_int_equal(stackset_new(&ss, 3), 0);
	add(ss, 1, "big", a, 1, 100);
	add(ss, 2, "small", b, 1, 1);
	add(ss, 3, "odd", unknown, 1, 1);
	/* full: the fourth entry is refused and counted */
	assert_int_equal(stackset_add(ss, &s), -ENOSPC);
	assert_int_equal(stackset_dropped(ss), 1);
	assert_int_equal(stackset_render(ss, &o, &r), 0);
	/* top_n = 1 keeps the largest; 40 bytes of folded text keep only it too */
	assert_int_equal(json_array_size(r.top), 1);
	assert_string_equal(r.folded, "big;ksys_read_[k] 100\n");
	assert_int_equal(r.folded_dropped, 2);
	stackset_render_clear(&r);
	stackset_free(&ss);
}

static void test_unresolved_frames_keep_addresses(void **state)
{
	const uint64_t k[] = {0x10};
	const uint64_t u[] = {0x7f0000001000};
	struct stack_sample s = {.tgid = 999999,
				 .pid = 999999,
				 .comm = "gone",
				 .kstack = k,
				 .nk = 1,
				 .ustack = u,
				 .nu = 1,
				 .value = 3};
	struct stackset_render_opts o = {
		.top_n = 5, .folded_max = 1 << 20, .value_key = "samples", .sym = sym};
	struct stackset_render r;
	struct stackset *ss;

	assert_int_equal(stackset_new(&ss, 4), 0);
	assert_int_equal(stackset_add(ss, &s), 0);
	assert_int_equal(stackset_render(ss, &o, &r), 0);
	assert_string_equal(r.folded, "gone;0x7f0000001000;0x10_[k] 3\n");
	json_t *frames = json_object_get(json_array_get(r.top, 0), "frames");
	assert_string_equal(json_string_value(json_object_get(json_array_get(frames, 1), "addr")),
			    "0x7f0000001000");
	stackset_render_clear(&r);
	stackset_free(&ss);
}

/* A process name is its own to choose: escapes, newlines, separators and
 * bytes cut mid-character stay out of the folded text's structure. */
static void test_hostile_comm(void **state)
{
	const uint64_t a[] = {0xffffffff81000110, 0xffffffff81000010};
	struct stackset_render_opts o = {
		.top_n = 10, .folded_max = 1 << 20, .value_key = "samples", .sym = sym};
	struct stackset_render r;
	struct stackset *ss;
	unsigned lines = 0;

	assert_int_equal(stackset_new(&ss, 100), 0);
	add(ss, 1, "a;b c\n9 x", a, 2, 5);
	add(ss, 2, "\x1b]0;pwn\x07", a, 2, 6);
	add(ss, 3, "cut\xe2\x82", a, 2, 7);
	assert_int_equal(stackset_render(ss, &o, &r), 0);
	assert_true(utf8_valid(r.folded, r.folded_len));
	for (size_t i = 0; i < r.folded_len; i++) {
		assert_true((unsigned char)r.folded[i] >= 0x20 || r.folded[i] == '\n');
		lines += r.folded[i] == '\n';
	}
	assert_int_equal(lines, 3);
	assert_non_null(strstr(r.folded, "a_b_c?9_x;"));
	assert_non_null(strstr(r.folded, "cut??;"));
	assert_int_equal(json_array_size(r.top), 3);
	for (size_t i = 0; i < 3; i++)
		assert_non_null(
			json_string_value(json_object_get(json_array_get(r.top, i), "comm")));
	stackset_render_clear(&r);
	stackset_free(&ss);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_folded_merges_equal_symbols),
		cmocka_unit_test(test_bounds_are_counted),
		cmocka_unit_test(test_unresolved_frames_keep_addresses),
		cmocka_unit_test(test_hostile_comm),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
