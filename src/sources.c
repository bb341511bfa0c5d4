/*
 * sources.c: other registries' webhook payloads → event verdicts (see sources.h).
 *
 * Every parser ends in emit(), which applies Docker's reference grammar to what the payload
 * named, exactly as event.c does for a Distribution event: a value outside the grammar
 * rejects the push, never a repaired value. A digest is optional here (Docker Hub, Quay and
 * Nexus send none); the deployer then asks the registry (README, "Pushes without a digest").
 */
#include "sources.h"

#include "reference.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* What one push names, as pointers into the parse tree (NULL: absent). */
struct fields {
    const char *source;
    const char *id;
    const char *ts; /* RFC 3339 */
    double ts_unix; /* seconds since the epoch, used when ts is NULL; 0: unknown */
    const char *host;
    const char *repo;
    const char *tag;
    const char *digest; /* "sha256:<hex>" or NULL */
    const char *pusher;
    const char *reject; /* set: the push is rejected for this reason */
};

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *obj(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsObject(v) ? v : NULL;
}

/* Copies src into dst of cap bytes; -1 (dst "") when it does not fit. */
static int put(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    dst[0] = '\0';
    if (n >= cap) return -1;
    if (n) memcpy(dst, src, n + 1);
    return 0;
}

static void ignore(const struct fields *f, const char *reason, event_fn fn, void *ctx)
{
    struct event_item it;
    memset(&it, 0, sizeof it);
    it.verdict = EVENT_IGNORED;
    snprintf(it.reason, sizeof it.reason, "%s", reason);
    if (f->id && event_valid_id(f->id)) put(it.event_id, sizeof it.event_id, f->id);
    if (f->repo && ref_valid_repository(f->repo)) put(it.repository, sizeof it.repository, f->repo);
    fn(&it, ctx);
}

/* "sha256:" + 32 hex of SHA-256 over the parts: an id for a payload that has none but names
 * its push uniquely (the same re-delivery gives the same id, another push another one). */
static void synth_id(char *out, size_t cap, const char *source, const char *const *parts, int n)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    out[0] = '\0';
    if (!c) return;
    int ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    for (int i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(c, parts[i] ? parts[i] : "", strlen(parts[i] ? parts[i] : "") + 1);
    ok = ok && EVP_DigestFinal_ex(c, h, &hl);
    EVP_MD_CTX_free(c);
    if (!ok || hl < 16) return;
    int o = snprintf(out, cap, "%s-", source);
    for (int i = 0; i < 16 && o > 0 && (size_t)o + 2 < cap; i++)
        o += snprintf(out + o, cap - (size_t)o, "%02x", h[i]);
}

