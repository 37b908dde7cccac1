/* SPDX-License-Identifier: GPL-2.0-only */
/* Latency histograms shared by the BPF hook modes and user space: four
 * buckets per power of two (about 19% wide), values in nanoseconds. */
#pragma once

#define LATHIST_BUCKETS 168 /* up to 2^43 ns (~2.4 hours); longer lands in the last */

#ifdef __bpf__
/* floor(log2(v)) for v > 0, in the shifts the verifier accepts */
static __always_inline unsigned int lathist_log2(__u64 v)
{
	unsigned int r = 0, shift;

	shift = (v > 0xFFFFFFFFull) << 5;
	v >>= shift;
	r |= shift;
	shift = (v > 0xFFFF) << 4;
	v >>= shift;
	r |= shift;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline unsigned int lathist_bucket(__u64 ns)
{
	unsigned int l, idx;

	if (ns < 4)
		return (unsigned int)ns;
	l = lathist_log2(ns);
	idx = (l - 1) * 4 + (unsigned int)((ns >> (l - 2)) & 3);
	return idx < LATHIST_BUCKETS ? idx : LATHIST_BUCKETS - 1;
}
#else
#include <stdint.h>

/* Lower and upper bound (ns) of a bucket. */
static inline void lathist_bounds(unsigned idx, double *lo, double *hi)
{
	unsigned l, sub;

	if (idx < 4) {
		*lo = idx;
		*hi = idx + 1;
		return;
	}
	l = idx / 4 + 1;
	sub = idx % 4;
	*lo = (double)((4ull + sub) << (l - 2));
	*hi = (double)((5ull + sub) << (l - 2));
}

/* The q-quantile (0..1) of a histogram, interpolated inside its bucket; -1 when empty. */
static inline double lathist_quantile(const uint64_t *slots, unsigned n, double q)
{
	uint64_t total = 0, seen = 0;

	for (unsigned i = 0; i < n; i++)
		total += slots[i];
	if (!total)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		double lo, hi, rank = q * (double)total;

		if (!slots[i] || (double)(seen + slots[i]) < rank) {
			seen += slots[i];
			continue;
		}
		lathist_bounds(i, &lo, &hi);
		return lo + (hi - lo) * ((rank - (double)seen) / (double)slots[i]);
	}
	return -1;
}
#endif
