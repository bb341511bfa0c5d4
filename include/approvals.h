/*
 * approvals.h: pending approvals for apps that deploy only once a person says so (label
 * autodeploy.approve=true), and their pure state machine.
 *
 * A push that would deploy to such an app creates a pending approval instead of a deployment.
 * From pending it moves exactly once, under the store's lock, to one of:
 *   approved    a person approved it (console, API or Slack): its push is deployed, once;
 *   rejected    a person rejected it;
 *   superseded  a newer push for the same app replaced it (it can no longer be approved, so an
 *               old Slack button never deploys an image nobody approved);
 *   expired     its time-out passed before anyone decided.
 * Decided approvals are kept (the newest APPROVALS_KEEP in all) for GET /v1/approvals.
 *
 * The store does no I/O and reads no clock: every time is passed in, as Unix milliseconds, so
 * the transitions are unit tested (tests/unit/test_approvals.c). Every function is thread-safe
 * (one mutex per store). The deployer's side (reports, records, jobs, the state file) is in
 * approvals_job.c.
 */
#ifndef AUTODEPLOY_APPROVALS_H
#define AUTODEPLOY_APPROVALS_H

#include "buf.h"
#include "event.h"
#include "reference.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define APPROVAL_ID_MAX 33 /* 32 hex digits (128 random bits) */
#define APPROVAL_BY_MAX 128
#define APPROVAL_VIA_MAX 16
#define APPROVALS_KEEP 256

enum approval_state {
    APPROVAL_PENDING = 0,
    APPROVAL_APPROVED,
    APPROVAL_REJECTED,
    APPROVAL_SUPERSEDED,
    APPROVAL_EXPIRED,
};

struct approval {
    char id[APPROVAL_ID_MAX];
    char app_id[256];
    struct push push; /* what would deploy: repository, tag, digest, pusher, source */
    char old_image[REF_IMAGE_MAX], new_image[REF_IMAGE_MAX];
    char channel[128];              /* the app's autodeploy.slack-channel, "" default */
    int64_t created_ms, expires_ms; /* Unix ms */
    int64_t decided_ms;             /* Unix ms, 0 while pending */
    enum approval_state state;
    char decided_by[APPROVAL_BY_MAX];    /* who approved or rejected; "" otherwise */
    char decided_via[APPROVAL_VIA_MAX];  /* "console", "api", "slack"; "" otherwise */
    char superseded_by[APPROVAL_ID_MAX]; /* superseded: the approval that replaced it */
    uint64_t record;                     /* the deployment record (not kept across restarts) */
};

/* What approvals_decide did. */
enum approval_result {
    APPROVAL_DONE = 0,    /* pending -> approved or rejected */
    APPROVAL_UNKNOWN,     /* no approval has this id (HTTP 404) */
    APPROVAL_NOT_PENDING, /* it was decided before (HTTP 409) */
    APPROVAL_EXPIRED_NOW, /* it was pending but past its time-out: now expired (HTTP 409; the
                             caller reports the expiry) */
};

struct approvals;

/* A store keeping at most cap approvals (APPROVALS_KEEP when 0). NULL when out of memory. */
struct approvals *approvals_new(size_t cap);
void approvals_free(struct approvals *s);

/* Adds a (state pending; id, app, push, times set by the caller). Every other pending approval
 * of the same app becomes superseded (decided at a->created_ms, superseded_by a->id) and is
 * copied to sup (at most max_sup; *n_sup says how many). When the store is full the oldest
 * decided approval is forgotten. Returns 0, or -1 when the id is taken or every kept approval
 * is pending. */
int approvals_create(struct approvals *s, const struct approval *a, struct approval *sup,
                     size_t max_sup, size_t *n_sup);

/* Puts back an approval read from the state file, as it is. -1 when full or the id is taken.
 * One app has one pending approval at most, whatever the file says (a superseded line lost to
 * a failed write): when a is pending and another approval of its app is too, the older of the
 * two becomes superseded by the newer, is copied to *sup and 1 is returned; else 0. */
int approvals_restore(struct approvals *s, const struct approval *a, struct approval *sup);

/* Approves (approve=1) or rejects approval id for by (<= APPROVAL_BY_MAX-1 bytes, else cut at
 * a character boundary) through via, at now. out (may be NULL) receives the approval after the
 * call (for APPROVAL_UNKNOWN it is untouched). */
enum approval_result approvals_decide(struct approvals *s, const char *id, int approve,
                                      const char *by, const char *via, int64_t now,
                                      struct approval *out);

/* Expires the pending approvals whose expires_ms <= now, at most max of them, copied to out
 * (every approval that expires is handed back: its report and record depend on it). Returns
 * how many expired; when that is max, more may be due (call again). */
size_t approvals_expire(struct approvals *s, int64_t now, struct approval *out, size_t max);

/* Copies approval id to out; -1 when unknown. */
int approvals_get(struct approvals *s, const char *id, struct approval *out);

/* The pending approval of app_id, if any, to out; -1 when none. */
int approvals_pending_for(struct approvals *s, const char *app_id, struct approval *out);

/* 1 when approval id is approved and is for app_id and digest: the one push the deployer may
 * deploy past the gate. */
int approvals_allows(struct approvals *s, const char *id, const char *app_id, const char *digest);

/* How many approvals are pending (the autodeploy_approvals_pending gauge). */
size_t approvals_pending_count(struct approvals *s);

/* Sets the deployment record of approval id (no effect when unknown). */
void approvals_set_record(struct approvals *s, const char *id, uint64_t record);

/* Appends {"approvals":[...]} newest first (approval_json each, without the state-file
 * fields). */
int approvals_json(struct approvals *s, struct buf *b);

/* "pending", "approved", "rejected", "superseded", "expired". */
const char *approval_state_name(enum approval_state st);

/* Appends one approval as a JSON object: id, app, image, old_image, digest, pusher, source,
 * repository, tag, created_at, expires_at, state, decided_by, decided_via, decided_at,
 * superseded_by (times RFC 3339 UTC with milliseconds; unknown ones null). full adds what the
 * state file needs to put it back: channel and the whole push. */
int approval_json(const struct approval *a, int full, struct buf *b);

/* Reads an object written by approval_json(full=1) back; -1 when a field is missing, too long
 * or fails its grammar. */
int approval_from_json(const cJSON *o, struct approval *a);

#endif
