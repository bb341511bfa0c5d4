/*
 * slack.c: the Slack delivery queue and its worker (see slack.h).
 *
 * The queue is a ring of formatted payloads behind one mutex; the condition variable that wakes
 * the worker for new messages also ends its waits (pacing, back-off, Retry-After) at shutdown,
 * and runs on the monotonic clock so that a clock change cannot stretch a wait. The worker never
 * holds the mutex during a request, so the sink, called from the deployer's threads, only ever
 * waits for a pointer copy.
 */
#include "slack.h"

#include "httpc.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define METRIC "autodeploy_slack_messages_total"
#define METRIC_DEPTH "autodeploy_slack_queue_depth"

#define MIN_INTERVAL_S 1.0 /* Slack: one message per second per webhook */
#define BACKOFF_BASE_S 1.0 /* first retry after about this long, doubling after */
#define BACKOFF_MAX_S 60.0
#define RETRY_AFTER_MAX_S 60.0 /* a larger Retry-After is capped, not obeyed blindly */
#define PAYLOAD_MAX (64 * 1024)
#define RESPONSE_MAX (4 * 1024)

struct slack {
    char *url;
    char host[256];    /* for log lines: the only part of the URL that is not secret */
    char *secret_path; /* points into url: path and query, the credential; NULL if none */
    char *secret_user; /* user-info before '@' (copy), NULL if none */
    char *pushes;
    char *ui_url;
    struct notify_opts opts;
    long timeout_ms;
    long retries;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sync_ready; /* mu and cv initialised */
    char **ring;    /* cap payloads, count of them from head */
    size_t cap, head, count;
    int stopping;
    double flush_deadline; /* monotonic; meaningful once stopping */
    pthread_t worker;
    int worker_started;

    /* Worker-only state. */
    double next_post; /* monotonic time before which no request may start */
    uint64_t rng;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void to_timespec(double t, struct timespec *ts)
{
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
    if (ts->tv_nsec < 0) ts->tv_nsec = 0;
}

static void count_result(const char *result)
{
    metrics_add(METRIC, "result", result, 1);
}

/* A uniform number in [0, 1) from a xorshift generator; jitter only, nothing secret. */
static double rand01(struct slack *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (double)(s->rng >> 11) / 9007199254740992.0;
}

/* Exponential back-off with jitter: about BACKOFF_BASE_S * 2^attempt, +-25%, capped. */
static double backoff(struct slack *s, long attempt)
{
    double d = BACKOFF_BASE_S;
    for (long i = 0; i < attempt && d < BACKOFF_MAX_S; i++)
        d *= 2;
    if (d > BACKOFF_MAX_S) d = BACKOFF_MAX_S;
    return d * (0.75 + 0.5 * rand01(s));
}

/* Seconds to wait after a 429: Retry-After in seconds (Slack's form), capped; -1 when absent
 * or unreadable, so that the caller falls back to its back-off. */
static double retry_after_seconds(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v < '0' || *v > '9') return -1;
    errno = 0;
    char *end;
    long n = strtol(v, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno || *end) return -1;
    return n > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : (double)n;
}

/* Copies in to out with every occurrence of the URL's secret parts replaced, so that an error
 * text that quotes the URL cannot leak it into the log. */
static void redact(const struct slack *s, const char *in, char *out, size_t outlen)
{
    struct buf b;
    buf_init(&b, outlen ? outlen - 1 : 0);
    const char *secrets[2] = {s->secret_path, s->secret_user};
    const char *p = in;
    while (*p) {
        size_t skip = 0;
        for (int i = 0; i < 2 && !skip; i++) {
            size_t n = secrets[i] ? strlen(secrets[i]) : 0;
            if (n && strncmp(p, secrets[i], n) == 0) skip = n;
        }
        if (skip) {
            if (buf_adds(&b, "(redacted)") < 0) break;
            p += skip;
        } else {
            if (buf_add(&b, p, 1) < 0) break;
            p++;
        }
    }
    snprintf(out, outlen, "%s", b.data ? b.data : "");
    buf_free(&b);
}

/* Waits until monotonic time t. Returns 0 then, or -1 as soon as shutdown's flush deadline has
 * passed (the wait is cut short: whatever was waiting is abandoned). */
static int wait_until(struct slack *s, double t)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        double now = mono_now();
        if (s->stopping && now >= s->flush_deadline) {
            rc = -1;
            break;
        }
        if (now >= t) break;
        double wake = t;
        if (s->stopping && s->flush_deadline < wake) wake = s->flush_deadline;
        struct timespec ts;
        to_timespec(wake, &ts);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The request time-out: --slack-timeout; for a request that starts during shutdown, no more
 * than what is left of the flush time, so that a hanging Slack cannot hold the exit up. */
static long request_timeout_ms(struct slack *s)
{
    long t = s->timeout_ms > 0 ? s->timeout_ms : 5000;
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        double left = (s->flush_deadline - mono_now()) * 1000;
        if (left < (double)t) t = left > 100 ? (long)left : 100;
    }
    pthread_mutex_unlock(&s->mu);
    return t;
}

