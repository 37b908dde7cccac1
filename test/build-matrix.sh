#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# test/build-matrix.sh [--all] [--keep] [NAME...]: configure and build (no test run) the
# common build configurations from scratch, each in its own directory, and print one line a
# configuration with its wall time. Exits non-zero when any configuration fails to configure
# or build; the failing log's tail is printed.
#
# The axes: generator (Unix Makefiles, Ninja), build type (Debug, RelWithDebInfo, Release),
# tests (AUTOTRACE_TESTS ON, OFF) and compiler (gcc, clang). By default a covering subset
# runs, in which every value of every axis appears at least once and the two that failed
# unseen before (Makefiles with tests on, RelWithDebInfo with tests on) are built; --all
# builds all 24. CI runs the default subset as the ctest test build/matrix.
#
# Environment: BUILD_MATRIX_DIR (where the build directories go, default a temporary one,
# removed after a successful run unless --keep), BUILD_MATRIX_JOBS (default nproc).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# name generator build-type tests compiler
DEFAULT_CONFIGS=(
	"make-relwithdebinfo-tests-gcc|Unix Makefiles|RelWithDebInfo|ON|gcc"
	"ninja-release-tests-gcc|Ninja|Release|ON|gcc"
	"ninja-debug-tests-clang|Ninja|Debug|ON|clang"
	"make-release-notests-clang|Unix Makefiles|Release|OFF|clang"
)

all_configs() {
	local gen type tests cc g t
	for gen in "Unix Makefiles" Ninja; do
		for type in Debug RelWithDebInfo Release; do
			for tests in ON OFF; do
				for cc in gcc clang; do
					g=$([ "$gen" = Ninja ] && echo ninja || echo make)
					t=$([ "$tests" = ON ] && echo tests || echo notests)
					echo "$g-${type,,}-$t-$cc|$gen|$type|$tests|$cc"
				done
			done
		done
	done
}

keep=false
mode=default
names=()
while [ $# -gt 0 ]; do
	case "$1" in
	--all) mode=all ;;
	--keep) keep=true ;;
	-h | --help)
		sed -n '3,15p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "build-matrix.sh: unknown option $1" >&2
		exit 2
		;;
	*) names+=("$1") ;;
	esac
	shift
done

if [ "$mode" = all ]; then
	mapfile -t configs < <(all_configs)
else
	configs=("${DEFAULT_CONFIGS[@]}")
fi
if [ ${#names[@]} -gt 0 ]; then
	mapfile -t configs < <(all_configs | while IFS= read -r c; do
		for n in "${names[@]}"; do [ "${c%%|*}" = "$n" ] && echo "$c"; done
	done)
	if [ ${#configs[@]} -ne ${#names[@]} ]; then
		echo "build-matrix.sh: unknown configuration among: ${names[*]}" >&2
		echo "known: $(all_configs | cut -d'|' -f1 | tr '\n' ' ')" >&2
		exit 2
	fi
fi

for tool in cmake gcc clang ninja make; do
	if ! command -v "$tool" >/dev/null; then
		echo "build-matrix.sh: $tool not found (./setup.sh deps installs it)" >&2
		exit 1
	fi
done

jobs=${BUILD_MATRIX_JOBS:-$(nproc)}
if [ -n "${BUILD_MATRIX_DIR:-}" ]; then
	work=$BUILD_MATRIX_DIR
	mkdir -p "$work"
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/autotrace-build-matrix-XXXXXX")
fi

# seconds since a `date +%s%N` stamp, one decimal
seconds_since() {
	local tenths=$((($(date +%s%N) - $1) / 100000000))
	echo "$((tenths / 10)).$((tenths % 10))"
}

failed=0
total_start=$(date +%s%N)
printf '%-34s %-15s %-15s %-6s %-6s %8s  %s\n' configuration generator type tests cc seconds result
for c in "${configs[@]}"; do
	IFS='|' read -r name gen type tests cc <<<"$c"
	dir=$work/$name
	log=$work/$name.log
	rm -rf "$dir"
	start=$(date +%s%N)
	result=ok
	# A fresh directory every time: a generated file left by an earlier build hides a missing
	# dependency (the Makefiles generator only builds what it was told comes first).
	if ! CC=$cc cmake -S "$ROOT" -B "$dir" -G "$gen" -DCMAKE_BUILD_TYPE="$type" \
		-DAUTOTRACE_TESTS="$tests" >"$log" 2>&1; then
		result="FAILED (configure)"
	elif ! nice cmake --build "$dir" -j"$jobs" >>"$log" 2>&1; then
		result="FAILED (build)"
	fi
	printf '%-34s %-15s %-15s %-6s %-6s %8s  %s\n' "$name" "$gen" "$type" "$tests" "$cc" \
		"$(seconds_since "$start")" "$result"
	if [ "$result" != ok ]; then
		failed=$((failed + 1))
		echo "---- $log (last 30 lines)"
		tail -n 30 "$log"
		echo "----"
	elif ! $keep; then
		rm -rf "$dir" "$log"
	fi
done
printf 'total %s s, %d of %d configurations failed\n' "$(seconds_since "$total_start")" "$failed" \
	"${#configs[@]}"
if [ "$failed" -eq 0 ] && ! $keep && [ -z "${BUILD_MATRIX_DIR:-}" ]; then
	rm -rf "$work"
fi
[ "$failed" -eq 0 ]
