/*
 * records.c: the deployer's records (GET /v1/deployments: a ring of the last 256) and the
 * reports it emits (report.h), kept together so a record and its report never disagree.
 */
#include "job.h"

#include "journal.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* States after which nothing more happens to a record. */
static int is_terminal(const char *state)
{
    static const char *const open[] = {"queued",       "updating",          "locked",  "deploying",
                                       "rolling_back", "awaiting_approval", "approved"};
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++)
        if (!strcmp(state, open[i])) return 0;
    return 1;
}

uint64_t record_new(struct deployer *d, const struct push *p, const char *app_id)
{
    pthread_mutex_lock(&d->mu);
    uint64_t seq = record_new_locked(d, p, app_id);
    pthread_mutex_unlock(&d->mu);
    return seq;
}

uint64_t record_new_locked(struct deployer *d, const struct push *p, const char *app_id)
{
    uint64_t seq = ++d->seq;
    struct record *r = &d->records[seq % RECORDS];
    memset(r, 0, sizeof *r);
    r->seq = seq;
    r->push = *p;
    copy(r->app_id, sizeof r->app_id, app_id);
    copy(r->state, sizeof r->state, "queued");
    r->created = wall_ms();
    return seq;
}

static struct record *find(struct deployer *d, uint64_t seq)
{
    struct record *r = &d->records[seq % RECORDS];
    return r->seq == seq ? r : NULL;
}

void record_set(struct deployer *d, uint64_t seq, const char *state, const char *reason,
                const char *task_message)
{
    pthread_mutex_lock(&d->mu);
    struct record *r = find(d, seq);
    if (r) {
        if (state) {
            copy(r->state, sizeof r->state, state);
            if (!strcmp(state, "updating") && !r->started) r->started = wall_ms();
            if (is_terminal(state)) r->ended = wall_ms();
        }
        if (reason) copy(r->reason, sizeof r->reason, reason);
        if (task_message) copy(r->task_message, sizeof r->task_message, task_message);
    }
    pthread_mutex_unlock(&d->mu);
}

void record_job(struct job *j)
{
    pthread_mutex_lock(&j->d->mu);
    struct record *r = find(j->d, j->record);
    if (r) {
        copy(r->old_image, sizeof r->old_image, j->old_image);
        copy(r->new_image, sizeof r->new_image, j->new_image);
        copy(r->old_digest, sizeof r->old_digest, j->old_digest);
        /* A push that came without a digest has the registry's once verified (update.c). */
        if (!r->push.digest[0]) copy(r->push.digest, sizeof r->push.digest, j->p->digest);
        copy(r->deployment_id, sizeof r->deployment_id, j->dep_id);
    }
    pthread_mutex_unlock(&j->d->mu);
}

void record_rollback(struct deployer *d, uint64_t seq, const char *rollback_id)
{
    pthread_mutex_lock(&d->mu);
    struct record *r = find(d, seq);
    if (r) copy(r->rollback_id, sizeof r->rollback_id, rollback_id);
    pthread_mutex_unlock(&d->mu);
}

void record_accepted(struct deployer *d, uint64_t seq)
{
    pthread_mutex_lock(&d->mu);
    struct record *r = find(d, seq);
    if (r && !r->accepted) r->accepted = wall_ms();
    pthread_mutex_unlock(&d->mu);
}

int record_approval(struct deployer *d, uint64_t seq, const struct approval *a)
{
    pthread_mutex_lock(&d->mu);
    struct record *r = seq ? find(d, seq) : NULL;
    if (r) {
        copy(r->approval_id, sizeof r->approval_id, a->id);
        copy(r->decided_by, sizeof r->decided_by, a->decided_by);
        copy(r->decided_via, sizeof r->decided_via, a->decided_via);
        r->decided_at = a->decided_ms;
    }
    pthread_mutex_unlock(&d->mu);
    return r != NULL;
}

static void add_ms_time(struct buf *b, const char *key, int64_t ms)
{
    buf_printf(b, ",\"%s\":", key);
    if (!ms) {
        buf_adds(b, "null");
        return;
    }
    char t[40];
    format_rfc3339_ms(ms, t, sizeof t);
    buf_add_json_string(b, t);
}

static void add_str(struct buf *b, const char *key, const char *v)
{
    buf_printf(b, ",\"%s\":", key);
    buf_add_json_string(b, v && *v ? v : NULL);
}

