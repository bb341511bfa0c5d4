/*
 * marathon.c: the Marathon REST client (see marathon.h).
 */
#include "marathon.h"

#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_URLS 8

struct marathon {
    char *urls[MAX_URLS];
    int n_urls;
    int current; /* index of the URL that answered last; read and written under mu */
    pthread_mutex_t mu;
    char *userpwd;
    char *auth_header;
    char *ca_file;
    long connect_timeout_ms, timeout_ms;
    int reachable; /* -1 unknown, 0 no, 1 yes; under mu */
    char last_error[256];
    long long last_warned_ms; /* when "unreachable" was last logged at warn level */
};

void marathon_metrics_declare(void)
{
    metrics_declare("autodeploy_marathon_errors_total", "counter",
                    "Marathon requests that failed, by HTTP status (0: no answer).");
}

struct marathon *marathon_new(const struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->marathon_url || !*cfg->marathon_url) {
        snprintf(err, errlen, "no --marathon-url configured");
        return NULL;
    }
    struct marathon *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    char *copy = strdup(cfg->marathon_url), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '/'))
            tok[--n] = '\0';
        if (!n) continue;
        if (m->n_urls == MAX_URLS) {
            snprintf(err, errlen, "invalid --marathon-url: at most %d URLs", MAX_URLS);
            free(copy);
            marathon_free(m);
            return NULL;
        }
        m->urls[m->n_urls++] = strdup(tok);
    }
    free(copy);
    if (m->n_urls == 0) {
        snprintf(err, errlen, "invalid --marathon-url: no URL given");
        marathon_free(m);
        return NULL;
    }
    if (cfg->marathon_user || cfg->marathon_password) {
        size_t n = strlen(cfg->marathon_user ? cfg->marathon_user : "") +
                   strlen(cfg->marathon_password ? cfg->marathon_password : "") + 2;
        m->userpwd = malloc(n);
        if (m->userpwd)
            snprintf(m->userpwd, n, "%s:%s", cfg->marathon_user ? cfg->marathon_user : "",
                     cfg->marathon_password ? cfg->marathon_password : "");
    }
    if (cfg->marathon_token) {
        size_t n = strlen(cfg->marathon_token) + 32;
        m->auth_header = malloc(n);
        if (m->auth_header)
            snprintf(m->auth_header, n, "Authorization: token=%s", cfg->marathon_token);
    }
    if (cfg->marathon_ca_file) m->ca_file = strdup(cfg->marathon_ca_file);
    m->reachable = -1;
    m->connect_timeout_ms = cfg->marathon_connect_timeout_ms;
    m->timeout_ms = cfg->marathon_timeout_ms;
    return m;
}

void marathon_free(struct marathon *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_urls; i++)
        free(m->urls[i]);
    if (m->userpwd) memset(m->userpwd, 0, strlen(m->userpwd));
    if (m->auth_header) memset(m->auth_header, 0, strlen(m->auth_header));
    free(m->userpwd);
    free(m->auth_header);
    free(m->ca_file);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

const char *marathon_base_url(struct marathon *m)
{
    pthread_mutex_lock(&m->mu);
    const char *u = m->urls[m->current];
    pthread_mutex_unlock(&m->mu);
    return u;
}

static void count_error(long status)
{
    char s[8];
    snprintf(s, sizeof s, "%d", (int)(status % 1000));
    metrics_add("autodeploy_marathon_errors_total", "status", s, 1);
}

static void set_reachable(struct marathon *m, int ok, const char *why)
{
    pthread_mutex_lock(&m->mu);
    m->reachable = ok;
    if (!ok) snprintf(m->last_error, sizeof m->last_error, "%s", why);
    pthread_mutex_unlock(&m->mu);
}

