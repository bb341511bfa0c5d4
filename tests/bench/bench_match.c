/*
 * bench_match.c: how long one push takes to match against 10,000 labelled apps.
 *
 * This is the daemon's hot path per registry event: for every app, look its label value up in
 * the compiled-pattern cache and test the push. The apps carry a realistic mix of label values
 * (mostly globs, some regex: and semver:, multi-pattern values, 40% duplicates so the cache is
 * shared). After one warm-up pass the cache holds every value, so the runs measure lookups and
 * JIT matches only. Prints Markdown table rows; the goal is a median under 1 ms on one core.
 * Benchmarks report, they never fail: the exit status is always 0.
 */
#include "match.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchlib.h"
#include <time.h>

#define N_APPS 10000
#define N_UNIQUE 6000 /* apps i and i + 6000 share a label value */
#define RUNS 101

/* A label value for app i: the variant depends on i % 20, the repository on i % N_UNIQUE. */
static void label_for(int i, char *buf, size_t len)
{
    int k = i % N_UNIQUE, v = i % 20;
    if (v < 5)
        snprintf(buf, len, "strava/svc-%d:master*", k);
    else if (v < 8)
        snprintf(buf, len, "strava/svc-%d:{master,main}-*", k);
    else if (v < 10)
        snprintf(buf, len, "registry.example.com/strava/svc-%d:release-[0-9]*", k);
    else if (v < 12)
        snprintf(buf, len, "strava/team-%d/svc:v*.*", k);
    else if (v < 14)
        snprintf(buf, len, "strava/svc-%d:main strava/svc-%d:hotfix-?*", k, k);
    else if (v < 17)
        snprintf(buf, len, "regex:strava/svc-%d:(master|main)-\\d+", k);
    else
        snprintf(buf, len, "semver:strava/svc-%d:^1.%d", k, k % 7);
}

/* One pass: every app looks up its value and tests the push. Returns the number of matches. */
static int pass(match_cache *c, char **labels, char **ids, const struct match_subject *push)
{
    int matches = 0;
    for (int i = 0; i < N_APPS; i++) {
        char err[256];
        const match_set *ms = match_cache_get(c, labels[i], ids[i], err, sizeof(err), NULL);
        if (ms) {
            matches += match_test(ms, push, NULL, 0);
            match_cache_release(ms);
        }
    }
    return matches;
}

static void report(const char *what, double *t, int n, const char *goal)
{
    qsort(t, (size_t)n, sizeof(*t), cmp_double);
    printf("| %s | median %.3f ms | p99 %.3f ms | %s |\n", what, t[n / 2], t[(int)((n - 1) * 0.99)],
           goal);
}

int main(void)
{
    struct match_alias al[] = {{"mirror.local", "registry.example.com"}};
    struct match_opts o = {0, al, 1};
    struct match_subject push = {"registry.example.com", "strava/svc-42", "master-1234", "1.2.0"};
    struct match_subject push2 = {"mirror.local", "strava/svc-57", "1.3.0", "1.2.0"};
    static char *labels[N_APPS], *ids[N_APPS];
    double t[RUNS], cold, t0;
    match_cache *c = match_cache_new(&o, 2 * N_APPS);
    int matches = 0, ok = 1;

    if (!c) {
        printf("| match 1 push vs 10,000 apps (cache warm) | not run: out of memory | | |\n");
        return 0;
    }
    for (int i = 0; i < N_APPS && ok; i++) {
        char buf[256], id[32];
        label_for(i, buf, sizeof(buf));
        snprintf(id, sizeof(id), "/app-%d", i);
        labels[i] = strdup(buf);
        ids[i] = strdup(id);
        ok = labels[i] && ids[i];
    }
    if (!ok) {
        printf("| match 1 push vs 10,000 apps (cache warm) | not run: out of memory | | |\n");
        goto out;
    }
    t0 = now_ms();
    matches = pass(c, labels, ids, &push); /* warm-up: compiles N_UNIQUE values */
    cold = now_ms() - t0;
    for (int r = 0; r < RUNS; r++) {
        t0 = now_ms();
        matches = pass(c, labels, ids, r % 2 ? &push2 : &push);
        t[r] = now_ms() - t0;
    }
    report("match 1 push vs 10,000 apps (cache warm)", t, RUNS, "goal < 1 ms");
    {
        struct match_cache_stats st;
        match_cache_stats(c, &st);
        printf("| first push vs 10,000 apps (cache cold: compiles %zu values) | %.1f ms | "
               "%d apps matched the last push | report only |\n",
               st.entries, cold, matches);
    }
out:
    for (int i = 0; i < N_APPS; i++) {
        free(labels[i]);
        free(ids[i]);
    }
    match_cache_free(c);
    return 0;
}
