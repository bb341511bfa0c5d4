/*
 * test_apps.c: GET /v1/apps (deployer_apps_json, src/apps.c) against a scripted Marathon:
 * what each listed app shows (patterns, label errors, the operator's settings, the newest
 * record), and every way the listing can fail, which answers an error, never a partial list.
 */
#include "deploy.h"
#include "job.h"
#include "testlib.h"

#include <cjson/cJSON.h>

/* The scripted answer to GET /v2/apps?label=autodeploy: status (0: no answer) and body. */
static long answer_status;
static const char *answer_body;
static char asked[512];
static int n_asked;
static int64_t clock_ms = 1000;

static int64_t now_ms(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

static void sleep_ms(void *ctx, long ms)
{
    (void)ctx;
    (void)ms;
}

static int req(void *ctx, const char *method, const char *path, const char *body,
               struct httpc_resp *r)
{
    (void)ctx;
    (void)body;
    memset(r, 0, sizeof *r);
    buf_init(&r->body, 1 << 20);
    snprintf(asked, sizeof asked, "%s %s", method, path);
    n_asked++;
    if (!answer_status) {
        snprintf(r->err, sizeof r->err, "Connection refused");
        return -1;
    }
    r->status = answer_status;
    buf_add(&r->body, answer_body, strlen(answer_body));
    return 0;
}

static struct deployer *make(void)
{
    static char *argv[] = {"autodeployd", "--marathon-url", "http://127.0.0.1:1"};
    static struct config c;
    enum config_action a;
    char err[256];
    config_free(&c);
    memset(&c, 0, sizeof c);
    if (config_load(&c, 3, argv, NULL, &a, err, sizeof err) < 0) {
        fprintf(stderr, "config: %s\n", err);
        exit(2);
    }
    config_publish(&c);
    struct deploy_env env = {.now_ms = now_ms, .sleep_ms = sleep_ms, .request = req};
    return deployer_new_env(&c, NULL, &env, err, sizeof err);
}

/* Runs deployer_apps_json against body (status 200) into a buffer of max bytes, 10 s after the
 * previous run (Marathon's listing is shared for 2 s). */
static cJSON *run(struct deployer *d, long status, const char *body, size_t max, int *code)
{
    clock_ms += 10000;
    struct buf b;
    buf_init(&b, max);
    answer_status = status;
    answer_body = body;
    *code = deployer_apps_json(d, &b);
    cJSON *j = cJSON_Parse(b.data ? b.data : "");
    CHECK(j != NULL, "the answer is not JSON: %s", b.data ? b.data : "(empty)");
    buf_free(&b);
    return j;
}

static const cJSON *app_by_id(const cJSON *j, const char *id)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(j, "apps"))
    {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (cJSON_IsString(x) && !strcmp(x->valuestring, id)) return a;
    }
    return NULL;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static const char LISTING[] =
    "{\"apps\":["
    "{\"id\":\"/svc/web\",\"container\":{\"docker\":{\"image\":\"reg:5000/web:main-1\"}},"
    "\"labels\":{\"autodeploy\":\" web:main-*\\t\\nsemver:web:^1.2 \",\"team\":\"payments\","
    "\"autodeploy.paused\":\"true\",\"autodeploy.force\":\"true\",\"autodeploy.digest\":\"sha256:"
    "aa\",\"autodeploy.pushed-by\":\"<b>ci</b>\",\"autodeploy.pushed-at\":\"x\","
    "\"autodeploy.deployed-at\":\"y\"}},"
    "{\"id\":\"/svc/bad\",\"container\":{\"docker\":{\"image\":\"bad:1\"}},"
    "\"labels\":{\"autodeploy\":\"*:*\"}},"
    "{\"id\":\"/svc/odd\",\"labels\":{\"autodeploy\":7}},"
    "\"not an app\"],\"other\":1}";

