/*
 * deploy.c: the deployer (see deploy.h).
 *
 * Threads: one dispatcher (queue -> matching -> jobs) and --deploy-workers workers (one job at
 * a time each). Shared state (per-app slots, the ready list, the records ring) sits behind one
 * mutex; no lock is held across network I/O or while reports are emitted.
 */
#include "deploy.h"

#include "journal.h"
#include "listing.h"
#include "log.h"
#include "match.h"
#include "metrics.h"
#include "reference.h"
#include "report.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORDS 256

struct job {
    struct push push;
    char app_id[256];
    uint64_t record;
    struct job *next;
};

struct slot {
    char app_id[256];
    struct job *pending; /* the newest push waiting while a job for this app runs */
    struct slot *next;
};

struct record {
    uint64_t seq; /* 0: unused */
    struct push push;
    char app_id[256];
    char old_image[512], new_image[512];
    char old_digest[PUSH_DIGEST_MAX]; /* what the app ran before, per its label; "" unknown */
    char deployment_id[128];
    char state[16];
    char reason[REPORT_TEXT_MAX];
    char task_message[REPORT_TEXT_MAX];
    int64_t created, started, ended; /* Unix ms, 0 when not yet */
};

struct deployer {
    struct pushq *q;
    struct marathon *m;
    struct follower *f;
    match_cache *cache;
    struct match_alias *aliases;
    size_t n_aliases;
    pthread_t dispatcher;
    pthread_t *workers;
    int n_workers, started;
    volatile int stop;     /* leave now: running jobs end as interrupted */
    volatile int draining; /* take no new push or job; running jobs go on */
    int inflight;          /* jobs running now; under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct slot *slots;
    struct job *ready_head, *ready_tail;
    struct record records[RECORDS];
    struct journal *journal; /* NULL without --state-file */
    uint64_t seq;
};

/* ---------------------------------------------------------------- small helpers */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rfc3339_now(char *out, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Sleeps ms, or less when the deployer stops. */
static void nap(struct deployer *d, long ms)
{
    int64_t until = follower_now_ms() + ms;
    while (!d->stop && follower_now_ms() < until) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... capped at 30 s, +-25 %. */
static long backoff_ms(int attempt)
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
                    "superseded, skipped, unchanged, dry_run, interrupted).");
    static const char *const outcomes[] = {"succeeded",  "failed",  "timed_out", "rolled_back",
                                           "superseded", "skipped", "unchanged", "dry_run"};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
        metrics_add("autodeploy_deployments_total", "outcome", outcomes[i], 0);
    static const double bounds[] = {5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600};
    metrics_declare_histogram("autodeploy_deploy_duration_seconds",
                              "Time from the deployment's creation to its end in Marathon.", bounds,
                              (int)(sizeof bounds / sizeof bounds[0]));
    marathon_metrics_declare();
}

/* ---------------------------------------------------------------- records */

static uint64_t record_new(struct deployer *d, const struct push *p, const char *app_id)
{
    pthread_mutex_lock(&d->mu);
    uint64_t seq = ++d->seq;
    struct record *r = &d->records[seq % RECORDS];
    memset(r, 0, sizeof *r);
    r->seq = seq;
    r->push = *p;
    copy(r->app_id, sizeof r->app_id, app_id);
    copy(r->state, sizeof r->state, "queued");
    r->created = wall_ms();
    pthread_mutex_unlock(&d->mu);
    return seq;
}

/* Updates a record; NULL leaves a field as it is. */
static void record_set(struct deployer *d, uint64_t seq, const char *state, const char *old_image,
                       const char *new_image, const char *dep_id, const char *reason,
                       const char *task_message)
{
    pthread_mutex_lock(&d->mu);
    struct record *r = &d->records[seq % RECORDS];
    if (r->seq == seq) {
        if (state) {
            copy(r->state, sizeof r->state, state);
            if (!strcmp(state, "updating") && !r->started) r->started = wall_ms();
            if (strcmp(state, "updating") && strcmp(state, "deploying") && strcmp(state, "queued"))
                r->ended = wall_ms();
        }
        if (old_image) copy(r->old_image, sizeof r->old_image, old_image);
        if (new_image) copy(r->new_image, sizeof r->new_image, new_image);
        if (dep_id) copy(r->deployment_id, sizeof r->deployment_id, dep_id);
        if (reason) copy(r->reason, sizeof r->reason, reason);
        if (task_message) copy(r->task_message, sizeof r->task_message, task_message);
    }
    pthread_mutex_unlock(&d->mu);
}

static void record_set_old_digest(struct deployer *d, uint64_t seq, const char *digest)
{
    pthread_mutex_lock(&d->mu);
    struct record *r = &d->records[seq % RECORDS];
    if (r->seq == seq) copy(r->old_digest, sizeof r->old_digest, digest);
    pthread_mutex_unlock(&d->mu);
}

