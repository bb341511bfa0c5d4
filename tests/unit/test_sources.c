/*
 * test_sources.c: every other registry's parser against its fixtures (driven by
 * tests/fixtures/webhooks/expected.jsonl: a new fixture is tested by adding a line), then
 * malformed and hostile bodies from a table.
 */
#include "sources.h"
#include "testlib.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#define MAXP 8

struct got {
    int n_push, n_ignored, n_rejected;
    struct push pushes[MAXP];
    char reason[160];
};

static void collect(const struct event_item *it, void *ctx)
{
    struct got *g = ctx;
    if (it->verdict == EVENT_PUSH) {
        if (g->n_push < MAXP) g->pushes[g->n_push] = it->push;
        g->n_push++;
        return;
    }
    snprintf(g->reason, sizeof g->reason, "%s", it->reason);
    if (it->verdict == EVENT_IGNORED)
        g->n_ignored++;
    else
        g->n_rejected++;
}

/* got equals want (NULL reads as ""), reported with the fixture's name. */
#define EQ(file, what, got, want)                                                                  \
    do {                                                                                           \
        const char *eq_w = (want) ? (want) : "";                                                   \
        CHECK(!strcmp((got), eq_w), "%s %s: got \"%s\", want \"%s\"", (file), (what), (got),       \
              eq_w);                                                                               \
    } while (0)

