// SPDX-License-Identifier: GPL-2.0-only
#include "agent/culprit.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define CULPRITS_LISTED 5 /* culprits[] in the incident */

/* Which capture's measure answers for a metric family: on-CPU share for CPU
 * rules, IO time for IO rules, stuck time for D state, caused waits for the
 * run queue, growth and stalls for memory. The most specific prefix wins;
 * "cgroup." metrics read as their host twins. */
static const struct {
	const char *prefix;
	const char *kinds[5];
} explain[] = {
	{"cpu.iowait", {"iotrace", "offcpu", "dstate", "profile", NULL}},
	{"cpu.", {"profile", "runq", "offcpu", "timeline", NULL}},
	{"psi.cpu", {"profile", "runq", "offcpu", NULL}},
	{"sched.runq", {"runq", "profile", "timeline", NULL}},
	{"runq", {"runq", "profile", "timeline", NULL}},
	{"sched.procs_running", {"profile", "runq", NULL}},
	{"sched.dstate", {"dstate", "offcpu", "iotrace", NULL}},
	{"dstate", {"dstate", "offcpu", "iotrace", NULL}},
	{"sched.procs_blocked", {"dstate", "iotrace", "offcpu", NULL}},
	{"sched.ctxsw", {"offcpu", "profile", "runq", NULL}},
	{"sched.forks", {"profile", "offcpu", NULL}},
	{"io.", {"iotrace", "offcpu", "dstate", NULL}},
	{"psi.io", {"iotrace", "offcpu", "dstate", NULL}},
	{"mem.", {"memtrace", "profile", "offcpu", NULL}},
	{"psi.mem", {"memtrace", "offcpu", "profile", NULL}},
};

static const char *const no_preference[] = {NULL};

const char *const *culprit_explaining_kinds(const char *metric)
{
	size_t best = SIZE_MAX, best_len = 0;

	if (!metric)
		return no_preference;
	if (strncmp(metric, "cgroup.", 7) == 0)
		metric += 7;
	for (size_t i = 0; i < ARRAY_SIZE(explain); i++) {
		size_t l = strlen(explain[i].prefix);

		if (strncmp(metric, explain[i].prefix, l) == 0 && l > best_len) {
			best = i;
			best_len = l;
		}
	}
	return best == SIZE_MAX ? no_preference : explain[best].kinds;
}

static json_t *programs_of(json_t *cap)
{
	json_t *p = json_object_get(json_object_get(cap, "consumers"), "programs");

	return json_array_size(p) ? p : NULL;
}

/* The capture whose consumers answer for the trigger: the first preferred kind
 * that ranked someone, else the first capture that did. */
static json_t *explaining_capture(json_t *doc)
{
	json_t *caps = json_object_get(doc, "captures"), *cap;
	const char *metric =
		json_string_value(json_object_get(json_object_get(doc, "trigger"), "metric"));
	const char *const *kinds = culprit_explaining_kinds(metric);
	size_t i;

	for (; *kinds; kinds++)
		json_array_foreach(caps, i, cap)
		{
			const char *k = json_string_value(json_object_get(cap, "kind"));

			if (k && !strcmp(k, *kinds) && programs_of(cap))
				return cap;
		}
	json_array_foreach(caps, i, cap) if (programs_of(cap)) return cap;
	return NULL;
}

void incident_set_culprits(json_t *doc)
{
	json_t *cap = explaining_capture(doc), *list, *prog, *c;
	const char *kind, *measure;
	size_t i;

	if (!cap)
		return;
	kind = json_string_value(json_object_get(cap, "kind"));
	measure = json_string_value(json_object_get(json_object_get(cap, "consumers"), "measure"));
	list = json_array();
	json_array_foreach(programs_of(cap), i, prog)
	{
		if (i >= CULPRITS_LISTED)
			break;
		c = json_deep_copy(prog);
		json_object_set_new(c, "capture", json_string(kind ? kind : ""));
		json_object_set_new(c, "measure", json_string(measure ? measure : ""));
		json_object_set(c, "value", json_object_get(prog, measure ? measure : ""));
		json_object_set(c, "pid", json_array_get(json_object_get(prog, "pids"), 0));
		if (json_is_object(json_array_get(json_object_get(prog, "stacks"), 0)))
			json_object_set(
				c, "stack",
				json_object_get(json_array_get(json_object_get(prog, "stacks"), 0),
						"stack"));
		json_array_append_new(list, c);
	}
	c = json_deep_copy(json_array_get(list, 0));
	json_object_set_new(doc, "culprit", c);
	json_object_set_new(doc, "culprits", list);
}