static void add_ms_time(struct buf *b, const char *key, int64_t ms)
{
    buf_printf(b, ",\"%s\":", key);
    if (!ms) {
        buf_adds(b, "null");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char t[40];
    gmtime_r(&s, &tm);
    size_t n = strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(t + n, sizeof t - n, ".%03dZ", (int)(ms % 1000));
    buf_add_json_string(b, t);
}

static void add_str(struct buf *b, const char *key, const char *v)
{
    buf_printf(b, ",\"%s\":", key);
    buf_add_json_string(b, v && *v ? v : NULL);
}

int deployer_records_json(struct deployer *d, struct buf *b)
{
    buf_adds(b, "{\"deployments\":[");
    pthread_mutex_lock(&d->mu);
    int first = 1;
    for (uint64_t k = 0; k < RECORDS && k < d->seq; k++) {
        const struct record *r = &d->records[(d->seq - k) % RECORDS];
        if (r->seq != d->seq - k) continue;
        buf_adds(b, first ? "{" : ",{");
        first = 0;
        buf_printf(b, "\"seq\":%llu", (unsigned long long)r->seq);
        add_str(b, "app", r->app_id);
        add_str(b, "state", r->state);
        add_str(b, "repository", r->push.repository);
        add_str(b, "tag", r->push.tag);
        add_str(b, "digest", r->push.digest);
        add_str(b, "registry", r->push.host);
        add_str(b, "pusher", r->push.pusher);
        add_str(b, "event_id", r->push.event_id);
        add_str(b, "pushed_at", r->push.timestamp);
        add_str(b, "old_image", r->old_image);
        add_str(b, "old_digest", r->old_digest);
        add_str(b, "new_image", r->new_image);
        add_str(b, "deployment_id", r->deployment_id);
        add_str(b, "reason", r->reason);
        add_str(b, "task_message", r->task_message);
        add_ms_time(b, "created_at", r->created);
        add_ms_time(b, "started_at", r->started);
        add_ms_time(b, "ended_at", r->ended);
        if (r->started && r->ended)
            buf_printf(b, ",\"duration_s\":%.3f", (r->ended - r->started) / 1000.0);
        buf_adds(b, "}");
    }
    pthread_mutex_unlock(&d->mu);
    return buf_adds(b, "]}");
}

/* ---------------------------------------------------------------- reports */

static void report_init(struct report *r, enum report_kind k, const struct push *p,
                        const char *app_id)
{
    memset(r, 0, sizeof *r);
    r->kind = k;
    if (p) r->push = *p;
    copy(r->app_id, sizeof r->app_id, app_id);
    r->instances = -1;
}

static void count_outcome(const char *outcome)
{
    metrics_add("autodeploy_deployments_total", "outcome", outcome, 1);
}

/* Reports and records the end of a job that did not deploy. */
static void finish_skipped(struct deployer *d, uint64_t seq, const struct push *p,
                           const char *app_id, const char *channel, const char *state,
                           enum report_kind kind, const char *reason)
{
    record_set(d, seq, state, NULL, NULL, NULL, reason, NULL);
    count_outcome(state);
    struct report r;
    report_init(&r, kind, p, app_id);
    copy(r.reason, sizeof r.reason, reason);
    copy(r.slack_channel, sizeof r.slack_channel, channel);
    report_emit(&r);
    log_info(kind == REPORT_SUPERSEDED ? "push superseded" : "deployment skipped", "app", app_id,
             "repository", p->repository, "tag", p->tag, "reason", reason, NULL);
}

/* ---------------------------------------------------------------- app helpers */

static const char *app_label(const cJSON *app, const char *name)
{
    return jstr(cJSON_GetObjectItemCaseSensitive(app, "labels"), name);
}

static int is_true(const char *v)
{
    return v && (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"));
}

static int label_true(const cJSON *app, const char *name)
{
    return is_true(app_label(app, name));
}

static const char *app_image(const cJSON *app)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(app, "container");
    return jstr(cJSON_GetObjectItemCaseSensitive(c, "docker"), "image");
}

/* Marathon's app id rules: absolute, segments of [a-z0-9.-] starting and ending with a letter
 * or digit (so no "." or ".." segment). An id outside them did not come from a real Marathon
 * and could escape --app-prefix through URL dot-segment removal: such an app is never touched. */
static int app_id_valid(const char *id)
{
    if (!id || id[0] != '/' || strlen(id) > 255) return 0;
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

static int prefix_allowed(const struct config *cfg, const char *app_id)
{
    if (cfg->app_prefix.n == 0) return 1;
    for (size_t i = 0; i < cfg->app_prefix.n; i++)
        if (!strncmp(app_id, cfg->app_prefix.v[i], strlen(cfg->app_prefix.v[i]))) return 1;
    return 0;
}

/* The image the app should run after this push: its own registry host kept. */
static int new_image_for(const char *current, const struct push *p, int pin, char *out, size_t len)
{
    struct image_ref cur, nw;
    if (ref_parse_image(current, &cur) < 0) return -1;
    memset(&nw, 0, sizeof nw);
    copy(nw.host, sizeof nw.host, cur.host);
    copy(nw.repository, sizeof nw.repository, p->repository);
    copy(nw.tag, sizeof nw.tag, p->tag);
    if (pin) copy(nw.digest, sizeof nw.digest, p->digest);
    return ref_format_image(&nw, out, len);
}

static int get_app(struct deployer *d, const char *app_id, struct httpc_resp *resp, cJSON **app)
{
    struct buf path;
    buf_init(&path, 4096);
    marathon_app_path(app_id, &path);
    int rc = marathon_request(d->m, "GET", path.data, NULL, resp);
    buf_free(&path);
    *app = NULL;
    if (rc == 0 && resp->status == 200) {
        cJSON *j = cJSON_Parse(resp->body.data);
        cJSON *a = cJSON_DetachItemFromObjectCaseSensitive(j, "app");
        cJSON_Delete(j);
        if (!cJSON_IsObject(a)) {
            cJSON_Delete(a);
            return -1;
        }
        *app = a;
    }
    return rc;
}

/* ---------------------------------------------------------------- matching */

struct match_view {
    const char *app_id;
    const char *image;
    int matched;
    char why[256];
    int invalid;
};

/* Decides whether one listed app matches p. Warns once per app and label value about invalid
 * patterns. */
static void match_app(struct deployer *d, const struct listed_app *app, const struct push *p,
                      struct match_view *v)
{
    memset(v, 0, sizeof *v);
    v->app_id = app->id;
    v->image = app->image;
    const char *value = app->label;
    if (!v->app_id || !value) return;

    char err[256];
    int first = 0;
    const match_set *ms = match_cache_get(d->cache, value, v->app_id, err, sizeof err, &first);
    if (!ms) {
        v->invalid = 1;
        snprintf(v->why, sizeof v->why, "invalid %.50s label: %.170s", config_live()->label, err);
        if (first) {
            log_warn("invalid autodeploy label: app skipped", "app", v->app_id, "label",
                     config_live()->label, "pattern", value, "error", err, NULL);
            struct report r;
            report_init(&r, REPORT_SKIPPED, p, v->app_id);
            copy(r.reason, sizeof r.reason, v->why);
            copy(r.slack_channel, sizeof r.slack_channel, app->channel);
            report_emit(&r);
        }
        return;
    }
    struct image_ref cur;
    const char *current_tag = NULL;
    if (v->image && ref_parse_image(v->image, &cur) == 0 && cur.tag[0]) current_tag = cur.tag;
    struct match_subject s = {p->host, p->repository, p->tag, current_tag};
    v->matched = match_test(ms, &s, v->why, sizeof v->why);
    match_cache_release(ms);
}

/* Lists the apps carrying the label into out; retries while Marathon is unreachable or
 * failing. Returns 0, or -1 with the last error. */
static int list_apps(struct deployer *d, int64_t deadline, struct listing *out, char *err,
                     size_t errlen)
{
    struct buf path;
    buf_init(&path, 4096);
    const char *label = config_live()->label;
    marathon_label_query(label, &path);
    int ok = -1;
    memset(out, 0, sizeof *out);
    for (int attempt = 0; !d->stop && !d->draining; attempt++) {
        struct httpc_resp resp;
        int rc = marathon_request(d->m, "GET", path.data, NULL, &resp);
        if (rc == 0 && resp.status == 200) {
            ok = listing_parse(resp.body.data ? resp.body.data : "", resp.body.len, label, out, err,
                               errlen);
            httpc_resp_free(&resp);
            if (ok == 0) break;
        } else {
            marathon_error_text(&resp, err, errlen);
            httpc_resp_free(&resp);
            /* Retrying cannot help a refusal of our credentials or of the selector. */
            if (resp.status == 401 || resp.status == 403 || resp.status == 422) break;
        }
        if (follower_now_ms() >= deadline) break;
        log_warn("cannot list Marathon apps; retrying", "error", err, NULL);
        nap(d, backoff_ms(attempt));
    }
    buf_free(&path);
    return ok;
}

/* ---------------------------------------------------------------- per-app serialization */

/* Hands a job to the workers; call with d->mu held. */
static void ready_append(struct deployer *d, struct job *j)
{
    if (d->ready_tail)
        d->ready_tail->next = j;
    else
        d->ready_head = j;
    d->ready_tail = j;
    pthread_cond_signal(&d->cv);
}

static void submit(struct deployer *d, const struct push *p, const char *app_id)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) return;
    journal_hold(d->journal, p->jid); /* released when the job ends */
    j->push = *p;
    copy(j->app_id, sizeof j->app_id, app_id);
    j->record = record_new(d, p, app_id);
    struct job *loser = NULL;

    pthread_mutex_lock(&d->mu);
    struct slot *s = d->slots;
    while (s && strcmp(s->app_id, app_id) != 0)
        s = s->next;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) {
            pthread_mutex_unlock(&d->mu);
            journal_release(d->journal, p->jid);
            free(j);
            return;
        }
        copy(s->app_id, sizeof s->app_id, app_id);
        s->next = d->slots;
        d->slots = s;
        ready_append(d, j);
    } else if (!s->pending) {
        s->pending = j;
    } else {
        /* Keep the newest push (event time; a tie goes to the later arrival). */
        if (j->push.timestamp_ns && s->pending->push.timestamp_ns &&
            j->push.timestamp_ns < s->pending->push.timestamp_ns) {
            loser = j;
        } else {
            loser = s->pending;
            s->pending = j;
        }
    }
    pthread_mutex_unlock(&d->mu);

    if (loser) {
        const struct push *w = loser == j ? &s->pending->push : &j->push;
        char reason[300];
        snprintf(reason, sizeof reason, "a newer push (%.150s:%.100s) will deploy instead",
                 w->repository, w->tag);
        finish_skipped(d, loser->record, &loser->push, app_id, NULL, "superseded",
                       REPORT_SUPERSEDED, reason);
        journal_release(d->journal, loser->push.jid);
        free(loser);
    }
}

