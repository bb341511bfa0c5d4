/*
 * deploy.h: from an accepted push to finished Marathon deployments.
 *
 * The deployer is a pipeline of small rooms (include/job.h ties them together):
 *   dispatch.c  a thread takes pushes from the queue, lists the apps carrying the label once
 *               per batch, matches, and hands every matching app to the per-app queue;
 *   deploy.c    the per-app queue and the workers: one job per app at a time, which takes all
 *               the pushes waiting for that app when it starts;
 *   decide.c    the rules (pure): which push deploys, whether it deploys, the update body;
 *   update.c    the Marathon update protocol: re-read, decide, PATCH (PUT before 1.4), 409
 *               locks, 403/5xx/lost answers, within --update-timeout;
 *   outcome.c   following the deployment to its real end (events and polls), who owns the app
 *               when it ends, and the rollback, followed like any deployment;
 *   records.c   the deployment records (/v1/deployments) and the reports (Slack, log).
 * The deployer acts on the world only through a clock and a Marathon it is handed
 * (struct deploy_env), so its update protocol and outcome paths run as unit tests with a fake
 * clock and a scripted Marathon.
 */
#ifndef AUTODEPLOY_DEPLOY_H
#define AUTODEPLOY_DEPLOY_H

#include "buf.h"
#include "config.h"
#include "event.h"
#include "follow.h"
#include "marathon.h"
#include "queue.h"

struct deployer;

/* What the deployer is handed to act on the world. deployer_new fills it with the real
 * monotonic clock, the Marathon client and the event-stream follower; deployer_new_env takes a
 * fake one (unit tests). Every member is called from the deployer's threads; ctx is passed
 * back as is. */
struct deploy_env {
    void *ctx;
    int64_t (*now_ms)(void *ctx); /* monotonic milliseconds */
    /* Waits ms or until deployer_stop wakes it (then returns early); 0 when woken. */
    void (*sleep_ms)(void *ctx, long ms);
    /* One Marathon request (marathon_request's contract: 0 with resp->status, -1 with
     * resp->err when no answer came; resp is always freed by the caller). */
    int (*request)(void *ctx, const char *method, const char *path, const char *body,
                   struct httpc_resp *resp);
    /* Optional: a GET as request does, handing the body to on_body as it arrives
     * (marathon_get_progressive's contract). NULL: request is used and the body read at the
     * end. */
    int (*get_progressive)(void *ctx, const char *path,
                           void (*on_body)(const char *body, size_t len, void *arg), void *arg,
                           struct httpc_resp *resp);
    /* The event stream (follow.h's contract); may all be NULL: no stream, poll only. */
    int (*stream_connected)(void *ctx);
    unsigned (*stream_generation)(void *ctx);
    int (*watch)(void *ctx, const char *deployment_id, const char *app_id);
    enum follow_outcome (*wait)(void *ctx, int watch, int64_t deadline_ms, long max_wait_ms,
                                char *reason, size_t reason_len, char *task, size_t task_len);
    void (*unwatch)(void *ctx, int watch);
};

/* cfg, q, m and f must outlive the deployer. NULL with a reason in err. */
struct deployer *deployer_new(const struct config *cfg, struct pushq *q, struct marathon *m,
                              struct follower *f, char *err, size_t errlen);

/* The same with an environment of the caller's (copied; env->ctx must outlive the deployer).
 * Settings are read from config_live() as the real deployer does. */
struct deployer *deployer_new_env(const struct config *cfg, struct pushq *q,
                                  const struct deploy_env *env, char *err, size_t errlen);

/* Runs one job in the calling thread, as a worker would: the pushes (n of them, copied) all
 * wait for app_id; the rules choose one, deploy it and follow it to its end, reporting and
 * recording everything. For unit tests with a fake environment. */
void deployer_run_job(struct deployer *d, const char *app_id, const struct push *pushes, size_t n);

/* Starts the dispatcher and the workers. */
int deployer_start(struct deployer *d);

