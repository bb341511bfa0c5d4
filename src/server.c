/*
 * server.c: libmicrohttpd plumbing (see server.h).
 *
 * Each request goes through the access handler several times: once with the headers (route,
 * method, authentication, content type and declared length are decided here, so a bad request
 * is answered before its body is read), once per body chunk (appended to a capped buffer), and
 * once at the end (the webhook runs). Request state is freed in the completion callback.
 *
 * libmicrohttpd's connection timeout only closes connections that are idle; a client that
 * trickles one byte now and then is never idle. So each connection also has a request
 * deadline: from the moment it opens (or its previous answer was sent), its whole request must
 * arrive within --http-timeout, and from the moment the answer is queued, the client has as
 * long again to read it. A reaper thread shuts down the socket of any connection past
 * its deadline, and libmicrohttpd then closes it as it would any connection the peer closed.
 * A connection waiting for a plan (suspended by us) has no deadline until it is resumed.
 *
 * The web console (ui.h) is served from here too: its files to anyone (so the page can ask
 * for a token), the views it reads behind --ui-token when set, and no POST from another
 * site's page (Sec-Fetch-Site / Origin), whatever its token.
 */
#include "server.h"

#include "approvals_http.h"
#include "buf.h"
#include "follow.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "report.h"
#include "signature.h"
#include "sources.h"
#include "ui.h"
#include "webhook.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#if MHD_VERSION < 0x00097002
#define MHD_Result int
#endif

/* One per TCP connection, linked in server.conns while libmicrohttpd holds its socket. */
struct conn {
    struct conn *prev, *next;
    int fd;
    int suspended;             /* waiting for a plan thread: no deadline */
    _Atomic(int64_t) since_ms; /* opened, or previous answer sent (monotonic) */
};

struct server {
    struct MHD_Daemon *mhd;
    struct pushq *q;
    struct deployer *d;
    int port;

    /* Request deadlines (see the top of the file), and the plan threads. */
    int64_t timeout_ms;
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* the reaper: a new deadline, or stop */
    pthread_cond_t plans_done; /* server_stop: the last plan thread has ended */
    int plans;                 /* plan threads running; at most MAX_PLANS; under lock */
    int closing;               /* server_stop has begun: no new plan thread; under lock */
    atomic_int closed;         /* the same, read by plan threads to give up their questions */
    struct conn *conns;        /* ordered by nothing; a few hundred at most */
    int stopping;
    int reaper_started;
    pthread_t reaper;
    struct metrics_counter *timeouts;
    int64_t started_ms; /* monotonic: /v1/status's uptime */
};

#define MAX_PLANS 2
#define APPROVAL_BODY_MAX (64 * 1024) /* a decision's or a Slack click's body */

enum route {
    R_NONE = 0,
    R_WEBHOOK,
    R_HEALTH,
    R_READY,
    R_METRICS,
    R_PUSHES,
    R_DEPLOYMENTS,
    R_PLAN,
    R_PAUSE,
    R_RESUME,
    R_RECONCILE_PLAN,
    R_RECONCILE,
    R_APPS,
    R_STATUS,
    R_APPROVALS
};

static const struct {
    const char *path;
    const char *method;
    enum route route;
} routes[] = {
    {"/v1/webhooks/registry", "POST", R_WEBHOOK},
    {"/healthz", "GET", R_HEALTH},
    {"/readyz", "GET", R_READY},
    {"/metrics", "GET", R_METRICS},
    {"/v1/pushes", "GET", R_PUSHES},
    {"/v1/deployments", "GET", R_DEPLOYMENTS},
    {"/v1/plan", "GET", R_PLAN},
    {"/v1/pause", "POST", R_PAUSE},
    {"/v1/resume", "POST", R_RESUME},
    {"/v1/reconcile", "GET", R_RECONCILE_PLAN},
    {"/v1/reconcile", "POST", R_RECONCILE},
    {"/v1/apps", "GET", R_APPS},
    {"/v1/status", "GET", R_STATUS},
    {"/v1/approvals", "GET", R_APPROVALS},
};

/* State of one webhook request while its body arrives. */
/* State of a request that spans several handler calls: a webhook body arriving, or a plan
 * computed on its own thread while the connection is suspended. */
/* What a request read on its own thread asks for. */
enum plan_kind { PLAN_IMAGE = 0, PLAN_APPS, PLAN_RECONCILE };

struct req {
    struct buf body;          /* webhook: the body so far; plan: the answer */
    const struct source *src; /* another registry's webhook; NULL: the Distribution one */
    int is_plan;              /* a read of Marathon on its own thread (plan_kind says which) */
    int kind;                 /* enum plan_kind */
    int is_approval;          /* POST /v1/approvals/{id}/... or /v1/slack/interactions */
    atomic_int plan_status;   /* 0 until the plan thread is done; then body is the answer */
    struct server *s;
    struct MHD_Connection *c;
    char image[640];
};

