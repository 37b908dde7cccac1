// SPDX-License-Identifier: GPL-2.0-only
/*
 * iotrace: IO per process x per file, without kprobes.
 *
 * fs level: the raw system call exit tracepoint, for the read/write family; the
 * file comes from the fd in the caller's saved registers (no enter hook, no
 * per-call map).
 * disk level: a block request is attributed when it is allocated (block_getrq,
 * in the submitter's context): to the file of its first page (page cache IO),
 * or of the O_DIRECT fd of the read/write call the submitter is in; flusher
 * threads' writeback goes to the process that dirtied the file
 * (writeback_dirty_folio). block_rq_issue / block_rq_complete time it.
 * Blocked on IO: sched_switch, only for tasks sleeping in io_schedule().
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "filter.bpf.h"
#include "iotrace.h"

#define S_IFMT_	     0170000
#define S_IFREG_     0100000
#define S_IFBLK_     0060000
#define EEXIST_	     17
#define EFAULT_	     14
#define REQ_OP_MASK_ 0xff

/* set by user space before load: this architecture's values */
const volatile u32 o_direct_flag = 0;
/* system call number -> enum io_syscall_dir, for the read/write family */
const volatile u8 rw_syscall_dir[IOTRACE_SYSCALL_TABLE] = {};
/* set by user space for each window */
volatile u64 blocked_threshold_ns;

/* max_entries of the (process, file) and file maps: capture.max_files */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct io_key);
	__type(value, struct io_fs_val);
} fsio SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct io_key);
	__type(value, struct io_disk_val);
} diskio SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct io_file_key);
	__type(value, struct io_file_info);
} files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct io_proc_info);
} procs SEC(".maps");

/* file -> the target process that last dirtied its pages */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct io_file_key);
	__type(value, u32);
} dirtiers SEC(".maps");

/* bios with a request allocated, until issued (never-issued ones age out) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, struct io_pending);
} pending SEC(".maps");

/* requests issued to the driver, until completed */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, struct io_pending);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, u32);
	__type(value, struct io_dev_val);
} devs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, struct io_blocked_start);
} blocked_start SEC(".maps");

/* max_entries of these two: set by user space */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__type(key, struct io_blocked_key);
	__type(value, struct io_blocked_val);
} blocked SEC(".maps");

#define STACKSTORE_DEPTH IOTRACE_STACK_DEPTH
#include "stackstore.bpf.h"

