// SPDX-License-Identifier: GPL-2.0-only
#include "probes/schedutil.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/cgroups.h"
#include "base/log.h"
#include "base/symbolize.h"
#include "probes/capture.h"

bool sched_force_raw_tp;

static bool has_prefix(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

void sched_select_flavor(struct bpf_object *obj, bool btf)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj)
	{
		const char *sec = bpf_program__section_name(prog);

		if (has_prefix(sec, "tp_btf/"))
			bpf_program__set_autoload(prog, btf);
		else if (has_prefix(sec, "raw_tp/"))
			bpf_program__set_autoload(prog, !btf);
	}
}

int sched_set_self(const struct bpf_map *self_map, const struct capture_target *t)
{
	uint32_t zero = 0, self = (uint32_t)getpid();

	if (t->kind == TARGET_PID && t->pid == (int)self)
		self = 0;
	return bpf_map__update_elem(self_map, &zero, sizeof(zero), &self, sizeof(self), 0);
}

int sched_attach(struct bpf_object *obj, struct bpf_link **links, unsigned *nlinks)
{
	struct bpf_program *prog;
	int err;

	*nlinks = 0;
	bpf_object__for_each_program(prog, obj)
	{
		const char *sec = bpf_program__section_name(prog);

		if (!bpf_program__autoload(prog) ||
		    !(has_prefix(sec, "tp_btf/") || has_prefix(sec, "raw_tp/")))
			continue;
		if (*nlinks >= SCHED_MAX_LINKS) {
			err = -E2BIG;
			goto fail;
		}
		links[*nlinks] = bpf_program__attach(prog);
		if (!links[*nlinks]) {
			err = log_ret(-errno, "attaching %s: %s", bpf_program__name(prog),
				      strerror(errno));
			goto fail;
		}
		(*nlinks)++;
	}
	return 0;
fail:
	sched_detach(links, nlinks);
	return err;
}

void sched_detach(struct bpf_link **links, unsigned *nlinks)
{
	for (unsigned i = 0; i < *nlinks; i++) {
		bpf_link__destroy(links[i]);
		links[i] = NULL;
	}
	*nlinks = 0;
}

int sched_stack_read(const struct bpf_map *stacks, int32_t id, uint64_t *frames, unsigned *n)
{
	*n = 0;
	if (id < 0)
		return 0;
	if (bpf_map__lookup_elem(stacks, &id, sizeof(id), frames,
				 SCHED_MAX_DEPTH * sizeof(uint64_t), 0))
		return -ENOENT;
	while (*n < SCHED_MAX_DEPTH && frames[*n])
		(*n)++;
	return 0;
}

unsigned sched_trace_frames(struct symbolizer *sym, const uint64_t *frames, unsigned n)
{
	static const char *const glue[] = {"bpf_prog_",	      "bpf_trace_run",	"__bpf_trace_",
					   "__traceiter_",    "__bpf_prog_run", "trace_call_bpf",
					   "bpf_dispatcher_", "perf_trace_"};
	unsigned skip = 0;

	if (!sym)
		return 0;
	for (; skip < n; skip++) {
		struct sym_frame f;
		bool is_glue = false;

		if (symbolizer_kernel(sym, frames[skip], &f))
			break;
		for (size_t i = 0; i < sizeof(glue) / sizeof(glue[0]); i++)
			is_glue |= strncmp(f.name, glue[i], strlen(glue[i])) == 0;
		if (!is_glue)
			break;
	}
	return skip;
}

unsigned sched_stack_irq_frames(struct symbolizer *sym, const uint64_t *frames, unsigned n)
{
	static const char *const entry[] = {"asm_sysvec_", "asm_common_interrupt"};
	static const char *const irq[] = {"sysvec_",	     "__sysvec_",    "common_interrupt",
					  "handle_softirqs", "__do_softirq", "__irq_exit_rcu",
					  "irq_exit"};
	unsigned last = 0;

	if (!sym)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		struct sym_frame f;

		if (symbolizer_kernel(sym, frames[i], &f))
			continue;
		/* the entry point ends the interrupt: below it is the interrupted task */
		for (size_t j = 0; j < sizeof(entry) / sizeof(entry[0]); j++)
			if (strncmp(f.name, entry[j], strlen(entry[j])) == 0)
				return i + 1;
		for (size_t j = 0; j < sizeof(irq) / sizeof(irq[0]); j++)
			if (strncmp(f.name, irq[j], strlen(irq[j])) == 0)
				last = i + 1;
	}
	return last;
}

json_t *sched_frames_json(struct symbolizer *sym, int tgid, const uint64_t *kframes, unsigned nk,
			  const uint64_t *uframes, unsigned nu)
{
	json_t *arr = json_array();
	struct sym_frame f;

	for (unsigned i = 0; i < nk; i++) {
		memset(&f, 0, sizeof(f));
		f.addr = kframes[i];
		f.kernel = true;
		if (sym)
			symbolizer_kernel(sym, kframes[i], &f);
		json_array_append_new(arr, sym_frame_json(&f));
	}
	for (unsigned i = 0; i < nu; i++) {
		memset(&f, 0, sizeof(f));
		f.addr = uframes[i];
		if (sym)
			symbolizer_user(sym, tgid, uframes[i], &f);
		json_array_append_new(arr, sym_frame_json(&f));
	}
	return arr;
}

void sched_frame_text(struct symbolizer *sym, int tgid, uint64_t addr, bool kernel, char *buf,
		      size_t len)
{
	struct sym_frame f;

	memset(&f, 0, sizeof(f));
	f.addr = addr;
	if (sym) {
		if (kernel)
			symbolizer_kernel(sym, addr, &f);
		else
			symbolizer_user(sym, tgid, addr, &f);
	}
	if (f.name[0]) {
		snprintf(buf, len, "%s", f.name);
	} else if (f.module[0] && !kernel) {
		const char *base = strrchr(f.module, '/');

		snprintf(buf, len, "%s+0x%" PRIx64, base ? base + 1 : f.module, f.file_offset);
	} else {
		snprintf(buf, len, "0x%" PRIx64, addr);
	}
}

void sched_json_set_cgroup(json_t *o, struct cgroups *cg, uint64_t cgroup_id)
{
	char path[512], cid[65], pod[37];

	if (!cgroup_id || !cg || cgroups_path_of(cg, cgroup_id, path, sizeof(path)))
		return;
	json_object_set_new(o, "cgroup", json_string(path));
	cgroup_path_identity(path, cid, sizeof(cid), pod, sizeof(pod));
	if (cid[0])
		json_object_set_new(o, "container_id", json_string(cid));
	if (pod[0])
		json_object_set_new(o, "pod_uid", json_string(pod));
}

const char *sched_state_name(unsigned state)
{
	static const char *const names[SCHED_ST_MAX] = {
		[SCHED_ST_UNKNOWN] = "?", [SCHED_ST_ON_CPU] = "on_cpu", [SCHED_ST_RUNNABLE] = "R",
		[SCHED_ST_SLEEP] = "S",	  [SCHED_ST_DISK] = "D",	[SCHED_ST_IDLE] = "I",
		[SCHED_ST_OTHER] = "T",	  [SCHED_ST_DEAD] = "X",
	};

	return state < SCHED_ST_MAX ? names[state] : "?";
}

void sched_comm(char *dst, const char *comm)
{
	memcpy(dst, comm, SCHED_TASK_COMM_LEN);
	dst[SCHED_TASK_COMM_LEN - 1] = '\0';
}
