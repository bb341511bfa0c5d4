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

#endif