static int run(const struct source *s, const char *body, size_t len, const char *event,
               struct got *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    err[0] = '\0';
    return s->parse(body, len, event, collect, g, err, errlen);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jint(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static void check_fixture(const cJSON *e)
{
    const char *file = jstr(e, "file"), *name = jstr(e, "source"), *event = jstr(e, "event");
    const struct source *s = source_find(name);
    char path[256], err[256];
    snprintf(path, sizeof path, "tests/fixtures/webhooks/%s", file ? file : "?");
    size_t len = 0;
    char *body = tl_read_file(path, &len);
    CHECK(s && body, "%s: source %s known and file readable", file, name ? name : "?");
    if (!s || !body) {
        free(body);
        return;
    }
    struct got g;
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(e, "pushes");
    int n = run(s, body, len, event, &g, err, sizeof err);
    int want_items = cJSON_GetArraySize(want) + jint(e, "ignored") + jint(e, "rejected");
    CHECK(n == want_items, "%s: %d items, want %d (%s)", file, n, want_items, err);
    CHECK(g.n_push == cJSON_GetArraySize(want), "%s: %d pushes, want %d (%s)", file, g.n_push,
          cJSON_GetArraySize(want), g.reason);
    CHECK(g.n_ignored == jint(e, "ignored"), "%s: %d ignored (%s)", file, g.n_ignored, g.reason);
    CHECK(g.n_rejected == jint(e, "rejected"), "%s: %d rejected (%s)", file, g.n_rejected,
          g.reason);
    int i = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, want)
    {
        if (i >= g.n_push || i >= MAXP) break;
        const struct push *p = &g.pushes[i++];
        EQ(file, "host", p->host, jstr(w, "host"));
        EQ(file, "repository", p->repository, jstr(w, "repository"));
        EQ(file, "tag", p->tag, jstr(w, "tag"));
        EQ(file, "digest", p->digest, jstr(w, "digest"));
        EQ(file, "pusher", p->pusher, jstr(w, "pusher"));
        EQ(file, "source", p->source, name);
    }
    /* Re-delivery of the same body names the same pushes with the same ids. */
    struct got again;
    run(s, body, len, event, &again, err, sizeof err);
    for (int k = 0; k < g.n_push && k < MAXP; k++)
        EQ(file, "stable id", again.pushes[k].event_id, g.pushes[k].event_id);
    free(body);
}

static void test_fixtures(void)
{
    char *index = tl_read_file("tests/fixtures/webhooks/expected.jsonl", NULL);
    CHECK(index != NULL, "expected.jsonl readable");
    if (!index) return;
    int lines = 0;
    for (char *line = strtok(index, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *e = cJSON_Parse(line);
        CHECK(e != NULL, "expected.jsonl line %d parses", lines + 1);
        if (e) check_fixture(e);
        cJSON_Delete(e);
        lines++;
    }
    CHECK(lines >= 26, "every fixture listed (%d)", lines);
    free(index);
}

static const char D[] = "sha256:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e2";

/* Bodies that must be refused (-1, a reason) or give exactly the verdicts listed. */
static const struct {
    const char *source, *event, *body;
    int rc, push, ignored, rejected;
    const char *reason; /* part of err (rc -1) or of the last non-push reason */
} cases[] = {
    {"harbor", NULL, "", -1, 0, 0, 0, "empty"},
    {"harbor", NULL, "[1]", -1, 0, 0, 0, "JSON object"},
    {"harbor", NULL, "{\"type\":\"PUSH_ARTIFACT\"}", -1, 0, 0, 0, "event_data"},
    {"harbor", NULL, "{\"type\":\"PUSH_ARTIFACT\",\"event_data\":{}}", -1, 0, 0, 0, "resources"},
    {"harbor", NULL, "{\"type\":\"DELETE_ARTIFACT\",\"event_data\":{}}", 1, 0, 1, 0, "not a push"},
    {"harbor", NULL,
     "{\"type\":\"PUSH_ARTIFACT\",\"event_data\":{\"repository\":{\"repo_full_name\":"
     "\"Team/Web\"},\"resources\":[{\"tag\":\"v1\",\"digest\":\"\"}]}}",
     1, 0, 0, 1, "repository"},
    {"harbor", NULL,
     "{\"type\":\"PUSH_ARTIFACT\",\"event_data\":{\"repository\":{\"repo_full_name\":"
     "\"team/web\"},\"resources\":[{\"tag\":\"v1\",\"digest\":\"sha256:abc\"}]}}",
     1, 0, 0, 1, "digest"},
    {"harbor", NULL,
     "{\"type\":\"PUSH_ARTIFACT\",\"event_data\":{\"repository\":{\"repo_full_name\":"
     "\"team/web\"},\"resources\":[{\"tag\":\"v1;rm\"}]}}",
     1, 0, 0, 1, "tag"},
    {"github", NULL, "{}", -1, 0, 0, 0, "X-GitHub-Event"},
    {"github", "package", "{\"action\":\"published\"}", -1, 0, 0, 0, "package"},
    {"github", "push", "{\"ref\":\"main\"}", 1, 0, 1, 0, "not a package event"},
    {"github", "package", "{\"action\":\"deleted\",\"package\":{\"package_type\":\"container\"}}",
     1, 0, 1, 0, "not published"},
    {"github", "package",
     "{\"action\":\"published\",\"package\":{\"name\":\"a\",\"namespace\":\"o\",\"package_type\":"
     "\"container\",\"package_version\":{\"container_metadata\":{\"tag\":{\"name\":\"\"}}}}}",
     1, 0, 1, 0, "without a tag"},
    /* GitHub's default content type, application/x-www-form-urlencoded: payload=<JSON>. */
    {"github", "package",
     "payload=%7B%22action%22%3A%22published%22%2C%22package%22%3A%7B%22name%22%3A%22a%22%2C%"
     "22namespace%22%3A%22o%22%2C%22package_type%22%3A%22container%22%2C%22package_version%22%3A%"
     "7B%22container_metadata%22%3A%7B%22tag%22%3A%7B%22name%22%3A%22v1%22%2C%22digest%22%3A%"
     "22sha256%3A0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e2%22%7D%7D%7D%7D%"
     "7D",
     1, 1, 0, 0, NULL},
    {"github", "package", "payload=%7B%7", -1, 0, 0, 0, "URL-encoded"},
    {"dockerhub", NULL, "{\"push_data\":{}}", -1, 0, 0, 0, "repository"},
    {"dockerhub", NULL, "{\"push_data\":{\"tag\":\"1\"},\"repository\":{\"repo_name\":\"nginx\"}}",
     1, 1, 0, 0, NULL},
    {"dockerhub", NULL, "{\"push_data\":{\"tag\":\"1\"},\"repository\":{}}", 1, 0, 0, 1,
     "repository"},
    {"quay", NULL, "{\"docker_url\":\"quay.io/a/b\"}", -1, 0, 0, 0, "updated_tags"},
    {"quay", NULL, "{\"docker_url\":\"quay.io/a/b\",\"updated_tags\":[]}", 1, 0, 1, 0,
     "without updated tags"},
    {"quay", NULL, "{\"docker_url\":\"quay.io/a/b\",\"updated_tags\":[\"ok\",7,\"-bad\"]}", 3, 1, 0,
     2, "tag"},
    {"artifactory", NULL, "{\"domain\":\"docker\",\"event_type\":\"pushed\"}", -1, 0, 0, 0, "data"},
    {"artifactory", NULL, "{\"domain\":\"artifact\",\"event_type\":\"deployed\",\"data\":{}}", 1, 0,
     1, 0, "not a Docker"},
    {"artifactory", NULL,
     "{\"domain\":\"docker\",\"event_type\":\"pushed\",\"data\":{\"image_name\":\"a/b\",\"tag\":"
     "\"1\",\"sha256\":\"XYZ\"}}",
     1, 0, 0, 1, "digest"},
    {"artifactory", NULL,
     "{\"domain\":\"docker\",\"event_type\":\"pushed\",\"data\":{\"image_name\":\"a/b\",\"tag\":"
     "\"1\"}}",
     1, 1, 0, 0, NULL}, /* no sha256: a push without a digest */
    {"ecr", NULL,
     "{\"detail-type\":\"ECR Image Action\",\"detail\":{\"action-type\":\"PUSH\",\"result\":"
     "\"SUCCESS\",\"repository-name\":\"r\",\"image-tag\":\"1\",\"image-digest\":\"\"}}",
     1, 1, 0, 0, NULL},
    {"nexus", NULL, "{\"component\":{}}", -1, 0, 0, 0, "action"},
    {"nexus", NULL, "{\"action\":\"CREATED\",\"repository\":{\"name\":\"r\"}}", 1, 0, 1, 0,
     "not about a component"},
    {"ecr", NULL, "{\"detail-type\":\"ECR Image Action\"}", -1, 0, 0, 0, "detail"},
    {"ecr", NULL,
     "{\"detail-type\":\"ECR Image Scan\",\"detail\":{\"action-type\":\"PUSH\",\"result\":"
     "\"SUCCESS\"}}",
     1, 0, 1, 0, "not an image push"},
    {"ecr", NULL,
     "{\"detail-type\":\"ECR Image Action\",\"detail\":{\"action-type\":\"PUSH\",\"result\":"
     "\"SUCCESS\",\"repository-name\":\"r\"}}",
     1, 0, 1, 0, "without a tag"},
    {"gar", NULL, "{\"message\":{}}", -1, 0, 0, 0, "data"},
    {"gar", NULL, "{\"message\":{\"data\":\"!!!\"}}", -1, 0, 0, 0, "base64"},
    {"gar", NULL, "{\"message\":{\"data\":\"WzFd\"}}", -1, 0, 0, 0, "JSON object"}, /* [1] */
    {"gar", NULL, "{\"message\":{\"data\":\"e30=\"}}", 1, 0, 1, 0, "not INSERT"},   /* {} */
    {"acr", NULL, "{\"action\":\"pull\"}", 1, 0, 1, 0, "not a push"},
    {"acr", NULL, "{\"target\":{}}", -1, 0, 0, 0, "action"},
    {"acr", NULL, "{\"events\":[]} x", -1, 0, 0, 0, "trailing"},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct source *s = source_find(cases[i].source);
        struct got g;
        char err[256];
        int rc = run(s, cases[i].body, strlen(cases[i].body), cases[i].event, &g, err, sizeof err);
        CHECK(rc == cases[i].rc, "case %zu (%s): rc %d want %d (%s)", i, cases[i].source, rc,
              cases[i].rc, err);
        CHECK(g.n_push == cases[i].push && g.n_ignored == cases[i].ignored &&
                  g.n_rejected == cases[i].rejected,
              "case %zu (%s): %d/%d/%d (%s)", i, cases[i].source, g.n_push, g.n_ignored,
              g.n_rejected, g.reason);
        const char *where = rc < 0 ? err : g.reason;
        if (cases[i].reason)
            CHECK(strstr(where, cases[i].reason) != NULL, "case %zu: reason \"%s\" has \"%s\"", i,
                  where, cases[i].reason);
        if (rc < 0) CHECK(err[0] != '\0', "case %zu: a refusal says why", i);
    }
}

/* Details the fixtures do not show. */
static void test_details(void)
{
    struct got g;
    char err[256];
    const struct source *hub = source_find("dockerhub");
    const char *b =
        "{\"push_data\":{\"tag\":\"1\",\"pushed_at\":1700000000,\"pusher\":\"a\\u0007b\"},"
        "\"repository\":{\"repo_name\":\"nginx\"}}";
    run(hub, b, strlen(b), NULL, &g, err, sizeof err);
    CHECK_STR(g.pushes[0].repository, "library/nginx", "official image under library/");
    CHECK_STR(g.pushes[0].timestamp, "2023-11-14T22:13:20Z", "pushed_at as RFC 3339");
    CHECK_STR(g.pushes[0].pusher, "ab", "control characters leave the pusher");
    CHECK(strncmp(g.pushes[0].event_id, "dockerhub-", 10) == 0 &&
              strlen(g.pushes[0].event_id) == 42,
          "an id derived from repository, tag and time: %s", g.pushes[0].event_id);
    const char *b2 = "{\"push_data\":{\"tag\":\"1\",\"pushed_at\":1700000001},"
                     "\"repository\":{\"repo_name\":\"nginx\"}}";
    struct got g2;
    run(hub, b2, strlen(b2), NULL, &g2, err, sizeof err);
    CHECK(strcmp(g.pushes[0].event_id, g2.pushes[0].event_id) != 0,
          "another push of the tag has another id");

    const struct source *nexus = source_find("nexus");
    char *body = tl_read_file("tests/fixtures/webhooks/nexus_component_created.json", NULL);
    run(nexus, body, strlen(body), NULL, &g, err, sizeof err);
    CHECK_STR(g.pushes[0].timestamp, "2016-11-10T23:57:49.664+00:00", "Nexus time made RFC 3339");
    CHECK(g.pushes[0].timestamp_ns == 1478822269664000000LL, "Nexus time parsed");
    free(body);

    const struct source *gh = source_find("github");
    const char *b3 = "{\"action\":\"updated\",\"package\":{\"name\":\"App\",\"owner\":{\"login\":"
                     "\"Org\"},\"package_type\":\"container\",\"package_version\":{\"name\":\"";
    char big[512];
    snprintf(big, sizeof big, "%s%s\",\"container_metadata\":{\"tag\":{\"name\":\"v2\"}}}}}", b3,
             D);
    run(gh, big, strlen(big), "package", &g, err, sizeof err);
    CHECK(g.n_push == 1, "updated counts as a push (%s)", g.reason);
    CHECK_STR(g.pushes[0].repository, "org/app", "owner login when no namespace, lower-cased");
    CHECK_STR(g.pushes[0].digest, D, "the version name is the digest when the tag has none");

    /* A GAR digest naming another image than the tag is not this tag's digest. */
    const struct source *gar = source_find("gar");
    char inner[512], enc[800], outer[1024];
    snprintf(inner, sizeof inner,
             "{\"action\":\"INSERT\",\"tag\":\"gcr.io/p/a:1\",\"digest\":\"gcr.io/p/b@%s\"}", D);
    EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)inner, (int)strlen(inner));
    snprintf(outer, sizeof outer, "{\"message\":{\"data\":\"%s\",\"messageId\":\"1\"}}", enc);
    run(gar, outer, strlen(outer), NULL, &g, err, sizeof err);
    CHECK(g.n_rejected == 1 && strstr(g.reason, "another image"),
          "GAR digest of another image rejected (%s)", g.reason);

    const char *b5 = "{\"action\":\"published\",\"package\":{\"name\":\"a\",\"namespace\":\"o\","
                     "\"ecosystem\":\"CONTAINER\",\"package_version\":{"
                     "\"container_metadata\":{\"tag\":{\"name\":\"2.0\"}}}}}";
    run(gh, b5, strlen(b5), "package", &g, err, sizeof err);
    CHECK(g.n_push == 1, "ecosystem CONTAINER without package_type (%s)", g.reason);
    /* An old-style version name (not a digest) is no digest. */
    const char *b4 = "{\"action\":\"published\",\"package\":{\"name\":\"a\",\"namespace\":\"o\","
                     "\"package_type\":\"CONTAINER\",\"package_version\":{\"name\":\"1.0\","
                     "\"container_metadata\":{\"tag\":{\"name\":\"1.0\"}}}}}";
    run(gh, b4, strlen(b4), "package", &g, err, sizeof err);
    CHECK(g.n_push == 1 && g.pushes[0].digest[0] == '\0', "no digest taken from a version name");
    CHECK(source_find("registry") == NULL && source_find(NULL) == NULL, "no such source");
    CHECK(source_count() == 9, "nine sources");
}

