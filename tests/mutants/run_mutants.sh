#!/bin/sh
# tests/mutants/run_mutants.sh - runs the mutation catalog (tests/mutants/catalog.txt).
# For each mutant: a copy of the tree with that one change, built (only what the tests
# need) and tested, cheapest first, stopping at the first failure: the core unit tests
# (unit_core, unit_membership, unit_kv, unit_snapshot, unit_watch), the simulator's scenarios
# (unit_sim), then the random simulation (tests/sim) on 3, 4 and 5 nodes, short runs then
# long ones. The mutant is KILLED (by the test or the seed and invariant named) or
# SURVIVED. The summary gives the mutants by rule group, the mutation score and the run
# time.
#
# usage: tests/mutants/run_mutants.sh [--sample N] [--random] [--seed S] [--only ID,ID..]
#            [--jobs J] [--sim-seeds N] [--long-seeds N] [--keep]
#   --sample N     only N mutants: the first N, or with --random N drawn at random from
#                  the non-equivalent ones (--seed S repeats a draw; the seed is printed)
#   --only IDS     only these mutants (comma-separated)
#   --jobs J       mutants tested at once (default 2)
#   --sim-seeds N  short runs: seeds 1..N, 2000 steps, on 3, 4 and 5 nodes (default 2000)
#   --long-seeds N long runs: N seeds from 1000001 on, 20000 steps, same sizes (default 100)
#   --keep         keep the work directory (its path is printed)
#   --help         this text
#
# Exit status: 0 when every non-equivalent mutant run was killed; 1 when one survived or
# the catalog is wrong (a snippet that does not occur exactly once in its file, a mutant
# that does not compile, a mutant marked equivalent that a test kills); 2 when the setup
# fails (no compiler, the unmutated tree fails its own tests, a bad option).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
catalog="$here/catalog.txt"
CC=${CC:-cc}
# The test plan, also used by the workers (exported below).
TARGETS="build/default/tests/unit_core build/default/tests/unit_membership build/default/tests/unit_kv build/default/tests/unit_snapshot build/default/tests/unit_watch build/default/tests/unit_sim build/default/sim"
UNIT_TESTS="unit_core unit_membership unit_kv unit_snapshot unit_watch"
SIM_CASES="scenarios regressions determinism"
SIM_NODES=3,4,5
STAGE_TIMEOUT=900       # seconds: a backstop for any one build or test command
SEED_TIMEOUT=60         # seconds: one simulated run (a livelocked core fails as Timeout)
UNIT_TIMEOUT=120        # seconds: one unit test program (each takes about a second; a
                        # mutant that makes its tests hang is stopped here, not after
                        # Check's 20-60 s per test, and one slowed down by load is not)
# Unit tests run in Check's no-fork mode, in a session of their own: stopped (timeout, or
# an interrupt of the whole run), Check signals its own process group, and no forked test
# is left behind. (The unmutated tree must pass this way too: the base run checks it.)
SETSID=$(command -v setsid || true)

die() { echo "run_mutants: $*" >&2; exit 2; }

# ---- one mutant (run by a worker: run_mutants.sh --worker ID) -----------------------

# Runs "$@" under the stage timeout, in the caller's process group (so that an interrupt
# of the whole run reaches it). Output goes to $log.
stage() {
    timeout --foreground -k 10 "$STAGE_TIMEOUT" "$@" >>"$log" 2>&1
}

# What failed in a unit test program ($1, output in $2, exit status $3): its first
# failing Check test, or that it hung or crashed.
unit_killer() {
    if [ "$3" -eq 124 ] || [ "$3" -eq 137 ]; then
        echo "$1: no result within $UNIT_TIMEOUT s (a test hangs)"
        return
    fi
    line=$(grep -m 1 -E '^[^:]*:[0-9]+:[FE]:' "$2" || true)
    if [ -z "$line" ]; then
        echo "$1: crashed (exit status $3)"
        return
    fi
    name=$(printf '%s\n' "$line" | cut -d: -f5)
    case $line in *"Test timeout expired"*) name="$name (timed out: it hangs)" ;; esac
    echo "$1: $name"
}

