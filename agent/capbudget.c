// SPDX-License-Identifier: GPL-2.0-only
#include "agent/capbudget.h"

void capbudget_add(struct capbudget *b, uint64_t start_ms, uint64_t end_ms)
{
	/* a window longer than the hour charges only its last hour */
	if (end_ms - start_ms > CAPBUDGET_SECONDS * 1000ull && end_ms > start_ms)
		start_ms = end_ms - CAPBUDGET_SECONDS * 1000ull;
	for (uint64_t t = start_ms; t < end_ms;) {
		uint64_t sec = t / 1000, next = (sec + 1) * 1000;
		uint64_t upto = next < end_ms ? next : end_ms;
		unsigned slot = (unsigned)(sec % CAPBUDGET_SECONDS);

		if (b->second[slot] != sec + 1) {
			b->second[slot] = sec + 1;
			b->ms[slot] = 0;
		}
		b->ms[slot] += (uint32_t)(upto - t);
		t = upto;
	}
}

uint64_t capbudget_used_ms(const struct capbudget *b, uint64_t now_ms)
{
	uint64_t now_s = now_ms / 1000, used = 0;

	for (unsigned i = 0; i < CAPBUDGET_SECONDS; i++) {
		uint64_t sec = b->second[i];

		/* this second and the 3599 before it */
		if (sec && sec - 1 <= now_s && now_s - (sec - 1) < CAPBUDGET_SECONDS)
			used += b->ms[i];
	}
	return used;
}