int marathon_reachable(struct marathon *m, char *why, size_t len)
{
    pthread_mutex_lock(&m->mu);
    int r = m->reachable;
    snprintf(why, len, "%s", r == 0 ? m->last_error : "");
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int request(struct marathon *m, const char *method, const char *path, const char *body,
                   struct httpc_resp *resp, int streaming,
                   void (*on_data)(const char *, size_t, void *), void *ctx, const atomic_int *stop)
{
    pthread_mutex_lock(&m->mu);
    int start = m->current;
    pthread_mutex_unlock(&m->mu);
    int rc = -1;
    for (int k = 0; k < m->n_urls; k++) {
        int i = (start + k) % m->n_urls;
        struct buf url;
        buf_init(&url, 8192);
        buf_adds(&url, m->urls[i]);
        buf_adds(&url, path);
        struct httpc_req req = {
            .method = method,
            .url = url.data,
            .body = body,
            .body_len = body ? strlen(body) : 0,
            .accept = streaming ? "text/event-stream" : NULL,
            .userpwd = m->userpwd,
            .auth_header = m->auth_header,
            .ca_file = m->ca_file,
            .connect_timeout_ms = m->connect_timeout_ms,
            .timeout_ms = m->timeout_ms,
            .follow_redirects = 1,
            .max_response = 64 * 1024 * 1024,
            .on_body = streaming ? NULL : on_data,
            .on_body_ctx = ctx,
        };
        if (k > 0) httpc_resp_free(resp);
        rc = streaming ? httpc_stream(&req, on_data, ctx, stop, resp) : httpc_do(&req, resp);
        buf_free(&url);
        if (resp->status != 0) {
            pthread_mutex_lock(&m->mu);
            m->current = i;
            pthread_mutex_unlock(&m->mu);
            char why[64];
            snprintf(why, sizeof why, "HTTP %ld from Marathon", resp->status);
            set_reachable(m, resp->status < 500, why);
            if (resp->status >= 400) count_error(resp->status);
            return streaming || resp->body_cut ? rc : 0; /* a cut answer is no answer */
        }
        if (stop && atomic_load(stop)) return 0;
        count_error(0);
        /* Warn when Marathon becomes unreachable and then every 30 s, not at every retry. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        pthread_mutex_lock(&m->mu);
        int warn = m->reachable != 0 || now - m->last_warned_ms > 30000;
        if (warn) m->last_warned_ms = now;
        pthread_mutex_unlock(&m->mu);
        set_reachable(m, 0, resp->err);
        if (warn)
            log_warn("Marathon unreachable", "url", m->urls[i], "method", method, "path", path,
                     "error", resp->err, NULL);
        else
            log_debug("Marathon unreachable", "url", m->urls[i], "method", method, "path", path,
                      "error", resp->err, NULL);
    }
    return rc < 0 ? -1 : rc;
}

int marathon_request(struct marathon *m, const char *method, const char *path, const char *body,
                     struct httpc_resp *resp)
{
    return request(m, method, path, body, resp, 0, NULL, NULL, NULL);
}

int marathon_get_progressive(struct marathon *m, const char *path,
                             void (*on_body)(const char *body, size_t len, void *ctx), void *ctx,
                             struct httpc_resp *resp)
{
    return request(m, "GET", path, NULL, resp, 0, on_body, ctx, NULL);
}

int marathon_stream(struct marathon *m, const char *path,
                    void (*on_data)(const char *p, size_t n, void *ctx), void *ctx,
                    const atomic_int *stop, struct httpc_resp *resp)
{
    return request(m, "GET", path, NULL, resp, 1, on_data, ctx, stop);
}

int marathon_label_query(const char *label, struct buf *out)
{
    /* Selector grammar: [-A-Za-z0-9_.] stand as they are, anything else is backslash-escaped;
     * then the whole selector is URL-encoded. */
    struct buf sel;
    buf_init(&sel, 4096);
    int rc = 0;
    for (const char *p = label; *p && rc == 0; p++) {
        char c = *p;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
        if (!plain) rc |= buf_add(&sel, "\\", 1);
        rc |= buf_add(&sel, p, 1);
    }
    rc |= buf_adds(out, "/v2/apps?label=");
    rc |= httpc_url_escape(sel.data ? sel.data : "", out);
    buf_free(&sel);
    return rc ? -1 : 0;
}

int marathon_app_path(const char *app_id, struct buf *out)
{
    int rc = buf_adds(out, "/v2/apps");
    if (*app_id != '/') rc |= buf_adds(out, "/");
    /* Escape each segment, keep the slashes (Marathon takes the real path). */
    const char *p = app_id;
    while (*p && rc == 0) {
        if (*p == '/') {
            rc |= buf_add(out, "/", 1);
            p++;
            continue;
        }
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char seg[512];
        if (n >= sizeof seg) return -1;
        memcpy(seg, p, n);
        seg[n] = '\0';
        rc |= httpc_url_escape(seg, out);
        p += n;
    }
    return rc ? -1 : 0;
}

void marathon_error_text(const struct httpc_resp *resp, char *out, size_t len)
{
    if (resp->status == 0) {
        snprintf(out, len, "Marathon unreachable: %s", resp->err);
        return;
    }
    if (resp->body_cut) {
        snprintf(out, len, "HTTP %ld: Marathon's %s", resp->status, resp->err);
        return;
    }
    cJSON *j = resp->body.data ? cJSON_Parse(resp->body.data) : NULL;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (cJSON_IsString(msg)) {
        size_t o = (size_t)snprintf(out, len, "HTTP %ld: %s", resp->status, msg->valuestring);
        const cJSON *details = cJSON_GetObjectItemCaseSensitive(j, "details");
        const cJSON *d;
        cJSON_ArrayForEach(d, details)
        {
            if (o >= len) break;
            const cJSON *path = cJSON_GetObjectItemCaseSensitive(d, "path");
            const cJSON *errors = cJSON_GetObjectItemCaseSensitive(d, "errors");
            const cJSON *e0 = cJSON_GetArrayItem(errors, 0);
            o += (size_t)snprintf(out + o, len - o, "; %s: %s",
                                  cJSON_IsString(path) ? path->valuestring : "?",
                                  cJSON_IsString(e0) ? e0->valuestring : "invalid");
        }
    } else {
        /* Not JSON (e.g. the HTML 401 page): the status says enough. */
        snprintf(out, len, "HTTP %ld", resp->status);
    }
    cJSON_Delete(j);
}
