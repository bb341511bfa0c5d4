/*
 * httpc.c: libcurl behind a small interface (see httpc.h). This is the only file that
 * includes curl. Easy handles live one per thread (a pthread key frees them when the thread
 * ends), which keeps connections alive between requests of the same worker without ever
 * sharing a handle.
 */
#include "httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

static pthread_key_t handle_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void handle_free(void *h)
{
    curl_easy_cleanup(h);
}

static void key_init(void)
{
    pthread_key_create(&handle_key, handle_free);
}

int httpc_global_init(void)
{
    pthread_once(&key_once, key_init);
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void httpc_global_cleanup(void)
{
    CURL *h = pthread_getspecific(handle_key);
    if (h) {
        curl_easy_cleanup(h);
        pthread_setspecific(handle_key, NULL);
    }
    curl_global_cleanup();
}

static CURL *thread_handle(void)
{
    pthread_once(&key_once, key_init);
    CURL *h = pthread_getspecific(handle_key);
    if (h) {
        curl_easy_reset(h);
        return h;
    }
    h = curl_easy_init();
    if (h) pthread_setspecific(handle_key, h);
    return h;
}

struct sink {
    struct httpc_resp *resp;
    void (*on_data)(const char *p, size_t n, void *ctx);
    void *ctx;
    const atomic_int *stop; /* set by another thread to end a stream */
    int overflow;
    int (*abandon)(void *ctx);
    void *abandon_ctx;
    int abandoned;
    void (*on_body)(const char *body, size_t len, void *ctx);
    void *on_body_ctx;
};

static size_t on_write(char *p, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    size_t n = size * nmemb;
    if (s->on_data && s->resp->status >= 200 && s->resp->status < 300) {
        s->on_data(p, n, s->ctx);
        return n;
    }
    if (buf_add(&s->resp->body, p, n) < 0)
        s->overflow = 1; /* the answer is cut: httpc_do fails with "answer too large" */
    else if (s->on_body && !s->overflow && s->resp->status >= 200 && s->resp->status < 300)
        s->on_body(s->resp->body.data, s->resp->body.len, s->on_body_ctx);
    return n;
}

/* Copies header `name`'s value into out when line is that header. A value that does not fit
 * is not kept shortened: out becomes "" and *cut is set. */
static void header_value(const char *line, size_t n, const char *name, char *out, size_t outlen,
                         int *cut)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':') return;
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t len = (size_t)(end - v);
    if (len >= outlen) {
        *cut = 1;
        len = 0;
    }
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    size_t n = size * nmemb;
    if (n > 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or 100-continue): forget the previous headers. */
        long st = 0;
        const char *sp = memchr(p, ' ', n);
        if (sp) st = strtol(sp + 1, NULL, 10);
        s->resp->status = st;
        struct httpc_resp *r = s->resp;
        r->deployment_id[0] = r->retry_after[0] = r->content_type[0] = '\0';
        r->www_authenticate[0] = r->docker_content_digest[0] = r->link[0] = '\0';
        r->ratelimit_remaining[0] = '\0';
        r->header_cut = 0;
        return n;
    }
    static const struct {
        const char *name;
        size_t off, size;
    } wanted[] = {
#define H(name, field)                                                                             \
    {name, offsetof(struct httpc_resp, field), sizeof((struct httpc_resp *)0)->field}
        H("Marathon-Deployment-Id", deployment_id),
        H("Retry-After", retry_after),
        H("Content-Type", content_type),
        H("WWW-Authenticate", www_authenticate),
        H("Docker-Content-Digest", docker_content_digest),
        H("Link", link),
        H("RateLimit-Remaining", ratelimit_remaining),
#undef H
    };
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
        header_value(p, n, wanted[i].name, (char *)s->resp + wanted[i].off, wanted[i].size,
                     &s->resp->header_cut);
    return n;
}

static int stopped(const struct sink *s)
{
    return s->stop && atomic_load(s->stop);
}

static int on_progress(void *userdata, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    struct sink *s = userdata;
    if (stopped(s)) return 1;
    if (s->abandon && s->abandon(s->abandon_ctx)) {
        s->abandoned = 1;
        return 1;
    }
    return 0;
}

