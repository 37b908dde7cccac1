// SPDX-License-Identifier: GPL-2.0-only
#include "storage/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "storage/store.h"

struct spool {
	char dir[4096];
	char parked_dir[4200];
	struct spool_opts opts;
	struct spool_item *items; /* sorted by id, i.e. by incident time */
	size_t n, cap;
	uint64_t bytes;
	uint64_t parked;
	uint64_t evicted_age, evicted_size, parked_total, write_errors;
};

/* id -> wall-clock ms of its timestamp prefix (0 when unreadable) */
static uint64_t id_time_ms(const char *id)
{
	struct tm tm = {0};
	char buf[20];

	snprintf(buf, sizeof(buf), "%.15s", id);
	if (!strptime(buf, "%Y%m%dT%H%M%S", &tm))
		return 0;
	return (uint64_t)timegm(&tm) * 1000 + (uint64_t)atoi(id + 15);
}

/* "<id>.json" -> id; false for anything else */
static bool doc_name(const char *name, char *id, size_t len)
{
	size_t n = strlen(name);

	if (n != INCIDENT_ID_LEN + 5 || strcmp(name + INCIDENT_ID_LEN, ".json"))
		return false;
	snprintf(id, len, "%.*s", INCIDENT_ID_LEN, name);
	return incident_id_valid(id);
}

static void doc_path(const struct spool *s, const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.json", s->dir, id);
}