/* A push that could not be matched because the listing failed (err) or autodeployd stops. */
static void not_dispatched(struct deployer *d, const struct push *p, const char *err)
{
    if (d->stop || d->draining) {
        log_warn("push not deployed: autodeployd stopped before matching it", "event_id",
                 p->event_id, "repository", p->repository, "tag", p->tag, "digest", p->digest,
                 NULL);
        pushq_set_state(d->q, p, "not deployed (stopped)");
        return; /* still pending in the state file: queued again at the next start */
    }
    log_error("push not deployed: cannot list Marathon apps", "repository", p->repository, "tag",
              p->tag, "error", err, NULL);
    struct report r;
    report_init(&r, REPORT_FAILED, p, "");
    snprintf(r.reason, sizeof r.reason, "cannot list Marathon apps: %.450s", err);
    report_emit(&r);
    pushq_set_state(d->q, p, "failed");
    journal_release(d->journal, p->jid);
}

/* Matches one push against the listed apps and hands a job per matching app to the workers. */
static void dispatch(struct deployer *d, const struct push *p, const struct listing *apps)
{
    struct report pushed;
    report_init(&pushed, REPORT_PUSHED, p, "");
    const char *targets[256];
    int n = 0;
    for (size_t i = 0; i < apps->n; i++) {
        const struct listed_app *app = &apps->apps[i];
        struct match_view v;
        match_app(d, app, p, &v);
        if (!v.matched) continue;
        metrics_add("autodeploy_matches_total", NULL, NULL, 1);
        const char *channel = app->channel;
        if (!app_id_valid(v.app_id)) {
            uint64_t seq = record_new(d, p, v.app_id);
            finish_skipped(d, seq, p, v.app_id, channel, "skipped", REPORT_SKIPPED,
                           "the app id breaks Marathon's id rules; it is never touched");
            continue;
        }
        if (!prefix_allowed(config_live(), v.app_id)) {
            uint64_t seq = record_new(d, p, v.app_id);
            finish_skipped(d, seq, p, v.app_id, channel, "skipped", REPORT_SKIPPED,
                           "the app is outside the allowed --app-prefix");
            continue;
        }
        if (is_true(app->paused)) {
            uint64_t seq = record_new(d, p, v.app_id);
            finish_skipped(d, seq, p, v.app_id, channel, "skipped", REPORT_SKIPPED,
                           "the app is paused (label autodeploy.paused=true)");
            continue;
        }
        if (n < 256) targets[n++] = v.app_id;
    }
    size_t o = 0;
    for (int i = 0; i < n && o < sizeof pushed.apps; i++)
        o += (size_t)snprintf(pushed.apps + o, sizeof pushed.apps - o, "%s%s", i ? ", " : "",
                              targets[i]);
    pushed.n_apps = n;
    /* A push queued again from the state file was announced before the restart (or is
     * announced by its deployments now): no second "Pushed" message. */
    if (!p->replayed) report_emit(&pushed);
    log_info(n ? "push matches apps" : "push matches no app", "repository", p->repository, "tag",
             p->tag, "apps", pushed.apps, NULL);
    for (int i = 0; i < n; i++)
        submit(d, p, targets[i]);
    pushq_set_state(d->q, p, n ? "dispatched" : "no match");
    journal_release(d->journal, p->jid); /* the push's own reference: its jobs hold it now */
}

