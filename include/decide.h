/*
 * decide.h: the deployer's rules, in one place.
 *
 * Given an app as Marathon describes it and the push (or pushes) waiting for it, these
 * functions say what to do and why: which push deploys, whether it deploys at all (prefix,
 * pause, id rules, already running, older than what runs), the exact update body, the
 * rollback body, and, once a deployment has ended, who owns the app now. The dispatcher, each
 * job and /v1/plan call the same functions, so a rule cannot differ between them.
 *
 * Pure: no I/O, no clock, no logging, no globals. Strings in the results are owned by the
 * result structs (fixed arrays sized for the largest valid value; a value that would not fit is
 * an error, never a shortened copy) or returned malloc'd where said.
 */
#ifndef AUTODEPLOY_DECIDE_H
#define AUTODEPLOY_DECIDE_H

#include "config.h"
#include "event.h"
#include "match.h"
#include "registry.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Largest valid image reference: host (255) / repository (255) : tag (128) @ digest (71). */
#define DECIDE_IMAGE_MAX 1024
#define DECIDE_REASON_MAX 512
#define DECIDE_APP_ID_MAX 256

/* The parts of a Marathon app (GET /v2/apps/{id} -> "app") the rules read. Every pointer is
 * borrowed from the cJSON tree and valid while it lives; NULL when absent. */
struct app_view {
    const cJSON *json;
    const char *id;
    const char *image;           /* container.docker.image */
    const char *version;         /* "version": moves on every write, scaling included */
    const char *config_version;  /* versionInfo.lastConfigChangeAt (else "version") */
    const char *digest;          /* label autodeploy.digest */
    const char *pushed_at;       /* label autodeploy.pushed-at */
    const char *channel;         /* label autodeploy.slack-channel */
    const char *pattern;         /* the configured label's value */
    int paused, pin, force;      /* labels autodeploy.paused / pin-digest / force = true */
    int approve;                 /* label autodeploy.approve: 1 a person approves each push, 0 not,
                                    -1 unreadable (decide_approve_label) */
    const char *approve_label;   /* its value as written (for the reason) */
    const char *approve_timeout; /* label autodeploy.approve-timeout (a duration) */
    int instances;               /* -1 when absent */
    const char *deployment;      /* first entry of "deployments", NULL when none runs */
    const char *failure_version; /* lastTaskFailure.version: the app version of the last task
                                    that failed */
};

/* Fills v from an app object; label is the configured label's name (--label). Returns -1 when
 * app is not an object. */
int decide_app_view(const cJSON *app, const char *label, struct app_view *v);

/* Compares two Marathon versions (RFC 3339 times, any number of fraction digits) as times:
 * negative, 0 or positive. Falls back to strcmp when one does not parse. */
int decide_version_cmp(const char *a, const char *b);

/* 1 for "true", "yes", "on" (any case) or "1": the label convention (autodeploy.paused=True
 * pauses). */
int decide_is_true(const char *v);

/* The label autodeploy.approve: 1 for true, yes, on or 1, 0 when absent or false, no, off or 0
 * (any case), -1 for anything else. A safety gate fails closed: "True" (what a generator
 * writes for a boolean) asks for approval, and a typo ("ture") deploys nothing, reported, rather
 * than deploying without asking. */
int decide_approve_label(const char *v);

/* How long a pending approval of app v waits for a person: its label
 * autodeploy.approve-timeout ("90s", "30m", "1h", a bare number of seconds), else def_ms
 * (--approve-timeout). Returns milliseconds, or -1 with a reason when the label does not parse
 * or lies outside 1 s .. 7 days (the push is then not deployed: an approval gate fails closed). */
long decide_approve_timeout(const struct app_view *v, long def_ms, char *reason, size_t len);

/* Marathon's app id rules (absolute, segments [a-z0-9.-] starting and ending with a letter or
 * digit, at most 255 bytes). An id outside them never came from a real Marathon and could
 * escape --app-prefix through URL dot-segment removal. Returns 1 when valid. */
int decide_app_id_valid(const char *id);

/* The rules that keep an app out of automatic deploys whatever the push: id rules, --app-prefix,
 * label autodeploy.paused. Returns NULL when the app may deploy, else the reason (static). */
const char *decide_gate(const struct config *cfg, const char *app_id, int paused);

/* The image the app should run after push p: the app's own registry host kept, the push's
 * repository and tag, the digest appended when pin. Returns 0, or -1 with a reason when the
 * current image does not parse or the result would not fit len. */
int decide_new_image(const char *current, const struct push *p, int pin, char *out, size_t len,
                     char *reason, size_t reasonlen);

/* Whether push p matches the label patterns ms (NULL: the label is gone or invalid) of an app
 * running image current (NULL: unknown). A semver: pattern accepts only versions above the
 * running one, except the running tag itself (a re-delivery or a replay of the push that
 * deployed it: the job then finds it unchanged, or follows its deployment). Returns 1 on a
 * match; *semver (may be NULL) is then 1 when a semver: pattern matched. On a miss why (may be
 * NULL) says why, "... is older than the version the app runs ..." for a downgrade. The one
 * matching rule of the dispatcher, the job and /v1/plan. */
