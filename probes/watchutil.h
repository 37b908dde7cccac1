/* SPDX-License-Identifier: GPL-2.0-only */
/* Helpers the procfs, sysfs and cgroupfs watchers share: kept-open files read
 * with pread, "key value" parsing, PSI totals, growth windows, histograms. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A file read from offset 0 every interval. Kept open while the process has
 * descriptors to spare (kfile_budget), else opened for each read. */
struct kfile {
	char *path;
	int fd;
	char *buf;
	size_t cap;
	size_t max; /* largest read accepted */
};

/* -errno when the file cannot be opened now (ENOENT: absent). */
int kfile_open(struct kfile *f, const char *path, size_t max);
/* Reads the whole file into f->buf (NUL-terminated). Hostile sizes are cut at
 * max. ENODEV/ENOENT after the object behind the file went away. */
int kfile_read(struct kfile *f, size_t *len);
void kfile_close(struct kfile *f);
/* Descriptors kept open by all kfiles, and the most they may use. */
unsigned kfile_open_count(void);
void kfile_set_budget(unsigned max_open);

/* Value of "key<sep>value" on a line of its own (sep: ':' or ' '), strict
 * decimal; false when absent or malformed. */
bool text_u64(const char *text, const char *key, uint64_t *out);
/* "some avg10=.. avg60=.. avg300=.. total=N" -> total (us) of the some/full line. */
bool psi_total(const char *text, const char *line, uint64_t *total_us);

/* Value `window` ago of a series sampled every interval, in bounded memory:
 * at most GROWTH_POINTS points spaced window / GROWTH_POINTS apart. */
#define GROWTH_POINTS 32
struct growth {
	uint64_t t[GROWTH_POINTS];
	double v[GROWTH_POINTS];
	unsigned head, n;
};
void growth_push(struct growth *g, uint64_t now_ms, double v, uint64_t window_ms);
/* v now minus v about window ago (the oldest point kept when younger); false
 * until a point at least a quarter window old exists. */
bool growth_delta(const struct growth *g, uint64_t now_ms, double v, uint64_t window_ms,
		  double *out);

/* Counter delta, 0 when the counter went backwards (reset, wrap, reused object). */
static inline uint64_t counter_delta(uint64_t now, uint64_t prev)
{
	return now >= prev ? now - prev : 0;
}

/* CLOCK_MONOTONIC in ns, as the watchers read it; tests substitute their own. */
uint64_t watch_now_ns(void);
void watch_clock_override(uint64_t (*clock)(void));
