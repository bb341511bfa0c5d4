/*
 * config.c: the settings table and the layering of defaults, file, environment and flags
 * (see config.h). Each layer is applied whole before the next, so the last writer wins and the
 * order of flags on the command line does not matter between layers.
 */
#include "config.h"

#include "log.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_type { OPT_STRING, OPT_SECRET, OPT_SIZE, OPT_LONG, OPT_DURATION, OPT_BOOL, OPT_LIST };

struct opt {
    const char *name; /* flag without dashes; also the config-file key */
    enum opt_type type;
    size_t offset;
    const char *def; /* default, as text; NULL for unset */
    long min, max;   /* bounds for numbers (sizes and durations too) */
    const char *metavar;
    const char *help;
    int (*check)(const char *v, char *err, size_t errlen);
    int live; /* 1: a SIGHUP reload applies it; 0: it needs a restart */
};

static int check_listen(const char *v, char *err, size_t errlen)
{
    char host[128];
    int port;
    if (config_split_hostport(v, host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080");
        return -1;
    }
    return 0;
}

static int check_level(const char *v, char *err, size_t errlen)
{
    if (log_level_parse(v) >= 0) return 0;
    snprintf(err, errlen, "expected debug, info, warn or error");
    return -1;
}

static int check_format(const char *v, char *err, size_t errlen)
{
    if (log_format_parse(v) >= 0) return 0;
    snprintf(err, errlen, "expected json or text");
    return -1;
}

static int check_slack_pushes(const char *v, char *err, size_t errlen)
{
    if (!strcmp(v, "all") || !strcmp(v, "matched") || !strcmp(v, "none")) return 0;
    snprintf(err, errlen, "expected all, matched or none");
    return -1;
}

static int check_verify(const char *v, char *err, size_t errlen)
{
    if (!strcmp(v, "require") || !strcmp(v, "warn") || !strcmp(v, "off")) return 0;
    snprintf(err, errlen, "expected require, warn or off");
    return -1;
}

static int check_jfrog_access(const char *v, char *err, size_t errlen)
{
    if (!strcmp(v, "repository-path") || !strcmp(v, "subdomain") || !strcmp(v, "port")) return 0;
    snprintf(err, errlen, "expected repository-path, subdomain or port");
    return -1;
}

static int check_registry_url(const char *v, char *err, size_t errlen)
{
    const char *eq = strchr(v, '=');
    if (eq && eq != v && !memchr(v, '/', (size_t)(eq - v)) &&
        (!strncmp(eq + 1, "http://", 7) || !strncmp(eq + 1, "https://", 8)))
        return 0;
    snprintf(err, errlen, "expected HOST=URL, e.g. registry.example.com=http://registry:5000");
    return -1;
}

static int check_http_url(const char *v, char *err, size_t errlen)
{
    if ((!strncmp(v, "http://", 7) && v[7]) || (!strncmp(v, "https://", 8) && v[8])) return 0;
    snprintf(err, errlen, "expected an http:// or https:// URL");
    return -1;
}

static int check_url_list(const char *v, char *err, size_t errlen)
{
    char copy[2048];
    if (strlen(v) >= sizeof copy) {
        snprintf(err, errlen, "too long");
        return -1;
    }
    snprintf(copy, sizeof copy, "%s", v);
    char *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok) continue;
        if (check_http_url(tok, err, errlen) < 0) return -1;
        n++;
    }
    if (n == 0) {
        snprintf(err, errlen, "expected one or more http(s) URLs, comma-separated");
        return -1;
    }
    return 0;
}

static int check_alias(const char *v, char *err, size_t errlen)
{
    const char *eq = strchr(v, '=');
    if (eq && eq != v && eq[1] && !strchr(eq + 1, '=') && !strchr(v, '/')) return 0;
    snprintf(err, errlen, "expected NAME=HOST, e.g. registry.example.com=10.0.0.5:5000");
    return -1;
}

static int check_prefix(const char *v, char *err, size_t errlen)
{
    if (v[0] == '/') return 0;
    snprintf(err, errlen, "expected an app id prefix starting with '/', e.g. /staging/");
    return -1;
}

/* A secret that goes in a URL path: unreserved URL characters only, and long enough not to be
 * guessed. */
static int check_path_secret(const char *v, char *err, size_t errlen)
{
    size_t n = strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~");
    if (!v[n] && n >= 16 && n <= 256) return 0;
    snprintf(err, errlen,
             "expected 16 to 256 characters of A-Z a-z 0-9 - . _ ~ (it goes in a URL)");
    return -1;
}

