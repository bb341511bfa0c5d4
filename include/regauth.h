/*
 * regauth.h: the pure half of the registry client that checks every push before it is deployed
 * (registry HTTP API V2, as the Distribution spec and the OCI distribution-spec define it).
 *
 * It reads what a registry says in its headers and bodies (how to authenticate, where the next
 * page of tags is, why it refused), reads Docker's config.json credentials, and builds the token
 * request URL. The I/O half sends the requests; keeping the parsing here means all of it is unit
 * tested and fuzzed without a network.
 *
 * Conventions for every function below:
 *  - No I/O, no logging, no globals of its own: every function is reentrant and may run on any
 *    thread at once with others, as long as the outputs differ. The JSON readers use cJSON,
 *    which records its last parse error in a global of its own; nothing here reads it back.
 *  - Inputs from the network are (pointer, length) and need not be NUL-terminated; no byte past
 *    the length is read. Other strings are NUL-terminated.
 *  - Sizes are in bytes and include the terminating NUL. A value that does not fit its output
 *    is an error, never cut short (the one exception, a registry's human message, says so).
 *  - Failure is -1 with a one-line reason in err (errlen bytes; err may be NULL or errlen 0
 *    when the caller does not want it). Reasons name byte offsets, fields and registry keys,
 *    never a password, identity token or bearer token, so they can be logged as they are.
 *  - Outputs are unspecified after a failure, except that credentials are always wiped.
 */
#ifndef AUTODEPLOY_REGAUTH_H
#define AUTODEPLOY_REGAUTH_H

#include <stddef.h>

#define REGAUTH_REALM_MAX 1024     /* a token endpoint URL, or a Basic realm's label */
#define REGAUTH_SERVICE_MAX 256    /* e.g. "registry.docker.io", "harbor-registry" */
#define REGAUTH_SCOPE_MAX 1024     /* Harbor joins several scopes with spaces */
#define REGAUTH_URL_MAX 2048       /* next-page and token request URLs */
#define REGAUTH_USER_MAX 256       /* a registry user name */
#define REGAUTH_SECRET_MAX 8192    /* a password (GCR's _json_key is a whole key file) or token */
#define REGAUTH_TOKEN_MAX 16384    /* a bearer token from the token endpoint (JWTs run to 2 KiB) */
#define REGAUTH_EXPIRES_DEFAULT 60 /* seconds, when the token answer gives no expires_in */
#define REGAUTH_EXPIRES_MAX 86400  /* seconds; a longer lifetime is lowered to this */
#define REGAUTH_ERRCODE_MAX 64     /* "MANIFEST_UNKNOWN" */
#define REGAUTH_ERRMSG_MAX 512     /* a registry's human-readable message */

/* ---- WWW-Authenticate (RFC 9110 section 11.6.1, formerly RFC 7235 section 4.1) ---- */

enum regauth_scheme { REGAUTH_BASIC = 1, REGAUTH_BEARER = 2 };

/* One challenge, copied out (owns no pointers). Parameters the registry did not send are "". */
struct regauth_challenge {
    enum regauth_scheme scheme;
    char realm[REGAUTH_REALM_MAX]; /* Bearer: the token endpoint URL, never ""; Basic: a label */
    char service[REGAUTH_SERVICE_MAX]; /* GCP's Artifact Registry sends none on /v2/ */
    char scope[REGAUTH_SCOPE_MAX];     /* as sent: "repository:team/app:pull", maybe several */
};

/* Parses the value of a WWW-Authenticate header (hdr, len bytes): one or more comma-separated
 * challenges, each a scheme (matched case-insensitively) followed by a token68 or by
 * comma-separated parameters key=token or key="quoted string" (backslash escapes, commas
 * inside quotes, whitespace around '=' and ',' tolerated; names matched case-insensitively).
 * Several header lines may be joined with ", " first, as RFC 9110 allows.
 *
 * Fills out with the first Bearer challenge, or else the first Basic one; challenges with other
 * schemes are checked for syntax and skipped. Returns 0, or -1 when the header is malformed,
 * a parameter appears twice in a challenge, realm/service/scope does not fit, no Basic or
 * Bearer challenge is offered, or the Bearer challenge has no realm. */
int regauth_parse_challenge(const char *hdr, size_t len, struct regauth_challenge *out, char *err,
                            size_t errlen);

/* ---- Link (RFC 8288) pagination of GET /v2/<name>/tags/list ---- */

/* Parses the value of a Link header (hdr, len bytes): comma-separated "<target>; param..."
 * entries whose rel (quoted or not, possibly a space-separated list, compared
 * case-insensitively) may name "next"; other parameters are ignored. Copies the target of the
 * rel="next" entry, as sent, into url (urllen bytes; REGAUTH_URL_MAX is enough).
 * Returns 1 when there is a next page, 0 when there is none (the last page), -1 when the header
 * is malformed, names more than one next page, or the target does not fit. */
int regauth_link_next(const char *hdr, size_t len, char *url, size_t urllen, char *err,
                      size_t errlen);

/* Resolves ref (a next-page target: "/v2/team/app/tags/list?n=100&last=x", "//host/...", or
 * "https://host[:port]/...") against base, the registry's "http[s]://host[:port]" (one trailing
 * '/' allowed), into out (outlen bytes) as base's scheme://host[:port] + path and query.
 * Refused (-1): a target on another host, port or scheme (a registry must not send the
 * credentials elsewhere), one with user information ("https://reg@evil/"), a path without a
 * leading '/', a fragment, or bytes that have no place in a URL. Returns 0 otherwise. */
