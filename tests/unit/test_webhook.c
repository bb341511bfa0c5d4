/*
 * test_webhook.c: the webhook's answers (202 counts, 400 reasons, 503 back-pressure and the
 * retry that follows it), Docker reference grammar checks, and the constant-time compare.
 */
#include "jsonmem.h"
#include "log.h"
#include "metrics.h"
#include "reference.h"
#include "server.h"
#include "sources.h"
#include "testlib.h"
#include "webhook.h"

#include <cjson/cJSON.h>

static int field(const char *json, const char *k)
{
    cJSON *j = cJSON_Parse(json);
    const cJSON *v = cJSON_GetObjectItem(j, k);
    int n = cJSON_IsNumber(v) ? v->valueint : -1;
    cJSON_Delete(j);
    return n;
}

static int handle(struct pushq *q, const char *path, struct buf *resp)
{
    size_t len;
    char *body = tl_read_file(path, &len);
    buf_reset(resp);
    int st = body ? webhook_handle(q, body, len, resp) : -1;
    free(body);
    return st;
}

static void test_answers(void)
{
    webhook_metrics_declare();
    struct pushq *q = pushq_new(1, 100, 10);
    struct buf r;
    buf_init(&r, 1 << 16);
    const char *dir = "tests/fixtures/registry/";
    char p1[256], p2[256], blob[256], multi[256];
    snprintf(p1, sizeof p1, "%spush_oci_manifest.json", dir);
    snprintf(p2, sizeof p2, "%spush_manifest_v2s2.json", dir);
    snprintf(blob, sizeof blob, "%spush_blob_layer.json", dir);
    snprintf(multi, sizeof multi, "%sdocs_distribution_multi_event_envelope.json", dir);

    CHECK(handle(q, p1, &r) == 202 && field(r.data, "accepted") == 1, "push accepted: %s", r.data);
    CHECK(handle(q, p1, &r) == 202 && field(r.data, "duplicate") == 1, "resend: %s", r.data);
    CHECK(handle(q, blob, &r) == 202 && field(r.data, "ignored") == 1, "blob: %s", r.data);
    CHECK(handle(q, p2, &r) == 503, "queue of 1 full: %s", r.data);
    CHECK(strstr(r.data, "queue full") != NULL && field(r.data, "deferred") == 1, "503 says why");
    struct push out;
    CHECK(pushq_take(q, &out) == 0, "worker takes one");
    CHECK(handle(q, p2, &r) == 202 && field(r.data, "accepted") == 1,
          "the registry's retry is accepted once drained: %s", r.data);
    CHECK(handle(q, multi, &r) == 202 && field(r.data, "ignored") == 3, "multi-event: %s", r.data);

    buf_reset(&r);
    CHECK(webhook_handle(q, "{\"events\":", 10, &r) == 400 && strstr(r.data, "not valid JSON"),
          "truncated JSON is a 400 naming the problem: %s", r.data);
    buf_reset(&r);
    CHECK(webhook_handle(q, "{\"foo\":1}", 9, &r) == 400 && strstr(r.data, "events"),
          "not an envelope: %s", r.data);
    cJSON *j = cJSON_Parse(r.data);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "error")), "error body is JSON with \"error\"");
    cJSON_Delete(j);

    CHECK(metrics_get("autodeploy_events_total", "result", "accepted") == 2, "accepted metric");
    CHECK(metrics_get("autodeploy_events_total", "result", "duplicate") == 1, "duplicate metric");
    CHECK(metrics_get("autodeploy_events_total", "result", "deferred") == 1, "deferred metric");
    CHECK(metrics_get("autodeploy_events_total", "result", "ignored") == 4, "ignored metric");
    buf_free(&r);
    pushq_free(q);
}

static int refuse(struct push *p, void *ctx)
{
    (void)p;
    (void)ctx;
    return -1;
}

