/*
 * dispatch.c: the dispatcher thread (see deploy.h): pushes in, per-app work out.
 *
 * Pushes are taken in arrival order. Those already waiting when one is taken (a burst, or the
 * queue draining after a pause or an outage) share one app listing, and the whole batch is
 * handed to the per-app queue at once, so a job choosing among the pushes for its app sees all
 * of the batch's.
 */
#include "job.h"

#include "journal.h"
#include "listing.h"
#include "log.h"
#include "metrics.h"
#include "reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 64

/* Read ahead once this much past what was read has come: curl hands the body over in 16 KiB
 * pieces, each of which cuts an app in two (read again whole with the next piece). */
#define LISTING_READ_AHEAD (64 * 1024)

/* httpc's on_body for the listing: reads the apps whole so far (a listing over a network
 * arrives over milliseconds; read meanwhile, only its last piece is left when it ends); an
 * answer that starts over (another Marathon URL) starts the stream over. */
static void listing_arrived(const char *body, size_t len, void *ctx)
{
    struct listing_stream *ls = ctx;
    if (body) {
        if (len - ls->pos >= LISTING_READ_AHEAD) listing_stream_feed(ls, body, len);
        return;
    }
    const char *label = ls->label;
    listing_stream_free(ls);
    listing_stream_init(ls, label);
}

/* One GET of the listing, read while it arrives when the environment can. */
static int get_listing(struct deployer *d, const char *path, struct listing_stream *ls,
                       struct httpc_resp *resp)
{
    if (d->env.get_progressive)
        return d->env.get_progressive(d->env.ctx, path, listing_arrived, ls, resp);
    return job_request(d, "GET", path, NULL, resp);
}

int dispatch_list_apps(struct deployer *d, int64_t deadline, struct listing *out, char *err,
                       size_t errlen)
{
    struct buf path;
    buf_init(&path, 4096);
    const char *label = config_live()->label;
    marathon_label_query(label, &path);
    int ok = -1;
    memset(out, 0, sizeof *out);
    for (int attempt = 0; !job_stopping(d) && !atomic_load(&d->draining); attempt++) {
        struct httpc_resp resp;
        struct listing_stream ls;
        listing_stream_init(&ls, label);
        int rc = get_listing(d, path.data, &ls, &resp);
        if (rc == 0 && resp.status == 200) {
            ok = listing_stream_end(&ls, resp.body.data ? resp.body.data : "", resp.body.len, out,
                                    err, errlen);
            httpc_resp_free(&resp);
            if (ok == 0) break;
        } else {
            listing_stream_free(&ls);
            marathon_error_text(&resp, err, errlen);
            httpc_resp_free(&resp);
            /* Retrying cannot help a refusal of our credentials or of the selector. */
            if (resp.status == 401 || resp.status == 403 || resp.status == 422) break;
        }
        if (job_now(d) >= deadline) break;
        log_warn("cannot list Marathon apps; retrying", "error", err, NULL);
        job_nap(d, job_backoff_ms(attempt));
    }
    buf_free(&path);
    return ok;
}

/* Whether one listed app matches p; warns once per app and label value about an invalid
 * label (and reports it). Returns 1 on a match. */
static int match_app(struct deployer *d, const struct listed_app *app, const struct push *p)
{
    if (!app->id || !app->label) return 0;
    char err[256];
    int first = 0;
    const match_set *ms = match_cache_get(d->cache, app->label, app->id, err, sizeof err, &first);
    if (!ms) {
        if (first) {
            char why[REPORT_TEXT_MAX];
            snprintf(why, sizeof why, "invalid %.50s label: %.170s", config_live()->label, err);
            log_warn("invalid autodeploy label: app skipped", "app", app->id, "label",
                     config_live()->label, "pattern", app->label, "error", err, NULL);
            struct report r;
            report_init(&r, REPORT_SKIPPED, p, app->id);
            snprintf(r.reason, sizeof r.reason, "%s", why);
            snprintf(r.slack_channel, sizeof r.slack_channel, "%s",
                     app->channel ? app->channel : "");
            report_emit(&r);
        }
        return 0;
    }
    int m = decide_match(ms, app->image, p, NULL, 0, NULL);
    match_cache_release(ms);
    return m;
}