static int check_label(const char *v, char *err, size_t errlen)
{
    if (*v && strlen(v) < 128) return 0;
    snprintf(err, errlen, "expected a label name of 1 to 127 characters");
    return -1;
}

#define OFF(f) offsetof(struct config, f)

static const struct opt opts[] = {
    {"config", OPT_STRING, OFF(config_file), NULL, 0, 0, "FILE",
     "JSON file of settings (keys are the flag names); flags and env override it", NULL, 0},
    {"listen", OPT_STRING, OFF(listen), "127.0.0.1:8080", 0, 0, "HOST:PORT",
     "address of the HTTP server (webhook, health, metrics); port 0 picks a free port",
     check_listen, 0},
    {"webhook-token", OPT_SECRET, OFF(webhook_token), NULL, 0, 0, "TOKEN",
     "require 'Authorization: Bearer TOKEN' on the webhook (also --webhook-token-file)", NULL, 1},
    {"admin-token", OPT_SECRET, OFF(admin_token), NULL, 0, 0, "TOKEN",
     "bearer token for the actions (POST /v1/pause, /v1/resume, /v1/reconcile, approvals); unset "
     "disables them "
     "(also --admin-token-file)",
     NULL, 1},
    {"harbor-webhook-token", OPT_SECRET, OFF(harbor_webhook_token), NULL, 0, 0, "TOKEN",
     "enable POST /v1/webhooks/harbor; Harbor's Auth Header must be 'Bearer TOKEN' or TOKEN "
     "(also --harbor-webhook-token-file)",
     NULL, 1},
    {"github-webhook-secret", OPT_SECRET, OFF(github_webhook_secret), NULL, 0, 0, "SECRET",
     "enable POST /v1/webhooks/github; checks X-Hub-Signature-256 (also "
     "--github-webhook-secret-file)",
     NULL, 1},
    {"dockerhub-webhook-secret", OPT_SECRET, OFF(dockerhub_webhook_secret), NULL, 0, 0, "SECRET",
     "enable POST /v1/webhooks/dockerhub/SECRET (also --dockerhub-webhook-secret-file)",
     check_path_secret, 1},
    {"quay-webhook-secret", OPT_SECRET, OFF(quay_webhook_secret), NULL, 0, 0, "SECRET",
     "enable POST /v1/webhooks/quay/SECRET (also --quay-webhook-secret-file)", check_path_secret,
     1},
    {"artifactory-webhook-secret", OPT_SECRET, OFF(artifactory_webhook_secret), NULL, 0, 0,
     "SECRET",
     "enable POST /v1/webhooks/artifactory; checks X-JFrog-Event-Auth (the secret, or its "
     "payload signature) (also --artifactory-webhook-secret-file)",
     NULL, 1},
    {"artifactory-docker-access", OPT_STRING, OFF(artifactory_docker_access), "repository-path", 0,
     0, "METHOD",
     "how Artifactory's Docker repositories are addressed, as its Docker Access Method: "
     "repository-path (HOST/REPO-KEY/IMAGE), subdomain (REPO-KEY.HOST/IMAGE) or port "
     "(HOST:PORT/IMAGE; patterns name no host)",
     check_jfrog_access, 1},
    {"nexus-webhook-secret", OPT_SECRET, OFF(nexus_webhook_secret), NULL, 0, 0, "SECRET",
     "enable POST /v1/webhooks/nexus; checks X-Nexus-Webhook-Signature (also "
     "--nexus-webhook-secret-file)",
     NULL, 1},
    {"ecr-webhook-token", OPT_SECRET, OFF(ecr_webhook_token), NULL, 0, 0, "TOKEN",
     "enable POST /v1/webhooks/ecr (EventBridge API destination); Authorization must be "
     "'Bearer TOKEN' or TOKEN (also --ecr-webhook-token-file)",
     NULL, 1},
    {"gar-webhook-secret", OPT_SECRET, OFF(gar_webhook_secret), NULL, 0, 0, "SECRET",
     "enable POST /v1/webhooks/gar/SECRET (Pub/Sub push of Artifact Registry notifications) "
     "(also --gar-webhook-secret-file)",
     check_path_secret, 1},
    {"acr-webhook-token", OPT_SECRET, OFF(acr_webhook_token), NULL, 0, 0, "TOKEN",
     "enable POST /v1/webhooks/acr; Authorization must be 'Bearer TOKEN' or TOKEN (also "
     "--acr-webhook-token-file)",
     NULL, 1},
    {"ui-token", OPT_SECRET, OFF(ui_token), NULL, 0, 0, "TOKEN",
     "bearer token every GET /v1/... needs (the web console's data: status, pushes, "
     "deployments, apps, approvals, plan); the admin token works too; unset: open "
     "(also --ui-token-file)",
     NULL, 1},
    {"max-body-bytes", OPT_SIZE, OFF(max_body_bytes), "1MiB", 1024, 64L * 1024 * 1024, "SIZE",
     "largest webhook body accepted (larger: 413)", NULL, 1},
    {"state-file", OPT_STRING, OFF(state_file), NULL, 0, 0, "FILE",
     "keep accepted pushes and the pause in FILE, so that a restart or crash loses none "
     "(with --marathon-url)",
     NULL, 0},
    {"queue-size", OPT_LONG, OFF(queue_size), "1000", 1, 1000000, "N",
     "pushes waiting for deployment at most (full: 503 + Retry-After)", NULL, 0},
    {"dedup-size", OPT_LONG, OFF(dedup_size), "10000", 16, 10000000, "N",
     "event ids and repository:tag digests remembered to drop duplicates", NULL, 0},
    {"recent-pushes", OPT_LONG, OFF(recent_pushes), "100", 1, 100000, "N",
     "accepted pushes kept for GET /v1/pushes", NULL, 0},
    {"http-threads", OPT_LONG, OFF(http_threads), "2", 1, 64, "N", "HTTP server threads", NULL, 0},
    {"max-connections-per-ip", OPT_LONG, OFF(max_conns_per_ip), "64", 0, 512, "N",
     "HTTP connections one client address may hold at once (0: no limit)", NULL, 0},
    {"http-timeout", OPT_DURATION, OFF(http_timeout_ms), "10s", 1000, 3600L * 1000, "DURATION",
     "a request must arrive in full within this (slow or idle clients are cut off)", NULL, 0},
    {"log-level", OPT_STRING, OFF(log_level), "info", 0, 0, "LEVEL", "debug, info, warn or error",
     check_level, 1},
    {"log-format", OPT_STRING, OFF(log_format), "json", 0, 0, "FORMAT",
     "json (one object per line) or text", check_format, 1},
    {"marathon-url", OPT_STRING, OFF(marathon_url), NULL, 0, 0, "URL[,URL...]",
     "Marathon API; several URLs fail over in order (leader redirects are followed)",
     check_url_list, 0},
    {"marathon-user", OPT_STRING, OFF(marathon_user), NULL, 0, 0, "USER",
     "Basic auth user (Marathon --http_credentials)", NULL, 0},
    {"marathon-password", OPT_SECRET, OFF(marathon_password), NULL, 0, 0, "PASSWORD",
     "Basic auth password (also --marathon-password-file)", NULL, 0},
    {"marathon-token", OPT_SECRET, OFF(marathon_token), NULL, 0, 0, "TOKEN",
     "DC/OS ACS token, sent as 'Authorization: token=...' (also --marathon-token-file)", NULL, 0},
    {"marathon-ca-file", OPT_STRING, OFF(marathon_ca_file), NULL, 0, 0, "FILE",
     "PEM CA bundle to verify an https Marathon", NULL, 0},
    {"marathon-connect-timeout", OPT_DURATION, OFF(marathon_connect_timeout_ms), "5s", 100,
     600L * 1000, "DURATION", "time allowed to connect to Marathon", NULL, 0},
    {"marathon-timeout", OPT_DURATION, OFF(marathon_timeout_ms), "15s", 100, 3600L * 1000,
     "DURATION", "time allowed for one Marathon request", NULL, 0},
    {"label", OPT_STRING, OFF(label), "autodeploy", 0, 0, "NAME",
     "app label holding the image patterns", check_label, 1},
    {"registry-alias", OPT_LIST, OFF(registry_alias), NULL, 0, 0, "NAME=HOST",
     "treat registry hosts NAME and HOST as the same registry (repeatable)", check_alias, 0},
    {"allow-repository-wildcards", OPT_BOOL, OFF(allow_repository_wildcards), "false", 0, 0, NULL,
     "accept patterns with wildcards in the repository part (unsafe: any repository "
     "could deploy into the app)",
     NULL, 0},
    {"app-prefix", OPT_LIST, OFF(app_prefix), NULL, 0, 0, "PREFIX",
     "only touch apps whose id starts with PREFIX, e.g. /staging/ (repeatable; none: all)",
     check_prefix, 1},
    {"dry-run", OPT_BOOL, OFF(dry_run), "false", 0, 0, NULL, "do everything but change Marathon",
     NULL, 1},
    {"force", OPT_BOOL, OFF(force), "false", 0, 0, NULL,
     "update apps locked by a deployment with ?force=true (per app: label autodeploy.force=true)",
     NULL, 1},
    {"verify-push", OPT_STRING, OFF(verify_push), "require", 0, 0, "MODE",
     "ask the registry for the tag's digest before deploying: require (deploy only what it "
     "has), warn (deploy anyway when it cannot be asked) or off",
     check_verify, 1},
    {"registry-auth", OPT_STRING, OFF(registry_auth), NULL, 0, 0, "FILE",
     "Docker config.json with registry credentials (auths); pull rights suffice", NULL, 0},
    {"registry-ca", OPT_STRING, OFF(registry_ca), NULL, 0, 0, "FILE",
     "PEM bundle to verify https registries (default: the system's CAs)", NULL, 0},
    {"insecure-registry", OPT_LIST, OFF(insecure_registry), NULL, 0, 0, "HOST[:PORT]",
     "reach this registry over plain http (repeatable; loopback always may)", NULL, 0},
    {"registry-url", OPT_LIST, OFF(registry_url), NULL, 0, 0, "HOST=URL",
     "reach registry HOST at URL, e.g. a name inside the cluster (repeatable)", check_registry_url,
     0},
    {"registry-timeout", OPT_DURATION, OFF(registry_timeout_ms), "30s", 100, 3600L * 1000,
     "DURATION", "bound on one question to a registry, retries of 5xx and 429 included", NULL, 0},
    {"pin-digest", OPT_BOOL, OFF(pin_digest), "false", 0, 0, NULL,
     "deploy image@sha256:... (per app: label autodeploy.pin-digest=true)", NULL, 1},
    {"rollback-on-failure", OPT_BOOL, OFF(rollback_on_failure), "false", 0, 0, NULL,
     "roll a failed or timed-out deployment back", NULL, 1},
    {"deploy-timeout", OPT_DURATION, OFF(deploy_timeout_ms), "600s", 1000, 24L * 3600 * 1000,
     "DURATION",
     "a deployment not finished this long after Marathon accepted the update is reported timed "
     "out",
     NULL, 1},
    {"update-timeout", OPT_DURATION, OFF(update_timeout_ms), "600s", 1000, 24L * 3600 * 1000,
     "DURATION",
     "how long an update may wait for another deployment's lock and retry Marathon's 5xx, 403 "
     "and lost answers before it is given up",
     NULL, 1},
    {"reconcile-interval", OPT_DURATION, OFF(reconcile_interval_ms), "5m", 0, 7L * 24 * 3600 * 1000,
     "DURATION",
     "how often the registry is asked what the labelled apps should run, to deploy what a lost "
     "notification missed (+-10% jitter; 0: never)",
     NULL, 1},
    {"approve-timeout", OPT_DURATION, OFF(approve_timeout_ms), "1h", 1000, 7L * 24 * 3600 * 1000,
     "DURATION",
     "how long a pending approval (app label autodeploy.approve=true) waits for a person before "
     "it expires (per app: label autodeploy.approve-timeout)",
     NULL, 1},
    {"deploy-workers", OPT_LONG, OFF(deploy_workers), "4", 1, 64, "N",
     "apps deployed in parallel at most", NULL, 0},
    {"poll-interval", OPT_DURATION, OFF(poll_interval_ms), "5s", 100, 600L * 1000, "DURATION",
     "how often a running deployment is polled when the event stream cannot tell (down, or "
     "just reconnected); lock waits poll at most every second",
     NULL, 1},
    {"shutdown-grace", OPT_DURATION, OFF(shutdown_grace_ms), "10s", 0, 3600L * 1000, "DURATION",
     "on SIGTERM, time running deployments get to finish before autodeployd stops following "
     "them",
     NULL, 1},
    {"slack-webhook-url", OPT_SECRET, OFF(slack_webhook_url), NULL, 0, 0, "URL",
     "Slack (or Mattermost) incoming webhook; unset: no Slack messages "
     "(also --slack-webhook-url-file)",
     NULL, 0},
    {"slack-signing-secret", OPT_SECRET, OFF(slack_signing_secret), NULL, 0, 0, "SECRET",
     "the Slack app's signing secret: enables approval buttons at POST /v1/slack/interactions "
     "(unset: 404) (also --slack-signing-secret-file)",
     NULL, 1},
    {"slack-pushes", OPT_STRING, OFF(slack_pushes), "matched", 0, 0, "WHICH",
     "announce pushes in Slack: all, matched (only those that deploy somewhere) or none",
     check_slack_pushes, 0},
    {"marathon-ui-url", OPT_STRING, OFF(marathon_ui_url), NULL, 0, 0, "URL",
     "Marathon UI base URL for links in Slack messages", check_http_url, 0},
    {"slack-timeout", OPT_DURATION, OFF(slack_timeout_ms), "5s", 100, 600L * 1000, "DURATION",
     "time allowed for one Slack request", NULL, 0},
    {"slack-queue-size", OPT_LONG, OFF(slack_queue_size), "200", 1, 100000, "N",
     "Slack messages waiting at most; when full the oldest is dropped (and counted)", NULL, 0},
    {"slack-retries", OPT_LONG, OFF(slack_retries), "5", 0, 100, "N",
     "retries of a Slack message after a 5xx, 429 or time-out before it is dropped", NULL, 0},
};

