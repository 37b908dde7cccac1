// SPDX-License-Identifier: GPL-2.0-only
#include "probes/stackstore.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "probes/bpfutil.h"

struct stackstore_state {
	uint64_t seed;
};

int stackstore_size(struct bpf_object *obj, unsigned max_stacks, unsigned depth)
{
	struct bpf_map *frames = bpf_object__find_map_by_name(obj, "stacks");
	struct bpf_map *index = bpf_object__find_map_by_name(obj, "stack_hash");
	int err;

	if (!frames || !index)
		return -ENOENT;
	err = bpf_map__set_max_entries(frames, max_stacks);
	if (!err)
		err = bpf_map__set_value_size(frames, depth * sizeof(uint64_t));
	if (!err)
		err = bpf_map__set_max_entries(index, max_stacks);
	return err;
}

int stackstore_reset(struct bpf_object *obj)
{
	struct bpf_map *frames = bpf_object__find_map_by_name(obj, "stacks");
	struct bpf_map *index = bpf_object__find_map_by_name(obj, "stack_hash");
	struct bpf_map *state = bpf_object__find_map_by_name(obj, "stack_state");
	struct stackstore_state s = {0};
	uint32_t zero = 0;

	if (!frames || !index || !state)
		return -ENOENT;
	map_clear(index);
	map_clear(frames);
	if (getrandom(&s.seed, sizeof(s.seed), GRND_NONBLOCK) != sizeof(s.seed))
		s.seed = (uint64_t)random() << 32 ^ (uint64_t)random();
	if (bpf_map_update_elem(bpf_map__fd(state), &zero, &s, BPF_ANY))
		return -errno;
	return 0;
}
