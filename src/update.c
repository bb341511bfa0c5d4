/*
 * update.c: getting our update accepted by Marathon (see deploy.h).
 *
 * Each attempt re-reads the app (its definition may have changed since it was listed or since
 * the last attempt), applies the rules again (decide.c), and sends the partial update:
 *   200/201  accepted: the deployment is followed from here (outcome.c), and --deploy-timeout
 *            starts now;
 *   405      Marathon before 1.4 has no PATCH: PUT ?partialUpdate=true from then on;
 *   409      the app is locked by someone else's deployment: wait until it is gone, try again;
 *   403/5xx  too many deployments, or Marathon failing: back off, try again;
 *   no answer the update may have landed: the next re-read tells (decide_job's "landed");
 *   other    refused: reported failed with Marathon's message.
 * Waiting for locks and retrying are bounded by --update-timeout, counted from the job's start.
 */
#include "job.h"

#include "journal.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Ends the job failed: the chosen push, or every waiting one before the choice. */
static void fail(struct job *j, const char *reason)
{
    for (size_t i = 0; i < j->n; i++) {
        const struct waiting *w = j->w[i];
        if (!j->p || &w->push == j->p)
            finish_skipped(j->d, w->record, &w->push, j->app_id, j->channel, "failed",
                           REPORT_FAILED, reason);
    }
}

/* Reads the app, retrying while Marathon fails and the update bound allows. NULL when the job
 * has ended (reported). */
static cJSON *read_app(struct job *j)
{
    for (int attempt = 0;; attempt++) {
        struct httpc_resp resp;
        cJSON *app = job_get_app(j->d, j->app_id, &resp);
        long st = resp.status;
        char err[REPORT_TEXT_MAX];
        marathon_error_text(&resp, err, sizeof err);
        httpc_resp_free(&resp);
        if (app) return app;
        if (st == 404) {
            fail(j, "the app no longer exists in Marathon (it is never re-created)");
            return NULL;
        }
        if (job_stopping(j->d) || job_now(j->d) >= j->update_deadline || st == 401) {
            fail(j, err);
            return NULL;
        }
        job_nap(j->d, job_backoff_ms(attempt));
    }
}

/* The first time: chooses the one push that deploys among those waiting and reports the
 * others. Later: checks the chosen one still matches what the app runs. 0, or -1 when nothing
 * is left to deploy (reported). */
static int choose(struct job *j, const struct app_view *v)
{
    struct deployer *d = j->d;
    char err[256];
    const match_set *ms =
        v->pattern ? match_cache_get(d->cache, v->pattern, j->app_id, err, sizeof err, NULL) : NULL;
    const struct push *pushes[j->n];
    enum decide_pick verdict[j->n];
    char(*why)[DECIDE_REASON_MAX] = calloc(j->n, sizeof *why);
    if (!why) {
        match_cache_release(ms);
        return -1;
    }
    for (size_t i = 0; i < j->n; i++)
        pushes[i] = &j->w[i]->push;
    int best = decide_choose(ms, v, pushes, j->n, verdict, why);
    match_cache_release(ms);
    size_t kept = 0;
    for (size_t i = 0; i < j->n; i++) {
        struct waiting *w = j->w[i];
        if ((int)i == best) {
            j->w[kept++] = w;
            continue;
        }
        int sup = verdict[i] == DECIDE_SUPERSEDED;
        finish_skipped(d, w->record, &w->push, j->app_id, v->channel,
                       sup ? "superseded" : "skipped", sup ? REPORT_SUPERSEDED : REPORT_SKIPPED,
                       why[i]);
        journal_release(d->journal, w->push.jid);
        free(w);
    }
    free(why);
    j->n = kept;
    if (best < 0) return -1;
    j->p = &j->w[0]->push;
    j->record = j->w[0]->record;
    return 0;
}

