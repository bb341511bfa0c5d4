/*
 * decide.c: the deployer's rules (see decide.h). Pure: no I/O.
 */
#include "decide.h"

#include "reference.h"
#include "semver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const decide_own_labels[] = {"autodeploy.digest", "autodeploy.pushed-by",
                                         "autodeploy.deployed-at", "autodeploy.pushed-at", NULL};

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int decide_is_true(const char *v)
{
    return v && (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
                 !strcmp(v, "1"));
}

int decide_approve_label(const char *v)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                "off", "0"};
    if (!v) return 0;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcasecmp(v, yes[i])) return 1;
        if (!strcasecmp(v, no[i])) return 0;
    }
    return -1;
}

int decide_app_view(const cJSON *app, const char *label, struct app_view *v)
{
    memset(v, 0, sizeof *v);
    v->instances = -1;
    if (!cJSON_IsObject(app)) return -1;
    v->json = app;
    v->id = jstr(app, "id");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(app, "container");
    v->image = jstr(cJSON_GetObjectItemCaseSensitive(c, "docker"), "image");
    v->version = jstr(app, "version");
    v->config_version =
        jstr(cJSON_GetObjectItemCaseSensitive(app, "versionInfo"), "lastConfigChangeAt");
    if (!v->config_version) v->config_version = v->version;
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(app, "labels");
    v->digest = jstr(labels, "autodeploy.digest");
    v->pushed_at = jstr(labels, "autodeploy.pushed-at");
    v->channel = jstr(labels, "autodeploy.slack-channel");
    v->pattern = label ? jstr(labels, label) : NULL;
    v->paused = decide_is_true(jstr(labels, "autodeploy.paused"));
    v->pin = decide_is_true(jstr(labels, "autodeploy.pin-digest"));
    v->force = decide_is_true(jstr(labels, "autodeploy.force"));
    v->approve_label = jstr(labels, "autodeploy.approve");
    v->approve = decide_approve_label(v->approve_label);
    /* A label that is there but not a string (Marathon refuses those) is unreadable too. */
    if (!v->approve_label && cJSON_GetObjectItemCaseSensitive(labels, "autodeploy.approve"))
        v->approve = -1;
    v->approve_timeout = jstr(labels, "autodeploy.approve-timeout");
    const cJSON *inst = cJSON_GetObjectItemCaseSensitive(app, "instances");
    if (cJSON_IsNumber(inst)) v->instances = inst->valueint;
    const cJSON *deps = cJSON_GetObjectItemCaseSensitive(app, "deployments");
    v->deployment = jstr(cJSON_GetArrayItem(deps, 0), "id");
    v->failure_version = jstr(cJSON_GetObjectItemCaseSensitive(app, "lastTaskFailure"), "version");
    return 0;
}

long decide_approve_timeout(const struct app_view *v, long def_ms, char *reason, size_t len)
{
    long ms;
    if (!v->approve_timeout) return def_ms;
    if (config_parse_duration_ms(v->approve_timeout, &ms) < 0 || ms < 1000 ||
        ms > 7L * 24 * 3600 * 1000) {
        snprintf(reason, len,
                 "invalid label autodeploy.approve-timeout \"%.60s\": expected a duration from "
                 "1s to 7 days, e.g. 30m",
                 v->approve_timeout);
        return -1;
    }
    return ms;
}

int decide_app_id_valid(const char *id)
{
    if (!id || id[0] != '/' || strlen(id) >= DECIDE_APP_ID_MAX) return 0;
    const char *p = id + 1;
    for (;;) {
        const char *s = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.')
            p++;
        if (p == s || s[0] == '.' || s[0] == '-' || p[-1] == '.' || p[-1] == '-') return 0;
        if (*p == '\0') return 1;
        if (*p != '/') return 0;
        p++;
    }
}

