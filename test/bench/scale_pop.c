// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_scale's population: processes placed in cgroups, each with threads,
 * most of them asleep and a share waking once a second, as the timer and
 * housekeeping threads of a dense node's runtimes do: what costs a task pass
 * is how many tasks ran since the previous one, not how often they ran.
 *
 *   scale_pop SPEC-FILE
 *
 * SPEC-FILE has one line per process: "<threads> <wakers> <cgroup.procs>...",
 * the files the process writes its pid to before it starts its threads.
 * Prints "ready N" once every process and thread runs, then waits for end of
 * input (or a signal) and takes every process with it.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAKE_NS 1000000000L /* a waker runs a few microseconds once a second */

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void *waker(void *arg)
{
	struct timespec ts = {WAKE_NS / 1000000000L, WAKE_NS % 1000000000L};
	struct timespec first = {0,
				 (long)((unsigned long)(uintptr_t)&ts * 2654435761u % 1000000000u)};
	volatile unsigned x = 0;

	(void)arg;
	nanosleep(&first, NULL); /* spread over the second */
	for (;;) {
		for (int i = 0; i < 2000; i++)
			x += (unsigned)i;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int join_cgroups(char *files)
{
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", getpid());

	for (char *f = strtok(files, " \n"); f; f = strtok(NULL, " \n")) {
		FILE *fp = fopen(f, "w");

		if (!fp || fwrite(pid, 1, (size_t)n, fp) != (size_t)n) {
			fprintf(stderr, "scale_pop: %s: %s\n", f, strerror(errno));
			if (fp)
				fclose(fp);
			return -1;
		}
		if (fclose(fp)) {
			fprintf(stderr, "scale_pop: %s: %s\n", f, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void child(int threads, int wakers, char *files, int ready_fd)
{
	pthread_attr_t attr;
	char ok = 'k';

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (join_cgroups(files))
		_exit(2);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN + 16384);
	for (int i = 1; i < threads; i++) {
		pthread_t t;

		if (pthread_create(&t, &attr, i <= wakers ? waker : sleeper, NULL)) {
			fprintf(stderr, "scale_pop: thread %d: %s\n", i, strerror(errno));
			_exit(3);
		}
	}
	if (write(ready_fd, &ok, 1) != 1)
		_exit(4);
	close(ready_fd);
	sleeper(NULL);
}

int main(int argc, char **argv)
{
	static char line[65536];
	int fds[2], nprocs = 0, ready = 0;
	FILE *spec;
	char c;

	if (argc != 2 || !(spec = fopen(argv[1], "r"))) {
		fprintf(stderr, "usage: scale_pop SPEC-FILE\n");
		return 2;
	}
	if (pipe(fds))
		return 1;
	setpgid(0, 0);
	while (fgets(line, sizeof(line), spec)) {
		int threads, wakers, off = 0;
		pid_t pid;

		if (sscanf(line, "%d %d %n", &threads, &wakers, &off) != 2)
			continue;
		pid = fork();
		if (pid < 0) {
			perror("scale_pop: fork");
			kill(0, SIGKILL);
			return 1;
		}
		if (pid == 0) {
			close(fds[0]);
			child(threads, wakers, line + off, fds[1]);
		}
		nprocs++;
	}
	fclose(spec);
	close(fds[1]);
	while (ready < nprocs && read(fds[0], &c, 1) == 1)
		ready++;
	if (ready < nprocs) {
		fprintf(stderr, "scale_pop: %d of %d processes started\n", ready, nprocs);
		signal(SIGTERM, SIG_IGN);
		kill(0, SIGTERM);
		return 1;
	}
	printf("ready %d\n", nprocs);
	fflush(stdout);
	while (read(0, line, sizeof(line)) > 0)
		;
	signal(SIGTERM, SIG_IGN);
	kill(0, SIGKILL);
	return 0;
}