static struct conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Marks a connection suspended (no deadline) or resumed (a new deadline from now). */
static void conn_set_suspended(struct server *s, struct MHD_Connection *c, int suspended)
{
    struct conn *k = conn_of(c);
    if (!k) return;
    pthread_mutex_lock(&s->lock);
    k->suspended = suspended;
    atomic_store(&k->since_ms, follower_now_ms());
    if (!suspended) pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct server *s = cls;
    struct conn *k = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k = calloc(1, sizeof *k);
        if (!ci || !k) { /* no deadline for this one; the idle timeout still applies */
            free(k);
            return;
        }
        k->fd = ci->connect_fd;
        atomic_init(&k->since_ms, follower_now_ms());
        pthread_mutex_lock(&s->lock);
        k->next = s->conns;
        if (s->conns) s->conns->prev = k;
        s->conns = k;
        if (!k->next) pthread_cond_signal(&s->wake); /* the reaper may be waiting forever */
        pthread_mutex_unlock(&s->lock);
        *socket_context = k;
    } else if (k) { /* closed: unlinked before libmicrohttpd closes the socket */
        pthread_mutex_lock(&s->lock);
        if (k->prev)
            k->prev->next = k->next;
        else
            s->conns = k->next;
        if (k->next) k->next->prev = k->prev;
        pthread_mutex_unlock(&s->lock);
        free(k);
        *socket_context = NULL;
    }
}

/* Shuts down connections past their request deadline; sleeps until the next deadline. */
static void *reaper_main(void *arg)
{
    struct server *s = arg;
    int64_t last_log = 0;
    unsigned long unlogged = 0;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        int64_t now = follower_now_ms(), next = -1;
        unsigned long n = 0;
        for (struct conn *k = s->conns; k; k = k->next) {
            if (k->suspended || k->fd < 0) continue;
            int64_t deadline = atomic_load(&k->since_ms) + s->timeout_ms;
            if (deadline <= now) {
                shutdown(k->fd, SHUT_RDWR); /* the socket stays open until MHD closes it */
                k->fd = -1;
                n++;
            } else if (next < 0 || deadline < next) {
                next = deadline;
            }
        }
        if (n) {
            metrics_counter_inc(s->timeouts, n);
            unlogged += n;
        }
        if (unlogged && now - last_log >= 10000) { /* at most one line per 10 s */
            char count[24];
            snprintf(count, sizeof count, "%lu", unlogged);
            log_warn("closed connections that did not send a whole request within --http-timeout",
                     "connections", count, NULL);
            unlogged = 0;
            last_log = now;
        }
        if (unlogged && (next < 0 || next > last_log + 10000)) next = last_log + 10000;
        if (next < 0) {
            pthread_cond_wait(&s->wake, &s->lock);
        } else {
            struct timespec ts = {(time_t)(next / 1000), (long)(next % 1000) * 1000000};
            pthread_cond_timedwait(&s->wake, &s->lock, &ts);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int server_secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Walk the longer length whatever the inputs, so timing reveals no matching prefix. */
    size_t n = alen > blen ? alen : blen;
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        unsigned char y = i < blen ? (unsigned char)b[i] : 0;
        diff |= x ^ y;
    }
    return diff == 0;
}

int server_bearer_ok(const char *h, const char *token)
{
    if (!h || !token || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ')
        h++;
    size_t hl = strlen(h);
    while (hl && (h[hl - 1] == ' ' || h[hl - 1] == '\t'))
        hl--;
    return server_secret_equal(h, hl, token, strlen(token));
}

/* 1 when the request's Authorization header is "Bearer <token>". */
static int bearer_ok(struct MHD_Connection *c, const char *token)
{
    return server_bearer_ok(
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION), token);
}

static enum MHD_Result respond(struct MHD_Connection *c, int status, const char *ctype,
                               struct buf *body, const char *hname, const char *hvalue)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body->len, body->data ? body->data : (char *)"", MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (hname) MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned int)status, r);
    MHD_destroy_response(r);
    /* The request is in: the client now has a whole --http-timeout to read the answer. */
    struct conn *k = conn_of(c);
    if (k) atomic_store(&k->since_ms, follower_now_ms());
    return ret;
}

/* Answers {"error": msg}. Extra header optional. */
static enum MHD_Result respond_error(struct MHD_Connection *c, int status, const char *msg,
                                     const char *hname, const char *hvalue)
{
    struct buf b;
    buf_init(&b, 4096);
    buf_adds(&b, "{\"error\":");
    buf_add_json_string(&b, msg);
    buf_adds(&b, "}");
    enum MHD_Result r = respond(c, status, "application/json", &b, hname, hvalue);
    buf_free(&b);
    return r;
}

/* 1 when a browser says the request comes from another site's page: Sec-Fetch-Site other
 * than same-origin (or none: typed by the user), or, from browsers without it, an Origin that
 * is not this server's own (its Host). Clients that are no browsers (curl, registries) send
 * neither and are not concerned: their requests carry no one else's authority. */
