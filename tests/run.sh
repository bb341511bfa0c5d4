#!/bin/sh
# Runs every test and ends with one line "N passed, M failed".
#
#   tests/run.sh [--quick] [--unit-only]
#
# Phases (each adds its counts to the closing line):
#   1. C unit tests (build/tests/*)
#   2. the same under valgrind memcheck: zero errors, zero definite leaks   (not with --quick)
#   3. the same built with ASan+UBSan (build/san/tests/*)                   (not with --quick)
#   4. the same built with ThreadSanitizer (build/tsan/tests/*)              (not with --quick)
#   5. integration tests (pytest) against the ASan+UBSan daemon (bin/san/autodeployd); with
#      --quick against bin/autodeployd. A sanitizer report in any daemon log fails its test.
#   6. the integration tests but the demo against the ThreadSanitizer daemon
#      (bin/tsan/autodeployd); a report fails its test, and the phase      (not with --quick)
#   7. one end-to-end scenario with the daemon under valgrind memcheck       (not with --quick)
#   8. each libFuzzer target for FUZZ_SECONDS (default 20), FUZZ_JOBS at a time (default 2)
#                                                                            (not with --quick)
# Exits non-zero when anything failed or a phase could not run.
#
# The integration tests spend most of their time waiting (deploy timeouts, back-offs, grace
# periods), not computing, so with pytest-xdist they run in PYTEST_JOBS processes (default 4;
# 1: one process). Each test starts its own daemon and peers on ephemeral ports in its own
# temporary directory, so tests do not share state.
set -u
cd "$(dirname "$0")/.." || exit 1

quick=0
unit_only=0
for a in "$@"; do
    case $a in
    --quick) quick=1 ;;
    --unit-only) unit_only=1 ;;
    esac
done

passed=0
failed=0
status=0
log=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$log" "$work"' EXIT

# ThreadSanitizer: report every race and go on (a report fails the test through the daemon's
# log, and the process exit status 66); tests/tsan.supp only holds races inside the
# uninstrumented libraries.
TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 suppressions=$(pwd)/tests/tsan.supp"
export TSAN_OPTIONS

jobs=${PYTEST_JOBS:-4}
xdist=""
if [ "$jobs" -gt 1 ] && /usr/bin/python3 -c 'import xdist' 2>/dev/null; then
    xdist="-n $jobs"
elif [ "$jobs" -gt 1 ]; then
    echo "pytest-xdist is missing (sh tests/deps.sh installs it): integration tests run in one process"
fi

counts() { # adds "N passed ... M failed" of the last such line of $log; false if none
    line=$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -n 1)
    p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
    f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
    e=$(echo "$line" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+' || true)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0}))
    [ -n "$line" ]
}