struct path_scratch {
	struct io_file_info fi;
	char buf[2 * IOTRACE_PATH_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct path_scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, IO_STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void stat_inc(u32 which)
{
	u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		(*v)++;
}

static __always_inline void max_update(u64 *slot, u64 v)
{
	/* racy by design: a lost update only understates one maximum */
	if (v > *slot)
		*slot = v;
}

static __always_inline bool data_mode(u32 mode)
{
	mode &= S_IFMT_;
	return mode == S_IFREG_ || mode == S_IFBLK_;
}

/* The file system path of a dentry, written backwards from the end of a
 * scratch buffer, then copied to the front of fi->path. */
static __always_inline void dentry_path(struct dentry *d, struct path_scratch *s)
{
	u32 off = IOTRACE_PATH_MAX - 1;
	u32 len;
	int i;

	s->buf[off] = '\0';
	for (i = 0; i < IOTRACE_PATH_DEPTH; i++) {
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		const unsigned char *name;

		if (!parent || parent == d)
			break;
		len = BPF_CORE_READ(d, d_name.len);
		name = BPF_CORE_READ(d, d_name.name);
		if (len == 0 || len > 255 || len + 1 > off) {
			s->fi.flags |= IO_PATH_TRUNCATED;
			break;
		}
		off -= len;
		bpf_probe_read_kernel(&s->buf[off & (IOTRACE_PATH_MAX - 1)], len & 255, name);
		off -= 1;
		s->buf[off & (IOTRACE_PATH_MAX - 1)] = '/';
		d = parent;
	}
	if (i == IOTRACE_PATH_DEPTH)
		s->fi.flags |= IO_PATH_TRUNCATED;
	if (off == IOTRACE_PATH_MAX - 1) {
		/* the root itself */
		off -= 1;
		s->buf[off & (IOTRACE_PATH_MAX - 1)] = '/';
	}
	len = IOTRACE_PATH_MAX - off;
	bpf_probe_read_kernel(s->fi.path, len & (IOTRACE_PATH_MAX - 1),
			      &s->buf[off & (IOTRACE_PATH_MAX - 1)]);
}

/* Names a file once per window: by the dentry the caller used, else by any
 * dentry of the inode (page cache and writeback IO come with an inode only). */
static __always_inline void note_file(struct inode *inode, struct dentry *d, u32 dev, u64 ino)
{
	struct io_file_key fk = {.ino = ino, .dev = dev};
	struct path_scratch *s;
	u32 zero = 0;

	if (bpf_map_lookup_elem(&files, &fk))
		return;
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return;
	s->fi.mode = BPF_CORE_READ(inode, i_mode);
	s->fi.flags = 0;
	s->fi.path[0] = '\0';
	if (!d) {
		struct hlist_node *alias = BPF_CORE_READ(inode, i_dentry.first);

		if (alias)
			d = (struct dentry *)((void *)alias -
					      bpf_core_field_offset(struct dentry, d_u.d_alias));
	}
	if (d)
		dentry_path(d, s);
	else
		s->fi.flags |= IO_PATH_NO_DENTRY;
	if (bpf_map_update_elem(&files, &fk, &s->fi, BPF_NOEXIST) == -7 /* E2BIG: full */)
		stat_inc(IO_STAT_FILES_FULL);
}

static __always_inline void note_proc(struct task_struct *task, u32 tgid, u64 cgid)
{
	struct io_proc_info pi = {.cgroup_id = cgid};

	if (bpf_map_lookup_elem(&procs, &tgid))
		return;
	BPF_CORE_READ_STR_INTO(&pi.comm, task, group_leader, comm);
	if (bpf_map_update_elem(&procs, &tgid, &pi, BPF_NOEXIST) == -7)
		stat_inc(IO_STAT_PROCS_FULL);
}

/* The open file behind fd in the current task. The walk to the fd array uses
 * plain (fault-tolerant) loads from the BTF-typed task: no helper calls. */
static __always_inline struct file *current_fd_file(long fd)
{
	struct file **fdarr, *file = NULL;
	unsigned int max_fds;

	if (HAVE_HELPER(get_current_task_btf)) {
		struct task_struct *task = bpf_get_current_task_btf();
		struct fdtable *fdt = task->files->fdt;

		max_fds = fdt->max_fds;
		fdarr = fdt->fd;
	} else {
		/* before 5.11: the same walk with probe reads */
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);

		max_fds = BPF_CORE_READ(fdt, max_fds);
		fdarr = BPF_CORE_READ(fdt, fd);
	}
	if (fd < 0 || (u64)fd >= max_fds)
		return NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fdarr[fd]);
	return file;
}

/* Is the task inside one of the read/write calls? Then its fd is argument 1. */
static __always_inline bool in_rw_syscall(struct pt_regs *regs)
{
	long nr = regs_syscall_nr(regs);

	return nr >= 0 && nr < IOTRACE_SYSCALL_TABLE &&
	       rw_syscall_dir[nr & (IOTRACE_SYSCALL_TABLE - 1)];
}

/* ---- fs level ---- */

static __always_inline int fs_account(long ret, int dir, long fd)
{
	struct capture_filter *f;
	struct task_struct *task;
	struct io_key key = {};
	struct io_fs_val *v;
	struct inode *inode;
	struct file *file;
	u32 tgid;

	f = get_filter();
	if (!f)
		return 0;
	tgid = bpf_get_current_pid_tgid() >> 32;
	/* cheapest rejections first: another process, then not a file's data */
	if (f->mode == FILTER_TGID && tgid != f->tgid)
		return 0;
	file = current_fd_file(fd);
	if (!file)
		return 0;
	inode = BPF_CORE_READ(file, f_inode);
	if (!inode || !data_mode(BPF_CORE_READ(inode, i_mode)))
		return 0; /* pipes, sockets, character devices */
	task = current_task();
	if (f->mode == FILTER_CGROUP && !filter_match(f, task, tgid, task_cgid(f, task)))
		return 0;
	key.tgid = tgid;
	key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(inode, i_ino);
	key.kind = IO_FILE;
	v = bpf_map_lookup_elem(&fsio, &key);
	if (!v) {
		struct io_fs_val zero = {};
		long err = bpf_map_update_elem(&fsio, &key, &zero, BPF_NOEXIST);

		if (err && err != -EEXIST_) {
			stat_inc(IO_STAT_FS_KEYS_FULL);
			return 0;
		}
		v = bpf_map_lookup_elem(&fsio, &key);
		if (!v)
			return 0;
		note_file(inode, BPF_CORE_READ(file, f_path.dentry), key.dev, key.ino);
		note_proc(task, tgid, task_cgid(f, task));
	}
	/* per-CPU value: plain adds */
	v->bytes[dir & 1] += ret;
	v->calls[dir & 1]++;
	stat_inc(IO_STAT_FS_CALLS);
	return 0;
}

