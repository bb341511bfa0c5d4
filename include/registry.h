/*
 * registry.h: a client for the registry HTTP API V2 (the OCI Distribution spec, as Docker
 * Hub, Harbor, GHCR, Quay, GitLab and Debian's docker-registry serve it).
 *
 * It answers the questions a deployer asks before trusting a notification: what digest does a
 * tag point at now (HEAD of the manifest, with the Accept header listing the OCI and Docker
 * manifest and index types), which tags does a repository have (tags/list, following
 * `Link: <...>; rel="next"` pages), and when was an image built (the config blob's `created`).
 *
 * Authentication as registries do it: none; HTTP Basic; and the Bearer token flow (401 with
 * `WWW-Authenticate: Bearer realm=...,service=...,scope=...` -> GET the realm with Basic
 * credentials or anonymously -> token -> retry), tokens cached per registry and scope until
 * their expires_in. Credentials come from a Docker config.json (--registry-auth); they never
 * reach a log line, an error message, a metric or an answer of autodeployd's.
 *
 * Transport: HTTPS with the system's CAs (or --registry-ca); hosts named by
 * --insecure-registry and loopback may also speak plain HTTP, used when HTTPS fails for another
 * reason than the certificate (as dockerd does); --registry-url HOST=URL maps a
 * registry host to the URL to use. 5xx, 429 (honouring Retry-After) and lost answers are
 * retried with backoff within --registry-timeout.
 *
 * Thread-safety: every function may be called from any thread; the token cache has its own
 * lock and no lock is held across network I/O.
 */
#ifndef AUTODEPLOY_REGISTRY_H
#define AUTODEPLOY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

struct registry;

/* What became of a question to the registry. */
enum registry_result {
    REGISTRY_OK = 0,
    REGISTRY_NOT_FOUND,   /* 404: MANIFEST_UNKNOWN, NAME_UNKNOWN, ... */
    REGISTRY_AUTH,        /* the registry refused our credentials (or wants some we lack) */
    REGISTRY_UNREACHABLE, /* no answer, or 5xx/429 still after the retries */
    REGISTRY_ERROR,       /* any other answer, or an answer that does not parse */
};

/* The client's settings; strings are copied by registry_new. */
struct registry_opts {
    const char *auth_file;       /* Docker config.json with "auths"; NULL: no credentials */
    const char *ca_file;         /* PEM bundle for https registries; NULL: the system's */
    const char *const *insecure; /* hosts ("host[:port]") reached over plain http */
    size_t n_insecure;
    const char *const *urls; /* "HOST=URL": the URL to use for a registry host */
    size_t n_urls;
    long timeout_ms; /* bound on one question, retries included; 0: 30 s */
};

/* NULL with a reason (never a secret) in err when the auth file cannot be read or parsed. */
struct registry *registry_new(const struct registry_opts *o, char *err, size_t errlen);

/* Wipes every credential and cached token, then frees. NULL: no-op. */
void registry_free(struct registry *r);

/* From now on, questions asked by the calling thread give up as soon as fn(ctx) returns nonzero
 * (polled while a request runs, about once a second when the registry is silent, and during
 * the waits between retries), failing as unreachable with "abandoned": a stop need not wait
 * out --registry-timeout. fn NULL: never. Thread-local; fn is called on this thread only. */
void registry_abandon_when(int (*fn)(void *ctx), void *ctx);

/* 1 when the calling thread's questions are to be given up now (registry_abandon_when). */
int registry_abandoned(void);

/* The URL autodeployd uses for a registry host ("" -> Docker Hub), e.g.
 * "https://registry-1.docker.io" or "http://127.0.0.1:5000". 0, or -1 when it does not fit. */
int registry_base_url(const struct registry *r, const char *host, char *out, size_t len);

/* GET /v2/: whether the registry answers and accepts our credentials (a Bearer challenge
 * without scope is answered with a token for no repository). */
enum registry_result registry_ping(struct registry *r, const char *host, char *err, size_t errlen);

/* The digest ("sha256:...") that repository:reference points at now, from HEAD
 * /v2/<repository>/manifests/<reference> (a GET only when the registry's HEAD answer lacks
 * Docker-Content-Digest). err receives a one-line reason for anything but REGISTRY_OK. */
enum registry_result registry_manifest_digest(struct registry *r, const char *host,
                                              const char *repository, const char *reference,
                                              char *digest, size_t digest_len, char *err,
                                              size_t errlen);

/* Every tag of repository, all pages followed (page_size: the n parameter, 0 for the
 * registry's default). *tags is a malloc'd array of malloc'd strings (free with
 * registry_tags_free), in the registry's order. */
enum registry_result registry_tags(struct registry *r, const char *host, const char *repository,
                                   int page_size, char ***tags, size_t *n, char *err,
                                   size_t errlen);
void registry_tags_free(char **tags, size_t n);

/* The image's build time: the manifest of digest (for an index, its first linux/amd64 child,
 * else its first child), its config blob, and that blob's "created" (RFC 3339) as Unix ns; 0
 * when the image states none or states the epoch. */
enum registry_result registry_image_created(struct registry *r, const char *host,
                                            const char *repository, const char *digest,
                                            int64_t *created_ns, char *err, size_t errlen);

/* "ok", "not found", "credentials refused", "unreachable", "error". */
const char *registry_result_name(enum registry_result res);

/* Declares the client's metric families (requests by result, the last RateLimit-Remaining). */
void registry_metrics_declare(void);

/* The user command "autodeployd registry [--registry-auth FILE] [--insecure-registry HOST]...
 * [--registry-url HOST=URL]... [--registry-ca FILE] digest|tags|created IMAGE"; argv[0] is
 * "registry". Also "ping HOST". Prints the answer; exit status 0 ok, 1 not found, 2 usage, 3
 * credentials refused, 4 unreachable, 5 other error. */
int registry_cli_main(int argc, char **argv);

#endif