static int cross_site(struct MHD_Connection *c)
{
    const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site) return strcasecmp(site, "same-origin") != 0 && strcasecmp(site, "none") != 0;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin) return 0;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!strncasecmp(origin, "http://", 7))
        origin += 7;
    else if (!strncasecmp(origin, "https://", 8))
        origin += 8;
    else
        return 1; /* "null" (a sandboxed or file: page) and anything else */
    return !host || strcasecmp(origin, host) != 0;
}

/* The views the console reads, every GET under /v1/ (those of other modules too, such as
 * /v1/approvals): with --ui-token they need it (or the admin token). /healthz, /readyz and
 * /metrics stay open for probes and scrapers; the console's files too, so that the page can
 * ask for the token. */
static int is_read_view(const char *url, const char *method)
{
    return !strncmp(url, "/v1/", 4) && (!strcmp(method, "GET") || !strcmp(method, "HEAD"));
}

/* 1 when no --ui-token is set, or the request carries it or the admin token. */
static int read_ok(struct MHD_Connection *c)
{
    const struct config *cfg = config_live();
    if (!cfg->ui_token) return 1;
    return bearer_ok(c, cfg->ui_token) || (cfg->admin_token && bearer_ok(c, cfg->admin_token));
}

/* GET or HEAD of the console (ui.h): the embedded file with its security headers. */
static enum MHD_Result serve_ui(struct MHD_Connection *c, const char *url, const char *method)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return respond_error(c, 405, "method not allowed; use GET", "Allow", "GET");
    struct ui_asset a;
    if (ui_lookup(url, &a) < 0) return respond_error(c, 404, "not found", NULL, NULL);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a.len, (void *)a.data, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a.content_type);
    for (const struct ui_header *h = ui_headers(); h->name; h++)
        MHD_add_response_header(r, h->name, h->value);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    struct conn *k = conn_of(c);
    if (k) atomic_store(&k->since_ms, follower_now_ms());
    return ret;
}

static void count_webhook(int status)
{
    /* One handle per status code, found on first use (a race finds the same series twice). */
    static _Atomic(struct metrics_counter *) by_code[600];
    if (status < 100 || status > 599) return;
    struct metrics_counter *c = atomic_load(&by_code[status]);
    if (!c) {
        char code[8];
        snprintf(code, sizeof code, "%d", status);
        c = metrics_counter("autodeploy_webhook_requests_total", "code", code);
        atomic_store(&by_code[status], c);
    }
    metrics_counter_inc(c, 1);
}

static int content_type_ok(struct MHD_Connection *c)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct) return 1; /* curl replays often omit it; the body is still checked as JSON */
    size_t n = strcspn(ct, "; \t");
    static const char *const ok[] = {
        "application/vnd.docker.distribution.events.v1+json",
        "application/vnd.docker.distribution.events.v2+json",
        "application/json",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strlen(ok[i]) == n && strncasecmp(ct, ok[i], n) == 0) return 1;
    return 0;
}

/* ---- other registries' webhooks: /v1/webhooks/<source>[/<secret>] (sources.h) */

#define SOURCE_PREFIX "/v1/webhooks/"

/* The source a URL names, and the path segment after its name (NULL: none). NULL when the URL
 * is not a source's. */
static const struct source *source_of(const char *url, const char **secret)
{
    size_t pl = sizeof SOURCE_PREFIX - 1;
    *secret = NULL;
    if (strncmp(url, SOURCE_PREFIX, pl) != 0) return NULL;
    const char *name = url + pl;
    size_t n = strcspn(name, "/");
    char buf[32];
    if (n == 0 || n >= sizeof buf) return NULL;
    memcpy(buf, name, n);
    buf[n] = '\0';
    const struct source *src = source_find(buf);
    if (src && name[n] == '/') *secret = name + n + 1;
    return src;
}

/* The setting that enables src (NULL: not enabled). */
static const char *source_secret(const struct config *cfg, const struct source *src)
{
    const char *n = src->name;
    return !strcmp(n, "harbor")        ? cfg->harbor_webhook_token
           : !strcmp(n, "github")      ? cfg->github_webhook_secret
           : !strcmp(n, "dockerhub")   ? cfg->dockerhub_webhook_secret
           : !strcmp(n, "quay")        ? cfg->quay_webhook_secret
           : !strcmp(n, "artifactory") ? cfg->artifactory_webhook_secret
           : !strcmp(n, "nexus")       ? cfg->nexus_webhook_secret
           : !strcmp(n, "ecr")         ? cfg->ecr_webhook_token
           : !strcmp(n, "gar")         ? cfg->gar_webhook_secret
           : !strcmp(n, "acr")         ? cfg->acr_webhook_token
                                       : NULL;
}

/* The request path as it may be logged: a secret in it replaced by "***". */
static void loggable_path(const struct source *src, const char *secret, char *out, size_t len)
{
    snprintf(out, len, "%s%s%s", SOURCE_PREFIX, src->name, secret ? "/***" : "");
}