/* httpc's abandon hook: a request still running when the shutdown's flush time is over (one
 * started before the shutdown has the whole --slack-timeout) is given up. */
static int flush_time_over(void *ctx)
{
    struct slack *s = ctx;
    pthread_mutex_lock(&s->mu);
    int over = s->stopping && mono_now() >= s->flush_deadline;
    pthread_mutex_unlock(&s->mu);
    return over;
}

/* Posts one payload, retrying as slack.h says, and counts the outcome. */
static void deliver(struct slack *s, const char *payload)
{
    long attempt = 0;
    struct httpc_resp resp;
    memset(&resp, 0, sizeof resp);
    for (;;) {
        if (wait_until(s, s->next_post) < 0) {
            count_result("dropped");
            log_warn("Slack message dropped: shutting down", "host", s->host, NULL);
            return;
        }
        struct httpc_req req;
        memset(&req, 0, sizeof req);
        req.method = "POST";
        req.url = s->url;
        req.body = payload;
        req.body_len = strlen(payload);
        req.content_type = "application/json";
        req.accept = "*/*";
        req.timeout_ms = request_timeout_ms(s);
        req.connect_timeout_ms = req.timeout_ms < 5000 ? req.timeout_ms : 5000;
        req.max_response = RESPONSE_MAX;
        req.abandon = flush_time_over;
        req.abandon_ctx = s;

        double started = mono_now();
        httpc_do(&req, &resp);
        if (!resp.status && flush_time_over(s)) {
            count_result("dropped");
            log_warn("Slack message dropped: shutting down", "host", s->host, NULL);
            break;
        }
        s->next_post = started + MIN_INTERVAL_S;

        long status = resp.status;
        char st[24], tries[24], err[256], body[128];
        snprintf(st, sizeof st, "%ld", status);
        snprintf(tries, sizeof tries, "%ld", attempt + 1);
        redact(s, resp.err, err, sizeof err);
        redact(s, resp.body.data ? resp.body.data : "", body, sizeof body);

        if (status >= 200 && status < 300) {
            count_result("sent");
            log_debug("Slack message sent", "host", s->host, "attempts", tries, NULL);
            break;
        }
        double delay;
        if (status == 429) {
            delay = retry_after_seconds(resp.retry_after);
            if (delay < 0) delay = backoff(s, attempt);
        } else if (status == 0 || status >= 500) {
            delay = backoff(s, attempt);
        } else {
            count_result("failed");
            log_warn("Slack refused the message; not retried", "host", s->host, "status", st,
                     "response", body, NULL);
            break;
        }
        if (attempt >= s->retries) {
            count_result("failed");
            log_warn("Slack message dropped after its last retry", "host", s->host, "attempts",
                     tries, "status", status ? st : NULL, "error", err, "response", body, NULL);
            break;
        }
        attempt++;
        count_result("retried");
        char in[32];
        snprintf(in, sizeof in, "%.1fs", delay);
        log_info("Slack message will be retried", "host", s->host, "status", status ? st : NULL,
                 "error", err, "retry_in", in, "attempt", tries, NULL);
        double t = mono_now() + delay;
        if (t > s->next_post) s->next_post = t;
        httpc_resp_free(&resp);
        memset(&resp, 0, sizeof resp);
    }
    httpc_resp_free(&resp);
}

/* Takes the oldest payload; call with mu held and count > 0. */
static char *ring_pop(struct slack *s)
{
    char *p = s->ring[s->head];
    s->ring[s->head] = NULL;
    s->head = (s->head + 1) % s->cap;
    s->count--;
    metrics_set(METRIC_DEPTH, NULL, NULL, (double)s->count);
    return p;
}

static void *worker_main(void *arg)
{
    struct slack *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->count && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->count || (s->stopping && mono_now() >= s->flush_deadline)) break;
        char *payload = ring_pop(s);
        pthread_mutex_unlock(&s->mu);
        deliver(s, payload);
        free(payload);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Frees s and whatever part of it was built; the worker must not be running. */
static void destroy(struct slack *s)
{
    if (s->ring) {
        while (s->count)
            free(ring_pop(s));
        free(s->ring);
    }
    if (s->sync_ready) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    free(s->url);
    free(s->secret_user);
    free(s->pushes);
    free(s->ui_url);
    free(s);
}

/* Fills host, secret_path and secret_user from s->url. -1 when the URL has no host. */
static int parse_url(struct slack *s)
{
    char *rest = strstr(s->url, "://") + 3;
    size_t auth_len = strcspn(rest, "/?#");
    char *at = NULL;
    for (char *p = rest; p < rest + auth_len; p++)
        if (*p == '@') at = p;
    const char *host = at ? at + 1 : rest;
    size_t host_len = (size_t)(rest + auth_len - host);
    if (at && !(s->secret_user = strndup(rest, (size_t)(at - rest)))) return -1;
    if (!host_len || host_len >= sizeof s->host) return -1;
    memcpy(s->host, host, host_len);
    s->host[host_len] = '\0';
    if (rest[auth_len] && rest[auth_len + 1]) s->secret_path = rest + auth_len;
    return 0;
}

