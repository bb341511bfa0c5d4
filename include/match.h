/*
 * match.h: decides whether a pushed image should deploy into an app, from the app's label.
 *
 * An app opts in with a label whose value is one or more whitespace-separated patterns; a push
 * deploys if any of them matches. Patterns are compiled once (globs are translated to PCRE2 and
 * JIT-compiled) and kept in a cache keyed by the label value, so matching a push against many
 * apps costs one JIT match per pattern and no compilation. The pattern language itself is
 * described in the README ("Label reference"); the matcher does no I/O and no logging, callers
 * get the reasons as text.
 */
#ifndef AUTODEPLOY_MATCH_H
#define AUTODEPLOY_MATCH_H

#include <stddef.h>

/* --registry-alias NAME=HOST: the registry host NAME and HOST are the same registry. */
struct match_alias {
    const char *name;
    const char *host;
};

/* Compilation options. Only read while compiling; nothing keeps a pointer to them. */
struct match_opts {
    int allow_repository_wildcards; /* accept wildcards in the repository part */
    const struct match_alias *aliases;
    size_t n_aliases;
};

/* One push, as seen by an app. All strings are borrowed for the duration of the call.
 * current_tag only ever narrows a match (semver: no downgrade): a push that matches no pattern
 * without it matches none with it. */
struct match_subject {
    const char *host;        /* registry host the pusher used; "" or NULL if unknown */
    const char *repository;  /* e.g. "strava/foo" */
    const char *tag;         /* e.g. "master-1" */
    const char *current_tag; /* tag the app runs now; NULL or "" if unknown (no lower bound) */
};

/* One compiled label value: one or more patterns. */
typedef struct match_set match_set;

/*
 * Compiles a label value. Returns a set owned by the caller (free with match_free), or NULL with
 * err set to "column N: REASON in pattern \"PATTERN\"", where N is the 1-based column in
 * label_value of the offending character; the first invalid pattern makes the whole value invalid.
 */
match_set *match_compile(const char *label_value, const struct match_opts *o, char *err,
                         size_t errlen);

/*
 * Tests a push against every pattern of ms. Returns 1 if one matches (why then names it), 0 if
 * none does (why then gives each pattern's reason). why may be NULL. Safe to call from several
 * threads at once on the same set.
 */
int match_test(const match_set *ms, const struct match_subject *s, char *why, size_t whylen);

/*
 * Like match_test; on a match, *semver (may be NULL) is set to 1 when the pattern that matched
 * is a semver: pattern (pushes are then ordered by version, not by time), else 0.
 */
int match_test_semver(const match_set *ms, const struct match_subject *s, char *why, size_t whylen,
                      int *semver);

/*
 * Writes one line per pattern: its kind, the text as written, and what it compiled to (the
 * PCRE2 regex, anchored at both ends, and for semver the desugared range). Returns 0, or -1 if
 * buf was too small (the text is then truncated).
 */
int match_describe(const match_set *ms, char *buf, size_t len);

/* What a registry must be asked about one pattern (reconcile lists what could match). Strings
 * are borrowed from the set and live as long as it (or the caller's cache reference) does. */
struct match_target {
    const char *host;       /* registry host written in the pattern; NULL when none is */
    const char *repository; /* the repository every match names; NULL when it has wildcards
                               (--allow-repository-wildcards): no registry can be asked */
    const char *tag;        /* a glob naming exactly one tag (no wildcard, e.g. "latest");
                               NULL for wildcards, regex: and semver: patterns */
    int semver;             /* a semver: pattern */
};

/* Writes the targets of the first max patterns of ms to out; returns how many patterns ms has
 * (at most 64). Pure; safe from several threads. */
size_t match_targets(const match_set *ms, struct match_target *out, size_t max);

/* Frees a set from match_compile; match_free(NULL) does nothing. Never pass a cached set. */
void match_free(match_set *ms);

/*
 * A thread-safe, bounded cache of compiled label values, least recently used entries evicted
 * first. Invalid values are cached too, so they are not recompiled per event and their warning
 * is reported once.
 */
typedef struct match_cache match_cache;

/* Creates a cache holding at most capacity (>= 1) label values; copies o. NULL on failure. */
match_cache *match_cache_new(const struct match_opts *o, size_t capacity);

/*
 * Returns the compiled set for label_value, compiling it on first use, with one reference the
 * caller must give back with match_cache_release once done with it (the set stays valid until
 * then, even if evicted meanwhile). Returns NULL if the value is invalid, with err set as for
 * match_compile and *first_error (may be NULL) set to 1 only the first time this value is
 * reported for this app_id (NULL app_id: for this value), so callers warn once per app and
 * value rather than per event; 0 otherwise.
 */
const match_set *match_cache_get(match_cache *c, const char *label_value, const char *app_id,
                                 char *err, size_t errlen, int *first_error);

/* Gives back a reference from match_cache_get; NULL does nothing. Lock-free. */
void match_cache_release(const match_set *ms);

struct match_cache_stats {
    size_t entries, hits, misses, evictions;
};

/* Copies the cache's counters into *st. */
void match_cache_stats(match_cache *c, struct match_cache_stats *st);

/* Frees the cache. Sets still referenced stay valid until their last release. NULL: no-op. */
void match_cache_free(match_cache *c);

/*
 * The user command "autodeployd match [--allow-repository-wildcards]
 * [--registry-alias NAME=HOST]... [--current-tag TAG] PATTERN IMAGE_REF"; argv[0] is "match".
 * Prints the compiled patterns, the verdict and the reason. Returns the exit status: 0 match,
 * 1 no match, 2 invalid pattern or usage error.
 */
int match_cli_main(int argc, char **argv);

#endif