static int perform(const struct httpc_req *req, struct httpc_resp *resp, struct sink *s,
                   int streaming)
{
    memset(resp, 0, sizeof *resp);
    buf_init(&resp->body, req->max_response ? req->max_response : 4 * 1024 * 1024);
    CURL *h = thread_handle();
    if (!h) {
        snprintf(resp->err, sizeof resp->err, "cannot create a curl handle");
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    char line[512];
    const char *accept = req->accept ? req->accept : "application/json";
    snprintf(line, sizeof line, "Accept: %s", accept);
    hdrs = curl_slist_append(hdrs, line);
    if (req->body) {
        snprintf(line, sizeof line, "Content-Type: %s",
                 req->content_type ? req->content_type : "application/json");
        hdrs = curl_slist_append(hdrs, line);
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (req->auth_header) hdrs = curl_slist_append(hdrs, req->auth_header);

    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "autodeployd/" AUTODEPLOY_VERSION);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms ? req->connect_timeout_ms : 5000L);
    if (!streaming)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms ? req->timeout_ms : 30000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
    if (req->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, req->ca_file);
    if (req->userpwd) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERPWD, req->userpwd);
    }
    if (req->follow_redirects) {
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(h, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
        /* The leader is another host of the same cluster and needs the same credentials;
         * HTTPC_FOLLOW_KEEP_AUTH_HOME (a registry's blob sent to its storage) keeps them home. */
        if (req->follow_redirects != HTTPC_FOLLOW_KEEP_AUTH_HOME)
            curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 1L);
    }
    const char *m = req->method ? req->method : "GET";
    if (!strcmp(m, "GET")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (!strcmp(m, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
    }
    if (req->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    }
    s->abandon = req->abandon;
    s->abandon_ctx = req->abandon_ctx;
    s->on_body = streaming ? NULL : req->on_body;
    s->on_body_ctx = req->on_body_ctx;
    if (s->on_body) s->on_body(NULL, 0, s->on_body_ctx);
    if (streaming || req->abandon) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
    }
    if (streaming) {
        /* A stream that stays silent past two heartbeats is dead even if TCP says otherwise. */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
    }

    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    curl_slist_free_all(hdrs);
    /* Reset drops the pointers to this call's buffers; the connection cache survives. */
    curl_easy_reset(h);
    if (rc == CURLE_ABORTED_BY_CALLBACK && stopped(s)) return 0;
    if (rc == CURLE_ABORTED_BY_CALLBACK && s->abandoned) {
        snprintf(resp->err, sizeof resp->err, "abandoned");
        resp->status = 0;
        return -1;
    }
    if (rc != CURLE_OK) {
        snprintf(resp->err, sizeof resp->err, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        resp->tls_refused = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CERTPROBLEM ||
                            rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_ISSUER_ERROR ||
                            rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
        if (streaming && status >= 200 && status < 300) return -1;
        if (!streaming) resp->status = status ? status : 0;
        return -1;
    }
    return 0;
}

int httpc_do(const struct httpc_req *req, struct httpc_resp *resp)
{
    struct sink s = {.resp = resp};
    int rc = perform(req, resp, &s, 0);
    if (rc == 0 && s.overflow) {
        /* What was kept would read as broken JSON: say what happened instead. */
        resp->body_cut = 1;
        snprintf(resp->err, sizeof resp->err, "answer too large (over %zu bytes)", resp->body.max);
        return -1;
    }
    return rc;
}

int httpc_stream(const struct httpc_req *req, void (*on_data)(const char *p, size_t n, void *ctx),
                 void *ctx, const atomic_int *stop, struct httpc_resp *resp)
{
    struct sink s = {.resp = resp, .on_data = on_data, .ctx = ctx, .stop = stop};
    return perform(req, resp, &s, 1);
}

void httpc_resp_free(struct httpc_resp *resp)
{
    buf_free(&resp->body);
}

int httpc_url_escape(const char *s, struct buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            if (buf_add(out, p, 1) < 0) return -1;
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            if (buf_add(out, e, 3) < 0) return -1;
        }
    }
    return 0;
}
