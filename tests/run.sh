#!/bin/sh
# Runs every test and ends with one line "N passed, M failed".
#   tests/run.sh [--unit-only] BUILD_DIR
# Unit test binaries print "name: N passed, M failed"; pytest prints its own summary. Both are
# added up here. Exits non-zero when anything failed or a suite could not run.
set -u
cd "$(dirname "$0")/.."

unit_only=0
if [ "${1:-}" = "--unit-only" ]; then unit_only=1; shift; fi
build=${1:-build}

passed=0
failed=0
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

add_counts() { # parses "... N passed ..., M failed" from the last matching line of $log
    line=$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -n 1)
    p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
    f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
    e=$(echo "$line" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+' || true)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0}))
    [ -n "$line" ]
}

echo "== unit tests"
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    ${VALGRIND:-} "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    if ! add_counts || [ $rc -ne 0 ]; then
        echo "$(basename "$t"): exit status $rc"
        status=1
        grep -qE '[0-9]+ failed' "$log" || failed=$((failed + 1))
    fi
done

if [ $unit_only -eq 0 ]; then
    echo "== integration tests"
    AUTODEPLOYD="$(pwd)/bin/autodeployd" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
        tests/integration tests/emulator >"$log" 2>&1
    rc=$?
    cat "$log"
    if ! add_counts; then
        echo "pytest produced no summary (exit $rc)"
        failed=$((failed + 1))
    fi
    [ $rc -eq 0 ] || status=1
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $status -eq 0 ]
