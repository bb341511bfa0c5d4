/*
 * registry.c: the registry HTTP API V2 client (see registry.h). The parsing of what registries
 * send (challenges, Link headers, config.json, token answers, error bodies) is in regauth.c;
 * this file does the I/O through httpc.c.
 */
#include "registry.h"

#include "httpc.h"
#include "log.h"
#include "metrics.h"
#include "event.h"
#include "reference.h"
#include "regauth.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOKENS 64
#define PLAIN_HOST_MAX 256
#define ACCEPT_MANIFESTS                                                                           \
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "        \
    "application/vnd.docker.distribution.manifest.list.v2+json, "                                  \
    "application/vnd.docker.distribution.manifest.v2+json"

struct token {
    char key[REGAUTH_REALM_MAX + REGAUTH_SERVICE_MAX + REGAUTH_SCOPE_MAX + 8]; /* "" unused */
    char *value;                                                               /* wiped on free */
    int64_t expires_ms;                                                        /* monotonic */
};

struct registry {
    char *auth_json; /* the --registry-auth file, wiped on free */
    size_t auth_len;
    char *ca_file;
    char **insecure, **urls; /* NULL-terminated */
    long timeout_ms;
    pthread_mutex_t mu;             /* tokens, plain */
    char plain[16][PLAIN_HOST_MAX]; /* hosts found to speak plain http (plain_allowed only) */
    int n_plain;
    struct token tokens[TOKENS];
    int next_token;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The calling thread's reason to give up (registry_abandon_when). */
static _Thread_local int (*abandon_fn)(void *ctx);
static _Thread_local void *abandon_ctx;

void registry_abandon_when(int (*fn)(void *ctx), void *ctx)
{
    abandon_fn = fn;
    abandon_ctx = ctx;
}

int registry_abandoned(void)
{
    return abandon_fn && abandon_fn(abandon_ctx);
}

/* Sleeps ms, in steps of at most 100 ms; 0, or -1 when the thread's question was abandoned. */
static int nap_ms(long ms)
{
    while (ms > 0) {
        if (registry_abandoned()) return -1;
        long step = ms < 100 ? ms : 100;
        struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return registry_abandoned() ? -1 : 0;
}

const char *registry_result_name(enum registry_result res)
{
    static const char *const names[] = {"ok", "not found", "credentials refused", "unreachable",
                                        "error"};
    return (unsigned)res < sizeof names / sizeof names[0] ? names[res] : "error";
}

void registry_metrics_declare(void)
{
    metrics_declare("autodeploy_registry_requests_total", "counter",
                    "Questions to registries by result (ok, not found, credentials refused, "
                    "unreachable, error) and retries.");
    metrics_declare("autodeploy_registry_ratelimit_remaining", "gauge",
                    "The last RateLimit-Remaining a registry sent (Docker Hub's pull budget).");
}

/* ---------------------------------------------------------------- set-up */

/* A copy of n strings as a NULL-terminated array; NULL when out of memory. */
static char **strs_copy(const char *const *v, size_t n)
{
    char **c = calloc(n + 1, sizeof *c);
    for (size_t i = 0; c && i < n; i++)
        if (!(c[i] = strdup(v[i]))) {
            for (size_t k = 0; k < i; k++)
                free(c[k]);
            free(c);
            return NULL;
        }
    return c;
}

static void strs_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Reads the whole auth file (at most 1 MiB). 0, or -1 with err naming the file. */
static int read_auth(struct registry *r, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read --registry-auth %s", path);
        return -1;
    }
    r->auth_json = malloc(1 << 20);
    size_t n = r->auth_json ? fread(r->auth_json, 1, (1 << 20) - 1, f) : 0;
    int more = fgetc(f) != EOF;
    fclose(f);
    if (!r->auth_json || more) {
        snprintf(err, errlen, "--registry-auth %s is larger than 1 MiB", path);
        return -1;
    }
    r->auth_json[n] = '\0';
    r->auth_len = n;
    cJSON *j = cJSON_ParseWithLength(r->auth_json, n);
    int ok = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "auths"));
    cJSON_Delete(j);
    if (!ok) snprintf(err, errlen, "--registry-auth %s has no \"auths\" object", path);
    return ok ? 0 : -1;
}

