/*
 * reconcile.c: never miss a push. Every --reconcile-interval (with jitter), and when asked by
 * POST /v1/reconcile, one cycle:
 *   1. lists the labelled apps (the dispatcher's listing);
 *   2. asks each registry once per repository that some app's patterns can match: a pattern
 *      naming one exact tag costs a HEAD of that tag, any other pattern a tags/list (all pages);
 *   3. chooses per app what it should run (decide_reconcile: the rules live in decide.c), asking
 *      only what the choice needs: created times for glob and regex patterns (remembered per
 *      tag and per digest, so a steady cycle asks nothing more), the winner's digest for semver;
 *   4. hands each app's choice to that app's queue (job_submit_reconciled), where it is deployed,
 *      verified and reported like a pushed image, "found by reconcile".
 * A registry that cannot be asked skips its apps for the cycle (a warning and a metric), never a
 * deploy decision. An app running its exact tag at a digest autodeployd never recorded (deployed
 * by hand) is adopted: the registry's digest is remembered as its baseline, not deployed.
 *
 * Threads: one reconcile thread; GET /v1/reconcile runs a dry cycle on the plan thread.
 * cycle_mu serialises cycles and guards the caches.
 */
#include "job.h"

#include "listing.h"
#include "log.h"
#include "metrics.h"
#include "reference.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CACHE_MAX 200000 /* remembered tags and digests; past it the caches start again */
#define TARGETS_MAX 64   /* patterns per label (match.c's limit) */

/* ---------------------------------------------------------------- a small string map */

struct entry {
    struct entry *next;
    char digest[PUSH_DIGEST_MAX]; /* "" unknown */
    int64_t created_ns;
    int has_created;
    int broken; /* images: its manifest or config cannot be read (the registry said so) */
    char key[];
};

