// SPDX-License-Identifier: GPL-2.0-only
/* A program built without frame pointers (-O2 -fomit-frame-pointer), for the
 * unwinding test and benchmark: main -> unwind_chain_01 -> ... -> 12 -> leaf.
 *   unwind_target cpu SECONDS     the leaf burns CPU
 *   unwind_target sleep SECONDS   the leaf blocks in short sleeps
 * It prints "ready" once it is in the leaf, and on SIGTERM the work it has
 * done ("iterations N", for a benchmark's throughput) before it exits. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unwind_chain.h"

static double seconds;
static volatile unsigned long iterations;

static void on_term(int sig)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "iterations %lu\n", iterations);

	(void)sig;
	if (write(1, buf, (size_t)n) < 0)
		_exit(1);
	_exit(0);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

UNWIND_NOIPA static long burn(void *arg)
{
	double end = now() + seconds;
	volatile unsigned long x = 0;

	(void)arg;
	puts("ready");
	fflush(stdout);
	while (now() < end) {
		for (int i = 0; i < 100000; i++)
			x += (unsigned long)i * 7;
		iterations++;
	}
	return (long)(x & 1);
}

UNWIND_NOIPA static long block(void *arg)
{
	double end = now() + seconds;

	(void)arg;
	puts("ready");
	fflush(stdout);
	while (now() < end)
		usleep(5000);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "cpu") && strcmp(argv[1], "sleep"))) {
		fprintf(stderr, "usage: unwind_target cpu|sleep SECONDS\n");
		return 2;
	}
	seconds = atof(argv[2]);
	signal(SIGTERM, on_term);
	return (int)(unwind_chain_01(strcmp(argv[1], "cpu") ? block : burn, NULL, 0) & 1);
}
