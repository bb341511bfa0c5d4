/*
 * deploy.c: the deployer's life cycle, its per-app queue and workers, /v1/plan and the
 * environment it acts through (see deploy.h; the shared structures are in job.h).
 *
 * Threads: one dispatcher (dispatch.c) and --deploy-workers workers, one job at a time each.
 * A slot per app keeps the pushes waiting for it; at most one job per app runs, and it takes
 * every push waiting when it starts.
 */
#include "deploy.h"

#include "job.h"
#include "journal.h"
#include "listing.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- the real environment */

static int64_t real_now(void *ctx)
{
    (void)ctx;
    return follower_now_ms();
}

/* Waits on wake_cv (mu held) until the monotonic time until, or a broadcast. */
static void wait_until(struct deployer *d, int64_t until)
{
    int64_t left = until - follower_now_ms();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&d->wake_cv, &d->mu, &ts);
}

static void real_sleep(void *ctx, long ms)
{
    struct deployer *d = ctx;
    int64_t until = follower_now_ms() + ms;
    pthread_mutex_lock(&d->mu);
    while (!atomic_load(&d->stop) && follower_now_ms() < until) {
        wait_until(d, until);
    }
    pthread_mutex_unlock(&d->mu);
}

static int real_request(void *ctx, const char *method, const char *path, const char *body,
                        struct httpc_resp *resp)
{
    return marathon_request(((struct deployer *)ctx)->m, method, path, body, resp);
}

static int real_get_progressive(void *ctx, const char *path,
                                void (*on_body)(const char *, size_t, void *), void *arg,
                                struct httpc_resp *resp)
{
    return marathon_get_progressive(((struct deployer *)ctx)->m, path, on_body, arg, resp);
}

static int real_connected(void *ctx)
{
    return follower_connected(((struct deployer *)ctx)->f);
}

static unsigned real_generation(void *ctx)
{
    return follower_generation(((struct deployer *)ctx)->f);
}

static int real_watch(void *ctx, const char *dep_id, const char *app_id)
{
    return follower_watch(((struct deployer *)ctx)->f, dep_id, app_id);
}

static enum follow_outcome real_wait(void *ctx, int watch, int64_t deadline_ms, long max_wait_ms,
                                     char *reason, size_t reason_len, char *task, size_t task_len)
{
    return follower_wait(((struct deployer *)ctx)->f, watch, deadline_ms, max_wait_ms, reason,
                         reason_len, task, task_len);
}

static void real_unwatch(void *ctx, int watch)
{
    follower_unwatch(((struct deployer *)ctx)->f, watch);
}

/* ---------------------------------------------------------------- helpers for the rooms */

int64_t job_now(struct deployer *d)
{
    return d->env.now_ms(d->env.ctx);
}

void job_nap(struct deployer *d, long ms)
{
    if (!atomic_load(&d->stop)) d->env.sleep_ms(d->env.ctx, ms);
}

int job_stopping(struct deployer *d)
{
    return atomic_load(&d->stop);
}

int job_request(struct deployer *d, const char *method, const char *path, const char *body,
                struct httpc_resp *resp)
{
    return d->env.request(d->env.ctx, method, path, body, resp);
}

cJSON *job_get_app(struct deployer *d, const char *app_id, struct httpc_resp *resp)
{
    struct buf path;
    buf_init(&path, 4096);
    marathon_app_path(app_id, &path);
    int rc = job_request(d, "GET", path.data, NULL, resp);
    buf_free(&path);
    if (rc != 0 || resp->status != 200) return NULL;
    cJSON *j = cJSON_Parse(resp->body.data);
    cJSON *a = cJSON_DetachItemFromObjectCaseSensitive(j, "app");
    cJSON_Delete(j);
    if (cJSON_IsObject(a)) return a;
    cJSON_Delete(a);
    snprintf(resp->err, sizeof resp->err, "Marathon's answer for the app is not an app object");
    resp->status = 0;
    return NULL;
}

cJSON *job_deployments(struct deployer *d)
{
    struct httpc_resp resp;
    cJSON *list = NULL;
    if (job_request(d, "GET", "/v2/deployments", NULL, &resp) == 0 && resp.status == 200)
        list = cJSON_Parse(resp.body.data);
    httpc_resp_free(&resp);
    if (cJSON_IsArray(list)) return list;
    cJSON_Delete(list);
    return NULL;
}

