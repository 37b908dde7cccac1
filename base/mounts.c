// SPDX-License-Identifier: GPL-2.0-only
#include "base/mounts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MOUNTS_MAX  4096
#define FD_SCAN_MAX 65536

struct mount_entry {
	uint32_t kdev;
	char *root;   /* the directory of the file system this mount shows */
	char *target; /* where it is mounted */
	char *source;
};

struct mounts {
	struct mount_entry *e;
	size_t n;
};

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static int parse_line(char *line, struct mount_entry *e)
{
	char *f[10], *save = NULL, *tok, *sep;
	unsigned ma, mi;
	int n = 0;

	/* "36 35 98:0 /root /mnt opts [optional...] - fstype source superopts" */
	sep = strstr(line, " - ");
	if (!sep)
		return -EINVAL;
	*sep = '\0';
	for (tok = strtok_r(line, " ", &save); tok && n < 5; tok = strtok_r(NULL, " ", &save))
		f[n++] = tok;
	if (n < 5 || sscanf(f[2], "%u:%u", &ma, &mi) != 2)
		return -EINVAL;
	save = NULL;
	tok = strtok_r(sep + 3, " ", &save); /* fstype */
	tok = tok ? strtok_r(NULL, " ", &save) : NULL;
	unescape(f[3]);
	unescape(f[4]);
	if (tok)
		unescape(tok);
	e->kdev = KDEV_MAKE(ma, mi);
	e->root = strdup(f[3]);
	e->target = strdup(f[4]);
	e->source = strdup(tok ? tok : "");
	if (!e->root || !e->target || !e->source) {
		free(e->root);
		free(e->target);
		free(e->source);
		return -ENOMEM;
	}
	return 0;
}

int mounts_new(struct mounts **out, const char *mountinfo)
{
	struct mounts *m = calloc(1, sizeof(*m));
	char *line = NULL;
	size_t cap = 0;
	FILE *f = NULL;
	int err = 0;

	if (!m)
		return -ENOMEM;
	f = fopen(mountinfo, "re");
	if (!f) {
		err = -errno;
		goto cleanup;
	}
	m->e = calloc(MOUNTS_MAX, sizeof(*m->e));
	if (!m->e) {
		err = -ENOMEM;
		goto cleanup;
	}
	while (m->n < MOUNTS_MAX && getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		if (parse_line(line, &m->e[m->n]) == 0)
			m->n++;
	}
	*out = m;
	m = NULL;
cleanup:
	free(line);
	if (f)
		fclose(f);
	mounts_free(&m);
	return err;
}

void mounts_free(struct mounts **pm)
{
	struct mounts *m = pm ? *pm : NULL;

	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->e[i].root);
		free(m->e[i].target);
		free(m->e[i].source);
	}
	free(m->e);
	free(m);
	*pm = NULL;
}

/* Does path lie under dir ("/a" holds "/a" and "/a/b", not "/ab")? Returns the rest. */
static const char *under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return path;
	if (strncmp(path, dir, n) || (path[n] != '\0' && path[n] != '/'))
		return NULL;
	return path + n;
}

static void join(char *buf, size_t len, const char *dir, const char *rest)
{
	if (!rest[0] || strcmp(rest, "/") == 0)
		snprintf(buf, len, "%s", dir);
	else if (strcmp(dir, "/") == 0)
		snprintf(buf, len, "%s", rest);
	else
		snprintf(buf, len, "%s%s", dir, rest);
}

int mounts_full_path(const struct mounts *m, uint32_t kdev, const char *fs_path, char *buf,
		     size_t len)
{
	const struct mount_entry *best = NULL;
	const char *best_rest = NULL;

	for (size_t i = 0; m && i < m->n; i++) {
		const struct mount_entry *e = &m->e[i];
		const char *rest;

		if (e->kdev != kdev || !(rest = under(fs_path, e->root)))
			continue;
		/* prefer showing the most of the file system, then the shortest path */
		if (!best || strlen(e->root) < strlen(best->root) ||
		    (strlen(e->root) == strlen(best->root) &&
		     strlen(e->target) < strlen(best->target))) {
			best = e;
			best_rest = rest;
		}
	}
	if (!best) {
		snprintf(buf, len, "[%u:%u]%s", KDEV_MAJOR(kdev), KDEV_MINOR(kdev), fs_path);
		return -ENOENT;
	}
	join(buf, len, best->target, best_rest);
	return 0;
}

void device_name(const struct mounts *m, uint32_t kdev, char *buf, size_t len)
{
	char link[64], target[512];
	ssize_t n;

	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", KDEV_MAJOR(kdev), KDEV_MINOR(kdev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n > 0) {
		const char *base;

		target[n] = '\0';
		base = strrchr(target, '/');
		snprintf(buf, len, "%s", base ? base + 1 : target);
		return;
	}
	for (size_t i = 0; m && i < m->n; i++) {
		if (m->e[i].kdev == kdev && m->e[i].source[0]) {
			const char *base = strrchr(m->e[i].source, '/');

			snprintf(buf, len, "%s", base && base[1] ? base + 1 : m->e[i].source);
			return;
		}
	}
	snprintf(buf, len, "%u:%u", KDEV_MAJOR(kdev), KDEV_MINOR(kdev));
}

int proc_fd_path(const char *procfs, int pid, uint32_t kdev, uint64_t ino, char *buf, size_t len)
{
	char dir[64];
	struct dirent *de;
	unsigned seen = 0;
	int err = -ENOENT;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%d/fd", procfs, pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && seen++ < FD_SCAN_MAX) {
		struct stat st;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0))
			continue;
		if (st.st_ino != ino || KDEV_MAKE(major(st.st_dev), minor(st.st_dev)) != kdev)
			continue;
		n = readlinkat(dirfd(d), de->d_name, buf, len - 1);
		if (n > 0) {
			buf[n] = '\0';
			err = 0;
			break;
		}
	}
	closedir(d);
	return err;
}