const char *decide_gate(const struct config *cfg, const char *app_id, int paused)
{
    if (!decide_app_id_valid(app_id))
        return "the app id breaks Marathon's id rules; it is never touched";
    int allowed = cfg->app_prefix.n == 0;
    for (size_t i = 0; i < cfg->app_prefix.n && !allowed; i++)
        allowed = !strncmp(app_id, cfg->app_prefix.v[i], strlen(cfg->app_prefix.v[i]));
    if (!allowed) return "the app is outside the allowed --app-prefix";
    if (paused) return "the app is paused (label autodeploy.paused=true)";
    return NULL;
}

static int hub_host(const char *h)
{
    return !h || !*h || !strcmp(h, "docker.io") || !strcmp(h, "index.docker.io") ||
           !strcmp(h, "registry-1.docker.io") || !strcmp(h, "registry.hub.docker.com");
}

/* A repository as Docker Hub names it: "nginx" there is "library/nginx". */
static const char *hub_repo(const char *host, const char *repo)
{
    return hub_host(host) && !strchr(repo, '/') ? NULL : repo;
}

static int same_repository(const char *ha, const char *ra, const char *hb, const char *rb)
{
    const char *a = hub_repo(ha, ra), *b = hub_repo(hb, rb);
    if (a && b) return !strcmp(a, b);
    /* one or both official images: compare with library/ prepended */
    const char *x = a ? a : ra, *y = b ? b : rb;
    if (!a && !b) return !strcmp(x, y);
    const char *lib = a ? x : y, *bare = a ? y : x;
    return !strncmp(lib, "library/", 8) && !strcmp(lib + 8, bare);
}

