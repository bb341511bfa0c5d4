/*
 * report.h: what happened to a push and to each deployment, told to whoever listens.
 *
 * The deployer emits one report per thing a person would want to know (a push arrived and
 * will deploy to these apps; a deployment started; it ended, and how; an app was skipped and
 * why). Sinks (the log, Slack) subscribe at start-up. report_emit copies the report and calls
 * every sink in the caller's thread, so a sink must not block: Slack queues and returns.
 */
#ifndef AUTODEPLOY_REPORT_H
#define AUTODEPLOY_REPORT_H

#include "event.h"
#include "reference.h"

enum report_kind {
    REPORT_PUSHED = 0,      /* a push arrived; apps lists where it will deploy (may be empty) */
    REPORT_DEPLOYING,       /* a deployment was created in Marathon */
    REPORT_DEPLOYED,        /* the deployment succeeded */
    REPORT_FAILED,          /* the update or the deployment failed */
    REPORT_TIMED_OUT,       /* the deployment did not end within --deploy-timeout */
    REPORT_ROLLED_BACK,     /* after a failure or time-out, the revert deployment ended: the app
                               runs its previous image again */
    REPORT_SUPERSEDED,      /* a newer push for the same app replaced this one before it ran */
    REPORT_SKIPPED,         /* not deployed: locked, paused, outside the prefixes, invalid label,
                               already running that image, older than what runs */
    REPORT_PAUSED,          /* an operator paused deployments */
    REPORT_RESUMED,         /* an operator resumed them */
    REPORT_INTERRUPTED,     /* autodeployd stopped while following a deployment Marathon goes on
                               with; its outcome is not known to autodeployd */
    REPORT_ROLLBACK_FAILED, /* after a failure or time-out, Marathon refused the rollback, or its
                               revert deployment failed or did not end: it needs a hand */
    REPORT_ROLLING_BACK,    /* Marathon accepted the rollback; deployment_id is the revert's */
    REPORT_CANCELLED,       /* someone else ended our deployment and the app no longer carries
                               our image (an operator's revert, a forced edit): left as it is */
    /* The app asks for approval (label autodeploy.approve): a pending approval (approval_id)
     * waits for a person until approval_expires. */
    REPORT_AWAITING_APPROVAL,
    /* A person approved it (approval_by, approval_via): it deploys. */
    REPORT_APPROVED,
    /* A person rejected it: it does not deploy. */
    REPORT_REJECTED,
    /* Nobody decided before the approval's time-out. */
    REPORT_APPROVAL_EXPIRED,
};

#define REPORT_TEXT_MAX 512

struct report {
    enum report_kind kind;
    struct push push; /* the push concerned (zeroed for PAUSED/RESUMED) */
    char app_id[256]; /* Marathon app id, "" when not about one app */
    char apps[1024];  /* PUSHED: matching app ids, ", "-separated (truncated) */
    int n_apps;       /* PUSHED: how many apps match */
    char old_image[REF_IMAGE_MAX], new_image[REF_IMAGE_MAX];
    char old_digest[PUSH_DIGEST_MAX]; /* digest the app ran before, "" when unknown */
    char deployment_id[128];
    char rollback_id[128]; /* ROLLING_BACK, ROLLED_BACK, ROLLBACK_FAILED: the revert deployment;
                              "" when the rollback was refused or needed no deployment */
    int instances;         /* -1 when unknown */
    char reason[REPORT_TEXT_MAX];       /* failure or skip reason; who paused; ROLLBACK_FAILED:
                                           why the deployment failed */
    char error[REPORT_TEXT_MAX];        /* ROLLBACK_FAILED: Marathon's answer to the rollback, or
                                           how the revert deployment ended */
    char task_message[REPORT_TEXT_MAX]; /* last task failure message, "" when none */
    double duration_s;                  /* DEPLOYED/FAILED/TIMED_OUT: seconds since DEPLOYING */
    char slack_channel[128];            /* app label autodeploy.slack-channel, "" for the default */
    char approval_id[40];               /* the approval concerned, "" when none */
    char approval_by[128];              /* APPROVED/REJECTED: who decided (as they gave it) */
    char approval_via[16];              /* APPROVED/REJECTED: "console", "api" or "slack" */
    char approval_expires[40];          /* AWAITING_APPROVAL: RFC 3339 time of the time-out */
};

typedef void (*report_sink_fn)(const struct report *r, void *ctx);

/* Adds a sink; call before any report is emitted (start-up). At most 8 sinks. */
int report_add_sink(report_sink_fn fn, void *ctx);

/* Calls every sink with r. Thread-safe. */
void report_emit(const struct report *r);

/* Removes every sink (shutdown, tests). */
void report_clear_sinks(void);

/* "pushed", "deploying", "deployed", "failed", "timed_out", "rolled_back", "superseded",
 * "skipped", "paused", "resumed", "interrupted", "rollback_failed", "rolling_back",
 * "cancelled", "awaiting_approval", "approved", "rejected", "approval_expired". */
const char *report_kind_name(enum report_kind k);

#endif
