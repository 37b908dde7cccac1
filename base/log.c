// SPDX-License-Identifier: GPL-2.0-only
#include "base/log.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/sanitize.h"

static enum log_level current_level = LOG_LVL_INFO;
static int journald = -1; /* lazily detected: stderr connected to journald */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities journald understands as a "<N>" line prefix */
static const int level_prio[] = {3, 4, 6, 7};

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

const char *log_level_name(enum log_level level)
{
	return level <= LOG_LVL_DEBUG ? level_names[level] : "?";
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static bool stderr_is_journal(void)
{
	if (journald < 0) {
		/* systemd sets JOURNAL_STREAM=dev:ino when stderr goes to journald */
		journald = getenv("JOURNAL_STREAM") != NULL;
	}
	return journald;
}

/* One record: journald reads "<N>" at the start of each line as its
 * priority, so a process name holding "\n<0>" would forge a record of its
 * own. Control characters (newlines included), C1 and invalid UTF-8 become
 * visible escapes instead. */
static void emit(enum log_level level, const char *raw)
{
	char line[2048 * 4];

	str_clean(line, sizeof(line), raw, strlen(raw), STR_TERMINAL);
	if (stderr_is_journal()) {
		/* journald adds its own timestamps */
		fprintf(stderr, "<%d>%s\n", level_prio[level], line);
	} else {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %-5s %s\n", stamp, ts.tv_nsec / 1000000,
			level_names[level], line);
	}
}

static void vmsg(enum log_level level, bool split_lines, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void vmsg(enum log_level level, bool split_lines, const char *fmt, va_list ap)
{
	char line[2048];
	int n;

	if (level > current_level)
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	/* strip trailing newlines: libbpf ends its lines with one, we add our own */
	for (size_t len = strlen(line); len > 0 && line[len - 1] == '\n'; len--)
		line[len - 1] = '\0';
	if (split_lines) {
		/* libbpf's own multi-line text (a verifier log): one record a line */
		for (char *p = line, *nl; p; p = nl ? nl + 1 : NULL) {
			nl = strchr(p, '\n');
			if (nl)
				*nl = '\0';
			emit(level, p);
		}
		return;
	}
	emit(level, line);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	vmsg(level, false, fmt, ap);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

int log_ret(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	return err < 0 ? err : -EINVAL;
}

/* libbpf hands on its own format strings: checked as such, not as non-literals */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum log_level ours = LOG_LVL_DEBUG;

	if (level == LIBBPF_WARN)
		ours = LOG_LVL_WARN;
	else if (level == LIBBPF_INFO)
		ours = LOG_LVL_DEBUG; /* libbpf's info is chatty: feature probes, map reuse */
	vmsg(ours, true, fmt, ap);
	return 0;
}

void log_route_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