#define N_OPTS (sizeof opts / sizeof opts[0])

static void env_name(const struct opt *o, const char *suffix, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "AUTODEPLOY_");
    for (const char *p = o->name; *p && n + 1 < len; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
    if (suffix) snprintf(out + n, len - n, "%s", suffix);
}

int config_parse_size(const char *s, size_t *out)
{
    if (!s || !isdigit((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    unsigned long long mul = 1;
    if (*end == '\0' || strcmp(end, "B") == 0)
        mul = 1;
    else if (!strcmp(end, "KiB") || !strcmp(end, "k") || !strcmp(end, "K") || !strcmp(end, "KB"))
        mul = 1024;
    else if (!strcmp(end, "MiB") || !strcmp(end, "m") || !strcmp(end, "M") || !strcmp(end, "MB"))
        mul = 1024 * 1024;
    else if (!strcmp(end, "GiB") || !strcmp(end, "g") || !strcmp(end, "G") || !strcmp(end, "GB"))
        mul = 1024ULL * 1024 * 1024;
    else
        return -1;
    if (v > (unsigned long long)SIZE_MAX / mul) return -1;
    *out = (size_t)(v * mul);
    return 0;
}

int config_parse_duration_ms(const char *s, long *out)
{
    if (!s || !isdigit((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || v < 0) return -1;
    double mul;
    if (*end == '\0' || !strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else
        return -1;
    if (v * mul > 1e12) return -1;
    *out = (long)(v * mul + 0.5);
    return 0;
}

int config_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    if (!s) return -1;
    const char *colon;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        if ((size_t)(rb - s - 1) >= hostlen || rb == s + 1) return -1;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s || (size_t)(colon - s) >= hostlen) return -1;
        if (memchr(s, ':', (size_t)(colon - s))) return -1; /* bare IPv6 needs brackets */
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5) return -1;
    long v = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p)) return -1;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535) return -1;
    *port = (int)v;
    return 0;
}