static void record_json(const struct record *r, struct buf *b)
{
    buf_printf(b, "{\"seq\":%llu", (unsigned long long)r->seq);
    add_str(b, "app", r->app_id);
    add_str(b, "state", r->state);
    add_str(b, "repository", r->push.repository);
    add_str(b, "tag", r->push.tag);
    add_str(b, "digest", r->push.digest);
    add_str(b, "registry", r->push.host);
    add_str(b, "pusher", r->push.pusher);
    add_str(b, "source", r->push.source[0] ? r->push.source : "registry");
    add_str(b, "event_id", r->push.event_id);
    add_str(b, "pushed_at", r->push.timestamp);
    add_str(b, "old_image", r->old_image);
    add_str(b, "old_digest", r->old_digest);
    add_str(b, "new_image", r->new_image);
    add_str(b, "deployment_id", r->deployment_id);
    add_str(b, "rollback_deployment_id", r->rollback_id);
    add_str(b, "reason", r->reason);
    add_str(b, "task_message", r->task_message);
    add_ms_time(b, "created_at", r->created);
    add_ms_time(b, "started_at", r->started);
    add_ms_time(b, "update_started_at", r->accepted);
    add_ms_time(b, "ended_at", r->ended);
    add_str(b, "approval_id", r->approval_id);
    add_str(b, "decided_by", r->decided_by);
    add_str(b, "decided_via", r->decided_via);
    add_ms_time(b, "decided_at", r->decided_at);
    if (r->started && r->ended)
        buf_printf(b, ",\"duration_s\":%.3f", (r->ended - r->started) / 1000.0);
    buf_adds(b, "}");
}

int records_json(struct deployer *d, struct buf *b)
{
    buf_adds(b, "{\"deployments\":[");
    pthread_mutex_lock(&d->mu);
    int first = 1;
    for (uint64_t k = 0; k < RECORDS && k < d->seq; k++) {
        const struct record *r = &d->records[(d->seq - k) % RECORDS];
        if (r->seq != d->seq - k) continue;
        if (!first) buf_adds(b, ",");
        first = 0;
        record_json(r, b);
    }
    pthread_mutex_unlock(&d->mu);
    return buf_adds(b, "]}");
}

/* ---------------------------------------------------------------- reports */

void report_init(struct report *r, enum report_kind k, const struct push *p, const char *app_id)
{
    memset(r, 0, sizeof *r);
    r->kind = k;
    if (p) r->push = *p;
    copy(r->app_id, sizeof r->app_id, app_id);
    r->instances = -1;
}

void count_outcome(const char *outcome)
{
    metrics_add("autodeploy_deployments_total", "outcome", outcome, 1);
}

void finish_skipped(struct deployer *d, uint64_t seq, const struct push *p, const char *app_id,
                    const char *channel, const char *state, enum report_kind kind,
                    const char *reason)
{
    record_set(d, seq, state, reason, NULL);
    count_outcome(state);
    struct report r;
    report_init(&r, kind, p, app_id);
    copy(r.reason, sizeof r.reason, reason);
    copy(r.slack_channel, sizeof r.slack_channel, channel);
    report_emit(&r);
    log_info(kind == REPORT_SUPERSEDED ? "push superseded" : "deployment skipped", "app", app_id,
             "repository", p->repository, "tag", p->tag, "reason", reason, NULL);
}

void format_limit(long ms, char *out, size_t len)
{
    if (ms % 1000)
        snprintf(out, len, "%.3gs", ms / 1000.0);
    else
        snprintf(out, len, "%lds", ms / 1000);
}

double job_secs(struct job *j)
{
    return j->accepted_at ? (job_now(j->d) - j->accepted_at) / 1000.0 : 0;
}

void job_report(struct job *j, enum report_kind kind, const char *state, const char *dep_id,
                const char *reason, const char *task_message, const char *error)
{
    if (state) {
        int terminal = is_terminal(state);
        /* A failure about to be rolled back is not the record's end: it goes on as
         * rolling_back (the report below still tells the failure). */
        record_set(j->d, j->record, terminal && j->rolling ? "rolling_back" : state, reason,
                   task_message);
        if (terminal) count_outcome(state);
        if (terminal && strcmp(state, "interrupted") != 0) j->settled = 1;
    }
    struct report r;
    report_init(&r, kind, j->p, j->app_id);
    copy(r.old_image, sizeof r.old_image, j->old_image);
    copy(r.new_image, sizeof r.new_image, j->new_image);
    copy(r.old_digest, sizeof r.old_digest, j->old_digest);
    copy(r.deployment_id, sizeof r.deployment_id, dep_id);
    copy(r.rollback_id, sizeof r.rollback_id, j->rollback_id);
    copy(r.reason, sizeof r.reason, reason);
    copy(r.task_message, sizeof r.task_message, task_message);
    copy(r.error, sizeof r.error, error);
    copy(r.slack_channel, sizeof r.slack_channel, j->channel);
    r.instances = j->instances;
    r.duration_s = job_secs(j);
    report_emit(&r);
}