/* Tells the deployer when each push's work has ended (journal.h); call before starting it. */
struct journal;
void deployer_set_journal(struct deployer *d, struct journal *j);

/* Stops taking pushes and jobs; gives running jobs until grace_ms to end (what is still
 * running in Marathon then is reported as interrupted), joins the threads. */
void deployer_stop(struct deployer *d, long grace_ms);

void deployer_free(struct deployer *d);

/* Appends {"deployments":[...]}: the most recent deployment records, newest first. */
int deployer_records_json(struct deployer *d, struct buf *b);

/* Appends what a push of image_ref ("[host/]repository:tag") would do, changing nothing:
 * {"image":...,"apps":[{"id","current_image","new_image","action","reason"}]}. Returns the
 * HTTP status to answer (200, 400 for a bad reference, 502 when Marathon cannot be read). */
int deployer_plan_json(struct deployer *d, const char *image_ref, struct buf *b);

/* Appends {"apps":[{"id","image","label","patterns":[...],"label_error","labels":{the
 * operator's autodeploy.* labels},"paused","digest","pushed_by","last":{"seq","state","image",
 * "reason","at"}|null}]}: the apps carrying the label (one Marathon listing, no retry; call it
 * from a thread that may wait for Marathon; a listing, or its failure, is shared by the calls
 * of the next 2 s, so that consoles and scripts cannot make autodeployd read Marathon more
 * often than that) with the newest record of each. Returns the HTTP
 * status to answer: 200, or 502 when Marathon cannot be read (b then holds {"error"}). */
int deployer_apps_json(struct deployer *d, struct buf *b);

/* Appends "marathon":"reachable|unreachable|unknown","event_stream":"attached|down" (and
 * "marathon_error" when unreachable) and returns 1 when Marathon is reachable. */
int deployer_health_json(struct deployer *d, struct buf *b);

/* GET /v1/reconcile: what a reconcile cycle would do now, changing nothing:
 * {"apps":[{"id","image","action":"deploy|adopt|nothing|skipped","new_image","reason"}],
 * "dry_run":true,"repositories":N,"requests":{"tags_list","head","created"},...}. Asks Marathon
 * and the registries: call it off the HTTP threads. Returns the HTTP status (200; 502 when
 * Marathon cannot be read; 503 when reconcile is not possible: no registry client). */
int deployer_reconcile_preview_json(struct deployer *d, struct buf *b);

/* POST /v1/reconcile: starts a cycle now (the next one is then due an interval later).
 * Returns 0, or -1 when reconcile is not possible. Never blocks on I/O. */
int deployer_reconcile_now(struct deployer *d);
/* Appends {"approvals":[...]} (approvals.h), newest first. */
int deployer_approvals_json(struct deployer *d, struct buf *b);

/* Approves (approve=1) or rejects approval id for by through via ("console", "api", "slack").
 * An approved push is handed to the app's queue (and the state file), once. Appends the
 * approval as JSON (or {"error":...}) to out and returns the HTTP status: 200, 404 unknown
 * id, 409 no longer pending (approved, rejected, superseded, expired). Thread-safe; no
 * network I/O (reports are queued by their sinks). */
int deployer_approval_decide(struct deployer *d, const char *id, int approve, const char *by,
                             const char *via, struct buf *out);

/* The memory of Slack interaction signatures (slackact.h), shared by the HTTP threads. */
struct slackact_seen *deployer_slack_seen(struct deployer *d);

/* Expires pending approvals past their time-out now (the timer thread does it every 250 ms;
 * unit tests call it after moving the fake clock). */
void deployer_approvals_tick(struct deployer *d);

/* Runs the jobs waiting in the per-app queue in the calling thread, until none is left (unit
 * tests, with no worker started: e.g. the job an approval queued). */
void deployer_run_queued(struct deployer *d);

/* Declares the deployer's metric families. */
void deployer_metrics_declare(void);

#endif
