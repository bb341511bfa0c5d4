/*
 * test_listing.c: the app-listing scanner against cJSON on every Marathon fixture (the same
 * strings must come out), then escapes, duplicates and malformed input from a table (the
 * scanner follows RFC 8259 strictly, so it also refuses what lenient parsers let through).
 */
#include "listing.h"
#include "testlib.h"

#include <cjson/cJSON.h>
#include <dirent.h>

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Feeds text to a listing stream in chunks of `chunk` bytes (0: sizes from a generator seeded
 * with seed), each time from a copy of exactly what has "arrived" (so reading past it is a
 * memory error under ASan and valgrind), then ends it. */
static int feed_in_chunks(const char *text, size_t len, const char *label, size_t chunk,
                          unsigned seed, struct listing *out, char *err, size_t errlen)
{
    struct listing_stream ls;
    listing_stream_init(&ls, label);
    size_t have = 0;
    while (have < len) {
        seed = seed * 1103515245u + 12345u;
        size_t step = chunk ? chunk : 1 + (seed >> 8) % 3000;
        have = len - have < step ? len : have + step;
        char *arrived = malloc(have ? have : 1);
        memcpy(arrived, text, have);
        listing_stream_feed(&ls, arrived, have);
        free(arrived);
    }
    return listing_stream_end(&ls, text, len, out, err, errlen);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Reading the text as it arrives, in many chunkings, gives exactly what reading it whole
 * gives: the same apps with the same strings, or the same error at the same byte. */
static void streamed_same(const char *name, const char *text, size_t len, const char *label)
{
    struct listing whole;
    char werr[256] = "";
    int wrc = listing_parse(text, len, label, &whole, werr, sizeof werr);
    const size_t chunks[] = {1, 2, 7, 64, 511, 4096, 0, 0, 0};
    int bad = 0;
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        if (chunks[c] && chunks[c] < 64 && len > 8192) continue; /* quadratic copying */
        struct listing l;
        char err[256] = "";
        int rc =
            feed_in_chunks(text, len, label, chunks[c], (unsigned)c * 7919u, &l, err, sizeof err);
        int same = rc == wrc && !strcmp(err, werr);
        if (same && rc == 0) {
            same = l.n == whole.n;
            for (size_t i = 0; same && i < l.n; i++) {
                const struct listed_app *a = &l.apps[i], *b = &whole.apps[i];
                same = same_str(a->id, b->id) && same_str(a->image, b->image) &&
                       same_str(a->label, b->label) && same_str(a->channel, b->channel) &&
                       same_str(a->paused, b->paused) && same_str(a->pin, b->pin) &&
                       same_str(a->digest, b->digest);
            }
        }
        if (!same && !bad++)
            CHECK(0, "%s: read in chunks of %zu: rc %d \"%s\", whole: rc %d \"%s\"", name,
                  chunks[c], rc, err, wrc, werr);
        if (rc == 0) listing_free(&l);
    }
    CHECK(!bad, "%s: the same read whole and as it arrives", name);
    if (wrc == 0) listing_free(&whole);
}

/* Checks listing_parse against cJSON's reading of the same text. */
static void differential(const char *name, const char *text, const char *label)
{
    cJSON *root = cJSON_Parse(text);
    const cJSON *apps = cJSON_GetObjectItemCaseSensitive(root, "apps");
    struct listing l;
    char err[256] = "";
    int rc = listing_parse(text, strlen(text), label, &l, err, sizeof err);
    CHECK(rc == 0, "%s: parses (%s)", name, err);
    size_t want = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, apps) if (cJSON_IsObject(a)) want++;
    CHECK(l.n == want, "%s: %zu apps, cJSON %zu", name, l.n, want);
    size_t i = 0;
    cJSON_ArrayForEach(a, apps)
    {
        if (!cJSON_IsObject(a) || i >= l.n) continue;
        const struct listed_app *g = &l.apps[i++];
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(a, "labels");
        const cJSON *docker = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(a, "container"), "docker");
        CHECK_STR(g->id, jstr(a, "id"), "id");
        CHECK_STR(g->image, jstr(docker, "image"), "image");
        CHECK_STR(g->label, jstr(labels, label), "label");
        CHECK_STR(g->channel, jstr(labels, "autodeploy.slack-channel"), "channel");
    }
    listing_free(&l);
    cJSON_Delete(root);
    streamed_same(name, text, strlen(text), label);
}

static char *wrap_app(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    if (!j) return NULL;
    cJSON *app = cJSON_DetachItemFromObjectCaseSensitive(j, "app");
    if (!app) {
        app = j;
        j = NULL;
    }
    cJSON_Delete(j);
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "apps");
    cJSON_AddItemToArray(arr, app);
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    return out;
}

