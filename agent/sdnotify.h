/* SPDX-License-Identifier: GPL-2.0-only */
/* systemd notify protocol: one datagram to $NOTIFY_SOCKET. Implemented here in
 * ~50 lines instead of linking libsystemd: the protocol is a stable, documented
 * datagram, and the agent then runs unchanged on hosts without systemd. */
#pragma once
#include <stdint.h>

/* Sends "READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1", "RELOADING=1".
 * Returns 0 when sent or when not running under systemd. */
int sd_notify_send(const char *state);
int sd_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Watchdog period the service manager expects, 0 when not enabled. */
uint64_t sd_watchdog_usec(void);