#define BATCH 64

/* Takes pushes in arrival order. Pushes that are already waiting when one is taken (a burst,
 * or the queue draining after a pause or an outage) share one app listing: a burst of N
 * pushes costs one listing, not N. */
static void *dispatcher_main(void *arg)
{
    struct deployer *d = arg;
    struct push batch[BATCH]; /* 64 x 1.1 KiB on this thread's stack */
    while (!d->stop && pushq_take(d->q, &batch[0]) == 0) {
        size_t n = 1;
        while (n < BATCH && !pushq_paused(d->q) && pushq_take_nowait(d->q, &batch[n]) == 0)
            n++;
        char err[512];
        int64_t deadline = follower_now_ms() + config_live()->deploy_timeout_ms;
        struct listing apps;
        if (list_apps(d, deadline, &apps, err, sizeof err) < 0) {
            for (size_t i = 0; i < n; i++)
                not_dispatched(d, &batch[i], err);
            continue;
        }
        for (size_t i = 0; i < n; i++)
            dispatch(d, &batch[i], &apps);
        listing_free(&apps);
    }
    return NULL;
}

/* ---------------------------------------------------------------- one job */

/* Waits until none of the deployments in ids (a 409 body) runs any more, or the deadline. */
static void wait_unlocked(struct deployer *d, const cJSON *ids, int64_t deadline)
{
    while (!d->stop && follower_now_ms() < deadline) {
        nap(d, config_live()->poll_interval_ms < 1000 ? config_live()->poll_interval_ms : 1000);
        struct httpc_resp resp;
        if (marathon_request(d->m, "GET", "/v2/deployments", NULL, &resp) < 0 ||
            resp.status != 200) {
            httpc_resp_free(&resp);
            continue;
        }
        cJSON *list = cJSON_Parse(resp.body.data);
        httpc_resp_free(&resp);
        int still = 0;
        const cJSON *id, *dep;
        cJSON_ArrayForEach(id, ids)
        {
            const char *want = jstr(id, "id");
            cJSON_ArrayForEach(dep, list)
            {
                const char *have = jstr(dep, "id");
                if (want && have && !strcmp(want, have)) still = 1;
            }
        }
        cJSON_Delete(list);
        if (!still) return;
    }
}

/* Without the event stream: is the deployment still listed? If not, did the app reach the
 * version it created? Returns PENDING while it runs. */
static enum follow_outcome poll_deployment(struct deployer *d, const char *app_id,
                                           const char *dep_id, const char *version, char *reason,
                                           size_t len)
{
    struct httpc_resp resp;
    if (marathon_request(d->m, "GET", "/v2/deployments", NULL, &resp) < 0 || resp.status != 200) {
        httpc_resp_free(&resp);
        return FOLLOW_PENDING;
    }
    cJSON *list = cJSON_Parse(resp.body.data);
    httpc_resp_free(&resp);
    int running = 0, is_list = cJSON_IsArray(list);
    const cJSON *dep;
    cJSON_ArrayForEach(dep, list)
    {
        const char *id = jstr(dep, "id");
        if (id && !strcmp(id, dep_id)) running = 1;
    }
    cJSON_Delete(list);
    if (running || !is_list) return FOLLOW_PENDING;
    cJSON *app = NULL;
    get_app(d, app_id, &resp, &app);
    httpc_resp_free(&resp);
    enum follow_outcome o = FOLLOW_PENDING;
    if (app) {
        const char *v = jstr(app, "version");
        /* Marathon keeps the new version even when the deployment failed or was cancelled:
         * success means the app's tasks run that version, as many as it wants. */
        const cJSON *inst = cJSON_GetObjectItemCaseSensitive(app, "instances");
        int want = cJSON_IsNumber(inst) ? inst->valueint : 1, at_version = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(app, "tasks"))
        {
            const char *tv = jstr(t, "version"), *st = jstr(t, "state");
            if (tv && st && version && !strcmp(tv, version) && !strcmp(st, "TASK_RUNNING"))
                at_version++;
        }
        if (version && *version && v && !strcmp(v, version) && at_version >= want) {
            o = FOLLOW_SUCCEEDED;
        } else if (version && *version && v && !strcmp(v, version)) {
            o = FOLLOW_FAILED;
            const cJSON *ltf = cJSON_GetObjectItemCaseSensitive(app, "lastTaskFailure");
            const char *msg = jstr(ltf, "message");
            snprintf(reason, len,
                     "the deployment ended with %d of %d tasks running the new version%s%.300s",
                     at_version, want, msg && *msg ? "; last task failure: " : "", msg ? msg : "");
        } else {
            o = FOLLOW_FAILED;
            snprintf(reason, len,
                     "the deployment ended but the app is not at the deployed "
                     "version (cancelled or rolled back)");
        }
        cJSON_Delete(app);
    }
    return o;
}

struct attempt {
    struct deployer *d;
    struct job *job;
    const struct push *p;
    char channel[128];
    char old_image[512], new_image[512], old_digest[PUSH_DIGEST_MAX], old_version[64];
    int instances;
    int64_t deadline;
    char deployed_at[40]; /* fixed per job: a retried update is then byte-identical, so one
                             whose answer was lost but which lands later changes nothing */
};

static void report_outcome(struct attempt *a, enum report_kind kind, const char *dep_id,
                           const char *reason, const char *task_message, double secs)
{
    struct report r;
    report_init(&r, kind, a->p, a->job->app_id);
    copy(r.old_image, sizeof r.old_image, a->old_image);
    copy(r.new_image, sizeof r.new_image, a->new_image);
    copy(r.old_digest, sizeof r.old_digest, a->old_digest);
    copy(r.deployment_id, sizeof r.deployment_id, dep_id);
    copy(r.reason, sizeof r.reason, reason);
    copy(r.task_message, sizeof r.task_message, task_message);
    copy(r.slack_channel, sizeof r.slack_channel, a->channel);
    r.instances = a->instances;
    r.duration_s = secs;
    report_emit(&r);
}