struct slack *slack_new(const struct config *cfg, char *err, size_t errlen)
{
    static const char *const oom = "out of memory setting up Slack delivery";
    struct slack *s = NULL;
    pthread_condattr_t ca;
    int ca_ready = 0;
    const char *why = NULL;
    const char *url = cfg->slack_webhook_url;
    const char *pushes = cfg->slack_pushes ? cfg->slack_pushes : "matched";

    if (!url || !url[0]) {
        why = "no Slack webhook URL is set";
        goto fail;
    }
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
        why = "the Slack webhook URL must start with https:// or http://";
        goto fail;
    }
    if (strcmp(pushes, "all") && strcmp(pushes, "matched") && strcmp(pushes, "none")) {
        why = "--slack-pushes must be all, matched or none";
        goto fail;
    }
    why = oom;
    if (!(s = calloc(1, sizeof *s))) goto fail;
    s->url = strdup(url);
    s->pushes = strdup(pushes);
    if (!s->url || !s->pushes) goto fail;
    if (cfg->marathon_ui_url && !(s->ui_url = strdup(cfg->marathon_ui_url))) goto fail;
    if (parse_url(s) < 0) {
        why = "the Slack webhook URL has no usable host";
        goto fail;
    }
    s->opts.pushes = s->pushes;
    s->opts.marathon_ui_url = s->ui_url;
    s->timeout_ms = cfg->slack_timeout_ms;
    s->retries = cfg->slack_retries > 0 ? cfg->slack_retries : 0;
    s->cap = cfg->slack_queue_size > 0 ? (size_t)cfg->slack_queue_size : 200;
    if (!(s->ring = calloc(s->cap, sizeof *s->ring))) goto fail;

    why = "cannot set up the Slack queue's lock";
    if (pthread_condattr_init(&ca) != 0) goto fail;
    ca_ready = 1;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_mutex_init(&s->mu, NULL) != 0)
        goto fail;
    if (pthread_cond_init(&s->cv, &ca) != 0) {
        pthread_mutex_destroy(&s->mu);
        goto fail;
    }
    s->sync_ready = 1;
    s->rng = ((uint64_t)(mono_now() * 1e9) ^ (uint64_t)(uintptr_t)s) | 1;

    metrics_declare(METRIC, "counter",
                    "Slack messages by result: sent, retried (one more attempt), failed (given "
                    "up after the last retry or refused), dropped (queue full or shutdown).");
    static const char *const results[] = {"sent", "retried", "failed", "dropped"};
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        metrics_add(METRIC, "result", results[i], 0);
    metrics_declare(METRIC_DEPTH, "gauge", "Slack messages waiting to be sent.");
    metrics_set(METRIC_DEPTH, NULL, NULL, 0);

    why = "cannot start the Slack worker thread";
    if (pthread_create(&s->worker, NULL, worker_main, s) != 0) goto fail;
    s->worker_started = 1;
    why = NULL;
    log_info("Slack notifications enabled", "host", s->host, "pushes", s->pushes, NULL);

fail:
    if (ca_ready) pthread_condattr_destroy(&ca);
    if (why) {
        snprintf(err, errlen, "%s", why);
        if (s) destroy(s);
        return NULL;
    }
    return s;
}

void slack_report_sink(const struct report *r, void *ctx)
{
    struct slack *s = ctx;
    if (!s || !r || !notify_should_send(r, &s->opts)) return;

    struct buf b;
    buf_init(&b, PAYLOAD_MAX);
    if (notify_format_slack(r, &s->opts, &b) < 0) {
        buf_free(&b);
        count_result("failed");
        log_warn("cannot format a Slack message", "kind", report_kind_name(r->kind), NULL);
        return;
    }
    char *payload = buf_steal(&b);
    char *evicted = NULL;

    pthread_mutex_lock(&s->mu);
    if (!s->stopping) {
        if (s->count == s->cap) evicted = ring_pop(s);
        s->ring[(s->head + s->count) % s->cap] = payload;
        s->count++;
        payload = NULL;
        metrics_set(METRIC_DEPTH, NULL, NULL, (double)s->count);
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);

    if (evicted) {
        free(evicted);
        count_result("dropped");
        log_warn("Slack queue full: oldest message dropped", "host", s->host, NULL);
    }
    if (payload) {
        free(payload);
        count_result("dropped");
    }
}

size_t slack_pending(struct slack *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void slack_free(struct slack *s)
{
    if (!s) return;
    if (s->worker_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        s->flush_deadline = mono_now() + SLACK_FLUSH_MS / 1000.0;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->worker, NULL);
    }
    if (s->count) {
        char n[24];
        snprintf(n, sizeof n, "%zu", s->count);
        metrics_add(METRIC, "result", "dropped", (double)s->count);
        log_warn("Slack messages still queued at exit are dropped", "count", n, "host", s->host,
                 NULL);
    }
    destroy(s);
}
