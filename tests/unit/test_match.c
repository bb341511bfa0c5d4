/*
 * test_match.c: the pattern matcher against the case table in tests/fixtures/match_cases.tsv,
 * plus what a table cannot show: error messages, reasons, the cache's sharing, warn-once and
 * eviction rules under concurrent use, and the exit codes of "autodeployd match".
 */
#include "match.h"
#include "testlib.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#define MAX_ALIASES 8

/* Splits line in place on tabs; returns the number of fields. */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == '\t') {
            *p = '\0';
            f[n++] = p + 1;
        }
    }
    return n;
}

static const char *dash_empty(const char *s)
{
    return strcmp(s, "-") == 0 ? "" : s;
}

/* Fills o from "-" or "wild,alias:NAME=HOST,..."; modifies spec. */
static void parse_opts(char *spec, struct match_opts *o, struct match_alias *al)
{
    memset(o, 0, sizeof(*o));
    o->aliases = al;
    if (strcmp(spec, "-") == 0) return;
    for (char *p = spec; p && *p;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (strcmp(p, "wild") == 0) {
            o->allow_repository_wildcards = 1;
        } else if (strncmp(p, "alias:", 6) == 0 && o->n_aliases < MAX_ALIASES) {
            char *eq = strchr(p + 6, '=');
            if (eq) {
                *eq = '\0';
                al[o->n_aliases].name = p + 6;
                al[o->n_aliases].host = eq + 1;
                o->n_aliases++;
            }
        }
        p = comma ? comma + 1 : NULL;
    }
}

static void run_table(void)
{
    size_t len = 0;
    char *data = tl_read_file("tests/fixtures/match_cases.tsv", &len);
    int cases = 0, lineno = 0;

    CHECK(data != NULL, "cannot read tests/fixtures/match_cases.tsv (run from the repo root)");
    if (!data) return;
    for (char *line = data; line && *line;) {
        char *nl = strchr(line, '\n'), *f[9];
        struct match_alias al[MAX_ALIASES];
        struct match_opts o;
        char err[512], why[2048];
        int nf;

        if (nl) *nl = '\0';
        lineno++;
        if (line[0] == '#' || line[0] == '\0') {
            line = nl ? nl + 1 : NULL;
            continue;
        }
        nf = split_tabs(line, f, 9);
        CHECK(nf == 8, "line %d: %d fields, want 8", lineno, nf);
        if (nf == 8) {
            const char *pattern = f[0], *want = f[6], *note = f[7];
            struct match_subject s = {dash_empty(f[2]), dash_empty(f[3]), dash_empty(f[4]),
                                      strcmp(f[5], "-") == 0 ? NULL : f[5]};
            match_set *ms;

            parse_opts(f[1], &o, al);
            cases++;
            err[0] = '\0';
            ms = match_compile(pattern, &o, err, sizeof(err));
            if (strncmp(want, "invalid", 7) == 0) {
                CHECK(ms == NULL, "line %d (%s): \"%s\" compiled, want invalid", lineno, note,
                      pattern);
                if (!ms && want[7] == '@') {
                    long col = strtol(want + 8, NULL, 10), got = -1;
                    if (strncmp(err, "column ", 7) == 0) got = strtol(err + 7, NULL, 10);
                    CHECK(got == col, "line %d (%s): error at column %ld, want %ld: %s", lineno,
                          note, got, col, err);
                }
            } else {
                int expect = strcmp(want, "match") == 0, got;
                CHECK(ms != NULL, "line %d (%s): \"%s\" invalid: %s", lineno, note, pattern, err);
                if (ms) {
                    got = match_test(ms, &s, why, sizeof(why));
                    CHECK(got == expect, "line %d (%s): \"%s\" vs %s/%s:%s: got %s, want %s (%s)",
                          lineno, note, pattern, s.host, s.repository, s.tag,
                          got ? "match" : "nomatch", want, why);
                }
            }
            match_free(ms);
        }
        line = nl ? nl + 1 : NULL;
    }
    CHECK(cases >= 80, "only %d cases in the table, want at least 80", cases);
    free(data);
}

