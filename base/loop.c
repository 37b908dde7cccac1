// SPDX-License-Identifier: GPL-2.0-only
#include "base/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 32

/* One registration per fd; kept in a list because the loop watches a few dozen fds at most. */
struct loop_src {
	int fd;
	loop_fd_cb cb;
	void *ctx;
	struct loop_src *next;
	bool dead; /* removed while dispatching; freed after the batch */
};

struct loop {
	int epfd;
	bool stop;
	bool dispatching;
	struct loop_src *srcs;
};

struct loop_timer {
	struct loop *loop;
	int fd;
	loop_timer_cb cb;
	void *ctx;
};

int loop_new(struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int err = -errno;

		free(l);
		return err;
	}
	*out = l;
	return 0;
}

static void reap_dead(struct loop *l)
{
	struct loop_src **pp = &l->srcs;

	while (*pp) {
		struct loop_src *s = *pp;

		if (s->dead) {
			*pp = s->next;
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

void loop_free(struct loop **pl)
{
	struct loop *l = pl ? *pl : NULL;

	if (!l)
		return;
	for (struct loop_src *s = l->srcs; s; s = s->next)
		s->dead = true;
	reap_dead(l);
	close(l->epfd);
	free(l);
	*pl = NULL;
}

static struct loop_src *find_src(struct loop *l, int fd)
{
	for (struct loop_src *s = l->srcs; s; s = s->next)
		if (s->fd == fd && !s->dead)
			return s;
	return NULL;
}

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ctx)
{
	struct epoll_event ev = {.events = events};
	struct loop_src *s;

	if (find_src(l, fd))
		return -EEXIST;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = fd;
	s->cb = cb;
	s->ctx = ctx;
	ev.data.ptr = s;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		int err = -errno;

		free(s);
		return err;
	}
	s->next = l->srcs;
	l->srcs = s;
	return 0;
}

int loop_mod_fd(struct loop *l, int fd, uint32_t events)
{
	struct loop_src *s = find_src(l, fd);
	struct epoll_event ev = {.events = events};

	if (!s)
		return -ENOENT;
	ev.data.ptr = s;
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
}

void loop_del_fd(struct loop *l, int fd)
{
	struct loop_src *s = find_src(l, fd);

	if (!s)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	s->dead = true;
	if (!l->dispatching)
		reap_dead(l);
}

static void timer_fired(void *ctx, int fd, uint32_t events)
{
	struct loop_timer *t = ctx;
	uint64_t expirations;

	(void)events;
	if (read(fd, &expirations, sizeof(expirations)) != sizeof(expirations))
		return;
	t->cb(t->ctx, t);
}

int loop_timer_set(struct loop_timer *t, uint64_t first_ns, uint64_t period_ns)
{
	struct itimerspec its = {0};

	/* a zero it_value disarms a timerfd; fire "immediately" as 1 ns instead */
	if (first_ns == 0)
		first_ns = 1;
	its.it_value.tv_sec = (time_t)(first_ns / 1000000000ull);
	its.it_value.tv_nsec = (long)(first_ns % 1000000000ull);
	its.it_interval.tv_sec = (time_t)(period_ns / 1000000000ull);
	its.it_interval.tv_nsec = (long)(period_ns % 1000000000ull);
	return timerfd_settime(t->fd, 0, &its, NULL) ? -errno : 0;
}

int loop_timer_stop(struct loop_timer *t)
{
	struct itimerspec its = {0};

	return timerfd_settime(t->fd, 0, &its, NULL) ? -errno : 0;
}

int loop_timer_new(struct loop *l, uint64_t first_ns, uint64_t period_ns, loop_timer_cb cb,
		   void *ctx, struct loop_timer **out)
{
	struct loop_timer *t;
	int err;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = l;
	t->cb = cb;
	t->ctx = ctx;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0) {
		err = -errno;
		free(t);
		return err;
	}
	err = loop_add_fd(l, t->fd, EPOLLIN, timer_fired, t);
	if (!err)
		err = loop_timer_set(t, first_ns, period_ns);
	if (err) {
		loop_del_fd(l, t->fd);
		close(t->fd);
		free(t);
		return err;
	}
	*out = t;
	return 0;
}

void loop_timer_free(struct loop_timer **pt)
{
	struct loop_timer *t = pt ? *pt : NULL;

	if (!t)
		return;
	loop_del_fd(t->loop, t->fd);
	close(t->fd);
	free(t);
	*pt = NULL;
}

int loop_once(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int n;

	n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	l->dispatching = true;
	for (int i = 0; i < n; i++) {
		struct loop_src *s = evs[i].data.ptr;

		/* a callback earlier in this batch may have removed this source */
		if (s->dead)
			continue;
		s->cb(s->ctx, s->fd, evs[i].events);
		if (l->stop)
			break;
	}
	l->dispatching = false;
	reap_dead(l);
	return 0;
}

int loop_run(struct loop *l)
{
	int err = 0;

	l->stop = false;
	while (!l->stop && !err)
		err = loop_once(l, -1);
	return err;
}

void loop_stop(struct loop *l)
{
	l->stop = true;
}
