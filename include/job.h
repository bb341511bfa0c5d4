/*
 * job.h: what the deployer's modules share (deploy.c, dispatch.c, update.c, outcome.c,
 * records.c; see deploy.h for who does what). Not for use outside the deployer.
 *
 * Locking: d->mu guards the per-app slots, the ready list and the records ring; no lock is
 * held across network I/O or while reports are emitted. Cross-thread flags are atomics.
 */
#ifndef AUTODEPLOY_JOB_H
#define AUTODEPLOY_JOB_H

#include "approvals.h"
#include "decide.h"
#include "deploy.h"
#include "report.h"
#include "slackact.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define RECORDS 256

/* A push waiting for one app, with its record. */
struct waiting {
    struct push push;
    uint64_t record;
    struct waiting *next;
};

/* One app's place in the per-app queue: at most one job runs per app; pushes arriving
 * meanwhile wait in the slot and the next job chooses among them. */
struct slot {
    char app_id[DECIDE_APP_ID_MAX];
    struct waiting *waiting, *waiting_tail; /* in arrival order */
    int queued;                             /* in the ready list */
    int running;                            /* a worker runs its job */
    char last_digest[PUSH_DIGEST_MAX];      /* the digest its last job chose ("" none yet) */
    struct slot *next, **pprev;             /* all slots */
    struct slot *hnext;                     /* its bucket of slot_index */
    struct slot *ready_next;                /* ready list */
};

/* Slots by app id. An idle slot is kept for its last_digest (reconcile does not try an image
 * again that a job already handled for the app) while fewer than SLOTS_KEPT slots exist. */
#define SLOT_BUCKETS 4096
#define SLOTS_KEPT 100000

struct record {
    uint64_t seq; /* 0: unused */
    struct push push;
    char app_id[DECIDE_APP_ID_MAX];
    char old_image[REF_IMAGE_MAX], new_image[REF_IMAGE_MAX];
    char old_digest[PUSH_DIGEST_MAX]; /* what the app ran before, per its label; "" unknown */
    char deployment_id[128];
    char rollback_id[128];
    char state[24]; /* longest: "awaiting_approval" */
    char reason[REPORT_TEXT_MAX];
    char task_message[REPORT_TEXT_MAX];
    int64_t created, started, accepted, ended; /* Unix ms, 0 when not yet */
    char approval_id[APPROVAL_ID_MAX];         /* the approval asked for or given, "" none */
    char decided_by[APPROVAL_BY_MAX], decided_via[APPROVAL_VIA_MAX];
    int64_t decided_at; /* Unix ms of the approval's decision, 0 none */
};

struct deployer {
    struct pushq *q;
    struct marathon *m;
    struct follower *f;
    struct deploy_env env;
    match_cache *cache;
    struct match_alias *aliases;
    size_t n_aliases;
    pthread_t dispatcher;
    pthread_t *workers;
    int n_workers, n_started, dispatcher_started;
    atomic_int stop;     /* leave now: running jobs end as interrupted */
    atomic_int draining; /* take no new push or job; running jobs go on */
    int inflight;        /* jobs running now; under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* workers: a slot is ready, or stop */
    pthread_cond_t wake_cv;      /* naps and the stop's wait for running jobs (CLOCK_MONOTONIC) */
    struct registry *registry;   /* NULL only in unit tests: no verification */
    struct verify_cache *verify; /* answers shared by the jobs of one push */
    struct slot *slots, *ready_head, *ready_tail;
    struct slot *slot_index[SLOT_BUCKETS];
    size_t n_slots;
    struct record records[RECORDS];
    struct journal *journal;       /* NULL without --state-file */
    struct reconciler *reconciler; /* NULL without a registry client (unit tests) */
    uint64_t seq;
    struct approvals *approvals;      /* label autodeploy.approve (approvals_job.c) */
    struct slackact_seen *slack_seen; /* Slack interaction signatures seen (replays) */
    struct apps_share *apps_share;    /* GET /v1/apps: Marathon's listing, shared (apps.c) */
    int64_t wall_base, mono_base;     /* approvals' Unix ms = wall_base + (now - mono_base) */
    pthread_t approval_timer;
    int approval_timer_started;
    struct waiting *held; /* approved while an operator paused deployments; under mu */
};