one() { # one pass/fail result: one NAME OK?
    if [ "$2" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; echo "FAILED: $1"; fi
}

pytest_phase() { # pytest_phase PYTEST_ARGS...: the integration tests, counted
    # shellcheck disable=SC2086
    /usr/bin/python3 -m pytest -q -p no:cacheprovider $xdist "$@" >"$log" 2>&1
    rc=$?
    tail -n 40 "$log"
    if ! counts; then
        echo "pytest produced no summary (exit $rc)"
        failed=$((failed + 1))
    fi
    [ $rc -eq 0 ] || status=1
}

unit_phase() { # unit_phase DIR [WRAPPER...]
    dir=$1
    shift
    for t in "$dir"/tests/test_*; do
        [ -x "$t" ] || continue
        "$@" "$t" >"$log" 2>&1
        rc=$?
        grep -E '^(test_|FAIL|==[0-9]+== (ERROR SUMMARY|.*definitely lost))' "$log"
        if ! counts || [ $rc -ne 0 ]; then
            echo "$(basename "$t"): exit status $rc"
            tail -n 20 "$log"
            status=1
            grep -qE '[0-9]+ failed' "$log" || failed=$((failed + 1))
        fi
    done
}

echo "== unit tests"
unit_phase build

echo "== formatting (clang-format, .clang-format)"
clang-format --dry-run --Werror src/*.c include/*.h tests/unit/*.c tests/unit/*.h \
    tests/fuzz/*.c >"$log" 2>&1
rc=$?
head -n 20 "$log"
one "clang-format" $rc

if [ $quick -eq 0 ] && [ $unit_only -eq 0 ]; then
    echo "== unit tests under valgrind memcheck"
    unit_phase build valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite --show-leak-kinds=definite
    echo "== unit tests with ASan+UBSan"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 unit_phase build/san
    echo "== unit tests with ThreadSanitizer"
    unit_phase build/tsan
fi

if [ $unit_only -eq 0 ]; then
    daemon=bin/san/autodeployd
    [ $quick -eq 1 ] && daemon=bin/autodeployd
    echo "== integration tests (daemon: $daemon)"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        AUTODEPLOYD="$(pwd)/$daemon" pytest_phase tests/integration tests/emulator

    if [ $quick -eq 0 ]; then
        # Not the scripted demo: its daemon logs into the demo's own temporary directory, which
        # the demo removes, and its exit status is not checked, so no report there could fail.
        echo "== integration tests under ThreadSanitizer (daemon: bin/tsan/autodeployd)"
        AUTODEPLOYD="$(pwd)/bin/tsan/autodeployd" pytest_phase --basetemp="$work/tsan" \
            --ignore=tests/integration/test_demo.py tests/integration
        # pytest names the log a report is in; this says where the races are, one line per
        # place, and counts one more failure if any daemon log of the run holds a report.
        reports=$(grep -rl --include='*.log' 'WARNING: ThreadSanitizer' "$work/tsan" 2>/dev/null)
        [ -z "$reports" ] || grep -rh --include='*.log' '^SUMMARY: ThreadSanitizer' "$work/tsan" |
            sort | uniq -c | sort -rn | head -n 20
        one "no ThreadSanitizer report in any daemon log" "$([ -z "$reports" ] && echo 0 || echo 1)"

        echo "== end-to-end scenarios and the webhook surface, release build under valgrind memcheck"
        AUTODEPLOYD_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite" \
            AUTODEPLOYD="$(pwd)/bin/autodeployd" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
            "tests/integration/test_deploy.py::test_push_deploys_full_container_and_labels" \
            "tests/integration/test_slack_deploy.py::test_failed_deploy_messages_escape_task_message" \
            "tests/integration/test_faults_delivery.py::test_sigterm_keeps_queued_pushes_in_the_state_file" \
            tests/integration/test_http.py \
            >"$log" 2>&1
        rc=$?
        tail -n 5 "$log"
        counts || failed=$((failed + 1))
        [ $rc -eq 0 ] || status=1

        # A fuzzer keeps one core busy: FUZZ_JOBS targets (default 2) run side by side, each
        # for the whole FUZZ_SECONDS, and their results are read in order.
        echo "== fuzzing (${FUZZ_SECONDS:-20}s per target, ${FUZZ_JOBS:-2} at a time)"
        running=""
        for f in build/fuzz/fuzz_* ""; do
            if [ -n "$f" ]; then
                [ -x "$f" ] || continue
                sh tests/fuzz/run.sh "${FUZZ_SECONDS:-20}" "$f" >"$work/$(basename "$f").out" 2>&1 &
                running="$running $!:$f"
                # shellcheck disable=SC2086
                [ "$(echo $running | wc -w)" -lt "${FUZZ_JOBS:-2}" ] && continue
            fi
            for job in $running; do
                wait "${job%%:*}"
                rc=$?
                name=$(basename "${job#*:}")
                tail -n 2 "$work/$name.out"
                one "fuzz $name" $rc
            done
            running=""
        done
    fi
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $status -eq 0 ]
