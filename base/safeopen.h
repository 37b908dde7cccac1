/* SPDX-License-Identifier: GPL-2.0-only */
/* Opening files a tenant controls without being led anywhere else.
 *
 * A container's files are reached through /proc/PID/root, and a plain open()
 * of "/proc/PID/root/tmp/perf-1.map" follows an absolute symlink in it to the
 * HOST's file. open_in_root() resolves every path component as if the
 * process's root were "/": absolute symlinks and ".." stay inside it, procfs
 * magic links are refused. It uses openat2(RESOLVE_IN_ROOT |
 * RESOLVE_NO_MAGICLINKS) (Linux 5.6), and on kernels without it walks the
 * path one component at a time with O_PATH | O_NOFOLLOW, reading each
 * symlink itself. Either way only regular files are returned, opened
 * O_NONBLOCK (a FIFO or a device never blocks the agent), and never one
 * larger than the caller's cap: sizes are checked before anything is read. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* Opens path (absolute or relative, interpreted inside rootfd's tree) for
 * reading. max_size 0: no cap. Returns the fd, or -ELOOP (too many links,
 * or a magic link), -EINVAL (not a regular file), -EFBIG (over max_size),
 * -ENOENT... st (optional) receives the file's stat. */
int open_in_root(int rootfd, const char *path, uint64_t max_size, struct stat *st);
/* open_in_root under /proc/PID/root of procfs ("/proc"). */
int open_in_proc_root(const char *procfs, int pid, const char *path, uint64_t max_size,
		      struct stat *st);
/* A trusted path (procfs, the host's own files): followed as the kernel
 * does, then the same regular-file and size checks. */
int open_regular(const char *path, uint64_t max_size, struct stat *st);

/* Tests: take the fallback walk even where openat2 exists. */
extern bool safeopen_force_fallback;
/* Whether the running kernel has openat2 (probed once). */
bool safeopen_have_openat2(void);
