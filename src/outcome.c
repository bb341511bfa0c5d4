/*
 * outcome.c: following a deployment to its real end (see deploy.h).
 *
 * The event stream says at once when a deployment succeeds or fails; polls cover the stream's
 * gaps. A deployment id counts as ended only once it has been seen running, or when the app
 * itself lists no deployment and its tasks have converged: Marathon answers an update before
 * its deployment manager lists the deployment.
 *
 * When our deployment ends without success, the app is read again to learn who owns it now
 * (decide_owner): a deployment that took over with our image is followed in its turn; an app
 * that no longer carries our image was changed by someone else and is left alone; only a
 * failure of our own configuration, with nothing else running, is ours to roll back. A
 * rollback never forces and never restores more than autodeployd changed: our own deployment
 * still running is cancelled (DELETE, Marathon reverts it); an ended one is undone by a PATCH
 * of the image and the autodeploy.* labels. The revert is a deployment like any other: it is
 * followed, and its real end is reported.
 */
#include "job.h"

#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What is being followed and what counts as its success. */
struct target {
    const char *dep_id;
    const char *image;   /* the image the deployment brings */
    const char *digest;  /* the autodeploy.digest it writes; NULL: not checked */
    const char *version; /* the version it created; NULL: unknown */
    int64_t deadline;
};

enum end { END_SUCCEEDED, END_ENDED, END_TIMEOUT, END_STOPPED };

/* The version our update created; NULL when Marathon's answer did not say. */
static const char *our_version(const struct job *j)
{
    return j->version[0] ? j->version : NULL;
}

/* 1 when /v2/deployments lists id, 0 when it does not, -1 when it cannot be read. */
static int listed(struct deployer *d, const char *id)
{
    cJSON *list = job_deployments(d);
    int found = list ? job_find_deployment(list, id) != NULL : -1;
    cJSON_Delete(list);
    return found;
}

/* Reads the app and judges who owns it for target t. -1 when it cannot be read. */
static int judge(struct job *j, const struct target *t, struct app_view *v, cJSON **app,
                 char *reason, size_t len)
{
    struct httpc_resp resp;
    *app = job_get_app(j->d, j->app_id, &resp);
    if (resp.status == 404) snprintf(reason, len, "the app was deleted from Marathon");
    httpc_resp_free(&resp);
    if (!*app) return -1;
    decide_app_view(*app, config_live()->label, v);
    return (int)decide_owner(v, t->image, t->digest, t->version, reason, len);
}

/* One poll without the stream's word. */
static enum end poll_once(struct job *j, const struct target *t, int *seen, char *reason,
                          size_t len)
{
    int l = listed(j->d, t->dep_id);
    if (l == 1) *seen = 1;
    if (l != 0) return END_TIMEOUT; /* running, or unknown: not ended */
    if (*seen) return END_ENDED;
    /* Never seen listed: ended only when the app lists no deployment and has converged. */
    struct app_view v;
    cJSON *app;
    int o = judge(j, t, &v, &app, reason, len);
    enum end e = END_TIMEOUT;
    if (o >= 0 && v.deployment && !strcmp(v.deployment, t->dep_id))
        *seen = 1;
    else if (o >= 0 && v.deployment)
        e = END_ENDED; /* another deployment holds the app: ours is over */
    else if (o == OWNER_SUCCEEDED)
        e = END_SUCCEEDED;
    else if (o == OWNER_CHANGED)
        e = END_ENDED;
    else if (o == OWNER_FAILED && t->version && v.failure_version &&
             decide_version_cmp(v.failure_version, t->version) >= 0)
        e = END_ENDED; /* a task of this configuration failed: it did run, and it is over */
    cJSON_Delete(app);
    return e;
}

