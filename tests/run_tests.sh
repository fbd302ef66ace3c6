#!/bin/sh
# tests/run_tests.sh - runs Check test programs one after another (each even if an
# earlier one failed), then prints one closing line: "tests: N passed, N failed".
passed=0
failed=0
status=0
for t in "$@"; do
    echo "== $t"
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    [ $rc -eq 0 ] || status=1
    # Check's summary: "100%: Checks: 39, Failures: 0, Errors: 0"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$t: no Check summary (crashed?)"
        failed=$((failed + 1))
        status=1
        continue
    fi
    checks=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    bad=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2/')
    nbad=$(( ${bad% *} + ${bad#* } ))
    passed=$((passed + checks - nbad))
    failed=$((failed + nbad))
done
echo "tests: $passed passed, $failed failed"
exit $status