int decide_new_image(const char *current, const struct push *p, int pin, char *out, size_t len,
                     char *reason, size_t reasonlen)
{
    struct image_ref cur, nw;
    if (len) out[0] = '\0';
    if (!current || ref_parse_image(current, &cur) < 0) {
        snprintf(reason, reasonlen, "cannot parse the app's current image \"%.200s\"",
                 current ? current : "");
        return -1;
    }
    memset(&nw, 0, sizeof nw);
    memcpy(nw.host, cur.host, sizeof nw.host);
    /* The app's own spelling of the same repository: Docker Hub's "nginx" stays "nginx" when
     * the push names "library/nginx", so the image string changes only when the image does. */
    snprintf(nw.repository, sizeof nw.repository, "%s",
             same_repository(cur.host, cur.repository, p->host, p->repository) ? cur.repository
                                                                               : p->repository);
    snprintf(nw.tag, sizeof nw.tag, "%s", p->tag);
    if (pin) snprintf(nw.digest, sizeof nw.digest, "%s", p->digest);
    if (strlen(p->repository) >= sizeof nw.repository || strlen(p->tag) >= sizeof nw.tag ||
        ref_format_image(&nw, out, len) < 0) {
        snprintf(reason, reasonlen, "the new image reference would be too long");
        if (len) out[0] = '\0'; /* never a shortened reference */
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- choosing */

/* 1 when a should win over b, b having arrived earlier. Pushes matched by a semver: pattern
 * are ranked by version (then time); the others by time. */
static int newer(const struct push *a, const struct push *b, int by_version)
{
    struct semver va, vb;
    char e[64];
    if (by_version && semver_parse(a->tag, 1, &va, e, sizeof e) == 0 &&
        semver_parse(b->tag, 1, &vb, e, sizeof e) == 0) {
        int c = semver_compare(&va, &vb);
        if (c) return c > 0;
    }
    if (a->timestamp_ns && b->timestamp_ns && a->timestamp_ns != b->timestamp_ns)
        return a->timestamp_ns > b->timestamp_ns;
    return 1; /* the later arrival */
}

int decide_match(const match_set *ms, const char *current, const struct push *p, char *why,
                 size_t whylen, int *semver)
{
    if (!whylen) why = NULL; /* no reasons: none is formatted (the dispatcher's hot path) */
    int sv = 0;
    if (!ms) {
        if (why) snprintf(why, whylen, "the app's label is gone or invalid");
        return 0;
    }
    /* The running tag can only turn a match into a miss, so most apps of a large listing are
     * told apart without parsing their image. */
    struct match_subject s = {p->host, p->repository, p->tag, NULL};
    if (!match_test_semver(ms, &s, why, whylen, &sv)) return 0;
    struct image_ref cur;
    if (current && ref_parse_image(current, &cur) == 0 && cur.tag[0] && strcmp(cur.tag, p->tag)) {
        s.current_tag = cur.tag;
        if (!match_test_semver(ms, &s, why, whylen, &sv)) {
            if (why)
                snprintf(why, whylen,
                         "%.100s is older than the version the app runs (%.100s): never deployed "
                         "over a higher version",
                         p->tag, cur.tag);
            return 0;
        }
    }
    if (semver) *semver = sv;
    return 1;
}

int decide_choose(const match_set *ms, const struct app_view *v, const struct push *const *p,
                  size_t n, enum decide_pick *verdict, char (*why)[DECIDE_REASON_MAX])
{
    /* Pass 1: which pushes still match, and which by a semver: pattern. */
    int by_version = 0;
    for (size_t i = 0; i < n; i++) {
        int semver = 0;
        char r[DECIDE_REASON_MAX - 64];
        verdict[i] = DECIDE_SUPERSEDED;
        if (!decide_match(ms, v->image, p[i], r, sizeof r, &semver)) {
            verdict[i] = DECIDE_NOT_MATCHING;
            snprintf(
                why[i], DECIDE_REASON_MAX, "%s%s",
                strstr(r, "is older than") ? "" : "no longer matches what the app runs now: ", r);
            continue;
        }
        why[i][0] = semver ? 'v' : 't'; /* remembered for pass 2 */
        by_version |= semver;
    }
    /* Pass 2: with a semver: pattern in play, only its pushes compete (a label mixing kinds
     * would otherwise have no consistent order); the best by version, then time, then arrival. */
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (verdict[i] == DECIDE_NOT_MATCHING || (by_version && why[i][0] != 'v')) continue;
        if (best < 0 || newer(p[i], p[best], by_version)) best = (int)i;
    }
    if (best < 0) return -1;
    verdict[best] = DECIDE_PICKED;
    why[best][0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (verdict[i] == DECIDE_SUPERSEDED)
            snprintf(why[i], DECIDE_REASON_MAX, "%s (%.150s:%.100s) will deploy instead",
                     by_version ? "a higher version" : "a newer push", p[best]->repository,
                     p[best]->tag);
    return best;
}

/* ---------------------------------------------------------------- one job */

static int skip(struct decision *d, const char *state, const char *reason)
{
    d->action = DECIDE_SKIP;
    d->state = state;
    if (reason != d->reason) snprintf(d->reason, sizeof d->reason, "%s", reason);
    return 0;
}

int decide_job(const struct config *cfg, const struct app_view *v, const struct push *p,
               int sent_unanswered, struct decision *d)
{
    memset(d, 0, sizeof *d);
    if (!v->image) return skip(d, "skipped", "the app has no container.docker.image to update");
    const char *gate = decide_gate(cfg, v->id, v->paused);
    if (gate) return skip(d, "skipped", gate);
    int pin = cfg->pin_digest || v->pin;
    if (decide_new_image(v->image, p, pin, d->new_image, sizeof d->new_image, d->reason,
                         sizeof d->reason) < 0)
        return skip(d, "skipped", d->reason);
    d->force = cfg->force || v->force;
    int same_image = !strcmp(v->image, d->new_image);
    if (same_image && p->digest[0] && v->digest && !strcmp(v->digest, p->digest)) {
        if (v->deployment) {
            d->action = DECIDE_FOLLOW;
        } else if (sent_unanswered) {
            d->action = DECIDE_LANDED;
        } else {
            d->action = DECIDE_UNCHANGED;
            d->state = "unchanged";
            snprintf(d->reason, sizeof d->reason, "%s",
                     p->replayed ? "the app already runs this image and digest: its deployment "
                                   "ended while autodeployd was stopped"
                                 : "the app already runs this image and digest");
        }
        return 0;
    }
    int64_t deployed_ns;
    if (v->pushed_at && p->timestamp_ns && event_parse_rfc3339(v->pushed_at, &deployed_ns) == 0 &&
        deployed_ns > p->timestamp_ns) {
        char r[DECIDE_REASON_MAX];
        snprintf(r, sizeof r, "the push is older than the one the app runs (pushed at %.64s)",
                 v->pushed_at);
        return skip(d, "skipped", r);
    }
    if (cfg->dry_run) {
        char r[DECIDE_REASON_MAX];
        snprintf(r, sizeof r, "dry run: would deploy %.200s (now %.200s)", d->new_image, v->image);
        return skip(d, "dry_run", r);
    }
    /* A push without a digest (deployed by tag, --verify-push off) may name a tag the agents
     * hold an older copy of, whatever the image string was before: always pulled afresh. */
    d->mutable_tag = (same_image && !pin) || !p->digest[0];
    d->action = DECIDE_DEPLOY;
    return 0;
}

enum decide_verified decide_verify(const char *mode, const struct push *p, const char *image,
                                   const struct verify_answer *a, int out_of_time, int settled,
                                   char *reason, size_t len)
{
    reason[0] = '\0';
    if (!mode || !strcmp(mode, "off")) return VERIFIED_DEPLOY;
    int final = settled || out_of_time;
    if (a->res == REGISTRY_OK) {
        if (!p->digest[0] || !strcmp(a->digest, p->digest)) return VERIFIED_DEPLOY;
        snprintf(reason, len,
                 final ? "superseded in the registry by %.80s (the tag moved since this push)"
                       : "the registry's tag still points at %.80s: asking again",
                 a->digest);
        return final ? VERIFIED_MOVED : VERIFIED_RETRY;
    }
    if (a->res == REGISTRY_NOT_FOUND) {
        snprintf(reason, len,
                 final ? "the image is not in the registry (%.300s)"
                       : "the registry does not have %.300s yet: asking again",
                 image);
        return final ? VERIFIED_MISSING : VERIFIED_RETRY;
    }
    if (!out_of_time) return VERIFIED_RETRY;
    const char *what = a->res == REGISTRY_AUTH          ? "registry refused the credentials"
                       : a->res == REGISTRY_UNREACHABLE ? "registry unreachable"
                                                        : "registry error";
    if (!strcmp(mode, "warn")) {
        snprintf(reason, len, "deployed without verification (%s: %.300s)", what, a->err);
        return VERIFIED_WARN;
    }
    snprintf(reason, len, "%s: %.400s", what, a->err);
    return VERIFIED_FAIL;
}

int decide_adopt_digest(struct push *p, const struct verify_answer *a)
{
    if (p->digest[0] || a->res != REGISTRY_OK || !ref_valid_digest(a->digest)) return 0;
    memcpy(p->digest, a->digest, strlen(a->digest) + 1); /* 71 bytes: valid digests fit */
    return 1;
}

/* The app's container with docker.image replaced; NULL when out of memory. */
static cJSON *container_with(const struct app_view *v, const char *image, int force_pull)
{
    cJSON *container = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(v->json, "container"), 1);
    cJSON *docker = cJSON_GetObjectItemCaseSensitive(container, "docker");
    if (!cJSON_IsObject(docker)) {
        cJSON_Delete(container); /* callers only build bodies for apps with a docker image */
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(docker, "image");
    cJSON_AddStringToObject(docker, "image", image);
    if (force_pull) {
        /* Same image string, new digest: make the agents pull instead of reusing their copy. */
        if (cJSON_GetObjectItemCaseSensitive(docker, "forcePullImage"))
            cJSON_ReplaceItemInObjectCaseSensitive(docker, "forcePullImage", cJSON_CreateTrue());
        else
            cJSON_AddTrueToObject(docker, "forcePullImage");
    }
    return container;
}

static cJSON *labels_copy(const struct app_view *v)
{
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(v->json, "labels");
    return cJSON_IsObject(old) ? cJSON_Duplicate(old, 1) : cJSON_CreateObject();
}

static void label_put(cJSON *labels, const char *k, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(labels, k);
    if (value) cJSON_AddStringToObject(labels, k, value);
}

static char *print_body(cJSON *container, cJSON *labels)
{
    cJSON *body = cJSON_CreateObject();
    char *s = NULL;
    if (body && container && labels) {
        cJSON_AddItemToObject(body, "container", container);
        cJSON_AddItemToObject(body, "labels", labels);
        s = cJSON_PrintUnformatted(body);
    } else {
        cJSON_Delete(container);
        cJSON_Delete(labels);
    }
    cJSON_Delete(body);
    return s;
}

char *decide_update_body(const struct app_view *v, const struct decision *d, const struct push *p,
                         const char *deployed_at)
{
    cJSON *labels = labels_copy(v);
    /* A push deployed by tag, its digest unknown (--verify-push off), removes the previous
     * push's autodeploy.digest rather than leave it claiming another image. */
    const char *set[] = {p->digest[0] ? p->digest : NULL, p->pusher[0] ? p->pusher : "unknown",
                         deployed_at, p->timestamp[0] ? p->timestamp : NULL};
    /* A push without a time removes the previous push's autodeploy.pushed-at: every label
     * then describes the image deployed. */
    for (size_t i = 0; decide_own_labels[i] && labels; i++)
        label_put(labels, decide_own_labels[i], set[i]);
    return print_body(container_with(v, d->new_image, d->mutable_tag), labels);
}

char *decide_rollback_body(const struct app_view *now, const char *old_image,
                           const char *old_digest, const char *new_image, const cJSON *old_docker,
                           const cJSON *old_labels)
{
    char pinned[REF_IMAGE_MAX];
    struct image_ref r;
    /* A mutable tag (the same string before and after) is pinned to the digest that ran before:
     * the string alone would pull the failed bits again. */
    if (!strcmp(old_image, new_image) && old_digest && ref_valid_digest(old_digest) &&
        ref_parse_image(old_image, &r) == 0 && !r.digest[0]) {
        snprintf(r.digest, sizeof r.digest, "%s", old_digest);
        if (ref_format_image(&r, pinned, sizeof pinned) == 0) old_image = pinned;
    }
    cJSON *labels = labels_copy(now);
    for (size_t i = 0; decide_own_labels[i] && labels; i++)
        label_put(labels, decide_own_labels[i], jstr(old_labels, decide_own_labels[i]));
    cJSON *container = container_with(now, old_image, 0);
    /* forcePullImage as it was before our update (we may have set it for a mutable tag). */
    cJSON *docker = cJSON_GetObjectItemCaseSensitive(container, "docker");
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(old_docker, "forcePullImage");
    if (docker) {
        cJSON_DeleteItemFromObjectCaseSensitive(docker, "forcePullImage");
        if (fp) cJSON_AddItemToObject(docker, "forcePullImage", cJSON_Duplicate(fp, 1));
    }
    return print_body(container, labels);
}

/* ---------------------------------------------------------------- after the end */

int decide_version_cmp(const char *a, const char *b)
{
    int64_t x, y;
    if (a && b && event_parse_rfc3339(a, &x) == 0 && event_parse_rfc3339(b, &y) == 0)
        return x < y ? -1 : x > y;
    return a && b ? strcmp(a, b) : 0;
}

enum decide_owner decide_owner(const struct app_view *v, const char *our_image,
                               const char *our_digest, const char *our_version, char *reason,
                               size_t reasonlen)
{
    char scratch[8];
    if (!reason) {
        reason = scratch;
        reasonlen = sizeof scratch;
    }
    if (our_digest && !our_digest[0]) our_digest = NULL; /* deployed by tag: no digest label */
    if (!v->image || strcmp(v->image, our_image) != 0 ||
        (our_digest && (!v->digest || strcmp(v->digest, our_digest) != 0))) {
        snprintf(reason, reasonlen,
                 "cancelled by another writer: the app now runs %.300s (autodeployd leaves it so)",
                 v->image ? v->image : "no image");
        return OWNER_CHANGED;
    }
    if (v->deployment) {
        snprintf(reason, reasonlen, "deployment %.127s took over with the same image",
                 v->deployment);
        return OWNER_TAKEN_OVER;
    }
    /* Tasks started at or after the configuration run it; a scale keeps the configuration. */
    const char *since = v->config_version;
    if (!since || (our_version && decide_version_cmp(since, our_version) < 0)) since = our_version;
    int running = 0, want = v->instances < 0 ? 1 : v->instances;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(v->json, "tasks"))
    {
        const char *tv = jstr(t, "version"), *st = jstr(t, "state");
        if (tv && st && !strcmp(st, "TASK_RUNNING") &&
            (!since || decide_version_cmp(tv, since) >= 0))
            running++;
    }
    if (running >= want) {
        snprintf(reason, reasonlen, "%d of %d tasks run the new configuration", running, want);
        return OWNER_SUCCEEDED;
    }
    const char *msg = jstr(cJSON_GetObjectItemCaseSensitive(v->json, "lastTaskFailure"), "message");
    snprintf(reason, reasonlen,
             "the deployment ended with %d of %d tasks running the new version%s%.300s", running,
             want, msg && *msg ? "; last task failure: " : "", msg ? msg : "");
    return OWNER_FAILED;
}

/* ---------------------------------------------------------------- reconcile */

/* Candidate c as a push, for the matching rule (only host, repository and tag are read). */
static void candidate_push(const struct reconcile_candidate *c, struct push *p)
{
    p->host[0] = p->repository[0] = p->tag[0] = '\0';
    snprintf(p->host, sizeof p->host, "%s", c->host ? c->host : "");
    snprintf(p->repository, sizeof p->repository, "%s", c->repository);
    snprintf(p->tag, sizeof p->tag, "%s", c->tag);
}

enum reconcile_mode decide_reconcile_mode(const match_set *ms, const char *image,
                                          const struct reconcile_candidate *c, size_t n,
                                          unsigned char *matched)
{
    int any = 0, semver_any = 0, all_exact = 1;
    struct push p;
    memset(&p, 0, sizeof p);
    for (size_t i = 0; i < n; i++) {
        int sv = 0;
        candidate_push(&c[i], &p);
        matched[i] = (unsigned char)decide_match(ms, image, &p, NULL, 0, &sv);
        if (!matched[i]) continue;
        any = 1;
        semver_any |= sv;
        all_exact &= c[i].exact;
    }
    if (!any) return RECONCILE_NONE;
    if (semver_any) return RECONCILE_SEMVER;
    return all_exact ? RECONCILE_EXACT : RECONCILE_NEWEST;
}

/* 1 when image names candidate c's repository and tag (the host is not compared: the app's
 * registry is the one asked; Docker Hub's "nginx" and "library/nginx" are one repository). */
static int runs(const struct image_ref *cur, const struct reconcile_candidate *c)
{
    return same_repository(cur->host, cur->repository, c->host, c->repository) &&
           !strcmp(cur->tag, c->tag);
}

/* Orders candidates by created time (missing = oldest), then tag name. */
static int created_cmp(const struct reconcile_candidate *a, const struct reconcile_candidate *b)
{
    if (a->created_ns != b->created_ns) return a->created_ns > b->created_ns ? 1 : -1;
    return strcmp(a->tag, b->tag);
}

static int verdict(struct reconcile_verdict *out, enum reconcile_action a, int pick,
                   const char *fmt, const char *x, const char *y)
{
    out->action = a;
    out->pick = pick;
    snprintf(out->reason, sizeof out->reason, fmt, x ? x : "", y ? y : "");
    return 0;
}

static int choose_semver(const match_set *ms, const char *image, const struct image_ref *cur,
                         const struct reconcile_candidate *c, size_t n,
                         const unsigned char *matched, struct reconcile_verdict *out)
{
    struct push a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        int sv = 0;
        if (!matched[i]) continue;
        candidate_push(&c[i], &a);
        if (!decide_match(ms, image, &a, NULL, 0, &sv) || !sv) continue;
        if (best >= 0) candidate_push(&c[best], &b);
        if (best < 0 || newer(&a, &b, 1)) best = (int)i;
    }
    if (best < 0) return verdict(out, RECONCILE_NOTHING, -1, "no version in range%s%s", "", "");
    if (cur && runs(cur, &c[best]))
        return verdict(out, RECONCILE_NOTHING, -1, "runs the highest version in range (%.100s)%s",
                       c[best].tag, "");
    return verdict(out, RECONCILE_DEPLOY, best, "%.100s is the highest version in range%s",
                   c[best].tag, "");
}

