#!/bin/sh
# Replays a registry push notification against a running autodeployd, as the registry would
# send it. Usage: examples/replay-push.sh [URL] [EVENT_FILE]
#   AUTODEPLOY_WEBHOOK_TOKEN must hold the webhook token when autodeployd requires one.
url=${1:-http://127.0.0.1:8080/v1/webhooks/registry}
event=${2:-$(dirname "$0")/push-event.json}
exec curl -sS -w '\n%{http_code}\n' \
    -H 'Content-Type: application/vnd.docker.distribution.events.v1+json' \
    ${AUTODEPLOY_WEBHOOK_TOKEN:+-H "Authorization: Bearer $AUTODEPLOY_WEBHOOK_TOKEN"} \
    --data-binary @"$event" "$url"