struct strmap {
    struct entry **b;
    size_t nb, n;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static void map_clear(struct strmap *m)
{
    for (size_t i = 0; i < m->nb; i++)
        for (struct entry *e = m->b[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(m->b);
    memset(m, 0, sizeof *m);
}

/* The entry for key; created (zeroed) when create and absent. NULL when absent or out of
 * memory. */
static struct entry *map_get(struct strmap *m, const char *key, int create)
{
    if (!m->nb) {
        if (!create || !(m->b = calloc(4096, sizeof *m->b))) return NULL;
        m->nb = 4096;
    }
    size_t i = fnv(key) % m->nb;
    for (struct entry *e = m->b[i]; e; e = e->next)
        if (!strcmp(e->key, key)) return e;
    if (!create) return NULL;
    if (m->n >= CACHE_MAX) {
        map_clear(m);
        return map_get(m, key, create);
    }
    size_t kl = strlen(key) + 1;
    struct entry *e = calloc(1, sizeof *e + kl);
    if (!e) return NULL;
    memcpy(e->key, key, kl);
    e->next = m->b[i];
    m->b[i] = e;
    m->n++;
    return e;
}

/* ---------------------------------------------------------------- the reconciler */

struct reconciler {
    struct deployer *d;
    pthread_t thread;
    int started;
    pthread_mutex_t mu; /* wake, and the thread's waits */
    pthread_cond_t cv;  /* CLOCK_MONOTONIC */
    int wake;
    atomic_int stop;
    pthread_mutex_t cycle_mu; /* one cycle at a time; guards what follows */
    struct strmap tags;       /* "host/repository:tag" -> digest, created */
    struct strmap images;     /* "host/repository@digest" -> created */
    struct strmap adopted;    /* app id -> baseline digest */
    unsigned seed;
};

/* One repository asked in a cycle. */
struct exact {
    char *tag;
    char digest[PUSH_DIGEST_MAX];
    int found;
};

struct repo {
    char *host, *name;
    int list;    /* some pattern needs every tag */
    char **tags; /* tags/list's answer */
    size_t n_tags;
    struct exact *ex; /* tags named exactly */
    size_t n_ex;
    int failed; /* the registry_result that failed it, + 1; 0 when it answered */
    char err[256];
};

struct app_work {
    const struct listed_app *a;
    const match_set *ms;
    struct image_ref cur;
    int has_cur;
};

/* A choice to deploy, grouped by image at the end of the cycle. */
struct choice {
    struct push p;
    const char *app;
};

struct cycle {
    struct reconciler *rc;
    int dry;
    struct repo *repos;
    size_t n_repos;
    struct choice *ch;
    size_t n_ch;
    struct buf *plan; /* NULL: no plan wanted */
    /* When the cycle began (wall clock): the pushes it makes carry it as their time, so a
     * notification of an older push that arrives after reconcile deployed a newer image is
     * "older than the one the app runs" and never deploys over it. */
    char started[PUSH_TS_MAX];
    int64_t started_ns;
    int plan_n;
    unsigned long tags_lists, heads, created_gets, deploys, adopted, skipped;
};

static int stopping(const struct cycle *c)
{
    return atomic_load(&c->rc->stop) || job_stopping(c->rc->d) ||
           atomic_load(&c->rc->d->draining) || registry_abandoned();
}

/* Takes cycle_mu, unless this thread's work is abandoned meanwhile (a preview when the server
 * stops, while a cycle holds the lock): 0, or -1. */
static int cycle_lock(struct reconciler *rc)
{
    while (pthread_mutex_trylock(&rc->cycle_mu) != 0) {
        if (registry_abandoned()) return -1;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static struct repo *repo_find(struct cycle *c, const char *host, const char *name)
{
    for (size_t i = 0; i < c->n_repos; i++)
        if (!strcmp(c->repos[i].host, host) && !strcmp(c->repos[i].name, name)) return &c->repos[i];
    return NULL;
}

static struct repo *repo_get(struct cycle *c, const char *host, const char *name)
{
    struct repo *r = repo_find(c, host, name);
    if (r) return r;
    struct repo *nr = realloc(c->repos, (c->n_repos + 1) * sizeof *nr);
    if (!nr) return NULL;
    c->repos = nr;
    r = &c->repos[c->n_repos];
    memset(r, 0, sizeof *r);
    r->host = strdup(host);
    r->name = strdup(name);
    if (!r->host || !r->name) {
        free(r->host);
        free(r->name);
        return NULL;
    }
    c->n_repos++;
    return r;
}

static int exact_add(struct repo *r, const char *tag)
{
    for (size_t i = 0; i < r->n_ex; i++)
        if (!strcmp(r->ex[i].tag, tag)) return 0;
    struct exact *n = realloc(r->ex, (r->n_ex + 1) * sizeof *n);
    if (!n) return -1;
    r->ex = n;
    memset(&r->ex[r->n_ex], 0, sizeof r->ex[0]);
    if (!(r->ex[r->n_ex].tag = strdup(tag))) return -1;
    r->n_ex++;
    return 0;
}

static void repos_free(struct cycle *c)
{
    for (size_t i = 0; i < c->n_repos; i++) {
        struct repo *r = &c->repos[i];
        registry_tags_free(r->tags, r->n_tags);
        for (size_t k = 0; k < r->n_ex; k++)
            free(r->ex[k].tag);
        free(r->ex);
        free(r->host);
        free(r->name);
    }
    free(c->repos);
}

/* The registry host a target is asked at: the pattern's own, else the one the app pulls from. */
static const char *target_host(const struct match_target *t, const struct app_work *w)
{
    return t->host ? t->host : w->has_cur ? w->cur.host : "";
}

/* ---------------------------------------------------------------- the plan (JSON) */

static void plan_app(struct cycle *c, const char *id, const char *image, const char *action,
                     const char *new_image, const char *reason)
{
    if (!c->plan) return;
    struct buf *b = c->plan;
    buf_adds(b, c->plan_n++ ? ",{\"id\":" : "{\"id\":");
    buf_add_json_string(b, id);
    buf_adds(b, ",\"image\":");
    buf_add_json_string(b, image ? image : "");
    buf_adds(b, ",\"action\":");
    buf_add_json_string(b, action);
    if (new_image) {
        buf_adds(b, ",\"new_image\":");
        buf_add_json_string(b, new_image);
    }
    buf_adds(b, ",\"reason\":");
    buf_add_json_string(b, reason);
    buf_adds(b, "}");
}

/* ---------------------------------------------------------------- 1. what to ask */

static void collect(struct cycle *c, struct app_work *w)
{
    struct match_target t[TARGETS_MAX];
    size_t n = match_targets(w->ms, t, TARGETS_MAX);
    for (size_t i = 0; i < n && i < TARGETS_MAX; i++) {
        /* wildcards in the repository, or a tag no registry can have: nothing to ask */
        if (!t[i].repository || (t[i].tag && !ref_valid_tag(t[i].tag))) continue;
        struct repo *r = repo_get(c, target_host(&t[i], w), t[i].repository);
        if (!r) continue;
        if (t[i].tag)
            exact_add(r, t[i].tag);
        else
            r->list = 1;
    }
}

/* ---------------------------------------------------------------- 2. asking */

static void tag_key(char *k, size_t n, const char *host, const char *repo, const char *tag)
{
    snprintf(k, n, "%s/%s:%s", host, repo, tag);
}

/* HEAD of host/repo:tag; remembers the digest. REGISTRY_OK with digest filled. */
static enum registry_result head(struct cycle *c, const char *host, const char *repo,
                                 const char *tag, char *digest, char *err, size_t errlen)
{
    c->heads++;
    enum registry_result res = registry_manifest_digest(c->rc->d->registry, host, repo, tag, digest,
                                                        PUSH_DIGEST_MAX, err, errlen);
    if (res != REGISTRY_OK) return res;
    char k[PUSH_HOST_MAX + PUSH_REPO_MAX + PUSH_TAG_MAX + 4];
    tag_key(k, sizeof k, host, repo, tag);
    struct entry *e = map_get(&c->rc->tags, k, 1);
    if (e && strcmp(e->digest, digest)) { /* new, or the tag moved */
        snprintf(e->digest, sizeof e->digest, "%s", digest);
        e->has_created = 0;
    }
    return res;
}

static void repo_failed(struct repo *r, enum registry_result res, const char *err)
{
    r->failed = (int)res + 1;
    snprintf(r->err, sizeof r->err, "%s: %.200s", registry_result_name(res), err);
    metrics_add("autodeploy_reconcile_registry_errors_total", "registry",
                r->host[0] ? r->host : "docker.io", 1);
    log_warn("reconcile: cannot ask the registry; its apps are skipped this cycle", "registry",
             r->host[0] ? r->host : "docker.io", "repository", r->name, "error", r->err, NULL);
}

/* A registry that did not answer this cycle is not asked again in it. */
static const struct repo *host_down(const struct cycle *c, const struct repo *r)
{
    for (const struct repo *o = c->repos; o < r; o++)
        if (o->failed == REGISTRY_UNREACHABLE + 1 && !strcmp(o->host, r->host)) return o;
    return NULL;
}

static void ask(struct cycle *c, struct repo *r)
{
    char err[512];
    const struct repo *down = host_down(c, r);
    if (down) {
        r->failed = down->failed;
        snprintf(r->err, sizeof r->err, "%s", down->err);
        return;
    }
    if (r->list) {
        c->tags_lists++;
        enum registry_result res = registry_tags(c->rc->d->registry, r->host, r->name, 0, &r->tags,
                                                 &r->n_tags, err, sizeof err);
        if (res == REGISTRY_NOT_FOUND) {
            r->tags = NULL;
            r->n_tags = 0;
        } else if (res != REGISTRY_OK) {
            repo_failed(r, res, err);
            return;
        }
    }
    for (size_t i = 0; i < r->n_ex && !stopping(c); i++) {
        enum registry_result res =
            head(c, r->host, r->name, r->ex[i].tag, r->ex[i].digest, err, sizeof err);
        if (res == REGISTRY_OK)
            r->ex[i].found = 1;
        else if (res != REGISTRY_NOT_FOUND) {
            repo_failed(r, res, err);
            return;
        }
    }
}

/* ---------------------------------------------------------------- 3. choosing */

/* The candidates of one app: every tag of its repositories, and its exact tags. */
struct cands {
    struct reconcile_candidate *c;
    size_t n, cap;
};

static int cand_add(struct cands *cs, const struct repo *r, const char *tag, const char *digest,
                    int exact, struct reconciler *rc)
{
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 32;
        struct reconcile_candidate *n = realloc(cs->c, cap * sizeof *n);
        if (!n) return -1;
        cs->c = n;
        cs->cap = cap;
    }
    struct reconcile_candidate *x = &cs->c[cs->n++];
    memset(x, 0, sizeof *x);
    x->host = r->host;
    x->repository = r->name;
    x->tag = tag;
    x->digest = digest;
    x->exact = exact;
    char k[PUSH_HOST_MAX + PUSH_REPO_MAX + PUSH_TAG_MAX + 4];
    tag_key(k, sizeof k, r->host, r->name, tag);
    const struct entry *e = map_get(&rc->tags, k, 0);
    if (e && e->digest[0]) {
        if (!digest) x->digest = e->digest;
        if (e->has_created && (!digest || !strcmp(digest, e->digest)))
            x->created_ns = e->created_ns;
    }
    return 0;
}

/* Builds the candidates of w; NULL why when it can be decided, else why not. */
static const char *candidates(struct cycle *c, struct app_work *w, struct cands *cs)
{
    struct match_target t[TARGETS_MAX];
    size_t n = match_targets(w->ms, t, TARGETS_MAX);
    int any = 0;
    for (size_t i = 0; i < n && i < TARGETS_MAX; i++) {
        if (!t[i].repository || (t[i].tag && !ref_valid_tag(t[i].tag))) continue;
        struct repo *r = repo_find(c, target_host(&t[i], w), t[i].repository);
        if (!r) return "out of memory";
        if (r->failed) return r->err;
        any = 1;
        if (t[i].tag) {
            for (size_t k = 0; k < r->n_ex; k++)
                if (!strcmp(r->ex[k].tag, t[i].tag) && r->ex[k].found &&
                    cand_add(cs, r, r->ex[k].tag, r->ex[k].digest, 1, c->rc) < 0)
                    return "out of memory";
            continue;
        }
        /* A listed tag outside Docker's grammar could be neither asked about nor deployed
         * (and would not fit the caches' keys): it is no candidate. */
        for (size_t k = 0; k < r->n_tags; k++)
            if (ref_valid_tag(r->tags[k]) && cand_add(cs, r, r->tags[k], NULL, 0, c->rc) < 0)
                return "out of memory";
    }
    return any ? NULL : "its patterns name no repository (wildcards): nothing to ask";
}

/* The created time of candidate x (asked once per tag, and per digest). REGISTRY_OK, or the
 * answer that prevented it (err): REGISTRY_NOT_FOUND and REGISTRY_ERROR are about this tag
 * only (gone since the list, an image whose config cannot be read: remembered per digest). */
static enum registry_result fill_created(struct cycle *c, struct reconcile_candidate *x, char *err,
                                         size_t errlen)
{
    char k[PUSH_HOST_MAX + PUSH_REPO_MAX + PUSH_TAG_MAX + PUSH_DIGEST_MAX + 4];
    tag_key(k, sizeof k, x->host, x->repository, x->tag);
    struct entry *te = map_get(&c->rc->tags, k, 1);
    if (!te) return snprintf(err, errlen, "out of memory"), REGISTRY_UNREACHABLE;
    if (te->has_created && te->digest[0]) {
        x->digest = te->digest;
        x->created_ns = te->created_ns;
        return REGISTRY_OK;
    }
    if (!te->digest[0]) {
        char dg[PUSH_DIGEST_MAX];
        enum registry_result res = head(c, x->host, x->repository, x->tag, dg, err, errlen);
        if (res != REGISTRY_OK) return res;
    }
    snprintf(k, sizeof k, "%s/%s@%s", x->host, x->repository, te->digest);
    struct entry *ie = map_get(&c->rc->images, k, 1);
    if (!ie) return snprintf(err, errlen, "out of memory"), REGISTRY_UNREACHABLE;
    if (ie->broken) return snprintf(err, errlen, "its image cannot be read"), REGISTRY_ERROR;
    if (!ie->has_created) {
        c->created_gets++;
        enum registry_result res = registry_image_created(
            c->rc->d->registry, x->host, x->repository, te->digest, &ie->created_ns, err, errlen);
        ie->broken = res == REGISTRY_ERROR; /* a digest's content never changes */
        if (res != REGISTRY_OK) return res;
        ie->has_created = 1;
    }
    te->created_ns = ie->created_ns;
    te->has_created = 1;
    x->digest = te->digest;
    x->created_ns = te->created_ns;
    return REGISTRY_OK;
}

/* What the newest-by-created rule needs: the created time of every matching candidate. A tag
 * gone since the list, or whose image cannot be read, is left out (logged); a registry that
 * cannot be asked fails the app's choice (-1, err). */
static int fill_needed(struct cycle *c, const struct app_work *w, struct cands *cs, char *err,
                       size_t errlen)
{
    unsigned char stack[256], *matched = cs->n <= sizeof stack ? stack : malloc(cs->n);
    if (!matched) return snprintf(err, errlen, "out of memory"), -1;
    int rc = 0;
    size_t kept = 0;
    int newest =
        decide_reconcile_mode(w->ms, w->a->image, cs->c, cs->n, matched) == RECONCILE_NEWEST;
    for (size_t i = 0; i < cs->n; i++) {
        enum registry_result res = REGISTRY_OK;
        if (newest && matched[i] && rc == 0 && !stopping(c))
            res = fill_created(c, &cs->c[i], err, errlen);
        if (res == REGISTRY_NOT_FOUND || res == REGISTRY_ERROR) {
            log_debug("reconcile: tag left out", "app", w->a->id, "repository", cs->c[i].repository,
                      "tag", cs->c[i].tag, "reason", err, NULL);
            continue;
        }
        if (res != REGISTRY_OK) rc = -1;
        cs->c[kept++] = cs->c[i];
    }
    cs->n = kept;
    if (matched != stack) free(matched);
    return rc;
}

/* The push reconcile makes of candidate x for app w. -1 when it is no valid reference. */
static int make_push(const struct cycle *c, const struct reconcile_candidate *x, struct push *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->timestamp, sizeof p->timestamp, "%s", c->started);
    p->timestamp_ns = c->started_ns;
    snprintf(p->host, sizeof p->host, "%s", x->host);
    snprintf(p->repository, sizeof p->repository, "%s", x->repository);
    snprintf(p->tag, sizeof p->tag, "%s", x->tag);
    snprintf(p->digest, sizeof p->digest, "%s", x->digest ? x->digest : "");
    snprintf(p->source, sizeof p->source, "reconcile");
    return ref_valid_repository(p->repository) && ref_valid_tag(p->tag) &&
                   ref_valid_digest(p->digest)
               ? 0
               : -1;
}

static void adopt(struct cycle *c, const struct app_work *w, const struct reconcile_candidate *x,
                  const char *reason)
{
    if (c->dry) return;
    struct entry *e = map_get(&c->rc->adopted, w->a->id, 1);
    if (!e || !strcmp(e->digest, x->digest)) return; /* reported once */
    snprintf(e->digest, sizeof e->digest, "%s", x->digest);
    c->adopted++;
    metrics_add("autodeploy_reconcile_adopted_total", NULL, NULL, 1);
    struct push p;
    if (make_push(c, x, &p) == 0) {
        uint64_t seq = record_new(c->rc->d, &p, w->a->id);
        record_set(c->rc->d, seq, "adopted", reason, NULL);
    }
    log_info("reconcile: app adopted at the registry's digest (not redeployed)", "app", w->a->id,
             "image", w->a->image, "digest", x->digest, NULL);
}

static void choose(struct cycle *c, struct app_work *w)
{
    struct cands cs = {0};
    char err[512], dg[PUSH_DIGEST_MAX];
    const char *why = candidates(c, w, &cs);
    if (!why && fill_needed(c, w, &cs, err, sizeof err) < 0) why = err;
    struct reconcile_verdict v = {.action = RECONCILE_NOTHING, .pick = -1};
    if (!why) {
        const struct entry *base = map_get(&c->rc->adopted, w->a->id, 0);
        decide_reconcile(w->ms, w->a->image, w->a->digest, base ? base->digest : NULL, cs.c, cs.n,
                         &v);
    }
    struct reconcile_candidate *x = v.pick >= 0 ? &cs.c[v.pick] : NULL;
    /* semver chooses by tag: only the winner's digest is asked */
    if (!why && v.action == RECONCILE_DEPLOY && (!x->digest || !x->digest[0])) {
        if (head(c, x->host, x->repository, x->tag, dg, err, sizeof err) != REGISTRY_OK) why = err;
        x->digest = dg;
    }
    char img[DECIDE_IMAGE_MAX] = "";
    if (x)
        snprintf(img, sizeof img, "%s%s%s:%s", x->host, x->host[0] ? "/" : "", x->repository,
                 x->tag);
    struct push p;
    if (why) {
        c->skipped++;
        plan_app(c, w->a->id, w->a->image, "skipped", NULL, why);
    } else if (v.action == RECONCILE_NOTHING) {
        plan_app(c, w->a->id, w->a->image, "nothing", NULL, v.reason);
    } else if (v.action == RECONCILE_ADOPT) {
        plan_app(c, w->a->id, w->a->image, "adopt", img, v.reason);
        adopt(c, w, x, v.reason);
    } else if (make_push(c, x, &p) < 0) {
        plan_app(c, w->a->id, w->a->image, "skipped", img,
                 "the registry's tag or digest is no valid reference");
    } else {
        plan_app(c, w->a->id, w->a->image, "deploy", img, v.reason);
        struct choice *nc = realloc(c->ch, (c->n_ch + 1) * sizeof *nc);
        if (nc) {
            c->ch = nc;
            c->ch[c->n_ch].p = p;
            c->ch[c->n_ch++].app = w->a->id;
        }
    }
    free(cs.c);
}

/* ---------------------------------------------------------------- 4. deploying */

static int same_image(const struct push *a, const struct push *b)
{
    return !strcmp(a->host, b->host) && !strcmp(a->repository, b->repository) &&
           !strcmp(a->tag, b->tag) && !strcmp(a->digest, b->digest);
}

/* Hands the choices to the apps' queues, one announcement per image. */
static void submit(struct cycle *c)
{
    struct deployer *d = c->rc->d;
    unsigned char *done = calloc(c->n_ch ? c->n_ch : 1, 1);
    if (!done) return;
    for (size_t i = 0; i < c->n_ch; i++) {
        if (done[i]) continue;
        struct push p = c->ch[i].p;
        struct report r;
        report_init(&r, REPORT_PUSHED, &p, "");
        size_t o = 0;
        for (size_t k = i; k < c->n_ch; k++) {
            if (done[k] || !same_image(&c->ch[k].p, &p)) continue;
            done[k] = 1;
            char why[256];
            if (job_submit_reconciled(d, &p, c->ch[k].app, why, sizeof why) != 0) {
                log_debug("reconcile: not queued", "app", c->ch[k].app, "reason", why, NULL);
                continue;
            }
            c->deploys++;
            metrics_add("autodeploy_reconcile_deploys_total", NULL, NULL, 1);
            int len =
                snprintf(r.apps + o, sizeof r.apps - o, "%s%s", r.n_apps ? ", " : "", c->ch[k].app);
            if (len > 0 && o + (size_t)len < sizeof r.apps) o += (size_t)len;
            r.n_apps++;
        }
        /* Once queued for some app, a notification of this image later is a duplicate (and
         * one earlier was announced already). One queued for no app (each busy) is not
         * remembered: its notification is then a push of its own, the fast path. */
        if (r.n_apps) {
            int fresh = pushq_remember(d->q, &p, "dispatched (reconcile)") == PUSHQ_ACCEPTED;
            log_info("reconcile: image missed by the webhook found in the registry", "repository",
                     p.repository, "tag", p.tag, "digest", p.digest, "apps", r.apps, NULL);
            if (fresh) report_emit(&r);
        }
    }
    free(done);
}

/* ---------------------------------------------------------------- one cycle */

static void cycle_run(struct cycle *c, struct listing *apps)
{
    struct deployer *d = c->rc->d;
    struct app_work *w = calloc(apps->n ? apps->n : 1, sizeof *w);
    if (!w) return;
    size_t n = 0;
    for (size_t i = 0; i < apps->n; i++) {
        const struct listed_app *a = &apps->apps[i];
        if (!a->id || !a->label) continue;
        char err[256];
        const match_set *ms = match_cache_get(d->cache, a->label, a->id, err, sizeof err, NULL);
        const char *gate = decide_gate(config_live(), a->id, decide_is_true(a->paused));
        if (!ms || gate || !a->image) {
            plan_app(c, a->id, a->image, "skipped", NULL,
                     !ms    ? "invalid label"
                     : gate ? gate
                            : "the app has no docker image");
            match_cache_release(ms);
            continue;
        }
        w[n].a = a;
        w[n].ms = ms;
        w[n].has_cur = ref_parse_image(a->image, &w[n].cur) == 0;
        collect(c, &w[n++]);
    }
    for (size_t i = 0; i < c->n_repos && !stopping(c); i++)
        ask(c, &c->repos[i]);
    for (size_t i = 0; i < n && !stopping(c); i++)
        choose(c, &w[i]);
    if (!c->dry && !stopping(c) && !pushq_paused(d->q)) submit(c);
    for (size_t i = 0; i < n; i++)
        match_cache_release(w[i].ms);
    free(w);
}

/* Runs one cycle (dry: decide only). Appends the plan to plan when not NULL. 0, or -1 when
 * the apps cannot be listed (err). */
static int reconcile_cycle(struct reconciler *rc, int dry, struct buf *plan, char *err,
                           size_t errlen)
{
    struct deployer *d = rc->d;
    struct cycle c = {.rc = rc, .dry = dry, .plan = plan};
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(c.started, sizeof c.started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    c.started_ns = (int64_t)now.tv_sec * 1000000000LL; /* the label's precision: seconds */
    struct listing apps;
    int64_t t0 = job_now(d);
    if (cycle_lock(rc) < 0) {
        snprintf(err, errlen, "autodeployd is stopping");
        return -1;
    }
    if (dispatch_list_apps(d, t0 + config_live()->registry_timeout_ms, &apps, err, errlen) < 0) {
        pthread_mutex_unlock(&rc->cycle_mu);
        metrics_add("autodeploy_reconcile_cycles_total", "result", "failed", 1);
        return -1;
    }
    if (plan) buf_adds(plan, "{\"apps\":[");
    cycle_run(&c, &apps);
    double secs = (job_now(d) - t0) / 1000.0;
    if (plan)
        buf_printf(plan,
                   "],\"dry_run\":%s,\"repositories\":%zu,\"requests\":{\"tags_list\":%lu,"
                   "\"head\":%lu,\"created\":%lu},\"deploys\":%lu,\"adopted\":%lu,"
                   "\"skipped\":%lu,\"seconds\":%.3f}",
                   dry ? "true" : "false", c.n_repos, c.tags_lists, c.heads, c.created_gets,
                   c.deploys, c.adopted, c.skipped, secs);
    if (!dry) {
        metrics_add("autodeploy_reconcile_cycles_total", "result", c.skipped ? "partial" : "ok", 1);
        metrics_set("autodeploy_reconcile_last_cycle_seconds", NULL, NULL, secs);
        char t[32], r[32], q[32];
        snprintf(t, sizeof t, "%.3f", secs);
        snprintf(r, sizeof r, "%zu", c.n_repos);
        snprintf(q, sizeof q, "%lu", c.tags_lists + c.heads + c.created_gets);
        log_info("reconcile cycle done", "seconds", t, "repositories", r, "registry_questions", q,
                 NULL);
    }
    repos_free(&c);
    free(c.ch);
    listing_free(&apps);
    pthread_mutex_unlock(&rc->cycle_mu);
    return 0;
}

/* ---------------------------------------------------------------- the thread */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The wait before the next cycle: the interval +-10 % (first: 10-100 % of it), 0 when off. */
static long next_wait(struct reconciler *rc, int first)
{
    long iv = config_live()->reconcile_interval_ms;
    if (iv <= 0) return 0;
    double f = (double)rand_r(&rc->seed) / RAND_MAX;
    return first ? (long)(iv * (0.1 + 0.9 * f)) : (long)(iv * (0.9 + 0.2 * f));
}

/* Waits until due (monotonic ms; 0: only a wake) or a wake or stop; 1 to run a cycle. 0 also
 * when a reload changed the interval iv the wait was drawn from: the caller draws anew. */
static int wait_turn(struct reconciler *rc, int64_t due, long iv)
{
    pthread_mutex_lock(&rc->mu);
    for (;;) {
        if (atomic_load(&rc->stop) || config_live()->reconcile_interval_ms != iv) break;
        if (rc->wake || (due && mono_ms() >= due)) {
            rc->wake = 0;
            pthread_mutex_unlock(&rc->mu);
            return 1;
        }
        /* At most a second: a reload may change the interval. */
        int64_t until = mono_ms() + 1000;
        if (due && due < until) until = due;
        struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000};
        pthread_cond_timedwait(&rc->cv, &rc->mu, &ts);
    }
    pthread_mutex_unlock(&rc->mu);
    return 0;
}

/* The cycle's registry questions give up when autodeployd stops (registry_abandon_when). */
static int cycle_abandoned(void *arg)
{
    struct reconciler *rc = arg;
    return atomic_load(&rc->stop) || job_stopping(rc->d);
}

static void *reconcile_main(void *arg)
{
    struct reconciler *rc = arg;
    int first = 1;
    registry_abandon_when(cycle_abandoned, rc);
    while (!atomic_load(&rc->stop)) {
        long iv = config_live()->reconcile_interval_ms;
        long wait = next_wait(rc, first);
        int64_t due = wait ? mono_ms() + wait : 0;
        if (!wait_turn(rc, due, iv)) {
            first = 1;
            continue;
        }
        first = 0;
        if (pushq_paused(rc->d->q)) {
            metrics_add("autodeploy_reconcile_cycles_total", "result", "paused", 1);
            continue;
        }
        char err[512];
        if (reconcile_cycle(rc, 0, NULL, err, sizeof err) < 0 && !atomic_load(&rc->stop))
            log_warn("reconcile: cannot list Marathon apps; cycle skipped", "error", err, NULL);
    }
    return NULL;
}

/* ---------------------------------------------------------------- public */

struct reconciler *reconciler_new(struct deployer *d)
{
    struct reconciler *rc = calloc(1, sizeof *rc);
    if (!rc) return NULL;
    rc->d = d;
    pthread_mutex_init(&rc->mu, NULL);
    pthread_mutex_init(&rc->cycle_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rc->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&rc->stop, 0);
    rc->seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)rc;
    return rc;
}

int reconciler_start(struct reconciler *rc)
{
    if (pthread_create(&rc->thread, NULL, reconcile_main, rc) != 0) return -1;
    rc->started = 1;
    return 0;
}

void reconciler_stop(struct reconciler *rc)
{
    if (!rc || !rc->started) return;
    pthread_mutex_lock(&rc->mu);
    atomic_store(&rc->stop, 1);
    pthread_cond_broadcast(&rc->cv);
    pthread_mutex_unlock(&rc->mu);
    pthread_join(rc->thread, NULL);
    rc->started = 0;
}

void reconciler_free(struct reconciler *rc)
{
    if (!rc) return;
    reconciler_stop(rc);
    map_clear(&rc->tags);
    map_clear(&rc->images);
    map_clear(&rc->adopted);
    pthread_cond_destroy(&rc->cv);
    pthread_mutex_destroy(&rc->mu);
    pthread_mutex_destroy(&rc->cycle_mu);
    free(rc);
}

void reconciler_wake(struct reconciler *rc)
{
    pthread_mutex_lock(&rc->mu);
    rc->wake = 1;
    pthread_cond_broadcast(&rc->cv);
    pthread_mutex_unlock(&rc->mu);
}

int reconciler_preview_json(struct reconciler *rc, struct buf *b)
{
    char err[512];
    if (reconcile_cycle(rc, 1, b, err, sizeof err) == 0) return 200;
    buf_adds(b, "{\"error\":");
    buf_add_json_string(b, err);
    buf_adds(b, "}");
    return 502;
}

void reconciler_metrics_declare(void)
{
    metrics_declare("autodeploy_reconcile_cycles_total", "counter",
                    "Reconcile cycles, by result (ok, partial: some apps skipped, failed: the "
                    "apps could not be listed, paused).");
    metrics_declare("autodeploy_reconcile_deploys_total", "counter",
                    "Images found in the registry by reconcile and queued for an app.");
    metrics_declare("autodeploy_reconcile_adopted_total", "counter",
                    "Apps deployed by hand whose digest reconcile recorded as their baseline.");
    metrics_declare("autodeploy_reconcile_registry_errors_total", "counter",
                    "Repositories reconcile could not ask, by registry: their apps were skipped "
                    "for the cycle.");
    metrics_declare("autodeploy_reconcile_last_cycle_seconds", "gauge",
                    "Wall time of the last reconcile cycle.");
}