int decide_match(const match_set *ms, const char *current, const struct push *p, char *why,
                 size_t whylen, int *semver);

/* What became of one push among those waiting for an app. */
enum decide_pick { DECIDE_PICKED = 0, DECIDE_SUPERSEDED, DECIDE_NOT_MATCHING };

/* Chooses the one push among n waiting for the app v that deploys, with the app's label
 * patterns ms applied again against what the app runs now (a semver: pattern never accepts a
 * version below the running one). Among those still matching: for a semver: pattern the
 * highest version, otherwise the newest event timestamp (a tie, or a missing timestamp, goes to
 * the later arrival, i.e. the higher index). verdict[i] and why[i] (DECIDE_REASON_MAX each)
 * receive each push's fate. Returns the winner's index, or -1 when none matches. */
int decide_choose(const match_set *ms, const struct app_view *v, const struct push *const *p,
                  size_t n, enum decide_pick *verdict, char (*why)[DECIDE_REASON_MAX]);

/* What a job does with the chosen push, after re-reading the app. */
enum decide_action {
    DECIDE_DEPLOY = 0, /* send the update */
    DECIDE_FOLLOW,     /* the app already carries this image and digest and a deployment runs:
                          follow it (our update whose answer was lost, or one from before a
                          restart) */
    DECIDE_LANDED,     /* it already carries them and nothing runs: an update whose answer was
                          lost has landed and ended */
    DECIDE_UNCHANGED,  /* it already carries them: nothing to do */
    DECIDE_SKIP,       /* not deployed (state "skipped" or "dry_run"), see reason */
};

struct decision {
    enum decide_action action;
    const char *state; /* record state for UNCHANGED/SKIP: "unchanged", "skipped", "dry_run" */
    char reason[DECIDE_REASON_MAX];
    char new_image[DECIDE_IMAGE_MAX];
    int mutable_tag; /* same image string, new digest, or digest unknown: force a pull */
    int force;       /* send the update with ?force=true (--force or label autodeploy.force) */
};

/* Applies the rules to push p and app v. sent_unanswered: an update for p went out earlier in
 * this job and its answer was lost. Returns 0; the decision is in *d. */
int decide_job(const struct config *cfg, const struct app_view *v, const struct push *p,
               int sent_unanswered, struct decision *d);

/* What the registry said of the push's tag (registry.h). */
struct verify_answer {
    enum registry_result res;
    char digest[80]; /* the tag's digest now, when res is REGISTRY_OK */
    char err[512];   /* why, otherwise; never a secret */
};

/* What to do with a push after asking the registry (--verify-push). */
enum decide_verified {
    VERIFIED_DEPLOY = 0, /* the registry has it (or verification is off) */
    VERIFIED_WARN,       /* it could not be asked, --verify-push warn: deploy, reason says so */
    VERIFIED_MISSING,    /* the tag is not in the registry: skipped */
    VERIFIED_MOVED,      /* the tag points at another digest now: this push is stale, superseded */
    VERIFIED_RETRY,      /* it could not be asked: ask again later */
    VERIFIED_FAIL,       /* it could not be asked in time, --verify-push require: failed */
};

/* How long after a job first asks a tag missing or pointing at another digest may still be the
 * registry's own lag: Docker's registry (distribution, registry/handlers/manifests.go,
 * PutManifest) sends the push notification from manifests.Put and links the tag only after it,
 * so the first question can come before the tag exists or moves. */
#define DECIDE_VERIFY_SETTLE_MS 1000

/* Applies --verify-push mode ("require", "warn", "off") to the registry's answer a about push
 * p, whose image is image (for the reason). out_of_time: no retry is possible any more.
 * settled: the registry had DECIDE_VERIFY_SETTLE_MS to link the tag; before, a missing or
 * moved tag is asked again (VERIFIED_RETRY) rather than judged. reason (DECIDE_REASON_MAX)
 * receives why, for anything but VERIFIED_DEPLOY. */
enum decide_verified decide_verify(const char *mode, const struct push *p, const char *image,
                                   const struct verify_answer *a, int out_of_time, int settled,
                                   char *reason, size_t len);

/* A push that came without a digest (Docker Hub, Quay, Nexus webhooks) takes the one the
 * registry answered for its tag (a->res REGISTRY_OK), so that it deploys, labels and is judged
 * like any other push. Returns 1 when p->digest was set, 0 when p had one or a has none. */
int decide_adopt_digest(struct push *p, const struct verify_answer *a);

/* The partial update for d: the app's full container with only docker.image changed (and
 * forcePullImage for a mutable tag), its full labels with autodeploy.digest, pushed-by,
 * deployed-at (deployed_at, RFC 3339) and pushed-at set. Never instances, never version.
 * Returns a malloc'd JSON string, NULL when out of memory. */
