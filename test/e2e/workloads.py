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