static const char *first_label(const char *text)
{
    static char name[128];
    cJSON *j = cJSON_Parse(text);
    const cJSON *apps = cJSON_GetObjectItemCaseSensitive(j, "apps");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(apps, 0), "labels");
    const cJSON *l0 = labels ? labels->child : NULL;
    snprintf(name, sizeof name, "%s", l0 && l0->string ? l0->string : "autodeploy");
    cJSON_Delete(j);
    return name;
}

static void test_fixtures(void)
{
    const char *lists[] = {"tests/fixtures/marathon/apps_list_legacy.json",
                           "tests/fixtures/marathon/group_real_1.5.5_100apps.json"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        char *t = tl_read_file(lists[i], NULL);
        CHECK(t != NULL, "%s readable", lists[i]);
        if (t) differential(lists[i], t, first_label(t));
        free(t);
    }
    DIR *dir = opendir("tests/fixtures/marathon/real_apps");
    CHECK(dir != NULL, "real_apps readable");
    struct dirent *e;
    int n = 0;
    while (dir && (e = readdir(dir))) {
        if (!strstr(e->d_name, ".json")) continue;
        char path[512];
        snprintf(path, sizeof path, "tests/fixtures/marathon/real_apps/%s", e->d_name);
        char *t = tl_read_file(path, NULL);
        char *w = t ? wrap_app(t) : NULL;
        if (w) {
            differential(e->d_name, w, first_label(w));
            n++;
        }
        free(t);
        free(w);
    }
    if (dir) closedir(dir);
    CHECK(n >= 27, "all real apps compared (%d)", n);
}

struct bad {
    const char *name, *text;
};

