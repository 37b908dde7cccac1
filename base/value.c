// SPDX-License-Identifier: GPL-2.0-only
#include "base/value.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include "base/util.h"

static const char *const malformed[] = {
	[VALUE_UINT] = "is not a non-negative integer",
	[VALUE_DURATION] = "is not a duration (e.g. 500ms, 3s, 10m, 7d)",
	[VALUE_SIZE] = "is not a size (e.g. 512MiB, 1GiB)",
	[VALUE_BOOL] = "is not a boolean (true or false)",
};

int value_parse(const struct value_spec *spec, const char *s, uint64_t *out, char *why,
		size_t whylen)
{
	uint64_t v = 0;
	bool b = false;
	int err = -EINVAL;

	switch (spec->type) {
	case VALUE_UINT:
		err = parse_u64(s, &v);
		break;
	case VALUE_DURATION:
		err = parse_duration_ms(s, &v);
		break;
	case VALUE_SIZE:
		err = parse_size(s, &v);
		break;
	case VALUE_BOOL:
		err = parse_bool(s, &b);
		v = b;
		break;
	}
	if (err) {
		if (why)
			snprintf(why, whylen, "'%s' %s", s,
				 spec->type <= VALUE_BOOL ? malformed[spec->type] : "has no type");
		return -EINVAL;
	}
	if (spec->type != VALUE_BOOL && (v < spec->min || v > spec->max)) {
		char lo[32], hi[32];

		value_format(spec->type, spec->min, lo, sizeof(lo));
		value_format(spec->type, spec->max, hi, sizeof(hi));
		if (why)
			snprintf(why, whylen, "'%s' is out of range [%s, %s]", s, lo, hi);
		return -ERANGE;
	}
	*out = v;
	return 0;
}

void value_format(enum value_type type, uint64_t v, char *buf, size_t len)
{
	switch (type) {
	case VALUE_DURATION:
		format_duration(v, buf, len);
		return;
	case VALUE_SIZE:
		format_size(v, buf, len);
		return;
	case VALUE_BOOL:
		snprintf(buf, len, "%s", v ? "true" : "false");
		return;
	case VALUE_UINT:
		break;
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

const char *value_type_name(enum value_type type)
{
	switch (type) {
	case VALUE_UINT:
		return "integer";
	case VALUE_DURATION:
		return "duration";
	case VALUE_SIZE:
		return "size";
	case VALUE_BOOL:
		return "boolean";
	}
	return "?";
}
