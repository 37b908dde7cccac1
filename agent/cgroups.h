/* SPDX-License-Identifier: GPL-2.0-only */
/* Cgroup layout (v1, v2, hybrid), cgroup id <-> path, and container identity. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cgroup_layout { CGROUP_V2, CGROUP_V1, CGROUP_HYBRID, CGROUP_NONE };

struct cgroups;

/* root: where cgroupfs is mounted, normally "/sys/fs/cgroup". */
int cgroups_new(struct cgroups **out, const char *root);
void cgroups_free(struct cgroups **cg);

enum cgroup_layout cgroups_layout(const struct cgroups *cg);
const char *cgroups_layout_name(enum cgroup_layout l);
/* The hierarchy whose ids the BPF side reports and its mount point:
 * v2 -> -1 and the v2 mount; v1/hybrid -> the cpu controller's index and mount. */
int cgroups_bpf_subsys(const struct cgroups *cg);
const char *cgroups_id_root(const struct cgroups *cg);

/* Id (inode of the cgroup directory) of a path relative to the id hierarchy. */
int cgroups_id_of(const struct cgroups *cg, const char *path, uint64_t *id);
/* Path ("/" for the root) of an id; walks the hierarchy on a cache miss. */
int cgroups_path_of(struct cgroups *cg, uint64_t id, char *buf, size_t len);

/* Container id (64 hex) and Kubernetes pod uid from a cgroup path, as docker,
 * containerd, cri-o and the kubelet name them; empty strings when none. */
void cgroup_path_identity(const char *path, char *container_id, size_t cid_len, char *pod_uid,
			  size_t pod_len);