/* first index whose id is >= id */
static size_t lower_bound(const struct spool *s, const char *id)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(s->items[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int index_add(struct spool *s, const char *id, uint64_t bytes)
{
	size_t at = lower_bound(s, id);
	struct spool_item *it;

	if (at < s->n && strcmp(s->items[at].id, id) == 0) {
		/* rewritten: same incident, new size */
		s->bytes = s->bytes - s->items[at].bytes + bytes;
		s->items[at].bytes = bytes;
		return 0;
	}
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 256;
		struct spool_item *p = realloc(s->items, ncap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->items = p;
		s->cap = ncap;
	}
	memmove(&s->items[at + 1], &s->items[at], (s->n - at) * sizeof(*it));
	it = &s->items[at];
	memset(it, 0, sizeof(*it));
	snprintf(it->id, sizeof(it->id), "%s", id);
	it->bytes = bytes;
	it->real_ms = id_time_ms(id);
	s->n++;
	s->bytes += bytes;
	return 0;
}

static void index_remove_at(struct spool *s, size_t at)
{
	s->bytes -= s->items[at].bytes;
	memmove(&s->items[at], &s->items[at + 1], (s->n - at - 1) * sizeof(s->items[0]));
	s->n--;
}

static int scan(struct spool *s)
{
	struct dirent *de;
	DIR *d = opendir(s->dir);
	int err = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char id[64];
		struct stat st;

		/* a write interrupted by a crash never reached its final name */
		if (strstr(de->d_name, ".json.tmp.")) {
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (!doc_name(de->d_name, id, sizeof(id)))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		err = index_add(s, id, (uint64_t)st.st_size);
		if (err)
			break;
	}
	closedir(d);
	return err;
}

static uint64_t count_parked(const struct spool *s)
{
	struct dirent *de;
	DIR *d = opendir(s->parked_dir);
	uint64_t n = 0;
	char id[64];

	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += doc_name(de->d_name, id, sizeof(id));
	closedir(d);
	return n;
}

static int private_dir(const char *path)
{
	int err = mkdir_p(path, 0700);

	/* incidents hold stacks and command lines: root only */
	if (!err && chmod(path, 0700))
		err = -errno;
	return err;
}

int spool_open(struct spool **out, const struct spool_opts *opts)
{
	struct spool *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	if (copy_str(s->dir, sizeof(s->dir), opts->dir)) {
		err = -ENAMETOOLONG;
		goto fail;
	}
	s->opts.dir = s->dir;
	snprintf(s->parked_dir, sizeof(s->parked_dir), "%s/parked", s->dir);
	err = private_dir(s->dir);
	if (!err)
		err = private_dir(s->parked_dir);
	if (err) {
		log_error("spool %s: %s", opts->dir, strerror(-err));
		goto fail;
	}
	err = scan(s);
	if (err) {
		log_error("spool %s: reading it: %s", opts->dir, strerror(-err));
		goto fail;
	}
	s->parked = count_parked(s);
	*out = s;
	return 0;
fail:
	free(s->items);
	free(s);
	return err;
}

void spool_free(struct spool **ps)
{
	if (!ps || !*ps)
		return;
	free((*ps)->items);
	free(*ps);
	*ps = NULL;
}

const char *spool_dir(const struct spool *s)
{
	return s->dir;
}

static void note_evicted(struct spool_evicted *ev, const char *id, bool by_age)
{
	if (!ev)
		return;
	if (by_age)
		ev->by_age++;
	else
		ev->by_size++;
	if (!ev->oldest[0] || strcmp(id, ev->oldest) < 0)
		snprintf(ev->oldest, sizeof(ev->oldest), "%s", id);
	if (strcmp(id, ev->newest) > 0)
		snprintf(ev->newest, sizeof(ev->newest), "%s", id);
}

static void evict_at(struct spool *s, size_t at, bool by_age, struct spool_evicted *ev)
{
	char path[4200];

	doc_path(s, s->items[at].id, path, sizeof(path));
	unlink(path);
	note_evicted(ev, s->items[at].id, by_age);
	if (by_age)
		s->evicted_age++;
	else
		s->evicted_size++;
	index_remove_at(s, at);
}

/* parked/ keeps the newest SPOOL_PARKED_MAX and nothing older than max_age */
static void enforce_parked(struct spool *s, uint64_t now_real_ms)
{
	struct dirent *de;
	char(*ids)[40] = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	if (s->parked == 0)
		return;
	d = opendir(s->parked_dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char id[64];

		if (!doc_name(de->d_name, id, sizeof(id)))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char(*p)[40] = realloc(ids, ncap * sizeof(*ids));

			if (!p)
				break;
			ids = p;
			cap = ncap;
		}
		snprintf(ids[n++], sizeof(ids[0]), "%s", id);
	}
	closedir(d);
	if (n)
		qsort(ids, n, sizeof(*ids), (int (*)(const void *, const void *))strcmp);
	for (size_t i = 0; i < n; i++) {
		uint64_t t = id_time_ms(ids[i]);
		bool old = t && now_real_ms > t && now_real_ms - t > s->opts.max_age_ms;
		char path[4300];

		if (!old && n - i <= SPOOL_PARKED_MAX)
			break;
		snprintf(path, sizeof(path), "%s/%s.json", s->parked_dir, ids[i]);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s.reason", s->parked_dir, ids[i]);
		unlink(path);
		log_warn("spool: dropped parked incident %s (%s)", ids[i],
			 old ? "past spool_max_age" : "more than 1000 parked");
	}
	free(ids);
	s->parked = count_parked(s);
}

void spool_enforce(struct spool *s, uint64_t now_real_ms, struct spool_evicted *ev)
{
	size_t i = 0;

	while (i < s->n) {
		const struct spool_item *it = &s->items[i];
		bool old = it->real_ms && now_real_ms > it->real_ms &&
			   now_real_ms - it->real_ms > s->opts.max_age_ms;

		if (old && !it->inflight)
			evict_at(s, i, true, ev);
		else
			i++;
	}
	/* oldest first; the newest incident always stays, even alone over the bound */
	for (i = 0; s->n > 1 && i < s->n - 1 &&
		    (s->bytes > s->opts.max_size || s->n > SPOOL_MAX_ENTRIES);) {
		if (s->items[i].inflight)
			i++;
		else
			evict_at(s, i, false, ev);
	}
	enforce_parked(s, now_real_ms);
}

int spool_put(struct spool *s, const char *id, const char *doc, size_t len, uint64_t now_real_ms,
	      struct spool_evicted *ev)
{
	char path[4200];
	int err;

	if (!incident_id_valid(id))
		return -EINVAL;
	doc_path(s, id, path, sizeof(path));
	err = write_file_atomic(path, doc, len, 0600);
	if (!err)
		err = index_add(s, id, len);
	if (err) {
		s->write_errors++;
		return err;
	}
	spool_enforce(s, now_real_ms, ev);
	return 0;
}

size_t spool_count(const struct spool *s)
{
	return s->n;
}

struct spool_item *spool_item_at(struct spool *s, size_t i)
{
	return i < s->n ? &s->items[i] : NULL;
}

struct spool_item *spool_find(struct spool *s, const char *id)
{
	size_t at = lower_bound(s, id);

	return at < s->n && strcmp(s->items[at].id, id) == 0 ? &s->items[at] : NULL;
}

int spool_read(struct spool *s, const char *id, char **doc, size_t *len)
{
	char path[4200], *buf = NULL;
	struct stat st;
	size_t got = 0;
	int fd, err = 0;

	*doc = NULL;
	doc_path(s, id, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		goto cleanup;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		err = -ENOMEM;
		goto cleanup;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			goto cleanup;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*doc = buf;
	*len = got;
	buf = NULL;
cleanup:
	free(buf);
	close(fd);
	return err;
}

int spool_ack(struct spool *s, const char *id)
{
	size_t at = lower_bound(s, id);
	char path[4200];

	if (at >= s->n || strcmp(s->items[at].id, id))
		return -ENOENT;
	doc_path(s, id, path, sizeof(path));
	if (unlink(path) && errno != ENOENT)
		return -errno;
	index_remove_at(s, at);
	return 0;
}

int spool_park(struct spool *s, const char *id, const char *reason)
{
	size_t at = lower_bound(s, id);
	char from[4200], to[4300];
	int err;

	if (at >= s->n || strcmp(s->items[at].id, id))
		return -ENOENT;
	snprintf(to, sizeof(to), "%s/%s.reason", s->parked_dir, id);
	err = write_file_atomic(to, reason, strlen(reason), 0600);
	doc_path(s, id, from, sizeof(from));
	snprintf(to, sizeof(to), "%s/%s.json", s->parked_dir, id);
	if (!err && rename(from, to))
		err = -errno;
	if (err)
		return err;
	index_remove_at(s, at);
	s->parked++;
	s->parked_total++;
	return 0;
}

void spool_stats(const struct spool *s, struct spool_stats *st)
{
	st->queued = s->n;
	st->bytes = s->bytes;
	st->parked = s->parked;
	st->evicted_age = s->evicted_age;
	st->evicted_size = s->evicted_size;
	st->parked_total = s->parked_total;
	st->write_errors = s->write_errors;
	st->oldest_real_ms = s->n ? s->items[0].real_ms : 0;
}
