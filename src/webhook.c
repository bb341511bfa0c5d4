/*
 * webhook.c: the registry webhook's decision logic (see webhook.h), kept apart from the HTTP
 * plumbing so that it can be tested without a socket.
 */
#include "webhook.h"

#include "event.h"
#include "jsonmem.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>

enum result { R_ACCEPTED, R_IGNORED, R_DUPLICATE, R_REJECTED, R_DEFERRED, N_RESULTS };
static const char *const result_names[N_RESULTS] = {"accepted", "ignored", "duplicate", "rejected",
                                                    "deferred"};
/* Looked up once: the webhook counts every event without taking the metrics lock. */
static struct metrics_counter *counters[N_RESULTS];

struct tally {
    struct pushq *q;
    int accepted, ignored, duplicate, rejected, full, unsaved;
};

void webhook_metrics_declare(void)
{
    metrics_declare(
        "autodeploy_events_total", "counter",
        "Registry events received, by result (accepted, ignored, duplicate, "
        "rejected, deferred when the queue was full or the state file could not be written).");
    for (int i = 0; i < N_RESULTS; i++)
        counters[i] = metrics_counter("autodeploy_events_total", "result", result_names[i]);
}

static void on_event(const struct event_item *it, void *ctx)
{
    struct tally *t = ctx;
    enum result result = R_IGNORED;
    if (it->verdict == EVENT_IGNORED) {
        t->ignored++;
        log_debug("event ignored", "event_id", it->event_id, "repository", it->repository, "reason",
                  it->reason, NULL);
    } else if (it->verdict == EVENT_REJECTED) {
        t->rejected++;
        result = R_REJECTED;
        log_warn("event rejected", "event_id", it->event_id, "repository", it->repository, "reason",
                 it->reason, NULL);
    } else {
        const struct push *p = &it->push;
        switch (pushq_offer(t->q, p)) {
        case PUSHQ_ACCEPTED:
            t->accepted++;
            result = R_ACCEPTED;
            log_info("push accepted", "event_id", p->event_id, "registry", p->host, "repository",
                     p->repository, "tag", p->tag, "digest", p->digest, "pusher", p->pusher, NULL);
            break;
        case PUSHQ_DUPLICATE:
            t->duplicate++;
            result = R_DUPLICATE;
            log_info("duplicate push dropped", "event_id", p->event_id, "repository", p->repository,
                     "tag", p->tag, "digest", p->digest, NULL);
            break;
        case PUSHQ_FULL:
            t->full++;
            result = R_DEFERRED;
            log_warn("queue full, push deferred to the registry's retry", "event_id", p->event_id,
                     "repository", p->repository, "tag", p->tag, NULL);
            break;
        case PUSHQ_UNSAVED:
            t->full++;
            t->unsaved++;
            result = R_DEFERRED;
            log_warn("push deferred to the registry's retry: the state file cannot be written",
                     "event_id", p->event_id, "repository", p->repository, "tag", p->tag, NULL);
            break;
        }
    }
    metrics_counter_inc(counters[result], 1);
}

int webhook_handle(struct pushq *q, const char *body, size_t len, struct buf *resp)
{
    char err[256];
    struct tally t = {.q = q};
    /* The parse tree lives in this thread's JSON arena; on_event keeps nothing of it. */
    json_arena_begin();
    int parsed = event_parse_envelope(body, len, on_event, &t, err, sizeof err);
    json_arena_end();
    if (parsed < 0) {
        log_warn("webhook body refused", "error", err, NULL);
        buf_adds(resp, "{\"error\":");
        buf_add_json_string(resp, err);
        buf_adds(resp, "}");
        return 400;
    }
    if (t.full) {
        char why[96];
        if (t.unsaved)
            snprintf(why, sizeof why, "cannot record pushes in the state file");
        else
            snprintf(why, sizeof why, "queue full: %zu pushes waiting", pushq_depth(q));
        buf_printf(resp,
                   "{\"error\":\"%s; retry later\",\"accepted\":%d,"
                   "\"ignored\":%d,\"duplicate\":%d,\"rejected\":%d,\"deferred\":%d}",
                   why, t.accepted, t.ignored, t.duplicate, t.rejected, t.full);
        return 503;
    }
    buf_printf(resp, "{\"accepted\":%d,\"ignored\":%d,\"duplicate\":%d,\"rejected\":%d}",
               t.accepted, t.ignored, t.duplicate, t.rejected);
    return 202;
}