static enum MHD_Result refuse_source(struct MHD_Connection *c, const struct source *src,
                                     const char *secret, int status, const char *msg)
{
    char path[64];
    loggable_path(src, secret, path, sizeof path);
    log_warn("webhook refused", "path", path, "status", status == 404 ? "404" : "401", "reason",
             msg, NULL);
    count_webhook(status);
    return respond_error(c, status, msg, NULL, NULL);
}

/* Checks what can be checked from the headers: the source is enabled, its static header or path
 * secret is right. The signatures over the body are checked once it is in (source_body_ok).
 * Returns 0 to go on, or the status already queued. */
static int source_headers(struct MHD_Connection *c, const struct source *src, const char *secret,
                          enum MHD_Result *ret)
{
    const char *want = source_secret(config_live(), src);
    if (!want) {
        *ret = refuse_source(c, src, secret, 404, "this webhook source is not enabled");
        return 404;
    }
    if (src->auth != AUTH_PATH && secret) {
        *ret = refuse_source(c, src, secret, 404, "not found");
        return 404;
    }
    int ok = 1;
    if (src->auth == AUTH_PATH) {
        ok = secret && sig_equal(secret, strlen(secret), want, strlen(want));
    } else if (src->auth == AUTH_BEARER) {
        const char *h =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        ok = sig_bearer_ok(h, want, 1);
    }
    if (!ok) {
        *ret = refuse_source(c, src, secret, 401, "missing or invalid credentials");
        return 401;
    }
    return 0;
}

/* 1 when the body's signature is right (sources signing their bodies), or none is needed. */
static int source_body_ok(struct MHD_Connection *c, const struct source *src, const struct buf *b)
{
    const char *want = source_secret(config_live(), src);
    const char *body = b->data ? b->data : "";
    const char *h;
    switch (src->auth) {
    case AUTH_GITHUB:
        h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Hub-Signature-256");
        return sig_github_ok(want, body, b->len, h);
    case AUTH_NEXUS:
        h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Nexus-Webhook-Signature");
        return sig_nexus_ok(want, body, b->len, h);
    case AUTH_JFROG:
        h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-JFrog-Event-Auth");
        return sig_jfrog_ok(want, body, b->len, h);
    default:
        return want != NULL; /* a reload may have disabled the source meanwhile */
    }
}

/* The last call of a source's request: the body is in. */
static enum MHD_Result source_finish(struct MHD_Connection *c, struct req *rq)
{
    const struct source *src = rq->src;
    if (!source_body_ok(c, src, &rq->body))
        return refuse_source(c, src, NULL, 401, "missing or invalid signature");
    const char *event = NULL;
    if (src->auth == AUTH_GITHUB)
        event = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-GitHub-Event");
    else if (src->auth == AUTH_JFROG)
        event = config_live()->artifactory_docker_access;
    struct buf resp;
    buf_init(&resp, 64 * 1024);
    int status = webhook_handle_source(rq->s->q, src, rq->body.data, rq->body.len, event, &resp);
    if (status == 202 && event && !strcmp(event, "ping")) status = 200; /* GitHub's hook test */
    count_webhook(status);
    enum MHD_Result ret =
        respond(c, status, "application/json", &resp, status == 503 ? "Retry-After" : NULL, "2");
    buf_free(&resp);
    return ret;
}

/* First call of a webhook request: everything that can be decided from the headers. Returns
 * 0 to go on reading the body, or the status already queued. */
static int webhook_headers(struct MHD_Connection *c, const struct source *src, const char *secret,
                           enum MHD_Result *ret)
{
    const struct config *cfg = config_live();
    int status = 0;
    if (src) {
        if ((status = source_headers(c, src, secret, ret)) != 0) return status;
    } else if (cfg->webhook_token && !bearer_ok(c, cfg->webhook_token)) {
        status = 401;
        log_warn("webhook refused: missing or wrong bearer token", NULL);
        *ret = respond_error(c, status, "missing or invalid bearer token", "WWW-Authenticate",
                             "Bearer realm=\"autodeploy\"");
    } else if (!content_type_ok(c)) {
        status = 415;
        *ret = respond_error(c, status,
                             "unsupported Content-Type: expected "
                             "application/vnd.docker.distribution.events.v1+json, "
                             "...v2+json or application/json",
                             NULL, NULL);
    } else {
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > cfg->max_body_bytes) {
            char msg[128];
            snprintf(msg, sizeof msg, "body of %.20s bytes is over the limit of %zu bytes", cl,
                     cfg->max_body_bytes);
            status = 413;
            log_warn("webhook refused: body too large", "content_length", cl, NULL);
            *ret = respond_error(c, status, msg, NULL, NULL);
        }
    }
    if (status) count_webhook(status);
    return status;
}

static const char *url_of(enum route r)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (routes[i].route == r) return routes[i].path;
    return "";
}