struct registry *registry_new(const struct registry_opts *o, char *err, size_t errlen)
{
    struct registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    err[0] = '\0';
    pthread_mutex_init(&r->mu, NULL);
    r->timeout_ms = o->timeout_ms ? o->timeout_ms : 30000;
    r->insecure = strs_copy(o->insecure, o->n_insecure);
    r->urls = strs_copy(o->urls, o->n_urls);
    if ((o->auth_file && read_auth(r, o->auth_file, err, errlen) < 0) || !r->insecure || !r->urls ||
        (o->ca_file && !(r->ca_file = strdup(o->ca_file)))) {
        if (!err[0]) snprintf(err, errlen, "out of memory");
        registry_free(r);
        return NULL;
    }
    registry_metrics_declare();
    return r;
}

void registry_free(struct registry *r)
{
    if (!r) return;
    for (int i = 0; i < TOKENS; i++)
        regauth_secret_free(r->tokens[i].value);
    if (r->auth_json) OPENSSL_cleanse(r->auth_json, r->auth_len);
    free(r->auth_json);
    free(r->ca_file);
    strs_free(r->insecure);
    strs_free(r->urls);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---------------------------------------------------------------- where */

static int is_docker_hub(const char *host)
{
    return !host || !*host || !strcmp(host, "docker.io") || !strcmp(host, "index.docker.io") ||
           !strcmp(host, "registry-1.docker.io");
}

/* 1 when host may be reached over plain http: named by --insecure-registry, or loopback. As
 * dockerd does for such registries, https is tried first and http used when it fails. */
static int plain_allowed(const struct registry *r, const char *host)
{
    for (size_t i = 0; r->insecure[i]; i++)
        if (!strcmp(r->insecure[i], host)) return 1;
    /* dockerd allows loopback registries over plain HTTP; so does autodeployd: localhost,
     * 127.x.y.z and [::1], each with an optional port, and nothing that merely starts so. */
    size_t n = strcspn(host, host[0] == '[' ? "]" : ":");
    if (host[0] == '[') n++;
    const char *port = host + n;
    if (*port && (*port != ':' || !port[1] || strspn(port + 1, "0123456789") != strlen(port + 1)))
        return 0;
    if (n == 9 && !strncmp(host, "localhost", 9)) return 1;
    if (n == 5 && !strncmp(host, "[::1]", 5)) return 1;
    return n > 4 && !strncmp(host, "127.", 4) && strspn(host, "0123456789.") == n;
}

/* 1 when host answered plain http after https failed. */
static int plain_learned(const struct registry *r, const char *host)
{
    struct registry *w = (struct registry *)r; /* the lock only */
    int found = 0;
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < r->n_plain && !found; i++)
        found = !strcmp(r->plain[i], host);
    pthread_mutex_unlock(&w->mu);
    return found;
}

static void plain_learn(struct registry *r, const char *host)
{
    pthread_mutex_lock(&r->mu);
    if (r->n_plain < 16 && strlen(host) < PLAIN_HOST_MAX)
        snprintf(r->plain[r->n_plain++], PLAIN_HOST_MAX, "%s", host);
    pthread_mutex_unlock(&r->mu);
}