# The first failing seed in the simulator's output: "sim seed S (K nodes, N steps): Inv".
sim_killer() {
    awk '/^SIM FAILURE: seed/ && !s { s = $4; k = $5; n = $7; sub(/\(/, "", k) }
         /^invariant: / && !i && s { i = substr($0, 12) }
         END { if (s) printf "sim seed %s (%s nodes, %s steps): %s\n", s, k, n, i;
               else print "sim: failed without a report" }' "$1"
}

# Runs the test plan in directory $1; prints what killed the mutant (nothing if none).
test_plan() {
    dir=$1
    for t in $UNIT_TESTS; do
        out="$log.$t" rc=0
        (cd "$dir" && CK_FORK=no timeout --foreground -k 10 "$UNIT_TIMEOUT" $SETSID \
            "build/default/tests/$t") >"$out" 2>&1 || rc=$?
        if [ "$rc" -ne 0 ]; then
            unit_killer "$t" "$out" "$rc"
            return
        fi
    done
    for c in $SIM_CASES; do
        out="$log.sim_$c" rc=0
        (cd "$dir" && CK_FORK=no CK_RUN_CASE=$c timeout --foreground -k 10 "$UNIT_TIMEOUT" \
            $SETSID build/default/tests/unit_sim) >"$out" 2>&1 || rc=$?
        if [ "$rc" -ne 0 ]; then
            unit_killer "unit_sim" "$out" "$rc"
            return
        fi
    done
    for run in "1..$SIM_SEEDS 2000" "1000001..$((1000000 + LONG_SEEDS)) 20000"; do
        set -- $run
        [ "$1" = "1..0" ] || [ "$1" = "1000001..1000000" ] && continue
        out="$log.sim"
        if ! (cd "$dir" && timeout --foreground -k 10 "$STAGE_TIMEOUT" build/default/sim \
                --seeds "$1" --nodes $SIM_NODES --steps "$2" --jobs "$SIM_JOBS" --max-failures 1 \
                --seed-timeout "$SEED_TIMEOUT") >"$out" 2>&1; then
            sim_killer "$out"
            return
        fi
    done
}

# Applies mutant $1 to a copy of the built base tree, builds, tests; writes one result
# line (id, status, seconds, detail) to results/$1 and prints it.
run_one() {
    id=$1
    start=$(date +%s)
    dir="$WORK/m.$id"
    log="$WORK/logs/$id"
    : >"$log"
    equivalent=$(awk -F '\t' -v id="$id" '$1 == id { print $2 }' "$WORK/list")
    cp -a "$WORK/base" "$dir"
    status=ERROR detail=""
    if ! "$WORK/mutate" apply "$catalog" "$id" "$dir" >>"$log" 2>&1; then
        detail="its snippet does not occur exactly once (stale catalog)"
    elif ! stage make -C "$dir" --no-print-directory SAN= $TARGETS; then
        detail="does not compile (see $log)"
    else
        killer=$(test_plan "$dir")
        if [ -n "$killer" ] && [ "$equivalent" = 1 ]; then
            detail="marked equivalent, but killed by $killer"
        elif [ -n "$killer" ]; then
            status=KILLED detail="by $killer"
        elif [ "$equivalent" = 1 ]; then
            status=EQUIVALENT detail="survived, as expected"
        else
            status=SURVIVED
        fi
    fi
    rm -rf "$dir"
    secs=$(( $(date +%s) - start ))
    printf '%s\t%s\t%s\t%s\n' "$id" "$status" "$secs" "$detail" >"$WORK/results/$id"
    printf '%-10s %-44s %4ss  %s\n' "$status" "$id" "$secs" "$detail"
}

if [ "${1:-}" = "--worker" ]; then
    run_one "$2"
    exit 0
fi

# ---- the whole run ------------------------------------------------------------------