/* A push that could not be matched because the listing failed (err) or autodeployd stops. */
static void not_dispatched(struct deployer *d, const struct push *p, const char *err)
{
    if (job_stopping(d) || atomic_load(&d->draining)) {
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

/* The work one batch makes: a waiting push per (push, app) that may deploy. */
struct work {
    struct waiting **w;
    const char **app;
    size_t n, cap;
};

static int work_add(struct work *k, struct waiting *w, const char *app)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        struct waiting **nw = realloc(k->w, cap * sizeof *nw);
        if (nw) k->w = nw;
        const char **na = realloc(k->app, cap * sizeof *na);
        if (na) k->app = na;
        if (!nw || !na) return -1;
        k->cap = cap;
    }
    k->w[k->n] = w;
    k->app[k->n++] = app;
    return 0;
}

/* Matches one push against the listed apps and adds a waiting push per app that may deploy. */
static void dispatch(struct deployer *d, const struct push *p, const struct listing *apps,
                     struct work *k)
{
    struct report pushed;
    report_init(&pushed, REPORT_PUSHED, p, "");
    size_t o = 0, n = 0;
    for (size_t i = 0; i < apps->n; i++) {
        const struct listed_app *app = &apps->apps[i];
        if (!match_app(d, app, p)) continue;
        metrics_add("autodeploy_matches_total", NULL, NULL, 1);
        const char *gate = decide_gate(config_live(), app->id, decide_is_true(app->paused));
        uint64_t seq = record_new(d, p, app->id);
        if (gate) {
            finish_skipped(d, seq, p, app->id, app->channel, "skipped", REPORT_SKIPPED, gate);
            continue;
        }
        struct waiting *w = calloc(1, sizeof *w);
        if (!w || work_add(k, w, app->id) < 0) {
            free(w);
            finish_skipped(d, seq, p, app->id, app->channel, "failed", REPORT_FAILED,
                           "out of memory");
            continue;
        }
        w->push = *p;
        w->record = seq;
        journal_hold(d->journal, p->jid); /* released when the push's job for this app ends */
        /* The Slack summary lists what fits; n_apps counts them all. */
        int len = snprintf(pushed.apps + o, sizeof pushed.apps - o, "%s%s", n ? ", " : "", app->id);
        if (len > 0 && o + (size_t)len < sizeof pushed.apps) o += (size_t)len;
        n++;
    }
    pushed.n_apps = (int)n;
    /* A push queued again from the state file was announced before the restart (or is
     * announced by its deployments now): no second "Pushed" message. */
    if (!p->replayed) report_emit(&pushed);
    log_info(n ? "push matches apps" : "push matches no app", "repository", p->repository, "tag",
             p->tag, "apps", pushed.apps, NULL);
    pushq_set_state(d->q, p, n ? "dispatched" : "no match");
    journal_release(d->journal, p->jid); /* the push's own reference: its jobs hold it now */
}

void *dispatch_main(void *arg)
{
    struct deployer *d = arg;
    struct push batch[BATCH]; /* 64 x 1.1 KiB on this thread's stack */
    while (!job_stopping(d) && pushq_take(d->q, &batch[0]) == 0) {
        size_t n = 1;
        while (n < BATCH && !pushq_paused(d->q) && pushq_take_nowait(d->q, &batch[n]) == 0)
            n++;
        char err[512];
        int64_t deadline = job_now(d) + config_live()->update_timeout_ms;
        struct listing apps;
        if (dispatch_list_apps(d, deadline, &apps, err, sizeof err) < 0) {
            for (size_t i = 0; i < n; i++)
                not_dispatched(d, &batch[i], err);
            continue;
        }
        struct work k = {0};
        for (size_t i = 0; i < n; i++)
            dispatch(d, &batch[i], &apps, &k);
        job_submit(d, k.w, k.n, k.app); /* app ids point into the listing: submit copies them */
        listing_free(&apps);
        free(k.w);
        free(k.app);
    }
    return NULL;
}