/* Reads a secret from a file: the first line, without its line ending. */
static int read_secret_file(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    if (!fgets(line, sizeof line, f)) line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (!line[0]) {
        snprintf(err, errlen, "%s is empty", path);
        return -1;
    }
    *out = strdup(line);
    return *out ? 0 : -1;
}

/* Sets one option from text. src names where the value came from, for the error message. */
static int apply(struct config *cfg, const struct opt *o, const char *v, int from_file_path,
                 const char *src, char *err, size_t errlen)
{
    char why[160] = "";
    void *field = (char *)cfg + o->offset;
    switch (o->type) {
    case OPT_STRING:
    case OPT_SECRET: {
        char *nv = NULL;
        if (from_file_path) {
            if (read_secret_file(v, &nv, why, sizeof why) < 0) goto bad;
            /* The file's content obeys the flag's rules too (a path secret's length). */
            if (o->check && o->check(nv, why, sizeof why) < 0) {
                free(nv);
                goto bad;
            }
        } else {
            if (o->type == OPT_SECRET && !*v) {
                snprintf(why, sizeof why, "must not be empty");
                goto bad;
            }
            if (o->check && o->check(v, why, sizeof why) < 0) goto bad;
            nv = strdup(v);
            if (!nv) goto bad;
        }
        free(*(char **)field);
        *(char **)field = nv;
        return 0;
    }
    case OPT_SIZE: {
        size_t n;
        if (config_parse_size(v, &n) < 0) {
            snprintf(why, sizeof why, "expected a size like 1048576, 512KiB or 1MiB");
            goto bad;
        }
        if (n < (size_t)o->min || n > (size_t)o->max) {
            snprintf(why, sizeof why, "must be between %ld and %ld bytes", o->min, o->max);
            goto bad;
        }
        *(size_t *)field = n;
        return 0;
    }
    case OPT_LONG: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end) {
            snprintf(why, sizeof why, "expected a whole number");
            goto bad;
        }
        if (n < o->min || n > o->max) {
            snprintf(why, sizeof why, "must be between %ld and %ld", o->min, o->max);
            goto bad;
        }
        *(long *)field = n;
        return 0;
    }
    case OPT_BOOL: {
        int b;
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
            b = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
            b = 0;
        else {
            snprintf(why, sizeof why, "expected true or false");
            goto bad;
        }
        *(int *)field = b;
        return 0;
    }
    case OPT_LIST: {
        /* One value; the caller decides whether it replaces or appends (see list_*). */
        struct strlist *l = field;
        if (o->check && o->check(v, why, sizeof why) < 0) goto bad;
        char **nv = realloc(l->v, (l->n + 1) * sizeof *nv);
        if (!nv) goto bad;
        l->v = nv;
        if (!(l->v[l->n] = strdup(v))) goto bad;
        l->n++;
        return 0;
    }
    case OPT_DURATION: {
        long ms;
        if (config_parse_duration_ms(v, &ms) < 0) {
            snprintf(why, sizeof why, "expected a duration like 1500ms, 10s, 5m or 1h");
            goto bad;
        }
        if (ms < o->min || ms > o->max) {
            snprintf(why, sizeof why, "must be between %ldms and %ldms", o->min, o->max);
            goto bad;
        }
        *(long *)field = ms;
        return 0;
    }
    }