static void shows_each_app(void)
{
    struct deployer *d = make();
    int code;
    cJSON *j = run(d, 200, LISTING, 1 << 20, &code);
    CHECK(code == 200, "code %d", code);
    CHECK_STR(asked, "GET /v2/apps?label=autodeploy");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "apps")) == 3, "3 apps");
    const cJSON *web = app_by_id(j, "/svc/web");
    CHECK(web != NULL, "no /svc/web");
    CHECK_STR(str(web, "image"), "reg:5000/web:main-1");
    char *patterns = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(web, "patterns"));
    CHECK_STR(patterns, "[\"web:main-*\",\"semver:web:^1.2\"]");
    free(patterns);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(web, "label_error")), "label_error");
    /* The operator's settings, not what autodeployd writes, nor other teams' labels. */
    char *labels = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(web, "labels"));
    CHECK_STR(labels, "{\"autodeploy.paused\":\"true\",\"autodeploy.force\":\"true\"}");
    free(labels);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(web, "paused")), "paused");
    CHECK_STR(str(web, "digest"), "sha256:aa");
    CHECK_STR(str(web, "pushed_by"), "<b>ci</b>");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(web, "last")), "no record yet");

    const cJSON *bad = app_by_id(j, "/svc/bad");
    CHECK(bad && str(bad, "label_error") &&
              strstr(str(bad, "label_error"), "wildcard in the repository part"),
          "label_error of *:*: %s", bad && str(bad, "label_error") ? str(bad, "label_error") : "");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(bad, "paused")), "bad paused");
    const cJSON *odd = app_by_id(j, "/svc/odd");
    CHECK(odd && str(odd, "label_error") &&
              !strcmp(str(odd, "label_error"), "the label is not a string"),
          "odd label");
    CHECK(odd && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(odd, "image")), "odd image");
    cJSON_Delete(j);

    /* The newest record of the app is its last outcome. */
    struct push p;
    memset(&p, 0, sizeof p);
    snprintf(p.repository, sizeof p.repository, "web");
    snprintf(p.tag, sizeof p.tag, "main-2");
    uint64_t first = record_new(d, &p, "/svc/web");
    record_set(d, first, "failed", "it crashed", NULL);
    snprintf(p.tag, sizeof p.tag, "main-3");
    uint64_t second = record_new(d, &p, "/svc/web");
    record_set(d, second, "skipped", "paused", NULL);
    record_new(d, &p, "/svc/other");
    j = run(d, 200, LISTING, 1 << 20, &code);
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(app_by_id(j, "/svc/web"), "last");
    CHECK_STR(str(last, "state"), "skipped");
    CHECK_STR(str(last, "reason"), "paused");
    CHECK_STR(str(last, "image"), "web:main-3");
    CHECK(str(last, "at") && strlen(str(last, "at")) == 24, "at");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(app_by_id(j, "/svc/bad"), "last")),
          "another app's record");
    cJSON_Delete(j);
    deployer_free(d);
}

static void failures_answer_an_error(void)
{
    static const struct {
        long status;
        const char *body;
        size_t max;
        int code;
        const char *error; /* part of the error */
    } cases[] = {
        {0, "", 1 << 20, 502, "Connection refused"},
        {500, "{\"message\":\"leader lost\"}", 1 << 20, 502, "leader lost"},
        {401, "{\"message\":\"Unauthorized\"}", 1 << 20, 502, "401"},
        {200, "not json", 1 << 20, 502, "not JSON"},
        {200, "{\"apps\":{}}", 1 << 20, 502, "no \"apps\" array"},
        {200, "{\"apps\":[{\"id\":\"/a\\u0000b\"}]}", 1 << 20, 502, "not JSON"},
        {200, "[]", 1 << 20, 502, "no \"apps\" array"},
        /* Too large for the answer's buffer: an error, never a shortened list. */
        {200, LISTING, 400, 500, "too large"},
    };
    struct deployer *d = make();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int code;
        cJSON *j = run(d, cases[i].status, cases[i].body, cases[i].max, &code);
        const char *e = str(j, "error");
        CHECK(code == cases[i].code, "case %zu: code %d", i, code);
        CHECK(e && strstr(e, cases[i].error), "case %zu: error %s", i, e ? e : "(none)");
        CHECK(!cJSON_GetObjectItemCaseSensitive(j, "apps"), "case %zu: a list", i);
        cJSON_Delete(j);
    }
    deployer_free(d);
}

/* However many ask (consoles, scripts), Marathon is read at most once per 2 s; a failure is
 * shared too. */
static void marathon_is_asked_once_per_interval(void)
{
    struct deployer *d = make();
    int code;
    cJSON *j = run(d, 200, LISTING, 1 << 20, &code);
    int before = n_asked;
    for (int i = 0; i < 20; i++) { /* 20 requests in 1.9 s */
        clock_ms += 95;
        struct buf b;
        buf_init(&b, 1 << 20);
        answer_status = 500; /* would be an error: the shared listing is answered instead */
        CHECK(deployer_apps_json(d, &b) == 200, "request %d answered from the listing", i);
        CHECK(b.data && strstr(b.data, "/svc/web"), "request %d lists the apps", i);
        buf_free(&b);
    }
    CHECK(n_asked == before, "Marathon asked %d times within 2 s", n_asked - before);
    cJSON_Delete(j);
    clock_ms += 200; /* 2.1 s after the listing: asked again */
    struct buf b;
    buf_init(&b, 1 << 20);
    answer_status = 500;
    answer_body = "{\"message\":\"leader lost\"}";
    CHECK(deployer_apps_json(d, &b) == 502, "a new listing, failed");
    CHECK(n_asked == before + 1, "asked once more");
    buf_reset(&b);
    clock_ms += 1000;
    answer_status = 200;
    answer_body = LISTING;
    CHECK(deployer_apps_json(d, &b) == 502 && strstr(b.data, "leader lost"), "the failure shared");
    CHECK(n_asked == before + 1, "not asked within 2 s of the failure");
    buf_free(&b);
    deployer_free(d);
}

int main(void)
{
    shows_each_app();
    failures_answer_an_error();
    marathon_is_asked_once_per_interval();
    return TEST_DONE("test_apps");
}
