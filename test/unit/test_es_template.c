// SPDX-License-Identifier: GPL-2.0-only
/* The index template against what uses it: every field of the incident schema
 * (docs/incident-schema.md) is mapped with its documented type, and every field
 * the Kibana saved objects (docs/kibana/) name exists in the mapping. */
#include "testutil.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "storage/essink.h"

static json_t *load_template(void)
{
	char path[4096];
	json_error_t jerr;
	json_t *t;

	snprintf(path, sizeof(path), "%s/config/es-index-template.json",
		 getenv("AUTOTRACE_SOURCE_DIR"));
	t = json_load_file(path, 0, &jerr);
	if (!t)
		print_error("%s:%d: %s\n", path, jerr.line, jerr.text);
	assert_non_null(t);
	return t;
}

static char *load_text(const char *rel)
{
	char path[4096], *text = NULL;

	snprintf(path, sizeof(path), "%s/%s", getenv("AUTOTRACE_SOURCE_DIR"), rel);
	assert_int_equal(read_file(path, 1 << 22, &text, NULL), 0);
	return text;
}

/* The mapping of a dotted field, or NULL when the template does not map it. */
static json_t *mapping_of(json_t *tmpl, const char *dotted)
{
	json_t *node = json_object_get(json_object_get(tmpl, "template"), "mappings");
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", dotted);
	for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
		json_t *props = json_object_get(node, "properties");

		/* "@timestamp" has no dot; everything else walks properties */
		node = json_object_get(props, seg);
		if (!node)
			return NULL;
	}
	return node;
}

static const char *type_of(json_t *m)
{
	const char *t = json_string_value(json_object_get(m, "type"));

	if (t)
		return t;
	return json_object_get(m, "properties") ? "object" : "?";
}

static void test_template_shape(void **state)
{
	json_t *t = load_template(), *m;

	assert_true(json_integer_value(json_object_get(t, "version")) >= 1);
	assert_true(json_is_array(json_object_get(t, "index_patterns")));
	m = json_object_get(json_object_get(t, "template"), "mappings");
	/* unknown fields are stored, never mapped on the fly */
	assert_true(json_is_false(json_object_get(m, "dynamic")));
	assert_true(json_is_false(
		json_object_get(json_object_get(m, "properties"), "captures")
			? json_object_get(
				  json_object_get(json_object_get(m, "properties"), "captures"),
				  "dynamic")
			: NULL));
	assert_string_equal(type_of(mapping_of(t, "@timestamp")), "date");
	assert_string_equal(type_of(mapping_of(t, "incident.id")), "keyword");
	/* large or unbounded data: kept in _source, not indexed */
	assert_true(
		json_is_false(json_object_get(mapping_of(t, "history.series.points"), "enabled")));
	assert_true(json_is_false(
		json_object_get(mapping_of(t, "captures.top_stacks.frames"), "enabled")));
	assert_true(json_is_false(json_object_get(mapping_of(t, "culprit.stack"), "index")));
	json_decref(t);
}

static void test_embedded_template_is_the_file(void **state)
{
	char *text = load_text("config/es-index-template.json");

	/* the agent installs what it was built with: the build must embed this file */
	assert_string_equal(es_index_template_json, text);
	free(text);
}

/* Is the documented type compatible with the mapping? */
static bool type_matches(const char *doc_type, const char *mapped)
{
	char word[32];
	size_t n = strcspn(doc_type, " []`(");

	if (n == 0 || n >= sizeof(word))
		return true; /* not a type name (e.g. a shape like [[ms, value]]) */
	snprintf(word, sizeof(word), "%.*s", (int)n, doc_type);
	if (strcmp(word, "object") == 0 && strstr(doc_type, "of keyword"))
		return strcmp(mapped, "flattened") == 0;
	if (strcmp(word, "keyword") == 0 || strcmp(word, "date") == 0 ||
	    strcmp(word, "double") == 0 || strcmp(word, "long") == 0 ||
	    strcmp(word, "boolean") == 0 || strcmp(word, "text") == 0 ||
	    strcmp(word, "object") == 0)
		return strcmp(word, mapped) == 0;
	return true;
}

