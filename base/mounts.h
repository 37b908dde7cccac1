/* SPDX-License-Identifier: GPL-2.0-only */
/* Names for what the kernel reports as numbers: a file system path + its
 * device -> the full path (mount table), a device number -> its name. */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct mounts;

/* Kernel dev_t (MKDEV: major << 20 | minor) <-> user-space numbers. */
#define KDEV_MAJOR(d)	  ((uint32_t)(d) >> 20)
#define KDEV_MINOR(d)	  ((uint32_t)(d)&0xfffff)
#define KDEV_MAKE(ma, mi) (((uint32_t)(ma) << 20) | ((uint32_t)(mi)&0xfffff))

/* Reads a mountinfo file ("/proc/self/mountinfo"); at most 4096 mounts. */
int mounts_new(struct mounts **out, const char *mountinfo);
void mounts_free(struct mounts **m);

/* The full path of fs_path (a path inside the file system on kdev, "/a/b"),
 * through the mount that shows it: the whole-file-system mount with the
 * shortest mount point, else a bind mount whose root contains it.
 * -ENOENT when no mount of kdev shows it (buf then holds "[M:m]/a/b"). */
int mounts_full_path(const struct mounts *m, uint32_t kdev, const char *fs_path, char *buf,
		     size_t len);

/* "vda", "nvme0n1p2", "dm-0" from /sys/dev/block; else the source of a mount
 * of it ("overlay", "tmpfs"); else "M:m". */
void device_name(const struct mounts *m, uint32_t kdev, char *buf, size_t len);

/* Path of the file (kdev, ino) among the open files of process pid, by
 * scanning /proc/<pid>/fd (at most 65536 entries). -ENOENT when not open. */
int proc_fd_path(const char *procfs, int pid, uint32_t kdev, uint64_t ino, char *buf, size_t len);