static int choose_exact(const char *image, const struct image_ref *cur, const char *digest_label,
                        const char *baseline, const struct reconcile_candidate *c, size_t n,
                        const unsigned char *matched, struct reconcile_verdict *out)
{
    int pick = -1;
    for (size_t i = 0; i < n; i++)
        if (matched[i] && (pick < 0 || (cur && runs(cur, &c[i])))) pick = (int)i;
    const struct reconcile_candidate *x = &c[pick];
    if (!x->digest || !x->digest[0])
        return verdict(out, RECONCILE_NOTHING, -1, "the registry gave no digest for %.100s%s",
                       x->tag, "");
    if (!cur || !runs(cur, x))
        return verdict(out, RECONCILE_DEPLOY, pick, "the app runs %.200s, not %.100s", image,
                       x->tag);
    const char *known = digest_label && digest_label[0] ? digest_label
                        : cur->digest[0]                ? cur->digest
                                                        : baseline;
    if (!known || !known[0])
        return verdict(out, RECONCILE_ADOPT, pick,
                       "deployed by hand: the digest it runs was never recorded; %.80s becomes "
                       "the baseline%s",
                       x->digest, "");
    if (!strcmp(known, x->digest))
        return verdict(out, RECONCILE_NOTHING, -1, "runs the tag's current digest%s%s", "", "");
    return verdict(out, RECONCILE_DEPLOY, pick, "the tag moved to %.80s (the app runs %.80s)",
                   x->digest, known);
}