/* One job: the pushes waiting for one app, the one chosen, and what the update did. */
struct job {
    struct deployer *d;
    char app_id[DECIDE_APP_ID_MAX];
    struct waiting **w; /* candidates; after the choice only the chosen one is left */
    size_t n;
    const struct push *p; /* the chosen push */
    uint64_t record;
    char channel[128];
    char old_image[REF_IMAGE_MAX], new_image[REF_IMAGE_MAX];
    char old_digest[PUSH_DIGEST_MAX];
    cJSON *old_labels;  /* the app's labels before our update: a rollback puts ours back */
    cJSON *old_docker;  /* the app's container.docker before our update */
    const char *method; /* "PATCH", or "PUT" once Marathon answered 405 (before 1.4) */
    int adopted;        /* following a deployment this job did not start (a replay, another
                           replica): reported, never rolled back */
    int rolling;        /* a rollback follows the failure being reported */
    int settled;        /* the push's story has ended (or a rollback was decided): a stop now
                           must not replay it from the state file */
    int instances;
    char dep_id[128];                   /* the deployment our update created */
    char rollback_id[128];              /* the revert deployment, "" before a rollback */
    char rollback_image[REF_IMAGE_MAX]; /* what the rollback puts back (pinned for a mutable tag) */
    char version[64];                   /* the app version our update created */
    char deployed_at[40];
    int64_t update_deadline;    /* --update-timeout from the job's start */
    int64_t deadline;           /* --deploy-timeout from Marathon's acceptance */
    int64_t accepted_at;        /* monotonic ms, 0 before */
    int sent_unanswered;        /* an update went out and its answer was lost */
    int verified;               /* the registry was asked (or need not be) */
    int64_t verify_first;       /* monotonic ms of the job's first registry answer, 0 before */
    int64_t verify_seen;        /* when the answer the job last judged was taken (verify.c) */
    char note[REPORT_TEXT_MAX]; /* said with the deployment, e.g. that it was not verified */
};

/* ---- deploy.c */
int64_t job_now(struct deployer *d);
void job_nap(struct deployer *d, long ms);
int job_stopping(struct deployer *d);
int job_request(struct deployer *d, const char *method, const char *path, const char *body,
                struct httpc_resp *resp);
/* GET /v2/apps/{id} -> the "app" object (caller frees), or NULL; resp holds the answer. */
cJSON *job_get_app(struct deployer *d, const char *app_id, struct httpc_resp *resp);
/* GET /v2/deployments as a JSON array (caller frees), NULL when it cannot be read. */
cJSON *job_deployments(struct deployer *d);
/* The entry of list whose "id" is id, NULL when none (or id is NULL). */
const cJSON *job_find_deployment(const cJSON *list, const char *id);
/* snprintf(dst, n, "%s", src), NULL src as "". */
void job_copy(char *dst, size_t n, const char *src);
/* o[k] when it is a string, else NULL. */
const char *job_jstr(const cJSON *o, const char *k);
/* Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... capped at 30 s, +-25 %. */
long job_backoff_ms(int attempt);
/* Hands the waiting pushes to the per-app queue (one lock for all: a batch's pushes for one
 * app are seen together by the job that chooses among them). */
void job_submit(struct deployer *d, struct waiting **w, size_t n, const char *const *app_ids);

/* Reconcile's push p for app_id alone (not matched against other apps): queued unless a job for
 * the app is pending or running, or the app's last job chose p's digest already (a failed
 * deploy is not retried every cycle). Returns 0 when queued, 1 when not (why says why), -1 out
 * of memory. */
int job_submit_reconciled(struct deployer *d, const struct push *p, const char *app_id, char *why,
                          size_t whylen);