/* Follows t until it ends, its deadline, or the stop. END_TIMEOUT only at the deadline. */
static enum end follow_one(struct job *j, const struct target *t, char *reason, size_t len,
                           char *task, size_t task_len)
{
    struct deployer *d = j->d;
    const struct deploy_env *e = &d->env;
    int watch = e->watch ? e->watch(e->ctx, t->dep_id, j->app_id) : -1;
    int seen = 0, polls = 0;
    enum end r = END_STOPPED;
    while (!job_stopping(d)) {
        long poll = config_live()->poll_interval_ms;
        int connected = watch > 0 && e->stream_connected(e->ctx);
        unsigned gen = watch > 0 ? e->stream_generation(e->ctx) : 0;
        enum follow_outcome o = FOLLOW_PENDING;
        if (watch > 0)
            o = e->wait(e->ctx, watch, t->deadline, connected ? 5000 : poll, reason, len, task,
                        task_len);
        else
            job_nap(d, poll);
        if (o != FOLLOW_PENDING) {
            r = o == FOLLOW_SUCCEEDED ? END_SUCCEEDED : END_ENDED;
            break;
        }
        if (job_stopping(d)) break;
        if (job_now(d) >= t->deadline) {
            r = END_TIMEOUT;
            break;
        }
        /* Without the stream, after it reconnected (the gap's events are lost), and now and
         * then even with it. */
        if (connected && gen == e->stream_generation(e->ctx) && ++polls % 6 != 0) continue;
        enum end p = poll_once(j, t, &seen, reason, len);
        if (p != END_TIMEOUT) {
            r = p;
            break;
        }
    }
    if (watch > 0) {
        if (r == END_STOPPED || r == END_TIMEOUT)
            e->wait(e->ctx, watch, 0, 0, reason, len, task, task_len); /* the task message */
        e->unwatch(e->ctx, watch);
    }
    return r;
}

/* ---------------------------------------------------------------- rollback */

static void rollback_failed(struct job *j, const char *why, const char *err, const char *rb_id)
{
    j->rolling = 0;
    log_error("rollback failed", "app", j->app_id, "deployment", j->dep_id, "error", err, NULL);
    char r[REPORT_TEXT_MAX];
    snprintf(r, sizeof r, "%.200s; the rollback %s: %.240s; it needs a hand", why,
             rb_id && *rb_id ? "did not complete" : "was refused", err);
    job_report(j, REPORT_ROLLBACK_FAILED, "rollback_failed", j->dep_id, r, NULL, err);
}

/* How the revert deployment ended, from the follow and a last look at the app. */
static enum end revert_end(struct job *j, const struct target *t, char *reason, size_t len)
{
    char task[REPORT_TEXT_MAX] = "";
    enum end e = follow_one(j, t, reason, len, task, sizeof task);
    if (e == END_ENDED || e == END_TIMEOUT) {
        struct app_view v;
        cJSON *app;
        int o = judge(j, t, &v, &app, reason, len);
        cJSON_Delete(app);
        if (o == OWNER_SUCCEEDED) e = END_SUCCEEDED; /* ended right at the deadline, too */
    }
    return e;
}

/* Follows the revert deployment rb_id and reports its real end. */
static void follow_revert(struct job *j, const char *rb_id, const char *why)
{
    struct deployer *d = j->d;
    j->rolling = 0;
    j->settled = 1; /* decided: a stop from here on must not deploy the failed image again */
    job_copy(j->rollback_id, sizeof j->rollback_id, rb_id);
    record_rollback(d, j->record, rb_id);
    job_report(j, REPORT_ROLLING_BACK, "rolling_back", j->dep_id, why, NULL, "");
    log_warn("rolling back", "app", j->app_id, "deployment", j->dep_id, "rollback_deployment",
             rb_id, NULL);
    struct target t = {rb_id, j->rollback_image, NULL, NULL,
                       job_now(d) + config_live()->deploy_timeout_ms};
    char reason[REPORT_TEXT_MAX] = "";
    enum end e = revert_end(j, &t, reason, sizeof reason);
    if (e == END_SUCCEEDED) {
        log_warn("deployment rolled back", "app", j->app_id, "rollback_deployment", rb_id, NULL);
        job_report(j, REPORT_ROLLED_BACK, "rolled_back", j->dep_id, why, NULL, "");
    } else if (e == END_STOPPED) {
        job_report(j, REPORT_INTERRUPTED, "interrupted", j->dep_id,
                   "autodeployd stopped while the rollback was running; Marathon goes on with it",
                   NULL, "");
    } else {
        char err[REPORT_TEXT_MAX], lim[32];
        format_limit(config_live()->deploy_timeout_ms, lim, sizeof lim);
        if (e == END_TIMEOUT)
            snprintf(err, sizeof err, "the rollback deployment %.127s did not end within %s", rb_id,
                     lim);
        else
            snprintf(err, sizeof err,
                     "the rollback deployment %.127s ended without success: %.300s", rb_id, reason);
        rollback_failed(j, why, err, rb_id);
    }
}