static int choose_newest(const struct image_ref *cur, const struct reconcile_candidate *c, size_t n,
                         const unsigned char *matched, struct reconcile_verdict *out)
{
    int best = -1, running = -1;
    for (size_t i = 0; i < n; i++) {
        if (!matched[i]) continue;
        if (cur && runs(cur, &c[i])) running = (int)i;
        if (best < 0 || created_cmp(&c[i], &c[best]) > 0) best = (int)i;
    }
    if (running >= 0 && c[running].created_ns >= c[best].created_ns)
        return verdict(out, RECONCILE_NOTHING, -1, "runs the newest matching image (%.100s)%s",
                       c[running].tag, "");
    if (running >= 0)
        return verdict(out, RECONCILE_DEPLOY, best,
                       "%.100s is newer than %.100s, which the app runs", c[best].tag,
                       c[running].tag);
    return verdict(out, RECONCILE_DEPLOY, best,
                   "%.100s is the newest matching image; the app runs none of them%s", c[best].tag,
                   "");
}

int decide_reconcile(const match_set *ms, const char *image, const char *digest_label,
                     const char *baseline, const struct reconcile_candidate *c, size_t n,
                     struct reconcile_verdict *out)
{
    memset(out, 0, sizeof *out);
    out->pick = -1;
    unsigned char stack[64], *matched = n <= sizeof stack ? stack : malloc(n);
    if (!matched) return verdict(out, RECONCILE_NOTHING, -1, "out of memory%s%s", "", "");
    struct image_ref ref, *cur = image && ref_parse_image(image, &ref) == 0 ? &ref : NULL;
    switch (decide_reconcile_mode(ms, image, c, n, matched)) {
    case RECONCILE_NONE:
        verdict(out, RECONCILE_NOTHING, -1, "no tag in the registry matches the label%s%s", "", "");
        break;
    case RECONCILE_SEMVER:
        choose_semver(ms, image, cur, c, n, matched, out);
        break;
    case RECONCILE_EXACT:
        choose_exact(image, cur, digest_label, baseline, c, n, matched, out);
        break;
    case RECONCILE_NEWEST:
        choose_newest(cur, c, n, matched, out);
        break;
    }
    if (matched != stack) free(matched);
    return 0;
}
