#!/bin/sh
# tests/fuzz/run_fuzz.sh - builds the fuzz targets of tests/fuzz/ with clang's libFuzzer
# (+ ASan + UBSan) and runs each for SECONDS (nice'd, one at a time), then prints one
# summary line per target: executions, coverage, and crashes found.
#   tests/fuzz/run_fuzz.sh [SECONDS] [TARGET...]   fuzz (default 60 s, every target)
#   tests/fuzz/run_fuzz.sh --replay [TARGET...]    build plain replay programs with $CC
#                                                  (no libFuzzer) and replay corpus + regressions
#   tests/fuzz/run_fuzz.sh --corpus                regenerate the seed corpus
# New inputs go to build/fuzz/corpus/TARGET (the seeds in tests/fuzz/corpus stay small);
# a crash is saved in build/fuzz/crashes/TARGET/: copy it to tests/fuzz/regressions/TARGET/
# once fixed. Run from the repository root.
# shellcheck disable=SC2086,SC2046,SC2048 # word lists (flags, sources, dirs) split on purpose
set -u
cd "$(dirname "$0")/../.." || exit 1

TARGETS_ALL="proto frame frame_reader client_parse registry log_line snapshot state"
FLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -pthread"
OUT=build/fuzz

# The sources a target needs besides its own file.
sources_of() {
    case "$1" in
    client_parse) echo "common/*.c client/parse.c" ;;
    log_line | state) echo "common/*.c server/storage/storage.c server/storage/storage_io.c" ;;
    snapshot) echo "common/*.c server/storage/snapshot.c server/storage/storage.c" \
        "server/storage/storage_io.c server/kv/*.c" ;;
    *) echo "common/*.c" ;;
    esac
}

build_fuzzer() {
    t=$1
    clang $FLAGS -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        tests/fuzz/fuzz_"$t".c $(sources_of "$t") -o "$OUT/fuzz_$t"
}

build_replay() {
    t=$1
    ${CC:-cc} $FLAGS -O2 ${SAN:+-fsanitize=$SAN -fno-sanitize-recover=all} \
        tests/fuzz/replay.c tests/fuzz/fuzz_"$t".c $(sources_of "$t") -o "$OUT/replay_$t"
}

mkdir -p "$OUT"
case "${1:-}" in
--corpus)
    ${CC:-cc} $FLAGS -O2 tests/fuzz/gen_corpus.c $(sources_of snapshot) \
        -o "$OUT/gen_corpus" && "$OUT/gen_corpus" tests/fuzz/corpus
    exit $?
    ;;
--replay)
    shift
    status=0
    for t in ${*:-$TARGETS_ALL}; do
        build_replay "$t" || exit 1
        dirs="tests/fuzz/corpus/$t"
        [ -d "tests/fuzz/regressions/$t" ] && dirs="$dirs tests/fuzz/regressions/$t"
        printf '%s: ' "$t" && "$OUT/replay_$t" $dirs || status=1
    done
    exit $status
    ;;
esac

SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
if ! command -v clang >/dev/null 2>&1; then
    echo "run_fuzz.sh: clang is needed (apt-get install -y clang)" >&2
    exit 1
fi
for t in ${*:-$TARGETS_ALL}; do # all built first: the runs use one version of the code
    build_fuzzer "$t" || { echo "run_fuzz.sh: cannot build fuzz_$t (is libFuzzer installed?" \
        "clang's runtime: apt-get install -y libclang-rt-dev or clang)" >&2; exit 1; }
done
status=0
for t in ${*:-$TARGETS_ALL}; do
    mkdir -p "$OUT/corpus/$t" "$OUT/crashes/$t"
    dirs="$OUT/corpus/$t tests/fuzz/corpus/$t"
    [ -d "tests/fuzz/regressions/$t" ] && dirs="$dirs tests/fuzz/regressions/$t"
    log="$OUT/fuzz_$t.log"
    nice -n 19 "$OUT/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$OUT/crashes/$t/" $dirs \
        >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
    crashes=$(find "$OUT/crashes/$t" -type f | wc -l)
    echo "fuzz_$t: ${SECONDS_EACH} s, ${execs:-?} executions, ${cov:-cov ?}, crashes: $crashes (log: $log)"
    if [ $rc -ne 0 ] || [ "$crashes" -gt 0 ]; then
        status=1
        grep -E 'ERROR|fuzz check failed|SUMMARY' "$log" | head -n 5
    fi
done
exit $status
