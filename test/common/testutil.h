/* SPDX-License-Identifier: GPL-2.0-only */
/* Shared by the C tests. */
#pragma once
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/*
 * Tests that need root or BPF call this first. In CI they must fail, not skip,
 * when they cannot run; a developer may opt out with AUTOTRACE_TEST_ALLOW_SKIP=1,
 * which makes them exit 77 (ctest: skipped).
 */
void require_root_or_exit(const char *test);
/* AUTOTRACE_TEST_ALLOW_SKIP=1: the developer's explicit opt-out. A test that cannot check
 * what it is for fails without it, and may cmocka skip() with it. */
bool test_allow_skip(void);

/* mkdtemp under /tmp; returns a static buffer per call slot (0..3). */
const char *test_tmpdir(int slot);
/* Writes text to dir/name with mode; returns the full path (static buffer). */
const char *test_write_file(const char *dir, const char *name, const char *text, int mode);
/* rm -rf */
void test_rmtree(const char *path);
