/*
 * approvals_http.c: deciding approvals over HTTP (see approvals_http.h).
 *
 * Both paths act through deployer_approval_decide, which changes the approval under the
 * store's lock and queues the job: no network I/O happens while the request is answered, so
 * Slack gets its answer well within its 3 seconds. The Slack path is authenticated by the
 * request's signature only; the name of the user who clicked is recorded (escaped wherever it
 * is shown) and trusted for nothing else.
 */
#include "approvals_http.h"

#include "config.h"
#include "deploy.h"
#include "log.h"
#include "server.h"
#include "slackact.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define APPROVALS_PREFIX "/v1/approvals/"
#define SLACK_PATH "/v1/slack/interactions"

int approvals_http_path(const char *url)
{
    return !strncmp(url, APPROVALS_PREFIX, strlen(APPROVALS_PREFIX)) || !strcmp(url, SLACK_PATH);
}

static void error(struct buf *out, struct approvals_resp *resp, int status, const char *msg)
{
    resp->status = status;
    buf_adds(out, "{\"error\":");
    buf_add_json_string(out, msg);
    buf_adds(out, "}");
}

/* "/v1/approvals/{id}/approve|reject" -> id and the decision; -1 otherwise. */
static int parse_action(const char *url, char *id, size_t idlen, int *approve)
{
    const char *p = url + strlen(APPROVALS_PREFIX);
    const char *slash = strchr(p, '/');
    if (!slash || slash == p || (size_t)(slash - p) >= idlen) return -1;
    if (!strcmp(slash, "/approve"))
        *approve = 1;
    else if (!strcmp(slash, "/reject"))
        *approve = 0;
    else
        return -1;
    memcpy(id, p, (size_t)(slash - p));
    id[slash - p] = '\0';
    return 0;
}

static void api_decide(struct deployer *d, const struct approvals_req *rq, struct buf *out,
                       struct approvals_resp *resp)
{
    char id[64], by[128] = "admin", via[16] = "api";
    int approve;
    if (parse_action(rq->url, id, sizeof id, &approve) < 0)
        return error(out, resp, 404, "not found");
    if (strcmp(rq->method, "POST") != 0) {
        resp->hname = "Allow";
        resp->hvalue = "POST";
        return error(out, resp, 405, "method not allowed; use POST");
    }
    const char *token = config_live()->admin_token;
    if (!token) return error(out, resp, 403, "admin endpoints are disabled: set --admin-token");
    if (!server_bearer_ok(rq->authorization, token)) {
        log_warn("approval request refused: missing or wrong bearer token", NULL);
        resp->hname = "WWW-Authenticate";
        resp->hvalue = "Bearer realm=\"autodeploy-admin\"";
        return error(out, resp, 401, "missing or invalid admin bearer token");
    }
    if (rq->len) {
        cJSON *b = cJSON_ParseWithLength(rq->body, rq->len);
        const cJSON *jby = cJSON_GetObjectItemCaseSensitive(b, "by");
        const cJSON *jvia = cJSON_GetObjectItemCaseSensitive(b, "via");
        int bad =
            !cJSON_IsObject(b) || (jby && !cJSON_IsString(jby)) ||
            (jvia && !cJSON_IsString(jvia)) ||
            (jby && (strlen(jby->valuestring) >= sizeof by || !jby->valuestring[0])) ||
            (jvia && strcmp(jvia->valuestring, "api") && strcmp(jvia->valuestring, "console"));
        if (!bad && jby) snprintf(by, sizeof by, "%s", jby->valuestring);
        if (!bad && jvia) snprintf(via, sizeof via, "%s", jvia->valuestring);
        cJSON_Delete(b);
        if (bad)
            return error(out, resp, 400,
                         "body must be a JSON object {\"by\":\"name (1-127 bytes)\",\"via\":"
                         "\"console\" or \"api\"}");
    }
    if (!d) return error(out, resp, 404, "no such approval");
    resp->status = deployer_approval_decide(d, id, approve, by, via, out);
}

static void slack_interaction(struct deployer *d, const struct approvals_req *rq, struct buf *out,
                              struct approvals_resp *resp)
{
    const char *secret = config_live()->slack_signing_secret;
    if (!secret) return error(out, resp, 404, "not found");
    if (strcmp(rq->method, "POST") != 0) {
        resp->hname = "Allow";
        resp->hvalue = "POST";
        return error(out, resp, 405, "method not allowed; use POST");
    }
    int64_t now = (int64_t)time(NULL);
    switch (slackact_verify(secret, rq->slack_timestamp, rq->slack_sig, rq->body, rq->len, now)) {
    case SLACKACT_STALE:
        log_warn("Slack interaction refused: timestamp more than 5 minutes off", NULL);
        return error(out, resp, 401, "stale request: timestamp more than 5 minutes off");
    case SLACKACT_BAD_SIGNATURE:
        log_warn("Slack interaction refused: bad signature", NULL);
        return error(out, resp, 401, "invalid signature");
    default:
        break;
    }
    if (!d) return error(out, resp, 404, "no approvals: autodeployd runs without --marathon-url");
    if (slackact_seen_check(deployer_slack_seen(d), rq->slack_sig,
                            (int64_t)strtoll(rq->slack_timestamp, NULL, 10), now)) {
        log_warn("Slack interaction refused: replayed request", NULL);
        return error(out, resp, 401, "replayed request");
    }
    struct slackact a;
    char err[160];
    if (slackact_parse(rq->body, rq->len, &a, err, sizeof err) < 0)
        return error(out, resp, 400, err);
    struct buf res;
    buf_init(&res, 64 * 1024);
    int st = deployer_approval_decide(d, a.value, !strcmp(a.action_id, "approve"), a.user, "slack",
                                      &res);
    /* Slack shows the user a failure for anything but 200: the outcome is in the body (and
     * the channel hears of a decision through the usual report). */
    resp->status = 200;
    buf_printf(out, "{\"status\":%d,\"result\":", st);
    buf_add(out, res.data ? res.data : "null", res.data ? res.len : 4);
    buf_adds(out, "}");
    buf_free(&res);
}

void approvals_http_handle(struct deployer *d, const struct approvals_req *rq, struct buf *out,
                           struct approvals_resp *resp)
{
    resp->status = 500;
    resp->hname = resp->hvalue = NULL;
    if (!strcmp(rq->url, SLACK_PATH))
        slack_interaction(d, rq, out, resp);
    else
        api_decide(d, rq, out, resp);
}
