// SPDX-License-Identifier: GPL-2.0-only
#include "agent/sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/util.h"

int sd_notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t salen;
	size_t plen;
	int fd, err = 0;

	if (!path || !*path)
		return 0;
	plen = strlen(path);
	/* "@name" is an abstract socket address */
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* never block the event loop: a receiver that does not read (a stuck
	 * manager, a test harness) costs a status line, not the agent */
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa,
		   salen) < 0)
		err = -errno;
	close(fd);
	return err;
}

int sd_notify_status(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "STATUS=");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	return sd_notify_send(msg);
}

uint64_t sd_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	uint64_t v;

	if (!usec || parse_u64(usec, &v) || v == 0)
		return 0;
	/* WATCHDOG_PID names the process the watchdog is meant for */
	if (pid) {
		uint64_t p;

		if (parse_u64(pid, &p) || p != (uint64_t)getpid())
			return 0;
	}
	return v;
}
