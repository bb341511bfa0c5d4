/*
 * signature.h: how each webhook source proves who sent a request (HMACs of the body, static
 * headers, secrets in the URL), checked with OpenSSL's libcrypto and compared in constant time.
 *
 * Pure code: no I/O, no logging, no globals; thread-safe. Nothing here ever copies a secret
 * anywhere: callers pass the configured secret and what the request carried, and get 1 or 0.
 */
#ifndef AUTODEPLOY_SIGNATURE_H
#define AUTODEPLOY_SIGNATURE_H

#include <stddef.h>

/* 1 when the a and b byte strings are equal. The time taken depends on neither their contents
 * nor where they differ (both are hashed with SHA-256 and the hashes compared with
 * CRYPTO_memcmp), only on their lengths. NULL compares equal to nothing. */
int sig_equal(const char *a, size_t alen, const char *b, size_t blen);

/* 1 when hex (hexlen characters, either case) is the HMAC of body under key, with md "sha256"
 * or "sha1". 0 for any other md, a wrong length or a non-hex character. */
int sig_hmac_hex_ok(const char *md, const char *key, const char *body, size_t len, const char *hex,
                    size_t hexlen);

/* GitHub: header X-Hub-Signature-256 is "sha256=<hex HMAC-SHA256 of the raw body>" under the
 * webhook secret (docs.github.com, "Validating webhook deliveries"). header NULL: 0. */
int sig_github_ok(const char *secret, const char *body, size_t len, const char *header);

/* Sonatype Nexus 3: header X-Nexus-Webhook-Signature is the hex HMAC-SHA1 of the raw body
 * under the webhook's secret key (help.sonatype.com, "Webhooks: Working with HMAC payloads"). */
int sig_nexus_ok(const char *secret, const char *body, size_t len, const char *header);

/* JFrog Artifactory: header X-JFrog-Event-Auth carries the webhook's secret as is or, with
 * "Use secret for payload signing" on, the hex HMAC-SHA256 of the body under it. Either is
 * accepted. */
int sig_jfrog_ok(const char *secret, const char *body, size_t len, const char *header);

/* A static header: "Bearer <token>" (scheme case-insensitive, blanks trimmed) or, with
 * allow_bare, the token alone (Harbor's and EventBridge's "Auth Header" send what was typed). */
int sig_bearer_ok(const char *header, const char *token, int allow_bare);

#endif