int registry_base_url(const struct registry *r, const char *host, char *out, size_t len)
{
    size_t hl = host ? strlen(host) : 0;
    for (size_t i = 0; hl && r->urls[i]; i++) {
        const char *m = r->urls[i];
        if (!strncmp(m, host, hl) && m[hl] == '=') {
            int n = snprintf(out, len, "%s", m + hl + 1);
            while (n > 0 && out[n - 1] == '/')
                out[--n] = '\0';
            return n < 0 || (size_t)n >= len ? -1 : 0;
        }
    }
    int n = is_docker_hub(host)
                ? snprintf(out, len, "https://registry-1.docker.io")
                : snprintf(out, len, "%s://%s", plain_learned(r, host) ? "http" : "https", host);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The repository as the API names it: Docker Hub's official images live under library/. */
static void api_repository(const char *host, const char *repository, char *out, size_t len)
{
    snprintf(out, len, "%s%s", is_docker_hub(host) && !strchr(repository, '/') ? "library/" : "",
             repository);
}

/* ---------------------------------------------------------------- tokens */

/* A cached token for key, copied into out ("" when none is valid). */
static void token_get(struct registry *r, const char *key, char *out, size_t len)
{
    out[0] = '\0';
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < TOKENS; i++) {
        struct token *t = &r->tokens[i];
        if (t->value && !strcmp(t->key, key) && now_ms() < t->expires_ms && strlen(t->value) < len)
            memcpy(out, t->value, strlen(t->value) + 1);
    }
    pthread_mutex_unlock(&r->mu);
}

