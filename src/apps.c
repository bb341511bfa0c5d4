/*
 * apps.c: GET /v1/apps (deploy.h): the apps that carry the label, as the web console shows
 * them: id, image, patterns (and whether they compile), the operator's autodeploy.* labels,
 * what autodeployd last wrote, and the newest of the deployer's records for each app.
 *
 * One Marathon listing per request, on the server's plan thread (never an HTTP thread); no
 * retry (the console asks again in a few seconds). The listing, or why it failed, is shared by
 * the requests of the next APPS_SHARE_MS: the view is open to every console and script with the
 * read token (to anyone without --ui-token), and however many ask, Marathon is asked at most
 * once per interval (the server's MAX_PLANS alone bounded how many at a time, not how often).
 * The listing is parsed with cJSON: this view needs whole label objects, which the matcher's
 * scanner (listing.h) does not keep.
 */
#include "job.h"

#include "marathon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define APPS_SHARE_MS 2000

struct apps_share {
    pthread_mutex_t mu;
    int has;     /* an answer is kept */
    int64_t at;  /* job_now when it was taken */
    char *label; /* the label it lists (--label may change on SIGHUP) */
    char *body;  /* Marathon's listing (NUL-terminated), NULL when err says why not */
    size_t len;
    char err[512];
};

struct apps_share *apps_share_new(void)
{
    struct apps_share *s = calloc(1, sizeof *s);
    if (s) pthread_mutex_init(&s->mu, NULL);
    return s;
}

void apps_share_free(struct apps_share *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s->label);
    free(s->body);
    free(s);
}

/* Marathon's listing of the apps carrying label: 0 with *body (malloc'd, NUL-terminated, *len
 * bytes; the caller frees it), or -1 with err. Shared for APPS_SHARE_MS. */
