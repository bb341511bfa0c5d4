/*
 * slackact.h: Slack interactivity requests (a click on an Approve or Reject button), verified
 * and parsed.
 *
 * Slack POSTs application/x-www-form-urlencoded "payload=<JSON>" to the app's interactivity
 * Request URL and signs it: X-Slack-Signature is "v0=" + hex HMAC-SHA256(signing secret,
 * "v0:" + X-Slack-Request-Timestamp + ":" + raw body)
 * (https://api.slack.com/authentication/verifying-requests-from-slack). A request whose
 * timestamp is more than 5 minutes away from now is refused, the signature is compared in
 * constant time (CRYPTO_memcmp), and a signature seen before within those 5 minutes is a replay.
 *
 * slackact_verify and slackact_parse are pure (no I/O, no clock, no globals); the replay
 * memory is a small thread-safe structure. Nothing here logs: the secret never leaves the
 * verification.
 */
#ifndef AUTODEPLOY_SLACKACT_H
#define AUTODEPLOY_SLACKACT_H

#include <stddef.h>
#include <stdint.h>

#define SLACKACT_WINDOW_S 300 /* 5 minutes either side of now */

enum slackact_verdict {
    SLACKACT_OK = 0,
    SLACKACT_BAD_SIGNATURE, /* missing, malformed or wrong signature, or a missing timestamp */
    SLACKACT_STALE,         /* timestamp more than SLACKACT_WINDOW_S away from now_s */
};

/* Checks the signature sig ("v0=<64 hex>") of body (len bytes) sent at ts (decimal Unix
 * seconds) against secret, at now_s (Unix seconds). */
enum slackact_verdict slackact_verify(const char *secret, const char *ts, const char *sig,
                                      const char *body, size_t len, int64_t now_s);

/* One button click. */
struct slackact {
    char action_id[16]; /* "approve" or "reject" */
    char value[64];     /* the approval id the button carries */
    char user[128];     /* user.name, else user.username, else user.id; as sent (escape it) */
};

/* Parses a verified body: form-decodes payload=, requires type block_actions and a first
 * action whose action_id is approve or reject. 0, or -1 with a reason in err. */
int slackact_parse(const char *body, size_t len, struct slackact *out, char *err, size_t errlen);

/* Signatures seen within the window, to refuse replays. */
struct slackact_seen;
struct slackact_seen *slackact_seen_new(void);
void slackact_seen_free(struct slackact_seen *s);

/* 1 when sig was seen before (a replay); otherwise remembers it with its timestamp ts_s and
 * returns 0. Entries older than the window (against now_s) are forgotten; when the memory is
 * full the request is treated as a replay (refused) rather than forgetting a live signature.
 * Thread-safe. */
int slackact_seen_check(struct slackact_seen *s, const char *sig, int64_t ts_s, int64_t now_s);

#endif
