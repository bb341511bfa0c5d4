#!/bin/sh
# Google Artifact Registry (and Container Registry) pushes -> the project's "gcr" Pub/Sub topic
# -> a push subscription -> autodeployd (POST /v1/webhooks/gar/<secret>).
# SECRET is autodeployd's --gar-webhook-secret (16+ characters of A-Za-z0-9-._~).
set -eu
PROJECT=${PROJECT:?the Google Cloud project}
SECRET=${SECRET:?the --gar-webhook-secret value}
URL=${URL:-https://autodeploy.example.com/v1/webhooks/gar}

# Artifact Registry publishes to a topic named exactly "gcr" once it exists.
gcloud pubsub topics describe gcr --project "$PROJECT" >/dev/null 2>&1 ||
    gcloud pubsub topics create gcr --project "$PROJECT"
gcloud pubsub subscriptions create autodeploy --project "$PROJECT" --topic gcr \
    --push-endpoint "$URL/$SECRET" --ack-deadline 10 --message-retention-duration 1d
