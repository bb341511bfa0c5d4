/*
 * test_event.c: the envelope parser against every captured notification (driven by the
 * fixture indexes, so a new capture is tested by adding a line), then hostile and malformed
 * inputs from a table.
 */
#include "event.h"
#include "testlib.h"

#include <cjson/cJSON.h>

#define MAXP 8

struct got {
    int n_push, n_ignored, n_rejected;
    struct push pushes[MAXP];
    char reasons[8][160];
};

static void collect(const struct event_item *it, void *ctx)
{
    struct got *g = ctx;
    if (it->verdict == EVENT_PUSH) {
        if (g->n_push < MAXP) g->pushes[g->n_push] = it->push;
        g->n_push++;
    } else {
        int k = g->n_ignored + g->n_rejected;
        if (k < 8) snprintf(g->reasons[k], sizeof g->reasons[k], "%s", it->reason);
        if (it->verdict == EVENT_IGNORED)
            g->n_ignored++;
        else
            g->n_rejected++;
    }
}

static int parse(const char *body, size_t len, struct got *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    return event_parse_envelope(body, len, collect, g, err, errlen);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Real captures: a push is expected exactly when action, media type and tag say so. */
static void test_captures(void)
{
    char *index = tl_read_file("tests/fixtures/registry/fixtures_index.jsonl", NULL);
    CHECK(index != NULL, "fixtures_index.jsonl readable");
    if (!index) return;
    int files = 0;
    for (char *line = strtok(index, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *e = cJSON_Parse(line);
        if (!e) continue;
        const char *file = jstr(e, "file"), *action = jstr(e, "action");
        const char *mt = jstr(e, "mediaType"), *tag = jstr(e, "tag");
        int want_push = action && strcmp(action, "push") == 0 && event_is_manifest_media_type(mt) &&
                        tag && *tag;
        char path[256], err[256];
        snprintf(path, sizeof path, "tests/fixtures/registry/%s", file);
        size_t len;
        char *body = tl_read_file(path, &len);
        CHECK(body != NULL, "%s readable", path);
        if (body) {
            struct got g;
            int n = parse(body, len, &g, err, sizeof err);
            CHECK(n == 1, "%s: one event parsed (got %d: %s)", file, n, n < 0 ? err : "");
            CHECK(g.n_push == want_push, "%s: %s", file, want_push ? "is a push" : "not a push");
            if (want_push && g.n_push == 1) {
                const struct push *p = &g.pushes[0];
                CHECK_STR(p->repository, jstr(e, "repository"), "repository");
                CHECK_STR(p->tag, tag, "tag");
                CHECK_STR(p->digest, jstr(e, "digest"), "digest");
                CHECK_STR(p->event_id, jstr(e, "event_id"), "event id");
                CHECK_STR(p->media_type, mt, "media type");
                CHECK_STR(p->host, "127.0.0.1:5000", "registry host");
                CHECK(p->timestamp_ns > 1700000000LL * 1000000000LL, "%s: timestamp parsed", file);
            }
            files++;
        }
        free(body);
        cJSON_Delete(e);
    }
    CHECK(files >= 25, "all captures indexed (%d)", files);
    free(index);

    /* The authenticated capture names its pusher. */
    size_t len;
    char err[256];
    char *body =
        tl_read_file("tests/fixtures/registry/push_manifest_authenticated_actor.json", &len);
    struct got g;
    if (body && parse(body, len, &g, err, sizeof err) == 1 && g.n_push == 1)
        CHECK_STR(g.pushes[0].pusher, "ci-pusher", "pusher from actor.name");
    else
        CHECK(0, "authenticated capture parses to one push");
    free(body);
}

/* Other registries and test suites: expected.jsonl lists the pushes each must yield. */
static void test_other_sources(void)
{
    char *index = tl_read_file("tests/fixtures/registry/other/expected.jsonl", NULL);
    CHECK(index != NULL, "other/expected.jsonl readable");
    if (!index) return;
    int files = 0;
    for (char *line = strtok(index, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *e = cJSON_Parse(line);
        if (!e) continue;
        const char *file = jstr(e, "file");
        const cJSON *pushes = cJSON_GetObjectItemCaseSensitive(e, "pushes");
        char path[256], err[256];
        snprintf(path, sizeof path, "tests/fixtures/registry/other/%s", file);
        size_t len;
        char *body = tl_read_file(path, &len);
        CHECK(body != NULL, "%s readable", path);
        struct got g;
        int n = body ? parse(body, len, &g, err, sizeof err) : -1;
        if (cJSON_IsNull(pushes)) {
            CHECK(n < 0, "%s: not an envelope, refused", file);
        } else if (n < 0 && cJSON_GetArraySize(pushes) == 0) {
            /* Another protocol (Docker Hub, DTR): refusing it yields no push, as required. */
            CHECK(strstr(err, "envelope") != NULL, "%s: refused as not an envelope", file);
        } else {
            int want = cJSON_GetArraySize(pushes);
            CHECK(n >= 0, "%s: parses (%s)", file, n < 0 ? err : "ok");
            CHECK(g.n_push == want, "%s: %d pushes, want %d", file, g.n_push, want);
            for (int i = 0; i < want && i < g.n_push && i < MAXP; i++) {
                const cJSON *w = cJSON_GetArrayItem(pushes, i);
                CHECK_STR(g.pushes[i].repository, jstr(w, "repository"), "repository");
                CHECK_STR(g.pushes[i].tag, jstr(w, "tag"), "tag");
                CHECK_STR(g.pushes[i].digest, jstr(w, "digest"), "digest");
            }
        }
        files++;
        free(body);
        cJSON_Delete(e);
    }
    CHECK(files >= 15, "other sources indexed (%d)", files);
    free(index);
}

#define DIG "sha256:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e2"
#define MT "application/vnd.oci.image.manifest.v1+json"
#define EV(repo, tag, digest, host)                                                                \
    "{\"events\":[{\"id\":\"e1\",\"timestamp\":\"2026-01-02T03:04:05Z\",\"action\":\"push\","      \
    "\"target\":{\"mediaType\":\"" MT "\",\"repository\":" repo ",\"tag\":" tag                    \
    ",\"digest\":" digest "},\"request\":{\"host\":" host "},\"actor\":{}}]}"

struct case_ {
    const char *name;
    const char *body;
    int want_rc; /* -1: refused as a body; otherwise number of events */
    int push, ignored, rejected;
};

static const struct case_ cases[] = {
    {"empty body", "", -1, 0, 0, 0},
    {"not json", "hello", -1, 0, 0, 0},
    {"truncated", "{\"events\":[{\"id\":\"x\",", -1, 0, 0, 0},
    {"array, not object", "[]", -1, 0, 0, 0},
    {"events not array", "{\"events\":{}}", -1, 0, 0, 0},
    {"no events key", "{\"event\":[]}", -1, 0, 0, 0},
    {"trailing garbage", "{\"events\":[]} x", -1, 0, 0, 0},
    {"trailing newline ok", "{\"events\":[]}\n", 0, 0, 0, 0},
    {"empty events", "{\"events\":[]}", 0, 0, 0, 0},
    {"event not object", "{\"events\":[1,\"x\",null]}", 3, 0, 0, 3},
    {"no action", "{\"events\":[{\"id\":\"a\"}]}", 1, 0, 0, 1},
    {"pull", "{\"events\":[{\"action\":\"pull\"}]}", 1, 0, 1, 0},
    {"push without target", "{\"events\":[{\"action\":\"push\"}]}", 1, 0, 0, 1},
    {"valid push", EV("\"a/b\"", "\"v1\"", "\"" DIG "\"", "\"reg.example.com:5000\""), 1, 1, 0, 0},
    {"host absent ok", EV("\"a/b\"", "\"v1\"", "\"" DIG "\"", "null"), 1, 1, 0, 0},
    {"upper-case repository", EV("\"A/b\"", "\"v1\"", "\"" DIG "\"", "\"r\""), 1, 0, 0, 1},
    {"repository with ..", EV("\"a/../b\"", "\"v1\"", "\"" DIG "\"", "\"r\""), 1, 0, 0, 1},
    {"repository trailing slash", EV("\"a/\"", "\"v1\"", "\"" DIG "\"", "\"r\""), 1, 0, 0, 1},
    {"tag leading dash", EV("\"a\"", "\"-v1\"", "\"" DIG "\"", "\"r\""), 1, 0, 0, 1},
    {"tag with slash", EV("\"a\"", "\"v/1\"", "\"" DIG "\"", "\"r\""), 1, 0, 0, 1},
    {"tag with markup", EV("\"a\"", "\"<!channel>\"", "\"" DIG "\"", "\"r\""), 1, 0, 0, 1},
    {"tag 129 chars",
     EV("\"a\"",
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
        "\"" DIG "\"", "\"r\""),
     1, 0, 0, 1},
    {"tag 128 chars",
     EV("\"a\"",
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
        "\"" DIG "\"", "\"r\""),
     1, 1, 0, 0},
    {"empty tag ignored", EV("\"a\"", "\"\"", "\"" DIG "\"", "\"r\""), 1, 0, 1, 0},
    {"tag not a string", EV("\"a\"", "5", "\"" DIG "\"", "\"r\""), 1, 0, 1, 0},
    {"digest short", EV("\"a\"", "\"v\"", "\"sha256:0123456789abcdef0\"", "\"r\""), 1, 0, 0, 1},
    {"digest upper-case",
     EV("\"a\"", "\"v\"",
        "\"sha256:0A8F49DAA4BED3DEDFE82C8ACAAE7D39486B2DAE264C0DBF63CAE52D59E5C9E2\"", "\"r\""),
     1, 0, 0, 1},
    {"digest missing", EV("\"a\"", "\"v\"", "null", "\"r\""), 1, 0, 0, 1},
    {"host with slash", EV("\"a\"", "\"v\"", "\"" DIG "\"", "\"evil.com/x\""), 1, 0, 0, 1},
    {"host with space", EV("\"a\"", "\"v\"", "\"" DIG "\"", "\"a b\""), 1, 0, 0, 1},
    {"host ipv6", EV("\"a\"", "\"v\"", "\"" DIG "\"", "\"[::1]:5000\""), 1, 1, 0, 0},
    {"event id with newline",
     "{\"events\":[{\"id\":\"a\\nb\",\"action\":\"push\",\"target\":{\"mediaType\":\"" MT
     "\",\"repository\":\"a\",\"tag\":\"v\",\"digest\":\"" DIG "\"}}]}",
     1, 0, 0, 1},
    {"deep nesting",
     "{\"events\":[{\"action\":\"push\",\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}",
     1, 0, 0, 1},
    {"escaped NUL refused", "{\"events\":[{\"action\":\"pull\",\"x\":\"a\\u0000b\"}]}", -1, 0, 0,
     0},
    {"escaped backslash then u0000 is text",
     "{\"events\":[{\"action\":\"pull\",\"x\":\"a\\\\u0000\"}]}", 1, 0, 1, 0},
    {"mount", "{\"events\":[{\"action\":\"mount\",\"target\":{\"mediaType\":\"" MT "\"}}]}", 1, 0,
     1, 0},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct case_ *c = &cases[i];
        struct got g;
        char err[256] = "";
        int rc = parse(c->body, strlen(c->body), &g, err, sizeof err);
        CHECK(rc == c->want_rc, "%s: rc %d, want %d (%s)", c->name, rc, c->want_rc, err);
        if (rc < 0) {
            CHECK(err[0] != '\0', "%s: refusal has a reason", c->name);
            continue;
        }
        CHECK(g.n_push == c->push && g.n_ignored == c->ignored && g.n_rejected == c->rejected,
              "%s: push/ignored/rejected %d/%d/%d, want %d/%d/%d (%s)", c->name, g.n_push,
              g.n_ignored, g.n_rejected, c->push, c->ignored, c->rejected, g.reasons[0]);
    }
}

static void test_pusher_text(void)
{
    /* Control characters are removed and invalid UTF-8 replaced; valid UTF-8 stays. */
    const char body[] = "{\"events\":[{\"id\":\"p1\",\"action\":\"push\",\"target\":{\"mediaType\":"
                        "\"" MT "\",\"repository\":\"a\",\"tag\":\"v\",\"digest\":\"" DIG "\"},"
                        "\"actor\":{\"name\":\"ren\xc3\xa9\\u0007\\n\xff!\xed\xa0\x80"
                        "\xe0\x80\xaf\xf4\x90\x80\x80\"}}]}";
    struct got g;
    char err[128];
    int rc = parse(body, sizeof body - 1, &g, err, sizeof err);
    CHECK(rc == 1 && g.n_push == 1, "push with odd pusher parses (%s)", err);
    if (g.n_push == 1) CHECK_STR(g.pushes[0].pusher, "ren\xc3\xa9?!??????????", "pusher sanitised");
}

static void test_rfc3339(void)
{
    int64_t ns = 0;
    CHECK(event_parse_rfc3339("1970-01-01T00:00:01Z", &ns) == 0 && ns == 1000000000LL, "epoch+1");
    CHECK(event_parse_rfc3339("2026-11-25T19:21:16.181131861Z", &ns) == 0 &&
              ns % 1000000000LL == 181131861LL,
          "nanoseconds kept");
    int64_t a, b;
    CHECK(event_parse_rfc3339("2023-01-25T14:45:54.17327+11:00", &a) == 0 &&
              event_parse_rfc3339("2023-01-25T03:45:54.17327Z", &b) == 0 && a == b,
          "offset applied");
    CHECK(event_parse_rfc3339("2023-01-25T14:45:54.1-01:30", &a) == 0 &&
              event_parse_rfc3339("2023-01-25T16:15:54.1Z", &b) == 0 && a == b,
          "negative offset applied");
    const char *bad[] = {"",
                         "2023-01-25",
                         "2023-01-25T14:45:54",
                         "2023-13-01T00:00:00Z",
                         "2023-01-25T14:45:54.Z",
                         "2023-01-25T14:45:54Zjunk",
                         "x023-01-25T14:45:54Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(event_parse_rfc3339(bad[i], &ns) < 0, "\"%s\" refused", bad[i]);
}

int main(void)
{
    test_captures();
    test_other_sources();
    test_table();
    test_pusher_text();
    test_rfc3339();
    return TEST_DONE("test_event");
}