static void test_messages(void)
{
    struct match_opts o = {0};
    char err[512], why[1024], desc[2048];
    match_set *ms;
    struct match_subject s = {"", "strava/foo", "main-1", NULL};

    ms = match_compile("strava/foo:ok strava/foo:[a-", &o, err, sizeof(err));
    CHECK(ms == NULL, "invalid second pattern must invalidate the value");
    CHECK_STR(err, "column 26: unterminated '[' in pattern \"strava/foo:[a-\"", "error text");

    ms = match_compile("strava/foo:master* strava/foo:release-*", &o, err, sizeof(err));
    CHECK(ms != NULL, "compile: %s", err);
    if (!ms) return;
    CHECK(match_test(ms, &s, why, sizeof(why)) == 0, "main-1 must not match");
    CHECK(strstr(why, "pattern \"strava/foo:master*\": \"strava/foo:main-1\" does not match") &&
              strstr(why, "pattern \"strava/foo:release-*\""),
          "why names every pattern: %s", why);
    s.tag = "release-2";
    CHECK(match_test(ms, &s, why, sizeof(why)) == 1, "release-2 must match");
    CHECK_STR(why, "matched by pattern \"strava/foo:release-*\"", "why on match");
    CHECK(match_test(ms, &s, NULL, 0) == 1, "why may be NULL");
    s.host = NULL;
    CHECK(match_test(ms, &s, why, 8) == 1, "NULL host, short why buffer");
    CHECK(strlen(why) < 8, "why truncated to its buffer");
    CHECK(match_describe(ms, desc, sizeof(desc)) == 0, "describe fits");
    CHECK(strstr(desc, "regex ^strava/foo:master[^/]*$ against repository:tag") != NULL,
          "describe shows the regex: %s", desc);
    CHECK(match_describe(ms, desc, 10) == -1, "describe reports truncation");
    match_free(ms);

    ms = match_compile("semver:strava/api:^1.4", &o, err, sizeof(err));
    CHECK(ms != NULL, "compile semver: %s", err);
    if (ms) {
        struct match_subject v = {"", "strava/api", "1.5.0-rc.1", NULL};
        CHECK(match_test(ms, &v, why, sizeof(why)) == 0, "rc not named");
        CHECK(strstr(why, "is a pre-release") != NULL, "pre-release reason: %s", why);
        v.tag = "1.5.0";
        v.current_tag = "1.5.0";
        CHECK(match_test(ms, &v, why, sizeof(why)) == 0, "same version");
        CHECK(strstr(why, "not newer than the current tag 1.5.0") != NULL, "reason: %s", why);
        v.current_tag = "";
        CHECK(match_test(ms, &v, why, sizeof(why)) == 1, "empty current tag means unknown");
        match_describe(ms, desc, sizeof(desc));
        CHECK(strstr(desc, ">=1.4.0,<2.0.0") != NULL, "describe shows the range: %s", desc);
        match_free(ms);
    }
    match_free(NULL);
    CHECK(match_test(NULL, &s, why, sizeof(why)) == 0, "NULL set never matches");
    CHECK(match_compile(NULL, &o, err, sizeof(err)) == NULL, "NULL label");
    ms = match_compile("strava/foo:x", NULL, NULL, 0);
    CHECK(ms != NULL, "NULL opts are the defaults");
    match_free(ms);
}