/* ---- verify.c */
struct verify_cache;
struct verify_cache *verify_cache_new(void);
void verify_cache_free(struct verify_cache *c);
/* Asks the registry at host for the chosen push's tag, sharing answers between the jobs of one
 * push (see verify.c). */
void job_verify(struct job *j, const char *host, struct verify_answer *out);

/* ---- apps.c */
struct apps_share;
struct apps_share *apps_share_new(void);
void apps_share_free(struct apps_share *s);

/* ---- reconcile.c (see there) */
struct reconciler;
struct reconciler *reconciler_new(struct deployer *d);
int reconciler_start(struct reconciler *rc);
/* Ends the cycle under way at its next question and joins the thread. */
void reconciler_stop(struct reconciler *rc);
void reconciler_free(struct reconciler *rc);
/* Runs a cycle now (POST /v1/reconcile). */
void reconciler_wake(struct reconciler *rc);
/* Runs a dry cycle in the calling thread and appends its plan; returns the HTTP status. */
int reconciler_preview_json(struct reconciler *rc, struct buf *b);
void reconciler_metrics_declare(void);
/* ---- approvals_job.c */
/* Unix ms on the deployer's clock (the fake one in unit tests). */
int64_t approval_now(struct deployer *d);
/* The gate of an app with label autodeploy.approve, after the rules said deploy and the
 * registry was asked: 1 to go on (no approval asked, or this push's approval allows it), 0
 * when the job has ended (a pending approval was created, or the push may not deploy). */
int job_approval_gate(struct job *j, const struct app_view *v, const struct decision *dec);
/* Expires pending approvals past their time-out, on a timer, until the stop. */
void *approvals_timer_main(void *arg);
/* Puts back the approvals kept in the state file. */
void approvals_restore_from(struct deployer *d, struct journal *j);
/* Frees the approved pushes held by a pause (they stay in the state file). */
void approvals_drop_held(struct deployer *d);

/* ---- dispatch.c */
void *dispatch_main(void *arg);
/* Lists the apps carrying the label (retrying until deadline); 0, or -1 with err. */
struct listing;
int dispatch_list_apps(struct deployer *d, int64_t deadline, struct listing *out, char *err,
                       size_t errlen);

/* ---- update.c: 1 when a deployment is to be followed (j->dep_id), 2 when an update whose
 * answer was lost has landed and ended (to be judged), 0 when the job ended */
int job_update(struct job *j);

/* ---- outcome.c: follows j->dep_id to its end (landed: judges the update that landed
 * unanswered), rolls back, reports */
void job_follow(struct job *j, int landed);

/* ---- records.c */
uint64_t record_new(struct deployer *d, const struct push *p, const char *app_id);
uint64_t record_new_locked(struct deployer *d, const struct push *p,
                           const char *app_id); /* mu held */
/* Updates a record; NULL leaves a field as it is. */
void record_set(struct deployer *d, uint64_t seq, const char *state, const char *reason,
                const char *task_message);
void record_job(struct job *j); /* copies images, digest and deployment ids of j */
void record_rollback(struct deployer *d, uint64_t seq, const char *rollback_id);
void record_accepted(struct deployer *d, uint64_t seq);
/* Copies the approval's id and decision to the record; 0 when the record is gone. */
int record_approval(struct deployer *d, uint64_t seq, const struct approval *a);
int records_json(struct deployer *d, struct buf *b);
void report_init(struct report *r, enum report_kind k, const struct push *p, const char *app_id);
void count_outcome(const char *outcome);
/* Records, counts, reports and logs the end of a push for an app that did not deploy. */
void finish_skipped(struct deployer *d, uint64_t seq, const struct push *p, const char *app_id,
                    const char *channel, const char *state, enum report_kind kind,
                    const char *reason);
/* Records, counts (when outcome), and reports kind for the job's deployment dep_id. */
void job_report(struct job *j, enum report_kind kind, const char *state, const char *dep_id,
                const char *reason, const char *task_message, const char *error);
double job_secs(struct job *j);
/* A setting's duration as the user would write it: "1.5s", "600s". */
void format_limit(long ms, char *out, size_t len);

#endif