bad:
    /* Secrets are never echoed back, not even in an error. */
    if (o->type == OPT_SECRET && !from_file_path)
        snprintf(err, errlen, "invalid --%s (from %s): %s", o->name, src, why);
    else
        snprintf(err, errlen, "invalid --%s%s \"%.200s\" (from %s): %s", o->name,
                 from_file_path ? "-file" : "", v, src, why);
    return -1;
}

static void list_clear(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Sets an option from one layer's text. A list is replaced by the comma-separated items of v
 * (blank items dropped); anything else is set as apply() does. */
static int apply_layer(struct config *cfg, const struct opt *o, const char *v, int from_file_path,
                       const char *src, char *err, size_t errlen)
{
    if (o->type != OPT_LIST) return apply(cfg, o, v, from_file_path, src, err, errlen);
    struct strlist *l = (struct strlist *)((char *)cfg + o->offset);
    list_clear(l);
    char *copy = strdup(v);
    if (!copy) return -1;
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
            tok[--n] = '\0';
        if (*tok) rc = apply(cfg, o, tok, 0, src, err, errlen);
    }
    free(copy);
    return rc;
}

/* Finds the option named by a flag or config key; sets *is_file for the "-file" form of a
 * secret. */
static const struct opt *find_opt(const char *name, size_t len, int *is_file)
{
    *is_file = 0;
    for (size_t i = 0; i < N_OPTS; i++) {
        size_t n = strlen(opts[i].name);
        if (len == n && strncmp(name, opts[i].name, n) == 0) return &opts[i];
        if (opts[i].type == OPT_SECRET && len == n + 5 && strncmp(name, opts[i].name, n) == 0 &&
            strncmp(name + n, "-file", 5) == 0) {
            *is_file = 1;
            return &opts[i];
        }
    }
    return NULL;
}