static void emit(const struct fields *f, event_fn fn, void *ctx)
{
    struct event_item it;
    struct push *p = &it.push;
    memset(&it, 0, sizeof it);
    it.verdict = EVENT_REJECTED;
    if (f->id && event_valid_id(f->id)) put(it.event_id, sizeof it.event_id, f->id);
    if (f->repo && ref_valid_repository(f->repo)) put(it.repository, sizeof it.repository, f->repo);
    const char *why = NULL;
    if (f->reject)
        why = f->reject;
    else if (f->id && !event_valid_id(f->id))
        why = "invalid event id";
    else if (!f->repo || !ref_valid_repository(f->repo))
        why = "repository is not a valid Docker repository";
    else if (!f->tag || !ref_valid_tag(f->tag))
        why = "tag is not a valid Docker tag";
    else if (f->digest && *f->digest && !ref_valid_digest(f->digest)) /* "": none */
        why = "digest is not sha256:<64 hex>";
    else if (f->host && *f->host && !ref_valid_host(f->host))
        why = "registry host is not a valid host";
    if (why) {
        snprintf(it.reason, sizeof it.reason, "%s", why);
        fn(&it, ctx);
        return;
    }
    it.verdict = EVENT_PUSH;
    put(p->event_id, sizeof p->event_id, f->id);
    put(p->host, sizeof p->host, f->host);
    put(p->repository, sizeof p->repository, f->repo);
    put(p->tag, sizeof p->tag, f->tag);
    put(p->digest, sizeof p->digest, f->digest);
    put(p->source, sizeof p->source, f->source);
    event_copy_text(p->pusher, sizeof p->pusher, f->pusher);
    if (f->ts && strlen(f->ts) < sizeof p->timestamp &&
        event_parse_rfc3339(f->ts, &p->timestamp_ns) == 0) {
        put(p->timestamp, sizeof p->timestamp, f->ts);
    } else if (f->ts_unix >= 1 && f->ts_unix < 253402300800.0) { /* before year 10000 */
        time_t t = (time_t)f->ts_unix;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(p->timestamp, sizeof p->timestamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
        p->timestamp_ns = (int64_t)t * 1000000000LL;
    }
    fn(&it, ctx);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Splits "host/path..." at the first '/' when the first component is a registry host (Docker's
 * rule: it has a '.' or ':', or is "localhost"). host gets "" otherwise. -1 when too long. */
static int split_host(const char *ref, char *host, size_t cap, const char **rest)
{
    const char *slash = strchr(ref, '/');
    host[0] = '\0';
    *rest = ref;
    if (!slash) return 0;
    size_t n = (size_t)(slash - ref);
    if (!memchr(ref, '.', n) && !memchr(ref, ':', n) && !(n == 9 && !strncmp(ref, "localhost", 9)))
        return 0;
    if (n >= cap) return -1;
    memcpy(host, ref, n);
    host[n] = '\0';
    *rest = slash + 1;
    return 0;
}

/* Parses body; on failure sets err and returns NULL. what names the expected payload. */
static cJSON *parse(const char *body, size_t len, const char *what, char *err, size_t errlen)
{
    cJSON *root = event_json_parse(body, len, err, errlen);
    if (root && !cJSON_IsObject(root)) {
        snprintf(err, errlen, "not a %s: expected a JSON object", what);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* ------------------------------------------------------------------ Harbor */

/* Harbor v2 webhook, payload format "Default" (goharbor.io/docs, "Configure Webhook
 * Notifications"): type PUSH_ARTIFACT, event_data.repository.repo_full_name and one entry per
 * artifact in event_data.resources[] (tag, digest, resource_url "host/repo:tag"). A push by
 * digest puts the digest in tag. */
int source_parse_harbor(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                        char *err, size_t errlen)
{
    (void)event;
    cJSON *root = parse(body, len, "Harbor webhook payload", err, errlen);
    if (!root) return -1;
    int rc = -1;
    const char *type = str(root, "type");
    const cJSON *data = obj(root, "event_data");
    struct fields f = {.source = "harbor", .pusher = str(root, "operator")};
    f.ts_unix = num(root, "occur_at");
    if (!type || !data) {
        snprintf(err, errlen, "not a Harbor webhook payload: expected \"type\" and \"event_data\"");
        goto out;
    }
    const cJSON *repo = obj(data, "repository");
    f.repo = repo ? str(repo, "repo_full_name") : NULL;
    if (strcmp(type, "PUSH_ARTIFACT") != 0) {
        char why[96];
        snprintf(why, sizeof why, "Harbor event %.40s is not a push",
                 ref_valid_tag(type) ? type : "(unprintable)");
        ignore(&f, why, fn, ctx);
        rc = 1;
        goto out;
    }
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(data, "resources");
    if (!cJSON_IsArray(res) || !repo) {
        snprintf(err, errlen, "Harbor PUSH_ARTIFACT without event_data.resources[] or repository");
        goto out;
    }
    rc = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, res)
    {
        char host[PUSH_HOST_MAX];
        const char *rest, *url = str(r, "resource_url");
        f.tag = str(r, "tag");
        f.digest = str(r, "digest");
        f.host = NULL;
        if (url && split_host(url, host, sizeof host, &rest) == 0) f.host = host;
        rc++;
        if (!f.tag || !*f.tag || !strncmp(f.tag, "sha256:", 7))
            ignore(&f, "artifact pushed by digest, without a tag", fn, ctx);
        else
            emit(&f, fn, ctx);
    }
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ GitHub */

static int hexdig(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes one application/x-www-form-urlencoded value (up to the next '&') into *out (caller
 * frees); its length, or -1 when a %-escape is malformed or out of memory. */
static long form_decode(const char *in, size_t len, char **out)
{
    const char *amp = memchr(in, '&', len);
    if (amp) len = (size_t)(amp - in);
    char *o = malloc(len + 1);
    size_t n = 0;
    if (!o) return -1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '+') {
            o[n++] = ' ';
        } else if (in[i] == '%') {
            int hi = i + 2 < len ? hexdig(in[i + 1]) : -1,
                lo = i + 2 < len ? hexdig(in[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(o);
                return -1;
            }
            o[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            o[n++] = in[i];
        }
    }
    o[n] = '\0';
    *out = o;
    return (long)n;
}

/* GitHub "package" webhook (docs.github.com, "Webhook events and payloads", package): action
 * published or updated; package.package_type container; the tag and digest in
 * package.package_version.container_metadata.tag {name, digest}; the image is
 * ghcr.io/<owner>/<name>, lower-cased. X-GitHub-Event says which event it is; "ping" comes
 * when the hook is created. The registry_package event has the same shape, its object named
 * "registry_package". */
int source_parse_github(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                        char *err, size_t errlen)
{
    if (!event || !*event) {
        snprintf(err, errlen, "missing X-GitHub-Event header");
        return -1;
    }
    /* Content type application/x-www-form-urlencoded (GitHub's default): payload=<JSON>. */
    char *form = NULL;
    if (len >= 8 && !memcmp(body, "payload=", 8)) {
        long n = form_decode(body + 8, len - 8, &form);
        if (n < 0) {
            snprintf(err, errlen, "GitHub form body: payload is not URL-encoded");
            return -1;
        }
        body = form;
        len = (size_t)n;
    }
    cJSON *root = parse(body, len, "GitHub webhook payload", err, errlen);
    free(form);
    if (!root) return -1;
    int rc = 1;
    struct fields f = {.source = "github", .host = "ghcr.io"};
    const cJSON *sender = obj(root, "sender");
    f.pusher = sender ? str(sender, "login") : NULL;
    /* "Packages" (package) and "Registry packages" (registry_package) carry the same object
     * under their own name; a push to ghcr.io may come as either, or both (then a duplicate). */
    int registry_pkg = !strcmp(event, "registry_package");
    if (strcmp(event, "package") != 0 && !registry_pkg) {
        char why[96];
        snprintf(why, sizeof why, "GitHub event %.40s is not a package event",
                 ref_valid_tag(event) ? event : "(unprintable)");
        ignore(&f, why, fn, ctx);
        goto out;
    }
    const char *action = str(root, "action");
    const cJSON *pkg = obj(root, registry_pkg ? "registry_package" : "package");
    const cJSON *ver = pkg ? obj(pkg, "package_version") : NULL;
    if (!action || !pkg) {
        snprintf(err, errlen, "GitHub package event without \"action\" and \"package\"");
        rc = -1;
        goto out;
    }
    const char *type = str(pkg, "package_type"), *name = str(pkg, "name");
    if (!type) type = str(pkg, "ecosystem"); /* some deliveries name the kind only so */
    const cJSON *owner = obj(pkg, "owner");
    const char *ns = str(pkg, "namespace");
    if (!ns && owner) ns = str(owner, "login");
    char repo[PUSH_REPO_MAX];
    repo[0] = '\0';
    if (ns && name && strlen(ns) + strlen(name) + 2 <= sizeof repo) {
        size_t nl = strlen(ns);
        memcpy(repo, ns, nl);
        repo[nl] = '/';
        memcpy(repo + nl + 1, name, strlen(name) + 1);
        for (char *c = repo; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
        f.repo = repo;
    }
    const cJSON *meta = ver ? obj(ver, "container_metadata") : NULL;
    const cJSON *tag = meta ? obj(meta, "tag") : NULL;
    f.ts = ver ? str(ver, "updated_at") : NULL;
    if (!f.ts && ver) f.ts = str(ver, "created_at");
    if (strcmp(action, "published") && strcmp(action, "updated")) {
        ignore(&f, "GitHub package action is not published or updated", fn, ctx);
    } else if (!type || strcasecmp(type, "container")) {
        ignore(&f, "GitHub package is not a container image", fn, ctx);
    } else if (!tag || !str(tag, "name") || !*str(tag, "name")) {
        ignore(&f, "container version without a tag (a platform manifest or a push by digest)", fn,
               ctx);
    } else {
        f.tag = str(tag, "name");
        f.digest = str(tag, "digest");
        const char *vname = str(ver, "name"); /* a container version is named by its digest */
        if ((!f.digest || !*f.digest) && vname && !strncmp(vname, "sha256:", 7)) f.digest = vname;
        emit(&f, fn, ctx);
    }
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ Docker Hub */

/* Docker Hub webhook (docs.docker.com, "Webhooks"): repository.repo_name (namespace/name;
 * official images under library/), push_data.tag, push_data.pusher, push_data.pushed_at
 * (Unix seconds). No digest and no id: the id is derived from repository, tag and time. */
int source_parse_dockerhub(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                           char *err, size_t errlen)
{
    (void)event;
    cJSON *root = parse(body, len, "Docker Hub webhook payload", err, errlen);
    if (!root) return -1;
    int rc = -1;
    const cJSON *pd = obj(root, "push_data"), *repo = obj(root, "repository");
    if (!pd || !repo) {
        snprintf(err, errlen,
                 "not a Docker Hub webhook payload: expected \"push_data\" and \"repository\"");
        goto out;
    }
    char name[PUSH_REPO_MAX], id[PUSH_ID_MAX], when[32];
    struct fields f = {.source = "dockerhub", .host = "docker.io"};
    f.repo = str(repo, "repo_name");
    if (f.repo && !strchr(f.repo, '/') && strlen(f.repo) + 9 < sizeof name) {
        snprintf(name, sizeof name, "library/%s", f.repo);
        f.repo = name;
    }
    f.tag = str(pd, "tag");
    f.pusher = str(pd, "pusher");
    f.ts_unix = num(pd, "pushed_at");
    rc = 1;
    if (!f.tag || !*f.tag) {
        ignore(&f, "Docker Hub push without a tag", fn, ctx);
        goto out;
    }
    if (f.ts_unix > 0) {
        snprintf(when, sizeof when, "%.0f", f.ts_unix);
        const char *parts[] = {f.repo, f.tag, when};
        synth_id(id, sizeof id, "dockerhub", parts, 3);
        if (id[0]) f.id = id;
    }
    emit(&f, fn, ctx);
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ Quay */

/* Quay "Push to Repository" notification (docs.quay.io, "Repository notifications"):
 * docker_url (host/namespace/name), updated_tags[] (one push each). No digest, no id, no time. */
int source_parse_quay(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                      char *err, size_t errlen)
{
    (void)event;
    cJSON *root = parse(body, len, "Quay notification", err, errlen);
    if (!root) return -1;
    int rc = -1;
    const char *url = str(root, "docker_url");
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(root, "updated_tags");
    char host[PUSH_HOST_MAX];
    struct fields f = {.source = "quay"};
    if (!url || !cJSON_IsArray(tags)) {
        snprintf(err, errlen,
                 "not a Quay push notification: expected \"docker_url\" and \"updated_tags\"");
        goto out;
    }
    if (split_host(url, host, sizeof host, &f.repo) < 0) f.repo = NULL;
    f.host = host;
    rc = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tags)
    {
        f.tag = cJSON_IsString(t) ? t->valuestring : NULL;
        emit(&f, fn, ctx);
        rc++;
    }
    if (rc == 0) {
        ignore(&f, "Quay notification without updated tags", fn, ctx);
        rc = 1;
    }
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ Artifactory */

/* JFrog Artifactory webhook, domain "docker" (jfrog.com/help, "Docker Webhooks"): event_type
 * "pushed", data.repo_key, data.image_name, data.tag, data.sha256 (hex, no prefix), and the JFrog
 * Platform URL (jpd_origin). Where the image lives depends on the repository's Docker Access
 * Method, which the payload does not carry (event names it, see sources.h):
 *   repository-path  jpd host / repo_key / image_name (JFrog Cloud's
 * myorg.jfrog.io/docker-local/app) subdomain        repo_key . jpd host / image_name port a port of
 * its own on the jpd host: the host is left out (unknown). */
/* Sets f's host and repository for the access method (see above); host and repo are
 * PUSH_HOST_MAX and PUSH_REPO_MAX bytes. A value that would not fit is left out (host) or
 * rejected later (an invalid repository), never shortened. */
static void jfrog_place(struct fields *f, const char *method, const char *key, const char *origin,
                        char *host, char *repo)
{
    host[0] = '\0';
    if (origin && (!strncmp(origin, "https://", 8) || !strncmp(origin, "http://", 7))) {
        const char *h = strstr(origin, "//") + 2;
        size_t n = strcspn(h, "/:");
        int sub = !strcmp(method, "subdomain") && key;
        size_t kl = sub ? strlen(key) + 1 : 0;
        if (n + kl < PUSH_HOST_MAX && strcmp(method, "port")) {
            snprintf(host, PUSH_HOST_MAX, "%s%s%.*s", sub ? key : "", sub ? "." : "", (int)n, h);
            f->host = host;
        }
    }
    if (!strcmp(method, "repository-path") && key && f->repo) {
        int n = snprintf(repo, PUSH_REPO_MAX, "%s/%s", key, f->repo);
        f->repo = n >= 0 && n < PUSH_REPO_MAX ? repo : "";
    }
}

int source_parse_artifactory(const char *body, size_t len, const char *event, event_fn fn,
                             void *ctx, char *err, size_t errlen)
{
    cJSON *root = parse(body, len, "Artifactory webhook payload", err, errlen);
    if (!root) return -1;
    int rc = -1;
    const char *domain = str(root, "domain"), *type = str(root, "event_type");
    const cJSON *data = obj(root, "data");
    if (!domain || !type || !data) {
        snprintf(err, errlen,
                 "not an Artifactory webhook payload: expected \"domain\", "
                 "\"event_type\" and \"data\"");
        goto out;
    }
    struct fields f = {.source = "artifactory"};
    f.repo = str(data, "image_name");
    rc = 1;
    if (strcmp(domain, "docker") || strcmp(type, "pushed")) {
        ignore(&f, "Artifactory event is not a Docker tag push", fn, ctx);
        goto out;
    }
    char digest[PUSH_DIGEST_MAX];
    const char *hex = str(data, "sha256");
    if (hex && strlen(hex) + 8 <= sizeof digest) {
        snprintf(digest, sizeof digest, "sha256:%s", hex);
        f.digest = digest;
    } else {
        f.digest = hex; /* too long: rejected */
    }
    char host[PUSH_HOST_MAX], repo[PUSH_REPO_MAX];
    jfrog_place(&f, event ? event : "repository-path", str(data, "repo_key"),
                str(root, "jpd_origin"), host, repo);
    f.tag = str(data, "tag");
    emit(&f, fn, ctx);
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ Nexus */

/* Sonatype Nexus Repository 3 "rm:repository:component" webhook (help.sonatype.com,
 * "Webhooks"): action CREATED or UPDATED, component {format docker, name, version (the tag),
 * id}, initiator "user/address", timestamp. No digest; the id is derived from the component
 * and the time. */
int source_parse_nexus(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                       char *err, size_t errlen)
{
    (void)event;
    cJSON *root = parse(body, len, "Nexus webhook payload", err, errlen);
    if (!root) return -1;
    int rc = -1;
    const char *action = str(root, "action");
    const cJSON *comp = obj(root, "component");
    if (!action) {
        snprintf(err, errlen, "not a Nexus webhook payload: expected \"action\"");
        goto out;
    }
    struct fields f = {.source = "nexus"};
    char pusher[PUSH_PUSHER_MAX], ts[PUSH_TS_MAX], id[PUSH_ID_MAX];
    const char *who = str(root, "initiator"), *when = str(root, "timestamp");
    if (who && strlen(who) < sizeof pusher) { /* "admin/10.0.0.1": the user */
        snprintf(pusher, sizeof pusher, "%s", who);
        pusher[strcspn(pusher, "/")] = '\0';
        f.pusher = pusher;
    }
    /* Nexus writes "2016-11-10T23:57:49.664+0000": RFC 3339 wants "+00:00". */
    size_t wl = when ? strlen(when) : 0;
    if (wl > 5 && wl + 2 < sizeof ts && (when[wl - 5] == '+' || when[wl - 5] == '-')) {
        snprintf(ts, sizeof ts, "%.*s:%s", (int)(wl - 2), when, when + wl - 2);
        f.ts = ts;
    } else {
        f.ts = when; /* used when it is RFC 3339 already */
    }
    rc = 1;
    if (!comp) {
        ignore(&f, "Nexus event is not about a component", fn, ctx);
        goto out;
    }
    f.repo = str(comp, "name");
    const char *format = str(comp, "format");
    if (strcmp(action, "CREATED") && strcmp(action, "UPDATED")) {
        ignore(&f, "Nexus component action is not CREATED or UPDATED", fn, ctx);
        goto out;
    }
    if (!format || strcmp(format, "docker")) {
        ignore(&f, "Nexus component is not in a docker repository", fn, ctx);
        goto out;
    }
    f.tag = str(comp, "version");
    const char *parts[] = {str(root, "repositoryName"), str(comp, "id"), f.repo, f.tag, when};
    synth_id(id, sizeof id, "nexus", parts, 5);
    if (id[0]) f.id = id;
    emit(&f, fn, ctx);
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ ECR */

/* Amazon ECR "ECR Image Action" event as EventBridge delivers it to an API destination
 * (docs.aws.amazon.com/AmazonECR, "Amazon ECR events and EventBridge"): id, time, account,
 * region, detail {action-type PUSH|DELETE, result SUCCESS|FAILURE, repository-name,
 * image-tag, image-digest}. The registry is <account>.dkr.ecr.<region>.amazonaws.com. */
int source_parse_ecr(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                     char *err, size_t errlen)
{
    (void)event;
    cJSON *root = parse(body, len, "EventBridge event", err, errlen);
    if (!root) return -1;
    int rc = -1;
    const cJSON *d = obj(root, "detail");
    const char *dt = str(root, "detail-type");
    if (!d || !dt) {
        snprintf(err, errlen, "not an EventBridge event: expected \"detail-type\" and \"detail\"");
        goto out;
    }
    char host[PUSH_HOST_MAX];
    const char *account = str(root, "account"), *region = str(root, "region");
    struct fields f = {.source = "ecr", .id = str(root, "id"), .ts = str(root, "time")};
    f.repo = str(d, "repository-name");
    if (account && region &&
        (size_t)snprintf(host, sizeof host, "%s.dkr.ecr.%s.amazonaws.com", account, region) <
            sizeof host)
        f.host = host;
    const char *action = str(d, "action-type"), *result = str(d, "result");
    f.tag = str(d, "image-tag");
    f.digest = str(d, "image-digest");
    rc = 1;
    if (strcmp(dt, "ECR Image Action") || !action || strcmp(action, "PUSH"))
        ignore(&f, "ECR event is not an image push", fn, ctx);
    else if (!result || strcmp(result, "SUCCESS"))
        ignore(&f, "ECR push did not succeed", fn, ctx);
    else if (!f.tag || !*f.tag)
        ignore(&f, "ECR image pushed without a tag", fn, ctx);
    else
        emit(&f, fn, ctx);
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ Artifact Registry */

/* Decodes standard base64 (padding optional, no blanks) into out (cap bytes, NUL-terminated).
 * Returns the length, or -1 when it is not base64 or does not fit. */
static long b64_decode(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in);
    while (n && in[n - 1] == '=')
        n--;
    if (n % 4 == 1 || (n + 3) / 4 * 3 + 1 > cap) return -1;
    char tmp[8];
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        size_t k = n - i < 4 ? n - i : 4;
        memcpy(tmp, in + i, k);
        memset(tmp + k, 'A', 4 - k); /* decoded as zero bits, then dropped */
        unsigned char q[4];
        for (size_t j = 0; j < 4; j++) {
            char c = tmp[j];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/'))
                return -1;
        }
        if (EVP_DecodeBlock(q, (const unsigned char *)tmp, 4) != 3) return -1;
        memcpy(out + o, q, k - 1);
        o += k - 1;
    }
    out[o] = '\0';
    return (long)o;
}

/* Splits a full reference into host, repository and the tag or digest after it (sep ':' or
 * '@'); -1 when it is not one. */
static int split_ref(const char *ref, char sep, char *host, char *repo, char *rest, size_t cap)
{
    const char *r;
    if (!ref || split_host(ref, host, cap, &r) < 0 || !host[0]) return -1;
    const char *at = sep == '@' ? strchr(r, '@') : strrchr(r, ':');
    if (!at || (size_t)(at - r) >= cap || strlen(at + 1) >= cap) return -1;
    if (sep == ':' && strchr(at, '/')) return -1;
    memcpy(repo, r, (size_t)(at - r));
    repo[at - r] = '\0';
    snprintf(rest, cap, "%s", at + 1);
    return 0;
}

static void gar_item(const cJSON *msg, struct fields *f, event_fn fn, void *ctx)
{
    char host[PUSH_HOST_MAX], repo[PUSH_REPO_MAX], tag[PUSH_REPO_MAX], digest[PUSH_REPO_MAX];
    char h2[PUSH_HOST_MAX], r2[PUSH_REPO_MAX];
    const char *action = str(msg, "action"), *t = str(msg, "tag"), *d = str(msg, "digest");
    int have_d = split_ref(d, '@', h2, r2, digest, sizeof digest) == 0;
    if (have_d) {
        f->host = h2;
        f->repo = r2;
        f->digest = digest;
    }
    if (!action || strcmp(action, "INSERT")) {
        ignore(f, "Artifact Registry action is not INSERT", fn, ctx);
        return;
    }
    if (!t || !*t) {
        ignore(f, "Artifact Registry image pushed without a tag", fn, ctx);
        return;
    }
    if (strchr(t, '/')) { /* a full reference, as Google documents it */
        if (split_ref(t, ':', host, repo, tag, sizeof tag) < 0) {
            f->tag = NULL; /* rejected below */
        } else {
            f->host = host;
            f->repo = repo;
            f->tag = tag;
            /* The digest must name the same image, or it is not this tag's. */
            if (have_d && (strcmp(h2, host) || strcmp(r2, repo)))
                f->reject = "the digest reference names another image than the tag";
        }
    } else {
        f->tag = t;
    }
    emit(f, fn, ctx);
}

/* Google Artifact Registry (and Container Registry) notifications on the gcr topic, delivered
 * by a Pub/Sub push subscription (cloud.google.com/artifact-registry/docs/configure-notifications;
 * cloud.google.com/pubsub/docs/push): {message: {data: base64 JSON {action INSERT|DELETE,
 * digest "host/path@sha256:..", tag "host/path:tag"}, messageId, publishTime},
 * subscription}. */
int source_parse_gar(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                     char *err, size_t errlen)
{
    (void)event;
    cJSON *root = parse(body, len, "Pub/Sub push message", err, errlen);
    if (!root) return -1;
    int rc = -1;
    cJSON *inner = NULL;
    char *data = NULL;
    const cJSON *m = obj(root, "message");
    const char *b64 = m ? str(m, "data") : NULL;
    if (!b64) {
        snprintf(err, errlen, "not a Pub/Sub push message: expected \"message\" with \"data\"");
        goto out;
    }
    size_t cap = strlen(b64) / 4 * 3 + 8;
    data = malloc(cap);
    long dl = data ? b64_decode(b64, data, cap) : -1;
    if (dl < 0) {
        snprintf(err, errlen, "Pub/Sub message.data is not base64");
        goto out;
    }
    inner = event_json_parse(data, (size_t)dl, err, errlen);
    if (!inner || !cJSON_IsObject(inner)) {
        if (inner) snprintf(err, errlen, "Pub/Sub message.data is not a JSON object");
        goto out;
    }
    struct fields f = {.source = "gar", .ts = str(m, "publishTime")};
    f.id = str(m, "messageId");
    if (!f.id) f.id = str(m, "message_id");
    gar_item(inner, &f, fn, ctx);
    rc = 1;
out:
    cJSON_Delete(inner);
    free(data);
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ ACR */

struct acr_ctx {
    event_fn fn;
    void *ctx;
};

static void acr_item(const struct event_item *it, void *ctx)
{
    struct acr_ctx *a = ctx;
    struct event_item copy = *it;
    if (copy.verdict == EVENT_PUSH) put(copy.push.source, sizeof copy.push.source, "acr");
    a->fn(&copy, a->ctx);
}

/* Azure Container Registry webhook (learn.microsoft.com, "Azure Container Registry webhook
 * reference"): one Distribution-style event per request, without the events envelope. */
int source_parse_acr(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                     char *err, size_t errlen)
{
    (void)event;
    struct acr_ctx a = {fn, ctx};
    return event_parse_notification(body, len, acr_item, &a, err, errlen);
}

/* ------------------------------------------------------------------ the table */

const struct source source_table[] = {
    {"harbor", source_parse_harbor, AUTH_BEARER},
    {"github", source_parse_github, AUTH_GITHUB},
    {"dockerhub", source_parse_dockerhub, AUTH_PATH},
    {"quay", source_parse_quay, AUTH_PATH},
    {"artifactory", source_parse_artifactory, AUTH_JFROG},
    {"nexus", source_parse_nexus, AUTH_NEXUS},
    {"ecr", source_parse_ecr, AUTH_BEARER},
    {"gar", source_parse_gar, AUTH_PATH},
    {"acr", source_parse_acr, AUTH_BEARER},
};

size_t source_count(void)
{
    return sizeof source_table / sizeof source_table[0];
}

const struct source *source_find(const char *name)
{
    for (size_t i = 0; name && i < source_count(); i++)
        if (!strcmp(source_table[i].name, name)) return &source_table[i];
    return NULL;
}
