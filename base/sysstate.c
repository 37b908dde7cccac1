// SPDX-License-Identifier: GPL-2.0-only
#include "base/sysstate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define PREFIX "sysctl-"

void sysstate_dir_of(const char *control_socket, char *buf, size_t len)
{
	const char *slash = strrchr(control_socket, '/');

	if (!slash)
		snprintf(buf, len, ".");
	else if (slash == control_socket)
		snprintf(buf, len, "/");
	else
		snprintf(buf, len, "%.*s", (int)(slash - control_socket), control_socket);
}

/* "kernel.task_delayacct" -> procfs/sys/kernel/task_delayacct; names are
 * [a-z0-9_.] only, so a record can never name another file */
static int sysctl_path(const char *procfs, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name), off;

	if (!n || n > 128 || name[0] == '.' || strstr(name, ".."))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '_' || name[i] == '.'))
			return -EINVAL;
	off = (size_t)snprintf(buf, len, "%s/sys/", procfs);
	if (off + n >= len)
		return -ENAMETOOLONG;
	for (size_t i = 0; i <= n; i++)
		buf[off + i] = name[i] == '.' ? '/' : name[i];
	return 0;
}

/* The start time of pid (field 22 of its stat): a pid reused by another
 * process after a crash does not hold the record. 0 when pid is gone. */
static unsigned long long start_time(int pid)
{
	char path[128], *text = NULL, *p;
	unsigned long long t = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, 4096, &text, NULL))
		return 0;
	p = strrchr(text, ')'); /* comm may hold spaces and parentheses */
	if (p && sscanf(p + 2,
			"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
			"%*d %*d %*d %llu",
			&t) != 1)
		t = 0;
	free(text);
	return t;
}

static int write_value(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW), err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		err = -errno;
	close(fd);
	return err;
}

static void record_path(const char *dir, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/" PREFIX "%s", dir, name);
}

int sysstate_set(const char *dir, const char *procfs, const char *name, const char *old,
		 const char *value)
{
	char path[512], rec[512], text[256];
	int err;

	if ((err = sysctl_path(procfs, name, path, sizeof(path))))
		return err;
	if (strlen(old) > 32 || strchr(old, '\n'))
		return -EINVAL;
	record_path(dir, name, rec, sizeof(rec));
	snprintf(text, sizeof(text), "%s\n%d %llu\n", old, (int)getpid(),
		 start_time((int)getpid()));
	/* the record first: a crash right after the write still has it */
	if ((err = mkdir_p(dir, 0700)) || (err = write_file_atomic(rec, text, strlen(text), 0600)))
		return err;
	err = write_value(path, value);
	if (err)
		unlink(rec);
	return err;
}

int sysstate_restore(const char *dir, const char *procfs, const char *name)
{
	char path[512], rec[512], old[64], why[128], *text = NULL;
	unsigned long long started = 0;
	int pid = 0, err;

	if ((err = sysctl_path(procfs, name, path, sizeof(path))))
		return err;
	record_path(dir, name, rec, sizeof(rec));
	err = read_file(rec, 4096, &text, NULL);
	if (err == -ENOENT)
		return 1;
	if (err)
		return err;
	/* the record says which file to write as root: only our own is believed */
	if (check_trusted_file(rec, why, sizeof(why)) ||
	    sscanf(text, "%63[^\n]\n%d %llu", old, &pid, &started) != 3) {
		log_warn("%s: ignored (%s)", rec, why[0] ? why : "not a record");
		free(text);
		return -EINVAL;
	}
	free(text);
	if (pid != (int)getpid() && started && start_time(pid) == started)
		return -EBUSY; /* the agent that changed it still runs */
	err = write_value(path, old);
	if (err == -ENOENT)
		err = 0; /* the setting is gone (another kernel): nothing to put back */
	if (err)
		return log_ret(err, "%s: putting %s back to %s: %s", rec, name, old,
			       strerror(-err));
	unlink(rec);
	if (pid != (int)getpid())
		log_warn("%s put back to %s: an earlier agent (pid %d) changed it and did not "
			 "exit cleanly",
			 name, old, pid);
	return 0;
}

int sysstate_restore_all(const char *dir, const char *procfs)
{
	struct dirent *de;
	int restored = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, PREFIX, strlen(PREFIX)) &&
		    sysstate_restore(dir, procfs, de->d_name + strlen(PREFIX)) == 0)
			restored++;
	closedir(d);
	return restored;
}