/* The admin endpoints' check: 1 when refused (*ret holds the answer sent). */
static int admin_refused(struct MHD_Connection *c, enum MHD_Result *ret)
{
    if (!config_live()->admin_token) {
        *ret = respond_error(c, 403, "admin endpoints are disabled: set --admin-token", NULL, NULL);
        return 1;
    }
    if (!bearer_ok(c, config_live()->admin_token)) {
        log_warn("admin request refused: missing or wrong bearer token", NULL);
        *ret = respond_error(c, 401, "missing or invalid admin bearer token", "WWW-Authenticate",
                             "Bearer realm=\"autodeploy-admin\"");
        return 1;
    }
    return 0;
}

static enum MHD_Result serve_small(struct server *s, struct MHD_Connection *c, enum route r)
{
    struct buf b;
    buf_init(&b, 16 * 1024 * 1024);
    enum MHD_Result ret;
    switch (r) {
    case R_HEALTH:
        buf_adds(&b, "{\"status\":\"ok\"}");
        ret = respond(c, 200, "application/json", &b, NULL, NULL);
        break;
    case R_READY: {
        /* Ready: pushes can be taken and deployed. Marathon unreachable means not ready; a
         * pause does not (pushes are still accepted and queued). */
        int ok = 1;
        buf_adds(&b, "{");
        if (s->d) {
            ok = deployer_health_json(s->d, &b);
        } else {
            buf_adds(&b, "\"marathon\":\"not configured\",\"event_stream\":\"not configured\"");
        }
        buf_printf(&b, ",\"paused\":%s,\"queued\":%zu,\"ready\":%s}",
                   pushq_paused(s->q) ? "true" : "false", pushq_depth(s->q), ok ? "true" : "false");
        ret = respond(c, ok ? 200 : 503, "application/json", &b, NULL, NULL);
        break;
    }
    case R_METRICS:
        metrics_render(&b);
        ret = respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", &b, NULL, NULL);
        break;
    case R_PUSHES:
        pushq_recent_json(s->q, &b);
        ret = respond(c, 200, "application/json", &b, NULL, NULL);
        break;
    case R_DEPLOYMENTS:
        if (s->d)
            deployer_records_json(s->d, &b);
        else
            buf_adds(&b, "{\"deployments\":[]}");
        ret = respond(c, 200, "application/json", &b, NULL, NULL);
        break;
    case R_RECONCILE:
        if (admin_refused(c, &ret)) break;
        if (!s->d || deployer_reconcile_now(s->d) < 0) {
            ret = respond_error(c, 503, "reconcile needs --marathon-url", NULL, NULL);
            break;
        }
        log_info("reconcile cycle asked for by an operator", NULL);
        buf_adds(&b, "{\"reconcile\":\"started\"}");
        ret = respond(c, 202, "application/json", &b, NULL, NULL);
        break;
    case R_STATUS: {
        int ok = 1;
        buf_printf(&b, "{\"version\":\"%s\",\"uptime_s\":%lld,", AUTODEPLOY_VERSION,
                   (long long)((follower_now_ms() - s->started_ms) / 1000));
        if (s->d)
            ok = deployer_health_json(s->d, &b);
        else
            buf_adds(&b, "\"marathon\":\"not configured\",\"event_stream\":\"not configured\"");
        const struct config *cfg = config_live();
        buf_printf(&b,
                   ",\"paused\":%s,\"queued\":%zu,\"ready\":%s,\"admin_actions\":%s,"
                   "\"read_token\":%s}",
                   pushq_paused(s->q) ? "true" : "false", pushq_depth(s->q), ok ? "true" : "false",
                   cfg->admin_token ? "true" : "false", cfg->ui_token ? "true" : "false");
        ret = respond(c, 200, "application/json", &b, NULL, NULL);
        break;
    }
    case R_APPROVALS: /* read access as for /v1/deployments */
        if (s->d)
            deployer_approvals_json(s->d, &b);
        else
            buf_adds(&b, "{\"approvals\":[]}");
        ret = respond(c, 200, "application/json", &b, NULL, NULL);
        break;
    case R_PAUSE:
    case R_RESUME:
        if (admin_refused(c, &ret)) break;
        if (pushq_paused(s->q) != (r == R_PAUSE)) {
            pushq_set_paused(s->q, r == R_PAUSE);
            log_warn(r == R_PAUSE ? "deployments paused by an operator"
                                  : "deployments resumed by an operator",
                     NULL);
            struct report rep;
            memset(&rep, 0, sizeof rep);
            rep.kind = r == R_PAUSE ? REPORT_PAUSED : REPORT_RESUMED;
            rep.instances = -1;
            snprintf(rep.reason, sizeof rep.reason, "an operator (POST %s)", url_of(r));
            report_emit(&rep);
        }
        buf_printf(&b, "{\"paused\":%s,\"queued\":%zu}", r == R_PAUSE ? "true" : "false",
                   pushq_depth(s->q));
        ret = respond(c, 200, "application/json", &b, NULL, NULL);
        break;
    default:
        ret = respond_error(c, 404, "not found", NULL, NULL);
    }
    buf_free(&b);
    return ret;
}

