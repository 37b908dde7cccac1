// SPDX-License-Identifier: GPL-2.0-only
/* Per-device IO from /proc/diskstats: utilization, throughput, IOPS, await and
 * queue depth of every whole disk (/sys/block) that has seen IO. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/tsdb.h"
#include "base/util.h"
#include "probes/catalogue.h"
#include "probes/watcher.h"
#include "probes/watchutil.h"

#define DISKS_MAX     256 /* devices followed; more are counted, not watched */
#define DISKSTATS_MAX (4u << 20)
#define NAME_MAX_LEN  32

enum {
	F_RD,
	F_RD_MERGED,
	F_RD_SECT,
	F_RD_MS,
	F_WR,
	F_WR_MERGED,
	F_WR_SECT,
	F_WR_MS,
	F_INFLIGHT,
	F_IO_MS,
	F_WEIGHTED_MS,
	F_COUNT
};

struct disk {
	char name[NAME_MAX_LEN];
	bool whole; /* a whole disk (in /sys/block), not a partition */
	bool primed;
	uint64_t seen; /* sample number it was last in the file */
	uint64_t v[F_COUNT];
};

struct diskstats {
	struct kfile f;
	char sysfs[200];
	struct disk *disks;
	unsigned n;
	uint64_t samples;
	uint64_t mono_ns;
	uint64_t dropped; /* devices beyond DISKS_MAX in the last sample */
};

static int diskstats_open(void **out, const struct watcher_env *env)
{
	struct diskstats *ds = calloc(1, sizeof(*ds));
	char path[256];
	int err;

	if (!ds)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/diskstats", env->procfs);
	err = kfile_open(&ds->f, path, DISKSTATS_MAX);
	ds->disks = calloc(DISKS_MAX, sizeof(*ds->disks));
	if (err || !ds->disks) {
		if (!err)
			kfile_close(&ds->f);
		free(ds->disks);
		free(ds);
		return err ? err : -ENOMEM;
	}
	snprintf(ds->sysfs, sizeof(ds->sysfs), "%s", env->sysfs);
	*out = ds;
	return 0;
}

static void diskstats_close(void *state)
{
	struct diskstats *ds = state;

	kfile_close(&ds->f);
	free(ds->disks);
	free(ds);
}

static void diskstats_status(void *state, json_t *o)
{
	struct diskstats *ds = state;
	unsigned whole = 0;

	for (unsigned i = 0; i < ds->n; i++)
		whole += ds->disks[i].whole;
	json_object_set_new(o, "devices", json_integer(whole));
	json_object_set_new(o, "devices_dropped", json_integer((json_int_t)ds->dropped));
}

static bool name_ok(const char *name)
{
	if (!*name)
		return false;
	for (const char *p = name; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '=')
			return false;
	return true;
}

static struct disk *disk_of(struct diskstats *ds, const char *name)
{
	struct disk *d;
	char path[300];