char *decide_update_body(const struct app_view *v, const struct decision *d, const struct push *p,
                         const char *deployed_at);

/* The labels autodeploy writes on a deploy (NULL-terminated), the ones a rollback restores. */
extern const char *const decide_own_labels[];

/* The rollback of an ended deployment: the app's current container with docker.image set back
 * to old_image and docker.forcePullImage as in old_docker (the app's container.docker before
 * our update; absent there: removed), and its current labels with every decide_own_labels key
 * put back to its value in old_labels (removed when old_labels lacks it). When old_image equals
 * new_image (a mutable tag), the image is pinned to old_digest (repo:tag@digest) so the agents
 * cannot pull the failed bits again. Everything else, instances included, stays as others may
 * have changed it. Returns a malloc'd JSON string, NULL when out of memory or when the app has
 * no container.docker. */
char *decide_rollback_body(const struct app_view *now, const char *old_image,
                           const char *old_digest, const char *new_image, const cJSON *old_docker,
                           const cJSON *old_labels);

/* Who owns the app once the deployment we followed ended without a success event. */
enum decide_owner {
    OWNER_SUCCEEDED = 0, /* our image and digest, every task of the configuration running */
    OWNER_TAKEN_OVER,    /* our image and digest, another deployment runs (follow it) */
    OWNER_FAILED,        /* our image and digest, nothing runs, tasks not converged */
    OWNER_CHANGED,       /* the app no longer carries our image or digest: someone else's */
};

/* Judges app v against the image and digest our update wrote (our_digest NULL: not checked)
 * and the version it created (our_version, from the update's answer; NULL: unknown). Counts running
 * tasks started at or after the app's configuration (versionInfo.lastConfigChangeAt, or our_version
 * when that is older): a later scale-only change keeps the configuration and is no failure. reason
 * (may be NULL) receives a one-line explanation. */
enum decide_owner decide_owner(const struct app_view *v, const char *our_image,
                               const char *our_digest, const char *our_version, char *reason,
                               size_t reasonlen);

/* ---------------------------------------------------------------- reconcile
 * What an app should run, chosen from what the registry has (reconcile.c asks, these decide).
 * A candidate is one tag of a repository some pattern of the app names. */
struct reconcile_candidate {
    const char *host;       /* registry host ("" : Docker Hub) */
    const char *repository; /* as the pattern names it */
    const char *tag;
    const char *digest; /* the tag's digest, NULL or "" when not (yet) asked */
    int64_t created_ns; /* the image config's created time; 0 when missing or the epoch */
    int exact;          /* named by a pattern without wildcards: its digest came from HEAD */
};

/* How the candidates that match an app are ordered. */
enum reconcile_mode {
    RECONCILE_NONE = 0, /* no candidate matches */
    RECONCILE_SEMVER,   /* a semver: pattern matches some: the highest version in range */
    RECONCILE_EXACT,    /* only tags named exactly match: the tag's digest decides */
    RECONCILE_NEWEST,   /* glob or regex: the newest image by created time (needs created_ns of
                           every matching candidate) */
};

/* Which candidates match the app's patterns ms when it runs image (NULL: unknown), with the
 * webhook's rule (decide_match: a semver: pattern never goes below the running version);
 * matched[i] receives 1 or 0. Returns the mode that orders them. */
enum reconcile_mode decide_reconcile_mode(const match_set *ms, const char *image,
                                          const struct reconcile_candidate *c, size_t n,
                                          unsigned char *matched);

enum reconcile_action {
    RECONCILE_NOTHING = 0, /* the app runs what the rules choose */
    RECONCILE_DEPLOY,      /* deploy candidate pick (its digest may still have to be asked) */
    RECONCILE_ADOPT,       /* the app runs the exact tag but autodeployd never recorded its
                              digest: candidate pick's digest is the baseline, nothing deploys */
};

struct reconcile_verdict {
    enum reconcile_action action;
    int pick; /* candidate index for DEPLOY and ADOPT, else -1 */
    char reason[DECIDE_REASON_MAX];
};

/* Chooses what the app should run: semver: the highest matching version, deployed when it is
 * not the running tag; exact tag: deployed when its digest differs from the one the app is
 * known to run (label autodeploy.digest, else the image's @digest, else baseline: a digest
 * remembered from an earlier adoption; none known: ADOPT); glob/regex: the newest by created time
 * (a missing created counts as older than any dated image, ties by tag name), deployed only when
 * newer than the image the app runs (when that is among the candidates). digest_label and
 * baseline may be NULL. Returns 0; the verdict is in *out. */
int decide_reconcile(const match_set *ms, const char *image, const char *digest_label,
                     const char *baseline, const struct reconcile_candidate *c, size_t n,
                     struct reconcile_verdict *out);

#endif