/* "| `a.b`, `.c` | type | ..." -> calls check for a.b and a.c */
static unsigned check_schema_row(json_t *tmpl, const char *line, const char *doc,
				 const char *prefix, int lineno)
{
	const char *cell_end = strchr(line + 1, '|'), *p = line + 1;
	char type[128] = "", parent[256] = "";
	unsigned missing = 0;
	const char *tcell, *tend;

	if (!cell_end)
		return 0;
	tcell = cell_end + 1;
	tend = strchr(tcell, '|');
	if (tend) {
		while (*tcell == ' ')
			tcell++;
		snprintf(type, sizeof(type), "%.*s", (int)(tend - tcell), tcell);
		for (size_t n = strlen(type); n && type[n - 1] == ' ';)
			type[--n] = '\0';
	}
	while ((p = strchr(p, '`')) && p < cell_end) {
		const char *e = strchr(p + 1, '`');
		char raw[256], name[256], full[300];
		size_t o = 0;
		json_t *m;

		if (!e || e > cell_end)
			break;
		snprintf(raw, sizeof(raw), "%.*s", (int)(e - p - 1), p + 1);
		p = e + 1;
		/* drop the [] of arrays: Elasticsearch maps an array like its elements */
		for (const char *r = raw; *r && o + 1 < sizeof(name); r++)
			if (*r != '[' && *r != ']')
				name[o++] = *r;
		name[o] = '\0';
		if (name[0] == '.') {
			snprintf(full, sizeof(full), "%s%s", parent, name);
		} else {
			char *dot;

			snprintf(full, sizeof(full), "%s%s", prefix, name);
			snprintf(parent, sizeof(parent), "%s", full);
			dot = strrchr(parent, '.');
			if (dot)
				*dot = '\0';
		}
		m = mapping_of(tmpl, full);
		if (!m) {
			print_error("%s:%d: %s is not mapped by config/es-index-template.json\n",
				    doc, lineno, full);
			missing++;
			continue;
		}
		/* one type for the row: check it (rows listing several types are prose) */
		if (!strchr(type, ',') && !type_matches(type, type_of(m))) {
			print_error(
				"docs/incident-schema.md:%d: %s is documented as '%s' but mapped "
				"as %s\n",
				lineno, full, type, type_of(m));
			missing++;
		}
	}
	return missing;
}

static void test_every_schema_field_mapped(void **state)
{
	json_t *t = load_template();
	char *text = load_text("docs/incident-schema.md"), *save = NULL;
	const char *prefix = "";
	unsigned missing = 0, rows = 0;
	bool in_tables = false;
	int lineno = 0;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (strncmp(line, "## ", 3) == 0) {
			in_tables = strcmp(line + 3, "Example") != 0;
			/* the top-level table names whole paths; capture tables are
			 * relative to captures[] */
			prefix = strcmp(line + 3, "Top level") == 0 ? "" : "captures.";
			continue;
		}
		if (!in_tables || strncmp(line, "| `", 3))
			continue;
		rows++;
		missing += check_schema_row(t, line, "docs/incident-schema.md", prefix, lineno);
	}
	assert_true(rows > 30); /* the parser found the tables */
	assert_int_equal(missing, 0);
	free(text);
	json_decref(t);
}

/* Each capture kind's own fields (docs/captures.md): the "field" table of every
 * "## kind" section, relative to captures[]. Tables introduced by prose
 * ("Each process ...") describe nested rows and are not checked here. */
static void test_every_capture_field_mapped(void **state)
{
	json_t *t = load_template();
	char *text = load_text("docs/captures.md"), *save = NULL;
	unsigned missing = 0, rows = 0;
	bool kind_section = false, field_table = false, after_prose = false;
	int lineno = 0;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (strncmp(line, "## ", 3) == 0 || strncmp(line, "### ", 4) == 0) {
			/* "## profile" is a kind; "### Cost" and "## The scheduler..." are not */
			kind_section = line[2] == ' ' && !strchr(line + 3, ' ');
			field_table = after_prose = false;
			continue;
		}
		if (line[0] != '|') {
			after_prose =
				strncmp(line, "Each ", 5) == 0 || strncmp(line, "And each", 8) == 0;
			field_table = false;
			continue;
		}
		if (strncmp(line, "| field |", 9) == 0) {
			field_table = kind_section && !after_prose;
			continue;
		}
		if (!field_table || strncmp(line, "| `", 3))
			continue;
		rows++;
		missing += check_schema_row(t, line, "docs/captures.md", "captures.", lineno);
	}
	assert_true(rows > 60); /* the parser found the tables */
	assert_int_equal(missing, 0);
	free(text);
	json_decref(t);
}

static unsigned count_fields(json_t *props)
{
	const char *k;
	json_t *v;
	unsigned n = 0;

	json_object_foreach(props, k, v)
	{
		n++;
		n += count_fields(json_object_get(v, "properties"));
	}
	return n;
}