/* The state file cannot record a push: 503 saying so, nothing queued, the retry accepted. */
static void test_unsaved_push_is_deferred(void)
{
    struct pushq *q = pushq_new(10, 100, 10);
    struct pushq_hooks h = {refuse, NULL, NULL};
    pushq_set_hooks(q, &h);
    struct buf r;
    buf_init(&r, 1 << 16);
    double before = metrics_get("autodeploy_events_total", "result", "deferred");
    CHECK(handle(q, "tests/fixtures/registry/push_oci_manifest.json", &r) == 503,
          "unsaved push: 503 (%s)", r.data);
    CHECK(strstr(r.data, "state file") != NULL && field(r.data, "deferred") == 1,
          "503 names the state file: %s", r.data);
    CHECK(pushq_depth(q) == 0, "nothing queued");
    CHECK(metrics_get("autodeploy_events_total", "result", "deferred") == before + 1,
          "counted as deferred");
    struct pushq_hooks none = {NULL, NULL, NULL};
    pushq_set_hooks(q, &none);
    CHECK(handle(q, "tests/fixtures/registry/push_oci_manifest.json", &r) == 202 &&
              field(r.data, "accepted") == 1,
          "the registry's retry is accepted once the file works: %s", r.data);
    buf_free(&r);
    pushq_free(q);
}

/* The JSON arena (jsonmem.h): the same answers with it, a big envelope that overflows it into
 * malloc still parses whole, and nothing is left behind (valgrind checks the leaks). */
static void test_json_arena(void)
{
    struct pushq *q = pushq_new(5000, 10000, 10);
    struct buf r;
    buf_init(&r, 1 << 16);
    json_arena_begin();
    cJSON *probe = cJSON_Parse("{\"a\":[1,2,3],\"b\":\"x\"}");
    unsigned long used = json_arena_used();
    cJSON_Delete(probe);
    json_arena_end();
#if defined(__SANITIZE_ADDRESS__)
    CHECK(used == 0, "sanitizer build: the arena is off so ASan sees every allocation");
#else
    CHECK(used > 0, "inside a scope cJSON allocates from the arena (%lu bytes)", used);
#endif
    CHECK(json_arena_used() == 0, "and the scope's end releases it");

    /* 2,000 events: far more than the arena holds. */
    struct buf big;
    buf_init(&big, 4 << 20);
    buf_adds(&big, "{\"events\":[");
    for (int i = 0; i < 2000; i++)
        buf_printf(
            &big,
            "%s{\"id\":\"ev-%d\",\"timestamp\":\"2026-11-25T10:00:00Z\",\"action\":\"push\","
            "\"target\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
            "\"digest\":\"sha256:%064d\",\"repository\":\"strava/foo\",\"tag\":\"b-%d\"},"
            "\"request\":{\"host\":\"registry.example.com:5000\"},\"actor\":{\"name\":\"ci\"}}",
            i ? "," : "", i, i, i);
    buf_adds(&big, "]}");
    buf_reset(&r);
    int st = webhook_handle(q, big.data, big.len, &r);
    CHECK(st == 202 && field(r.data, "accepted") == 2000, "2,000 events parsed whole: %d %.120s",
          st, r.data);
    CHECK(pushq_depth(q) == 2000, "and queued (%zu)", pushq_depth(q));
    buf_free(&big);
    buf_free(&r);
    pushq_free(q);
}

struct refcase {
    int kind; /* 0 repo, 1 tag, 2 digest, 3 host */
    const char *s;
    int valid;
};

static const struct refcase refs[] = {
    {0, "a", 1},
    {0, "strava/foo-service", 1},
    {0, "a/b/c", 1},
    {0, "a__b", 1},
    {0, "a---b", 1},
    {0, "a.b_c", 1},
    {0, "A", 0},
    {0, "a//b", 0},
    {0, "/a", 0},
    {0, "a/", 0},
    {0, "a___b", 0},
    {0, "-a", 0},
    {0, "a-", 0},
    {0, "a..b", 0},
    {0, "", 0},
    {0, "a b", 0},
    {0, "a:b", 0},
    {1, "latest", 1},
    {1, "_x", 1},
    {1, "v1.2.3-rc.1", 1},
    {1, "MASTER", 1},
    {1, ".x", 0},
    {1, "-x", 0},
    {1, "a/b", 0},
    {1, "a+b", 0},
    {1, "", 0},
    {1, "a b", 0},
    {2, "sha256:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e2", 1},
    {2, "sha256:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e", 0},
    {2, "sha256:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e22", 0},
    {2, "sha512:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e2", 0},
    {2, "sha256:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9eg", 0},
    {3, "registry.example.com:5000", 1},
    {3, "127.0.0.1:5000", 1},
    {3, "localhost", 1},
    {3, "[::1]:5000", 1},
    {3, "[fe80::1]", 1},
    {3, "Registry.Example.COM", 1},
    {3, "a..b", 0},
    {3, "-a.com", 0},
    {3, "a-.com", 0},
    {3, "a.com:", 0},
    {3, "a.com:70000", 0},
    {3, "a.com/x", 0},
    {3, "[::1", 0},
    {3, "", 0},
    {3, "a b", 0},
};

