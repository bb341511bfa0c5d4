#!/bin/sh
# Amazon ECR pushes -> EventBridge -> autodeployd (POST /v1/webhooks/ecr).
# TOKEN is autodeployd's --ecr-webhook-token; ROLE_ARN a role EventBridge may assume with
# events:InvokeApiDestination on the API destination below.
set -eu
TOKEN=${TOKEN:?the --ecr-webhook-token value}
ROLE_ARN=${ROLE_ARN:?role allowed to invoke the API destination}
URL=${URL:-https://autodeploy.example.com/v1/webhooks/ecr}

conn=$(aws events create-connection --name autodeploy --authorization-type API_KEY \
    --auth-parameters "{\"ApiKeyAuthParameters\":{\"ApiKeyName\":\"Authorization\",\"ApiKeyValue\":\"Bearer $TOKEN\"}}" \
    --query ConnectionArn --output text)
dest=$(aws events create-api-destination --name autodeploy --connection-arn "$conn" \
    --invocation-endpoint "$URL" --http-method POST --invocation-rate-limit-per-second 10 \
    --query ApiDestinationArn --output text)
# Pushes only; autodeployd would ignore deletes and failures anyway.
aws events put-rule --name autodeploy-ecr-push --event-pattern \
    '{"source":["aws.ecr"],"detail-type":["ECR Image Action"],"detail":{"action-type":["PUSH"],"result":["SUCCESS"]}}'
aws events put-targets --rule autodeploy-ecr-push \
    --targets "Id=autodeploy,Arn=$dest,RoleArn=$ROLE_ARN"
