/* SPDX-License-Identifier: GPL-2.0-only */
/* Cgroup layout (v1, v2, hybrid), cgroup id <-> path, container identity, and
 * the bounded set of cgroups the watch layer follows. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct labels;

enum cgroup_layout { CGROUP_V2, CGROUP_V1, CGROUP_HYBRID, CGROUP_NONE };

/* Where a cgroup's files of one kind live. */
enum cgroup_ctrl {
	CG_CTRL_CPU,	 /* v1 cpu (quota, throttling) */
	CG_CTRL_CPUACCT, /* v1 cpuacct (usage, user/sys) */
	CG_CTRL_MEMORY,	 /* v1 memory */
	CG_CTRL_CPUSET,	 /* v1 cpuset */
	CG_CTRL_V2,	 /* the v2 hierarchy (every controller, PSI) */
	CG_CTRL_COUNT
};

struct cgroups;

/* root: where cgroupfs is mounted, normally "/sys/fs/cgroup". */
int cgroups_new(struct cgroups **out, const char *root);
/* The same over a crafted tree (tests): the layout is given, not detected from
 * file system magic; v1 controllers are root/<name>, hybrid's v2 root/unified. */
int cgroups_new_at(struct cgroups **out, const char *root, enum cgroup_layout layout);
void cgroups_free(struct cgroups **cg);

enum cgroup_layout cgroups_layout(const struct cgroups *cg);
const char *cgroups_layout_name(enum cgroup_layout l);
/* The hierarchy whose ids the BPF side reports and its mount point:
 * v2 -> -1 and the v2 mount; v1/hybrid -> the cpu controller's index and mount. */
int cgroups_bpf_subsys(const struct cgroups *cg);
const char *cgroups_id_root(const struct cgroups *cg);
/* Mount point of one controller's files, or NULL when this host has none. */
const char *cgroups_ctrl_root(const struct cgroups *cg, enum cgroup_ctrl c);

/* Id (inode of the cgroup directory) of a path relative to the id hierarchy. */
int cgroups_id_of(const struct cgroups *cg, const char *path, uint64_t *id);
/* Path ("/" for the root) of an id; walks the hierarchy on a cache miss. */
int cgroups_path_of(struct cgroups *cg, uint64_t id, char *buf, size_t len);

/* Container id (64 hex) and Kubernetes pod uid from a cgroup path, as docker,
 * containerd, cri-o and the kubelet name them; empty strings when none. */
void cgroup_path_identity(const char *path, char *container_id, size_t cid_len, char *pod_uid,
			  size_t pod_len);
/* Sets "cgroup", and "container_id" / "pod_uid" when the path names them, on
 * o for a cgroup id; nothing when the id is 0 or unknown. */
void cgroup_json_set(json_t *o, struct cgroups *cg, uint64_t cgroup_id);
/* Kubernetes QoS class of a pod's cgroup path: "guaranteed", "burstable",
 * "besteffort", or "" when the path is not a pod's. */
const char *cgroup_path_qos(const char *path);

/* The cgroup of a process, from the text of /proc/PID/cgroup (a tenant names its cgroups:
 * hostile input): controller NULL reads the unified (v2) hierarchy's line "0::/path";
 * otherwise the v1 hierarchy that carries that controller ("4:cpu,cpuacct:/path"), else,
 * when there is none (pure v2), the unified one. -ENOENT without a matching line,
 * -ENAMETOOLONG when the path does not fit buf. */
int cgroup_proc_parse(const char *text, const char *controller, char *buf, size_t len);
/* The same read from <procfs>/<pid>/cgroup; -ENOENT also when the process is gone. */
int cgroup_of_pid(const char *procfs, int pid, const char *controller, char *buf, size_t len);
/* Is path the cgroup want or below it? "/a/b" is under "/a", "/ab" is not; all is under "/". */
bool cgroup_path_under(const char *path, const char *want);

/*
 * The watched set: populated cgroups (the root excepted), found by walking the
 * hierarchies every scan period, at most `max` of them. When more exist,
 * containers and pods come first, then shallower cgroups; the rest are counted
 * as dropped. Paths are relative to the hierarchies ("/a/b") and equal in every
 * controller, as container runtimes create them.
 */
struct cgroup_entry {
	uint64_t serial; /* new for every cgroup that appears, never reused */
	uint64_t id;	 /* inode in the id hierarchy; 0 when the path is not there */
	char *path;
	char container_id[65];
	char pod_uid[37];
	const char *qos; /* cgroup_path_qos() */
	unsigned depth;
};

struct cgroups_watch_stats {
	unsigned watched;    /* entries now */
	unsigned candidates; /* populated cgroups found by the last scan */
	uint64_t dropped;    /* candidates left out for lack of room, last scan */
	uint64_t unsafe;     /* cgroups skipped for control characters or overlong paths */
	uint64_t scans, appeared, vanished;
	uint64_t scan_us; /* wall time of the last scan */
};

/* A populated cgroup found by a walk (or by the BPF cgroup pass). */
struct cgroup_found {
	const char *path;
	unsigned depth;
	uint64_t id; /* in the id hierarchy; 0: not known (looked up) */
};

/* max 0 watches nothing. */
void cgroups_watch_setup(struct cgroups *cg, unsigned max, uint64_t scan_period_ms);
/* Rescans when the period has passed (or force); returns 1 when the set
 * changed, 0 when not, or a negative errno. */
int cgroups_watch_refresh(struct cgroups *cg, uint64_t now_ms, bool force);
/* The same choice from candidates found elsewhere (every populated cgroup, the
 * root excepted; paths are copied; unsafe: how many were left out for their
 * names). From then on cgroups_watch_refresh walks nothing: the caller keeps
 * the set current. Returns as cgroups_watch_refresh. */
int cgroups_watch_update(struct cgroups *cg, const struct cgroup_found *found, size_t n,
			 uint64_t unsafe);
/* Bumped whenever the set changes. */
uint64_t cgroups_watch_generation(const struct cgroups *cg);
unsigned cgroups_watch_count(const struct cgroups *cg);
/* Sorted by path. */
const struct cgroup_entry *cgroups_watch_at(const struct cgroups *cg, unsigned i);
const struct cgroup_entry *cgroups_watch_find_id(const struct cgroups *cg, uint64_t id);
void cgroups_watch_stats(const struct cgroups *cg, struct cgroups_watch_stats *out);
/* The labels every series of this cgroup carries, in one fixed order:
 * cgroup, then container_id, pod_uid and qos when known. Points into e. */
void cgroup_entry_labels(const struct cgroup_entry *e, struct labels *l);