static void test_table(void)
{
    const struct bad bad[] = {
        {"empty", ""},
        {"not object", "[]"},
        {"no apps", "{\"x\":1}"},
        {"apps not array", "{\"apps\":{}}"},
        {"truncated", "{\"apps\":[{\"id\":\"/a\""},
        {"bad escape", "{\"apps\":[{\"id\":\"\\x\"}]}"},
        {"raw control char", "{\"apps\":[{\"id\":\"a\nb\"}]}"},
        {"escaped NUL", "{\"apps\":[{\"id\":\"a\\u0000b\"}]}"},
        {"bad number", "{\"apps\":[{\"n\":01}]}"},
        {"bad literal", "{\"apps\":[{\"n\":tru}]}"},
        {"trailing", "{\"apps\":[]} x"},
        {"missing comma", "{\"apps\":[{\"a\":1 \"b\":2}]}"},
        {"unclosed array", "{\"apps\":[1,2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct listing l;
        char err[256] = "";
        int rc = listing_parse(bad[i].text, strlen(bad[i].text), "autodeploy", &l, err, sizeof err);
        CHECK(rc < 0 && err[0], "%s refused (%s)", bad[i].name, err);
        streamed_same(bad[i].name, bad[i].text, strlen(bad[i].text), "autodeploy");
    }
    char deep[4000];
    size_t o = (size_t)snprintf(deep, sizeof deep, "{\"apps\":[{\"x\":");
    for (int k = 0; k < 600; k++)
        deep[o++] = '[';
    for (int k = 0; k < 600; k++)
        deep[o++] = ']';
    o += (size_t)snprintf(deep + o, sizeof deep - o, "}]}");
    struct listing l;
    char err[256];
    CHECK(listing_parse(deep, o, "autodeploy", &l, err, sizeof err) < 0, "600 levels refused");
    streamed_same("600 levels", deep, o, "autodeploy");

    const char *good =
        "{\"version\":[1,{\"apps\":2}],\"apps\":[7,\"x\",null,"
        "{\"id\":\"/a\",\"id\":\"/second\",\"labels\":{\"autodeploy\":\"caf\\u00e9 "
        "\\ud83d\\ude00 \\/ \\\"q\\\"\",\"autodeploy.paused\":\"true\",\"n\":-1.5e3},"
        "\"container\":{\"docker\":{\"image\":\"r/x:1\",\"net\":[true,false]}}},"
        "{\"labels\":{\"autodeploy\":5}}],\"apps\":[]}";
    int rc = listing_parse(good, strlen(good), "autodeploy", &l, err, sizeof err);
    CHECK(rc == 0, "valid document parses (%s)", err);
    CHECK(rc == 0 && l.n == 2, "non-objects skipped, two apps (%zu)", l.n);
    if (rc == 0 && l.n == 2) {
        CHECK_STR(l.apps[0].id, "/a", "first duplicate key wins");
        CHECK_STR(l.apps[0].label, "caf\xc3\xa9 \xf0\x9f\x98\x80 / \"q\"", "escapes decoded");
        CHECK_STR(l.apps[0].paused, "true", "paused label");
        CHECK_STR(l.apps[0].image, "r/x:1", "image");
        CHECK(l.apps[1].label == NULL && l.apps[1].id == NULL, "non-string label is absent");
        listing_free(&l);
    }
    streamed_same("valid document", good, strlen(good), "autodeploy");
    cJSON *j = cJSON_Parse(good);
    CHECK(j != NULL, "the valid document is valid for cJSON too");
    cJSON_Delete(j);
}

/* The shapes reading ahead treats apart: white space in the opening, elements that are not
 * objects (a number at the edge of what has come could still grow), "apps" not first or
 * written with an escape (read at the end), a second "apps", a body that starts over. */
static void test_stream(void)
{
    const char *docs[] = {
        " \r\n{ \"apps\" :\t[ {\"id\":\"/a\",\"labels\":{\"autodeploy\":\"r/a:*\"}} ,"
        "{\"id\":\"/b\",\"n\":12345} ] , \"x\" : 1 } ",
        "{\"apps\":[12345,{\"id\":\"/a\"},true,{\"id\":\"/b\"}]}",
        "{\"apps\":[{\"id\":\"/a\"},12345]}",
        "{\"apps\":[]}",
        "{\"apps\":[{\"id\":\"/a\"}],\"apps\":[{\"id\":\"/b\"}]}",
        "{\"x\":[1],\"apps\":[{\"id\":\"/a\"}]}",
        "{\"\\u0061pps\":[{\"id\":\"/a\"}]}",
        "{\"apps\":[{\"id\":\"/a\"},{\"id\":\"/b\" \"x\":1}]}",
        "{\"apps\":[{\"id\":\"/a\"}]}{",
        "{\"apps\":[{\"id\":\"/a\"},]}",
        "{\"apps\":[{\"id\":\"/\u00e9\\u00e9\"}]}",
        "{\"apps\":[{\"id\":\"/a\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "stream shape %zu", i);
        streamed_same(name, docs[i], strlen(docs[i]), "autodeploy");
    }
    /* Long runs of white space everywhere reading ahead waits: in the opening, after '[',
     * after an app, after ',', before ']' (and one trailing comma, which must stay refused). */
    static const char *const parts[][2] = {
        {"{", "\"apps\":[{\"id\":\"/a\"},{\"id\":\"/b\"}]}"},
        {"{\"apps\":[", "{\"id\":\"/a\"},{\"id\":\"/b\"}]}"},
        {"{\"apps\":[{\"id\":\"/a\"}", ",{\"id\":\"/b\"}]}"},
        {"{\"apps\":[{\"id\":\"/a\"},", "{\"id\":\"/b\"}]}"},
        {"{\"apps\":[{\"id\":\"/a\"},{\"id\":\"/b\"}", "]}"},
        {"{\"apps\":[{\"id\":\"/a\"},", "]}"},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t run = 5000, n = strlen(parts[i][0]) + run + strlen(parts[i][1]);
        char *doc = malloc(n + 1);
        snprintf(doc, n + 1, "%s%*s%s", parts[i][0], (int)run, "", parts[i][1]);
        char name[48];
        snprintf(name, sizeof name, "white space run %zu", i);
        streamed_same(name, doc, n, "autodeploy");
        free(doc);
    }
    /* An answer that starts over (a failover): the stream is abandoned and started again. */
    const char *first = "{\"apps\":[{\"id\":\"/old\"},{\"id\":\"/o";
    const char *second = "{\"apps\":[{\"id\":\"/new\"}]}";
    struct listing_stream ls;
    listing_stream_init(&ls, "autodeploy");
    listing_stream_feed(&ls, first, strlen(first));
    CHECK(ls.out.n == 1, "the whole app of the first answer read ahead (%zu)", ls.out.n);
    listing_stream_free(&ls);
    listing_stream_init(&ls, "autodeploy");
    listing_stream_feed(&ls, second, strlen(second));
    struct listing l;
    char err[256] = "";
    int rc = listing_stream_end(&ls, second, strlen(second), &l, err, sizeof err);
    CHECK(rc == 0 && l.n == 1 && !strcmp(l.apps[0].id, "/new"), "only the second answer's app");
    if (rc == 0) listing_free(&l);
}

int main(void)
{
    test_stream();
    test_fixtures();
    test_table();
    return TEST_DONE("test_listing");
}
