/*
 * fuzz_pattern.c: libFuzzer target for the label compiler and matcher.
 *
 * Label values come from whoever can edit a Marathon app, so the compiler must survive any
 * bytes: no crash, no leak, bounded time. The first input byte picks the options, the rest is
 * split at the first newline into a label value and an image reference "host/repo:tag" to
 * match it against (plus a few fixed pushes), so both the compiler and the compiled code run.
 */
#include "match.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 4096

static void try_subject(const match_set *ms, const char *host, const char *repo, const char *tag,
                        const char *current)
{
    struct match_subject s = {host, repo, tag, current};
    char why[512];
    (void)match_test(ms, &s, why, sizeof(why));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct match_alias aliases[] = {{"mirror.local", "registry.example.com"},
                                                 {"registry.example.com", "docker.io"}};
    struct match_opts o = {0};
    char *buf, *label, *ref, *nl, *slash, *colon, err[512], desc[4096];
    char fixed[] = "strava/foo:master-1";
    const char *host = "", *repo, *tag = "latest";
    match_set *ms;

    if (size < 1 || size > MAX_INPUT) return 0;
    o.allow_repository_wildcards = data[0] & 1;
    if (data[0] & 2) {
        o.aliases = aliases;
        o.n_aliases = 2;
    }
    buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    label = buf;
    nl = strchr(buf, '\n');
    ref = nl ? nl + 1 : fixed;
    if (nl) *nl = '\0';

    ms = match_compile(label, &o, err, sizeof(err));
    if (ms) {
        (void)match_describe(ms, desc, sizeof(desc));
        try_subject(ms, "", "strava/foo", "master-1", NULL);
        try_subject(ms, "registry.example.com", "strava/api", "v1.5.0", "1.4.0");
        try_subject(ms, "mirror.local", "library/nginx", "1.25.3-rc.1", "latest");
        /* Split the fuzzed reference like Docker: [host/]repo[:tag]. */
        repo = ref;
        slash = strchr(ref, '/');
        if (slash &&
            (memchr(ref, '.', (size_t)(slash - ref)) || memchr(ref, ':', (size_t)(slash - ref)))) {
            *slash = '\0';
            host = ref;
            repo = slash + 1;
        }
        colon = strrchr(repo, ':');
        if (colon) {
            *colon = '\0';
            tag = colon + 1;
        }
        try_subject(ms, host, repo, tag, tag);
        try_subject(ms, host, repo, tag, NULL);
        match_free(ms);
    }
    free(buf);
    return 0;
}