SAMPLE=0 RANDOMLY=0 DRAW_SEED="" ONLY="" JOBS=2 SIM_SEEDS=2000 LONG_SEEDS=100 KEEP=0
while [ $# -gt 0 ]; do
    case $1 in
    --sample) SAMPLE=${2:?}; shift ;;
    --random) RANDOMLY=1 ;;
    --seed) DRAW_SEED=${2:?}; shift ;;
    --only) ONLY=${2:?}; shift ;;
    --jobs) JOBS=${2:?}; shift ;;
    --sim-seeds) SIM_SEEDS=${2:?}; shift ;;
    --long-seeds) LONG_SEEDS=${2:?}; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see the comment at the top of $0)" ;;
    esac
    shift
done
for n in "$SAMPLE" "$JOBS" "$SIM_SEEDS" "$LONG_SEEDS" ${DRAW_SEED:+"$DRAW_SEED"}; do
    case $n in ''|*[!0-9]*) die "not a number: $n" ;; esac
done
[ "$JOBS" -ge 1 ] || die "--jobs must be at least 1"
command -v timeout >/dev/null || die "needs timeout (coreutils)"
command -v "$CC" >/dev/null || die "needs a C compiler (CC=$CC)"

T0=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rk-mutants.XXXXXX")
pool=""
cleanup() {
    if [ -n "$pool" ]; then
        kill -TERM -"$pool" 2>/dev/null || kill -TERM "$pool" 2>/dev/null || true
        wait "$pool" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then echo "run_mutants: work directory kept: $WORK"
    else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/results" "$WORK/logs"
unset MAKEFLAGS MFLAGS MAKELEVEL

# The catalog must fit the tree exactly (a stale catalog fails loudly), before anything.
$CC -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$WORK/mutate" "$here/mutate.c" ||
    die "cannot build tests/mutants/mutate.c"
"$WORK/mutate" list "$catalog" >"$WORK/list" || exit 1
if ! "$WORK/mutate" check "$catalog" "$root"; then
    echo "run_mutants: FAILED: the catalog does not fit the tree (see above)"
    exit 1
fi

# The base: the working tree as it is (tracked and untracked files, not build output),
# built once; each mutant starts from a copy of it and rebuilds only what it changes.
echo "run_mutants: copying and building the tree in $WORK/base"
mkdir "$WORK/base"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$root" && git ls-files -co --exclude-standard |
        while IFS= read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done) >"$WORK/files"
else
    (cd "$root" && find Makefile common server client tests tools -type f \
        ! -path '*/build/*') >"$WORK/files"
fi
(cd "$root" && tar -cf - -T "$WORK/files") | (cd "$WORK/base" && tar -xf -)
log="$WORK/logs/base"
make -C "$WORK/base" --no-print-directory -j"$JOBS" SAN= $TARGETS >"$log" 2>&1 ||
    { tail -n 30 "$log"; die "the unmutated tree does not build"; }
export WORK SIM_SEEDS LONG_SEEDS
SIM_JOBS=$JOBS
killer=$(test_plan "$WORK/base")
[ -z "$killer" ] || die "the unmutated tree fails its own tests ($killer); see $WORK/logs"

# Which mutants.
cut -f 1 "$WORK/list" >"$WORK/ids"
if [ -n "$ONLY" ]; then
    echo "$ONLY" | tr ',' '\n' >"$WORK/want"
    awk 'NR == FNR { all[$1] = 1; next } !all[$1] { print "no mutant " $1; bad = 1 }
         END { exit bad }' "$WORK/ids" "$WORK/want" >&2 || exit 2
    cp "$WORK/want" "$WORK/ids"