/* Keeps token (taken over) for key until expires_in seconds from now, less a margin. */
static void token_put(struct registry *r, const char *key, char *token, long expires_in)
{
    pthread_mutex_lock(&r->mu);
    struct token *t = &r->tokens[r->next_token];
    r->next_token = (r->next_token + 1) % TOKENS;
    for (int i = 0; i < TOKENS; i++)
        if (r->tokens[i].value && !strcmp(r->tokens[i].key, key)) t = &r->tokens[i];
    regauth_secret_free(t->value);
    snprintf(t->key, sizeof t->key, "%s", key);
    t->value = token;
    t->expires_ms = now_ms() + (expires_in > 10 ? expires_in - 5 : expires_in) * 1000;
    pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------- requests */

/* One question: method on url, with the scope's credentials. */
struct ask {
    struct registry *r;
    const char *host;
    const char *scope; /* "repository:<name>:pull" */
    const char *method;
    const char *accept;
    int follow; /* blobs: registries send them from storage elsewhere (S3, a CDN) */
    int64_t deadline;
    char err[512];
};

/* What is left of the question's bound for one request (at least 100 ms, so that the last
 * try is a real one). */
static long time_left(const struct ask *a)
{
    int64_t left = a->deadline - now_ms();
    return left < 100 ? 100 : (long)left;
}

/* Sends one request with auth_header (NULL: none) or Basic userpwd. */
static int send_one(struct ask *a, const char *url, const char *auth_header, const char *userpwd,
                    struct httpc_resp *resp)
{
    struct httpc_req req = {.method = a->method,
                            .url = url,
                            .accept = a->accept,
                            .auth_header = auth_header,
                            .userpwd = userpwd,
                            .ca_file = a->r->ca_file,
                            .timeout_ms = time_left(a),
                            .follow_redirects = a->follow ? HTTPC_FOLLOW_KEEP_AUTH_HOME : 0,
                            .max_response = 4 * 1024 * 1024,
                            .abandon = abandon_fn,
                            .abandon_ctx = abandon_ctx};
    return httpc_do(&req, resp);
}

/* The credentials for the ask's host: "user:password" in out, or the identity token (an
 * OAuth2 refresh token) in idt; "" when none. */
static void credentials(struct ask *a, char *out, size_t len, char *idt, size_t idtlen)
{
    out[0] = idt[0] = '\0';
    if (!a->r->auth_json) return;
    struct regauth_cred c;
    char e[256];
    const char *host = is_docker_hub(a->host) ? "docker.io" : a->host;
    if (regauth_config_lookup(a->r->auth_json, a->r->auth_len, host, &c, e, sizeof e) == 1) {
        if (c.identitytoken[0] && strlen(c.identitytoken) < idtlen)
            snprintf(idt, idtlen, "%s", c.identitytoken);
        else if (c.username[0] && strlen(c.username) + strlen(c.password) + 2 <= len)
            snprintf(out, len, "%s:%s", c.username, c.password);
    }
    regauth_cred_wipe(&c);
}

/* The OAuth2 form exchanging an identity token for an access token (as the Docker CLI does). */
static int refresh_form(const struct regauth_challenge *ch, const char *scope, const char *idt,
                        struct buf *form)
{
    int rc = buf_adds(form, "grant_type=refresh_token&client_id=autodeployd&service=");
    rc |= httpc_url_escape(ch->service, form);
    rc |= buf_adds(form, "&scope=");
    rc |= httpc_url_escape(scope, form);
    rc |= buf_adds(form, "&refresh_token=");
    rc |= httpc_url_escape(idt, form);
    return rc;
}

/* Asks the token service: GET with Basic credentials (or none), or with an identity token the
 * OAuth2 POST. */
static void ask_token(struct ask *a, const struct regauth_challenge *ch, const char *scope,
                      const char *url, struct httpc_resp *resp)
{
    char userpwd[REGAUTH_USER_MAX + REGAUTH_SECRET_MAX + 2], idt[REGAUTH_SECRET_MAX];
    credentials(a, userpwd, sizeof userpwd, idt, sizeof idt);
    char base[512];
    if (strncmp(ch->realm, "https://", 8) != 0 &&
        (registry_base_url(a->r, a->host, base, sizeof base) < 0 || strncmp(base, "http://", 7))) {
        /* A plain-http realm for a registry we reach over https: the credentials would travel
         * in clear to whatever host the challenge named. Ask anonymously instead. */
        OPENSSL_cleanse(userpwd, sizeof userpwd);
        OPENSSL_cleanse(idt, sizeof idt);
        userpwd[0] = idt[0] = '\0';
    }
    struct buf form;
    buf_init(&form, 3 * REGAUTH_SECRET_MAX + 4096);
    int post = idt[0] && refresh_form(ch, scope, idt, &form) == 0;
    struct httpc_req req = {.method = post ? "POST" : "GET",
                            .url = post ? ch->realm : url,
                            .body = post ? form.data : NULL,
                            .body_len = post ? form.len : 0,
                            .content_type = "application/x-www-form-urlencoded",
                            .userpwd = userpwd[0] ? userpwd : NULL,
                            .ca_file = a->r->ca_file,
                            .timeout_ms = time_left(a),
                            .max_response = 256 * 1024,
                            .abandon = abandon_fn,
                            .abandon_ctx = abandon_ctx};
    httpc_do(&req, resp);
    if (form.data) OPENSSL_cleanse(form.data, form.len);
    buf_free(&form);
    OPENSSL_cleanse(userpwd, sizeof userpwd);
    OPENSSL_cleanse(idt, sizeof idt);
}

/* Fetches a token for challenge ch; 0 with the Authorization header in hdr, or -1. */
static int fetch_token(struct ask *a, const struct regauth_challenge *ch, char *hdr, size_t len)
{
    char url[REGAUTH_URL_MAX], e[256];
    const char *scope = ch->scope[0] ? ch->scope : a->scope;
    if (regauth_token_url(ch->realm, ch->service, scope, url, sizeof url, e, sizeof e) < 0) {
        snprintf(a->err, sizeof a->err, "bad token challenge: %s", e);
        return -1;
    }
    struct httpc_resp resp;
    ask_token(a, ch, scope, url, &resp);
    char *token = NULL;
    long expires = 0;
    int rc = -1;
    if (resp.status == 200 &&
        regauth_parse_token(resp.body.data, resp.body.len, &token, &expires, e, sizeof e) == 0 &&
        (size_t)snprintf(hdr, len, "Authorization: Bearer %s", token) < len) {
        char key[sizeof((struct token *)0)->key];
        snprintf(key, sizeof key, "%s|%s", a->host, a->scope);
        token_put(a->r, key, token, expires);
        token = NULL;
        rc = 0;
    } else {
        snprintf(a->err, sizeof a->err, "the token service %.200s answered %.200s", ch->realm,
                 resp.status ? (resp.status == 401 || resp.status == 403 ? "401/403: credentials "
                                                                           "refused"
                                                                         : "an error")
                             : resp.err);
    }
    regauth_secret_free(token);
    httpc_resp_free(&resp);
    return rc;
}

/* Waits before a retry: Retry-After when the registry gave one (seconds), else backoff;
 * never past the deadline. 0, or -1 when no time is left. */
static int retry_wait(struct ask *a, const struct httpc_resp *resp, int attempt)
{
    long ms = 250L << (attempt < 5 ? attempt : 5);
    long ra = resp->retry_after[0] ? strtol(resp->retry_after, NULL, 10) : 0;
    if (ra > 3600) ra = 3600; /* past any bound of ours anyway; no overflow below */
    if (ra > 0) ms = ra * 1000;
    int64_t left = a->deadline - now_ms();
    if (left <= 0 || (ra > 0 && ms > left)) return -1;
    if (registry_abandoned()) return -1;
    metrics_add("autodeploy_registry_requests_total", "result", "retried", 1);
    return nap_ms(ms < left ? ms : (long)left);
}

static void note_ratelimit(const struct ask *a, const struct httpc_resp *resp)
{
    if (resp->ratelimit_remaining[0])
        metrics_set("autodeploy_registry_ratelimit_remaining", "registry",
                    is_docker_hub(a->host) ? "docker.io" : a->host,
                    strtod(resp->ratelimit_remaining, NULL));
}

/* Answers a 401: finds the credentials the challenge asks for. 0 to retry, -1 to give up. */
static int authenticate(struct ask *a, const struct httpc_resp *resp, char *hdr, size_t hlen,
                        char *userpwd, size_t ulen)
{
    struct regauth_challenge ch;
    char e[256];
    if (regauth_parse_challenge(resp->www_authenticate, strlen(resp->www_authenticate), &ch, e,
                                sizeof e) < 0) {
        snprintf(a->err, sizeof a->err,
                 "the registry asks for credentials in a way not "
                 "understood: %s",
                 e);
        return -1;
    }
    if (ch.scheme == REGAUTH_BEARER) return fetch_token(a, &ch, hdr, hlen);
    char idt[REGAUTH_SECRET_MAX];
    credentials(a, userpwd, ulen, idt, sizeof idt);
    OPENSSL_cleanse(idt, sizeof idt);
    if (!userpwd[0])
        snprintf(a->err, sizeof a->err,
                 "the registry wants credentials and --registry-auth has "
                 "none for it");
    return userpwd[0] ? 0 : -1;
}

/* Asks url, authenticating and retrying as needed. */
static enum registry_result ask_url(struct ask *a, const char *url, struct httpc_resp *resp)
{
    char hdr[REGAUTH_TOKEN_MAX + 32] = "", key[sizeof((struct token *)0)->key];
    char userpwd[REGAUTH_USER_MAX + REGAUTH_SECRET_MAX + 2] = "";
    char token[REGAUTH_TOKEN_MAX], plainurl[REGAUTH_URL_MAX];
    snprintf(key, sizeof key, "%s|%s", a->host, a->scope);
    token_get(a->r, key, token, sizeof token);
    if (token[0]) snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", token);
    OPENSSL_cleanse(token, sizeof token);
    enum registry_result res = REGISTRY_ERROR;
    for (int attempt = 0, authed = 0;; attempt++) {
        send_one(a, url, hdr[0] ? hdr : NULL, userpwd[0] ? userpwd : NULL, resp);
        long st = resp->status;
        if (st == 0 && !registry_abandoned() && !strncmp(url, "https://", 8) &&
            plain_allowed(a->r, a->host) && !resp->tls_refused &&
            !strstr(resp->err, "certificate") && strlen(url) < REGAUTH_URL_MAX) {
            /* An insecure or loopback registry without TLS: from now on plain http. */
            memmove(plainurl, "http://", 7);
            snprintf(plainurl + 7, sizeof plainurl - 7, "%s", url + 8);
            url = plainurl;
            plain_learn(a->r, a->host);
            httpc_resp_free(resp);
            attempt--;
            continue;
        }
        note_ratelimit(a, resp);
        if (st == 401 && !authed++) {
            hdr[0] = '\0';
            if (authenticate(a, resp, hdr, sizeof hdr, userpwd, sizeof userpwd) == 0) {
                httpc_resp_free(resp);
                continue;
            }
            res = REGISTRY_AUTH;
        } else if (st == 401 || st == 403) {
            snprintf(a->err, sizeof a->err, "the registry refused the credentials (HTTP %ld)", st);
            res = REGISTRY_AUTH;
        } else if (st == 0 && resp->tls_refused) { /* a certificate does not heal by waiting */
            snprintf(a->err, sizeof a->err, "TLS refused: %s", resp->err);
            res = REGISTRY_ERROR;
        } else if ((st == 0 || st == 429 || st >= 500) && retry_wait(a, resp, attempt) == 0) {
            httpc_resp_free(resp);
            continue;
        } else if (st == 0 || st == 429 || st >= 500) {
            snprintf(a->err, sizeof a->err, "registry unreachable: %s",
                     st ? (st == 429 ? "HTTP 429 (rate limited)" : "HTTP 5xx") : resp->err);
            res = REGISTRY_UNREACHABLE;
        } else if (st >= 200 && st < 300) {
            res = REGISTRY_OK;
        } else {
            struct regauth_error re;
            char e[64];
            if (regauth_parse_errors(resp->body.data, resp->body.len, &re, e, sizeof e) < 0)
                snprintf(re.code, sizeof re.code, "HTTP %ld", st);
            snprintf(a->err, sizeof a->err, "the registry answered %ld %s", st, re.code);
            res = st == 404 ? REGISTRY_NOT_FOUND : REGISTRY_ERROR;
        }
        break;
    }
    OPENSSL_cleanse(hdr, sizeof hdr);
    OPENSSL_cleanse(userpwd, sizeof userpwd);
    metrics_add("autodeploy_registry_requests_total", "result", registry_result_name(res), 1);
    return res;
}

/* Builds base + "/v2/<repository>/<what>/<ref>" into url. */
static int api_url(struct ask *a, const char *repository, const char *what, const char *ref,
                   char *url, size_t len)
{
    char base[512], repo[REF_NAME_MAX + 16];
    if (registry_base_url(a->r, a->host, base, sizeof base) < 0) return -1;
    api_repository(a->host, repository, repo, sizeof repo);
    int n = snprintf(url, len, "%s/v2/%s/%s%s%s", base, repo, what, ref ? "/" : "", ref ? ref : "");
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void ask_init(struct ask *a, struct registry *r, const char *host, const char *repository,
                     char *scope, size_t scope_len, const char *method, const char *accept)
{
    memset(a, 0, sizeof *a);
    a->r = r;
    a->host = host ? host : "";
    char repo[REF_NAME_MAX + 16], e[64];
    api_repository(a->host, repository, repo, sizeof repo);
    if (regauth_pull_scope(repo, scope, scope_len, e, sizeof e) < 0) scope[0] = '\0';
    a->scope = scope;
    a->method = method;
    a->accept = accept;
    a->deadline = now_ms() + r->timeout_ms;
}

/* The sha256 digest of data, as "sha256:<hex>". */
static void sha256_digest(const char *data, size_t len, char *out, size_t outlen)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    size_t o = (size_t)snprintf(out, outlen, "sha256:");
    for (unsigned i = 0; i < mdlen && o + 2 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02x", md[i]);
}

enum registry_result registry_manifest_digest(struct registry *r, const char *host,
                                              const char *repository, const char *reference,
                                              char *digest, size_t digest_len, char *err,
                                              size_t errlen)
{
    struct ask a;
    char scope[REGAUTH_SCOPE_MAX], url[REGAUTH_URL_MAX];
    ask_init(&a, r, host, repository, scope, sizeof scope, "HEAD", ACCEPT_MANIFESTS);
    digest[0] = '\0';
    if (api_url(&a, repository, "manifests", reference, url, sizeof url) < 0) {
        snprintf(err, errlen, "the registry URL would be too long");
        return REGISTRY_ERROR;
    }
    struct httpc_resp resp;
    enum registry_result res = ask_url(&a, url, &resp);
    if (res == REGISTRY_OK && !ref_valid_digest(resp.docker_content_digest)) {
        /* Some registries answer HEAD without the digest: the manifest's own bytes tell. */
        httpc_resp_free(&resp);
        a.method = "GET";
        res = ask_url(&a, url, &resp);
        if (res == REGISTRY_OK)
            sha256_digest(resp.body.data, resp.body.len, resp.docker_content_digest,
                          sizeof resp.docker_content_digest);
    }
    if (res == REGISTRY_OK) snprintf(digest, digest_len, "%s", resp.docker_content_digest);
    httpc_resp_free(&resp);
    snprintf(err, errlen, "%s", res == REGISTRY_OK ? "" : a.err);
    return res;
}

enum registry_result registry_ping(struct registry *r, const char *host, char *err, size_t errlen)
{
    struct ask a;
    char scope[8] = "", base[512], url[600];
    memset(&a, 0, sizeof a);
    a.r = r;
    a.host = host ? host : "";
    a.scope = scope;
    a.method = "GET";
    a.accept = "application/json";
    a.deadline = now_ms() + r->timeout_ms;
    if (registry_base_url(r, a.host, base, sizeof base) < 0) {
        snprintf(err, errlen, "the registry URL would be too long");
        return REGISTRY_ERROR;
    }
    snprintf(url, sizeof url, "%s/v2/", base);
    struct httpc_resp resp;
    enum registry_result res = ask_url(&a, url, &resp);
    httpc_resp_free(&resp);
    snprintf(err, errlen, "%s", res == REGISTRY_OK ? "" : a.err);
    return res;
}

void registry_tags_free(char **tags, size_t n)
{
    for (size_t i = 0; tags && i < n; i++)
        free(tags[i]);
    free(tags);
}

/* Appends the page's {"tags":[...]} to *tags. 0, or -1 when it is not such a page. */
static int add_tags(const struct httpc_resp *resp, char ***tags, size_t *n, size_t *cap)
{
    cJSON *j = cJSON_ParseWithLength(resp->body.data, resp->body.len);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "tags"), *t;
    int rc = cJSON_IsArray(list) || cJSON_IsNull(list) ? 0 : -1;
    cJSON_ArrayForEach(t, list)
    {
        if (!cJSON_IsString(t)) continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            char **nt = realloc(*tags, nc * sizeof *nt);
            if (!nt) {
                rc = -1;
                break;
            }
            *tags = nt;
            *cap = nc;
        }
        if (!((*tags)[*n] = strdup(t->valuestring))) {
            rc = -1;
            break;
        }
        (*n)++;
    }
    cJSON_Delete(j);
    return rc;
}

