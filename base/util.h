/* SPDX-License-Identifier: GPL-2.0-only */
/* Small helpers shared by every module: units, clocks, files. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))

/* "500ms", "3s", "10m", "2h", "7d" (a bare number is seconds) -> milliseconds. */
int parse_duration_ms(const char *s, uint64_t *out_ms);
/* "512MiB", "1GiB", "64KiB", "100MB", "4096" (bytes) -> bytes. */
int parse_size(const char *s, uint64_t *out);
/* Strict base-10 unsigned / signed / floating parse of a whole string. */
int parse_u64(const char *s, uint64_t *out);
int parse_double(const char *s, double *out);
int parse_bool(const char *s, bool *out);

/* Human forms: "1.5s", "10m", "512MiB". */
void format_duration(uint64_t ms, char *buf, size_t len);
void format_size(uint64_t bytes, char *buf, size_t len);

uint64_t now_mono_ns(void);
uint64_t now_real_ms(void);
/* CPU time this process used, user + system, in ns. */
uint64_t process_cpu_ns(void);
/* ISO-8601 UTC with milliseconds: 2026-11-22T11:33:47.123Z */
void format_iso8601(uint64_t real_ms, char *buf, size_t len);

/* mkdir -p, every created component with mode. */
int mkdir_p(const char *path, mode_t mode);
/* Write path atomically: a temp file created O_EXCL under an unpredictable
 * name in the same dir, fsync, rename, fsync dir. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Read at most max bytes of a file into a NUL-terminated malloc'd buffer. */
int read_file(const char *path, size_t max, char **out, size_t *out_len);
/* Remove a directory tree (no symlink following). */
int remove_tree(const char *path);
/* Copy src into dst (always NUL-terminated); returns -ENAMETOOLONG on truncation. */
int copy_str(char *dst, size_t dstlen, const char *src);
/*
 * Make room to bind a unix socket at path: nothing there is 0; a socket nobody listens on
 * is removed (0, *removed set); -EEXIST when path is not a socket, -EADDRINUSE when
 * something listens on it. Callers log in their own words.
 */
int unix_socket_clear_stale(const char *path, bool *removed);

/* Security rule: files the root agent trusts must not be writable by others. */
int check_trusted_file(const char *path, char *why, size_t whylen);
