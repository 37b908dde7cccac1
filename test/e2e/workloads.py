# SPDX-License-Identifier: GPL-2.0-only
"""Workload programs shared by the culprit, completeness and IO-stall tests."""

# A pre-fork server: `atserver N SECONDS` forks N worker processes that burn
# CPU through a tree of 16 functions, 6 calls deep, the path chosen at random
# on every round: each worker's time is spread over thousands of distinct
# stacks, none of them large. Built without tail calls or inlining so every
# frame stays on the stack.
def _server():
    funcs = "\n".join(
        f"__attribute__((noinline)) static void f{n}(unsigned r, int d)\n"
        f"{{\n    for (int i = 0; i < 3000; i++) sink += (unsigned long)i * {n + 1};\n"
        f"    if (d > 0) table[(r >> ((d * 4) % 28)) & 15](r * 1103515245u + 12345u, d - 1);\n"
        f"    sink++;\n}}\n" for n in range(16))
    return r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static volatile unsigned long sink;
typedef void (*fn)(unsigned, int);
static fn table[16];
""" + funcs + r"""
static void worker(int seconds)
{
    time_t end = time(NULL) + seconds;
    unsigned r = (unsigned)getpid() * 2654435761u;

    while (time(NULL) < end) {
        r = r * 1664525u + 1013904223u;
        table[r & 15](r, 5);
    }
    _exit(0);
}
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 6, seconds = argc > 2 ? atoi(argv[2]) : 10;
""" + "".join(f"    table[{n}] = f{n};\n" for n in range(16)) + r"""
    for (int i = 0; i < n; i++)
        if (fork() == 0)
            worker(seconds);
    while (wait(NULL) > 0)
        ;
    return 0;
}
"""


SERVER = _server()

# One process, one hot stack: `atclient SECONDS` spins in one function.
CLIENT = r"""
#include <stdlib.h>
#include <time.h>
static volatile unsigned long sink;
__attribute__((noinline)) static void hot_loop(void)
{
    for (int i = 0; i < 1000000; i++) sink += (unsigned long)i;
}
int main(int argc, char **argv)
{
    time_t end = time(NULL) + (argc > 1 ? atoi(argv[1]) : 10);

    while (time(NULL) < end)
        hot_loop();
    return 0;
}
"""

NOFP_FLAGS = ("-O1", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls", "-fno-inline")

# An fsync storm: `atwriter DIR SECONDS THREADS` appends 4 KiB and fsyncs, in
# a loop, from each thread, to its own file in DIR (on a real disk, not tmpfs):
# the device is never saturated and each request is fast, yet the writer's
# threads spend most of their time waiting for their syncs.
WRITER = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static const char *dir;
static int seconds;
static void *run(void *arg)
{
    char path[4096], buf[4096];
    time_t end = time(NULL) + seconds;
    int fd;

    snprintf(path, sizeof(path), "%s/atwriter-%ld.dat", dir, (long)arg);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    memset(buf, 'x', sizeof(buf));
    for (long n = 0; time(NULL) < end; n++) {
        if (write(fd, buf, sizeof(buf)) != sizeof(buf) || fsync(fd))
            abort();
        /* keep the file small: rewrite from the start now and then */
        if (n % 256 == 255 && (ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET)))
            abort();
    }
    close(fd);
    unlink(path);
    return NULL;
}
int main(int argc, char **argv)
{
    int n = argc > 3 ? atoi(argv[3]) : 4;
    pthread_t t[64];

    dir = argc > 1 ? argv[1] : ".";
    seconds = argc > 2 ? atoi(argv[2]) : 30;
    if (n > 64)
        n = 64;
    for (long i = 0; i < n; i++)
        pthread_create(&t[i], NULL, run, (void *)i);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    return 0;
}
"""
