#!/bin/sh
# Runs each libFuzzer target for SECONDS, seeded from the fixtures, and fails on any finding.
#   tests/fuzz/run.sh SECONDS BIN...
set -eu
cd "$(dirname "$0")/../.."
seconds=$1
shift
status=0
for bin in "$@"; do
    name=$(basename "$bin")
    corpus=build/fuzz/corpus-$name
    mkdir -p "$corpus"
    case $name in
    fuzz_event) cp tests/fixtures/registry/*.json tests/fixtures/registry/other/*.json "$corpus"/ ;;
    fuzz_sources) cp tests/fixtures/webhooks/*.json "$corpus"/ ;;
    fuzz_listing) cp tests/fixtures/marathon/apps_list_legacy.json "$corpus"/
        printf '{"apps":[{"id":"/a","labels":{"autodeploy":"x:*"},"container":{"docker":{"image":"r/x:1"}}}]}' >"$corpus/seed1" ;;
    fuzz_journal) printf '%s\n%s\n%s\n' \
            '{"id":3,"push":{"event_id":"e","timestamp":"2026-11-25T10:00:00Z","timestamp_ns":1,"host":"registry.example.com:5000","repository":"strava/foo","tag":"master-1","digest":"sha256:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e2","media_type":"","pusher":"alice"}}' \
            '{"paused":true}' '{"done":2}' >"$corpus/seed1"
        printf '%s\n' '{"approval":{"id":"00112233445566778899aabbccddeeff","app":"/prod/api","state":"pending","expires_at":"2026-12-02T05:00:00.000Z"}}' >"$corpus/seed2" ;;
    fuzz_slackact) printf '%s' 'payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A%7B%22name%22%3A%22a%22%7D%2C%22actions%22%3A%5B%7B%22action_id%22%3A%22approve%22%2C%22value%22%3A%22x%22%7D%5D%7D' >"$corpus/seed1" ;;
    fuzz_sse) printf 'event: deployment_success\r\ndata: {"id":"x"}\r\n\r\n\r\n' >"$corpus/seed1" ;;
    fuzz_regauth)
        printf '%s' 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"' >"$corpus/seed1"
        printf '%s' '</v2/team/app/tags/list?n=100&last=x>; rel="next"' >"$corpus/seed2"
        printf '%s' '{"auths":{"https://index.docker.io/v1/":{"auth":"dTpwOnc="}}}' >"$corpus/seed3" ;;
    fuzz_pattern | fuzz_semver)
        cut -f1 tests/fixtures/match_cases.tsv | grep -v '^#' | head -200 |
            awk -v d="$corpus" '{ f = d "/seed" NR; printf "%s\n", $0 > f; close(f) }' ;;
    esac
    echo "== $name for ${seconds}s"
    if ! "$bin" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
        -artifact_prefix=build/fuzz/"$name"- "$corpus" >build/fuzz/"$name".log 2>&1; then
        status=1
        tail -n 30 build/fuzz/"$name".log
    fi
    grep -E '^(Done|#[0-9]+ +DONE)' build/fuzz/"$name".log | tail -n 1 || true
done
exit $status