/* ------------------------------------------------------------------ summary */

struct para {
	char *p;
	size_t len, cap;
	unsigned clauses; /* of the current sentence */
};

static void say(struct para *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct para *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t cap = (b->len + (size_t)n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (!p)
			return;
		b->p = p;
		b->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Starts a clause of the "doing what" sentence: "It ..." first, "; ..." after. */
static void clause(struct para *b, const char *first, const char *next)
{
	say(b, "%s", b->clauses++ ? next : first);
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* A value of a measure in words: "1234 samples", "3.2 s", "45 MiB". */
static void measure_text(const char *measure, double v, char *buf, size_t len)
{
	size_t ml = measure ? strlen(measure) : 0;

	if (ml > 3 && !strcmp(measure + ml - 3, "_us"))
		v /= 1000.0;
	if ((ml > 3 && !strcmp(measure + ml - 3, "_us")) ||
	    (ml > 3 && !strcmp(measure + ml - 3, "_ms"))) {
		if (v >= 1000)
			snprintf(buf, len, "%.1f s", v / 1000.0);
		else
			snprintf(buf, len, "%.1f ms", v);
	} else if (ml > 6 && !strcmp(measure + ml - 6, "_bytes")) {
		format_size((uint64_t)(v > 0 ? v : 0), buf, len);
	} else {
		snprintf(buf, len, "%.0f %s", v, measure ? measure : "");
	}
}

static const char *measure_words(const char *measure)
{
	static const struct {
		const char *m, *words;
	} w[] = {
		{"samples", "on-CPU samples"},
		{"blocked_us", "blocked (off-CPU) time"},
		{"stuck_ms", "time stuck in D state (tasks x time)"},
		{"held_us", "CPU time held while other tasks waited to run"},
		{"io_us", "IO time (requests queued to complete, and waits for IO)"},
		{"rss_growth_bytes", "memory growth"},
		{"stall_us", "memory stall time"},
	};

	for (size_t i = 0; measure && i < ARRAY_SIZE(w); i++)
		if (!strcmp(w[i].m, measure))
			return w[i].words;
	return measure ? measure : "the capture's measure";
}

static json_t *capture_of(json_t *doc, const char *kind)
{
	json_t *cap;
	size_t i;

	json_array_foreach(json_object_get(doc, "captures"), i, cap)
	{
		const char *k = str(cap, "kind");

		if (k && kind && !strcmp(k, kind))
			return cap;
	}
	return NULL;
}

static bool pid_in(json_t *pids, json_int_t pid)
{
	json_t *p;
	size_t i;

	json_array_foreach(pids, i, p) if (json_integer_value(p) == pid) return true;
	return false;
}

/* Files and devices of the culprit's processes, from iotrace. */
static void say_io(struct para *b, json_t *doc, json_t *pids)
{
	json_t *io = capture_of(doc, "iotrace"), *proc, *f, *dev;
	size_t i, j, nfiles = 0;

	if (!io)
		return;
	json_array_foreach(json_object_get(io, "processes"), i, proc)
	{
		if (!pid_in(pids, json_integer_value(json_object_get(proc, "pid"))))
			continue;
		json_array_foreach(json_object_get(proc, "files"), j, f)
		{
			char w[32];

			if (nfiles >= 3 || !str(f, "path"))
				break;
			format_size((uint64_t)(num(f, "fs_write_bytes") + num(f, "fs_read_bytes") +
					       num(f, "disk_write_bytes") +
					       num(f, "disk_read_bytes")),
				    w, sizeof(w));
			if (!nfiles)
				clause(b, " Its files: ", "; files: ");
			say(b, "%s%s (%s moved", nfiles ? ", " : "", str(f, "path"), w);
			if (num(f, "disk_writes") + num(f, "disk_reads") > 0)
				say(b, ", q2c avg %.0f us", num(f, "q2c_avg_us"));
			say(b, ")");
			nfiles++;
		}
	}
	j = 0;
	json_array_foreach(json_object_get(io, "devices"), i, dev)
	{
		if (j >= 2)
			break;
		if (!j)
			clause(b, " Devices: ", "; devices: ");
		say(b, "%s%s %.0f reads + %.0f writes, q2c avg %.0f us", j ? ", " : "",
		    str(dev, "device_name") ? str(dev, "device_name") : str(dev, "device"),
		    num(dev, "reads"), num(dev, "writes"), num(dev, "q2c_avg_us"));
		j++;
	}
}

/* Who woke the culprit's blocked threads most, from offcpu. */
static void say_wakers(struct para *b, json_t *doc, json_t *pids)
{
	json_t *off = capture_of(doc, "offcpu"), *w;
	size_t i;

	json_array_foreach(off ? json_object_get(off, "wakers") : NULL, i, w)
	{
		if (!pid_in(pids, json_integer_value(json_object_get(w, "pid"))))
			continue;
		clause(b, " Its", ";");
		say(b, " most blocked time (%.1f ms) was in state %s%s%s, woken by %s",
		    num(w, "blocked_us") / 1000.0, str(w, "state") ? str(w, "state") : "?",
		    str(w, "blocked_in") ? " in " : "",
		    str(w, "blocked_in") ? str(w, "blocked_in") : "",
		    str(w, "waker_comm") ? str(w, "waker_comm") : "?");
		return;
	}
}

/* Where the culprit's tasks were stuck, from dstate. */
static void say_stuck(struct para *b, json_t *doc, json_t *pids)
{
	json_t *ds = capture_of(doc, "dstate"), *t;
	size_t i;

	json_array_foreach(ds ? json_object_get(ds, "tasks") : NULL, i, t)
	{
		if (!pid_in(pids, json_integer_value(json_object_get(t, "pid"))))
			continue;
		clause(b, " Its", ";");
		say(b, " longest stuck task waited %.0f ms in %s", num(t, "blocked_ms"),
		    str(t, "wchan") ? str(t, "wchan") : "?");
		if (str(t, "label"))
			say(b, " (%s)", str(t, "label"));
		return;
	}
}

static void say_culprit(struct para *b, json_t *doc, json_t *c, json_t *cap)
{
	json_t *pids = json_object_get(c, "pids"), *funcs = json_object_get(c, "functions"), *f;
	const char *measure = str(c, "measure");
	json_t *cons = json_object_get(cap, "consumers");
	double nproc = num(c, "processes");
	char v[48], total[48];
	size_t i;

	say(b, " Culprit: %s", str(c, "program") ? str(c, "program") : "?");
	if (str(c, "exe"))
		say(b, " (%s)", str(c, "exe"));
	say(b, ", %.0f process%s (pid%s", nproc, nproc == 1 ? "" : "es",
	    json_array_size(pids) > 1 ? "s" : "");
	json_array_foreach(pids, i, f)
	{
		if (i >= 5) {
			say(b, ", ...");
			break;
		}
		say(b, "%s %" JSON_INTEGER_FORMAT, i ? "," : "", json_integer_value(f));
	}
	say(b, ")");
	if (str(c, "container_id"))
		say(b, " in container %.12s", str(c, "container_id"));
	else if (str(c, "cgroup") && strcmp(str(c, "cgroup"), "/"))
		say(b, " in cgroup %s", str(c, "cgroup"));
	measure_text(measure, num(c, "value"), v, sizeof(v));
	measure_text(measure, num(cons, "total"), total, sizeof(total));
	say(b, ", with %.1f%% of the %s recorded by %s (%s of %s).", num(c, "pct"),
	    measure_words(measure), str(c, "capture") ? str(c, "capture") : "?", v, total);

	/* doing what: on CPU, its kernel share and leaf functions; off CPU, where
	 * its stacks left the CPU (the first frame outside the scheduler) */
	b->clauses = 0;
	if (json_object_get(c, "kernel_pct") && measure && !strcmp(measure, "samples")) {
		clause(b, " It", ";");
		say(b, " spent %.0f%% of that in the kernel", num(c, "kernel_pct"));
		json_array_foreach(funcs, i, f) say(
			b, "%s%s%s %.0f%%", i ? ", " : "; top functions: ", str(f, "name"),
			json_is_true(json_object_get(f, "kernel")) ? " [k]" : "", num(f, "pct"));
	} else if (json_array_size(funcs)) {
		clause(b, " Its", ";");
		say(b, " stacks waited in");
		json_array_foreach(funcs, i, f)
			say(b, "%s %s %.0f%%", i ? "," : "", str(f, "name"), num(f, "pct"));
	}
	say_io(b, doc, pids);
	say_wakers(b, doc, pids);
	say_stuck(b, doc, pids);
	if (b->clauses)
		say(b, ".");
}

void incident_set_summary(json_t *doc)
{
	json_t *trig = json_object_get(doc, "trigger"), *rule = json_object_get(doc, "rule");
	json_t *c = json_object_get(doc, "culprit"), *list = json_object_get(doc, "culprits"), *o;
	json_t *inc = json_object_get(doc, "incident"), *cap,
	       *caps = json_object_get(doc, "captures");
	struct para b = {0};
	uint64_t lost = 0;
	size_t i;

	/* what tripped */
	say(&b, "%s", str(rule, "name") ? str(rule, "name") : "?");
	if (str(trig, "metric")) {
		say(&b, " fired: %s was %.4g", str(trig, "metric"), num(trig, "value"));
		if (str(rule, "condition"))
			say(&b, " (%s)", str(rule, "condition"));
	} else {
		say(&b, " (manual capture)");
	}
	if (str(trig, "scope") && strcmp(str(trig, "scope"), "host"))
		say(&b, " in %s", str(trig, "scope"));
	say(&b, ".");

	/* who, doing what */
	if (c) {
		json_array_foreach(
			caps, i,
			cap) if (!strcmp(str(cap, "kind") ? str(cap, "kind") : "",
					 str(c, "capture") ? str(c, "capture") : "")) break;
		say_culprit(&b, doc, c, json_array_get(caps, i));
		if (json_array_size(list) > 1) {
			say(&b, " Next:");
			json_array_foreach(list, i, o)
			{
				if (!i)
					continue;
				say(&b, "%s %s %.1f%%", i > 1 ? "," : "", str(o, "program"),
				    num(o, "pct"));
				if (num(o, "processes") > 1)
					say(&b, " (%.0f processes)", num(o, "processes"));
			}
			say(&b, ".");
		}
	} else {
		say(&b, " No capture ranked a process.");
	}

	/* how sure */
	json_array_foreach(caps, i, cap) lost += (uint64_t)num(cap, "lost_events");
	say(&b, " Status %s", str(inc, "status") ? str(inc, "status") : "?");
	if (c) {
		json_t *cons = NULL;

		json_array_foreach(caps, i,
				   cap) if (!strcmp(str(cap, "kind") ? str(cap, "kind") : "",
						    str(c, "capture"))) cons =
			json_object_get(cap, "consumers");
		if (cons) {
			char total[48];

			measure_text(str(cons, "measure"), num(cons, "total"), total,
				     sizeof(total));
			say(&b, ": %s recorded over %.0f processes", total,
			    num(cons, "processes_seen"));
		}
	}
	if (lost)
		say(&b, ", %" PRIu64 " events lost", lost);
	else
		say(&b, ", nothing lost");
	json_array_foreach(json_object_get(inc, "partial_reasons"), i, o)
	{
		if (i >= 4)
			break;
		say(&b, "%s%s", i ? "; " : " (", json_string_value(o));
	}
	if (json_array_size(json_object_get(inc, "partial_reasons")))
		say(&b, ")");
	say(&b, ".");
	if (b.p)
		json_object_set_new(doc, "summary", json_string(b.p));
	free(b.p);
}
