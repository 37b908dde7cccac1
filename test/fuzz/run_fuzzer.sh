#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# run_fuzzer.sh FUZZER CORPUS_DIR: a short libFuzzer run (FUZZ_SECONDS, default 20)
# over a copy of the seed corpus, so new inputs stay in the build tree. Any
# crash, sanitizer report or leak makes it exit non-zero.
set -eu
fuzzer=$1
seeds=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/autotrace-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$seeds" "$work/corpus"
cd "$work"
exec "$fuzzer" -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 -timeout=10 \
	-print_final_stats=1 corpus
