// SPDX-License-Identifier: GPL-2.0-only
/* The registry of capture kinds and the parameter helpers they share. */
#include "probes/capture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "base/value.h"

extern const struct capture_ops profile_capture;
extern const struct capture_ops iotrace_capture;
extern const struct capture_ops memtrace_capture;
extern const struct capture_ops offcpu_capture;
extern const struct capture_ops dstate_capture;
extern const struct capture_ops runq_capture;
extern const struct capture_ops timeline_capture;

const struct capture_ops *const capture_kinds[] = {
	&profile_capture, &iotrace_capture, &memtrace_capture, &offcpu_capture,
	&dstate_capture,  &runq_capture,    &timeline_capture, NULL,
};

const struct capture_ops *capture_kind_lookup(const char *kind)
{
	for (const struct capture_ops *const *k = capture_kinds; *k; k++)
		if (strcmp((*k)->kind, kind) == 0)
			return *k;
	return NULL;
}

int capture_param_index(const struct capture_ops *ops, const char *name)
{
	for (unsigned i = 0; i < ops->nparams; i++)
		if (strcmp(ops->params[i].name, name) == 0)
			return (int)i;
	return -1;
}

int capture_param_parse(const struct capture_param_desc *d, const char *s, uint64_t *out, char *why,
			size_t whylen)
{
	struct value_spec spec = {(enum value_type)d->type, d->min, d->max};

	if (d->type == CPARAM_STRINGS) {
		snprintf(why, whylen, "expects a list of strings");
		return -EINVAL;
	}
	return value_parse(&spec, s, out, why, whylen);
}

void capture_params_defaults(const struct capture_ops *ops, struct capture_params *p)
{
	char why[128];

	memset(p, 0, sizeof(*p));
	p->duration_ms = 10000;
	for (unsigned i = 0; i < ops->nparams && i < CAPTURE_MAX_PARAMS; i++)
		if (ops->params[i].type != CPARAM_STRINGS)
			capture_param_parse(&ops->params[i], ops->params[i].def, &p->v[i], why,
					    sizeof(why));
}

int capture_param_set_strings(const struct capture_ops *ops, unsigned idx, struct capture_params *p,
			      const char *const *entries, size_t n, char *why, size_t whylen)
{
	const struct capture_param_desc *d;
	size_t off = 0;

	if (idx >= ops->nparams || idx >= CAPTURE_MAX_PARAMS ||
	    ops->params[idx].type != CPARAM_STRINGS) {
		snprintf(why, whylen, "not a list parameter");
		return -EINVAL;
	}
	d = &ops->params[idx];
	if (n < d->min || n > d->max) {
		snprintf(why, whylen, "%zu entries; between %llu and %llu allowed", n,
			 (unsigned long long)d->min, (unsigned long long)d->max);
		return -ERANGE;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(entries[i]);

		if (len == 0 || len >= CAPTURE_PARAM_ENTRY) {
			snprintf(why, whylen, "entry %zu: must be 1 to %d characters", i + 1,
				 CAPTURE_PARAM_ENTRY - 1);
			return -EINVAL;
		}
		if (d->check && d->check(entries[i], why, whylen))
			return -EINVAL;
		if (off + len + 1 >= sizeof(p->text)) {
			snprintf(why, whylen, "the entries exceed %zu bytes in all",
				 sizeof(p->text) - 1);
			return -E2BIG;
		}
		memcpy(p->text + off, entries[i], len + 1);
		off += len + 1;
	}
	memset(p->text + off, 0, sizeof(p->text) - off);
	p->v[idx] = n;
	return 0;
}

const char *capture_param_next_string(const struct capture_params *p, unsigned idx,
				      const char *prev)
{
	const char *next;

	if (idx >= CAPTURE_MAX_PARAMS || p->v[idx] == 0)
		return NULL;
	next = prev ? prev + strlen(prev) + 1 : p->text;
	if (next >= p->text + sizeof(p->text) || !*next)
		return NULL;
	return next;
}

void capture_result_clear(struct capture_result *r)
{
	json_decref(r->data);
	for (unsigned i = 0; i < r->nartifacts; i++)
		free(r->artifacts[i].data);
	memset(r, 0, sizeof(*r));
}

int capture_result_add_artifact(struct capture_result *r, const char *name, char *data, size_t len)
{
	struct capture_artifact *a;

	if (r->nartifacts >= CAPTURE_MAX_ARTIFACTS) {
		free(data);
		return -ENOSPC;
	}
	a = &r->artifacts[r->nartifacts++];
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->data = data;
	a->len = len;
	return 0;
}
