// SPDX-License-Identifier: GPL-2.0-only
#include "storage/store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define STORE_MAX_LIST 100000 /* incidents considered by one listing */
#define RETRY_EVERY_MS 5000   /* a full disk is tried again this often */

/* An incident the full disk refused, kept whole until there is room. */
struct pending {
	char id[64];
	uint64_t real_ms;
	char *json;
	size_t len;
	struct capture_artifact *arts;
	unsigned nart;
	uint64_t bytes;
};

struct store {
	struct store_opts opts;
	char dir[4096];
	struct pending pending[STORE_PENDING_MAX];
	unsigned npending;
	uint64_t last_retry_ms;
	struct store_stats ps;
};

void incident_id_new(uint64_t real_ms, char *buf, size_t len)
{
	time_t secs = (time_t)(real_ms / 1000);
	unsigned char rnd[8] = {0};
	struct tm tm;
	char stamp[32];

	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
		/* no entropy yet at early boot: time and pid still make it unique here */
		uint64_t x = now_mono_ns() ^ ((uint64_t)getpid() << 32);

		memcpy(rnd, &x, sizeof(rnd));
	}
	gmtime_r(&secs, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
	snprintf(buf, len, "%s%03uZ-%02x%02x%02x%02x%02x%02x%02x%02x", stamp,
		 (unsigned)(real_ms % 1000), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
		 rnd[7]);
}

int incident_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n != INCIDENT_ID_LEN || id[8] != 'T' || id[18] != 'Z' || id[19] != '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 8 || i == 18 || i == 19)
			continue;
		if (i < 18 ? !isdigit((unsigned char)id[i]) : !isxdigit((unsigned char)id[i]))
			return 0;
	}
	return 1;
}

int store_open(struct store **out, const struct store_opts *opts)
{
	struct store *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	if (copy_str(s->dir, sizeof(s->dir), opts->dir)) {
		free(s);
		return -ENAMETOOLONG;
	}
	s->opts.dir = s->dir;
	err = mkdir_p(s->dir, 0700);
	if (err) {
		free(s);
		return log_ret(err, "incident store %s: %s", opts->dir, strerror(-err));
	}
	/* stacks and command lines are sensitive: the store is root-only */
	if (chmod(s->dir, 0700)) {
		err = -errno;
		free(s);
		return log_ret(err, "incident store %s: chmod: %s", opts->dir, strerror(-err));
	}
	*out = s;
	return 0;
}

static void pending_clear(struct pending *p)
{
	for (unsigned i = 0; i < p->nart; i++)
		free(p->arts[i].data);
	free(p->arts);
	free(p->json);
	memset(p, 0, sizeof(*p));
}

void store_free(struct store **ps)
{
	struct store *s = ps ? *ps : NULL;

	if (!s)
		return;
	if (s->npending)
		log_error("incident store: %u incidents the full disk refused are lost at exit",
			  s->npending);
	for (unsigned i = 0; i < s->npending; i++)
		pending_clear(&s->pending[i]);
	free(s);
	*ps = NULL;
}

const char *store_dir(const struct store *s)
{
	return s->dir;
}

static int write_all(int dirfd, const char *name, const void *data, size_t len)
{
	const char *p = data;
	int fd, err = 0;

	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (!err && fsync(fd))
		err = -errno;
	close(fd);
	return err;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		err = -errno;
	close(fd);
	return err;
}