/*
 * Every system call exit passes here while capturing (one raw tracepoint:
 * attaching and detaching ten per-call tracepoints costs ~80 ms each in RCU
 * grace periods). Calls that moved no data, or are not a read/write, leave
 * after two loads.
 */
static __always_inline int sys_exit(long nr, long ret, struct pt_regs *regs)
{
	u8 dir;

	if (nr < 0 || nr >= IOTRACE_SYSCALL_TABLE)
		return 0;
	dir = rw_syscall_dir[nr & (IOTRACE_SYSCALL_TABLE - 1)];
	if (!dir)
		return 0;
	return fs_account(ret, dir == IO_SYSCALL_WRITE ? IO_WRITE : IO_READ,
			  PT_REGS_PARM1_CORE_SYSCALL(regs));
}

SEC("tp_btf/sys_exit")
int BPF_PROG(io_sys_exit_btf, struct pt_regs *regs, long ret)
{
	if (ret <= 0)
		return 0;
	return sys_exit(REGS_SYSCALL_NR_BTF(regs), ret, regs);
}

SEC("raw_tp/sys_exit")
int BPF_PROG(io_sys_exit_raw, struct pt_regs *regs, long ret)
{
	if (ret <= 0)
		return 0;
	return sys_exit(regs_syscall_nr(regs), ret, regs);
}

/* ---- who dirtied what ---- */

static __always_inline int dirty(struct address_space *mapping)
{
	struct capture_filter *f = get_filter();
	struct io_file_key fk = {};
	struct task_struct *task;
	struct inode *inode;
	u32 tgid, *cur;
	u64 cgid;

	if (!f || !mapping)
		return 0;
	tgid = bpf_get_current_pid_tgid() >> 32;
	if (f->mode == FILTER_TGID && tgid != f->tgid)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	if (task_is_kthread(task))
		return 0;
	cgid = task_cgid(f, task);
	if (!filter_match(f, task, tgid, cgid))
		return 0;
	inode = BPF_CORE_READ(mapping, host);
	if (!inode)
		return 0;
	fk.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	fk.ino = BPF_CORE_READ(inode, i_ino);
	cur = bpf_map_lookup_elem(&dirtiers, &fk);
	if (cur && *cur == tgid)
		return 0;
	bpf_map_update_elem(&dirtiers, &fk, &tgid, BPF_ANY);
	note_proc(task, tgid, cgid);
	return 0;
}

SEC("tp_btf/writeback_dirty_folio")
int BPF_PROG(io_dirty_folio_btf, struct folio *folio, struct address_space *mapping)
{
	return dirty(mapping);
}

SEC("raw_tp/writeback_dirty_folio")
int BPF_PROG(io_dirty_folio_raw, struct folio *folio, struct address_space *mapping)
{
	return dirty(mapping);
}

/* before 5.17 */
SEC("tp_btf/writeback_dirty_page")
int BPF_PROG(io_dirty_page_btf, struct page *page, struct address_space *mapping)
{
	return dirty(mapping);
}

SEC("raw_tp/writeback_dirty_page")
int BPF_PROG(io_dirty_page_raw, struct page *page, struct address_space *mapping)
{
	return dirty(mapping);
}

/* ---- disk level ---- */