/* Builds the partial update: full container with the new image, full labels with ours. */
static char *update_body(struct attempt *a, const cJSON *app, int mutable_tag)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *container = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(app, "container"), 1);
    cJSON *docker = cJSON_GetObjectItemCaseSensitive(container, "docker");
    cJSON_ReplaceItemInObjectCaseSensitive(docker, "image", cJSON_CreateString(a->new_image));
    if (mutable_tag) {
        /* Same image string, new digest: make the agents pull instead of reusing their copy. */
        if (cJSON_GetObjectItemCaseSensitive(docker, "forcePullImage"))
            cJSON_ReplaceItemInObjectCaseSensitive(docker, "forcePullImage", cJSON_CreateTrue());
        else
            cJSON_AddTrueToObject(docker, "forcePullImage");
    }
    cJSON_AddItemToObject(body, "container", container);
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(app, "labels");
    cJSON *labels = cJSON_IsObject(old) ? cJSON_Duplicate(old, 1) : cJSON_CreateObject();
    if (!a->deployed_at[0]) rfc3339_now(a->deployed_at, sizeof a->deployed_at);
    const char *now = a->deployed_at;
    const char *set[][2] = {
        {"autodeploy.digest", a->p->digest},
        {"autodeploy.pushed-by", a->p->pusher[0] ? a->p->pusher : "unknown"},
        {"autodeploy.deployed-at", now},
        {"autodeploy.pushed-at", a->p->timestamp[0] ? a->p->timestamp : NULL},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        if (!set[i][1]) continue;
        cJSON_DeleteItemFromObjectCaseSensitive(labels, set[i][0]);
        cJSON_AddStringToObject(labels, set[i][0], set[i][1]);
    }
    cJSON_AddItemToObject(body, "labels", labels);
    char *s = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    return s;
}

/* Rolls the app back: a running deployment is deleted (Marathon starts the rollback), an
 * ended one is undone by restoring the previous app version. Returns the rollback's
 * deployment id in out, 0 on success. */
static int rollback(struct attempt *a, const char *dep_id, int still_running, char *out, size_t len,
                    char *err, size_t errlen)
{
    struct httpc_resp resp;
    struct buf path, body;
    buf_init(&path, 4096);
    buf_init(&body, 256);
    int rc = -1;
    if (still_running) {
        buf_printf(&path, "/v2/deployments/%s", dep_id);
        marathon_request(a->d->m, "DELETE", path.data, NULL, &resp);
    } else {
        marathon_app_path(a->job->app_id, &path);
        buf_adds(&path, "?force=true");
        buf_adds(&body, "{\"version\":");
        buf_add_json_string(&body, a->old_version);
        buf_adds(&body, "}");
        marathon_request(a->d->m, "PUT", path.data, body.data, &resp);
    }
    if (resp.status == 200 || resp.status == 201 || resp.status == 202) {
        cJSON *j = cJSON_Parse(resp.body.data);
        copy(out, len, resp.deployment_id[0] ? resp.deployment_id : jstr(j, "deploymentId"));
        cJSON_Delete(j);
        rc = 0;
    } else {
        marathon_error_text(&resp, err, errlen);
    }
    httpc_resp_free(&resp);
    buf_free(&path);
    buf_free(&body);
    return rc;
}