/* Sends a rollback request; the revert's deployment id in rb_id. Marathon's status, with err
 * set unless it is 2xx. */
static long send_rollback(struct job *j, const char *method, const char *path, const char *body,
                          char *rb_id, size_t rb_len, char *err, size_t errlen)
{
    struct httpc_resp resp;
    job_request(j->d, method, path, body, &resp);
    long st = resp.status;
    if (st == 200 || st == 201 || st == 202) {
        cJSON *b = cJSON_Parse(resp.body.data);
        job_copy(rb_id, rb_len,
                 resp.deployment_id[0] ? resp.deployment_id : job_jstr(b, "deploymentId"));
        cJSON_Delete(b);
    } else if (st == 409) {
        snprintf(err, errlen,
                 "another deployment holds the app; autodeployd does not force its way over it");
    } else {
        marathon_error_text(&resp, err, errlen);
    }
    httpc_resp_free(&resp);
    return st;
}

/* The PATCH (PUT ?partialUpdate=true before Marathon 1.4) putting back what we changed. */
static long patch_back(struct job *j, char *rb_id, size_t rb_len, char *err, size_t errlen)
{
    struct target t = {j->dep_id, j->new_image, j->p->digest, our_version(j), 0};
    struct app_view v;
    cJSON *app;
    char who[REPORT_TEXT_MAX - 32] = "";
    int o = judge(j, &t, &v, &app, who, sizeof who);
    char *body = o == OWNER_FAILED
                     ? decide_rollback_body(&v, j->old_image, j->old_digest, j->new_image,
                                            j->old_docker, j->old_labels)
                     : NULL;
    cJSON_Delete(app);
    snprintf(err, errlen, "%s%s", o >= 0 && o != OWNER_FAILED ? "the app changed hands: " : "",
             o >= 0 ? who : "cannot read the app");
    if (!body) return -1;
    cJSON *b = cJSON_Parse(body);
    job_copy(j->rollback_image, sizeof j->rollback_image,
             job_jstr(cJSON_GetObjectItemCaseSensitive(
                          cJSON_GetObjectItemCaseSensitive(b, "container"), "docker"),
                      "image"));
    cJSON_Delete(b);
    struct buf path;
    buf_init(&path, 4096);
    marathon_app_path(j->app_id, &path);
    long st = -1;
    for (int put = !strcmp(j->method, "PUT"); put < 2; put++) {
        if (put) buf_adds(&path, "?partialUpdate=true");
        st = send_rollback(j, put ? "PUT" : "PATCH", path.data, body, rb_id, rb_len, err, errlen);
        if (st != 405) break; /* Marathon before 1.4 */
    }
    buf_free(&path);
    free(body);
    return st;
}

/* Undoes what autodeployd changed: DELETE of our running deployment, else a PATCH of the
 * image and the autodeploy.* labels (why: the failure being undone). */
