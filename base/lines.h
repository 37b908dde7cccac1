/* SPDX-License-Identifier: GPL-2.0-only */
/* Line by line reading of files whose lines a tenant can make long
 * (/proc/PID/maps paths, perf maps, kallsyms of odd modules): a line is
 * returned whole or, when longer than the reader's maximum, skipped whole and
 * counted. fgets() into a fixed buffer would instead hand its tail back as
 * the next, attacker-shaped, line. */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct linereader;

/* Takes fd (closed by linereader_free). max_line: longest line kept. */
int linereader_new(struct linereader **out, int fd, size_t max_line);
int linereader_open(struct linereader **out, const char *path, size_t max_line);
/* 1 with *line (NUL-terminated, no '\n') of *len bytes, valid until the next
 * call; 0 at the end; -errno. A NUL inside a line ends what callers see of
 * it; *len still counts the whole line. */
int linereader_next(struct linereader *lr, char **line, size_t *len);
/* Lines skipped for being longer than max_line. */
uint64_t linereader_dropped(const struct linereader *lr);
void linereader_free(struct linereader **lr);
