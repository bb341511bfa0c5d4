/*
 * semver.h: Semantic Versioning 2.0.0 versions, their precedence, and version ranges.
 *
 * The `semver:` label patterns deploy a pushed tag only when it is a version inside a range the
 * app chose and newer than what the app runs. This module holds the parts of that decision that
 * are about versions alone, so they can be tested against the specification without any registry
 * or Marathon around them. It does no I/O and keeps no global state; every function is safe to
 * call from several threads on different objects, and on the same range concurrently.
 */
#ifndef AUTODEPLOY_SEMVER_H
#define AUTODEPLOY_SEMVER_H

#include <stddef.h>
#include <stdint.h>

/* Longest version text accepted (a Docker tag is at most 128 characters). */
#define SEMVER_MAX_LEN 128

/* One parsed version. pre and build hold the dot-separated identifiers after '-' and '+',
 * or "" when absent. Build metadata is kept for display but never affects precedence. */
struct semver {
    uint64_t major, minor, patch;
    char pre[SEMVER_MAX_LEN + 1];
    char build[SEMVER_MAX_LEN + 1];
};

/*
 * Parses text strictly as MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] per semver 2.0.0: no leading
 * zeros in numbers or numeric pre-release identifiers, no empty identifiers, no surrounding
 * space. When allow_v is non-zero one leading 'v' is accepted (tags like "v1.2.3").
 * Returns 0 and fills *out, or -1 with a reason in err (which may be NULL).
 */
int semver_parse(const char *text, int allow_v, struct semver *out, char *err, size_t errlen);

/* Compares by semver 2.0.0 precedence: negative if a < b, 0 if equal, positive if a > b. */
int semver_compare(const struct semver *a, const struct semver *b);

/*
 * A compiled range. Grammar (no whitespace; the label value is split on whitespace first):
 *   range      = set *( "||" set )            any set may match
 *   set        = comparator *( "," comparator ) every comparator must match
 *   comparator = "*" | [ "=" | ">" | ">=" | "<" | "<=" | "^" | "~" ] partial
 *   partial    = [ "v" ] xr [ "." xr [ "." xr [ "-" pre ] [ "+" build ] ] ]
 *   xr         = number | "x" | "X" | "*"
 * with the npm meanings of ^, ~ and partial versions (^1.4 = >=1.4.0,<2.0.0; ~1.4.2 =
 * >=1.4.2,<1.5.0; 1.2 = >=1.2.0,<1.3.0; ^0.2.3 = >=0.2.3,<0.3.0).
 * A version with a pre-release satisfies a set only if some comparator of that set names a
 * pre-release on the same MAJOR.MINOR.PATCH (>=1.5.0-rc.1 admits 1.5.0-rc.2, not 1.6.0-rc.1).
 */
typedef struct semver_range semver_range;

/*
 * Compiles text into a range owned by the caller (free with semver_range_free). Returns NULL
 * with a reason in err and, when err_offset is not NULL, the 0-based offset of the problem.
 */
semver_range *semver_range_new(const char *text, char *err, size_t errlen, size_t *err_offset);

/*
 * Returns 1 if v satisfies r, 0 if not; on 0, why (may be NULL) says whether v is outside the
 * range or is a pre-release the range does not name.
 */
int semver_range_test(const semver_range *r, const struct semver *v, char *why, size_t whylen);

/* Writes the desugared range (e.g. ">=1.4.0,<2.0.0") into buf; returns 0, or -1 if truncated. */
int semver_range_format(const semver_range *r, char *buf, size_t len);

/* Frees r; semver_range_free(NULL) does nothing. */
void semver_range_free(semver_range *r);

#endif
