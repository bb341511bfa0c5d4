/*
 * approvals_job.c: the deployer's side of approvals (see approvals.h for the store and its
 * transitions): the gate a job passes for an app with label autodeploy.approve, the decisions
 * of people (console, API, Slack) turned into jobs, the expiry timer, and the reports, records
 * and state-file lines of each step.
 *
 * An approval's times are Unix ms on the deployer's clock (approval_now), so that unit tests
 * move them with the fake clock and a restart computes expiry from the stored wall time.
 */
#include "job.h"

#include "journal.h"
#include "log.h"
#include "queue.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SUPERSEDED 8

int64_t approval_now(struct deployer *d)
{
    return d->wall_base + (job_now(d) - d->mono_base);
}

/* 128 random bits as 32 hex digits: unguessable, URL-safe. */
static int new_id(char *out, size_t len)
{
    unsigned char r[16];
    if (len < 33 || RAND_bytes(r, sizeof r) != 1) return -1;
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/* Writes the approval as it is now to the state file. */
static void persist(struct deployer *d, const struct approval *a)
{
    if (!d->journal) return;
    struct buf b;
    buf_init(&b, 64 * 1024);
    if (approval_json(a, 1, &b) == 0)
        journal_put_approval(d->journal, a->id, b.data, a->state == APPROVAL_PENDING);
    buf_free(&b);
}

static void report_approval(const struct approval *a, enum report_kind kind, const char *reason)
{
    struct report r;
    report_init(&r, kind, &a->push, a->app_id);
    job_copy(r.old_image, sizeof r.old_image, a->old_image);
    job_copy(r.new_image, sizeof r.new_image, a->new_image);
    job_copy(r.slack_channel, sizeof r.slack_channel, a->channel);
    job_copy(r.approval_id, sizeof r.approval_id, a->id);
    job_copy(r.approval_by, sizeof r.approval_by, a->decided_by);
    job_copy(r.approval_via, sizeof r.approval_via, a->decided_via);
    job_copy(r.reason, sizeof r.reason, reason);
    if (kind == REPORT_AWAITING_APPROVAL)
        format_rfc3339_ms(a->expires_ms, r.approval_expires, sizeof r.approval_expires);
    report_emit(&r);
}

/* Records, persists, reports and logs an approval that ended without a person's decision. */
static void ended(struct deployer *d, const struct approval *a, const char *state,
                  enum report_kind kind, const char *reason)
{
    persist(d, a);
    if (record_approval(d, a->record, a)) record_set(d, a->record, state, reason, NULL);
    report_approval(a, kind, reason);
    log_info(kind == REPORT_SUPERSEDED ? "approval superseded" : "approval expired", "app",
             a->app_id, "approval", a->id, "image", a->new_image, "reason", reason, NULL);
}

static void superseded(struct deployer *d, const struct approval *old, const struct approval *nw)
{
    char why[REPORT_TEXT_MAX];
    snprintf(why, sizeof why,
             "a newer push (%.200s:%.100s) replaced approval %.32s; it can no longer be approved",
             nw->push.repository, nw->push.tag, old->id);
    ended(d, old, "superseded", REPORT_SUPERSEDED, why);
}

static void expired(struct deployer *d, const struct approval *a)
{
    char why[REPORT_TEXT_MAX], lim[32];
    format_limit((long)(a->expires_ms - a->created_ms), lim, sizeof lim);
    snprintf(why, sizeof why, "nobody approved it within %s (approval %s)", lim, a->id);
    ended(d, a, "expired", REPORT_APPROVAL_EXPIRED, why);
}

/* The job's record now waits for approval a. */
static void awaiting(struct job *j, const struct approval *a)
{
    char why[REPORT_TEXT_MAX], until[40];
    format_rfc3339_ms(a->expires_ms, until, sizeof until);
    snprintf(why, sizeof why, "waiting for a person to approve it (approval %s, until %s)", a->id,
             until);
    record_approval(j->d, j->record, a);
    record_set(j->d, j->record, "awaiting_approval", why, NULL);
    j->settled = 1;
}

/* Ends the job without deploying: state and kind as finish_skipped. */
static int refuse(struct job *j, const char *state, enum report_kind kind, const char *why)
{
    finish_skipped(j->d, j->record, j->p, j->app_id, j->channel, state, kind, why);
    j->settled = 1;
    return 0;
}

int job_approval_gate(struct job *j, const struct app_view *v, const struct decision *dec)
{
    struct deployer *d = j->d;
    const struct push *p = j->p;
    char why[REPORT_TEXT_MAX];
    if (!v->approve) return 1;
    if (v->approve < 0) {
        snprintf(why, sizeof why,
                 "invalid label autodeploy.approve \"%.60s\": expected true or false (nothing "
                 "deploys to this app until it reads one or the other)",
                 v->approve_label ? v->approve_label : "(not a string)");
        return refuse(j, "skipped", REPORT_SKIPPED, why);
    }
    struct approval a, sup[MAX_SUPERSEDED];
    if (p->approval[0] && approvals_get(d->approvals, p->approval, &a) == 0 &&
        !strcmp(a.app_id, j->app_id)) {
        if (approvals_allows(d->approvals, p->approval, j->app_id, p->digest)) {
            record_approval(d, j->record, &a);
            return 1;
        }
        snprintf(why, sizeof why, "approval %s does not allow this push any more", p->approval);
        return refuse(j, "skipped", REPORT_SKIPPED, why);
    }
    /* No approval, or another app's (an approved push replayed after a restart is matched
     * against every app again): this app asks for its own. */
    long timeout = decide_approve_timeout(v, config_live()->approve_timeout_ms, why, sizeof why);
    if (timeout < 0) return refuse(j, "skipped", REPORT_SKIPPED, why);
    if (approvals_pending_for(d->approvals, j->app_id, &a) == 0 &&
        !strcmp(a.push.digest, p->digest) && !strcmp(a.new_image, dec->new_image)) {
        /* The same push again (a re-delivery, a replay): it waits on the same approval. */
        approvals_set_record(d->approvals, a.id, j->record);
        awaiting(j, &a);
        return 0;
    }
    memset(&a, 0, sizeof a);
    if (new_id(a.id, sizeof a.id) < 0)
        return refuse(j, "failed", REPORT_FAILED, "cannot draw a random approval id");
    job_copy(a.app_id, sizeof a.app_id, j->app_id);
    a.push = *p;
    job_copy(a.old_image, sizeof a.old_image, j->old_image);
    job_copy(a.new_image, sizeof a.new_image, dec->new_image);
    job_copy(a.channel, sizeof a.channel, j->channel);
    a.created_ms = approval_now(d);
    a.expires_ms = a.created_ms + timeout;
    a.record = j->record;
    size_t n = 0;
    if (approvals_create(d->approvals, &a, sup, MAX_SUPERSEDED, &n) < 0)
        return refuse(j, "failed", REPORT_FAILED,
                      "too many approvals are pending: approve or reject some first");
    for (size_t i = 0; i < n; i++)
        superseded(d, &sup[i], &a);
    persist(d, &a);
    awaiting(j, &a);
    report_approval(&a, REPORT_AWAITING_APPROVAL, "");
    log_info("deployment waits for approval", "app", a.app_id, "approval", a.id, "image",
             a.new_image, "pusher", p->pusher, NULL);
    return 0;
}

/* Hands the approved push to the app's queue: its job decides again and passes the gate. */
static void submit(struct deployer *d, const struct approval *a)
{
    struct waiting *w = calloc(1, sizeof *w);
    if (!w) {
        log_error("out of memory queueing an approved push", "approval", a->id, NULL);
        return;
    }
    w->push = a->push;
    w->push.jid = 0;
    w->push.replayed = 0;
    job_copy(w->push.approval, sizeof w->push.approval, a->id);
    /* In the state file until its job ends: a restart deploys it then. */
    if (journal_add(d->journal, &w->push) < 0)
        log_warn("approved push not kept in the state file; it deploys now all the same",
                 "approval", a->id, NULL);
    if (!record_approval(d, a->record, a)) {
        w->record = record_new(d, &w->push, a->app_id);
        record_approval(d, w->record, a);
    } else {
        w->record = a->record;
    }
    /* An operator's pause holds approved pushes too: they deploy once resumed. */
    if (d->q && pushq_paused(d->q)) {
        record_set(d, w->record, "approved",
                   "approved; deploys when deployments are resumed (POST /v1/resume)", NULL);
        pthread_mutex_lock(&d->mu);
        w->next = d->held;
        d->held = w;
        pthread_mutex_unlock(&d->mu);
        return;
    }
    record_set(d, w->record, "queued", "approved; deploying", NULL);
    const char *ids[1] = {a->app_id};
    job_submit(d, &w, 1, ids);
}

/* Hands the pushes approved during a pause to their apps' queues once it is over. */
static void release_held(struct deployer *d)
{
    if (!d->q || pushq_paused(d->q)) return;
    pthread_mutex_lock(&d->mu);
    struct waiting *w = d->held;
    d->held = NULL;
    pthread_mutex_unlock(&d->mu);
    while (w) {
        struct waiting *next = w->next;
        char app_id[DECIDE_APP_ID_MAX];
        struct approval a;
        /* The app id is the approval's (the push carries its id). */
        if (approvals_get(d->approvals, w->push.approval, &a) == 0) {
            job_copy(app_id, sizeof app_id, a.app_id);
            const char *ids[1] = {app_id};
            record_set(d, w->record, "queued", "approved; deploying", NULL);
            job_submit(d, &w, 1, ids);
        } else {
            free(w); /* forgotten (cannot happen while it is approved); replayed at restart */
        }
        w = next;
    }
}

void approvals_drop_held(struct deployer *d)
{
    pthread_mutex_lock(&d->mu);
    struct waiting *w = d->held;
    d->held = NULL;
    pthread_mutex_unlock(&d->mu);
    while (w) {
        struct waiting *next = w->next;
        log_info("approved push held by the pause: kept in the state file for the next start",
                 "approval", w->push.approval, NULL);
        free(w);
        w = next;
    }
}

static int answer_error(struct buf *out, int status, const char *msg, const struct approval *a)
{
    buf_adds(out, "{\"error\":");
    buf_add_json_string(out, msg);
    if (a) {
        buf_adds(out, ",\"approval\":");
        approval_json(a, 0, out);
    }
    buf_adds(out, "}");
    return status;
}

int deployer_approval_decide(struct deployer *d, const char *id, int approve, const char *by,
                             const char *via, struct buf *out)
{
    struct approval a;
    char msg[160];
    switch (approvals_decide(d->approvals, id, approve, by, via, approval_now(d), &a)) {
    case APPROVAL_UNKNOWN:
        return answer_error(out, 404, "no such approval", NULL);
    case APPROVAL_EXPIRED_NOW:
        expired(d, &a);
        /* fall through */
    case APPROVAL_NOT_PENDING:
        snprintf(msg, sizeof msg, "the approval is %s: it can no longer be approved or rejected",
                 approval_state_name(a.state));
        if (!strcmp(via, "slack") &&
            (a.state == APPROVAL_SUPERSEDED || a.state == APPROVAL_REJECTED)) {
            /* Slack shows the clicker nothing of our answer: the channel says it did nothing
             * (an approved or expired one was announced as such already). */
            char why[REPORT_TEXT_MAX];
            snprintf(why, sizeof why,
                     "%.120s clicked %s in Slack, but approval %s is %s: nothing "
                     "changes",
                     by, approve ? "Approve" : "Reject", a.id, approval_state_name(a.state));
            report_approval(&a, REPORT_SKIPPED, why);
        }
        log_warn("approval decision refused: no longer pending", "approval", a.id, "state",
                 approval_state_name(a.state), "by", by, "via", via, NULL);
        return answer_error(out, 409, msg, &a);
    default:
        break;
    }
    persist(d, &a);
    log_info(approve ? "deployment approved" : "deployment rejected", "app", a.app_id, "approval",
             a.id, "image", a.new_image, "by", a.decided_by, "via", a.decided_via, NULL);
    if (approve) {
        report_approval(&a, REPORT_APPROVED, "");
        submit(d, &a);
    } else {
        if (record_approval(d, a.record, &a))
            record_set(d, a.record, "rejected", "rejected by a person", NULL);
        report_approval(&a, REPORT_REJECTED, "");
    }
    approval_json(&a, 0, out);
    return 200;
}

int deployer_approvals_json(struct deployer *d, struct buf *b)
{
    return approvals_json(d->approvals, b);
}

struct slackact_seen *deployer_slack_seen(struct deployer *d)
{
    return d->slack_seen;
}

void deployer_approvals_tick(struct deployer *d)
{
    struct approval out[16];
    size_t n;
    do {
        n = approvals_expire(d->approvals, approval_now(d), out, 16);
        for (size_t i = 0; i < n; i++)
            expired(d, &out[i]);
    } while (n == 16);
}

void *approvals_timer_main(void *arg)
{
    struct deployer *d = arg;
    while (!job_stopping(d)) {
        deployer_approvals_tick(d);
        release_held(d);
        job_nap(d, 250);
    }
    return NULL;
}

void approvals_restore_from(struct deployer *d, struct journal *j)
{
    char **lines = NULL;
    size_t n = journal_approvals(j, &lines), pending = 0;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_Parse(lines[i]);
        struct approval a;
        if (approval_from_json(o, &a) == 0) {
            if (a.state == APPROVAL_PENDING) {
                /* Its record is shown again, still waiting. */
                a.record = record_new(d, &a.push, a.app_id);
                record_approval(d, a.record, &a);
                record_set(d, a.record, "awaiting_approval",
                           "waiting for a person to approve it (kept in --state-file)", NULL);
                pending++;
            }
            struct approval sup;
            int rc = approvals_restore(d->approvals, &a, &sup);
            if (rc < 0)
                log_warn("approval from the state file not restored", "approval", a.id, NULL);
            if (rc == 1) {
                char why[REPORT_TEXT_MAX];
                snprintf(why, sizeof why,
                         "approval %s of the same app is newer (both were pending in the state "
                         "file); %s can no longer be approved",
                         sup.superseded_by, sup.id);
                ended(d, &sup, "superseded", REPORT_SUPERSEDED, why);
                pending--;
            }
        }
        cJSON_Delete(o);
        free(lines[i]);
    }
    free(lines);
    if (pending) {
        char c[24];
        snprintf(c, sizeof c, "%zu", pending);
        log_info("pending approvals kept from before the restart", "count", c, NULL);
    }
}
