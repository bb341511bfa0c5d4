/*
 * sources.h: the webhooks of registries other than the Distribution registry (Harbor, GitHub
 * Packages, Docker Hub, Quay, Artifactory, Nexus, Amazon ECR through EventBridge, Google
 * Artifact Registry through Pub/Sub, Azure ACR), each parsed into the same verdicts as a
 * Distribution notification (event.h), so the webhook handler treats them all alike.
 *
 * Pure code: no I/O, no logging, no globals; thread-safe (cJSON's allocator aside, as for
 * event.h). Each parser checks the whole body before its first callback: a body that is not
 * JSON or not shaped like that source's payload makes no call and returns -1 with a one-line
 * reason (the caller answers 400). A well-formed payload that is not a tagged image push (a
 * delete, a scan, a ping, a non-container package, a push by digest) yields one EVENT_IGNORED
 * item, because those senders re-send anything answered with an error. Otherwise the return
 * value is the number of items passed to fn.
 *
 * Where each field comes from is written next to each parser in sources.c, with the
 * documentation it follows; tests/fixtures/webhooks/SOURCES names where the fixtures come from.
 */
#ifndef AUTODEPLOY_SOURCES_H
#define AUTODEPLOY_SOURCES_H

#include "event.h"

#include <stddef.h>

/* event: what the payload alone cannot say: GitHub's X-GitHub-Event header; for Artifactory the
 * Docker access method (--artifactory-docker-access: "repository-path", the default when NULL,
 * "subdomain" or "port"); NULL otherwise or when absent. */
typedef int (*source_parse_fn)(const char *body, size_t len, const char *event, event_fn fn,
                               void *ctx, char *err, size_t errlen);

/* How a source's requests are authenticated (checked by the server, signature.h). */
enum source_auth {
    AUTH_BEARER = 0, /* Authorization: Bearer <token> (or the bare token) */
    AUTH_GITHUB,     /* X-Hub-Signature-256 */
    AUTH_NEXUS,      /* X-Nexus-Webhook-Signature */
    AUTH_JFROG,      /* X-JFrog-Event-Auth */
    AUTH_PATH,       /* /v1/webhooks/<name>/<secret> */
};

struct source {
    const char *name; /* path segment, struct push.source and the metrics' source label */
    source_parse_fn parse;
    enum source_auth auth;
};

/* The sources, in a fixed order; source_count() of them. */
extern const struct source source_table[];
size_t source_count(void);

/* The source named name, or NULL. */
const struct source *source_find(const char *name);

/* The parsers. Each sets push.source to its own name. */
int source_parse_harbor(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                        char *err, size_t errlen);
int source_parse_github(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                        char *err, size_t errlen);
int source_parse_dockerhub(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                           char *err, size_t errlen);
int source_parse_quay(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                      char *err, size_t errlen);
int source_parse_artifactory(const char *body, size_t len, const char *event, event_fn fn,
                             void *ctx, char *err, size_t errlen);
int source_parse_nexus(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                       char *err, size_t errlen);
int source_parse_ecr(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                     char *err, size_t errlen);
int source_parse_gar(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                     char *err, size_t errlen);
/* ACR: a Distribution envelope or one bare Distribution event object. */
int source_parse_acr(const char *body, size_t len, const char *event, event_fn fn, void *ctx,
                     char *err, size_t errlen);

#endif