static const char *env_get(char **envp, const char *name)
{
    if (!envp) return NULL;
    size_t n = strlen(name);
    for (char **e = envp; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

static int load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "invalid --config \"%s\": %s", path, strerror(errno));
        return -1;
    }
    struct buf b;
    buf_init(&b, 1024 * 1024);
    char chunk[4096];
    size_t n;
    int rc = -1;
    cJSON *root = NULL;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf_add(&b, chunk, n) < 0) {
            snprintf(err, errlen, "invalid --config \"%s\": larger than 1 MiB", path);
            goto out;
        }
    }
    root = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "invalid --config \"%s\": not a JSON object", path);
        goto out;
    }
    char src[300];
    snprintf(src, sizeof src, "config file %s", path);
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        int is_file;
        const struct opt *o = find_opt(item->string, strlen(item->string), &is_file);
        if (!o || strcmp(o->name, "config") == 0) {
            snprintf(err, errlen, "invalid --config \"%s\": unknown setting \"%.80s\"", path,
                     item->string);
            goto out;
        }
        char text[64];
        const char *v;
        if (o->type == OPT_LIST && cJSON_IsArray(item)) {
            list_clear((struct strlist *)((char *)cfg + o->offset));
            const cJSON *el;
            cJSON_ArrayForEach(el, item)
            {
                if (!cJSON_IsString(el)) {
                    snprintf(err, errlen, "invalid --%s (from %s): expected strings", o->name, src);
                    goto out;
                }
                if (apply(cfg, o, el->valuestring, 0, src, err, errlen) < 0) goto out;
            }
            continue;
        }
        if (cJSON_IsBool(item) && o->type == OPT_BOOL) {
            v = cJSON_IsTrue(item) ? "true" : "false";
        } else if (cJSON_IsString(item)) {
            v = item->valuestring;
        } else if (cJSON_IsNumber(item) && o->type != OPT_STRING && o->type != OPT_SECRET) {
            snprintf(text, sizeof text, "%.0f", item->valuedouble);
            if (item->valuedouble != (double)(long long)item->valuedouble) {
                snprintf(err, errlen, "invalid --%s (from %s): expected a whole number", o->name,
                         src);
                goto out;
            }
            v = text;
        } else {
            snprintf(err, errlen, "invalid --%s (from %s): expected a %s", o->name, src,
                     o->type == OPT_STRING || o->type == OPT_SECRET ? "string"
                                                                    : "number or string");
            goto out;
        }
        if (apply_layer(cfg, o, v, is_file, src, err, errlen) < 0) goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    buf_free(&b);
    fclose(f);
    return rc;
}

