# SPDX-License-Identifier: GPL-2.0-only
# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed_file.cmake
# Writes one file into a NUL-terminated C array (the built-in index template).
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
get_filename_component(src ${IN} NAME)
file(WRITE ${OUT}.tmp "/* Generated from ${src} by storage/embed_file.cmake; do not edit. */\n"
	"extern const char ${NAME}[];\nconst char ${NAME}[] = {${bytes}0x00};\n")
file(RENAME ${OUT}.tmp ${OUT})
