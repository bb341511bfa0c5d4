/*
 * slack.h: delivering report messages to a Slack (or Mattermost) incoming webhook.
 *
 * Slack being slow or down must never delay a deploy, so the report sink only formats the
 * message (notify.h) and puts it in a bounded queue; one worker thread of its own posts the
 * messages in order, at most one per second (Slack's limit per webhook), retrying after
 * time-outs, transport errors and 5xx with exponential back-off and jitter, and after a 429 once
 * Retry-After has passed. A message that still fails is dropped with a log line. Every outcome
 * is counted in autodeploy_slack_messages_total{result}:
 *   sent      accepted by the webhook (2xx)
 *   retried   one more attempt after a 429, 5xx, time-out or transport error
 *   failed    given up: refused (4xx other than 429) or still failing after the last retry
 *   dropped   never delivered: pushed out of a full queue, or still queued at shutdown
 * The webhook URL is a secret (its path is the credential): it appears in no log line; logs
 * name the webhook's host at most.
 */
#ifndef AUTODEPLOY_SLACK_H
#define AUTODEPLOY_SLACK_H

#include "config.h"
#include "report.h"

#include <stddef.h>

struct slack;

/* Checks the Slack settings of cfg (slack_webhook_url must be set and be an http(s) URL),
 * declares the metrics and starts the worker. Returns NULL with a reason in err (which never
 * contains the URL) when the settings are unusable or a resource is missing. The caller keeps
 * cfg; the strings needed are copied. httpc_global_init must have been called. */
struct slack *slack_new(const struct config *cfg, char *err, size_t errlen);

/* A report_sink_fn (ctx is the struct slack): formats r and queues the message, unless the
 * --slack-pushes policy leaves it out. Never blocks on the network: when the queue is full the
 * oldest message is dropped (and counted) to make room. Thread-safe. */
void slack_report_sink(const struct report *r, void *ctx);

/* Messages queued and not yet taken by the worker (tests, diagnostics). */
size_t slack_pending(struct slack *s);

/* Stops accepting messages, gives the worker SLACK_FLUSH_MS to deliver what is queued (a
 * request still running then, even one started before, is abandoned within about a second),
 * joins it, counts what is left as dropped and frees everything. Remove the sink
 * (report_clear_sinks) first, or make sure nothing emits reports any more. slack_free(NULL) does
 * nothing. */
void slack_free(struct slack *s);

#define SLACK_FLUSH_MS 2000

#endif