int config_load(struct config *cfg, int argc, char **argv, char **envp, enum config_action *action,
                char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    *action = CONFIG_RUN;
    for (size_t i = 0; i < N_OPTS; i++)
        if (opts[i].def && apply(cfg, &opts[i], opts[i].def, 0, "default", err, errlen) < 0)
            return -1;

    /* First pass over argv: help, version, the config file, and the shape of every flag. */
    const char *file = env_get(envp, "AUTODEPLOY_CONFIG");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *action = CONFIG_HELP;
            return 0;
        }
        if (!strcmp(a, "--version")) {
            *action = CONFIG_VERSION;
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%.100s\" (see --help)", a);
            return -1;
        }
        const char *eq = strchr(a + 2, '=');
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        int is_file;
        const struct opt *o = find_opt(a + 2, nlen, &is_file);
        if (!o) {
            snprintf(err, errlen, "unknown flag --%.*s (see --help)", (int)(nlen > 80 ? 80 : nlen),
                     a + 2);
            return -1;
        }
        if (o->type == OPT_BOOL && !eq) continue;
        if (!eq && i + 1 >= argc) {
            snprintf(err, errlen, "flag --%s needs a value", argv[i] + 2);
            return -1;
        }
        const char *v = eq ? eq + 1 : argv[i + 1];
        if (!eq) i++;
        if (!strcmp(o->name, "config")) file = v;
    }
    if (file) {
        if (apply(cfg, &opts[0], file, 0, "flag", err, errlen) < 0) return -1;
        if (load_file(cfg, file, err, errlen) < 0) return -1;
    }

    /* The environment, then the flags. */
    for (size_t i = 1; i < N_OPTS; i++) {
        char name[96];
        env_name(&opts[i], NULL, name, sizeof name);
        const char *v = env_get(envp, name);
        if (v && apply_layer(cfg, &opts[i], v, 0, name, err, errlen) < 0) return -1;
        if (opts[i].type == OPT_SECRET) {
            env_name(&opts[i], "_FILE", name, sizeof name);
            v = env_get(envp, name);
            if (v && apply(cfg, &opts[i], v, 1, name, err, errlen) < 0) return -1;
        }
    }
    int list_seen[N_OPTS] = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a + 2, '=');
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        int is_file;
        const struct opt *o = find_opt(a + 2, nlen, &is_file);
        const char *v = eq ? eq + 1 : (o->type == OPT_BOOL ? "true" : argv[++i]);
        if (o == &opts[0]) continue;
        if (o->type == OPT_LIST && !list_seen[o - opts]++)
            list_clear((struct strlist *)((char *)cfg + o->offset));
        if (apply(cfg, o, v, is_file, "flag", err, errlen) < 0) return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        if (opts[i].type == OPT_STRING || opts[i].type == OPT_SECRET) {
            char **p = (char **)((char *)cfg + opts[i].offset);
            free(*p);
            *p = NULL;
        } else if (opts[i].type == OPT_LIST) {
            list_clear((struct strlist *)((char *)cfg + opts[i].offset));
        }
    }
}

