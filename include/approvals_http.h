/*
 * approvals_http.h: the HTTP side of approvals, apart from libmicrohttpd's plumbing (server.c
 * reads the request and sends the answer):
 *   POST /v1/approvals/{id}/approve|reject   admin bearer token (never a cookie); optional JSON
 *                                            body {"by":"name","via":"console"|"api"}
 *   POST /v1/slack/interactions              a Slack app's interactivity Request URL, verified
 *                                            with --slack-signing-secret (unset: 404)
 * (GET /v1/approvals is an ordinary route of server.c.)
 */
#ifndef AUTODEPLOY_APPROVALS_HTTP_H
#define AUTODEPLOY_APPROVALS_HTTP_H

#include "buf.h"

#include <stddef.h>

struct deployer;

/* One request, as read. Header values may be NULL when absent. */
struct approvals_req {
    const char *method, *url;
    const char *authorization;               /* Authorization */
    const char *slack_timestamp, *slack_sig; /* X-Slack-Request-Timestamp, X-Slack-Signature */
    const char *body;                        /* NUL-terminated, len bytes */
    size_t len;
};

/* The answer: status, JSON body appended to out, and one extra header (hname NULL: none). */
struct approvals_resp {
    int status;
    const char *hname, *hvalue; /* static strings */
};

/* 1 when url is one of the paths above (any method: a GET is answered 405). */
int approvals_http_path(const char *url);

/* Answers rq. d may be NULL (no --marathon-url: no approval exists). Thread-safe. */
void approvals_http_handle(struct deployer *d, const struct approvals_req *rq, struct buf *out,
                           struct approvals_resp *resp);

#endif