static void run_job(struct deployer *d, struct job *job)
{
    struct attempt a;
    memset(&a, 0, sizeof a);
    a.d = d;
    a.job = job;
    a.p = &job->push;
    a.instances = -1;
    a.deadline = follower_now_ms() + config_live()->deploy_timeout_ms;
    const struct push *p = &job->push;
    const char *app_id = job->app_id;
    char err[REPORT_TEXT_MAX] = "";
    cJSON *app = NULL;
    char *body = NULL;
    char dep_id[128] = "", version[64] = "";
    record_set(d, job->record, "updating", NULL, NULL, NULL, NULL, NULL);

    const char *method = "PATCH";
    int sent_unanswered = 0; /* an update went out and no answer came back */
    for (int attempt = 0;; attempt++) {
        /* (Re)read the app: its definition may have changed since it was listed. */
        struct httpc_resp resp;
        cJSON_Delete(app);
        get_app(d, app_id, &resp, &app);
        if (resp.status == 404) {
            httpc_resp_free(&resp);
            finish_skipped(d, job->record, p, app_id, a.channel, "failed", REPORT_FAILED,
                           "the app no longer exists in Marathon (it is never re-created)");
            goto out;
        }
        if (!app) {
            marathon_error_text(&resp, err, sizeof err);
            httpc_resp_free(&resp);
            if (d->stop || follower_now_ms() >= a.deadline || resp.status == 401) {
                finish_skipped(d, job->record, p, app_id, a.channel, "failed", REPORT_FAILED, err);
                goto out;
            }
            nap(d, backoff_ms(attempt));
            continue;
        }
        httpc_resp_free(&resp);
        copy(a.channel, sizeof a.channel, app_label(app, "autodeploy.slack-channel"));
        const char *image = app_image(app);
        const char *cur_digest = app_label(app, "autodeploy.digest");
        const cJSON *inst = cJSON_GetObjectItemCaseSensitive(app, "instances");
        a.instances = cJSON_IsNumber(inst) ? inst->valueint : -1;
        copy(a.old_version, sizeof a.old_version, jstr(app, "version"));
        copy(a.old_digest, sizeof a.old_digest, cur_digest);
        if (!image) {
            finish_skipped(d, job->record, p, app_id, a.channel, "skipped", REPORT_SKIPPED,
                           "the app has no container.docker.image to update");
            goto out;
        }
        if (!a.old_image[0]) copy(a.old_image, sizeof a.old_image, image); /* as first read */
        int pin = config_live()->pin_digest || label_true(app, "autodeploy.pin-digest");
        if (new_image_for(image, p, pin, a.new_image, sizeof a.new_image) < 0) {
            snprintf(err, sizeof err, "cannot parse the app's current image \"%.200s\"", image);
            finish_skipped(d, job->record, p, app_id, a.channel, "skipped", REPORT_SKIPPED, err);
            goto out;
        }
        record_set(d, job->record, NULL, a.old_image, a.new_image, NULL, NULL, NULL);
        record_set_old_digest(d, job->record, a.old_digest);
        int same_image = !strcmp(image, a.new_image);
        if (same_image && cur_digest && !strcmp(cur_digest, p->digest)) {
            /* Already there. Still running (our own update whose answer was lost, or one
             * started before a restart)? Then follow that deployment to its end. */
            const cJSON *deps = cJSON_GetObjectItemCaseSensitive(app, "deployments");
            const char *running = jstr(cJSON_GetArrayItem(deps, 0), "id");
            if (running) {
                copy(dep_id, sizeof dep_id, running);
                copy(version, sizeof version, jstr(app, "version"));
                log_info("the app is already being deployed to this image; following it", "app",
                         app_id, "deployment", dep_id, NULL);
                break;
            }
            if (sent_unanswered) {
                /* Our update landed although its answer was lost, and it has ended. */
                copy(dep_id, sizeof dep_id, "");
                copy(version, sizeof version, jstr(app, "version"));
                break;
            }
            if (p->replayed) {
                /* The channel may have seen this deployment start before the restart: close
                 * the story instead of going quiet. */
                finish_skipped(d, job->record, p, app_id, a.channel, "unchanged", REPORT_SKIPPED,
                               "the app already runs this image and digest: its deployment "
                               "ended while autodeployd was stopped");
                goto out;
            }
            record_set(d, job->record, "unchanged", NULL, NULL, NULL,
                       "the app already runs this image and digest", NULL);
            count_outcome("unchanged");
            log_info("app already runs this image; nothing to deploy", "app", app_id, "image",
                     a.new_image, "digest", p->digest, NULL);
            goto out;
        }
        const char *pushed_at = app_label(app, "autodeploy.pushed-at");
        int64_t deployed_ns;
        if (pushed_at && p->timestamp_ns && event_parse_rfc3339(pushed_at, &deployed_ns) == 0 &&
            deployed_ns > p->timestamp_ns) {
            snprintf(err, sizeof err, "the push is older than the one the app runs (pushed at %s)",
                     pushed_at);
            finish_skipped(d, job->record, p, app_id, a.channel, "skipped", REPORT_SKIPPED, err);
            goto out;
        }
        if (label_true(app, "autodeploy.paused")) {
            finish_skipped(d, job->record, p, app_id, a.channel, "skipped", REPORT_SKIPPED,
                           "the app is paused (label autodeploy.paused=true)");
            goto out;
        }
        free(body);
        body = update_body(&a, app, same_image && !pin);
        if (config_live()->dry_run) {
            snprintf(err, sizeof err, "dry run: would deploy %.200s (now %.200s)", a.new_image,
                     a.old_image);
            finish_skipped(d, job->record, p, app_id, a.channel, "dry_run", REPORT_SKIPPED, err);
            goto out;
        }
        int force = config_live()->force || label_true(app, "autodeploy.force");
        struct buf path;
        buf_init(&path, 4096);
        marathon_app_path(app_id, &path);
        if (!strcmp(method, "PUT"))
            buf_adds(&path, force ? "?partialUpdate=true&force=true" : "?partialUpdate=true");
        else if (force)
            buf_adds(&path, "?force=true");
        marathon_request(d->m, method, path.data, body, &resp);
        buf_free(&path);
        long st = resp.status;
        if (st == 200 || st == 201) {
            cJSON *j = cJSON_Parse(resp.body.data);
            copy(dep_id, sizeof dep_id,
                 resp.deployment_id[0] ? resp.deployment_id : jstr(j, "deploymentId"));
            copy(version, sizeof version, jstr(j, "version"));
            cJSON_Delete(j);
            httpc_resp_free(&resp);
            break;
        }
        marathon_error_text(&resp, err, sizeof err);
        if (st == 405 && !strcmp(method, "PATCH")) {
            /* Marathon before 1.4: PUT merges too, but creates a missing app, so the re-read
             * at the top of the loop must see the app first. */
            httpc_resp_free(&resp);
            log_info("Marathon has no PATCH; falling back to PUT ?partialUpdate=true", "app",
                     app_id, NULL);
            method = "PUT";
            continue;
        }
        if (st == 409) {
            cJSON *j = cJSON_Parse(resp.body.data);
            httpc_resp_free(&resp);
            if (follower_now_ms() >= a.deadline || d->stop) {
                cJSON_Delete(j);
                char why[REPORT_TEXT_MAX];
                snprintf(why, sizeof why, "the app stayed locked by another deployment: %.400s",
                         err);
                finish_skipped(d, job->record, p, app_id, a.channel, "skipped", REPORT_SKIPPED,
                               why);
                goto out;
            }
            log_info("app locked by a running deployment; waiting for it", "app", app_id, NULL);
            record_set(d, job->record, "locked", NULL, NULL, NULL, err, NULL);
            wait_unlocked(d, cJSON_GetObjectItemCaseSensitive(j, "deployments"), a.deadline);
            cJSON_Delete(j);
            record_set(d, job->record, "updating", NULL, NULL, NULL, "", NULL);
            continue;
        }
        httpc_resp_free(&resp);
        if (st == 404) {
            finish_skipped(d, job->record, p, app_id, a.channel, "failed", REPORT_FAILED,
                           "the app was deleted before it could be updated (never re-created)");
            goto out;
        }
        if (st == 0) sent_unanswered = 1;
        int retryable = st == 0 || st == 403 || st >= 500;
        if (!retryable || attempt >= 8 || follower_now_ms() >= a.deadline || d->stop) {
            log_warn("app update failed", "app", app_id, "error", err, NULL);
            finish_skipped(d, job->record, p, app_id, a.channel, "failed", REPORT_FAILED, err);
            goto out;
        }
        log_warn("app update failed; retrying", "app", app_id, "error", err, NULL);
        nap(d, backoff_ms(attempt));
    }

    if (!dep_id[0]) {
        /* An update whose answer was lost landed and its deployment is already over. */
        record_set(d, job->record, "succeeded", NULL, NULL, NULL,
                   "the update landed although its answer was lost", NULL);
        count_outcome("succeeded");
        report_outcome(&a, REPORT_DEPLOYED, "", "", "", 0);
        goto out;
    }

    /* The deployment exists: follow it to its end. */
    int watch = follower_watch(d->f, dep_id, app_id);
    record_set(d, job->record, "deploying", NULL, NULL, dep_id, NULL, NULL);
    log_info("deployment started", "app", app_id, "deployment", dep_id, "image", a.new_image,
             "previous", a.old_image, NULL);
    report_outcome(&a, REPORT_DEPLOYING, dep_id, "", "", 0);
    int64_t started = follower_now_ms();
    char reason[REPORT_TEXT_MAX] = "", task[REPORT_TEXT_MAX] = "";
    enum follow_outcome o = FOLLOW_PENDING;
    int polls = 0;
    while (!d->stop) {
        int connected = follower_connected(d->f);
        unsigned gen = follower_generation(d->f);
        o = follower_wait(d->f, watch, a.deadline,
                          connected ? 5000 : config_live()->poll_interval_ms, reason, sizeof reason,
                          task, sizeof task);
        if (o != FOLLOW_PENDING || follower_now_ms() >= a.deadline || d->stop) break;
        /* Without the stream, after it reconnected (events of the gap are lost for good), and
         * now and then even with it. */
        if (!connected || gen != follower_generation(d->f) || ++polls % 6 == 0) {
            o = poll_deployment(d, app_id, dep_id, version, reason, sizeof reason);
            if (o != FOLLOW_PENDING) {
                follower_settle(d->f, watch, o, reason);
                break;
            }
        }
    }
    if (o == FOLLOW_PENDING)
        follower_wait(d->f, watch, 0, 0, reason, sizeof reason, task, sizeof task);
    follower_unwatch(d->f, watch);
    double secs = (follower_now_ms() - started) / 1000.0;
    if (o != FOLLOW_PENDING || follower_now_ms() >= a.deadline)
        metrics_observe("autodeploy_deploy_duration_seconds", secs);

    if (o == FOLLOW_SUCCEEDED) {
        record_set(d, job->record, "succeeded", NULL, NULL, NULL, NULL, NULL);
        count_outcome("succeeded");
        log_info("deployment succeeded", "app", app_id, "deployment", dep_id, "image", a.new_image,
                 NULL);
        report_outcome(&a, REPORT_DEPLOYED, dep_id, "", "", secs);
        goto out;
    }
    if (o == FOLLOW_PENDING && d->stop) {
        const char *why = "autodeployd stopped while the deployment was running; Marathon goes "
                          "on with it";
        record_set(d, job->record, "interrupted", NULL, NULL, NULL, why, task);
        count_outcome("interrupted");
        log_warn("stopping while a deployment runs; Marathon goes on with it", "app", app_id,
                 "deployment", dep_id, NULL);
        report_outcome(&a, REPORT_INTERRUPTED, dep_id, why, task, secs);
        goto out;
    }
    int timed_out = o == FOLLOW_PENDING;
    if (timed_out) {
        char limit[64];
        snprintf(limit, sizeof limit, "%.0fs", config_live()->deploy_timeout_ms / 1000.0);
        snprintf(reason, sizeof reason, "not finished after --deploy-timeout %s", limit);
    } else if (!reason[0]) {
        snprintf(reason, sizeof reason, "the deployment failed");
    }
    record_set(d, job->record, timed_out ? "timed_out" : "failed", NULL, NULL, NULL, reason, task);
    count_outcome(timed_out ? "timed_out" : "failed");
    log_warn(timed_out ? "deployment timed out" : "deployment failed", "app", app_id, "deployment",
             dep_id, "reason", reason, "task_message", task, NULL);
    report_outcome(&a, timed_out ? REPORT_TIMED_OUT : REPORT_FAILED, dep_id, reason, task, secs);
    if (config_live()->rollback_on_failure) {
        char rb[128] = "";
        if (rollback(&a, dep_id, timed_out, rb, sizeof rb, err, sizeof err) == 0) {
            record_set(d, job->record, "rolled_back", NULL, NULL, NULL, NULL, NULL);
            count_outcome("rolled_back");
            log_warn("deployment rolled back", "app", app_id, "deployment", dep_id,
                     "rollback_deployment", rb, NULL);
            report_outcome(&a, REPORT_ROLLED_BACK, rb, reason, task, secs);
        } else {
            log_error("rollback failed", "app", app_id, "deployment", dep_id, "error", err, NULL);
            char why[REPORT_TEXT_MAX];
            snprintf(why, sizeof why, "%.240s; the rollback was refused: %.240s", reason, err);
            record_set(d, job->record, NULL, NULL, NULL, NULL, why, NULL);
            struct report r;
            report_init(&r, REPORT_ROLLBACK_FAILED, a.p, app_id);
            copy(r.old_image, sizeof r.old_image, a.old_image);
            copy(r.new_image, sizeof r.new_image, a.new_image);
            copy(r.deployment_id, sizeof r.deployment_id, dep_id);
            copy(r.reason, sizeof r.reason, reason);
            copy(r.error, sizeof r.error, err);
            copy(r.slack_channel, sizeof r.slack_channel, a.channel);
            r.instances = a.instances;
            report_emit(&r);
        }
    }
out:
    cJSON_Delete(app);
    free(body);
}