static int write_now(struct store *s, const char *id, uint64_t real_ms, const char *json,
		     size_t len, const struct capture_artifact *arts, unsigned nart, char *out_dir,
		     size_t out_len)
{
	char day[16], daydir[4200], tmp[4300], final[4300];
	time_t secs = (time_t)(real_ms / 1000);
	struct tm tm;
	int dfd = -1, err;

	if (!incident_id_valid(id))
		return -EINVAL;
	gmtime_r(&secs, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	snprintf(daydir, sizeof(daydir), "%s/%s", s->dir, day);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", daydir, id);
	snprintf(final, sizeof(final), "%s/%s", daydir, id);
	err = mkdir_p(daydir, 0700);
	if (err)
		return err;
	/* build the whole incident in a hidden directory, then rename it into place */
	remove_tree(tmp);
	if (mkdir(tmp, 0700))
		return -errno;
	dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		err = -errno;
		goto fail;
	}
	for (unsigned i = 0; i < nart; i++) {
		if (strchr(arts[i].name, '/') || arts[i].name[0] == '.' ||
		    strcmp(arts[i].name, "incident.json") == 0) {
			err = -EINVAL;
			goto fail;
		}
		err = write_all(dfd, arts[i].name, arts[i].data, arts[i].len);
		if (err)
			goto fail;
	}
	err = write_all(dfd, "incident.json", json, len);
	if (err)
		goto fail;
	if (fsync(dfd)) {
		err = -errno;
		goto fail;
	}
	close(dfd);
	dfd = -1;
	if (rename(tmp, final)) {
		err = -errno;
		goto fail;
	}
	fsync_path(daydir);
	if (out_dir)
		snprintf(out_dir, out_len, "%s", final);
	return 0;
fail:
	if (dfd >= 0)
		close(dfd);
	remove_tree(tmp);
	return err;
}

static bool disk_full(int err)
{
	return err == -ENOSPC || err == -EDQUOT;
}

/* A copy of everything, so the capture's buffers can go. */
static int keep(struct store *s, const char *id, uint64_t real_ms, const char *json, size_t len,
		const struct capture_artifact *arts, unsigned nart)
{
	struct pending p = {.real_ms = real_ms, .len = len, .nart = nart, .bytes = len};
	uint64_t held = 0;

	for (unsigned i = 0; i < nart; i++)
		p.bytes += arts[i].len;
	for (unsigned i = 0; i < s->npending; i++)
		held += s->pending[i].bytes;
	if (s->npending >= STORE_PENDING_MAX || held + p.bytes > STORE_PENDING_BYTES_MAX)
		return -ENOSPC;
	snprintf(p.id, sizeof(p.id), "%s", id);
	p.json = malloc(len ? len : 1);
	p.arts = calloc(nart ? nart : 1, sizeof(*p.arts));
	if (!p.json || !p.arts)
		goto nomem;
	memcpy(p.json, json, len);
	for (unsigned i = 0; i < nart; i++) {
		p.arts[i] = arts[i];
		p.arts[i].data = malloc(arts[i].len ? arts[i].len : 1);
		if (!p.arts[i].data) {
			p.nart = i;
			goto nomem;
		}
		memcpy(p.arts[i].data, arts[i].data, arts[i].len);
	}
	s->pending[s->npending++] = p;
	s->ps.kept++;
	return 0;
nomem:
	pending_clear(&p);
	return -ENOMEM;
}

int store_write(struct store *s, const char *id, uint64_t real_ms, const char *json, size_t len,
		const struct capture_artifact *arts, unsigned nart, char *out_dir, size_t out_len)
{
	int err = write_now(s, id, real_ms, json, len, arts, nart, out_dir, out_len);

	if (!disk_full(err))
		return err;
	snprintf(s->ps.last_error, sizeof(s->ps.last_error), "%s", strerror(-err));
	if (keep(s, id, real_ms, json, len, arts, nart)) {
		s->ps.dropped++;
		return err;
	}
	if (out_dir) {
		char day[16];
		time_t secs = (time_t)(real_ms / 1000);
		struct tm tm;

		gmtime_r(&secs, &tm);
		strftime(day, sizeof(day), "%Y-%m-%d", &tm);
		snprintf(out_dir, out_len, "%s/%s/%s", s->dir, day, id);
	}
	return -EAGAIN;
}

