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
 * A stop ends the job before it sends anything more; its push stays in the state file.
 */
#include "job.h"

#include "journal.h"
#include "log.h"
#include "reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Ends the job for the chosen push (or every waiting one before the choice) with state. */
static void end_job(struct job *j, const char *state, enum report_kind kind, const char *reason)
{
    for (size_t i = 0; i < j->n; i++) {
        const struct waiting *w = j->w[i];
        if (!j->p || &w->push == j->p)
            finish_skipped(j->d, w->record, &w->push, j->app_id, j->channel, state, kind, reason);
    }
    j->settled = 1;
}

static void fail(struct job *j, const char *reason)
{
    end_job(j, "failed", REPORT_FAILED, reason);
}

/* autodeployd stops before the update went out: the push is not settled, so with a state file
 * it deploys at the next start. */
static void stopped(struct job *j)
{
    end_job(j, "skipped", REPORT_SKIPPED,
            j->d->journal ? "autodeployd stopped before deploying it; it deploys at the next "
                            "start (--state-file)"
                          : "autodeployd stopped before deploying it; push again to deploy");
    j->settled = 0;
}

/* Naps for a backoff step, never past the update's deadline. */
static void backoff(struct job *j, int attempt)
{
    int64_t left = j->update_deadline - job_now(j->d);
    long ms = job_backoff_ms(attempt);
    job_nap(j->d, left < ms ? (left > 0 ? (long)left : 0) : ms);
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
        if (job_stopping(j->d)) {
            stopped(j);
        } else if (st == 404) {
            fail(j, "the app no longer exists in Marathon (it is never re-created)");
        } else if (job_now(j->d) >= j->update_deadline || st == 401) {
            fail(j, err);
        } else {
            backoff(j, attempt);
            continue;
        }
        return NULL;
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
    if (best < 0) {
        j->settled = 1;
        return -1;
    }
    j->p = &j->w[0]->push;
    j->record = j->w[0]->record;
    return 0;
}

/* Remembers what the app runs before our update: at the first read (for the record), and again
 * right before each update is sent (what a rollback must put back is what ran then). */
static void note_before(struct job *j, const struct app_view *v)
{
    job_copy(j->channel, sizeof j->channel, v->channel);
    /* An image too long for any valid reference is refused by the rules (decide_new_image);
     * it is not recorded cut short. */
    job_copy(j->old_image, sizeof j->old_image,
             v->image && strlen(v->image) < sizeof j->old_image ? v->image : "");
    job_copy(j->old_digest, sizeof j->old_digest, v->digest);
    j->instances = v->instances;
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(v->json, "labels");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v->json, "container");
    cJSON_Delete(j->old_labels);
    cJSON_Delete(j->old_docker);
    j->old_labels = cJSON_IsObject(labels) ? cJSON_Duplicate(labels, 1) : cJSON_CreateObject();
    j->old_docker = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "docker"), 1);
}

/* Waits until none of the deployments in ids (a 409 body) runs any more, or the deadline. */
static void wait_unlocked(struct job *j, const cJSON *ids)
{
    struct deployer *d = j->d;
    while (!job_stopping(d) && job_now(d) < j->update_deadline) {
        long poll = config_live()->poll_interval_ms;
        job_nap(d, poll < 1000 ? poll : 1000);
        cJSON *list = job_deployments(d);
        if (!list) continue;
        int still = 0;
        const cJSON *id;
        cJSON_ArrayForEach(id, ids) still |= job_find_deployment(list, job_jstr(id, "id")) != NULL;
        cJSON_Delete(list);
        if (!still) return;
    }
}

/* Sends the update; returns Marathon's status (0: no answer) with resp filled. */
static long send_update(struct job *j, const char *body, int force, struct httpc_resp *resp)
{
    struct buf path;
    buf_init(&path, 4096);
    marathon_app_path(j->app_id, &path);
    if (!strcmp(j->method, "PUT"))
        buf_adds(&path, force ? "?partialUpdate=true&force=true" : "?partialUpdate=true");
    else if (force)
        buf_adds(&path, "?force=true");
    job_request(j->d, j->method, path.data, body, resp);
    buf_free(&path);
    return resp->status;
}

/* From now on the deployment dep_id (version: the one it brings) is followed. */
static int follow_from_now(struct job *j, const char *dep_id, const char *version)
{
    job_copy(j->dep_id, sizeof j->dep_id, dep_id);
    job_copy(j->version, sizeof j->version, version);
    j->accepted_at = job_now(j->d);
    j->deadline = j->accepted_at + config_live()->deploy_timeout_ms;
    record_accepted(j->d, j->record);
    record_job(j);
    return 1;
}

/* The update was accepted: the deployment is ours to follow. */
static int accepted(struct job *j, const struct httpc_resp *resp)
{
    cJSON *b = cJSON_Parse(resp->body.data);
    follow_from_now(j, resp->deployment_id[0] ? resp->deployment_id : job_jstr(b, "deploymentId"),
                    job_jstr(b, "version"));
    cJSON_Delete(b);
    return 1;
}