static void *worker_main(void *arg)
{
    struct deployer *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->stop && !d->draining && !d->ready_head)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->stop || d->draining) break;
        struct job *j = d->ready_head;
        d->ready_head = j->next;
        if (!d->ready_head) d->ready_tail = NULL;
        j->next = NULL;
        d->inflight++;
        pthread_mutex_unlock(&d->mu);

        run_job(d, j);
        /* A job cut short by the stop stays pending in the state file: the next start queues
         * its push again, and finds the deployment done or still running. */
        if (!d->stop) journal_release(d->journal, j->push.jid);

        pthread_mutex_lock(&d->mu);
        d->inflight--;
        pthread_cond_broadcast(&d->cv);
        struct slot **sp = &d->slots;
        while (*sp && strcmp((*sp)->app_id, j->app_id) != 0)
            sp = &(*sp)->next;
        struct slot *s = *sp;
        if (s && s->pending) {
            struct job *n = s->pending;
            s->pending = NULL;
            ready_append(d, n);
        } else if (s) {
            *sp = s->next;
            free(s);
        }
        free(j);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---------------------------------------------------------------- plan */

int deployer_plan_json(struct deployer *d, const char *image_ref, struct buf *b)
{
    struct image_ref ref;
    if (!image_ref || ref_parse_image(image_ref, &ref) < 0 || !ref.tag[0] || ref.digest[0]) {
        buf_adds(b, "{\"error\":\"image must be [host/]repository:tag\"}");
        return 400;
    }
    struct push p;
    memset(&p, 0, sizeof p);
    copy(p.host, sizeof p.host, ref.host);
    copy(p.repository, sizeof p.repository, ref.repository);
    copy(p.tag, sizeof p.tag, ref.tag);
    char err[512];
    struct listing apps;
    if (list_apps(d, 0, &apps, err, sizeof err) < 0) {
        buf_adds(b, "{\"error\":");
        buf_add_json_string(b, err);
        buf_adds(b, "}");
        return 502;
    }
    buf_adds(b, "{\"image\":");
    buf_add_json_string(b, image_ref);
    buf_adds(b, ",\"apps\":[");
    int first = 1;
    for (size_t i = 0; i < apps.n; i++) {
        const struct listed_app *app = &apps.apps[i];
        struct match_view v;
        match_app(d, app, &p, &v);
        if (!v.app_id) continue;
        const char *action = "deploy";
        const char *reason = "";
        char ni[512] = "";
        if (!v.matched) {
            action = "none";
            reason = v.why;
        } else if (!app_id_valid(v.app_id)) {
            action = "skip";
            reason = "the app id breaks Marathon's id rules; it is never touched";
        } else if (!prefix_allowed(config_live(), v.app_id)) {
            action = "skip";
            reason = "the app is outside the allowed --app-prefix";
        } else if (is_true(app->paused)) {
            action = "skip";
            reason = "the app is paused (label autodeploy.paused=true)";
        } else if (!v.image) {
            action = "skip";
            reason = "the app has no container.docker.image to update";
        } else {
            new_image_for(v.image, &p, config_live()->pin_digest || is_true(app->pin), ni,
                          sizeof ni);
        }
        buf_adds(b, first ? "{\"id\":" : ",{\"id\":");
        first = 0;
        buf_add_json_string(b, v.app_id);
        add_str(b, "current_image", v.image);
        add_str(b, "new_image", ni);
        add_str(b, "action", action);
        add_str(b, "reason", reason);
        buf_adds(b, "}");
    }
    buf_adds(b, "]}");
    listing_free(&apps);
    return 200;
}