enum registry_result registry_tags(struct registry *r, const char *host, const char *repository,
                                   int page_size, char ***tags, size_t *n, char *err, size_t errlen)
{
    struct ask a;
    char scope[REGAUTH_SCOPE_MAX], url[REGAUTH_URL_MAX], base[512], next[REGAUTH_URL_MAX], e[256];
    ask_init(&a, r, host, repository, scope, sizeof scope, "GET", "application/json");
    *tags = NULL;
    *n = 0;
    size_t cap = 0;
    char q[32] = "";
    if (page_size > 0) snprintf(q, sizeof q, "?n=%d", page_size);
    if (registry_base_url(r, a.host, base, sizeof base) < 0 ||
        api_url(&a, repository, "tags/list", NULL, url, sizeof url - sizeof q) < 0) {
        snprintf(err, errlen, "the registry URL would be too long");
        return REGISTRY_ERROR;
    }
    strcat(url, q);
    enum registry_result res = REGISTRY_OK;
    for (int page = 0; res == REGISTRY_OK; page++) {
        if (page && now_ms() >= a.deadline) {
            snprintf(a.err, sizeof a.err,
                     "the tag list did not end within --registry-timeout "
                     "(%d pages)",
                     page);
            res = REGISTRY_UNREACHABLE;
            break;
        }
        struct httpc_resp resp;
        res = ask_url(&a, url, &resp);
        int more = 0;
        if (res == REGISTRY_OK && *n > 100000) {
            snprintf(a.err, sizeof a.err, "the repository has more than 100,000 tags");
            res = REGISTRY_ERROR;
        } else if (res == REGISTRY_OK && add_tags(&resp, tags, n, &cap) < 0) {
            snprintf(a.err, sizeof a.err, "the tag list is not {\"tags\":[...]}");
            res = REGISTRY_ERROR;
        } else if (res == REGISTRY_OK && resp.link[0]) {
            more = regauth_link_next(resp.link, strlen(resp.link), next, sizeof next, e, sizeof e);
            if (more == 1 && regauth_resolve_url(base, next, url, sizeof url, e, sizeof e) < 0)
                more = -1;
            if (more < 0 || page >= 10000) {
                snprintf(a.err, sizeof a.err, "cannot follow the tag list's next page: %s", e);
                res = REGISTRY_ERROR;
            }
        }
        httpc_resp_free(&resp);
        if (more != 1) break;
    }
    if (res != REGISTRY_OK) {
        registry_tags_free(*tags, *n);
        *tags = NULL;
        *n = 0;
    }
    snprintf(err, errlen, "%s", res == REGISTRY_OK ? "" : a.err);
    return res;
}

