// SPDX-License-Identifier: GPL-2.0-only
#include "base/safeopen.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "base/util.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif
#define PROC_SUPER_MAGIC 0x9fa0

#define MAX_LINKS 40 /* the kernel's own limit on symlinks in one lookup */
#define MAX_DEPTH 256

bool safeopen_force_fallback;
static int have_openat2 = -1;

/* struct open_how, spelled out: older libc headers lack it */
struct how {
	uint64_t flags, mode, resolve;
};

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)

/* Only regular files, and none past the cap. */
static int check_file(int fd, uint64_t max_size, struct stat *out)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (max_size && (uint64_t)st.st_size > max_size)
		return -EFBIG;
	if (out)
		*out = st;
	return 0;
}

static int finish(int fd, uint64_t max_size, struct stat *st)
{
	int err;

	if (fd < 0)
		return fd;
	err = check_file(fd, max_size, st);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

bool safeopen_have_openat2(void)
{
	if (have_openat2 < 0) {
		struct how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
		long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));

		/* EPERM: a seccomp policy that does not know the call */
		have_openat2 = !(fd < 0 && (errno == ENOSYS || errno == EPERM));
		if (fd >= 0)
			close((int)fd);
	}
	return have_openat2 == 1;
}

/* One stack of directory fds: the walk's position, root at the bottom. */
struct walk {
	int fds[MAX_DEPTH];
	unsigned n;
};

static void walk_reset(struct walk *w)
{
	while (w->n > 1)
		close(w->fds[--w->n]);
}

static void walk_free(struct walk *w)
{
	while (w->n > 0)
		close(w->fds[--w->n]);
}

/* Resolves path inside rootfd like RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS:
 * each component opened O_PATH | O_NOFOLLOW under the previous one, ".."
 * popped from our own stack (never the kernel's, which could leave the
 * root), symlinks read and spliced into what is left of the path, absolute
 * ones restarting from the root. */
static int open_walk(int rootfd, const char *path)
{
	struct walk w = {.n = 0};
	char *buf = NULL, *rest;
	unsigned links = 0;
	int fd = -1, err;

	buf = malloc(PATH_MAX * 2);
	if (!buf)
		return -ENOMEM;
	if (copy_str(buf, PATH_MAX, path)) {
		err = -ENAMETOOLONG;
		goto cleanup;
	}
	w.fds[w.n] = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (w.fds[w.n] < 0) {
		err = -errno;
		goto cleanup;
	}
	w.n++;
	rest = buf;
	for (;;) {
		char *name = rest, *slash;
		struct stat st;
		int cfd;

		while (*name == '/')
			name++;
		if (!*name) {
			err = -EISDIR; /* the path named a directory */
			goto cleanup;
		}
		slash = strchr(name, '/');
		rest = slash ? slash + 1 : name + strlen(name);
		if (slash)
			*slash = '\0';
		while (*rest == '/')
			rest++;
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, "..")) {
			if (w.n > 1)
				close(w.fds[--w.n]);
			continue;
		}
		cfd = openat(w.fds[w.n - 1], name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			err = -errno;
			goto cleanup;
		}
		if (fstat(cfd, &st)) {
			err = -errno;
			close(cfd);
			goto cleanup;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			struct statfs sfs;
			ssize_t n;
			size_t restlen = strlen(rest);

			if (++links > MAX_LINKS) {
				close(cfd);
				err = -ELOOP;
				goto cleanup;
			}
			n = readlinkat(cfd, "", target, sizeof(target) - 1);
			if (n <= 0) {
				err = n < 0 ? -errno : -ENOENT;
				close(cfd);
				goto cleanup;
			}
			target[n] = '\0';
			/* procfs magic links (fd/N, root, exe, map_files) name an object,
			 * not a path; only its plain relative links (self, thread-self,
			 * net, mounts) are followed, as RESOLVE_NO_MAGICLINKS would */
			if (fstatfs(cfd, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC &&
			    (target[0] == '/' || strchr(target, ':'))) {
				close(cfd);
				err = -ELOOP;
				goto cleanup;
			}
			close(cfd);
			if ((size_t)n + 1 + restlen + 1 > PATH_MAX) {
				err = -ENAMETOOLONG;
				goto cleanup;
			}
			/* target + "/" + rest, rebuilt in the second half of buf */
			memmove(buf + PATH_MAX + n + 1, rest, restlen + 1);
			memcpy(buf + PATH_MAX, target, (size_t)n);
			buf[PATH_MAX + n] = restlen ? '/' : '\0';
			memmove(buf, buf + PATH_MAX, (size_t)n + 1 + restlen + 1);
			rest = buf;
			if (target[0] == '/')
				walk_reset(&w);
			continue;
		}
		if (!*rest) {
			/* the last component: open it for reading, and make sure it is
			 * the very file the O_PATH walk found */
			struct stat st2;

			close(cfd);
			if (!S_ISREG(st.st_mode)) {
				err = -EINVAL; /* never open a device or a FIFO, even to look */
				goto cleanup;
			}
			fd = openat(w.fds[w.n - 1], name, OPEN_FLAGS | O_NOFOLLOW);
			if (fd < 0) {
				err = -errno;
				goto cleanup;
			}
			if (fstat(fd, &st2) || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
				err = -EAGAIN; /* renamed under us */
				goto cleanup;
			}
			err = 0;
			goto cleanup;
		}
		if (!S_ISDIR(st.st_mode)) {
			close(cfd);
			err = -ENOTDIR;
			goto cleanup;
		}
		if (w.n >= MAX_DEPTH) {
			close(cfd);
			err = -ENAMETOOLONG;
			goto cleanup;
		}
		w.fds[w.n++] = cfd;
	}
cleanup:
	walk_free(&w);
	free(buf);
	if (err && fd >= 0) {
		close(fd);
		fd = -1;
	}
	return err ? err : fd;
}

int open_in_root(int rootfd, const char *path, uint64_t max_size, struct stat *st)
{
	int fd;

	if (!safeopen_force_fallback && safeopen_have_openat2()) {
		struct how how = {.flags = O_PATH | O_CLOEXEC,
				  .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
		struct stat st1, st2;
		int pfd;

		/* O_PATH first: a device or FIFO is refused before it is opened */
		pfd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
		if (pfd < 0)
			return -errno;
		if (fstat(pfd, &st1) || !S_ISREG(st1.st_mode)) {
			close(pfd);
			return -EINVAL;
		}
		how.flags = OPEN_FLAGS;
		fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
		fd = fd < 0 ? -errno : fd;
		close(pfd);
		if (fd >= 0 &&
		    (fstat(fd, &st2) || st2.st_dev != st1.st_dev || st2.st_ino != st1.st_ino)) {
			close(fd);
			return -EAGAIN; /* replaced between the two opens */
		}
	} else {
		fd = open_walk(rootfd, path);
	}
	return finish(fd, max_size, st);
}

int open_in_proc_root(const char *procfs, int pid, const char *path, uint64_t max_size,
		      struct stat *st)
{
	char root[160];
	int rootfd, fd;

	snprintf(root, sizeof(root), "%s/%d/root", procfs ? procfs : "/proc", pid);
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	fd = open_in_root(rootfd, path, max_size, st);
	close(rootfd);
	return fd;
}

int open_regular(const char *path, uint64_t max_size, struct stat *st)
{
	int fd = open(path, OPEN_FLAGS);

	return finish(fd < 0 ? -errno : fd, max_size, st);
}