static void test_reference(void)
{
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        const struct refcase *c = &refs[i];
        int got = c->kind == 0   ? ref_valid_repository(c->s)
                  : c->kind == 1 ? ref_valid_tag(c->s)
                  : c->kind == 2 ? ref_valid_digest(c->s)
                                 : ref_valid_host(c->s);
        CHECK(got == c->valid, "kind %d \"%s\": got %d want %d", c->kind, c->s, got, c->valid);
    }
    char tag[200];
    memset(tag, 'a', sizeof tag);
    tag[128] = '\0';
    CHECK(ref_valid_tag(tag), "128-char tag valid");
    tag[128] = 'a';
    tag[129] = '\0';
    CHECK(!ref_valid_tag(tag), "129-char tag invalid");
    char repo[300];
    memset(repo, 'a', sizeof repo);
    repo[256] = '\0';
    CHECK(!ref_valid_repository(repo), "256-char repository invalid");
}

static void test_secret_equal(void)
{
    CHECK(server_secret_equal("abc", 3, "abc", 3), "equal");
    CHECK(!server_secret_equal("abc", 3, "abd", 3), "differs at end");
    CHECK(!server_secret_equal("abc", 3, "abcd", 4), "prefix is not equal");
    CHECK(!server_secret_equal("", 0, "a", 1), "empty vs one");
}

/* Another registry's webhook: the same answers, the source on each push, counted per source. */
static void test_sources(void)
{
    struct pushq *q = pushq_new(2, 100, 10);
    struct buf r;
    buf_init(&r, 1 << 16);
    const struct source *harbor = source_find("harbor"), *quay = source_find("quay");
    size_t len;
    char *multi = tl_read_file("tests/fixtures/webhooks/harbor_push_multi_tag.json", &len);
    CHECK(webhook_handle_source(q, harbor, multi, len, NULL, &r) == 202 &&
              field(r.data, "accepted") == 2,
          "two tags, two pushes: %s", r.data);
    buf_reset(&r);
    CHECK(webhook_handle_source(q, harbor, multi, len, NULL, &r) == 202 &&
              field(r.data, "duplicate") == 2,
          "Harbor's re-delivery: duplicates: %s", r.data);
    struct push p;
    CHECK(pushq_take(q, &p) == 0 && !strcmp(p.source, "harbor") && !strcmp(p.tag, "v1.4.0"),
          "queued with its source: %s", p.source);
    CHECK(metrics_get("autodeploy_source_events_total", "source=\"harbor\",result", "accepted") ==
              2,
          "counted per source");
    buf_reset(&r);
    char *quay2 = tl_read_file("tests/fixtures/webhooks/quay_push_two_tags.json", &len);
    CHECK(webhook_handle_source(q, quay, quay2, len, NULL, &r) == 503 &&
              field(r.data, "accepted") == 1 && field(r.data, "deferred") == 1,
          "queue full half-way: 503, the rest deferred to the retry: %s", r.data);
    buf_reset(&r);
    CHECK(webhook_handle_source(q, quay, "{", 1, NULL, &r) == 400 && strstr(r.data, "JSON"),
          "malformed: 400: %s", r.data);
    buf_reset(&r);
    char *scan = tl_read_file("tests/fixtures/webhooks/harbor_scan_completed.json", &len);
    CHECK(webhook_handle_source(q, harbor, scan, len, NULL, &r) == 202 &&
              field(r.data, "ignored") == 1,
          "a scan result is answered 2xx and ignored: %s", r.data);
    free(multi);
    free(quay2);
    free(scan);
    buf_free(&r);
    pushq_free(q);
}

int main(void)
{
    log_setup(LOG_ERROR, LOG_FORMAT_JSON);
    json_arena_install(); /* as the daemon does: every webhook test goes through the arena */
    test_answers();
    test_json_arena();
    test_unsaved_push_is_deferred();
    test_reference();
    test_secret_equal();
    test_sources();
    return TEST_DONE("test_webhook");
}