/* A request is being allocated for bio, in the context of whoever submits it. */
static __always_inline int request_start(struct bio *bio)
{
	struct capture_filter *f = get_filter();
	struct io_pending p = {};
	struct task_struct *task;
	struct inode *inode = NULL;
	struct dentry *dentry = NULL;
	struct bio_vec *bvec;
	struct page *page;
	u64 id, cgid, bio_key = (u64)bio;
	unsigned long mapping;
	u32 tgid, *dirtier;
	bool kthread;

	if (!f || !bio)
		return 0;
	id = bpf_get_current_pid_tgid();
	tgid = id >> 32;
	task = (struct task_struct *)bpf_get_current_task();
	kthread = task_is_kthread(task);
	/* a flusher's IO may belong to the target: only user tasks are rejected early */
	if (f->mode == FILTER_TGID && tgid != f->tgid && !kthread)
		return 0;

	/* direct IO from a read/write call: the pages are the caller's buffer */
	if (!kthread) {
		struct pt_regs *regs = current_user_regs();

		if (regs && in_rw_syscall(regs)) {
			struct file *file = current_fd_file(PT_REGS_PARM1_CORE_SYSCALL(regs));

			if (file && (BPF_CORE_READ(file, f_flags) & o_direct_flag)) {
				inode = BPF_CORE_READ(file, f_inode);
				dentry = BPF_CORE_READ(file, f_path.dentry);
			}
		}
	}
	if (!inode) {
		u32 idx = BPF_CORE_READ(bio, bi_iter.bi_idx);

		bvec = BPF_CORE_READ(bio, bi_io_vec);
		page = NULL;
		if (bvec)
			bpf_probe_read_kernel(&page, sizeof(page), &bvec[idx & 0xffff].bv_page);
		mapping = page ? page_mapping_raw(page) : 0;
		if (!mapping) {
			p.key.kind = IO_UNKNOWN;
		} else if (mapping & 3) {
			p.key.kind = IO_ANON;
		} else {
			inode = BPF_CORE_READ((struct address_space *)mapping, host);
			if (!inode)
				p.key.kind = IO_UNKNOWN;
		}
	}
	if (inode) {
		u32 mode = BPF_CORE_READ(inode, i_mode);

		if ((mode & S_IFMT_) == S_IFBLK_ && !dentry) {
			/* the block device's own page cache: metadata, journal */
			p.key.kind = IO_METADATA;
			inode = NULL;
		} else {
			p.key.kind = IO_FILE;
			p.key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
			p.key.ino = BPF_CORE_READ(inode, i_ino);
		}
	}
	if (p.key.kind != IO_FILE)
		p.key.dev = bio_dev(bio);

	if (kthread && p.key.kind == IO_FILE) {
		struct io_file_key fk = {.ino = p.key.ino, .dev = p.key.dev};

		dirtier = bpf_map_lookup_elem(&dirtiers, &fk);
		if (dirtier) {
			/* writeback: the process that dirtied the file is the one to name */
			p.key.tgid = *dirtier;
			p.flags |= IO_PENDING_WRITEBACK;
		}
	}
	if (!(p.flags & IO_PENDING_WRITEBACK)) {
		if (kthread && p.key.kind == IO_FILE)
			stat_inc(IO_STAT_WRITEBACK_ANON);
		cgid = task_cgid(f, task);
		if (!filter_match(f, task, tgid, cgid))
			return 0;
		p.key.tgid = tgid;
		note_proc(task, tgid, cgid);
	}
	if (inode)
		note_file(inode, dentry, p.key.dev, p.key.ino);
	p.q_ns = bpf_ktime_get_ns();
	p.sector = BPF_CORE_READ(bio, bi_iter.bi_sector);
	if (bpf_map_update_elem(&pending, &bio_key, &p, BPF_ANY))
		stat_inc(IO_STAT_PENDING_FULL);
	return 0;
}

SEC("tp_btf/block_getrq")
int BPF_PROG(io_getrq_btf, struct bio *bio)
{
	return request_start(bio);
}

SEC("raw_tp/block_getrq")
int BPF_PROG(io_getrq_raw, struct bio *bio)
{
	return request_start(bio);
}

/* Before 5.11 the block tracepoints also passed the request queue:
 * block_getrq(q, bio, rw), block_bio_frontmerge(q, rq, bio) and
 * block_rq_issue(q, rq). User space loads the *_old programs there. */
SEC("tp_btf/block_getrq")
int BPF_PROG(io_getrq_btf_old, struct request_queue *q, struct bio *bio, int rw)
{
	return request_start(bio);
}

SEC("raw_tp/block_getrq")
int BPF_PROG(io_getrq_raw_old, struct request_queue *q, struct bio *bio, int rw)
{
	return request_start(bio);
}

SEC("tp_btf/block_bio_frontmerge")
int BPF_PROG(io_frontmerge_btf_old, struct request_queue *q, struct request *rq, struct bio *bio)
{
	return request_start(bio);
}

