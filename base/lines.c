// SPDX-License-Identifier: GPL-2.0-only
#include "base/lines.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct linereader {
	int fd;
	char *buf;
	size_t cap; /* max_line + 2 */
	size_t start, end;
	bool skipping; /* inside a line longer than max_line */
	bool eof;
	uint64_t dropped;
};

int linereader_new(struct linereader **out, int fd, size_t max_line)
{
	struct linereader *lr;

	if (fd < 0 || max_line == 0 || max_line > (64u << 20))
		return -EINVAL;
	lr = calloc(1, sizeof(*lr));
	if (!lr)
		return -ENOMEM;
	lr->cap = max_line + 2; /* the line, its newline, a NUL */
	lr->buf = malloc(lr->cap);
	if (!lr->buf) {
		free(lr);
		return -ENOMEM;
	}
	lr->fd = fd;
	*out = lr;
	return 0;
}

int linereader_open(struct linereader **out, const char *path, size_t max_line)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	err = linereader_new(out, fd, max_line);
	if (err)
		close(fd);
	return err;
}

int linereader_next(struct linereader *lr, char **line, size_t *len)
{
	for (;;) {
		char *nl = memchr(lr->buf + lr->start, '\n', lr->end - lr->start);
		ssize_t n;

		if (nl) {
			size_t at = lr->start;

			*nl = '\0';
			lr->start = (size_t)(nl - lr->buf) + 1;
			if (lr->skipping) {
				lr->skipping = false;
				lr->dropped++;
				continue;
			}
			*line = lr->buf + at;
			*len = (size_t)(nl - lr->buf) - at;
			return 1;
		}
		if (lr->eof) {
			/* a last line without its newline counts as a line */
			if (lr->skipping)
				lr->dropped++;
			if (!lr->skipping && lr->end > lr->start) {
				*line = lr->buf + lr->start;
				*len = lr->end - lr->start;
				lr->buf[lr->end] = '\0';
				lr->start = lr->end;
				return 1;
			}
			lr->start = lr->end;
			lr->skipping = false;
			return 0;
		}
		if (lr->start) {
			memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
			lr->end -= lr->start;
			lr->start = 0;
		}
		if (lr->end == lr->cap - 1) {
			/* a line longer than max_line: drop it whole, up to its newline */
			lr->skipping = true;
			lr->end = 0;
		}
		n = read(lr->fd, lr->buf + lr->end, lr->cap - 1 - lr->end);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			lr->eof = true;
		lr->end += (size_t)n;
	}
}

uint64_t linereader_dropped(const struct linereader *lr)
{
	return lr->dropped;
}

void linereader_free(struct linereader **plr)
{
	struct linereader *lr = plr ? *plr : NULL;

	if (!lr)
		return;
	if (lr->fd >= 0)
		close(lr->fd);
	free(lr->buf);
	free(lr);
	*plr = NULL;
}
