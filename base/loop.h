/* SPDX-License-Identifier: GPL-2.0-only */
/* The one event loop: epoll over file descriptors and timerfds. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_timer;

/* Called when fd is readable (events holds the epoll bits). */
typedef void (*loop_fd_cb)(void *ctx, int fd, uint32_t events);
typedef void (*loop_timer_cb)(void *ctx, struct loop_timer *t);

int loop_new(struct loop **out);
void loop_free(struct loop **l);

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ctx);
int loop_mod_fd(struct loop *l, int fd, uint32_t events);
void loop_del_fd(struct loop *l, int fd);

/* A timer first fires after first_ns, then every period_ns (0: one-shot).
 * Timers run on CLOCK_MONOTONIC. */
int loop_timer_new(struct loop *l, uint64_t first_ns, uint64_t period_ns, loop_timer_cb cb,
		   void *ctx, struct loop_timer **out);
int loop_timer_set(struct loop_timer *t, uint64_t first_ns, uint64_t period_ns);
/* Disarms t until the next loop_timer_set. */
int loop_timer_stop(struct loop_timer *t);
void loop_timer_free(struct loop_timer **t);

/* Runs until loop_stop(); returns 0 or a negative errno. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);
/* Dispatches ready events once, waiting at most timeout_ms (-1: forever). */
int loop_once(struct loop *l, int timeout_ms);