static void roll_back(struct job *j, int ours_running, const char *why)
{
    char rb_id[128] = "", err[REPORT_TEXT_MAX] = "";
    long st;
    job_copy(j->rollback_image, sizeof j->rollback_image, j->old_image);
    if (ours_running) {
        struct buf path;
        buf_init(&path, 4096);
        buf_adds(&path, "/v2/deployments/");
        buf_adds(&path, j->dep_id);
        st = send_rollback(j, "DELETE", path.data, NULL, rb_id, sizeof rb_id, err, sizeof err);
        buf_free(&path);
    } else {
        st = patch_back(j, rb_id, sizeof rb_id, err, sizeof err);
    }
    if (st < 200 || st > 202)
        rollback_failed(j, why, err, NULL);
    else if (!rb_id[0]) {
        j->rolling = 0;
        job_report(j, REPORT_ROLLED_BACK, "rolled_back", j->dep_id, why, NULL, "");
    } else
        follow_revert(j, rb_id, why);
}

/* ---------------------------------------------------------------- the end */

static void succeeded(struct job *j, const char *dep_id, const char *note)
{
    log_info("deployment succeeded", "app", j->app_id, "deployment", dep_id, "image", j->new_image,
             NULL);
    job_report(j, REPORT_DEPLOYED, "succeeded", dep_id, note && *note ? note : j->note, "", "");
}

/* Why a deployment that ended badly is not rolled back, "" when it is. */
static const char *no_rollback(const struct job *j)
{
    if (!config_live()->rollback_on_failure) return "-";
    if (j->adopted)
        return "the deployment was not started by this job (a restart, or another replica): "
               "autodeployd does not roll it back";
    return "";
}

static void timed_out(struct job *j, const char *followed, const char *task)
{
    char reason[REPORT_TEXT_MAX], lim[32], why[REPORT_TEXT_MAX] = "";
    format_limit(config_live()->deploy_timeout_ms, lim, sizeof lim);
    snprintf(reason, sizeof reason,
             "not finished %s after Marathon accepted the update (--deploy-timeout)", lim);
    log_warn("deployment timed out", "app", j->app_id, "deployment", followed, "reason", reason,
             NULL);
    const char *no = no_rollback(j);
    /* Only our own deployment, still running, is ours to cancel; an ended failure of our
     * configuration is undone by a PATCH; anything else is someone else's. */
    int ours = !*no && !strcmp(followed, j->dep_id) && listed(j->d, j->dep_id) == 1;
    int o = -1;
    if (!*no && !ours) {
        struct target t = {j->dep_id, j->new_image, j->p->digest, our_version(j), 0};
        struct app_view v;
        cJSON *app;
        o = judge(j, &t, &v, &app, why, sizeof why);
        cJSON_Delete(app);
    }
    j->rolling = ours || o == OWNER_FAILED;
    job_report(j, REPORT_TIMED_OUT, "timed_out", followed, reason, task, "");
    if (j->rolling)
        roll_back(j, ours, reason);
    else if (*no && strcmp(no, "-"))
        rollback_failed(j, reason, no, NULL);
    else if (!*no)
        rollback_failed(j, reason,
                        o == OWNER_TAKEN_OVER
                            ? "another writer's deployment holds the app; autodeployd does not "
                              "cancel a deployment it did not start"
                        : o < 0 ? "cannot read the app"
                                : why,
                        NULL);
}

/* Reports a failure of our configuration, and rolls it back when asked to. */
static void failed(struct job *j, const char *followed, const char *reason, const char *task)
{
    log_warn("deployment failed", "app", j->app_id, "deployment", followed, "reason", reason,
             "task_message", task, NULL);
    const char *no = no_rollback(j);
    j->rolling = !*no;
    job_report(j, REPORT_FAILED, "failed", followed, reason, task, "");
    if (j->rolling)
        roll_back(j, 0, reason);
    else if (strcmp(no, "-"))
        rollback_failed(j, reason, no, NULL);
}

/* Our deployment ended without a success event: who owns the app now? Returns 1 to go on
 * following (followed then names the deployment that took over), 0 when reported. */
