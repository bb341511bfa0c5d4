/*
 * server.h: the HTTP server (libmicrohttpd): routing, authentication, body caps, and the small
 * read-only endpoints. The webhook's logic itself lives in webhook.c.
 *
 * Endpoints: POST /v1/webhooks/registry and /v1/webhooks/<source>[/<secret>] (sources.h),
 * GET /healthz, /readyz, /metrics, /v1/pushes, /v1/deployments, /v1/plan?image=..., /v1/apps,
 * /v1/status, /v1/approvals, GET and POST /v1/reconcile, POST /v1/pause, /v1/resume,
 * /v1/approvals/{id}/approve|reject (approvals_http.h), /v1/slack/interactions, and the web
 * console (GET / and /ui/..., ui.h). With --ui-token the GET /v1/ views need it (or the admin
 * token); no POST is taken from another site's page.
 */
#ifndef AUTODEPLOY_SERVER_H
#define AUTODEPLOY_SERVER_H

#include "config.h"
#include "deploy.h"
#include "queue.h"

#include <stddef.h>

struct server;

/* Starts listening on cfg->listen with the server's own threads; cfg is read only here (per
 * request the server reads config_live(), so a reload applies). q and d (NULL when nothing
 * is deployed) must outlive the server. NULL with a reason in err when the address cannot be
 * bound. */
struct server *server_start(const struct config *cfg, struct pushq *q, struct deployer *d,
                            char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int server_port(const struct server *s);

/* Stops accepting, closes connections, joins the server threads and frees. NULL is a no-op. */
void server_stop(struct server *s);

/* Compares two secrets in time that depends only on their lengths, never on their contents.
 * Returns 1 when equal. */
int server_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

/* 1 when the Authorization header value h (NULL: absent) is "Bearer <token>" (scheme in any
 * case, spaces around the token ignored), compared in constant time. */
int server_bearer_ok(const char *h, const char *token);

#endif