void config_usage(struct buf *b)
{
    buf_adds(b, "Usage: autodeployd [FLAGS]\n"
                "       autodeployd match PATTERN IMAGE_REF   (see 'autodeployd match --help')\n"
                "\n"
                "Receives Docker registry push notifications and deploys the pushed images to "
                "the\nMarathon apps whose labels match them.\n\nFlags (each also an environment "
                "variable, and a key of the --config file):\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        char env[96], flag[96];
        env_name(o, NULL, env, sizeof env);
        snprintf(flag, sizeof flag, "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        buf_printf(b, "  %-36s %s\n", flag, o->help);
        buf_printf(b, "  %-36s env %s", "", env);
        if (o->type == OPT_SECRET) buf_printf(b, " or %s_FILE", env);
        if (o->def) buf_printf(b, ", default %s", o->def);
        buf_adds(b, "\n");
    }
    buf_adds(b, "  --help                               this text\n"
                "  --version                            print the version\n"
                "\nPrecedence: flags, then environment, then the config file, then defaults.\n"
                "Invalid values stop start-up with exit code 2.\n");
}

int config_json_redacted(const struct config *cfg, struct buf *b)
{
    int rc = buf_adds(b, "{");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        const void *field = (const char *)cfg + o->offset;
        rc |= buf_adds(b, i ? ",\"" : "\"");
        rc |= buf_add_json_escaped(b, o->name);
        rc |= buf_adds(b, "\":");
        switch (o->type) {
        case OPT_STRING:
            rc |= buf_add_json_string(b, *(char *const *)field);
            break;
        case OPT_SECRET:
            rc |= buf_adds(b, *(char *const *)field ? "\"(set)\"" : "null");
            break;
        case OPT_SIZE:
            rc |= buf_printf(b, "%zu", *(const size_t *)field);
            break;
        case OPT_LONG:
            rc |= buf_printf(b, "%ld", *(const long *)field);
            break;
        case OPT_DURATION:
            rc |= buf_printf(b, "\"%ldms\"", *(const long *)field);
            break;
        case OPT_BOOL:
            rc |= buf_adds(b, *(const int *)field ? "true" : "false");
            break;
        case OPT_LIST: {
            const struct strlist *l = field;
            rc |= buf_adds(b, "[");
            for (size_t k = 0; k < l->n; k++) {
                if (k) rc |= buf_adds(b, ",");
                rc |= buf_add_json_string(b, l->v[k]);
            }
            rc |= buf_adds(b, "]");
            break;
        }
        }
    }
    rc |= buf_adds(b, "}");
    return rc ? -1 : 0;
}

static struct config *live_config;

void config_publish(struct config *cfg)
{
    __atomic_store_n(&live_config, cfg, __ATOMIC_RELEASE);
}

const struct config *config_live(void)
{
    return __atomic_load_n(&live_config, __ATOMIC_ACQUIRE);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int config_restart_needed(const struct config *old, const struct config *nw, struct buf *names)
{
    int n = 0;
    for (size_t i = 1; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (o->live) continue;
        const void *a = (const char *)old + o->offset, *b = (const char *)nw + o->offset;
        int same = 1;
        switch (o->type) {
        case OPT_STRING:
        case OPT_SECRET:
            same = same_str(*(char *const *)a, *(char *const *)b);
            break;
        case OPT_SIZE:
            same = *(const size_t *)a == *(const size_t *)b;
            break;
        case OPT_LONG:
        case OPT_DURATION:
            same = *(const long *)a == *(const long *)b;
            break;
        case OPT_BOOL:
            same = *(const int *)a == *(const int *)b;
            break;
        case OPT_LIST: {
            const struct strlist *la = a, *lb = b;
            same = la->n == lb->n;
            for (size_t k = 0; same && k < la->n; k++)
                same = !strcmp(la->v[k], lb->v[k]);
            break;
        }
        }
        if (!same) {
            buf_printf(names, "%s--%s", n ? ", " : "", o->name);
            n++;
        }
    }
    return n;
}