/* For an index or manifest list, the child to read: linux/amd64, else the first. */
static const char *pick_child(const cJSON *manifests)
{
    const cJSON *m, *first = NULL;
    cJSON_ArrayForEach(m, manifests)
    {
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(m, "platform");
        const char *os = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pl, "os"));
        const char *arch =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pl, "architecture"));
        if (!first) first = m;
        if (os && arch && !strcmp(os, "linux") && !strcmp(arch, "amd64")) first = m;
    }
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "digest"));
}

/* GETs what (manifests/blobs) ref as JSON; NULL with a.err set. */
static cJSON *get_json(struct ask *a, const char *repository, const char *what, const char *ref,
                       enum registry_result *res)
{
    char url[REGAUTH_URL_MAX];
    if (api_url(a, repository, what, ref, url, sizeof url) < 0) {
        *res = REGISTRY_ERROR;
        return NULL;
    }
    struct httpc_resp resp;
    *res = ask_url(a, url, &resp);
    cJSON *j = *res == REGISTRY_OK ? cJSON_ParseWithLength(resp.body.data, resp.body.len) : NULL;
    httpc_resp_free(&resp);
    if (*res == REGISTRY_OK && !j) {
        snprintf(a->err, sizeof a->err, "the registry's %s %.80s is not JSON", what, ref);
        *res = REGISTRY_ERROR;
    }
    return j;
}

