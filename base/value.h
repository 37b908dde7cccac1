/* SPDX-License-Identifier: GPL-2.0-only */
/* The typed scalars users write, in agent config keys, capture parameters and rule keys:
 * one parser, one range check, one wording of what is wrong. */
#pragma once
#include <stddef.h>
#include <stdint.h>

enum value_type {
	VALUE_UINT,	/* "42" */
	VALUE_DURATION, /* "500ms", "3s", "10m", "7d" -> milliseconds */
	VALUE_SIZE,	/* "512MiB", "1GiB", "4096" -> bytes */
	VALUE_BOOL,	/* "true", "false" -> 1, 0 */
};

struct value_spec {
	enum value_type type;
	uint64_t min, max; /* inclusive, in what the type parses to; unused for VALUE_BOOL */
};

/* Parses s as spec->type within [min, max] into *out. -EINVAL when s is not one, -ERANGE
 * when it is out of range; why (when not NULL) then says so, quoting s:
 * "'10ms' is out of range [100ms, 1m]". *out is untouched on failure. */
int value_parse(const struct value_spec *spec, const char *s, uint64_t *out, char *why,
		size_t whylen);
/* v as it would be written: "1500ms", "10m", "512MiB", "42", "true". */
void value_format(enum value_type type, uint64_t v, char *buf, size_t len);
/* "duration", "size", "integer", "boolean" */
const char *value_type_name(enum value_type type);
