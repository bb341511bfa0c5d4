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
    cJSON *j = cJSON_Parse(good);
    CHECK(j != NULL, "the valid document is valid for cJSON too");
    cJSON_Delete(j);
}

int main(void)
{
    test_fixtures();
    test_table();
    return TEST_DONE("test_listing");
}