/* The end of an approval request: its body is in (approvals_http.h decides the rest). */
static enum MHD_Result serve_approval(struct server *s, struct MHD_Connection *c, const char *url,
                                      const char *method, struct req *rq)
{
    struct approvals_req in = {
        method,
        url,
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Slack-Request-Timestamp"),
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Slack-Signature"),
        rq->body.data ? rq->body.data : "",
        rq->body.len};
    struct approvals_resp out;
    struct buf b;
    buf_init(&b, 256 * 1024);
    approvals_http_handle(s->d, &in, &b, &out);
    enum MHD_Result ret = respond(c, out.status, "application/json", &b, out.hname, out.hvalue);
    buf_free(&b);
    return ret;
}

/* A plan thread has ended (or never started): server_stop may be waiting for the last one. */
static void plan_done(struct server *s)
{
    pthread_mutex_lock(&s->lock);
    if (--s->plans == 0) pthread_cond_broadcast(&s->plans_done);
    pthread_mutex_unlock(&s->lock);
}

/* The plan reads Marathon: it runs on its own thread so that no HTTP server thread (which
 * also serve the registry's webhook) ever waits for Marathon. */
/* A plan's registry questions (and a reconcile preview) give up when the server stops. */
static int plan_abandoned(void *arg)
{
    struct server *s = arg;
    return atomic_load(&s->closed);
}

static void *plan_main(void *arg)
{
    struct req *rq = arg;
    struct server *s = rq->s;
    registry_abandon_when(plan_abandoned, s);
    int st = rq->kind == PLAN_APPS ? deployer_apps_json(s->d, &rq->body)
             : rq->kind == PLAN_RECONCILE
                 ? deployer_reconcile_preview_json(s->d, &rq->body)
                 : deployer_plan_json(s->d, rq->image[0] ? rq->image : NULL, &rq->body);
    atomic_store(&rq->plan_status, st); /* publishes rq->body to the server thread */
    MHD_resume_connection(rq->c);       /* from here on rq belongs to the server thread */
    plan_done(s);
    return NULL;
}

/* First call of GET /v1/plan, /v1/apps or /v1/reconcile: suspends the connection and starts
 * the thread that reads Marathon (and, for reconcile, the registries). */
static enum MHD_Result start_plan(struct server *s, struct MHD_Connection *c, void **con_cls,
                                  enum plan_kind kind)
{
    if (!s->d) return respond_error(c, 503, "no --marathon-url configured", NULL, NULL);
    pthread_mutex_lock(&s->lock);
    int closing = s->closing, busy = s->plans >= MAX_PLANS;
    if (!closing && !busy) s->plans++;
    pthread_mutex_unlock(&s->lock);
    if (closing) return respond_error(c, 503, "autodeployd is stopping", NULL, NULL);
    if (busy)
        return respond_error(c, 429, "plans are being computed; retry in a moment", "Retry-After",
                             "1");
    struct req *rq = calloc(1, sizeof *rq);
    pthread_t t;
    pthread_attr_t attr;
    if (!rq) goto fail;
    const char *image = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "image");
    snprintf(rq->image, sizeof rq->image, "%s", image ? image : "");
    buf_init(&rq->body, 16 * 1024 * 1024);
    atomic_init(&rq->plan_status, 0);
    rq->is_plan = 1;
    rq->kind = kind;
    rq->s = s;
    rq->c = c;
    *con_cls = rq;
    conn_set_suspended(s, c, 1);
    MHD_suspend_connection(c);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, plan_main, rq);
    pthread_attr_destroy(&attr);
    if (rc == 0) return MHD_YES;
    MHD_resume_connection(c);
    conn_set_suspended(s, c, 0);
    buf_adds(&rq->body, "{\"error\":\"cannot start the plan\"}");
    atomic_store(&rq->plan_status, 500); /* answered on resume */
    plan_done(s);
    return MHD_YES;
fail:
    plan_done(s);
    return MHD_NO;
}

