/*
 * reference.h: Docker's image reference grammar (distribution/reference), as plain validators.
 *
 * An event whose repository, tag or digest fails these checks is rejected and never deployed:
 * the strings end up in Marathon app definitions, log lines and Slack messages, so anything
 * outside the grammar is treated as hostile rather than repaired.
 */
#ifndef AUTODEPLOY_REFERENCE_H
#define AUTODEPLOY_REFERENCE_H

#include <stddef.h>

#define REF_NAME_MAX 255 /* repository path, as Docker limits it */
#define REF_TAG_MAX 128
/* Longest valid [host/]repository[:tag][@digest] (255 + 1 + 255 + 1 + 128 + 1 + 71), rounded up. */
#define REF_IMAGE_MAX 1024

/* Repository path: lower-case components [a-z0-9]+ joined by '.', '_', '__' or runs of '-',
 * separated by '/'; at most 255 bytes. Returns 1 when valid. */
int ref_valid_repository(const char *s);

/* Tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. Returns 1 when valid. */
int ref_valid_tag(const char *s);

/* Digest: "sha256:" followed by exactly 64 lower-case hex digits. Returns 1 when valid. */
int ref_valid_digest(const char *s);

/* Registry host: DNS-style name or IPv4, or [IPv6], with an optional :port. Returns 1 when
 * valid. */
int ref_valid_host(const char *s);

/* An image reference split into its parts: [host/]repository[:tag][@digest]. */
struct image_ref {
    char host[256];       /* "" when the reference names no registry (Docker Hub) */
    char repository[256]; /* as written: "nginx" stays "nginx" (no "library/" added) */
    char tag[129];        /* "" when absent */
    char digest[72];      /* "" when absent */
};

/* Splits s per Docker's rules: the first component is a host when it contains '.' or ':' or
 * is "localhost" and more components follow. Returns 0 when every part is valid, -1 otherwise
 * (out is then unspecified). */
int ref_parse_image(const char *s, struct image_ref *out);

/* Writes [host/]repository[:tag][@digest] into out. Returns 0, or -1 when it does not fit. */
int ref_format_image(const struct image_ref *r, char *out, size_t len);

#endif