static void test_cache(void)
{
    struct match_alias al[] = {{"mirror.local", "registry.example.com"}};
    struct match_opts o = {0, al, 1};
    struct match_cache_stats st;
    match_cache *c = match_cache_new(&o, 2);
    const match_set *a, *a2, *b, *d;
    char err[512];
    int first = -1;
    struct match_subject s = {"mirror.local", "strava/foo", "1", NULL};

    CHECK(match_cache_new(&o, 0) == NULL, "capacity 0 is refused");
    CHECK(c != NULL, "cache_new");
    if (!c) return;
    a = match_cache_get(c, "registry.example.com/strava/foo:*", "app1", err, sizeof(err), &first);
    CHECK(a != NULL && first == 0, "valid value");
    a2 = match_cache_get(c, "registry.example.com/strava/foo:*", "app2", err, sizeof(err), NULL);
    CHECK(a == a2, "same value, same compiled set");
    CHECK(a && match_test(a, &s, NULL, 0) == 1, "cache copies the alias options");
    match_cache_release(a2);

    b = match_cache_get(c, "strava/foo:[", "app1", err, sizeof(err), &first);
    CHECK(b == NULL && first == 1, "invalid value: first report");
    CHECK(strstr(err, "column 12") != NULL, "error kept: %s", err);
    b = match_cache_get(c, "strava/foo:[", "app1", err, sizeof(err), &first);
    CHECK(b == NULL && first == 0, "same app, same value: not again");
    CHECK(strstr(err, "column 12") != NULL, "error repeated for the caller: %s", err);
    b = match_cache_get(c, "strava/foo:[", "app2", err, sizeof(err), &first);
    CHECK(b == NULL && first == 1, "another app with the same value is told too");
    b = match_cache_get(c, "strava/foo:[", NULL, err, sizeof(err), &first);
    CHECK(first == 1, "anonymous: once");
    b = match_cache_get(c, "strava/foo:[", NULL, err, sizeof(err), &first);
    CHECK(first == 0, "anonymous: not twice");

    /* Capacity 2: a third value evicts the least recently used, which is still held. */
    d = match_cache_get(c, "strava/bar:*", "app3", err, sizeof(err), &first);
    CHECK(d != NULL, "third value");
    match_cache_stats(c, &st);
    CHECK(st.entries == 2, "bounded: %zu entries", st.entries);
    CHECK(st.evictions == 1, "one eviction, got %zu", st.evictions);
    CHECK(st.hits == 5 && st.misses == 3, "hits %zu misses %zu", st.hits, st.misses);
    CHECK(a && match_test(a, &s, NULL, 0) == 1, "evicted set still valid while referenced");
    match_cache_release(a);
    match_cache_release(d);
    match_cache_release(NULL);

    a = match_cache_get(c, "strava/foo:*", "x", err, sizeof(err), NULL);
    match_cache_free(c); /* a reference outlives the cache */
    s.host = "";
    CHECK(a && match_test(a, &s, NULL, 0) == 1, "set outlives the cache");
    match_cache_release(a);
    match_cache_free(NULL);
}

struct worker {
    match_cache *c;
    int id, wrong;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    static const char *const labels[] = {"strava/a:*", "strava/b:main-*", "strava/c:{x,y}",
                                         "semver:strava/d:^1", "regex:strava/e:v\\d+"};
    static const char *const repos[] = {"strava/a", "strava/b", "strava/c", "strava/d", "strava/e"};
    static const char *const tags[] = {"q", "main-1", "y", "1.2.3", "v12"};
    char err[256];

    /* 6 threads x 1,000 look-ups in a cache of 2 for 5 values: thousands of evictions of sets
     * in use (4,000 each took 29 s of the 49 s of the unit tests under valgrind). */
    for (int i = 0; i < 1000; i++) {
        int k = (i + w->id) % 5, other = (k + 1) % 5;
        const match_set *ms = match_cache_get(w->c, labels[k], NULL, err, sizeof(err), NULL);
        struct match_subject yes = {"", repos[k], tags[k], NULL};
        struct match_subject no = {"", repos[other], tags[other], NULL};
        if (!ms || match_test(ms, &yes, NULL, 0) != 1 || match_test(ms, &no, NULL, 0) != 0)
            w->wrong++;
        match_cache_release(ms);
    }
    return NULL;
}

/* Several threads share a cache too small for their values: sets are evicted while in use. */
static void test_threads(void)
{
    struct match_opts o = {0};
    match_cache *c = match_cache_new(&o, 2);
    pthread_t t[6];
    struct worker w[6];
    int started = 0, wrong = 0;

    CHECK(c != NULL, "cache_new");
    if (!c) return;
    for (int i = 0; i < 6; i++) {
        w[i] = (struct worker){c, i, 0};
        if (pthread_create(&t[i], NULL, worker_main, &w[i]) == 0)
            started++;
        else
            break;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        wrong += w[i].wrong;
    }
    CHECK(started == 6, "started %d threads", started);
    CHECK(wrong == 0, "%d wrong answers under concurrency", wrong);
    match_cache_free(c);
}

/* Runs the CLI with stdout and stderr silenced; returns its exit status. */
static int cli(int argc, const char **argv)
{
    int out, errfd, devnull, rc;
    fflush(stdout);
    fflush(stderr);
    out = dup(1);
    errfd = dup(2);
    devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
        dup2(devnull, 1);
        dup2(devnull, 2);
        close(devnull);
    }
    rc = match_cli_main(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    if (out >= 0) {
        dup2(out, 1);
        close(out);
    }
    if (errfd >= 0) {
        dup2(errfd, 2);
        close(errfd);
    }
    return rc;
}