fi
if [ "$SAMPLE" -gt 0 ] && [ "$RANDOMLY" = 1 ]; then
    [ -n "$DRAW_SEED" ] || DRAW_SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    echo "run_mutants: drawing $SAMPLE non-equivalent mutants at random (--seed $DRAW_SEED)"
    awk -F '\t' 'NR == FNR { want[$1] = 1; next } want[$1] && $2 == 0 { print $1 }' \
        "$WORK/ids" "$WORK/list" |
        awk -v seed="$DRAW_SEED" 'BEGIN { srand(seed) } { print rand() "\t" $0 }' |
        sort -n | head -n "$SAMPLE" | cut -f 2 >"$WORK/pick"
    mv "$WORK/pick" "$WORK/ids"
elif [ "$SAMPLE" -gt 0 ]; then
    head -n "$SAMPLE" "$WORK/ids" >"$WORK/pick"
    mv "$WORK/pick" "$WORK/ids"
fi
total=$(wc -l <"$WORK/ids" | tr -d ' ')
echo "run_mutants: $total mutants, $JOBS at a time; tests: $UNIT_TESTS, unit_sim" \
     "($SIM_CASES), sim seeds 1..$SIM_SEEDS x 2000 steps and $LONG_SEEDS x 20000 steps" \
     "on $SIM_NODES nodes"

# The workers, in a process group of their own (setsid) so that an interrupt stops them
# all: every command they start stays in that group (timeout --foreground).
SIM_JOBS=1
export SIM_JOBS
if command -v setsid >/dev/null; then
    setsid xargs -n 1 -P "$JOBS" sh "$0" --worker <"$WORK/ids" &
else
    xargs -n 1 -P "$JOBS" sh "$0" --worker <"$WORK/ids" &
fi
pool=$!
wait "$pool" || true
pool=""

# ---- the summary ----------------------------------------------------------------------
cat "$WORK"/results/* 2>/dev/null >"$WORK/all" || true
secs=$(( $(date +%s) - T0 ))
echo
echo "== mutation summary: $total mutants from tests/mutants/catalog.txt"
"$WORK/mutate" groups "$catalog" >"$WORK/groups"
# (LC_ALL=C: every awk counts bytes; cell() pads by characters, the only non-ASCII one in
# a group's name being the two-byte section sign.)
LC_ALL=C awk -F '\t' -v secs="$secs" -v total="$total" '
    function cell(s, w,   t, n) { t = s; n = gsub(/\302\247/, "", t)
        return s sprintf("%" (w - length(s) + n > 0 ? w - length(s) + n : 0) "s", "") }
    function row(g, a, b, c, d, e) { printf "%s %7s %6s %8s %10s %6s\n", cell(g, 60), a, b, c, d, e }
    FILENAME == ARGV[1] { order[++ng] = $0; next }
    FILENAME == ARGV[2] { group[$1] = $3; next }
    { g = group[$1]; n[g]++; c[g, $2]++; t[$2]++; done++
      if ($2 != "KILLED" && $2 != "EQUIVALENT") bad[++nb] = $2 "  " $1 "  " $4 }
    END {
        row("rule group", "mutants", "killed", "survived", "equivalent", "errors")
        for (i = 1; i <= ng; i++) { g = order[i]; if (!n[g]) continue
            row(g, n[g], c[g, "KILLED"] + 0, c[g, "SURVIVED"] + 0, c[g, "EQUIVALENT"] + 0,
                c[g, "ERROR"] + 0) }
        row("total", done + 0, t["KILLED"] + 0, t["SURVIVED"] + 0, t["EQUIVALENT"] + 0,
            t["ERROR"] + 0)
        if (done < total) printf "NOT RUN: %d mutants (interrupted?)\n", total - done
        for (i = 1; i <= nb; i++) print bad[i]
        live = t["KILLED"] + t["SURVIVED"]
        printf "mutation score: %d/%d non-equivalent mutants killed (%.1f%%)\n",
               t["KILLED"], live, live ? 100 * t["KILLED"] / live : 100
        printf "run time: %dm %02ds\n", secs / 60, secs % 60
        exit (t["SURVIVED"] + t["ERROR"] > 0 || done < total) ? 1 : 0
    }' "$WORK/groups" "$WORK/list" "$WORK/all"
