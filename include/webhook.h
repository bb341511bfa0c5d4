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

#endif
