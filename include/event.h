/*
 * event.h: parsing a Distribution notification envelope into the pushes worth deploying.
 *
 * Pure code: no I/O, no logging, no globals. The webhook handler hands it the request body and
 * gets back one verdict per event: a tagged manifest push (deployable), an ignored event
 * (blobs, pulls, mounts, deletes, untagged child manifests, pushes by digest), or a rejected one
 * (a push whose repository, tag, digest or host breaks Docker's reference grammar, or that is
 * not shaped like an event at all).
 */
#ifndef AUTODEPLOY_EVENT_H
#define AUTODEPLOY_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define PUSH_ID_MAX 128
#define PUSH_TS_MAX 64
#define PUSH_HOST_MAX 256
#define PUSH_REPO_MAX 256
#define PUSH_TAG_MAX 129
#define PUSH_DIGEST_MAX 72
#define PUSH_MEDIA_MAX 96
#define PUSH_PUSHER_MAX 128
#define PUSH_SOURCE_MAX 24
#define PUSH_APPROVAL_MAX 33

/* One tagged image push, copied out of the envelope (owns no pointers; copy by value). */
struct push {
    char event_id[PUSH_ID_MAX];  /* may be empty: some senders omit ids */
    char timestamp[PUSH_TS_MAX]; /* as sent, RFC 3339; empty when missing or unparseable */
    int64_t timestamp_ns;        /* Unix ns of timestamp; 0 when unknown */
    char host[PUSH_HOST_MAX];    /* request.host: the registry as the pusher named it; may be "" */
    char repository[PUSH_REPO_MAX]; /* e.g. "strava/foo-service" */
    char tag[PUSH_TAG_MAX];
    char digest[PUSH_DIGEST_MAX]; /* "sha256:<64 hex>" */
    char media_type[PUSH_MEDIA_MAX];
    char pusher[PUSH_PUSHER_MAX]; /* actor.name; control characters removed, may be "" */
    char source[PUSH_SOURCE_MAX]; /* how it reached us: "registry" (a Distribution
                                     notification), "reconcile", or another webhook source's
                                     name; "" reads as "registry" */
    unsigned long long seq;       /* set by the queue when accepted: its place in the records */
    unsigned long long jid;       /* id in the state file (journal.h); 0 when not journaled */
    int replayed;                 /* queued again from the state file at start */
    /* The approval (approvals.h) that lets this push deploy to an app with label
     * autodeploy.approve; "" for a push as it came. */
    char approval[PUSH_APPROVAL_MAX];
};

enum event_verdict { EVENT_PUSH = 0, EVENT_IGNORED, EVENT_REJECTED };

struct event_item {
    enum event_verdict verdict;
    char reason[160];           /* why ignored or rejected; empty for a push */
    char event_id[PUSH_ID_MAX]; /* for logging ignored/rejected events; may be empty */
    char repository[PUSH_REPO_MAX];
    struct push push; /* filled when verdict == EVENT_PUSH */
};

/* Called once per event, in envelope order. The item is only valid during the call. */
typedef void (*event_fn)(const struct event_item *item, void *ctx);

/* Parses body (len bytes, need not be NUL-terminated) as {"events":[...]} and calls fn for
 * every event. The whole body is checked before the first call, so a body that is not JSON or
 * not an envelope makes no call: it returns -1 with a one-line reason in err. Returns the
 * number of events otherwise. Memory use does not grow with the number of events. */
int event_parse_envelope(const char *body, size_t len, event_fn fn, void *ctx, char *err,
                         size_t errlen);

/* The same, but the body may also be one bare event object (with an "action", no "events"
 * array), as Azure Container Registry sends it. */
int event_parse_notification(const char *body, size_t len, event_fn fn, void *ctx, char *err,
                             size_t errlen);

/* Parses body as one JSON value with the checks every webhook body gets (not empty, no escaped
 * NUL, no trailing data). Returns the tree (caller frees with cJSON_Delete), or NULL with a
 * one-line reason in err. */
struct cJSON;
struct cJSON *event_json_parse(const char *body, size_t len, char *err, size_t errlen);

/* Copies free text (a pusher's name) into dst of cap bytes: valid UTF-8 only, control
 * characters removed, truncated on a character boundary. src NULL: "". */
void event_copy_text(char *dst, size_t cap, const char *src);

/* 1 when s is a usable event id: 1 to PUSH_ID_MAX-1 bytes of [A-Za-z0-9._:-]. */
int event_valid_id(const char *s);

/* 1 when mt is a manifest or index media type (OCI manifest/index, Docker v2 manifest and
 * manifest list, Docker schema 1). */
int event_is_manifest_media_type(const char *mt);

/* Parses an RFC 3339 timestamp (any number of fraction digits, Z or +hh:mm) into Unix ns.
 * Returns 0 on success, -1 when it does not parse. */
int event_parse_rfc3339(const char *s, int64_t *ns);

#endif
