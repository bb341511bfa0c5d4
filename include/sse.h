/*
 * sse.h: a Server-Sent Events parser (pure, incremental).
 *
 * Marathon's /v2/events frames each event as "event: TYPE\r\ndata: JSON\r\n\r\n" and sends a
 * bare "\r\n" as heartbeat. The parser accepts any of CRLF, LF or CR line ends (split across
 * chunks too), joins multi-line data with '\n', ignores comments and heartbeats, and bounds
 * memory: an event larger than the cap is dropped whole and counted, parsing goes on.
 */
#ifndef AUTODEPLOY_SSE_H
#define AUTODEPLOY_SSE_H

#include "buf.h"

#include <stddef.h>

typedef void (*sse_event_fn)(const char *event, const char *data, size_t data_len, void *ctx);

struct sse_parser {
    struct buf line;   /* the line being read */
    struct buf data;   /* data of the event being read */
    char event[64];    /* its type; "message" when none was given */
    int cr_pending;    /* the last byte was a CR: a following LF belongs to it */
    int dropping;      /* the current event passed the cap: skip to its end */
    size_t dropped;    /* events dropped for size */
    size_t dispatched; /* events delivered */
};

/* Prepares p; events (data) larger than max_event bytes are dropped. */
void sse_init(struct sse_parser *p, size_t max_event);

/* Frees p's buffers. */
void sse_free(struct sse_parser *p);

/* Forgets any partial event (after a reconnect). */
void sse_reset(struct sse_parser *p);

/* Consumes n bytes, calling fn for every complete event with non-empty data. */
void sse_feed(struct sse_parser *p, const char *s, size_t n, sse_event_fn fn, void *ctx);

#endif