static int listing(struct deployer *d, const char *label, char **body, size_t *len, char *err,
                   size_t errlen)
{
    struct apps_share *s = d->apps_share;
    *body = NULL;
    *len = 0;
    err[0] = '\0';
    int64_t now = job_now(d);
    pthread_mutex_lock(&s->mu);
    int fresh = s->has && now - s->at < APPS_SHARE_MS && !strcmp(s->label, label);
    if (fresh && s->body) {
        *body = malloc(s->len + 1);
        if (*body) memcpy(*body, s->body, s->len + 1);
        *len = s->len;
    } else if (fresh) {
        snprintf(err, errlen, "%s", s->err);
    }
    pthread_mutex_unlock(&s->mu);
    if (fresh) {
        if (!*body && !err[0]) snprintf(err, errlen, "out of memory");
        return *body ? 0 : -1;
    }

    struct buf path;
    buf_init(&path, 4096);
    marathon_label_query(label, &path);
    struct httpc_resp resp;
    int got = job_request(d, "GET", path.data, NULL, &resp);
    buf_free(&path);
    if (got != 0 || resp.status != 200) {
        marathon_error_text(&resp, err, errlen);
    } else {
        *len = resp.body.len;
        *body = malloc(*len + 1);
        if (*body) {
            if (*len) memcpy(*body, resp.body.data, *len);
            (*body)[*len] = '\0';
        } else {
            snprintf(err, errlen, "out of memory");
        }
    }
    httpc_resp_free(&resp);
    /* Kept for the next requests (a copy; an out-of-memory copy is simply not kept). */
    char *keep = *body ? malloc(*len + 1) : NULL, *lab = strdup(label);
    pthread_mutex_lock(&s->mu);
    if (lab && (keep || !*body)) {
        if (keep) memcpy(keep, *body, *len + 1);
        free(s->body);
        free(s->label);
        s->body = keep;
        s->len = *len;
        s->label = lab;
        snprintf(s->err, sizeof s->err, "%s", err);
        s->at = now;
        s->has = 1;
        keep = lab = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    free(keep);
    free(lab);
    return *body ? 0 : -1;
}

/* Labels autodeployd writes on a deployment (decide_own_labels): shown apart, not as the
 * operator's settings. */
static int is_written(const char *key)
{
    for (const char *const *k = decide_own_labels; *k; k++)
        if (!strcmp(key, *k)) return 1;
    return 0;
}

static int add_iso_ms(struct buf *b, int64_t ms)
{
    char t[40];
    format_rfc3339_ms(ms, t, sizeof t);
    return buf_add_json_string(b, t);
}

/* ,"last":{...} from the newest record of app_id, or ,"last":null. */
static int add_last(struct deployer *d, const char *app_id, struct buf *b)
{
    int rc = 0;
    static const struct record none;
    struct record r = none;
    int found = 0;
    pthread_mutex_lock(&d->mu);
    for (uint64_t k = 0; k < RECORDS && k < d->seq && !found; k++) {
        const struct record *x = &d->records[(d->seq - k) % RECORDS];
        if (x->seq == d->seq - k && !strcmp(x->app_id, app_id)) {
            r = *x;
            found = 1;
        }
    }
    pthread_mutex_unlock(&d->mu);
    rc |= buf_adds(b, ",\"last\":");
    if (!found) {
        return rc | buf_adds(b, "null");
    }
    char image[REF_IMAGE_MAX + PUSH_TAG_MAX];
    if (r.new_image[0])
        snprintf(image, sizeof image, "%s", r.new_image);
    else
        snprintf(image, sizeof image, "%s:%s", r.push.repository, r.push.tag);
    rc |= buf_printf(b, "{\"seq\":%llu,\"state\":", (unsigned long long)r.seq);
    rc |= buf_add_json_string(b, r.state);
    rc |= buf_adds(b, ",\"image\":");
    rc |= buf_add_json_string(b, image);
    rc |= buf_adds(b, ",\"reason\":");
    rc |= buf_add_json_string(b, r.reason[0] ? r.reason : NULL);
    rc |= buf_adds(b, ",\"at\":");
    rc |= add_iso_ms(b, r.ended ? r.ended : r.created);
    return rc | buf_adds(b, "}");
}

/* ,"patterns":[...] (the label split at whitespace, as the matcher reads it). */
static int add_patterns(const char *label, struct buf *b)
{
    int rc = 0;
    rc |= buf_adds(b, ",\"patterns\":[");
    int first = 1;
    for (const char *p = label ? label : ""; *p;) {
        size_t ws = strspn(p, " \t\r\n\f\v");
        p += ws;
        size_t n = strcspn(p, " \t\r\n\f\v");
        if (!n) break;
        char *one = strndup(p, n);
        rc |= buf_adds(b, first ? "" : ",");
        rc |= one ? buf_add_json_string(b, one) : -1;
        free(one);
        first = 0;
        p += n;
    }
    return rc | buf_adds(b, "]");
}

static int app_json(struct deployer *d, const cJSON *app, const char *label_name, struct buf *b)
{
    int rc = 0;
    const char *id = job_jstr(app, "id");
    const cJSON *docker = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(app, "container"), "docker");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(app, "labels");
    const char *label = job_jstr(labels, label_name);
    rc |= buf_adds(b, "{\"id\":");
    rc |= buf_add_json_string(b, id);
    rc |= buf_adds(b, ",\"image\":");
    rc |= buf_add_json_string(b, job_jstr(docker, "image"));
    rc |= buf_adds(b, ",\"label\":");
    rc |= buf_add_json_string(b, label);
    rc |= add_patterns(label, b);
    char err[256] = "";
    const match_set *ms =
        label ? match_cache_get(d->cache, label, id ? id : "", err, sizeof err, NULL) : NULL;
    rc |= buf_adds(b, ",\"label_error\":");
    rc |= buf_add_json_string(b, ms ? NULL : label ? err : "the label is not a string");
    match_cache_release(ms);
    rc |= buf_adds(b, ",\"labels\":{");
    int first = 1;
    const cJSON *l;
    cJSON_ArrayForEach(l, labels)
    {
        if (!cJSON_IsString(l) || strncmp(l->string, "autodeploy.", 11) != 0 ||
            is_written(l->string) || !strcmp(l->string, label_name))
            continue;
        rc |= buf_adds(b, first ? "" : ",");
        rc |= buf_add_json_string(b, l->string);
        rc |= buf_adds(b, ":");
        rc |= buf_add_json_string(b, l->valuestring);
        first = 0;
    }
    rc |= buf_adds(b, "},\"paused\":");
    rc |= buf_adds(b, decide_is_true(job_jstr(labels, "autodeploy.paused")) ? "true" : "false");
    rc |= buf_adds(b, ",\"digest\":");
    rc |= buf_add_json_string(b, job_jstr(labels, "autodeploy.digest"));
    rc |= buf_adds(b, ",\"pushed_by\":");
    rc |= buf_add_json_string(b, job_jstr(labels, "autodeploy.pushed-by"));
    rc |= add_last(d, id ? id : "", b);
    return rc | buf_adds(b, "}");
}

int deployer_apps_json(struct deployer *d, struct buf *b)
{
    const char *label = config_live()->label;
    char err[512] = "", *body = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    if (listing(d, label, &body, &len, err, sizeof err) == 0 &&
        (json_has_escaped_nul(body, len) || !(root = cJSON_ParseWithLength(body, len))))
        snprintf(err, sizeof err, "Marathon's app listing is not JSON");
    free(body);
    const cJSON *apps = cJSON_GetObjectItemCaseSensitive(root, "apps");
    if (!err[0] && !cJSON_IsArray(apps))
        snprintf(err, sizeof err, "Marathon's app listing has no \"apps\" array");
    if (err[0]) {
        cJSON_Delete(root);
        buf_adds(b, "{\"error\":");
        buf_add_json_string(b, err);
        buf_adds(b, "}");
        return 502;
    }
    /* A failed append leaves the buffer as it was and later ones may fit: every result counts,
     * so an answer too large for the buffer is an error, never a shortened list. */
    int rc = buf_adds(b, "{\"apps\":[");
    int first = 1;
    const cJSON *app;
    cJSON_ArrayForEach(app, apps)
    {
        if (!cJSON_IsObject(app)) continue;
        rc |= buf_adds(b, first ? "" : ",");
        rc |= app_json(d, app, label, b);
        first = 0;
    }
    cJSON_Delete(root);
    rc |= buf_adds(b, "]}");
    if (rc == 0) return 200;
    buf_reset(b);
    buf_adds(b, "{\"error\":\"the app listing is too large to answer\"}");
    return 500;
}
