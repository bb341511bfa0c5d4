#!/bin/sh
# The whole pipeline on loopback, in one terminal:
#
#   real registry (docker-registry) --notifications--> autodeployd --> Marathon emulator
#                                                                 \--> Slack sink (printed here)
#
# then pushes images with skopeo and shows each app's image change and the Slack messages as
# they happen. Ctrl-C stops everything it started and removes its temporary directory.
#
#   sh examples/demo/demo.sh              # interactive: runs until Ctrl-C (what `make demo` runs)
#   sh examples/demo/demo.sh --scripted   # no waiting: prints a summary, exit 0 only if every
#                                         # app reached its expected image (CI runs this);
#                                         # DEMO_CONSOLE_SHOT=FILE.png also saves a screenshot
#                                         # of the web console at the end
#
# Needs docker-registry, skopeo, python3 and curl (tests/deps.sh installs them) and a built
# bin/autodeployd. Every server listens on 127.0.0.1 on a free port.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEMO="$ROOT/examples/demo"
AUTODEPLOYD=${AUTODEPLOYD:-$ROOT/bin/autodeployd}
PYTHON=${PYTHON:-python3}
CTL="$DEMO/democtl.py"

scripted=0
for arg in "$@"; do
    case $arg in
    --scripted) scripted=1 ;;
    -h | --help)
        sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "demo.sh: unknown argument $arg (try --help)" >&2
        exit 2
        ;;
    esac
done

# Colours only on a terminal.
if [ -t 1 ]; then
    B=$(printf '\033[1m') G=$(printf '\033[32m') R=$(printf '\033[31m') N=$(printf '\033[0m')
else
    B='' G='' R='' N=''
fi
say() { printf '%s==>%s %s\n' "$B" "$N" "$*"; }
fail() {
    printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2
    exit 1
}

for tool in docker-registry skopeo "$PYTHON" curl; do
    command -v "$tool" >/dev/null 2>&1 ||
        fail "$tool is missing: run 'make demo' as root (it installs it), or 'sh tests/deps.sh'"
done
[ -x "$AUTODEPLOYD" ] || fail "$AUTODEPLOYD is missing: run 'make' first"