static void test_cli(void)
{
    const char *m1[] = {"match", "strava/foo:master*", "strava/foo:master-1"};
    const char *m2[] = {"match", "strava/foo:master*", "strava/foo:main-1"};
    const char *m3[] = {"match", "strava/foo:[", "strava/foo:x"};
    const char *m4[] = {"match", "*:*", "a:b"};
    const char *m5[] = {"match", "--allow-repository-wildcards", "*:*", "a:b"};
    const char *m6[] = {"match", "--registry-alias", "mirror.local=registry.example.com:5000",
                        "registry.example.com:5000/strava/foo:v*", "mirror.local/strava/foo:v1"};
    const char *m7[] = {"match", "--current-tag", "1.6.0", "semver:strava/api:^1.4",
                        "strava/api:v1.5.0"};
    const char *m8[] = {"match", "--current-tag=1.4.0", "semver:strava/api:^1.4",
                        "registry.example.com:5000/strava/api:v1.5.0"};
    const char *m9[] = {"match", "docker.io/nginx:latest", "docker.io/nginx"};
    const char *m10[] = {"match", "strava/foo:*"};
    const char *m11[] = {"match", "--bogus", "a:b", "a:b"};
    const char *m12[] = {"match", "--registry-alias", "noequals", "a:b", "a:b"};
    const char *m13[] = {"match", "strava/foo:*", "strava/foo@sha256:abc"};
    const char *m14[] = {"match", "localhost/a/b:1", "localhost/a/b:1"};

    CHECK(cli(3, m1) == 0, "match exits 0");
    CHECK(cli(3, m2) == 1, "no match exits 1");
    CHECK(cli(3, m3) == 2, "invalid pattern exits 2");
    CHECK(cli(3, m4) == 2, "repository wildcard exits 2");
    CHECK(cli(4, m5) == 0, "wildcards allowed");
    CHECK(cli(5, m6) == 0, "registry alias");
    CHECK(cli(5, m7) == 1, "downgrade refused");
    CHECK(cli(4, m8) == 0, "--current-tag=, ref with host and port");
    CHECK(cli(3, m9) == 0, "Docker Hub official image, default tag latest");
    CHECK(cli(2, m10) == 2, "missing IMAGE_REF");
    CHECK(cli(4, m11) == 2, "unknown option");
    CHECK(cli(5, m12) == 2, "bad alias");
    CHECK(cli(3, m13) == 2, "digest reference");
    CHECK(cli(3, m14) == 0, "localhost reference");
}

static void test_targets(void)
{
    static const struct {
        const char *label;
        const char *host, *repo, *tag;
        int semver;
    } cases[] = {
        {"strava/foo:main-*", NULL, "strava/foo", NULL, 0},
        {"strava/foo:latest", NULL, "strava/foo", "latest", 0},
        {"reg.io:5000/strava/foo:latest", "reg.io:5000", "strava/foo", "latest", 0},
        {"strava/foo:{a,b}", NULL, "strava/foo", NULL, 0},
        {"strava/foo:v1\\*", NULL, "strava/foo", "v1*", 0}, /* escaped: a literal '*' */
        {"regex:strava/api:v[0-9]+", NULL, "strava/api", NULL, 0},
        {"semver:strava/api:^1.2", NULL, "strava/api", NULL, 1},
        {"semver:ghcr.io/team/api:~2", "ghcr.io", "team/api", NULL, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256];
        match_set *ms = match_compile(cases[i].label, NULL, err, sizeof err);
        CHECK(ms != NULL, "%s: %s", cases[i].label, err);
        if (!ms) continue;
        struct match_target t[4];
        CHECK(match_targets(ms, t, 4) == 1, "%s: one target", cases[i].label);
        CHECK_STR(t[0].host, cases[i].host, "host");
        CHECK_STR(t[0].repository, cases[i].repo, "repository");
        CHECK_STR(t[0].tag, cases[i].tag, "tag");
        CHECK(t[0].semver == cases[i].semver, "%s: semver", cases[i].label);
        match_free(ms);
    }
    /* wildcards in the repository: nothing to ask */
    struct match_opts o = {1, NULL, 0};
    char err[256];
    match_set *ms = match_compile("strava/*:main-* strava/bar:x", &o, err, sizeof err);
    struct match_target t[1];
    CHECK(ms && match_targets(ms, t, 1) == 2, "two patterns counted, one written");
    CHECK(ms && t[0].repository == NULL, "wildcard repository: NULL");
    match_free(ms);
}

int main(void)
{
    test_targets();
    run_table();
    test_messages();
    test_cache();
    test_threads();
    test_cli();
    return TEST_DONE("test_match");
}
