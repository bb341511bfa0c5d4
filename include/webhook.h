/*
 * webhook.h: what POST /v1/webhooks/registry does with a body that passed authentication and
 * the size cap: parse the envelope, filter, drop duplicates, enqueue, and say so.
 *
 * No outbound I/O happens here: the registry waits for this answer before it sends its next
 * event, so the handler's latency bounds the registry's whole notification throughput.
 */
#ifndef AUTODEPLOY_WEBHOOK_H
#define AUTODEPLOY_WEBHOOK_H

#include "buf.h"
#include "queue.h"

#include <stddef.h>

/* Declares the webhook's metric families. Call once at start-up. */
void webhook_metrics_declare(void);

/* Handles one body; appends the JSON answer to resp and returns the HTTP status:
 * 202 {"accepted":N,"ignored":M,"duplicate":K,"rejected":R}, 400 {"error":...} for a body that
 * is not an envelope, 503 {"error":...} when the queue is full (nothing further is lost: what
 * was accepted is remembered, so the registry's retry of the same body accepts the rest). */
int webhook_handle(struct pushq *q, const char *body, size_t len, struct buf *resp);

/* The same for another registry's webhook (sources.h): src's parser reads the body (event: the
 * request's event header, e.g. X-GitHub-Event, or NULL), and each push is offered with
 * push.source set to src's name, with the same answers, duplicate memory and back-pressure.
 * src NULL: the Distribution envelope (webhook_handle). Counts per source in
 * autodeploy_source_events_total as well. */
struct source;
int webhook_handle_source(struct pushq *q, const struct source *src, const char *body, size_t len,
                          const char *event, struct buf *resp);

#endif