const cJSON *job_find_deployment(const cJSON *list, const char *id)
{
    const cJSON *dep;
    cJSON_ArrayForEach(dep, list)
    {
        const char *have = job_jstr(dep, "id");
        if (id && have && !strcmp(have, id)) return dep;
    }
    return NULL;
}

void job_copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

const char *job_jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

long job_backoff_ms(int attempt)
{
    long b = 500L << (attempt < 6 ? attempt : 6);
    if (b > 30000) b = 30000;
    return b * 3 / 4 + rand() % (b / 2 + 1);
}

void deployer_metrics_declare(void)
{
    metrics_declare("autodeploy_matches_total", "counter",
                    "Apps whose label matched an accepted push.");
    metrics_declare("autodeploy_deployments_total", "counter",
                    "Deployment attempts by outcome (succeeded, failed, timed_out, rolled_back, "
                    "rollback_failed, cancelled, superseded, skipped, unchanged, dry_run, "
                    "interrupted).");
    static const char *const outcomes[] = {
        "succeeded",  "failed",  "timed_out", "rolled_back", "rollback_failed", "cancelled",
        "superseded", "skipped", "unchanged", "dry_run",     "interrupted"};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
        metrics_add("autodeploy_deployments_total", "outcome", outcomes[i], 0);
    static const double bounds[] = {5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600};
    metrics_declare_histogram("autodeploy_deploy_duration_seconds",
                              "Time from Marathon's acceptance of the update to the deployment's "
                              "end.",
                              bounds, (int)(sizeof bounds / sizeof bounds[0]));
    marathon_metrics_declare();
    reconciler_metrics_declare();
}

int deployer_reconcile_preview_json(struct deployer *d, struct buf *b)
{
    if (!d->reconciler || !d->registry) {
        buf_adds(b, "{\"error\":\"reconcile needs the registry client\"}");
        return 503;
    }
    return reconciler_preview_json(d->reconciler, b);
}

int deployer_reconcile_now(struct deployer *d)
{
    if (!d->reconciler) return -1;
    reconciler_wake(d->reconciler);
    return 0;
}

int deployer_records_json(struct deployer *d, struct buf *b)
{
    return records_json(d, b);
}

/* ---------------------------------------------------------------- the per-app queue */

static size_t slot_bucket(const char *app_id)
{
    uint64_t h = 1469598103934665603ULL;
    while (*app_id)
        h = (h ^ (unsigned char)*app_id++) * 1099511628211ULL;
    return (size_t)(h % SLOT_BUCKETS);
}

static struct slot *slot_find(struct deployer *d, const char *app_id)
{
    struct slot *s = d->slot_index[slot_bucket(app_id)];
    while (s && strcmp(s->app_id, app_id) != 0)
        s = s->hnext;
    return s;
}

/* Unlinks and frees an idle slot; call with d->mu held. */
static void slot_free(struct deployer *d, struct slot *s)
{
    *s->pprev = s->next;
    if (s->next) s->next->pprev = s->pprev;
    struct slot **hp = &d->slot_index[slot_bucket(s->app_id)];
    while (*hp != s)
        hp = &(*hp)->hnext;
    *hp = s->hnext;
    d->n_slots--;
    free(s);
}

/* Puts a slot on the ready list; call with d->mu held. */
static void ready_append(struct deployer *d, struct slot *s)
{
    s->queued = 1;
    s->ready_next = NULL;
    if (d->ready_tail)
        d->ready_tail->ready_next = s;
    else
        d->ready_head = s;
    d->ready_tail = s;
    pthread_cond_signal(&d->cv);
}

static int is_reconcile(const struct push *p)
{
    return !strcmp(p->source, "reconcile");
}

static int same_image(const struct push *a, const struct push *b)
{
    return !strcmp(a->repository, b->repository) && !strcmp(a->tag, b->tag) &&
           !strcmp(a->digest, b->digest);
}

/* A notification joins a slot where reconcile already queued the same image for the app: the
 * reconcile push leaves (to *dropped), so the job sees one push and reports it once. Call with
 * d->mu held. */
