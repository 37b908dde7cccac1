/* SPDX-License-Identifier: GPL-2.0-only */
/* Who caused an incident, and a diagnosis in one paragraph, from the numbers
 * its captures recorded (docs/incident-schema.md#culprit). */
#pragma once
#include <jansson.h>

/* The capture kind that best explains a tripped metric ("cpu.sys_pct" ->
 * "profile", "psi.io_full_pct" -> "iotrace"...), in order of preference;
 * NULL-terminated. */
const char *const *culprit_explaining_kinds(const char *metric);
/* Sets doc's `culprit` and `culprits[]` from the `consumers` of the capture
 * that best explains `trigger.metric`; leaves them out when no capture ranked
 * anyone. */
void incident_set_culprits(json_t *doc);
/* Sets doc's `summary`: what tripped, who, doing what, and how sure, each
 * clause from a number in doc. Call after the status is final. */
void incident_set_summary(json_t *doc);