# The whole scripted run must end well within a minute, whatever hangs.
DEADLINE=$(($(date +%s) + 45))
left() { # seconds left before the deadline, at least 1, at most $1
    l=$((DEADLINE - $(date +%s)))
    [ "$l" -lt 1 ] && l=1
    [ "$l" -gt "$1" ] && l=$1
    echo "$l"
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/autodeploy-demo.XXXXXX")
PIDS=""
NAMES=""
cleanup() {
    status=$?
    set +e
    trap '' INT TERM
    [ -n "${SLEEP_PID:-}" ] && kill "$SLEEP_PID" 2>/dev/null
    # Stop in reverse order of start: the registry first (it would retry notifications), the
    # emulator last. SIGTERM, then SIGKILL after 5 s; each is reaped so nothing is left behind.
    for pid in $PIDS; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $PIDS; do
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [ -n "$PIDS" ] && [ $scripted -eq 0 ] && say "stopped:$NAMES"
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started() { # NAME PID: remembers a started process (most recent first, so stopped first)
    PIDS="$2 $PIDS"
    NAMES=" $1($2)$NAMES"
}

wait_file() { # FILE SECONDS PID: waits until FILE is non-empty while PID lives
    i=0
    n=$(($2 * 10))
    while [ ! -s "$1" ]; do
        kill -0 "$3" 2>/dev/null || return 1
        [ $i -ge $n ] && return 1
        sleep 0.1
        i=$((i + 1))
    done
}

# --- Marathon emulator and Slack sink ------------------------------------------------------
REG_PORT=$("$PYTHON" "$CTL" free-port)
REGISTRY=127.0.0.1:$REG_PORT
sed "s|@REGISTRY@|$REGISTRY|g" "$DEMO/apps.json" >"$TMP/apps.json"

"$PYTHON" "$ROOT/tests/emulator/marathon.py" --listen 127.0.0.1:0 --port-file "$TMP/marathon.port" \
    --apps "$TMP/apps.json" --deploy-seconds 1 --heartbeat-seconds 5 \
    </dev/null >"$TMP/marathon.log" 2>&1 &
started marathon $!
MARATHON_PID=$!
# The sink prints every Slack message to this terminal (stdout); its own log goes to a file.
"$PYTHON" "$ROOT/tests/emulator/slack_sink.py" --listen 127.0.0.1:0 --port-file "$TMP/slack.port" \
    --print --quiet </dev/null 2>"$TMP/slack.log" &
started slack-sink $!
SINK_PID=$!
wait_file "$TMP/marathon.port" "$(left 15)" "$MARATHON_PID" ||
    fail "the Marathon emulator did not start: $(tail -n 5 "$TMP/marathon.log")"
wait_file "$TMP/slack.port" "$(left 15)" "$SINK_PID" ||
    fail "the Slack sink did not start: $(tail -n 5 "$TMP/slack.log")"
MARATHON=http://127.0.0.1:$(cat "$TMP/marathon.port")
SINK=http://127.0.0.1:$(cat "$TMP/slack.port")
SLACK_WEBHOOK=$SINK/services/T0DEMO/B0DEMO/demo

# --- autodeployd ---------------------------------------------------------------------------
TOKEN=demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
ADMIN_TOKEN=admin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
# Only the flags given here: nothing from the caller's AUTODEPLOY_* environment.
for v in $(env | sed -n 's/^\(AUTODEPLOY_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
"$AUTODEPLOYD" --listen 127.0.0.1:0 --log-format text \
    --marathon-url "$MARATHON" --marathon-ui-url "$MARATHON" \
    --slack-webhook-url "$SLACK_WEBHOOK" --webhook-token "$TOKEN" --admin-token "$ADMIN_TOKEN" \
    </dev/null 2>"$TMP/autodeployd.log" >&2 &
started autodeployd $!
DAEMON_PID=$!
i=0
AD_PORT=""
while [ -z "$AD_PORT" ]; do
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "autodeployd exited: $(tail -n 5 "$TMP/autodeployd.log")"
    [ $i -ge $(($(left 15) * 10)) ] && fail "autodeployd did not start: $(tail -n 5 "$TMP/autodeployd.log")"
    AD_PORT=$(sed -n 's/.*autodeployd started.* listen=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
        "$TMP/autodeployd.log" | head -n 1)
    [ -n "$AD_PORT" ] || sleep 0.1
    i=$((i + 1))
done
AUTODEPLOY=http://127.0.0.1:$AD_PORT

# --- the registry, notifying autodeployd ---------------------------------------------------
sed -e "s|@DATA@|$TMP/registry-data|" -e "s|@ADDR@|$REGISTRY|" \
    -e "s|@HOOK_URL@|$AUTODEPLOY/v1/webhooks/registry|" -e "s|@TOKEN@|$TOKEN|" \
    "$DEMO/registry.yml.in" >"$TMP/registry.yml"
docker-registry serve "$TMP/registry.yml" </dev/null >"$TMP/registry.log" 2>&1 &
started registry $!
REGISTRY_PID=$!
i=0
until curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null; do
    kill -0 "$REGISTRY_PID" 2>/dev/null || fail "docker-registry exited: $(tail -n 5 "$TMP/registry.log")"
    [ $i -ge $(($(left 15) * 10)) ] && fail "docker-registry did not answer on $REGISTRY"
    sleep 0.1
    i=$((i + 1))
done

# --- images to push: an OCI layout written by hand (refs v1, v2, multi) --------------------
LAYOUT=$TMP/oci
"$PYTHON" "$CTL" layout "$LAYOUT"

say "running on loopback (logs and data in $TMP):"
echo "  registry      http://$REGISTRY  (notifies autodeployd, Bearer token $TOKEN)"
echo "  autodeployd   $AUTODEPLOY  (log: $TMP/autodeployd.log)"
echo "  console       $AUTODEPLOY/  (the web console: open it in a browser)"
echo "  Marathon      $MARATHON  (emulator)"
echo "  Slack         $SLACK_WEBHOOK  (sink: messages are printed below)"
[ $scripted -eq 1 ] &&
    echo "DEMO pids marathon=$MARATHON_PID slack=$SINK_PID autodeployd=$DAEMON_PID registry=$REGISTRY_PID" &&
    echo "DEMO ports marathon=${MARATHON##*:} slack=${SINK##*:} autodeployd=$AD_PORT registry=$REG_PORT"
echo
say "Marathon apps before any push:"
"$PYTHON" "$CTL" apps "$MARATHON"

failed=0
push() { # REF DEST WHY: skopeo copy of layout ref REF to the demo registry as DEST; sets DIGEST
    echo
    say "push $2 ($3)"
    echo "  skopeo copy oci:\$LAYOUT:$1 docker://$REGISTRY/$2"
    rm -f "$TMP/digest"
    if ! timeout "$(left 30)" skopeo --insecure-policy copy -q --dest-tls-verify=false \
        --format oci --digestfile "$TMP/digest" "oci:$LAYOUT:$1" "docker://$REGISTRY/$2" \
        >>"$TMP/skopeo.log" 2>&1; then
        echo "  ${R}push failed${N}: $(tail -n 3 "$TMP/skopeo.log")"
        failed=1
        DIGEST=none
        return 1
    fi
    DIGEST=$(cat "$TMP/digest")
    echo "  pushed, digest $DIGEST"
}
expect_deploy() { # APP IMAGE: waits for autodeployd to deploy $DIGEST as IMAGE to APP
    if "$PYTHON" "$CTL" wait-deploy "$AUTODEPLOY" "$MARATHON" "$1" "$2" "$DIGEST" "$(left 20)"; then
        "$PYTHON" "$CTL" settle-slack "$AUTODEPLOY" "$SINK" "$(left 8)"
    else
        failed=1
    fi
}

push v1 demo/web:main-1a2b3c "glob 'demo/web:main-*' on /demo/web" &&
    expect_deploy /demo/web "$REGISTRY/demo/web:main-1a2b3c"
WEB_DIGEST=$DIGEST

if push v2 demo/api:2.0.0 "'semver:demo/api:^1.2' on /demo/api: a new major is refused"; then
    "$PYTHON" "$CTL" wait-refused "$AUTODEPLOY" "$MARATHON" /demo/api "$REGISTRY" demo/api 2.0.0 \
        "$(left 20)" || failed=1
fi

push v1 demo/api:1.3.0 "within ^1.2: deploys to /demo/api" && expect_deploy /demo/api "$REGISTRY/demo/api:1.3.0"

push v1 demo/worker:latest "mutable tag 'demo/worker:latest' on /demo/worker" &&
    expect_deploy /demo/worker "$REGISTRY/demo/worker:latest"
push v2 demo/worker:latest "the same tag, other content: redeploys with a fresh pull" &&
    expect_deploy /demo/worker "$REGISTRY/demo/worker:latest"
WORKER_DIGEST=$DIGEST

if push v1 demo/billing:release-1 "/demo/billing has autodeploy.approve=true: it waits for a person"; then
    if "$PYTHON" "$CTL" approve "$AUTODEPLOY" "$ADMIN_TOKEN" /demo/billing "$DIGEST" "$(left 20)"; then
        expect_deploy /demo/billing "$REGISTRY/demo/billing:release-1"
    else
        failed=1
    fi
fi

echo
say "Marathon apps now:"
"$PYTHON" "$CTL" apps "$MARATHON" || failed=1

if [ $scripted -eq 1 ]; then
    echo
    "$PYTHON" "$CTL" summary "$AUTODEPLOY" "$MARATHON" "$SINK" \
        "/demo/web=$REGISTRY/demo/web:main-1a2b3c@$WEB_DIGEST" \
        "/demo/api=$REGISTRY/demo/api:1.3.0" \
        "/demo/api!=$REGISTRY/demo/api:2.0.0" \
        "/demo/worker=$REGISTRY/demo/worker:latest@$WORKER_DIGEST" \
        "/demo/billing=$REGISTRY/demo/billing:release-1" || failed=1
    # The picture of the console after the demo (test_demo.py asks for it).
    if [ -n "${DEMO_CONSOLE_SHOT:-}" ]; then
        # Debian's python3-selenium belongs to Debian's Python, whatever python3 comes first.
        shot_python=$PYTHON
        [ -x /usr/bin/python3 ] && shot_python=/usr/bin/python3
        timeout "$(left 30)" "$shot_python" "$ROOT/tests/integration/console_shot.py" "$AUTODEPLOY/" \
            "$DEMO_CONSOLE_SHOT" "$TMP/chromium" >>"$TMP/console-shot.log" 2>&1 ||
            {
                echo "DEMO console screenshot failed: $(grep -m 3 -E 'Error|Exception|Message' "$TMP/console-shot.log")"
                failed=1
            }
    fi
    if [ $failed -ne 0 ]; then
        echo "autodeployd log (last lines):"
        tail -n 20 "$TMP/autodeployd.log"
    fi
    exit $failed
fi

"$PYTHON" "$CTL" replay-event "$TMP/push-event.json" "$REGISTRY" demo/web main-5e6f7a
echo
if [ $failed -eq 0 ]; then
    say "${G}every push reached its app${N}. Push more by hand from another terminal:"
else
    say "${R}some step failed (see above and $TMP/autodeployd.log)${N}. Push more by hand:"
fi
cat <<EOF

  # a new build of the web app (glob demo/web:main-*), from the demo's OCI layout (refs v1, v2, multi):
  skopeo --insecure-policy copy --dest-tls-verify=false oci:$LAYOUT:v2 docker://$REGISTRY/demo/web:main-9f8e7d

  # a multi-arch image for the API (semver ^1.2, must be newer than what runs):
  skopeo --insecure-policy copy --dest-tls-verify=false --all oci:$LAYOUT:multi docker://$REGISTRY/demo/api:1.4.0

  # replay a registry notification without the registry (demo/web:main-5e6f7a):
  curl -sS -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/vnd.docker.distribution.events.v1+json' --data-binary @$TMP/push-event.json $AUTODEPLOY/v1/webhooks/registry

  # a release of the billing app (autodeploy.approve=true): it waits for approval, then
  skopeo --insecure-policy copy --dest-tls-verify=false oci:$LAYOUT:v2 docker://$REGISTRY/demo/billing:release-2
  curl -sS $AUTODEPLOY/v1/approvals
  curl -sS -X POST -H 'Authorization: Bearer $ADMIN_TOKEN' $AUTODEPLOY/v1/approvals/<id>/approve

  # what would a push deploy, and what happened:
  curl -sS '$AUTODEPLOY/v1/plan?image=$REGISTRY/demo/api:1.4.0'
  curl -sS $AUTODEPLOY/v1/deployments
  curl -sS $MARATHON/v2/apps/demo/web

  # autodeployd's log:
  tail -f $TMP/autodeployd.log

EOF
say "Watch it all in the web console: $AUTODEPLOY/"
say "Slack messages keep appearing below. Ctrl-C stops everything."
while :; do
    for pid in $PIDS; do
        if ! kill -0 "$pid" 2>/dev/null; then
            name=$(echo "$NAMES" | tr ' ' '\n' | sed -n "s/^\(.*\)($pid)\$/\1/p")
            fail "$name ($pid) exited; stopping the others"
        fi
    done
    sleep 1 &
    SLEEP_PID=$!
    wait "$SLEEP_PID" || true
done