/* The app carries our image and digest and a deployment runs. Ours (this job's update, whose
 * answer was lost: the labels carry this job's deployed-at) is followed as ours. Another's is
 * followed only when it is the deployment of that configuration (a replay after a restart,
 * another replica), and never rolled back; a scale by someone else is none of our business. */
static int adopt(struct job *j, const struct app_view *v)
{
    const char *at =
        job_jstr(cJSON_GetObjectItemCaseSensitive(v->json, "labels"), "autodeploy.deployed-at");
    if (j->sent_unanswered && at && !strcmp(at, j->deployed_at))
        return follow_from_now(j, v->deployment, v->config_version);
    cJSON *list = job_deployments(j->d);
    const char *dv = job_jstr(job_find_deployment(list, v->deployment), "version");
    int config = dv && v->config_version && !decide_version_cmp(dv, v->config_version);
    if (config) {
        j->adopted = 1;
        follow_from_now(j, v->deployment, v->config_version);
    }
    cJSON_Delete(list);
    if (config) {
        log_info("the app is already being deployed to this image; following it", "app", j->app_id,
                 "deployment", j->dep_id, NULL);
        return 1;
    }
    record_set(j->d, j->record, "unchanged",
               "the app already runs this image and digest (another writer's deployment, not a "
               "deploy of it, is running)",
               NULL);
    count_outcome("unchanged");
    j->settled = 1;
    return 0;
}

/* What the rules said other than "deploy". Returns 1 to follow, 2 to judge an update that
 * landed unanswered, 0 when the job ended. */
static int not_deploying(struct job *j, const struct app_view *v, const struct decision *dec)
{
    switch (dec->action) {
    case DECIDE_FOLLOW:
        return adopt(j, v);
    case DECIDE_LANDED:
        follow_from_now(j, "", v->config_version);
        return 2;
    case DECIDE_UNCHANGED:
        if (j->p->replayed) {
            /* The channel may have seen this deployment start before the restart: close the
             * story instead of going quiet. */
            end_job(j, "unchanged", REPORT_SKIPPED, dec->reason);
            return 0;
        }
        record_set(j->d, j->record, "unchanged", dec->reason, NULL);
        count_outcome("unchanged");
        j->settled = 1;
        log_info("app already runs this image; nothing to deploy", "app", j->app_id, "image",
                 j->new_image, "digest", j->p->digest, NULL);
        return 0;
    default:
        end_job(j, dec->state, REPORT_SKIPPED, dec->reason);
        return 0;
    }
}

/* A 409: waits for the lock's holders, or gives up past the bound. 1 to try again. */
static int locked(struct job *j, const struct httpc_resp *resp, const char *err)
{
    char why[REPORT_TEXT_MAX], lim[32];
    if (job_stopping(j->d)) {
        stopped(j);
        return 0;
    }
    if (job_now(j->d) >= j->update_deadline) {
        format_limit(config_live()->update_timeout_ms, lim, sizeof lim);
        snprintf(why, sizeof why,
                 "the app stayed locked by another deployment past --update-timeout %s: %.400s",
                 lim, err);
        end_job(j, "skipped", REPORT_SKIPPED, why);
        return 0;
    }
    log_info("app locked by a running deployment; waiting for it", "app", j->app_id, NULL);
    record_set(j->d, j->record, "locked", err, NULL);
    cJSON *b = cJSON_Parse(resp->body.data);
    wait_unlocked(j, cJSON_GetObjectItemCaseSensitive(b, "deployments"));
    cJSON_Delete(b);
    record_set(j->d, j->record, "updating", "", NULL);
    return 1;
}

/* Handles a refused or unanswered update. Returns 1 to try again, 0 when the job ended. */
static int retry_after(struct job *j, long st, struct httpc_resp *resp, int attempt)
{
    char err[REPORT_TEXT_MAX], why[REPORT_TEXT_MAX], lim[32];
    marathon_error_text(resp, err, sizeof err);
    if (st == 405 && !strcmp(j->method, "PATCH")) {
        /* Marathon before 1.4: PUT merges too, but creates a missing app, so the re-read at
         * the top of the loop must see the app first. */
        log_info("Marathon has no PATCH; falling back to PUT ?partialUpdate=true", "app", j->app_id,
                 NULL);
        j->method = "PUT";
        return 1;
    }
    if (st == 409) return locked(j, resp, err);
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
    if (job_now(j->d) >= j->update_deadline) {
        format_limit(config_live()->update_timeout_ms, lim, sizeof lim);
        snprintf(why, sizeof why, "%.400s (gave up after --update-timeout %s)", err, lim);
        log_warn("app update failed", "app", j->app_id, "error", why, NULL);
        fail(j, why);
        return 0;
    }
    log_warn("app update failed; retrying", "app", j->app_id, "error", err, NULL);
    backoff(j, attempt);
    return 1;
}

