/* SPDX-License-Identifier: GPL-2.0-only */
/* iotrace: IO per process x per file, at the file system (syscalls) and the
 * disk (block requests), plus stacks of tasks blocked on IO. ABI with iotrace.bpf.c. */
#pragma once
#include "filter.h"
#ifndef __VMLINUX_H__
typedef __u8 u8;
#endif

#define IOTRACE_PATH_MAX      256 /* bytes of path kept per file: the tail when longer */
#define IOTRACE_PATH_DEPTH    32  /* directory levels walked up from a file */
#define IOTRACE_STACK_DEPTH   127 /* frames per blocked stack, each side */
#define IOTRACE_COMM_LEN      16
#define IOTRACE_SYSCALL_TABLE 512 /* system call numbers below this are looked up */

/* what a system call number means to iotrace (rw_syscall_dir[nr]) */
enum io_syscall_dir { IO_SYSCALL_NONE = 0, IO_SYSCALL_READ = 1, IO_SYSCALL_WRITE = 2 };

/* What a (process, file) key names. Disk IO that is not file data gets a
 * pseudo file per device (inode 0). */
enum io_kind {
	IO_FILE = 0,	 /* a regular file (or a block device file opened directly) */
	IO_METADATA = 1, /* block device page cache: file system metadata, journal */
	IO_ANON = 2,	 /* anonymous memory: swap, or direct IO not done by a read/write call */
	IO_UNKNOWN = 3,	 /* pages with no mapping (driver or file system private) */
};

enum io_dir { IO_READ = 0, IO_WRITE = 1 };

struct io_key {
	u32 tgid;
	u32 dev; /* kernel dev_t (major << 20 | minor) of the file system, or of the disk */
	u64 ino;
	u32 kind; /* enum io_kind */
	u32 pad;
};

/* fs level, per CPU: what read/write system calls moved */
struct io_fs_val {
	u64 bytes[2]; /* enum io_dir */
	u64 calls[2];
};

/* disk level: completed block requests attributed to (process, file) */
struct io_disk_val {
	u64 bytes[2];
	u64 requests[2];
	u64 q2c_sum_ns, q2c_max_ns; /* request allocated (~queued) -> completed */
	u64 d2c_sum_ns, d2c_max_ns; /* issued to the driver -> completed */
	u64 writeback_bytes;	    /* written by a flusher thread for this process's dirt */
	u32 disk;		    /* last disk (kernel dev_t) the requests went to */
	u32 pad;
};

struct io_file_key {
	u64 ino;
	u32 dev;
	u32 pad;
};

#define IO_PATH_TRUNCATED 1u /* deeper than IOTRACE_PATH_DEPTH or longer than the buffer */
#define IO_PATH_NO_DENTRY 2u /* the inode had no dentry to name it */

struct io_file_info {
	u32 mode;  /* i_mode */
	u32 flags; /* IO_PATH_* */
	/* the path inside its file system ("/dir/file"); user space adds the mount point */
	char path[IOTRACE_PATH_MAX];
};

struct io_proc_info {
	u64 cgroup_id;
	char comm[IOTRACE_COMM_LEN]; /* the process (thread group leader) name */
};

#define IO_PENDING_WRITEBACK 1u /* submitted by a kernel thread for a recorded dirtier */

/* a block request between allocation and completion */
struct io_pending {
	u64 q_ns;
	u64 d_ns;
	u64 sector; /* of the first bio: a recycled bio address with a stale entry differs */
	struct io_key key;
	u32 flags; /* IO_PENDING_* */
	u32 pad;
};

struct io_dev_val {
	u64 bytes[2];
	u64 requests[2];
	u64 q2c_sum_ns, q2c_max_ns;
	u64 d2c_sum_ns, d2c_max_ns;
};

/* a task that went to sleep in io_schedule() */
struct io_blocked_start {
	u64 ts;
	s32 kern_stack_id;
	s32 user_stack_id;
};

struct io_blocked_key {
	u32 tgid;
	u32 pid;
	s32 kern_stack_id;
	s32 user_stack_id;
	u64 cgroup_id;
	char comm[IOTRACE_COMM_LEN];
};

struct io_blocked_val {
	u64 count;
	u64 total_ns;
	u64 max_ns;
};

enum io_stat {
	IO_STAT_FS_CALLS,	    /* read/write calls counted */
	IO_STAT_FS_KEYS_FULL,	    /* calls lost: (process, file) map full */
	IO_STAT_DISK_REQUESTS,	    /* requests attributed */
	IO_STAT_DISK_KEYS_FULL,	    /* requests lost: (process, file) map full */
	IO_STAT_PENDING_FULL,	    /* requests lost: in-flight map full */
	IO_STAT_WRITEBACK,	    /* requests a flusher issued, attributed to the dirtier */
	IO_STAT_WRITEBACK_ANON,	    /* flusher requests with no recorded dirtier */
	IO_STAT_FILES_FULL,	    /* files left unnamed: file map full */
	IO_STAT_PROCS_FULL,	    /* processes left unnamed: process map full */
	IO_STAT_BLOCKED,	    /* blocks on IO at or over the threshold */
	IO_STAT_BLOCKED_FULL,	    /* such blocks lost: stack-key map full */
	IO_STAT_BLOCKED_START_FULL, /* blocks not timed: start map full */
	IO_STAT_STACK_LOST,	    /* stacks lost: the stack store full (stackstore.bpf.h) */
	IO_STAT_DEVS_FULL,	    /* requests left out of the per-device table */
	IO_STAT_MAX
};

_Static_assert(sizeof(struct io_key) == 24, "io_key ABI");
_Static_assert(sizeof(struct io_fs_val) == 32, "io_fs_val ABI");
_Static_assert(sizeof(struct io_disk_val) == 80, "io_disk_val ABI");
_Static_assert(sizeof(struct io_file_key) == 16, "io_file_key ABI");
_Static_assert(sizeof(struct io_file_info) == 8 + IOTRACE_PATH_MAX, "io_file_info ABI");
_Static_assert(sizeof(struct io_proc_info) == 24, "io_proc_info ABI");
_Static_assert(sizeof(struct io_pending) == 56, "io_pending ABI");
_Static_assert(sizeof(struct io_dev_val) == 64, "io_dev_val ABI");
_Static_assert(sizeof(struct io_blocked_start) == 16, "io_blocked_start ABI");
_Static_assert(sizeof(struct io_blocked_key) == 40, "io_blocked_key ABI");
_Static_assert(sizeof(struct io_blocked_val) == 24, "io_blocked_val ABI");