/* A later call of a request with a body: a chunk of it, or its end (then it is answered). */
static enum MHD_Result on_body(struct server *s, struct MHD_Connection *c, const char *url,
                               const char *method, const char *upload_data,
                               size_t *upload_data_size, struct req *rq)
{
    if (*upload_data_size) {
        if (buf_add(&rq->body, upload_data, *upload_data_size) < 0) {
            /* Only a chunked body gets here (a declared length was checked first). MHD
             * cannot answer in the middle of an upload, so the connection is closed. */
            if (rq->is_approval) {
                log_debug("approval request refused: chunked body over the size limit", "path", url,
                          NULL);
                return MHD_NO;
            }
            log_warn("webhook refused: chunked body over the size limit", NULL);
            count_webhook(413);
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->is_approval) return serve_approval(s, c, url, method, rq);
    if (rq->src) return source_finish(c, rq);
    struct buf resp;
    buf_init(&resp, 64 * 1024);
    int status = webhook_handle(s->q, rq->body.data, rq->body.len, &resp);
    count_webhook(status);
    enum MHD_Result ret =
        respond(c, status, "application/json", &resp, status == 503 ? "Retry-After" : NULL, "2");
    buf_free(&resp);
    return ret;
}

/* The first call of a request outside the route table: refused from another site's page, or
 * another registry's webhook, or an approval decision (their bodies are read next). 1 when it
 * took the request (*ret is the answer), 0 when the route table decides. */
static int take_early(struct server *s, struct MHD_Connection *c, const char *url,
                      const char *method, void **con_cls, enum MHD_Result *ret)
{
    /* No action is taken from another site's page: before any route, approvals included. */
    if (strcmp(method, "GET") && strcmp(method, "HEAD") && cross_site(c)) {
        log_warn("request refused: sent from another site's page", "path", url, NULL);
        if (strcmp(url, routes[0].path) == 0) count_webhook(403);
        *ret = respond_error(c, 403, "cross-site request refused", NULL, NULL);
        return 1;
    }
    const char *secret = NULL;
    const struct source *src = source_of(url, &secret);
    if (src && strcmp(method, "POST") != 0 && source_secret(config_live(), src)) {
        count_webhook(405);
        *ret = respond_error(c, 405, "method not allowed; use POST", "Allow", "POST");
        return 1;
    }
    if (src) {
        if (webhook_headers(c, src, secret, ret)) return 1;
        struct req *rq = calloc(1, sizeof *rq);
        *ret = rq ? MHD_YES : MHD_NO;
        if (!rq) return 1;
        buf_init(&rq->body, config_live()->max_body_bytes);
        rq->src = src;
        rq->s = s;
        *con_cls = rq;
        return 1;
    }

    if (approvals_http_path(url)) { /* its body is read, then approvals_http.h answers */
        /* A click or a decision is a few KiB: a larger declared body is answered at once (it
         * is nobody's webhook: not counted or logged as one). */
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > APPROVAL_BODY_MAX) {
            *ret = respond_error(c, 413, "body over the limit of 65536 bytes", NULL, NULL);
            return 1;
        }
        struct req *rq = calloc(1, sizeof *rq);
        *ret = rq ? MHD_YES : MHD_NO;
        if (!rq) return 1;
        buf_init(&rq->body, APPROVAL_BODY_MAX);
        rq->is_approval = 1;
        *con_cls = rq;
        return 1;
    }
    return 0;
}

/* The first call of a request the route table answers (or whose webhook body comes next). */
static enum MHD_Result route(struct server *s, struct MHD_Connection *c, const char *url,
                             const char *method, void **con_cls)
{
    enum route r = R_NONE;
    int path_known = 0;
    const char *allow = NULL;
    int is_head = strcmp(method, "HEAD") == 0;
    if (ui_owns_path(url)) return serve_ui(c, url, method);
    if (is_read_view(url, method) && !read_ok(c)) {
        /* Debug only: a console left open without its token asks every few seconds. */
        log_debug("read refused: missing or wrong bearer token", "path", url, NULL);
        return respond_error(c, 401,
                             "missing or invalid bearer token (--ui-token or --admin-token)",
                             "WWW-Authenticate", "Bearer realm=\"autodeploy\"");
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].path) != 0) continue;
        path_known = 1;
        allow = routes[i].method;
        if (strcmp(method, routes[i].method) == 0 ||
            (is_head && strcmp(routes[i].method, "GET") == 0))
            r = routes[i].route;
    }
    if (!path_known) return respond_error(c, 404, "not found", NULL, NULL);
    if (r == R_NONE) {
        char msg[96];
        snprintf(msg, sizeof msg, "method %.16s not allowed; use %s", method, allow);
        if (strcmp(url, routes[0].path) == 0) count_webhook(405);
        return respond_error(c, 405, msg, "Allow", allow);
    }
    if (r == R_RECONCILE_PLAN) {
        const char *dry = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "dry_run");
        if (dry && strcmp(dry, "1") && strcmp(dry, "true"))
            return respond_error(c, 400,
                                 "GET /v1/reconcile only previews; POST /v1/reconcile runs a cycle",
                                 NULL, NULL);
    }
    if (r == R_PLAN || r == R_APPS || r == R_RECONCILE_PLAN)
        return start_plan(s, c, con_cls,
                          r == R_APPS   ? PLAN_APPS
                          : r == R_PLAN ? PLAN_IMAGE
                                        : PLAN_RECONCILE);
    if (r != R_WEBHOOK) return serve_small(s, c, r);

    enum MHD_Result ret = MHD_YES;
    if (webhook_headers(c, NULL, NULL, &ret)) return ret;
    struct req *rq = calloc(1, sizeof *rq);
    if (!rq) return MHD_NO;
    buf_init(&rq->body, config_live()->max_body_bytes);
    *con_cls = rq;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct server *s = cls;
    struct req *rq = *con_cls;

    if (rq && rq->is_plan) { /* resumed: the plan thread is done */
        conn_set_suspended(s, c, 0);
        int st = atomic_load(&rq->plan_status);
        return respond(c, st ? st : 500, "application/json", &rq->body, NULL, NULL);
    }
    if (rq) return on_body(s, c, url, method, upload_data, upload_data_size, rq);
    enum MHD_Result ret;
    if (take_early(s, c, url, method, con_cls, &ret)) return ret;
    return route(s, c, url, method, con_cls);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)toe;
    struct conn *k = conn_of(c);
    if (k) /* the next request on this connection has its own deadline (the reaper reads it
            * under the list lock, which keeps k alive; no need to take that lock here) */
        atomic_store(&k->since_ms, follower_now_ms());
    struct req *rq = *con_cls;
    if (!rq) return;
    buf_free(&rq->body);
    free(rq);
    *con_cls = NULL;
}