SEC("raw_tp/block_bio_frontmerge")
int BPF_PROG(io_frontmerge_raw_old, struct request_queue *q, struct request *rq, struct bio *bio)
{
	return request_start(bio);
}

/* a bio merged in front of a request becomes its first bio */
SEC("tp_btf/block_bio_frontmerge")
int BPF_PROG(io_frontmerge_btf, struct bio *bio)
{
	return request_start(bio);
}

SEC("raw_tp/block_bio_frontmerge")
int BPF_PROG(io_frontmerge_raw, struct bio *bio)
{
	return request_start(bio);
}

static __always_inline int request_issue(struct request *rq)
{
	u64 rq_key = (u64)rq, bio_key;
	struct io_pending *p;

	p = bpf_map_lookup_elem(&inflight, &rq_key);
	if (p) {
		/* requeued and issued again: time the last dispatch */
		p->d_ns = bpf_ktime_get_ns();
		return 0;
	}
	bio_key = (u64)BPF_CORE_READ(rq, bio);
	p = bpf_map_lookup_elem(&pending, &bio_key);
	if (!p)
		return 0; /* not the target's, or allocated before the window */
	if (p->sector != BPF_CORE_READ(rq, __sector)) {
		/* left by a bio that never became this request's first: stale */
		bpf_map_delete_elem(&pending, &bio_key);
		return 0;
	}
	p->d_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&inflight, &rq_key, p, BPF_NOEXIST))
		stat_inc(IO_STAT_PENDING_FULL);
	bpf_map_delete_elem(&pending, &bio_key);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(io_issue_btf, struct request *rq)
{
	return request_issue(rq);
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(io_issue_raw, struct request *rq)
{
	return request_issue(rq);
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(io_issue_btf_old, struct request_queue *q, struct request *rq)
{
	return request_issue(rq);
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(io_issue_raw_old, struct request_queue *q, struct request *rq)
{
	return request_issue(rq);
}

static __always_inline void dev_account(u32 disk, int dir, u64 bytes, u64 q2c, u64 d2c)
{
	struct io_dev_val *d = bpf_map_lookup_elem(&devs, &disk);

	if (!d) {
		struct io_dev_val zero = {};

		bpf_map_update_elem(&devs, &disk, &zero, BPF_NOEXIST);
		d = bpf_map_lookup_elem(&devs, &disk);
		if (!d) {
			stat_inc(IO_STAT_DEVS_FULL);
			return;
		}
	}
	__sync_fetch_and_add(&d->bytes[dir & 1], bytes);
	__sync_fetch_and_add(&d->requests[dir & 1], 1);
	__sync_fetch_and_add(&d->q2c_sum_ns, q2c);
	__sync_fetch_and_add(&d->d2c_sum_ns, d2c);
	max_update(&d->q2c_max_ns, q2c);
	max_update(&d->d2c_max_ns, d2c);
}

static __always_inline int request_complete(struct request *rq, unsigned int nr_bytes)
{
	u64 rq_key = (u64)rq, now = bpf_ktime_get_ns(), q2c, d2c;
	struct io_pending *p = bpf_map_lookup_elem(&inflight, &rq_key);
	struct io_disk_val *v;
	u32 op, disk;
	int dir;

	if (!p)
		return 0;
	op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK_;
	if (op > 1) {
		/* flush, discard, zone ops: no data moved */
		bpf_map_delete_elem(&inflight, &rq_key);
		return 0;
	}
	dir = op == 1 ? IO_WRITE : IO_READ;
	q2c = now - p->q_ns;
	d2c = p->d_ns ? now - p->d_ns : 0;
	disk = request_disk_dev(rq);
	v = bpf_map_lookup_elem(&diskio, &p->key);
	if (!v) {
		struct io_disk_val zero = {};

		bpf_map_update_elem(&diskio, &p->key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&diskio, &p->key);
		if (!v) {
			stat_inc(IO_STAT_DISK_KEYS_FULL);
			bpf_map_delete_elem(&inflight, &rq_key);
			return 0;
		}
	}
	__sync_fetch_and_add(&v->bytes[dir & 1], nr_bytes);
	__sync_fetch_and_add(&v->requests[dir & 1], 1);
	__sync_fetch_and_add(&v->q2c_sum_ns, q2c);
	__sync_fetch_and_add(&v->d2c_sum_ns, d2c);
	max_update(&v->q2c_max_ns, q2c);
	max_update(&v->d2c_max_ns, d2c);
	if (p->flags & IO_PENDING_WRITEBACK) {
		__sync_fetch_and_add(&v->writeback_bytes, nr_bytes);
		stat_inc(IO_STAT_WRITEBACK);
	}
	v->disk = disk;
	dev_account(disk, dir, nr_bytes, q2c, d2c);
	stat_inc(IO_STAT_DISK_REQUESTS);
	bpf_map_delete_elem(&inflight, &rq_key);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(io_complete_btf, struct request *rq, int error, unsigned int nr_bytes)
{
	return request_complete(rq, nr_bytes);
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(io_complete_raw, struct request *rq, int error, unsigned int nr_bytes)
{
	return request_complete(rq, nr_bytes);
}

/* ---- tasks blocked on IO ---- */

/* btf: the tasks are BTF pointers (tp_btf) and can be read with plain loads */
static __always_inline bool in_iowait(struct task_struct *t, bool btf)
{
	if (btf)
		return BPF_CORE_READ_BITFIELD(t, in_iowait);
	return BPF_CORE_READ_BITFIELD_PROBED(t, in_iowait);
}

static __always_inline int io_switch(void *ctx, bool preempt, struct task_struct *prev,
				     struct task_struct *next, bool btf)
{
	u64 now;

	/* io_schedule() sets in_iowait around schedule(): both the task leaving
	 * for IO and the one coming back from it still carry it here. Every
	 * other switch returns after two loads. */
	if (in_iowait(next, btf)) {
		u32 pid = BPF_CORE_READ(next, pid);
		struct io_blocked_start *b = bpf_map_lookup_elem(&blocked_start, &pid);

		if (b) {
			struct io_blocked_key k = {
				.tgid = BPF_CORE_READ(next, tgid),
				.pid = pid,
				.kern_stack_id = b->kern_stack_id,
				.user_stack_id = b->user_stack_id,
			};
			struct capture_filter *f = get_filter();
			u64 delta = bpf_ktime_get_ns() - b->ts;
			struct io_blocked_val *v;

			bpf_map_delete_elem(&blocked_start, &pid);
			if (f && delta >= blocked_threshold_ns) {
				k.cgroup_id = task_cgid(f, next);
				BPF_CORE_READ_STR_INTO(&k.comm, next, comm);
				v = bpf_map_lookup_elem(&blocked, &k);
				if (!v) {
					struct io_blocked_val zero = {};

					bpf_map_update_elem(&blocked, &k, &zero, BPF_NOEXIST);
					v = bpf_map_lookup_elem(&blocked, &k);
				}
				if (v) {
					__sync_fetch_and_add(&v->count, 1);
					__sync_fetch_and_add(&v->total_ns, delta);
					max_update(&v->max_ns, delta);
					stat_inc(IO_STAT_BLOCKED);
				} else {
					stat_inc(IO_STAT_BLOCKED_FULL);
				}
			}
		}
	}
	if (!preempt && in_iowait(prev, btf)) {
		struct capture_filter *f = get_filter();
		struct io_blocked_start b = {};
		u32 pid = BPF_CORE_READ(prev, pid), tgid = BPF_CORE_READ(prev, tgid);

		if (!f || pid == 0)
			return 0;
		if (f->mode == FILTER_TGID && tgid != f->tgid)
			return 0;
		if (!filter_match(f, prev, tgid, task_cgid(f, prev)))
			return 0;
		now = bpf_ktime_get_ns();
		/* sched_switch runs on the task leaving: its stacks are the current ones */
		b.kern_stack_id = stack_get(ctx, 0);
		b.user_stack_id =
			task_is_kthread(prev) ? -EFAULT_ : stack_get(ctx, BPF_F_USER_STACK);
		if ((b.kern_stack_id < 0 && b.kern_stack_id != -EFAULT_) ||
		    (b.user_stack_id < 0 && b.user_stack_id != -EFAULT_))
			stat_inc(IO_STAT_STACK_LOST);
		b.ts = now;
		if (bpf_map_update_elem(&blocked_start, &pid, &b, BPF_ANY))
			stat_inc(IO_STAT_BLOCKED_START_FULL);
	}
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(io_switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return io_switch(ctx, preempt, prev, next, true);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(io_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return io_switch(ctx, preempt, prev, next, false);
}

char LICENSE[] SEC("license") = "GPL";