int deployer_health_json(struct deployer *d, struct buf *b)
{
    char why[256];
    int attached = follower_connected(d->f);
    /* An attached event stream proves Marathon answers; otherwise the last request tells. */
    int r = attached ? 1 : marathon_reachable(d->m, why, sizeof why);
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

struct deployer *deployer_new(const struct config *cfg, struct pushq *q, struct marathon *m,
                              struct follower *f, char *err, size_t errlen)
{
    struct deployer *d = calloc(1, sizeof *d);
    if (!d) return NULL;

    d->q = q;
    d->m = m;
    d->f = f;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->n_aliases = cfg->registry_alias.n;
    d->aliases = calloc(d->n_aliases + 1, sizeof *d->aliases);
    for (size_t i = 0; i < d->n_aliases; i++) {
        char *s = cfg->registry_alias.v[i];
        char *eq = strchr(s, '=');
        /* The config check guarantees NAME=HOST; the strings stay owned by cfg. */
        d->aliases[i].name = strndup(s, (size_t)(eq - s));
        d->aliases[i].host = eq + 1;
    }
    struct match_opts mo = {cfg->allow_repository_wildcards, d->aliases, d->n_aliases};
    d->cache = match_cache_new(&mo, 65536);
    if (!d->cache || !d->aliases) {
        snprintf(err, errlen, "out of memory");
        deployer_free(d);
        return NULL;
    }
    d->n_workers = (int)cfg->deploy_workers;
    d->workers = calloc((size_t)d->n_workers, sizeof *d->workers);
    deployer_metrics_declare();
    srand((unsigned)wall_ms());
    return d;
}

void deployer_set_journal(struct deployer *d, struct journal *j)
{
    d->journal = j;
}

int deployer_start(struct deployer *d)
{
    for (int i = 0; i < d->n_workers; i++)
        if (pthread_create(&d->workers[i], NULL, worker_main, d) != 0) return -1;
    if (pthread_create(&d->dispatcher, NULL, dispatcher_main, d) != 0) return -1;
    d->started = 1;
    return 0;
}

/* Reports a job that will not run because autodeployd is stopping. */
static void abandon(struct deployer *d, struct job *j)
{
    finish_skipped(d, j->record, &j->push, j->app_id, NULL, "skipped", REPORT_SKIPPED,
                   d->journal ? "autodeployd stopped before deploying it; it deploys at the next "
                                "start (--state-file)"
                              : "autodeployd stopped before deploying it; push again to deploy");
    free(j);
}

void deployer_stop(struct deployer *d, long grace_ms)
{
    if (!d || !d->started) return;
    /* 1. Take nothing new: the dispatcher leaves, idle workers leave. */
    pthread_mutex_lock(&d->mu);
    d->draining = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pushq_close(d->q);
    pthread_join(d->dispatcher, NULL);
    /* 2. Running jobs get the grace period to reach their outcome. */
    int64_t until = follower_now_ms() + grace_ms;
    pthread_mutex_lock(&d->mu);
    if (d->inflight) {
        char g[32];
        snprintf(g, sizeof g, "%ldms", grace_ms);
        log_info("waiting for running deployments before stopping", "grace", g, NULL);
    }
    while (d->inflight && follower_now_ms() < until) {
        pthread_mutex_unlock(&d->mu);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&d->mu);
    }
    /* 3. Then stop following: what still runs is reported interrupted. */
    d->stop = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    follower_interrupt(d->f);
    for (int i = 0; i < d->n_workers; i++)
        pthread_join(d->workers[i], NULL);
    d->started = 0;
    /* 4. Jobs that never started are reported, not silently dropped. */
    while (d->ready_head) {
        struct job *j = d->ready_head;
        d->ready_head = j->next;
        abandon(d, j);
    }
    d->ready_tail = NULL;
    for (struct slot *s = d->slots; s; s = s->next) {
        if (s->pending) abandon(d, s->pending);
        s->pending = NULL;
    }
}

void deployer_free(struct deployer *d)
{
    if (!d) return;
    deployer_stop(d, 0);
    while (d->ready_head) {
        struct job *j = d->ready_head;
        d->ready_head = j->next;
        free(j);
    }
    while (d->slots) {
        struct slot *s = d->slots;
        d->slots = s->next;
        free(s->pending);
        free(s);
    }
    for (size_t i = 0; d->aliases && i < d->n_aliases; i++)
        free((char *)d->aliases[i].name);
    free(d->aliases);
    free(d->workers);
    match_cache_free(d->cache);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