/* libmicrohttpd's own messages. A flood of refused connections (connection or per-address
 * limit) would write a line each: at most 10 lines per 10 s, then how many were left out. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int64_t window;
    static unsigned long lines, dropped;
    int64_t now = follower_now_ms();
    char left_out[24] = "";
    pthread_mutex_lock(&mu);
    if (now - window >= 10000) {
        if (dropped) snprintf(left_out, sizeof left_out, "%lu", dropped);
        window = now;
        lines = dropped = 0;
    }
    int show = lines < 10;
    if (show)
        lines++;
    else
        dropped++;
    pthread_mutex_unlock(&mu);
    if (left_out[0])
        log_warn("http server: messages left out in the last 10 s", "count", left_out, NULL);
    if (!show) return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    log_warn("http server", "detail", msg, NULL);
}

static void stop_reaper(struct server *s)
{
    if (s->reaper_started) {
        pthread_mutex_lock(&s->lock);
        s->stopping = 1;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->reaper, NULL);
        s->reaper_started = 0;
    }
}

struct server *server_start(const struct config *cfg, struct pushq *q, struct deployer *d,
                            char *err, size_t errlen)
{
    char host[128], port_s[8];
    int port;
    struct addrinfo hints = {0}, *ai = NULL;
    struct server *s = NULL;

    if (config_split_hostport(cfg->listen, host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "invalid --listen \"%s\"", cfg->listen);
        return NULL;
    }
    snprintf(port_s, sizeof port_s, "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port_s, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "invalid --listen \"%s\": %s", cfg->listen, gai_strerror(gai));
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (!s) goto fail;
    atomic_init(&s->closed, 0);
    s->q = q;
    s->d = d;
    s->timeout_ms = cfg->http_timeout_ms;
    s->started_ms = follower_now_ms();
    pthread_mutex_init(&s->lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->wake, &ca);
        pthread_cond_init(&s->plans_done, &ca);
        pthread_condattr_destroy(&ca);
    }
    metrics_declare("autodeploy_webhook_requests_total", "counter",
                    "Webhook requests answered, by HTTP status code.");
    metrics_declare("autodeploy_http_request_timeouts_total", "counter",
                    "Connections closed because their request did not arrive in full within "
                    "--http-timeout (slow or stalled clients).");
    metrics_add("autodeploy_http_request_timeouts_total", NULL, NULL, 0);
    s->timeouts = metrics_counter("autodeploy_http_request_timeouts_total", NULL, NULL);
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        snprintf(err, errlen, "cannot start a thread");
        goto fail;
    }
    s->reaper_started = 1;
    webhook_metrics_declare();

    unsigned int flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES) flags |= MHD_USE_EPOLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)cfg->http_threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)((cfg->http_timeout_ms + 999) / 1000), MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)512, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)cfg->max_conns_per_ip, MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, errlen, "cannot listen on %s (address in use or not available)", cfg->listen);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? (int)info->port : port;
    freeaddrinfo(ai);
    return s;
fail:
    freeaddrinfo(ai);
    if (s) {
        stop_reaper(s);
        pthread_cond_destroy(&s->plans_done);
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
    }
    free(s);
    return NULL;
}

int server_port(const struct server *s)
{
    return s->port;
}

void server_stop(struct server *s)
{
    if (!s) return;
    /* A suspended connection must be resumed before the daemon stops: let running plans end
     * (a Marathon request, bounded by --marathon-timeout; their registry questions and a
     * reconcile preview give up at once, plan_abandoned; so no deadline here). */
    pthread_mutex_lock(&s->lock);
    s->closing = 1;
    atomic_store(&s->closed, 1);
    while (s->plans > 0)
        pthread_cond_wait(&s->plans_done, &s->lock);
    pthread_mutex_unlock(&s->lock);
    if (s->mhd) MHD_stop_daemon(s->mhd); /* closes every connection: the list is empty */
    stop_reaper(s);
    pthread_cond_destroy(&s->plans_done);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