int regauth_resolve_url(const char *base, const char *ref, char *out, size_t outlen, char *err,
                        size_t errlen);

/* ---- Docker's config.json ---- */

/* Credentials for one registry. Secrets: wipe with regauth_cred_wipe when done. */
struct regauth_cred {
    char username[REGAUTH_USER_MAX];        /* "" when only an identity token is given */
    char password[REGAUTH_SECRET_MAX];      /* may be "" */
    char identitytoken[REGAUTH_SECRET_MAX]; /* an OAuth2 refresh token, or "" */
};

/* Looks up host ("registry.example:5000", "ghcr.io", "docker.io", ...) in the "auths" object of
 * a Docker config.json (json, len bytes). A key matches when it equals host exactly, or when it
 * names the same host[:port] once a leading "http://" or "https://" and any path ("/v1/") are
 * removed and case is ignored; an exact key wins, then the first match in file order. Docker
 * Hub is one registry under all its names: docker.io, index.docker.io, registry-1.docker.io
 * and the key "https://index.docker.io/v1/". An entry gives "auth" (base64 of user:password,
 * split at the first ':'; padding optional; it wins over "username"/"password" as in Docker),
 * or "username" and "password", and/or "identitytoken".
 *
 * Returns 1 with out filled, 0 when config.json has no entry for host (out zeroed), -1 when the
 * file is not JSON, the entry is malformed or holds no credentials (as when a credsStore or
 * credHelpers keeps them), or a value does not fit (out wiped). The parsed copy of the file is
 * wiped before it is freed; the caller still owns, and should wipe, json itself. */
int regauth_config_lookup(const char *json, size_t len, const char *host, struct regauth_cred *out,
                          char *err, size_t errlen);

/* Overwrites every byte of c with zeros in a way the compiler cannot drop (OPENSSL_cleanse).
 * c may be NULL. */
void regauth_cred_wipe(struct regauth_cred *c);

/* ---- Token endpoint (Distribution spec: docs/spec/auth/token.md) ---- */

/* Writes the scope that allows pulling repository ("team/app") into out: "repository:team/app:
 * pull". Returns 0, or -1 when repository breaks Docker's grammar or does not fit. */
int regauth_pull_scope(const char *repository, char *out, size_t outlen, char *err, size_t errlen);

/* Builds the token request URL into out: realm + "?service=<service>&scope=<scope>", with '&'
 * instead of '?' when realm already has a query. Both values are percent-encoded (all but
 * A-Z a-z 0-9 - . _ ~); service is left out when NULL or "", and scope may be NULL, "" or a
 * space-separated list, each giving its own scope= parameter as Docker's clients send them.
 * realm must be an http:// or https:// URL without spaces, quotes or a fragment.
 * Returns 0, or -1 when realm is not such a URL or the result does not fit. */
int regauth_token_url(const char *realm, const char *service, const char *scope, char *out,
                      size_t outlen, char *err, size_t errlen);

/* Parses the token endpoint's JSON answer (body, len bytes): {"token": "...", "access_token":
 * "...", "expires_in": 300, "issued_at": "..."}. Either token field will do ("access_token"
 * wins when both are non-empty, as in Docker's client). *token receives a malloc'd copy that
 * the caller owns and releases with regauth_secret_free; *expires_in the lifetime in seconds
 * from now: expires_in as sent (fractions dropped), REGAUTH_EXPIRES_DEFAULT when absent or
 * below 1, at most REGAUTH_EXPIRES_MAX. issued_at is ignored: the server's clock is not ours,
 * so the caller counts the lifetime from when the answer arrived and renews a little early.
 * Returns 0, or -1 (with *token NULL) when the body is not such an object, no token is given,
 * or the token is too long or holds bytes other than visible ASCII (it goes into a header). */
int regauth_parse_token(const char *body, size_t len, char **token, long *expires_in, char *err,
                        size_t errlen);

/* Wipes a NUL-terminated secret (OPENSSL_cleanse) and frees it. s may be NULL. */
void regauth_secret_free(char *s);

/* ---- Registry error bodies (Distribution spec: "Errors") ---- */

struct regauth_error {
    char code[REGAUTH_ERRCODE_MAX];   /* "MANIFEST_UNKNOWN", "UNAUTHORIZED", ... */
    char message[REGAUTH_ERRMSG_MAX]; /* "" when absent; bytes outside printable ASCII become
                                       * '?'; a longer message is cut and ends in "..." */
    int message_cut;                  /* 1 when message was cut */
};

/* Reads the first entry of {"errors":[{"code": ..., "message": ..., "detail": ...}, ...]}
 * (body, len bytes) into out. Returns 0, or -1 when the body is not such an object, the list is
 * empty, or the code is missing, too long or not made of [A-Za-z0-9_.-]. */
int regauth_parse_errors(const char *body, size_t len, struct regauth_error *out, char *err,
                         size_t errlen);

enum regauth_error_kind {
    REGAUTH_ERR_OTHER = 0,
    REGAUTH_ERR_NOT_FOUND, /* MANIFEST_UNKNOWN, NAME_UNKNOWN, BLOB_UNKNOWN: not in the registry */
    REGAUTH_ERR_AUTH,      /* UNAUTHORIZED, DENIED: credentials missing or refused */
    REGAUTH_ERR_RATE,      /* TOOMANYREQUESTS: see Retry-After */
};

/* Classifies an error code (NULL gives OTHER). Docker Hub answers UNAUTHORIZED also for a
 * repository that does not exist, so AUTH does not prove the image is there. */
enum regauth_error_kind regauth_error_kind(const char *code);

#endif