	for (unsigned i = 0; i < ds->n; i++)
		if (!strcmp(ds->disks[i].name, name))
			return &ds->disks[i];
	if (ds->n >= DISKS_MAX) {
		ds->dropped++;
		return NULL;
	}
	d = &ds->disks[ds->n++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	/* sysfs spells '/' in device names as '!' (cciss/c0d0 -> cciss!c0d0) */
	snprintf(path, sizeof(path), "%s/block/%s", ds->sysfs, name);
	for (char *p = path + strlen(ds->sysfs) + 7; *p; p++)
		if (*p == '/')
			*p = '!';
	d->whole = access(path, F_OK) == 0;
	return d;
}

/* "maj min name f1 f2 ... f11 [more]" -> name and the first eleven fields. */
static bool parse_line(char *line, char **name, uint64_t *v)
{
	char *p = line, *end;

	for (int i = 0; i < 2; i++) {
		while (*p == ' ')
			p++;
		errno = 0;
		strtoul(p, &end, 10);
		if (errno || end == p || *end != ' ')
			return false;
		p = end;
	}
	while (*p == ' ')
		p++;
	*name = p;
	while (*p && *p != ' ')
		p++;
	if (!*p || p - *name >= NAME_MAX_LEN)
		return false;
	*p++ = '\0';
	for (int i = 0; i < F_COUNT; i++) {
		while (*p == ' ')
			p++;
		if (*p < '0' || *p > '9')
			return false;
		errno = 0;
		v[i] = strtoull(p, &end, 10);
		if (errno || (*end && *end != ' '))
			return false;
		p = end;
	}
	return name_ok(*name);
}

static void put_disk(struct tsdb *db, const struct disk *d, const uint64_t *v, double secs)
{
	struct labels l = {.n = 1, .k = {"device"}, .v = {d->name}};
	uint64_t rd = counter_delta(v[F_RD], d->v[F_RD]), wr = counter_delta(v[F_WR], d->v[F_WR]);
	uint64_t ms =
		counter_delta(v[F_RD_MS], d->v[F_RD_MS]) + counter_delta(v[F_WR_MS], d->v[F_WR_MS]);
	double interval_ms = secs * 1000.0;

	tsdb_put(
		db, M_IO_UTIL, &l,
		MIN(100.0, 100.0 * (double)counter_delta(v[F_IO_MS], d->v[F_IO_MS]) / interval_ms));
	tsdb_put(db, M_IO_READ_BPS, &l,
		 512.0 * (double)counter_delta(v[F_RD_SECT], d->v[F_RD_SECT]) / secs);
	tsdb_put(db, M_IO_WRITE_BPS, &l,
		 512.0 * (double)counter_delta(v[F_WR_SECT], d->v[F_WR_SECT]) / secs);
	tsdb_put(db, M_IO_READ_IOPS, &l, (double)rd / secs);
	tsdb_put(db, M_IO_WRITE_IOPS, &l, (double)wr / secs);
	tsdb_put(db, M_IO_AWAIT, &l, rd + wr ? (double)ms / (double)(rd + wr) : 0.0);
	tsdb_put(db, M_IO_QUEUE, &l,
		 (double)counter_delta(v[F_WEIGHTED_MS], d->v[F_WEIGHTED_MS]) / interval_ms);
}

static int diskstats_sample(void *state, struct tsdb *db)
{
	struct diskstats *ds = state;
	uint64_t now = watch_now_ns();
	double secs = ds->mono_ns && now > ds->mono_ns ? (double)(now - ds->mono_ns) / 1e9 : 0;
	size_t len;
	int err;

	err = kfile_read(&ds->f, &len);
	if (err)
		return err;
	ds->samples++;
	ds->dropped = 0;
	for (char *line = ds->f.buf; line && *line;) {
		char *nl = strchr(line, '\n'), *name;
		uint64_t v[F_COUNT];
		struct disk *d;
		bool idle = true;

		if (nl)
			*nl = '\0';
		if (!parse_line(line, &name, v) || !(d = disk_of(ds, name))) {
			line = nl ? nl + 1 : NULL;
			continue;
		}
		line = nl ? nl + 1 : NULL;
		for (int i = 0; i < F_COUNT; i++)
			idle &= v[i] == 0;
		/* a device that never did IO (spare loop and ram devices) has no series */
		if (d->whole && !idle && d->primed && secs > 0)
			put_disk(db, d, v, secs);
		memcpy(d->v, v, sizeof(d->v));
		d->primed = true;
		d->seen = ds->samples;
	}
	/* forget devices that went away (a detached loop device may come back as another) */
	for (unsigned i = 0; i < ds->n;) {
		if (ds->disks[i].seen != ds->samples) {
			ds->disks[i] = ds->disks[--ds->n];
			continue;
		}
		i++;
	}
	ds->mono_ns = now;
	return 0;
}

const struct watcher_ops diskstats_watcher = {
	.name = "diskstats",
	.help = "per-device IO from /proc/diskstats",
	.open = diskstats_open,
	.sample = diskstats_sample,
	.close = diskstats_close,
	.status = diskstats_status,
};