/* Artifactory: where the pushed image lives follows the Docker Access Method. */
static void test_jfrog_access(void)
{
    static const struct {
        const char *method; /* NULL: the default */
        const char *origin;
        const char *host, *repository;
    } methods[] = {
        {NULL, "https://myorg.jfrog.io", "myorg.jfrog.io", "docker-local/team/app"},
        {"repository-path", "https://myorg.jfrog.io/", "myorg.jfrog.io", "docker-local/team/app"},
        {"subdomain", "https://art.example.com", "docker-local.art.example.com", "team/app"},
        {"port", "https://art.example.com:8443", "", "team/app"},
        {"repository-path", "https://art.example.com:8443/artifactory", "art.example.com",
         "docker-local/team/app"},
    };
    const struct source *jf = source_find("artifactory");
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char body[512], err[256];
        struct got g;
        snprintf(body, sizeof body,
                 "{\"domain\":\"docker\",\"event_type\":\"pushed\",\"jpd_origin\":\"%s\","
                 "\"data\":{\"repo_key\":\"docker-local\",\"image_name\":\"team/app\","
                 "\"tag\":\"2\"}}",
                 methods[i].origin);
        CHECK(run(jf, body, strlen(body), methods[i].method, &g, err, sizeof err) == 1 &&
                  g.n_push == 1,
              "case %zu: one push (%s)", i, err);
        CHECK(!strcmp(g.pushes[0].host, methods[i].host), "case %zu: host %s, want %s", i,
              g.pushes[0].host, methods[i].host);
        CHECK(!strcmp(g.pushes[0].repository, methods[i].repository),
              "case %zu: repository %s, want %s", i, g.pushes[0].repository, methods[i].repository);
    }
}

int main(void)
{
    test_fixtures();
    test_table();
    test_details();
    test_jfrog_access();
    return TEST_DONE("test_sources");
}