/* Asks the registry whether it has the push (--verify-push), once per job. Returns 1 to go
 * on, 2 to go on after deciding again (the push had no digest and now has the registry's), 0
 * when the job ended (reported), -1 to try again later. */
static int verify(struct job *j, const struct decision *dec, int attempt)
{
    const char *mode = config_live()->verify_push;
    if (j->verified || !j->d->registry || !mode || !strcmp(mode, "off")) return 1;
    struct image_ref ref;
    if (ref_parse_image(dec->new_image, &ref) < 0) return 1; /* decide_job parsed it */
    struct verify_answer a;
    job_verify(j, ref.host, &a);
    if (job_stopping(j->d)) { /* the question may have been abandoned for the stop */
        stopped(j);
        return 0;
    }
    char why[DECIDE_REASON_MAX];
    int64_t now = job_now(j->d);
    int late = now >= j->update_deadline || job_stopping(j->d);
    if (!j->verify_first) j->verify_first = now ? now : 1;
    int settled = now - j->verify_first >= DECIDE_VERIFY_SETTLE_MS;
    switch (decide_verify(mode, j->p, dec->new_image, &a, late, settled, why, sizeof why)) {
    case VERIFIED_WARN:
        log_warn("push not verified against the registry; deploying anyway", "app", j->app_id,
                 "reason", why, NULL);
        job_copy(j->note, sizeof j->note, why);
        /* fall through */
    case VERIFIED_DEPLOY:
        j->verified = 1;
        /* j->p is the chosen waiting push (j->w[0]), which this job owns now. */
        return decide_adopt_digest(&j->w[0]->push, &a) ? 2 : 1;
    case VERIFIED_MISSING:
        end_job(j, "skipped", REPORT_SKIPPED, why);
        return 0;
    case VERIFIED_MOVED:
        end_job(j, "superseded", REPORT_SUPERSEDED, why);
        return 0;
    case VERIFIED_FAIL:
        fail(j, why);
        return 0;
    default:
        if (a.res == REGISTRY_OK || a.res == REGISTRY_NOT_FOUND) /* the tag may not be linked yet */
            log_info("registry has not linked the tag yet; asking again", "app", j->app_id,
                     "reason", why, NULL);
        else
            log_warn("cannot ask the registry; retrying", "app", j->app_id, "error", a.err, NULL);
        record_set(j->d, j->record, NULL, why[0] ? why : a.err, NULL);
        backoff(j, attempt);
        return -1;
    }
}

/* Sends the update the rules decided; returns as attempt_once does. */
static int send(struct job *j, const struct app_view *v, const struct decision *dec, int attempt)
{
    if (job_stopping(j->d)) { /* nothing new goes out once the stop's grace is over */
        stopped(j);
        return 0;
    }
    int ok = verify(j, dec, attempt);
    if (ok <= 0) return ok;
    struct decision again;
    if (ok == 2) { /* the digest is known now: the app may already run it */
        decide_job(config_live(), v, j->p, j->sent_unanswered, &again);
        if (again.action != DECIDE_DEPLOY) return not_deploying(j, v, &again);
        dec = &again;
    }
    if (!job_approval_gate(j, v, dec)) return 0;
    note_before(j, v);
    record_job(j);
    char *body = decide_update_body(v, dec, j->p, j->deployed_at);
    if (!body) {
        fail(j, "out of memory building the update");
        return 0;
    }
    struct httpc_resp resp;
    long st = send_update(j, body, dec->force, &resp);
    free(body);
    int rc =
        st == 200 || st == 201 ? accepted(j, &resp) : (retry_after(j, st, &resp, attempt) ? -1 : 0);
    httpc_resp_free(&resp);
    return rc;
}

/* One attempt: re-read, decide, send. Returns 1 to follow, 2 to judge a landed update, 0 when
 * the job ended, -1 to try again. */
static int attempt_once(struct job *j, int attempt)
{
    cJSON *app = read_app(j);
    if (!app) return 0;
    struct app_view v;
    decide_app_view(app, config_live()->label, &v);
    int rc = 0;
    if (choose(j, &v) == 0) {
        if (!j->old_docker) { /* the first read, for the record */
            note_before(j, &v);
            record_set(j->d, j->record, "updating", NULL, NULL);
        }
        struct decision dec;
        decide_job(config_live(), &v, j->p, j->sent_unanswered, &dec);
        job_copy(j->new_image, sizeof j->new_image, dec.new_image);
        record_job(j);
        rc = dec.action == DECIDE_DEPLOY ? send(j, &v, &dec, attempt) : not_deploying(j, &v, &dec);
    }
    cJSON_Delete(app);
    return rc;
}

int job_update(struct job *j)
{
    j->method = "PATCH";
    j->update_deadline = job_now(j->d) + config_live()->update_timeout_ms;
    /* Fixed per job: a retried update is then byte-identical, so one whose answer was lost
     * but which lands later changes nothing. */
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(j->deployed_at, sizeof j->deployed_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (int attempt = 0;; attempt++) {
        int rc = attempt_once(j, attempt);
        if (rc >= 0) return rc;
    }
}
