/* SPDX-License-Identifier: GPL-2.0-only */
/* Kernel settings the agent changes (kernel.task_delayacct) are recorded
 * before they change, in a file per setting in the agent's runtime
 * directory, naming the value to put back and the process that changed it.
 * A clean exit puts it back and removes the record; after a crash or SIGKILL
 * the record stays, and the next start of the agent or `autotrace cleanup`
 * (the unit's ExecStopPost) puts the value back, once the process that
 * changed it is gone. */
#pragma once
#include <stddef.h>

/* The directory records live in: the control socket's (a root-only 0700
 * directory, /run/autotrace in the unit), from the configured socket path. */
void sysstate_dir_of(const char *control_socket, char *buf, size_t len);

/* Records that name (e.g. "kernel.task_delayacct", under procfs/sys/) holds
 * old now, then writes value. On failure nothing is changed or recorded. */
int sysstate_set(const char *dir, const char *procfs, const char *name, const char *old,
		 const char *value);
/* Puts the recorded value of name back and removes the record (this
 * process's own record, or one whose process is gone). 0 when restored, 1
 * when there was nothing to restore, -EBUSY when its process still runs. */
int sysstate_restore(const char *dir, const char *procfs, const char *name);
/* sysstate_restore for every record in dir; returns how many were restored. */
int sysstate_restore_all(const char *dir, const char *procfs);