static void drop_reconciled(struct slot *s, const struct push *p, struct waiting **dropped)
{
    if (is_reconcile(p)) return;
    for (struct waiting **pp = &s->waiting; *pp;) {
        struct waiting *x = *pp;
        if (!is_reconcile(&x->push) || !same_image(&x->push, p)) {
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        x->next = *dropped;
        *dropped = x;
    }
    s->waiting_tail = NULL;
    for (struct waiting *x = s->waiting; x; x = x->next)
        s->waiting_tail = x;
}

static struct slot *slot_get(struct deployer *d, const char *app_id)
{
    struct slot *s = slot_find(d, app_id);
    if (!s && (s = calloc(1, sizeof *s)) != NULL) {
        snprintf(s->app_id, sizeof s->app_id, "%s", app_id); /* ids checked < 256 */
        s->next = d->slots;
        if (d->slots) d->slots->pprev = &s->next;
        s->pprev = &d->slots;
        d->slots = s;
        size_t b = slot_bucket(app_id);
        s->hnext = d->slot_index[b];
        d->slot_index[b] = s;
        d->n_slots++;
    }
    return s;
}

void job_submit(struct deployer *d, struct waiting **w, size_t n, const char *const *app_ids)
{
    struct waiting *dropped = NULL;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < n; i++) {
        struct slot *s = slot_get(d, app_ids[i]);
        if (!s) { /* out of memory: the push is lost for this app, say so */
            pthread_mutex_unlock(&d->mu);
            finish_skipped(d, w[i]->record, &w[i]->push, app_ids[i], NULL, "failed", REPORT_FAILED,
                           "out of memory");
            journal_release(d->journal, w[i]->push.jid);
            free(w[i]);
            pthread_mutex_lock(&d->mu);
            continue;
        }
        drop_reconciled(s, &w[i]->push, &dropped);
        w[i]->next = NULL;
        if (s->waiting_tail)
            s->waiting_tail->next = w[i];
        else
            s->waiting = w[i];
        s->waiting_tail = w[i];
        if (!s->queued && !s->running) ready_append(d, s);
    }
    pthread_mutex_unlock(&d->mu);
    while (dropped) {
        struct waiting *x = dropped;
        dropped = x->next;
        record_set(d, x->record, "duplicate",
                   "the registry's notification of the same image "
                   "arrived: it deploys instead",
                   NULL);
        free(x);
    }
}

