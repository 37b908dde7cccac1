/* SPDX-License-Identifier: GPL-2.0-only */
/* One leveled logger for the agent and for libbpf. */
#pragma once
#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Logs at error level and returns err; err must be a negative errno, so a
 * "goto cleanup" taken after it can never carry err == 0. */
int log_ret(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Routes libbpf's own messages through this logger (warnings stay warnings). */
void log_route_libbpf(void);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
