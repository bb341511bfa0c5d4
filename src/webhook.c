/*
 * webhook.c: the registry webhook's decision logic (see webhook.h), kept apart from the HTTP
 * plumbing so that it can be tested without a socket.
 */
#include "webhook.h"

#include "event.h"
#include "jsonmem.h"
#include "log.h"
#include "metrics.h"
#include "sources.h"

#include <stdio.h>
#include <string.h>

enum result { R_ACCEPTED, R_IGNORED, R_DUPLICATE, R_REJECTED, R_DEFERRED, N_RESULTS };
static const char *const result_names[N_RESULTS] = {"accepted", "ignored", "duplicate", "rejected",
                                                    "deferred"};
/* Looked up once: the webhook counts every event without taking the metrics lock. */
static struct metrics_counter *counters[N_RESULTS];
/* Per source (index in source_table) and result, in autodeploy_source_events_total. */
#define MAX_SOURCES 16
static struct metrics_counter *by_source[MAX_SOURCES][N_RESULTS];

struct tally {
    struct pushq *q;
    const char *source; /* set on each push; "" for the Distribution registry */
    int src;            /* index in source_table, -1 for the Distribution registry */
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
    metrics_declare("autodeploy_source_events_total", "counter",
                    "Events received on the webhooks of other registries (/v1/webhooks/<source>), "
                    "by source and result; they are counted in autodeploy_events_total too.");
    /* metrics.h series carry one label; the source, a constant of source_table, rides in the
     * label's name (metrics_render writes it as given). */
    for (size_t s = 0; s < source_count() && s < MAX_SOURCES; s++) {
        char label[32];
        snprintf(label, sizeof label, "source=\"%s\",result", source_table[s].name);
        for (int i = 0; i < N_RESULTS; i++)
            by_source[s][i] =
                metrics_counter("autodeploy_source_events_total", label, result_names[i]);
    }
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
        struct push copy = it->push;
        const struct push *p = &copy;
        if (!copy.source[0] && t->source[0])
            snprintf(copy.source, sizeof copy.source, "%s", t->source);
        switch (pushq_offer(t->q, p)) {
        case PUSHQ_ACCEPTED:
            t->accepted++;
            result = R_ACCEPTED;
            log_info("push accepted", "event_id", p->event_id, "registry", p->host, "repository",
                     p->repository, "tag", p->tag, "digest", p->digest, "pusher", p->pusher,
                     "source", p->source[0] ? p->source : "registry", NULL);
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
    if (t->src >= 0 && t->src < MAX_SOURCES) metrics_counter_inc(by_source[t->src][result], 1);
}

static int envelope(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                    char *err, size_t errlen)
{
    (void)event;
    return event_parse_envelope(body, len, fn, ctx, err, errlen);
}

int webhook_handle(struct pushq *q, const char *body, size_t len, struct buf *resp)
{
    return webhook_handle_source(q, NULL, body, len, NULL, resp);
}

int webhook_handle_source(struct pushq *q, const struct source *src, const char *body, size_t len,
                          const char *event, struct buf *resp)
{
    char err[256];
    struct tally t = {.q = q, .source = src ? src->name : "", .src = -1};
    if (src) t.src = (int)(src - source_table);
    source_parse_fn parse = src ? src->parse : envelope;
    /* The parse tree lives in this thread's JSON arena; on_event keeps nothing of it. */
    json_arena_begin();
    int parsed = parse(body, len, event, on_event, &t, err, sizeof err);
    json_arena_end();
    if (parsed < 0) {
        log_warn("webhook body refused", "source", src ? src->name : "registry", "error", err,
                 NULL);
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
