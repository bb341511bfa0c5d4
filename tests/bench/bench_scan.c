/*
 * bench_scan.c: the CPU work between reading the app listing and asking for the matching app,
 * the largest part of benchmark 4 (push received -> PATCH sent): scanning Marathon's answer to
 * GET /v2/apps?label=autodeploy for 1,000 apps (listing_parse) and matching one push against
 * every listed app as the dispatcher does (dispatch.c: a cache lookup per app, the app's
 * current tag only for the apps that match without it).
 *
 * The listing is built here in the shape the Marathon emulator gives benchmark 4 (the apps of
 * tests/bench/deploy_latency.py gen-apps, with the fields Marathon adds), about 1.03 MiB.
 * 101 timed passes after one warm-up pass that compiles every label value. Each pass scans a
 * fresh copy of the text, as the daemon scans a buffer curl has just filled. Prints Markdown
 * table rows; benchmarks report, they never fail: the exit status is always 0.
 */
#include "buf.h"
#include "listing.h"
#include "match.h"
#include "reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchlib.h"
#include <time.h>

#define N_APPS 1000
#define RUNS 101
#define ROW "scan + match of a 1,000-app listing (benchmark 4's)"

static int add_app(struct buf *b, int k)
{
    const char *v = "2026-12-02T01:07:41.201Z";
    return buf_printf(
        b,
        "%s{\"id\":\"/bench/app-%d\",\"cmd\":null,\"instances\":2,\"cpus\":0.25,\"mem\":256,"
        "\"disk\":0,\"env\":{\"APP_ENV\":\"bench\",\"APP_NAME\":\"app-%d\"},\"labels\":{"
        "\"autodeploy\":\"bench/app-%d:main-*\",\"team\":\"bench\",\"HAPROXY_GROUP\":"
        "\"internal\"},\"container\":{\"type\":\"DOCKER\",\"docker\":{\"image\":"
        "\"registry.example.com/bench/app-%d:main-0\",\"network\":\"BRIDGE\","
        "\"forcePullImage\":false,\"portMappings\":[{\"containerPort\":8080,\"hostPort\":0,"
        "\"protocol\":\"tcp\",\"name\":\"http\"}]},\"volumes\":[]},\"healthChecks\":[{"
        "\"protocol\":\"HTTP\",\"path\":\"/health\",\"portIndex\":0,\"gracePeriodSeconds\":60,"
        "\"intervalSeconds\":10,\"timeoutSeconds\":5,\"maxConsecutiveFailures\":3}],"
        "\"upgradeStrategy\":{\"minimumHealthCapacity\":1,\"maximumOverCapacity\":1},"
        "\"constraints\":[[\"hostname\",\"UNIQUE\"]],\"gpus\":0,\"backoffSeconds\":1,"
        "\"backoffFactor\":1.15,\"maxLaunchDelaySeconds\":300,\"requirePorts\":false,"
        "\"killSelection\":\"YOUNGEST_FIRST\",\"version\":\"%s\",\"versionInfo\":{"
        "\"lastScalingAt\":\"%s\",\"lastConfigChangeAt\":\"%s\"},\"tasksStaged\":0,"
        "\"tasksRunning\":2,\"tasksHealthy\":2,\"tasksUnhealthy\":0,\"deployments\":[]}",
        k > 1 ? "," : "", k, k, k, k, v, v, v);
}

/* Matches the push against every listed app as dispatch.c does; returns the matches. */
static int match_all(match_cache *c, const struct listing *l, const struct match_subject *push)
{
    int n = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct listed_app *a = &l->apps[i];
        char err[256];
        if (!a->id || !a->label) continue;
        const match_set *ms = match_cache_get(c, a->label, a->id, err, sizeof err, NULL);
        if (!ms) continue;
        struct match_subject s = *push;
        s.current_tag = NULL;
        int m = match_test(ms, &s, NULL, 0);
        struct image_ref cur;
        if (m && a->image && ref_parse_image(a->image, &cur) == 0 && cur.tag[0]) {
            s.current_tag = cur.tag;
            m = match_test(ms, &s, NULL, 0);
        }
        match_cache_release(ms);
        n += m;
    }
    return n;
}

int main(void)
{
    struct buf text;
    struct match_opts o = {0, NULL, 0};
    match_cache *c = match_cache_new(&o, 65536);
    double scan[RUNS], match[RUNS], total[RUNS];
    int ok = c != NULL, matches = 0;

    buf_init(&text, 64u << 20);
    ok = ok && buf_adds(&text, "{\"apps\":[") == 0;
    for (int k = 1; ok && k <= N_APPS; k++)
        ok = add_app(&text, k) == 0;
    ok = ok && buf_adds(&text, "]}") == 0;
    char *copy = ok ? malloc(text.len + 1) : NULL;
    if (!copy) {
        printf("| %s | not run: out of memory | | report only |\n", ROW);
        goto out;
    }
    for (int r = -1; r < RUNS; r++) { /* r == -1: warm-up, compiles every label value */
        struct match_subject push = {"registry.example.com", NULL, NULL, NULL};
        char repo[64], tag[64], err[256];
        struct listing l;
        snprintf(repo, sizeof repo, "bench/app-%d", (r + 2) * 337 % N_APPS + 1);
        snprintf(tag, sizeof tag, "main-bench-%d", r + 2);
        push.repository = repo;
        push.tag = tag;
        memcpy(copy, text.data, text.len + 1);
        double t0 = now_ms();
        if (listing_parse(copy, text.len, "autodeploy", &l, err, sizeof err) < 0) {
            printf("| %s | not run: %s | | report only |\n", ROW, err);
            goto out;
        }
        double t1 = now_ms();
        matches = match_all(c, &l, &push);
        double t2 = now_ms();
        listing_free(&l);
        if (r >= 0) {
            scan[r] = t1 - t0;
            match[r] = t2 - t1;
            total[r] = t2 - t0;
        }
    }
    qsort(scan, RUNS, sizeof scan[0], cmp_double);
    qsort(match, RUNS, sizeof match[0], cmp_double);
    qsort(total, RUNS, sizeof total[0], cmp_double);
    printf("| %s | median %.3f ms | %.2f MiB of JSON: scan median %.3f ms, match median %.3f ms "
           "(%d app matched); p99 %.3f ms | report only |\n",
           ROW, total[RUNS / 2], (double)text.len / 1048576.0, scan[RUNS / 2], match[RUNS / 2],
           matches, total[(int)((RUNS - 1) * 0.99)]);
out:
    free(copy);
    buf_free(&text);
    match_cache_free(c);
    return 0;
}
