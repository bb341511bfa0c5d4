/*
 * sse.c: incremental Server-Sent Events parsing (see sse.h), after the WHATWG event-stream
 * rules: fields "event" and "data" matter here, "id" and "retry" are read and ignored (Marathon
 * has no replay), lines starting with ':' are comments.
 */
#include "sse.h"

#include <string.h>

void sse_init(struct sse_parser *p, size_t max_event)
{
    memset(p, 0, sizeof *p);
    buf_init(&p->line, max_event + 64);
    buf_init(&p->data, max_event);
    strcpy(p->event, "message");
}

void sse_free(struct sse_parser *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
}

void sse_reset(struct sse_parser *p)
{
    buf_reset(&p->line);
    buf_reset(&p->data);
    memcpy(p->event, "message", sizeof "message");
    p->cr_pending = p->dropping = 0;
}

static void end_of_event(struct sse_parser *p, sse_event_fn fn, void *ctx)
{
    if (!p->dropping && p->data.len > 0) {
        size_t n = p->data.len;
        if (p->data.data[n - 1] == '\n') n--; /* the spec drops the last data newline */
        p->data.data[n] = '\0';
        fn(p->event, p->data.data, n, ctx);
        p->dispatched++;
    }
    buf_reset(&p->data);
    memcpy(p->event, "message", sizeof "message");
    p->dropping = 0;
}

static void process_line(struct sse_parser *p, sse_event_fn fn, void *ctx)
{
    const char *l = p->line.data ? p->line.data : "";
    size_t n = p->line.len;
    if (n == 0) {
        end_of_event(p, fn, ctx);
        return;
    }
    if (l[0] == ':' || p->dropping) return;
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    if (colon && *v == ' ') v++;
    size_t vlen = (size_t)(l + n - v);
    if (flen == 5 && !memcmp(l, "event", 5)) {
        if (vlen >= sizeof p->event) vlen = sizeof p->event - 1;
        memcpy(p->event, v, vlen);
        p->event[vlen] = '\0';
    } else if (flen == 4 && !memcmp(l, "data", 4)) {
        if (buf_add(&p->data, v, vlen) < 0 || buf_add(&p->data, "\n", 1) < 0) {
            p->dropping = 1;
            p->dropped++;
            buf_reset(&p->data);
        }
    }
}

void sse_feed(struct sse_parser *p, const char *s, size_t n, sse_event_fn fn, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (p->cr_pending) {
            p->cr_pending = 0;
            if (c == '\n') continue;
        }
        if (c == '\r' || c == '\n') {
            p->cr_pending = c == '\r';
            process_line(p, fn, ctx);
            buf_reset(&p->line);
            continue;
        }
        if (buf_add(&p->line, &c, 1) < 0) {
            /* A line longer than any event we keep: drop the event it belongs to. */
            if (!p->dropping) p->dropped++;
            p->dropping = 1;
            buf_reset(&p->data);
            buf_reset(&p->line);
        }
    }
}