enum registry_result registry_image_created(struct registry *r, const char *host,
                                            const char *repository, const char *digest,
                                            int64_t *created_ns, char *err, size_t errlen)
{
    struct ask a;
    char scope[REGAUTH_SCOPE_MAX], child[80] = "";
    ask_init(&a, r, host, repository, scope, sizeof scope, "GET", ACCEPT_MANIFESTS);
    *created_ns = 0;
    enum registry_result res;
    cJSON *m = get_json(&a, repository, "manifests", digest, &res);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(m, "manifests");
    if (m && cJSON_IsArray(list)) {
        snprintf(child, sizeof child, "%s", pick_child(list) ? pick_child(list) : "");
        cJSON_Delete(m);
        m = ref_valid_digest(child) ? get_json(&a, repository, "manifests", child, &res) : NULL;
    }
    const char *cfg = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "config"), "digest"));
    char cfgd[80];
    snprintf(cfgd, sizeof cfgd, "%s", cfg ? cfg : "");
    cJSON_Delete(m);
    cJSON *c = NULL;
    if (res == REGISTRY_OK && ref_valid_digest(cfgd)) {
        a.accept = "application/json, */*";
        a.follow = 1;
        c = get_json(&a, repository, "blobs", cfgd, &res);
    } else if (res == REGISTRY_OK) {
        snprintf(a.err, sizeof a.err, "the manifest of %.80s names no config", digest);
        res = REGISTRY_ERROR;
    }
    const char *created = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "created"));
    int64_t ns = 0;
    if (created && event_parse_rfc3339(created, &ns) == 0 && ns > 0) *created_ns = ns;
    cJSON_Delete(c);
    snprintf(err, errlen, "%s", res == REGISTRY_OK ? "" : a.err);
    return res;
}