static int ended(struct job *j, char *followed, size_t flen, const char *event_reason,
                 const char *task)
{
    struct target t = {followed, j->new_image, j->p->digest, our_version(j), 0};
    char reason[REPORT_TEXT_MAX] = "";
    struct app_view v;
    cJSON *app;
    int o = -1;
    for (int tries = 0; tries < 2; tries++) {
        if (tries) job_nap(j->d, 1000); /* a deployment that takes over may be listed late */
        o = judge(j, &t, &v, &app, reason, sizeof reason);
        if (o == OWNER_TAKEN_OVER) {
            job_copy(followed, flen, v.deployment);
            log_info("another deployment took over with our image; following it", "app", j->app_id,
                     "deployment", followed, NULL);
        }
        cJSON_Delete(app);
        if (o != OWNER_FAILED || job_stopping(j->d)) break;
    }
    if (o == OWNER_TAKEN_OVER) return 1;
    char note[REPORT_TEXT_MAX];
    if (o == OWNER_SUCCEEDED) {
        snprintf(note, sizeof note, "completed by deployment %.127s", followed);
        succeeded(j, followed,
                  !followed[0]                  ? "the update landed although its answer was lost"
                  : strcmp(followed, j->dep_id) ? note
                                                : "");
    } else if (o == OWNER_CHANGED) {
        log_warn("deployment cancelled by another writer", "app", j->app_id, "deployment", followed,
                 "reason", reason, NULL);
        job_report(j, REPORT_CANCELLED, "cancelled", followed, reason, task, "");
    } else {
        if (!reason[0]) snprintf(reason, sizeof reason, "%s", event_reason);
        if (!reason[0]) snprintf(reason, sizeof reason, "the deployment failed");
        if (o == OWNER_FAILED) {
            failed(j, followed, reason, task);
        } else {
            log_warn("deployment failed", "app", j->app_id, "deployment", followed, "reason",
                     reason, NULL);
            job_report(j, REPORT_FAILED, "failed", followed, reason, task, "");
        }
    }
    return 0;
}

void job_follow(struct job *j, int landed)
{
    struct deployer *d = j->d;
    record_set(d, j->record, "deploying", NULL, NULL);
    log_info("deployment started", "app", j->app_id, "deployment", j->dep_id, "image", j->new_image,
             "previous", j->old_image, NULL);
    if (j->note[0]) record_set(d, j->record, NULL, j->note, NULL);
    job_report(j, REPORT_DEPLOYING, NULL, j->dep_id, j->note, "", "");
    char followed[128];
    job_copy(followed, sizeof followed, j->dep_id);
    for (int first = 1;; first = 0) {
        char reason[REPORT_TEXT_MAX] = "", task[REPORT_TEXT_MAX] = "";
        struct target t = {followed, j->new_image, j->p->digest, our_version(j), j->deadline};
        /* An update that landed unanswered has no deployment left to follow: judge it. */
        enum end e = landed && first ? END_ENDED
                                     : follow_one(j, &t, reason, sizeof reason, task, sizeof task);
        if (e == END_ENDED && ended(j, followed, sizeof followed, reason, task)) continue;
        if (e != END_STOPPED) metrics_observe("autodeploy_deploy_duration_seconds", job_secs(j));
        if (e == END_SUCCEEDED) {
            char note[REPORT_TEXT_MAX];
            snprintf(note, sizeof note, "completed by deployment %.127s", followed);
            succeeded(j, followed, strcmp(followed, j->dep_id) ? note : "");
        } else if (e == END_STOPPED) {
            const char *why = "autodeployd stopped while the deployment was running; Marathon "
                              "goes on with it";
            log_warn("stopping while a deployment runs; Marathon goes on with it", "app", j->app_id,
                     "deployment", followed, NULL);
            job_report(j, REPORT_INTERRUPTED, "interrupted", followed, why, task, "");
        } else if (e == END_TIMEOUT) {
            timed_out(j, followed, task);
        }
        return;
    }
}
