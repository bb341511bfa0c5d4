#!/bin/sh
# Runs every benchmark binary and prints its table rows. Benchmarks report; they never fail
# the build.   tests/bench/run.sh BUILD_DIR
cd "$(dirname "$0")/../.."
build=${1:-build}
echo "| benchmark | result | | goal |"
echo "| --- | --- | --- | --- |"
for b in "$build"/bench/bench_*; do
    [ -x "$b" ] && "$b"
done
exit 0
