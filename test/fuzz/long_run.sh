#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# long_run.sh BUILD_DIR [RUNS] [TARGET...]: the long runs docs/security.md
# records. One target at a time (each is one process: the machine is shared),
# niced, RUNS executions each (default 10 million; FUZZ_MAX_SECONDS, when set,
# ends a target earlier and the line says how far it got), the corpus kept in
# $FUZZ_WORK (default /var/tmp/autotrace-fuzz) and grown from the seeds here.
# Prints one summary line a target: executions, seconds, executions/s, edges
# covered (cov), features (ft), corpus size, peak RSS, and how it ended. An
# input may take FUZZ_TIMEOUT seconds (default 60, not CI's 10: a niced run on
# a busy machine can wait seconds for a CPU, which is no hang of the parser).
set -u
build=$1
runs=${2:-10000000}
shift 2 2>/dev/null || shift $#
here=$(cd "$(dirname "$0")" && pwd)
work=${FUZZ_WORK:-/var/tmp/autotrace-fuzz}
targets=${*:-"rules unwind config control esbulk elf perfmap procfs cgroupfs"}
mkdir -p "$work"
for t in $targets; do
	exe=$build/test/fuzz/fuzz_$t
	dir=$work/$t
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp -n "$here/corpus/$t"/* "$dir/corpus/" 2>/dev/null
	start=$(date +%s)
	(cd "$dir" && ASAN_OPTIONS=detect_leaks=1 nice -n 19 "$exe" -runs="$runs" \
		-rss_limit_mb=2048 -timeout="${FUZZ_TIMEOUT:-60}" -print_final_stats=1 \
		${FUZZ_MAX_SECONDS:+-max_total_time=$FUZZ_MAX_SECONDS} \
		-artifact_prefix="$dir/artifacts/" corpus > "$dir/log" 2>&1)
	rc=$?
	secs=$(($(date +%s) - start))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$dir/log")
	last=$(grep -E '^#[0-9]+' "$dir/log" | tail -1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(ls "$dir/corpus" | wc -l)
	if [ $rc -eq 0 ]; then how=ok; else how="FAILED rc=$rc (see $dir/log, $dir/artifacts)"; fi
	echo "$t execs=${execs:-?} secs=$secs execs_per_s=$(( ${execs:-0} / (secs > 0 ? secs : 1) )) cov=${cov:-?} ft=${ft:-?} corpus=$corp peak_rss_mb=${rss:-?} $how"
done
