/*
 * marathon.h: the Marathon REST client: which URL to use (fail-over between several, leader
 * redirects followed), how to authenticate, and the few calls the deployer makes.
 *
 * Credentials are held here and never logged; a failed request is logged with curl's error
 * buffer or Marathon's status and message.
 */
#ifndef AUTODEPLOY_MARATHON_H
#define AUTODEPLOY_MARATHON_H

#include "config.h"
#include "httpc.h"

#include <cjson/cJSON.h>

struct marathon;

/* NULL with a reason when cfg has no usable --marathon-url. */
struct marathon *marathon_new(const struct config *cfg, char *err, size_t errlen);
void marathon_free(struct marathon *m);

/* One request to path (e.g. "/v2/apps/x?force=true"), body optional (JSON). Tries each
 * configured URL in order, starting with the last one that answered, until one gives an HTTP
 * answer. Returns 0 with resp->status set, -1 when none answered (resp->err says why) or the
 * answer was larger than the client keeps (resp->body_cut, status set: "answer too large"). Counts
 * Marathon errors by status in autodeploy_marathon_errors_total. */
int marathon_request(struct marathon *m, const char *method, const char *path, const char *body,
                     struct httpc_resp *resp);

/* marathon_request for a GET, also handing a 2xx body to on_body as it arrives (httpc_req's
 * on_body contract: all of it so far each time more has come; (NULL, 0) before each attempt,
 * so one at another Marathon URL starts over). For reading a large listing while it arrives. */
int marathon_get_progressive(struct marathon *m, const char *path,
                             void (*on_body)(const char *body, size_t len, void *ctx), void *ctx,
                             struct httpc_resp *resp);

/* Like marathon_request, for GET /v2/events: streams until another thread sets *stop or the
 * connection ends. */
int marathon_stream(struct marathon *m, const char *path,
                    void (*on_data)(const char *p, size_t n, void *ctx), void *ctx,
                    const atomic_int *stop, struct httpc_resp *resp);

/* Builds "/v2/apps?label=<selector>" for apps that have the label, escaping the label name as
 * Marathon's selector grammar and URLs require. */
int marathon_label_query(const char *label, struct buf *out);

/* Appends an app id to a path, keeping its slashes: "/staging/foo" -> "/v2/apps/staging/foo". */
int marathon_app_path(const char *app_id, struct buf *out);

/* The message of a Marathon error body ({"message": ...}, with details for 422), for reports.
 * Falls back to the status and the first bytes of a non-JSON body. */
void marathon_error_text(const struct httpc_resp *resp, char *out, size_t len);

/* The base URL used last (for links and logs; never carries credentials). */
const char *marathon_base_url(struct marathon *m);

/* 1 when the last request got an HTTP answer from Marathon (any status but 5xx), 0 when it
 * got none or a 5xx, -1 before the first request. why receives the last failure. */
int marathon_reachable(struct marathon *m, char *why, size_t len);

/* Declares the client's metric families. */
void marathon_metrics_declare(void);

#endif