int job_submit_reconciled(struct deployer *d, const struct push *p, const char *app_id, char *why,
                          size_t whylen)
{
    struct waiting *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    w->push = *p;
    pthread_mutex_lock(&d->mu);
    struct slot *s = slot_get(d, app_id);
    const char *busy = !s                                   ? "out of memory"
                       : s->running || s->waiting           ? "a deployment job for the app is "
                                                              "pending or running"
                       : !strcmp(s->last_digest, p->digest) ? "autodeployd already handled this "
                                                              "image for the app"
                                                            : NULL;
    if (busy) {
        pthread_mutex_unlock(&d->mu);
        snprintf(why, whylen, "%s", busy);
        free(w);
        return 1;
    }
    w->record = record_new_locked(d, p, app_id);
    s->waiting = s->waiting_tail = w;
    ready_append(d, s);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

/* Runs one job over the pushes in list (taken from a slot); frees them. */
static void run_job(struct deployer *d, const char *app_id, struct waiting *list, char *handled,
                    size_t handled_len)
{
    struct job j;
    memset(&j, 0, sizeof j);
    j.d = d;
    snprintf(j.app_id, sizeof j.app_id, "%s", app_id);
    j.instances = -1;
    for (struct waiting *w = list; w; w = w->next)
        j.n++;
    j.w = calloc(j.n ? j.n : 1, sizeof *j.w);
    size_t i = 0;
    for (struct waiting *w = list; w && j.w; w = w->next)
        j.w[i++] = w;
    int rc = j.w ? job_update(&j) : 0;
    if (rc) job_follow(&j, rc == 2);
    /* Reconcile does not try again what a job already tried: its own choices, and images a
     * notification's job sent to Marathon (a failure rolled back stays rolled back). One that
     * never reached Marathon (skipped as older, the registry down) it may still deploy. */
    if (handled && j.p && (is_reconcile(j.p) || j.accepted_at || j.sent_unanswered || j.dep_id[0]))
        snprintf(handled, handled_len, "%s", j.p->digest);
    /* A job cut short by the stop stays pending in the state file: the next start queues its
     * push again, and finds the deployment done or still running. One whose story ended (or
     * whose rollback was decided) is done: replaying it would deploy the failed image again. */
    for (i = 0; j.w && i < j.n; i++) {
        if (!job_stopping(d) || j.settled) journal_release(d->journal, j.w[i]->push.jid);
        free(j.w[i]);
    }
    if (!j.w) {
        while (list) {
            struct waiting *n = list->next;
            finish_skipped(d, list->record, &list->push, app_id, NULL, "failed", REPORT_FAILED,
                           "out of memory");
            journal_release(d->journal, list->push.jid);
            free(list);
            list = n;
        }
    }
    free(j.w);
    cJSON_Delete(j.old_labels);
    cJSON_Delete(j.old_docker);
}

void deployer_run_queued(struct deployer *d)
{
    pthread_mutex_lock(&d->mu);
    while (d->ready_head) {
        struct slot *s = d->ready_head;
        d->ready_head = s->ready_next;
        if (!d->ready_head) d->ready_tail = NULL;
        s->queued = 0;
        struct waiting *list = s->waiting;
        s->waiting = s->waiting_tail = NULL;
        char app_id[DECIDE_APP_ID_MAX];
        memcpy(app_id, s->app_id, sizeof app_id);
        pthread_mutex_unlock(&d->mu);
        run_job(d, app_id, list, NULL, 0);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
}

void deployer_run_job(struct deployer *d, const char *app_id, const struct push *pushes, size_t n)
{
    struct waiting *head = NULL, **tail = &head;
    for (size_t i = 0; i < n; i++) {
        struct waiting *w = calloc(1, sizeof *w);
        if (!w) break;
        w->push = pushes[i];
        w->record = record_new(d, &pushes[i], app_id);
        *tail = w;
        tail = &w->next;
    }
    run_job(d, app_id, head, NULL, 0);
}

/* A job's registry questions (--verify-push) give up when the stop interrupts jobs. */
static int job_abandoned(void *arg)
{
    return job_stopping(arg);
}

static void *worker_main(void *arg)
{
    struct deployer *d = arg;
    registry_abandon_when(job_abandoned, d);
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!atomic_load(&d->stop) && !atomic_load(&d->draining) && !d->ready_head)
            pthread_cond_wait(&d->cv, &d->mu);
        if (atomic_load(&d->stop) || atomic_load(&d->draining)) break;
        struct slot *s = d->ready_head;
        d->ready_head = s->ready_next;
        if (!d->ready_head) d->ready_tail = NULL;
        s->queued = 0;
        s->running = 1;
        struct waiting *list = s->waiting;
        s->waiting = s->waiting_tail = NULL;
        char app_id[DECIDE_APP_ID_MAX];
        memcpy(app_id, s->app_id, sizeof app_id);
        d->inflight++;
        pthread_mutex_unlock(&d->mu);

        char handled[PUSH_DIGEST_MAX] = "";
        run_job(d, app_id, list, handled, sizeof handled);

        pthread_mutex_lock(&d->mu);
        if (handled[0]) memcpy(s->last_digest, handled, sizeof handled);
        d->inflight--;
        pthread_cond_broadcast(&d->wake_cv);
        s->running = 0;
        if (s->waiting) {
            ready_append(d, s);
        } else if (!s->last_digest[0] || d->n_slots > SLOTS_KEPT) {
            slot_free(d, s);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---------------------------------------------------------------- plan */

/* One app's line of the plan: what a push of p would do to it, by the job's own rules (the
 * push's digest and time are unknown here, so "unchanged" and "older" cannot be told). */
/* What the registries said during one /v1/plan: one question per registry host. */
struct plan_memo {
    char host[8][PUSH_HOST_MAX];
    struct verify_answer a[8];
    int n;
};

/* The registry's word on the plan's image at the new image's host: "" when not asked. */
static const char *plan_registry(struct deployer *d, const struct push *p, const char *image,
                                 struct plan_memo *m, char *why, size_t len)
{
    const char *mode = config_live()->verify_push;
    struct image_ref ref;
    if (!d->registry || !mode || !strcmp(mode, "off") || ref_parse_image(image, &ref) < 0)
        return "";
    int i = 0;
    while (i < m->n && strcmp(m->host[i], ref.host) != 0)
        i++;
    if (i == m->n && m->n < 8) {
        snprintf(m->host[i], sizeof m->host[i], "%s", ref.host);
        struct verify_answer *a = &m->a[i];
        a->res = registry_manifest_digest(d->registry, ref.host, p->repository, p->tag, a->digest,
                                          sizeof a->digest, a->err, sizeof a->err);
        m->n++;
    }
    if (i == m->n) return "";
    if (decide_verify(mode, p, image, &m->a[i], 1, 1, why, len) == VERIFIED_MISSING) return why;
    if (m->a[i].res == REGISTRY_OK) snprintf(why, len, "has it: %s", m->a[i].digest);
    return why;
}

static void plan_app(struct deployer *d, const struct listed_app *app, const struct push *p,
                     struct plan_memo *memo, struct buf *b)
{
    const char *action = "deploy", *reason = "", *registry = "";
    char said[DECIDE_REASON_MAX] = "";
    char why[DECIDE_REASON_MAX] = "", err[256];
    struct decision dec = {0};
    const match_set *ms = match_cache_get(d->cache, app->label, app->id, err, sizeof err, NULL);
    struct app_view v = {.id = app->id,
                         .image = app->image,
                         .pattern = app->label,
                         .paused = decide_is_true(app->paused),
                         .pin = decide_is_true(app->pin),
                         .instances = -1};
    if (!ms) {
        action = "none";
        snprintf(why, sizeof why, "invalid %.50s label: %.170s", config_live()->label, err);
        reason = why;
    } else if (!decide_match(ms, app->image, p, why, sizeof why, NULL)) {
        action = "none";
        reason = why;
    } else if (decide_job(config_live(), &v, p, 0, &dec) == 0 && dec.action != DECIDE_DEPLOY) {
        action = dec.state && !strcmp(dec.state, "dry_run") ? "dry_run" : "skip";
        reason = dec.reason;
    }
    match_cache_release(ms);
    if (!strcmp(action, "deploy")) {
        registry = plan_registry(d, p, dec.new_image, memo, said, sizeof said);
        if (strstr(registry, "not in the registry")) {
            action = "skip";
            reason = registry;
        }
    }
    buf_adds(b, "{\"id\":");
    buf_add_json_string(b, app->id);
    buf_adds(b, ",\"current_image\":");
    buf_add_json_string(b, app->image);
    buf_adds(b, ",\"new_image\":");
    buf_add_json_string(b, dec.new_image[0] ? dec.new_image : NULL);
    buf_adds(b, ",\"action\":");
    buf_add_json_string(b, action);
    buf_adds(b, ",\"reason\":");
    buf_add_json_string(b, reason[0] ? reason : NULL);
    buf_adds(b, ",\"registry\":");
    buf_add_json_string(b, registry[0] ? registry : NULL);
    buf_adds(b, "}");
}

int deployer_plan_json(struct deployer *d, const char *image_ref, struct buf *b)
{
    struct image_ref ref;
    if (!image_ref || ref_parse_image(image_ref, &ref) < 0 || !ref.tag[0] || ref.digest[0]) {
        buf_adds(b, "{\"error\":\"image must be [host/]repository:tag\"}");
        return 400;
    }
    struct push p;
    memset(&p, 0, sizeof p);
    memcpy(p.host, ref.host, sizeof p.host);
    memcpy(p.repository, ref.repository, sizeof p.repository);
    memcpy(p.tag, ref.tag, sizeof p.tag);
    char err[512] = "autodeployd is stopping";
    struct listing apps;
    if (dispatch_list_apps(d, 0, &apps, err, sizeof err) < 0) {
        buf_adds(b, "{\"error\":");
        buf_add_json_string(b, err);
        buf_adds(b, "}");
        return 502;
    }
    buf_adds(b, "{\"image\":");
    buf_add_json_string(b, image_ref);
    buf_adds(b, ",\"apps\":[");
    int first = 1;
    struct plan_memo memo = {.n = 0};
    for (size_t i = 0; i < apps.n; i++) {
        if (!apps.apps[i].id || !apps.apps[i].label) continue;
        if (!first) buf_adds(b, ",");
        first = 0;
        plan_app(d, &apps.apps[i], &p, &memo, b);
    }
    buf_adds(b, "]}");
    listing_free(&apps);
    return 200;
}

int deployer_health_json(struct deployer *d, struct buf *b)
{
    char why[256];
    int attached = d->f ? follower_connected(d->f) : 0;
    /* An attached event stream proves Marathon answers; otherwise the last request tells. */
    int r = attached ? 1 : d->m ? marathon_reachable(d->m, why, sizeof why) : -1;
    buf_printf(b, "\"marathon\":\"%s\",\"event_stream\":\"%s\"",
               r > 0    ? "reachable"
               : r == 0 ? "unreachable"
                        : "unknown",
               attached ? "attached" : "down");
    if (r == 0) {
        buf_adds(b, ",\"marathon_error\":");
        buf_add_json_string(b, why);
    }
    return r > 0;
}

/* ---------------------------------------------------------------- life cycle */

struct deployer *deployer_new_env(const struct config *cfg, struct pushq *q,
                                  const struct deploy_env *env, char *err, size_t errlen)
{
    struct deployer *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->q = q;
    d->env = *env;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->wake_cv, &ca);
    pthread_condattr_destroy(&ca);
    d->n_aliases = cfg->registry_alias.n;
    d->aliases = calloc(d->n_aliases + 1, sizeof *d->aliases);
    for (size_t i = 0; d->aliases && i < d->n_aliases; i++) {
        char *s = cfg->registry_alias.v[i];
        char *eq = strchr(s, '=');
        /* The config check guarantees NAME=HOST; the strings stay owned by cfg. */
        d->aliases[i].name = strndup(s, (size_t)(eq - s));
        d->aliases[i].host = eq + 1;
    }
    struct match_opts mo = {cfg->allow_repository_wildcards, d->aliases, d->n_aliases};
    d->cache = d->aliases ? match_cache_new(&mo, 65536) : NULL;
    d->n_workers = (int)cfg->deploy_workers;
    d->workers = calloc((size_t)(d->n_workers > 0 ? d->n_workers : 1), sizeof *d->workers);
    if (!d->cache || !d->aliases || !d->workers) {
        snprintf(err, errlen, "out of memory");
        deployer_free(d);
        return NULL;
    }
    d->verify = verify_cache_new();
    d->approvals = approvals_new(0);
    d->slack_seen = slackact_seen_new();
    d->apps_share = apps_share_new();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    d->wall_base = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    d->mono_base = env->now_ms(env->ctx);
    if (!d->verify || !d->approvals || !d->slack_seen || !d->apps_share) {
        snprintf(err, errlen, "out of memory");
        deployer_free(d);
        return NULL;
    }
    deployer_metrics_declare();
    srand((unsigned)time(NULL));
    return d;
}

/* The registry client for --verify-push (made even when it is off: a reload may turn it on).
 * 0, or -1 with err. */
static int open_registry(struct deployer *d, const struct config *cfg, char *err, size_t errlen)
{
    struct registry_opts o = {cfg->registry_auth,
                              cfg->registry_ca,
                              (const char *const *)cfg->insecure_registry.v,
                              cfg->insecure_registry.n,
                              (const char *const *)cfg->registry_url.v,
                              cfg->registry_url.n,
                              cfg->registry_timeout_ms};
    d->registry = registry_new(&o, err, errlen);
    return d->registry ? 0 : -1;
}

static double pending_approvals(void *ctx)
{
    return (double)approvals_pending_count(((struct deployer *)ctx)->approvals);
}

struct deployer *deployer_new(const struct config *cfg, struct pushq *q, struct marathon *m,
                              struct follower *f, char *err, size_t errlen)
{
    struct deploy_env env = {.now_ms = real_now,
                             .sleep_ms = real_sleep,
                             .request = real_request,
                             .get_progressive = real_get_progressive,
                             .stream_connected = real_connected,
                             .stream_generation = real_generation,
                             .watch = real_watch,
                             .wait = real_wait,
                             .unwatch = real_unwatch};
    struct deployer *d = deployer_new_env(cfg, q, &env, err, errlen);
    if (!d) return NULL;
    if (open_registry(d, cfg, err, errlen) < 0) {
        deployer_free(d);
        return NULL;
    }
    d->m = m;
    d->f = f;
    d->env.ctx = d;
    metrics_declare_gauge_fn("autodeploy_approvals_pending",
                             "Approvals waiting for a person (apps with label autodeploy.approve).",
                             pending_approvals, d);
    if (!f) d->env.watch = NULL; /* no stream: poll */
    if (!(d->reconciler = reconciler_new(d))) {
        snprintf(err, errlen, "out of memory");
        deployer_free(d);
        return NULL;
    }
    return d;
}

void deployer_set_journal(struct deployer *d, struct journal *j)
{
    d->journal = j;
    approvals_restore_from(d, j);
}

int deployer_start(struct deployer *d)
{
    for (; d->n_started < d->n_workers; d->n_started++)
        if (pthread_create(&d->workers[d->n_started], NULL, worker_main, d) != 0) goto fail;
    if (pthread_create(&d->dispatcher, NULL, dispatch_main, d) != 0) goto fail;
    d->dispatcher_started = 1;
    if (d->reconciler && reconciler_start(d->reconciler) != 0) {
        deployer_stop(d, 0);
        return -1;
    }
    if (pthread_create(&d->approval_timer, NULL, approvals_timer_main, d) == 0)
        d->approval_timer_started = 1;
    else
        log_warn("cannot start the approval timer: approvals expire only when someone decides",
                 NULL);
    return 0;
fail:
    /* Stop and join the threads that did start. */
    pthread_mutex_lock(&d->mu);
    atomic_store(&d->stop, 1);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < d->n_started; i++)
        pthread_join(d->workers[i], NULL);
    d->n_started = 0;
    return -1;
}

/* Reports the pushes of a slot that will not deploy because autodeployd is stopping. */
static void abandon(struct deployer *d, const char *app_id, struct waiting *w)
{
    while (w) {
        struct waiting *n = w->next;
        finish_skipped(d, w->record, &w->push, app_id, NULL, "skipped", REPORT_SKIPPED,
                       d->journal ? "autodeployd stopped before deploying it; it deploys at the "
                                    "next start (--state-file)"
                                  : "autodeployd stopped before deploying it; push again to "
                                    "deploy");
        free(w);
        w = n;
    }
}

void deployer_stop(struct deployer *d, long grace_ms)
{
    if (!d || !d->dispatcher_started) return;
    /* 1. Take nothing new: the dispatcher leaves, idle workers leave. */
    pthread_mutex_lock(&d->mu);
    atomic_store(&d->draining, 1);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pushq_close(d->q);
    pthread_join(d->dispatcher, NULL);
    d->dispatcher_started = 0;
    pthread_mutex_lock(&d->mu);
    pthread_cond_broadcast(&d->wake_cv); /* a reconcile cycle's listing may be napping */
    pthread_mutex_unlock(&d->mu);
    reconciler_stop(d->reconciler);
    /* 2. Running jobs get the grace period to reach their outcome. */
    int64_t until = follower_now_ms() + grace_ms;
    pthread_mutex_lock(&d->mu);
    if (d->inflight) {
        char g[32];
        snprintf(g, sizeof g, "%ldms", grace_ms);
        log_info("waiting for running deployments before stopping", "grace", g, NULL);
    }
    while (d->inflight && follower_now_ms() < until) {
        wait_until(d, until);
    }
    /* 3. Then stop following: what still runs is reported interrupted. */
    atomic_store(&d->stop, 1);
    pthread_cond_broadcast(&d->cv);
    pthread_cond_broadcast(&d->wake_cv);
    pthread_mutex_unlock(&d->mu);
    if (d->f) follower_interrupt(d->f);
    for (int i = 0; i < d->n_started; i++)
        pthread_join(d->workers[i], NULL);
    d->n_started = 0;
    if (d->approval_timer_started) pthread_join(d->approval_timer, NULL);
    d->approval_timer_started = 0;
    approvals_drop_held(d);
    /* 4. Pushes that never started are reported, not silently dropped. */
    for (struct slot *s = d->slots; s; s = s->next) {
        abandon(d, s->app_id, s->waiting);
        s->waiting = s->waiting_tail = NULL;
    }
    d->ready_head = d->ready_tail = NULL;
}

void deployer_free(struct deployer *d)
{
    if (!d) return;
    deployer_stop(d, 0);
    while (d->slots) {
        struct slot *s = d->slots;
        d->slots = s->next;
        for (struct waiting *w = s->waiting, *n; w; w = n) {
            n = w->next;
            free(w);
        }
        free(s);
    }
    for (size_t i = 0; d->aliases && i < d->n_aliases; i++)
        free((char *)d->aliases[i].name);
    free(d->aliases);
    free(d->workers);
    match_cache_free(d->cache);
    reconciler_free(d->reconciler);
    registry_free(d->registry);
    verify_cache_free(d->verify);
    approvals_drop_held(d);
    approvals_free(d->approvals);
    slackact_seen_free(d->slack_seen);
    apps_share_free(d->apps_share);
    pthread_cond_destroy(&d->cv);
    pthread_cond_destroy(&d->wake_cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
