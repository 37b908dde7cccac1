# SPDX-License-Identifier: GPL-2.0-only
# cmake -DOUT=file.c -DFILES="a.yaml;b.yaml" -P embed_rules.cmake
# Writes the default rule files into a C table (the built-in rules).
set(content "/* Generated from config/rules.d by triggers/embed_rules.cmake; do not edit. */\n")
string(APPEND content "#include \"triggers/rules.h\"\n\n")
set(table "const struct builtin_file builtin_rule_files[] = {\n")
set(i 0)
foreach(f ${FILES})
	file(READ ${f} hex HEX)
	string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
	string(APPEND content "static const char rule_file_${i}[] = {${bytes}0x00};\n")
	get_filename_component(name ${f} NAME)
	string(APPEND table "\t{ \"(built-in)/${name}\", rule_file_${i} },\n")
	math(EXPR i "${i} + 1")
endforeach()
string(APPEND table "\t{ 0, 0 },\n};\n")
file(WRITE ${OUT}.tmp "${content}\n${table}")
file(RENAME ${OUT}.tmp ${OUT})