unsigned store_retry(struct store *s, uint64_t now_mono_ms, bool force)
{
	unsigned written = 0;

	if (!s->npending || (!force && now_mono_ms - s->last_retry_ms < RETRY_EVERY_MS))
		return 0;
	s->last_retry_ms = now_mono_ms;
	while (s->npending) {
		struct pending *p = &s->pending[0];
		char dir[4300];
		int err = write_now(s, p->id, p->real_ms, p->json, p->len, p->arts, p->nart, dir,
				    sizeof(dir));

		if (disk_full(err))
			break; /* still full: the next retry */
		if (err) {
			s->ps.dropped++;
			log_error("incident %s: writing it after the disk had room failed: %s",
				  p->id, strerror(-err));
		} else {
			s->ps.written_late++;
			written++;
			log_info("incident %s written to %s, once the disk had room", p->id, dir);
		}
		pending_clear(p);
		memmove(&s->pending[0], &s->pending[1], (s->npending - 1) * sizeof(*p));
		s->npending--;
	}
	return written;
}

void store_stats_get(const struct store *s, struct store_stats *out)
{
	*out = s->ps;
	out->pending = s->npending;
	out->pending_bytes = 0;
	for (unsigned i = 0; i < s->npending; i++)
		out->pending_bytes += s->pending[i].bytes;
}

json_t *store_stats_json(const struct store *s)
{
	struct store_stats st;

	store_stats_get(s, &st);
	return json_pack("{s:I,s:I,s:i,s:I,s:I,s:I,s:I,s:s}", "leftovers_removed",
			 (json_int_t)st.leftovers_removed, "leftover_bytes",
			 (json_int_t)st.leftover_bytes, "pending", (int)st.pending, "pending_bytes",
			 (json_int_t)st.pending_bytes, "kept", (json_int_t)st.kept, "written_late",
			 (json_int_t)st.written_late, "dropped", (json_int_t)st.dropped,
			 "last_error", st.last_error);
}

static uint64_t dir_bytes(const char *path)
{
	uint64_t total = 0;
	struct dirent *de;
	DIR *d = opendir(path);

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct stat st;

		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			total += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return total;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_entry *)a)->id, ((const struct store_entry *)b)->id);
}

static bool is_day_name(const char *n)
{
	return strlen(n) == 10 && n[4] == '-' && n[7] == '-' && isdigit((unsigned char)n[0]);
}

int store_list(const char *dir, struct store_entry **out, size_t *n)
{
	struct store_entry *list = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	DIR *top;

	*out = NULL;
	*n = 0;
	top = opendir(dir);
	if (!top)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(top)) && cnt < STORE_MAX_LIST) {
		char daypath[4200];
		struct dirent *ie;
		DIR *day;

		if (!is_day_name(de->d_name))
			continue;
		snprintf(daypath, sizeof(daypath), "%s/%s", dir, de->d_name);
		day = opendir(daypath);
		if (!day)
			continue;
		while ((ie = readdir(day)) && cnt < STORE_MAX_LIST) {
			struct store_entry *e;

			if (!incident_id_valid(ie->d_name))
				continue;
			if (cnt == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct store_entry *p = realloc(list, ncap * sizeof(*p));

				if (!p) {
					closedir(day);
					closedir(top);
					free(list);
					return -ENOMEM;
				}
				list = p;
				cap = ncap;
			}
			e = &list[cnt++];
			snprintf(e->id, sizeof(e->id), "%s", ie->d_name);
			snprintf(e->path, sizeof(e->path), "%s/%s", daypath, ie->d_name);
			e->bytes = 0;
		}
		closedir(day);
	}
	closedir(top);
	if (cnt)
		qsort(list, cnt, sizeof(*list), entry_cmp);
	*out = list;
	*n = cnt;
	return 0;
}

int store_find(const char *dir, const char *id, char *path, size_t len)
{
	char day[16];
	struct stat st;

	if (!incident_id_valid(id))
		return -EINVAL;
	/* the id starts with the UTC date of the incident's directory */
	snprintf(day, sizeof(day), "%.4s-%.2s-%.2s", id, id + 4, id + 6);
	if (snprintf(path, len, "%s/%s/%s", dir, day, id) >= (int)len)
		return -ENAMETOOLONG;
	if (stat(path, &st) || !S_ISDIR(st.st_mode))
		return -ENOENT;
	return 0;
}

