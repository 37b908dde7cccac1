/* SPDX-License-Identifier: GPL-2.0-only */
/* capture.max_seconds_per_hour: capture time over the last rolling hour,
 * counted to the millisecond however many and however short the captures
 * are. One slot per second of the hour, each holding the capture time spent
 * in that second; fixed size, nothing forgotten early. */
#pragma once
#include <stdint.h>

#define CAPBUDGET_SECONDS 3600

struct capbudget {
	uint64_t second[CAPBUDGET_SECONDS]; /* which monotonic second a slot holds, + 1 */
	uint32_t ms[CAPBUDGET_SECONDS];	    /* capture time within it (captures add up) */
};

/* Charges capture time spent between two monotonic instants (ms). */
void capbudget_add(struct capbudget *b, uint64_t start_ms, uint64_t end_ms);
/* Capture time spent in the hour before now_ms (monotonic). */
uint64_t capbudget_used_ms(const struct capbudget *b, uint64_t now_ms);