/* Remembers what the app ran before our update (first read only). */
static void note_before(struct job *j, const struct app_view *v)
{
    if (j->old_labels) return;
    copy(j->channel, sizeof j->channel, v->channel);
    /* An image too long for any valid reference is refused by the rules (decide_new_image);
     * it is not recorded cut short. */
    if (v->image && strlen(v->image) < sizeof j->old_image)
        copy(j->old_image, sizeof j->old_image, v->image);
    copy(j->old_digest, sizeof j->old_digest, v->digest);
    j->instances = v->instances;
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(v->json, "labels");
    j->old_labels = cJSON_IsObject(labels) ? cJSON_Duplicate(labels, 1) : cJSON_CreateObject();
    record_set(j->d, j->record, "updating", NULL, NULL);
}

/* Waits until none of the deployments in ids (a 409 body) runs any more, or the deadline. */
static void wait_unlocked(struct job *j, const cJSON *ids)
{
    struct deployer *d = j->d;
    while (!job_stopping(d) && job_now(d) < j->update_deadline) {
        long poll = config_live()->poll_interval_ms;
        job_nap(d, poll < 1000 ? poll : 1000);
        struct httpc_resp resp;
        if (job_request(d, "GET", "/v2/deployments", NULL, &resp) < 0 || resp.status != 200) {
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

/* Sends the update; returns Marathon's status (0: no answer) with resp filled. */
static long send_update(struct job *j, const char *method, const char *body, int force,
                        struct httpc_resp *resp)
{
    struct buf path;
    buf_init(&path, 4096);
    marathon_app_path(j->app_id, &path);
    if (!strcmp(method, "PUT"))
        buf_adds(&path, force ? "?partialUpdate=true&force=true" : "?partialUpdate=true");
    else if (force)
        buf_adds(&path, "?force=true");
    job_request(j->d, method, path.data, body, resp);
    buf_free(&path);
    return resp->status;
}

/* The update was accepted: the deployment is ours to follow. */
static int accepted(struct job *j, const struct httpc_resp *resp)
{
    cJSON *b = cJSON_Parse(resp->body.data);
    copy(j->dep_id, sizeof j->dep_id,
         resp->deployment_id[0] ? resp->deployment_id : jstr(b, "deploymentId"));
    copy(j->version, sizeof j->version, jstr(b, "version"));
    cJSON_Delete(b);
    j->accepted_at = job_now(j->d);
    j->deadline = j->accepted_at + config_live()->deploy_timeout_ms;
    record_accepted(j->d, j->record);
    record_job(j);
    return 1;
}

/* What the rules said other than "deploy". Returns 1 to follow, 0 when the job ended. */
static int not_deploying(struct job *j, const struct app_view *v, const struct decision *dec)
{
    switch (dec->action) {
    case DECIDE_FOLLOW:
        copy(j->dep_id, sizeof j->dep_id, v->deployment);
        copy(j->version, sizeof j->version, v->config_version);
        j->accepted_at = job_now(j->d);
        j->deadline = j->accepted_at + config_live()->deploy_timeout_ms;
        record_job(j);
        log_info("the app is already being deployed to this image; following it", "app", j->app_id,
                 "deployment", j->dep_id, NULL);
        return 1;
    case DECIDE_LANDED:
        job_report(j, REPORT_DEPLOYED, "succeeded", "",
                   "the update landed although its answer was lost", "", "");
        return 0;
    case DECIDE_UNCHANGED:
        if (j->p->replayed) {
            /* The channel may have seen this deployment start before the restart: close the
             * story instead of going quiet. */
            finish_skipped(j->d, j->record, j->p, j->app_id, j->channel, "unchanged",
                           REPORT_SKIPPED, dec->reason);
            return 0;
        }
        record_set(j->d, j->record, "unchanged", dec->reason, NULL);
        count_outcome("unchanged");
        log_info("app already runs this image; nothing to deploy", "app", j->app_id, "image",
                 j->new_image, "digest", j->p->digest, NULL);
        return 0;
    default:
        finish_skipped(j->d, j->record, j->p, j->app_id, j->channel, dec->state, REPORT_SKIPPED,
                       dec->reason);
        return 0;
    }
}

/* Handles a refused or unanswered update. Returns 1 to try again, 0 when the job ended. */
static int retry_after(struct job *j, long st, struct httpc_resp *resp, const char **method,
                       int attempt)
{
    struct deployer *d = j->d;
    char err[REPORT_TEXT_MAX], why[REPORT_TEXT_MAX], lim[32];
    marathon_error_text(resp, err, sizeof err);
    format_limit(config_live()->update_timeout_ms, lim, sizeof lim);
    int out_of_time = job_stopping(d) || job_now(d) >= j->update_deadline;
    if (st == 405 && !strcmp(*method, "PATCH")) {
        /* Marathon before 1.4: PUT merges too, but creates a missing app, so the re-read at
         * the top of the loop must see the app first. */
        log_info("Marathon has no PATCH; falling back to PUT ?partialUpdate=true", "app", j->app_id,
                 NULL);
        *method = "PUT";
        return 1;
    }
    if (st == 409) {
        cJSON *b = cJSON_Parse(resp->body.data);
        if (out_of_time) {
            cJSON_Delete(b);
            snprintf(why, sizeof why,
                     "the app stayed locked by another deployment past --update-timeout %s: %.400s",
                     lim, err);
            finish_skipped(d, j->record, j->p, j->app_id, j->channel, "skipped", REPORT_SKIPPED,
                           why);
            return 0;
        }
        log_info("app locked by a running deployment; waiting for it", "app", j->app_id, NULL);
        record_set(d, j->record, "locked", err, NULL);
        wait_unlocked(j, cJSON_GetObjectItemCaseSensitive(b, "deployments"));
        cJSON_Delete(b);
        record_set(d, j->record, "updating", "", NULL);
        return 1;
    }
    if (st == 404) {
        fail(j, "the app was deleted before it could be updated (never re-created)");
        return 0;
    }
    if (st == 0) j->sent_unanswered = 1;
    if (!(st == 0 || st == 403 || st >= 500)) {
        log_warn("app update failed", "app", j->app_id, "error", err, NULL);
        fail(j, err);
        return 0;
    }
    if (out_of_time) {
        snprintf(why, sizeof why, "%.400s (gave up after --update-timeout %s)", err, lim);
        log_warn("app update failed", "app", j->app_id, "error", why, NULL);
        fail(j, why);
        return 0;
    }
    log_warn("app update failed; retrying", "app", j->app_id, "error", err, NULL);
    job_nap(d, job_backoff_ms(attempt));
    return 1;
}

/* One attempt: re-read, decide, send. Returns 1 to follow, 0 ended, -1 to try again. */
static int attempt_once(struct job *j, const char **method, int attempt)
{
    cJSON *app = read_app(j);
    if (!app) return 0;
    struct app_view v;
    decide_app_view(app, config_live()->label, &v);
    int rc = 0;
    if (choose(j, &v) < 0) goto out;
    note_before(j, &v);
    struct decision dec;
    decide_job(config_live(), &v, j->p, j->sent_unanswered, &dec);
    copy(j->new_image, sizeof j->new_image, dec.new_image);
    record_job(j);
    if (dec.action != DECIDE_DEPLOY) {
        rc = not_deploying(j, &v, &dec);
        goto out;
    }
    char *body = decide_update_body(&v, &dec, j->p, j->deployed_at);
    struct httpc_resp resp;
    long st = body ? send_update(j, *method, body, dec.force, &resp) : -1;
    free(body);
    if (st < 0) {
        fail(j, "out of memory building the update");
    } else if (st == 200 || st == 201) {
        rc = accepted(j, &resp);
    } else {
        rc = retry_after(j, st, &resp, method, attempt) ? -1 : 0;
    }
    if (st >= 0) httpc_resp_free(&resp);
out:
    cJSON_Delete(app);
    return rc;
}

int job_update(struct job *j)
{
    const char *method = "PATCH";
    j->update_deadline = job_now(j->d) + config_live()->update_timeout_ms;
    /* Fixed per job: a retried update is then byte-identical, so one whose answer was lost
     * but which lands later changes nothing. */
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(j->deployed_at, sizeof j->deployed_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (int attempt = 0;; attempt++) {
        int rc = attempt_once(j, &method, attempt);
        if (rc >= 0) return rc;
    }
}