/* id -> wall-clock ms of its timestamp prefix */
static uint64_t id_time_ms(const char *id)
{
	struct tm tm = {0};
	char buf[20];

	snprintf(buf, sizeof(buf), "%.15s", id);
	if (!strptime(buf, "%Y%m%dT%H%M%S", &tm))
		return 0;
	return (uint64_t)timegm(&tm) * 1000 + (uint64_t)atoi(id + 15);
}

static void remove_empty_day_dirs(const char *dir)
{
	struct dirent *de;
	DIR *top = opendir(dir);

	if (!top)
		return;
	while ((de = readdir(top)))
		if (is_day_name(de->d_name))
			unlinkat(dirfd(top), de->d_name, AT_REMOVEDIR); /* fails unless empty */
	closedir(top);
}

/* ".ID.tmp": an incident a crash left half written (store_write builds each
 * one there and renames it into place; nothing else is ever left there). */
static bool is_leftover(const char *name)
{
	size_t n = strlen(name);
	char id[INCIDENT_ID_LEN + 1];

	if (n != INCIDENT_ID_LEN + 5 || name[0] != '.' || strcmp(name + n - 4, ".tmp"))
		return false;
	memcpy(id, name + 1, INCIDENT_ID_LEN);
	id[INCIDENT_ID_LEN] = '\0';
	return incident_id_valid(id);
}

static void remove_leftovers(struct store *s, struct store_retention *st)
{
	struct dirent *de;
	DIR *top = opendir(s->dir);

	if (!top)
		return;
	while ((de = readdir(top))) {
		char daypath[4200];
		struct dirent *ie;
		DIR *day;

		if (!is_day_name(de->d_name))
			continue;
		snprintf(daypath, sizeof(daypath), "%s/%s", s->dir, de->d_name);
		day = opendir(daypath);
		if (!day)
			continue;
		while ((ie = readdir(day))) {
			char path[4300];
			uint64_t bytes;

			if (!is_leftover(ie->d_name))
				continue;
			snprintf(path, sizeof(path), "%s/%s", daypath, ie->d_name);
			bytes = dir_bytes(path);
			if (remove_tree(path) == 0) {
				st->removed_leftovers++;
				st->leftover_bytes += bytes;
			}
		}
		closedir(day);
	}
	closedir(top);
	if (st->removed_leftovers)
		log_warn("incident store: removed %u half-written incidents (%llu bytes) left by "
			 "an earlier crash",
			 st->removed_leftovers, (unsigned long long)st->leftover_bytes);
}

int store_enforce_retention(struct store *s, uint64_t now_real_ms, struct store_retention *st)
{
	struct store_entry *list = NULL;
	size_t n = 0, i;
	uint64_t total = 0;
	int err;

	memset(st, 0, sizeof(*st));
	/* store_write runs on the loop, as this does: a .tmp now is a crash's */
	remove_leftovers(s, st);
	s->ps.leftovers_removed += st->removed_leftovers;
	s->ps.leftover_bytes += st->leftover_bytes;
	err = store_list(s->dir, &list, &n);
	if (err)
		return err;
	for (i = 0; i < n; i++) {
		list[i].bytes = dir_bytes(list[i].path);
		total += list[i].bytes;
	}
	for (i = 0; i < n; i++) {
		uint64_t t = id_time_ms(list[i].id);
		bool old = t && now_real_ms > t && now_real_ms - t > s->opts.max_age_ms;
		bool big = total > s->opts.max_size;

		if (!old && !big)
			break; /* oldest first: everything after is newer */
		if (remove_tree(list[i].path) == 0) {
			total -= list[i].bytes;
			if (old)
				st->removed_age++;
			else
				st->removed_size++;
		}
	}
	st->bytes = total;
	st->incidents = (unsigned)(n - i);
	if (st->removed_age || st->removed_size) {
		remove_empty_day_dirs(s->dir);
		log_info("retention: removed %u incidents past max_age and %u over max_size; "
			 "%u left",
			 st->removed_age, st->removed_size, st->incidents);
	}
	free(list);
	/* retention may have made room for what a full disk refused */
	store_retry(s, now_mono_ns() / 1000000, true);
	return 0;
}