static void test_field_count_under_limit(void **state)
{
	json_t *t = load_template();
	json_t *m = json_object_get(json_object_get(t, "template"), "mappings");
	json_t *limit = json_object_get(
		json_object_get(
			json_object_get(json_object_get(json_object_get(t, "template"), "settings"),
					"index"),
			"mapping"),
		"total_fields");
	unsigned n = count_fields(json_object_get(m, "properties"));

	/* room for the dynamic counters (lost.*, vmstat, cgroup events) */
	assert_true(n + 200 < (unsigned)json_integer_value(json_object_get(limit, "limit")));
	json_decref(t);
}

struct field_refs {
	json_t *tmpl;
	unsigned seen, missing;
	const char *object;
};

static void check_field(struct field_refs *f, const char *field)
{
	/* Lens' document count pseudo-field */
	if (!field || !strcmp(field, "Records") || !strcmp(field, "___records___"))
		return;
	f->seen++;
	if (!mapping_of(f->tmpl, field)) {
		print_error("docs/kibana: %s uses field %s, which the index template does not "
			    "map\n",
			    f->object, field);
		f->missing++;
	}
}

/* Fields hide in nested JSON strings (visState, searchSourceJSON, panelsJSON). */
static void walk_refs(struct field_refs *f, json_t *v)
{
	const char *key;
	json_t *x;
	size_t i;

	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		json_error_t jerr;
		json_t *inner;

		if (s[0] != '{' && s[0] != '[')
			return;
		inner = json_loads(s, 0, &jerr);
		if (inner)
			walk_refs(f, inner);
		json_decref(inner);
		return;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, x) walk_refs(f, x);
		return;
	}
	json_object_foreach(v, key, x)
	{
		if ((!strcmp(key, "field") || !strcmp(key, "sourceField") ||
		     !strcmp(key, "timeFieldName") || !strcmp(key, "fieldName")) &&
		    json_is_string(x)) {
			check_field(f, json_string_value(x));
		} else if (!strcmp(key, "columns") && json_is_array(x)) {
			json_t *c;

			json_array_foreach(x, i, c) if (json_is_string(c))
				check_field(f, json_string_value(c));
		} else if (!strcmp(key, "sort") && json_is_array(x)) {
			json_t *c;

			json_array_foreach(x, i, c) if (json_is_string(json_array_get(c, 0)))
				check_field(f, json_string_value(json_array_get(c, 0)));
		} else {
			walk_refs(f, x);
		}
	}
}

static void test_kibana_fields_in_template(void **state)
{
	struct field_refs f = {.tmpl = load_template()};
	char *text = load_text("docs/kibana/autotrace-incidents.ndjson"), *save = NULL;
	json_t *ids = json_object(), *objs = json_array(), *o;
	unsigned dashboards = 0, searches = 0, views = 0;
	size_t i;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_error_t jerr;

		o = json_loads(line, 0, &jerr);
		if (!o)
			print_error("docs/kibana: %s\n", jerr.text);
		assert_non_null(o);
		assert_true(json_is_string(json_object_get(o, "id")));
		assert_true(json_is_string(json_object_get(o, "type")));
		assert_true(json_is_object(json_object_get(o, "attributes")));
		json_object_set(ids, json_string_value(json_object_get(o, "id")), json_true());
		json_array_append_new(objs, o);
	}
	json_array_foreach(objs, i, o)
	{
		const char *type = json_string_value(json_object_get(o, "type"));
		json_t *r;
		size_t k;

		dashboards += !strcmp(type, "dashboard");
		searches += !strcmp(type, "search");
		if (!strcmp(type, "index-pattern")) {
			views++;
			assert_string_equal(json_string_value(json_object_get(
						    json_object_get(o, "attributes"), "title")),
					    "autotrace-incidents-*");
			assert_string_equal(
				json_string_value(json_object_get(json_object_get(o, "attributes"),
								  "timeFieldName")),
				"@timestamp");
		}
		/* everything an object points at is in the same file */
		json_array_foreach(json_object_get(o, "references"), k, r) assert_non_null(
			json_object_get(ids, json_string_value(json_object_get(r, "id"))));
		f.object = json_string_value(json_object_get(o, "id"));
		walk_refs(&f, json_object_get(o, "attributes"));
	}
	assert_int_equal(views, 1);
	assert_true(searches >= 1 && dashboards >= 1);
	assert_true(f.seen >= 10);
	assert_int_equal(f.missing, 0);
	json_decref(objs);
	json_decref(ids);
	json_decref(f.tmpl);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_template_shape),
		cmocka_unit_test(test_embedded_template_is_the_file),
		cmocka_unit_test(test_every_schema_field_mapped),
		cmocka_unit_test(test_every_capture_field_mapped),
		cmocka_unit_test(test_field_count_under_limit),
		cmocka_unit_test(test_kibana_fields_in_template),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
