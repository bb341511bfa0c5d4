#!/bin/sh
# Azure Container Registry pushes -> autodeployd (POST /v1/webhooks/acr).
# TOKEN is autodeployd's --acr-webhook-token.
set -eu
REGISTRY=${REGISTRY:?the registry name (not the login server)}
TOKEN=${TOKEN:?the --acr-webhook-token value}
URL=${URL:-https://autodeploy.example.com/v1/webhooks/acr}

az acr webhook create --registry "$REGISTRY" --name autodeploy --actions push \
    --uri "$URL" --headers "Authorization=Bearer $TOKEN"
