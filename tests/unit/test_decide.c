/*
 * test_decide.c: the deployer's rules (decide.h) on real-shaped Marathon apps: what an app view
 * reads, which ids and prefixes keep an app out, the image a push turns into, which of several
 * waiting pushes deploys, what a job does with it, the exact update and rollback bodies, and who
 * owns the app once a deployment has ended.
 */
#include "decide.h"
#include "testlib.h"

#include <cjson/cJSON.h>

#define REG "registry.example.com:5000"
#define DIGEST_A "sha256:1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcdef01"
#define DIGEST_B "sha256:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e2"
#define OLD_IMAGE REG "/strava/foo:master-1"
#define NEW_IMAGE REG "/strava/foo:master-2"
#define DEPLOYMENT "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43"
#define PUSH_TS "2026-11-25T10:00:00Z"

/* Marathon versions: the app's previous configuration, ours, and a later scale. */
#define V0 "2026-11-25T09:00:06.421Z"
#define V1 "2026-11-25T10:00:01.250Z"
#define V2 "2026-11-25T10:07:30.000Z"

/* One task as GET /v2/apps/{id}?embed=apps.tasks shows it. */
#define TASK(n, state, version)                                                                    \
    "{\"id\":\"svc_foo.instance-" n "\",\"appId\":\"/svc/foo\",\"host\":\"10.0.3." n "\","         \
    "\"slaveId\":\"agent-" n "\",\"state\":\"" state "\",\"stagedAt\":\"" version "\","            \
    "\"startedAt\":\"" version "\",\"version\":\"" version "\",\"ports\":[3100" n "]}"

/* An app as GET /v2/apps/{id}?embed=apps.tasks answers it (the "app" member): on master-1, two
 * tasks, a Marathon 1.5+ container (portMappings on the container, parameters on docker). */
static const char base_app[] =
    "{\"id\":\"/svc/foo\",\"cmd\":null,\"args\":null,\"user\":null,"
    "\"env\":{\"JAVA_OPTS\":\"-Xmx1g\",\"SPRING_PROFILES_ACTIVE\":\"prod\"},"
    "\"instances\":2,\"cpus\":0.5,\"mem\":512,\"disk\":0,\"gpus\":0,\"executor\":\"\","
    "\"constraints\":[[\"hostname\",\"UNIQUE\"]],\"uris\":[],\"fetch\":[],\"storeUrls\":[],"
    "\"backoffSeconds\":1,\"backoffFactor\":1.15,\"maxLaunchDelaySeconds\":3600,"
    "\"container\":{\"type\":\"DOCKER\","
    "\"volumes\":[{\"containerPath\":\"/data\",\"hostPath\":\"/srv/foo\",\"mode\":\"RW\"}],"
    "\"docker\":{\"image\":\"" OLD_IMAGE "\",\"forcePullImage\":false,\"privileged\":false,"
    "\"parameters\":[{\"key\":\"log-driver\",\"value\":\"journald\"},"
    "{\"key\":\"ulimit\",\"value\":\"nofile=65536\"}]},"
    "\"portMappings\":[{\"containerPort\":8080,\"hostPort\":0,\"servicePort\":10101,"
    "\"protocol\":\"tcp\",\"name\":\"http\",\"labels\":{}}]},"
    "\"healthChecks\":[{\"protocol\":\"MESOS_HTTP\",\"path\":\"/health\",\"portIndex\":0,"
    "\"gracePeriodSeconds\":300,\"intervalSeconds\":60,\"timeoutSeconds\":20,"
    "\"maxConsecutiveFailures\":3}],"
    "\"upgradeStrategy\":{\"minimumHealthCapacity\":1,\"maximumOverCapacity\":1},"
    "\"labels\":{\"autodeploy\":\"strava/foo:master-*\",\"autodeploy.digest\":\"" DIGEST_A "\","
    "\"autodeploy.pushed-by\":\"bob\",\"autodeploy.deployed-at\":\"2026-11-25T09:00:05Z\","
    "\"autodeploy.pushed-at\":\"2026-11-25T09:00:00Z\","
    "\"autodeploy.slack-channel\":\"#foo-deploys\",\"team\":\"core\","
    "\"HAPROXY_GROUP\":\"external\"},"
    "\"version\":\"" V0 "\","
    "\"versionInfo\":{\"lastScalingAt\":\"" V0 "\",\"lastConfigChangeAt\":\"" V0 "\"},"
    "\"tasksStaged\":0,\"tasksRunning\":2,\"tasksHealthy\":2,\"tasksUnhealthy\":0,"
    "\"deployments\":[],"
    "\"tasks\":[" TASK("1", "TASK_RUNNING", V0) "," TASK("2", "TASK_RUNNING", V0) "]}";

/* --- helpers -------------------------------------------------------------------------------- */

static cJSON *app_new(void)
{
    cJSON *app = cJSON_Parse(base_app);
    if (!app) {
        fprintf(stderr, "base_app does not parse\n");
        exit(2);
    }
    return app;
}

/* Sets o[k] to item, or removes it when item is NULL. */
static void put(cJSON *o, const char *k, cJSON *item)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    if (item) cJSON_AddItemToObject(o, k, item);
}

static void put_str(cJSON *o, const char *k, const char *v)
{
    put(o, k, v ? cJSON_CreateString(v) : NULL);
}

static cJSON *docker_of(cJSON *app)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(app, "container"),
                                            "docker");
}

static void set_label(cJSON *app, const char *k, const char *v)
{
    put_str(cJSON_GetObjectItemCaseSensitive(app, "labels"), k, v);
}

static void set_image(cJSON *app, const char *image)
{
    put_str(docker_of(app), "image", image);
}

static void set_deployment(cJSON *app, const char *id)
{
    cJSON *deps = cJSON_CreateArray();
    if (id) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "id", id);
        cJSON_AddItemToArray(deps, d);
    }
    put(app, "deployments", deps);
}

static const char *label_of(const cJSON *body, const char *k)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(body, "labels"), k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static struct push mkpush(const char *repo, const char *tag, const char *digest, const char *ts,
                          const char *pusher)
{
    struct push p;
    memset(&p, 0, sizeof p);
    snprintf(p.repository, sizeof p.repository, "%s", repo);
    snprintf(p.tag, sizeof p.tag, "%s", tag);
    snprintf(p.digest, sizeof p.digest, "%s", digest);
    snprintf(p.pusher, sizeof p.pusher, "%s", pusher ? pusher : "");
    snprintf(p.host, sizeof p.host, "%s", REG);
    if (ts && *ts) {
        int rc = event_parse_rfc3339(ts, &p.timestamp_ns);
        if (rc != 0) {
            fprintf(stderr, "test timestamp %s does not parse\n", ts);
            exit(2);
        }
        snprintf(p.timestamp, sizeof p.timestamp, "%s", ts);
    }
    return p;
}

static int has(const char *s, const char *sub)
{
    return s && sub && strstr(s, sub) != NULL;
}

/* 1 when every top-level key of body is container or labels. */
static int only_container_and_labels(const cJSON *body)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, body)
    {
        if (strcmp(it->string, "container") != 0 && strcmp(it->string, "labels") != 0) return 0;
    }
    return 1;
}

/* --- decide_app_view ------------------------------------------------------------------------ */

static void test_app_view(void)
{
    struct app_view v;
    cJSON *app = app_new();

    set_label(app, "autodeploy.paused", "true");
    set_label(app, "autodeploy.pin-digest", "yes");
    set_label(app, "autodeploy.force", "1");
    put_str(app, "version", V2); /* scaled after the last configuration change */
    put_str(cJSON_GetObjectItemCaseSensitive(app, "versionInfo"), "lastScalingAt", V2);
    CHECK(decide_app_view(app, "autodeploy", &v) == 0, "app view of an object");
    CHECK(v.json == app, "json is the app");
    CHECK_STR(v.id, "/svc/foo", "id");
    CHECK_STR(v.image, OLD_IMAGE, "image");
    CHECK_STR(v.version, V2, "version");
    CHECK_STR(v.config_version, V0, "config_version is versionInfo.lastConfigChangeAt");
    CHECK_STR(v.digest, DIGEST_A, "digest label");
    CHECK_STR(v.pushed_at, "2026-11-25T09:00:00Z", "pushed-at label");
    CHECK_STR(v.channel, "#foo-deploys", "slack-channel label");
    CHECK_STR(v.pattern, "strava/foo:master-*", "configured label");
    CHECK(v.paused == 1 && v.pin == 1 && v.force == 1, "paused/pin/force: %d %d %d", v.paused,
          v.pin, v.force);
    CHECK(v.instances == 2, "instances %d", v.instances);
    CHECK(v.deployment == NULL, "deployments [] is none");

    CHECK(decide_app_view(app, "deploy-me", &v) == 0 && v.pattern == NULL,
          "another --label the app lacks: no pattern");
    CHECK(decide_app_view(app, NULL, &v) == 0 && v.pattern == NULL, "NULL label: no pattern");

    /* Two deployments listed (ours and a scale queued behind it): the first is the one. */
    cJSON *deps = cJSON_Parse("[{\"id\":\"" DEPLOYMENT "\"},{\"id\":\"second\"}]");
    put(app, "deployments", deps);
    set_label(app, "autodeploy.paused", "false");
    set_label(app, "autodeploy.pin-digest", NULL);
    set_label(app, "autodeploy.force", "no");
    put(app, "instances", cJSON_CreateNumber(0));
    CHECK(decide_app_view(app, "autodeploy", &v) == 0, "second view");
    CHECK_STR(v.deployment, DEPLOYMENT, "first listed deployment");
    CHECK(v.paused == 0 && v.pin == 0 && v.force == 0, "false/absent/no labels: %d %d %d", v.paused,
          v.pin, v.force);
    CHECK(v.instances == 0, "instances 0 (scaled to zero) is not absent: %d", v.instances);

    /* No versionInfo (an older Marathon, or an app view built from a deployment's target):
     * the configuration version is "version". */
    put(app, "versionInfo", NULL);
    put(app, "instances", NULL);
    put(app, "labels", NULL);
    CHECK(decide_app_view(app, "autodeploy", &v) == 0, "view without versionInfo");
    CHECK_STR(v.config_version, V2, "config_version falls back to version");
    CHECK(v.instances == -1, "instances absent is -1, got %d", v.instances);
    CHECK(!v.digest && !v.pushed_at && !v.channel && !v.pattern && !v.paused && !v.pin && !v.force,
          "no labels: nothing read from them");

    /* versionInfo without lastConfigChangeAt. */
    put(app, "versionInfo", cJSON_Parse("{\"lastScalingAt\":\"" V2 "\"}"));
    CHECK(decide_app_view(app, "autodeploy", &v) == 0 && v.config_version && v.version &&
              v.config_version == v.version,
          "versionInfo without lastConfigChangeAt falls back to version");

    /* No container at all (a command app): no image. */
    put(app, "container", NULL);
    CHECK(decide_app_view(app, "autodeploy", &v) == 0 && v.image == NULL, "no container: no image");
    cJSON_Delete(app);

    static const char *const not_objects[] = {
        "[]", "[{\"id\":\"/svc/foo\"}]", "\"/svc/foo\"", "42", "null", "true"};
    for (size_t i = 0; i < sizeof not_objects / sizeof *not_objects; i++) {
        cJSON *j = cJSON_Parse(not_objects[i]);
        memset(&v, 0x5a, sizeof v);
        CHECK(decide_app_view(j, "autodeploy", &v) == -1, "%s is not an app", not_objects[i]);
        CHECK(v.json == NULL && v.id == NULL && v.image == NULL && v.instances == -1 &&
                  v.deployment == NULL,
              "%s: the view is left empty", not_objects[i]);
        cJSON_Delete(j);
    }
    CHECK(decide_app_view(NULL, "autodeploy", &v) == -1, "NULL is not an app");
}

static void test_is_true(void)
{
    static const struct {
        const char *v;
        int want;
    } cases[] = {
        /* autodeploy.paused=True must pause: any case of true, yes, on; 1 */
        {"true", 1}, {"yes", 1}, {"1", 1},     {"TRUE", 1}, {"True", 1}, {"Yes", 1},
        {"on", 1},   {"ON", 1},  {"false", 0}, {"no", 0},   {"0", 0},    {"", 0},
        {NULL, 0},   {"off", 0}, {"true ", 0}, {" yes", 0}, {"ture", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(decide_is_true(cases[i].v) == cases[i].want, "decide_is_true(\"%s\") != %d",
              cases[i].v ? cases[i].v : "(null)", cases[i].want);
}

/* --- ids, prefixes, pause ------------------------------------------------------------------- */

static void test_app_id(void)
{
    static const struct {
        const char *id;
        int want;
    } cases[] = {
        {"/foo", 1},
        {"/svc/foo", 1},
        {"/a", 1},
        {"/0", 1},
        {"/svc/foo-bar", 1},
        {"/svc/foo--bar", 1},
        {"/svc/foo.bar", 1},
        {"/team-1/svc-2/foo3", 1},
        {"", 0},
        {"foo", 0},
        {"svc/foo", 0},
        {"/", 0},
        {"//foo", 0},
        {"/svc//foo", 0},
        {"/foo/", 0},
        {"/..", 0},
        {"/.", 0},
        {"/svc/..", 0},
        {"/svc/../admin", 0},
        {"/svc/./foo", 0},
        {"/staging/../production/api", 0},
        {"/svc/Foo", 0},
        {"/SVC/foo", 0},
        {"/svc/foo-", 0},
        {"/svc-/foo", 0},
        {"/svc/-foo", 0},
        {"/svc/.foo", 0},
        {"/svc/foo.", 0},
        {"/svc/foo_bar", 0},
        {"/svc/foo bar", 0},
        {"/svc/%2e%2e/admin", 0},
        {"/svc/foo\n", 0},
        {"/svc/foo?x=1", 0},
        {"/svc/f\xc3\xb6o", 0},
        {NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(decide_app_id_valid(cases[i].id) == cases[i].want,
              "decide_app_id_valid(\"%s\") != %d", cases[i].id ? cases[i].id : "(null)",
              cases[i].want);

    /* 255 bytes is the limit; segments of 63 joined by '/'. */
    char id[300];
    memset(id, 'a', sizeof id);
    id[0] = '/';
    id[64] = id[128] = id[192] = '/';
    id[255] = '\0';
    CHECK(strlen(id) == 255 && decide_app_id_valid(id) == 1, "a 255-byte id is valid");
    id[255] = 'a';
    id[256] = '\0';
    CHECK(strlen(id) == 256 && decide_app_id_valid(id) == 0, "a 256-byte id is not");
    id[254] = '-';
    id[255] = '\0';
    CHECK(decide_app_id_valid(id) == 0, "a 255-byte id ending with '-' is not");
}

static void test_gate(void)
{
    static const struct {
        const char *id;
        const char *prefix[3]; /* --app-prefix values, NULL-terminated */
        int paused;
        const char *want; /* substring of the reason; NULL: may deploy */
    } cases[] = {
        {"/svc/foo", {NULL}, 0, NULL},
        {"/svc/foo", {NULL}, 1, "paused (label autodeploy.paused=true)"},
        {"/staging/api", {"/staging/"}, 0, NULL},
        {"/staging/team/api", {"/staging/"}, 0, NULL},
        {"/production/api", {"/staging/"}, 0, "outside the allowed --app-prefix"},
        {"/staging", {"/staging/"}, 0, "outside the allowed --app-prefix"},
        {"/staging-old/api", {"/staging/"}, 0, "outside the allowed --app-prefix"},
        {"/production/api", {"/staging/", "/production/"}, 0, NULL},
        {"/staging/api", {"/staging/", "/production/"}, 0, NULL},
        {"/qa/api", {"/staging/", "/production/"}, 0, "--app-prefix"},
        {"/production/api", {"/staging/", "/production/"}, 1, "paused"},
        {"/qa/api", {"/staging/"}, 1, "--app-prefix"}, /* outside beats paused */
        {"/staging/../production/api", {"/staging/"}, 0, "id rules"},
        {"/staging/./api", {"/staging/"}, 0, "id rules"},
        {"/staging/API", {"/staging/"}, 0, "id rules"},
        {"/staging/api-", {"/staging/"}, 0, "id rules"},
        {"/svc/../foo", {NULL}, 1, "id rules"}, /* id rules beat paused */
        {NULL, {NULL}, 0, "id rules"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct config cfg;
        char *pfx[3];
        memset(&cfg, 0, sizeof cfg);
        for (size_t k = 0; k < 3 && cases[i].prefix[k]; k++)
            pfx[cfg.app_prefix.n++] = (char *)cases[i].prefix[k];
        cfg.app_prefix.v = cfg.app_prefix.n ? pfx : NULL;
        const char *got = decide_gate(&cfg, cases[i].id, cases[i].paused);
        const char *id = cases[i].id ? cases[i].id : "(null)";
        if (cases[i].want)
            CHECK(has(got, cases[i].want), "gate(%s, paused=%d): got \"%s\", want \"%s\"", id,
                  cases[i].paused, got ? got : "(null)", cases[i].want);
        else
            CHECK(got == NULL, "gate(%s, paused=%d): got \"%s\", want deploy", id, cases[i].paused,
                  got);
    }
}

/* --- decide_new_image ----------------------------------------------------------------------- */

static void test_new_image(void)
{
    static const struct {
        const char *current, *repo, *tag;
        int pin;
        const char *want;   /* NULL: -1 */
        const char *reason; /* substring of the reason when -1 */
    } cases[] = {
        {OLD_IMAGE, "strava/foo", "master-2", 0, NEW_IMAGE, NULL},
        {OLD_IMAGE, "strava/foo", "master-2", 1, NEW_IMAGE "@" DIGEST_B, NULL},
        {OLD_IMAGE "@" DIGEST_A, "strava/foo", "master-2", 0, NEW_IMAGE, NULL},
        {OLD_IMAGE "@" DIGEST_A, "strava/foo", "master-2", 1, NEW_IMAGE "@" DIGEST_B, NULL},
        {REG "/strava/foo", "strava/foo", "master-2", 0, NEW_IMAGE, NULL},
        {REG "/strava/foo:master-2", "strava/foo", "master-2", 0, NEW_IMAGE, NULL},
        {"strava/foo:master-1", "strava/foo", "master-2", 0, "strava/foo:master-2", NULL},
        {"nginx:1.25", "nginx", "1.27", 0, "nginx:1.27", NULL},
        {"localhost:5000/foo:1", "foo", "2", 0, "localhost:5000/foo:2", NULL},
        {"[fd00::1]:5000/strava/foo:1", "strava/foo", "2", 0, "[fd00::1]:5000/strava/foo:2", NULL},
        {"docker.io/strava/foo:1", "strava/foo", "v2", 1, "docker.io/strava/foo:v2@" DIGEST_B,
         NULL},
        /* The push's repository wins (a wildcard label may cross repositories); the host stays. */
        {OLD_IMAGE, "strava/foo-canary", "master-2", 0, REG "/strava/foo-canary:master-2", NULL},
        {REG "/Strava/Foo:master-1", "strava/foo", "master-2", 0, NULL, "cannot parse"},
        {REG "/strava/foo:master 1", "strava/foo", "master-2", 0, NULL, "cannot parse"},
        {REG "/strava/foo:master-1@sha256:abc", "strava/foo", "master-2", 0, NULL, "cannot parse"},
        {"registry-.example.com/strava/foo:1", "strava/foo", "2", 0, NULL, "cannot parse"},
        {"", "strava/foo", "master-2", 0, NULL, "cannot parse"},
        {NULL, "strava/foo", "master-2", 0, NULL, "cannot parse"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct push p = mkpush(cases[i].repo, cases[i].tag, DIGEST_B, PUSH_TS, "alice");
        char out[DECIDE_IMAGE_MAX], reason[DECIDE_REASON_MAX] = "";
        const char *cur = cases[i].current ? cases[i].current : "(null)";
        int rc = decide_new_image(cases[i].current, &p, cases[i].pin, out, sizeof out, reason,
                                  sizeof reason);
        if (cases[i].want) {
            CHECK(rc == 0, "new image from %s + %s:%s: -1 (%s)", cur, p.repository, p.tag, reason);
            if (rc == 0)
                CHECK(strcmp(out, cases[i].want) == 0, "new image from %s: got %s, want %s", cur,
                      out, cases[i].want);
        } else {
            CHECK(rc == -1, "new image from %s: 0 (%s), want -1", cur, out);
            CHECK(has(reason, cases[i].reason), "reason for %s: \"%s\", want \"%s\"", cur, reason,
                  cases[i].reason);
        }
    }

    /* The reason quotes the image it could not parse. */
    struct push p = mkpush("strava/foo", "master-2", DIGEST_B, PUSH_TS, "alice");
    char out[DECIDE_IMAGE_MAX], reason[DECIDE_REASON_MAX];
    decide_new_image(REG "/Strava/Foo:master-1", &p, 0, out, sizeof out, reason, sizeof reason);
    CHECK(has(reason, "\"" REG "/Strava/Foo:master-1\""), "reason quotes the image: %s", reason);

    /* The largest valid reference: host of 253 bytes (labels of 63, 63, 63, 61), repository of
     * 255, tag of 128, digest of 71. */
    char host[254], repo[256], tag[129], current[400], want[800];
    memset(host, 'h', sizeof host);
    host[63] = host[127] = host[191] = '.';
    host[253] = '\0';
    snprintf(repo, sizeof repo, "strava/%0248d", 0);
    memset(tag, 't', sizeof tag);
    tag[128] = '\0';
    snprintf(current, sizeof current, "%s/strava/foo:master-1", host);
    snprintf(want, sizeof want, "%s/%s:%s@%s", host, repo, tag, DIGEST_B);
    CHECK(strlen(host) == 253 && strlen(repo) == 255 && strlen(tag) == 128 && strlen(want) == 710,
          "maximal parts: %zu %zu %zu %zu", strlen(host), strlen(repo), strlen(tag), strlen(want));
    CHECK(DECIDE_IMAGE_MAX > 710, "DECIDE_IMAGE_MAX (%d) holds a maximal reference (710 + NUL)",
          DECIDE_IMAGE_MAX);
    p = mkpush(repo, tag, DIGEST_B, PUSH_TS, "alice");
    CHECK(strcmp(p.repository, repo) == 0 && strcmp(p.tag, tag) == 0, "struct push holds them");
    reason[0] = '\0';
    int rc = decide_new_image(current, &p, 1, out, sizeof out, reason, sizeof reason);
    CHECK(rc == 0 && strcmp(out, want) == 0, "maximal reference: rc %d, %zu bytes (%s)", rc,
          rc == 0 ? strlen(out) : 0, reason);
    reason[0] = '\0';
    rc = decide_new_image(current, &p, 1, out, 711, reason, sizeof reason);
    CHECK(rc == 0 && strcmp(out, want) == 0, "maximal reference in exactly 711 bytes: rc %d (%s)",
          rc, reason);

    /* A job's decision holds it. */
    cJSON *app = app_new();
    struct app_view v;
    struct config cfg;
    struct decision d;
    memset(&cfg, 0, sizeof cfg);
    cfg.pin_digest = 1;
    set_image(app, current);
    decide_app_view(app, "autodeploy", &v);
    CHECK(decide_job(&cfg, &v, &p, 0, &d) == 0 && d.action == DECIDE_DEPLOY &&
              strcmp(d.new_image, want) == 0,
          "decide_job with a maximal reference: action %d, %s", d.action, d.reason);
    cJSON_Delete(app);

    /* One byte short: an error with a reason, never a shortened reference. */
    memset(out, 0, sizeof out);
    reason[0] = '\0';
    rc = decide_new_image(current, &p, 1, out, 710, reason, sizeof reason);
    CHECK(rc == -1, "710 bytes for 710 + NUL: rc %d", rc);
    CHECK(has(reason, "too long"), "too long: reason \"%s\"", reason);
    CHECK(out[0] == '\0' || strncmp(out, want, strlen(out)) != 0,
          "too long: out holds a shortened reference of %zu bytes (\"%.40s...\")", strlen(out),
          out);
    memset(out, 0, sizeof out);
    rc = decide_new_image(OLD_IMAGE, &p, 0, out, 16, reason, sizeof reason);
    CHECK(rc == -1 && has(reason, "too long"), "16 bytes: rc %d, reason \"%s\"", rc, reason);
    CHECK(out[0] == '\0' || strncmp(out, REG, strlen(out)) != 0,
          "16 bytes: out holds a shortened reference \"%s\"", out);

    /* An app that runs the maximal reference (autodeployd itself wrote it) takes the next push. */
    struct push next = mkpush("strava/foo", "master-3", DIGEST_A, PUSH_TS, "alice");
    char out2[DECIDE_IMAGE_MAX];
    reason[0] = '\0';
    rc = decide_new_image(want, &next, 0, out2, sizeof out2, reason, sizeof reason);
    snprintf(current, sizeof current, "%s/strava/foo:master-3", host);
    CHECK(rc == 0 && strcmp(out2, current) == 0,
          "current image of 710 bytes (a valid reference) must parse: rc %d, reason \"%.60s\"", rc,
          reason);
}

/* --- decide_choose -------------------------------------------------------------------------- */

static match_set *compile(const char *label)
{
    struct match_opts o = {0};
    char err[256];
    match_set *ms = match_compile(label, &o, err, sizeof err);
    if (!ms) {
        fprintf(stderr, "test pattern %s: %s\n", label, err);
        exit(2);
    }
    return ms;
}

static void view_on(cJSON *app, const char *image, struct app_view *v)
{
    set_image(app, image);
    decide_app_view(app, "autodeploy", v);
}

static void test_choose_semver(void)
{
    match_set *ms = compile("semver:strava/api:^1");
    cJSON *app = app_new();
    struct app_view v;
    struct push p120 = mkpush("strava/api", "1.2.0", DIGEST_A, "2026-11-25T10:00:00Z", "ci");
    struct push p119 = mkpush("strava/api", "1.1.9", DIGEST_B, "2026-11-25T10:00:30Z", "ci");
    enum decide_pick verdict[4];
    char why[4][DECIDE_REASON_MAX];

    /* (a) 1.2.0 then 1.1.9 (a hotfix of the older line pushed later): the higher version. */
    view_on(app, REG "/strava/api:1.1.0", &v);
    const struct push *order1[] = {&p120, &p119};
    int w = decide_choose(ms, &v, order1, 2, verdict, why);
    CHECK(w == 0, "semver, 1.2.0 first: winner %d, want 0", w);
    CHECK(verdict[0] == DECIDE_PICKED && verdict[1] == DECIDE_SUPERSEDED, "verdicts %d %d",
          verdict[0], verdict[1]);
    CHECK(why[0][0] == '\0', "the winner has no reason: \"%s\"", why[0]);
    CHECK(has(why[1], "1.2.0") && has(why[1], "higher version"),
          "superseded reason names the winner's version: \"%s\"", why[1]);

    const struct push *order2[] = {&p119, &p120};
    w = decide_choose(ms, &v, order2, 2, verdict, why);
    CHECK(w == 1, "semver, 1.1.9 first: winner %d, want 1", w);
    CHECK(verdict[1] == DECIDE_PICKED && verdict[0] == DECIDE_SUPERSEDED, "verdicts %d %d",
          verdict[0], verdict[1]);
    CHECK(has(why[0], "strava/api:1.2.0"), "superseded reason: \"%s\"", why[0]);

    /* (b) the app already runs 1.2.0: 1.1.9 alone is a downgrade. */
    view_on(app, REG "/strava/api:1.2.0", &v);
    const struct push *alone[] = {&p119};
    w = decide_choose(ms, &v, alone, 1, verdict, why);
    CHECK(w == -1, "downgrade: winner %d, want -1", w);
    CHECK(verdict[0] == DECIDE_NOT_MATCHING, "downgrade verdict %d", verdict[0]);
    CHECK(has(why[0], "older than the version the app runs") && has(why[0], "1.1.9") &&
              has(why[0], "1.2.0"),
          "downgrade reason: \"%s\"", why[0]);

    /* Same app, 1.1.9 and 1.3.0 waiting: 1.3.0 deploys, 1.1.9 is refused on its own account. */
    struct push p130 = mkpush("strava/api", "1.3.0", DIGEST_A, "2026-11-25T09:59:00Z", "ci");
    struct push p200 = mkpush("strava/api", "2.0.0", DIGEST_A, "2026-11-25T10:01:00Z", "ci");
    const struct push *mixed[] = {&p119, &p130, &p200};
    w = decide_choose(ms, &v, mixed, 3, verdict, why);
    CHECK(w == 1, "1.1.9, 1.3.0, 2.0.0 on 1.2.0 with ^1: winner %d, want 1", w);
    CHECK(verdict[0] == DECIDE_NOT_MATCHING && verdict[1] == DECIDE_PICKED &&
              verdict[2] == DECIDE_NOT_MATCHING,
          "verdicts %d %d %d", verdict[0], verdict[1], verdict[2]);
    CHECK(has(why[2], "2.0.0"), "2.0.0 is outside ^1: \"%s\"", why[2]);

    /* The same version pushed twice (a rebuild): the newer push. */
    view_on(app, REG "/strava/api:1.1.0", &v);
    struct push again = mkpush("strava/api", "1.2.0", DIGEST_B, "2026-11-25T10:05:00Z", "ci");
    const struct push *rebuilt[] = {&again, &p120};
    w = decide_choose(ms, &v, rebuilt, 2, verdict, why);
    CHECK(w == 0, "1.2.0 rebuilt: the later push wins, got %d", w);
    CHECK(verdict[1] == DECIDE_SUPERSEDED, "earlier build superseded: %d", verdict[1]);

    /* v-prefixed tags are versions too. */
    struct push v121 = mkpush("strava/api", "v1.2.1", DIGEST_B, "2026-11-25T09:00:00Z", "ci");
    const struct push *vtags[] = {&v121, &p120};
    w = decide_choose(ms, &v, vtags, 2, verdict, why);
    CHECK(w == 0, "v1.2.1 (older push) beats 1.2.0: got %d", w);

    /* A label with a semver: and a glob pattern: whatever the arrival order, the same push wins,
     * and a lower version never beats a higher one that its own semver: pattern accepts. */
    match_free(ms);
    ms = compile("semver:strava/api:^1 strava/api:rc-*");
    struct push s130 = mkpush("strava/api", "1.3.0", DIGEST_A, "2026-11-25T10:00:00Z", "ci");
    struct push rc5 = mkpush("strava/api", "rc-5", DIGEST_A, "2026-11-25T10:01:00Z", "ci");
    struct push s120 = mkpush("strava/api", "1.2.0", DIGEST_A, "2026-11-25T10:02:00Z", "ci");
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    const struct push *three[] = {&s130, &rc5, &s120};
    const char *winners[6];
    int differ = 0, lower = 0;
    for (int k = 0; k < 6; k++) {
        const struct push *order[3] = {three[perms[k][0]], three[perms[k][1]], three[perms[k][2]]};
        w = decide_choose(ms, &v, order, 3, verdict, why);
        winners[k] = w >= 0 ? order[w]->tag : "(none)";
        differ += strcmp(winners[k], winners[0]) != 0;
        lower += strcmp(winners[k], "1.2.0") == 0;
    }
    CHECK(differ == 0,
          "mixed label: the winner depends on the arrival order (orders 1.3.0 rc-5 1.2.0 / "
          "1.3.0 1.2.0 rc-5 / rc-5 1.3.0 1.2.0 / rc-5 1.2.0 1.3.0 / 1.2.0 1.3.0 rc-5 / "
          "1.2.0 rc-5 1.3.0 -> %s %s %s %s %s %s)",
          winners[0], winners[1], winners[2], winners[3], winners[4], winners[5]);
    CHECK(lower == 0,
          "mixed label: 1.2.0 beats 1.3.0 (both accepted by semver:^1) in %d of 6 orders", lower);

    cJSON_Delete(app);
    match_free(ms);
}

static void test_choose_glob(void)
{
    match_set *ms = compile("strava/foo:main-*");
    cJSON *app = app_new();
    struct app_view v;
    enum decide_pick verdict[4];
    char why[4][DECIDE_REASON_MAX];
    struct push m1 = mkpush("strava/foo", "main-1", DIGEST_A, "2026-11-25T10:00:00Z", "ci");
    struct push m2 = mkpush("strava/foo", "main-2", DIGEST_A, "2026-11-25T10:00:10Z", "ci");
    struct push m3 = mkpush("strava/foo", "main-3", DIGEST_B, "2026-11-25T10:00:20Z", "ci");

    view_on(app, REG "/strava/foo:main-0", &v);

    /* (c) the newest push deploys, whatever the arrival order. */
    const struct push *inorder[] = {&m1, &m2, &m3};
    int w = decide_choose(ms, &v, inorder, 3, verdict, why);
    CHECK(w == 2, "main-1..3: winner %d, want 2", w);
    CHECK(verdict[0] == DECIDE_SUPERSEDED && verdict[1] == DECIDE_SUPERSEDED &&
              verdict[2] == DECIDE_PICKED,
          "verdicts %d %d %d", verdict[0], verdict[1], verdict[2]);
    for (int i = 0; i < 2; i++)
        CHECK(has(why[i], "strava/foo:main-3") && has(why[i], "newer"),
              "superseded reason %d names main-3: \"%s\"", i, why[i]);
    CHECK(why[2][0] == '\0', "winner's reason empty: \"%s\"", why[2]);

    const struct push *shuffled[] = {&m3, &m1, &m2};
    w = decide_choose(ms, &v, shuffled, 3, verdict, why);
    CHECK(w == 0, "main-3 arrived first: winner %d, want 0", w);
    CHECK(has(why[1], "main-3") && has(why[2], "main-3"), "reasons: \"%s\" / \"%s\"", why[1],
          why[2]);

    /* Equal timestamps: the later arrival. */
    struct push t1 = mkpush("strava/foo", "main-7", DIGEST_A, "2026-11-25T10:00:00Z", "ci");
    struct push t2 = mkpush("strava/foo", "main-6", DIGEST_B, "2026-11-25T10:00:00Z", "ci");
    const struct push *tie[] = {&t1, &t2};
    w = decide_choose(ms, &v, tie, 2, verdict, why);
    CHECK(w == 1, "tie: winner %d, want the later arrival 1", w);
    CHECK(has(why[0], "main-6"), "tie reason: \"%s\"", why[0]);
    const struct push *tie2[] = {&t2, &t1};
    w = decide_choose(ms, &v, tie2, 2, verdict, why);
    CHECK(w == 1, "tie reversed: winner %d, want the later arrival 1", w);

    /* A push without a timestamp goes to the later arrival. */
    struct push nots = mkpush("strava/foo", "main-4", DIGEST_A, NULL, "ci");
    const struct push *missing[] = {&m3, &nots};
    w = decide_choose(ms, &v, missing, 2, verdict, why);
    CHECK(w == 1, "no timestamp, later arrival: winner %d, want 1", w);
    const struct push *missing2[] = {&nots, &m1};
    w = decide_choose(ms, &v, missing2, 2, verdict, why);
    CHECK(w == 1, "no timestamp, earlier arrival: winner %d, want 1", w);

    /* One push outside the label among matching ones. */
    struct push other = mkpush("strava/bar", "main-9", DIGEST_A, "2026-11-25T11:00:00Z", "ci");
    struct push rel = mkpush("strava/foo", "release-9", DIGEST_A, "2026-11-25T11:00:00Z", "ci");
    const struct push *some[] = {&m1, &other, &m2, &rel};
    w = decide_choose(ms, &v, some, 4, verdict, why);
    CHECK(w == 2, "matching among others: winner %d, want 2", w);
    CHECK(verdict[0] == DECIDE_SUPERSEDED && verdict[1] == DECIDE_NOT_MATCHING &&
              verdict[2] == DECIDE_PICKED && verdict[3] == DECIDE_NOT_MATCHING,
          "verdicts %d %d %d %d", verdict[0], verdict[1], verdict[2], verdict[3]);
    CHECK(has(why[1], "no longer matches") && has(why[3], "no longer matches"),
          "not matching reasons: \"%s\" / \"%s\"", why[1], why[3]);

    /* (d) the label is gone or invalid: nothing matches. */
    w = decide_choose(NULL, &v, inorder, 3, verdict, why);
    CHECK(w == -1, "NULL match set: winner %d, want -1", w);
    for (int i = 0; i < 3; i++) {
        CHECK(verdict[i] == DECIDE_NOT_MATCHING, "NULL match set: verdict[%d] %d", i, verdict[i]);
        CHECK(has(why[i], "label is gone or invalid"), "NULL match set: why[%d] \"%s\"", i, why[i]);
    }
    CHECK(decide_choose(ms, &v, NULL, 0, verdict, why) == -1, "no pushes: -1");

    /* An app without an image: globs still apply. */
    view_on(app, NULL, &v);
    w = decide_choose(ms, &v, inorder, 3, verdict, why);
    CHECK(w == 2, "app without image: winner %d, want 2", w);

    cJSON_Delete(app);
    match_free(ms);
}

/* --- decide_job ----------------------------------------------------------------------------- */

struct job_case {
    const char *name;
    const char *id;        /* NULL: /svc/foo */
    const char *image;     /* container.docker.image; NULL: none */
    const char *digest;    /* label autodeploy.digest; NULL: none */
    const char *pushed_at; /* label autodeploy.pushed-at; NULL: none */
    const char *lk, *lv;   /* one more label */
    const char *deployment;
    const char *prefix; /* --app-prefix, NULL: none */
    int cfg_force, cfg_pin, cfg_dry, sent_unanswered, replayed;
    const char *tag;      /* the push; NULL: master-2 */
    const char *push_ts;  /* NULL: PUSH_TS; "": none */
    const char *push_dig; /* NULL: DIGEST_B */
    enum decide_action action;
    const char *state;     /* NULL for DEPLOY, FOLLOW and LANDED */
    const char *reason;    /* substring; NULL: not checked */
    const char *new_image; /* NULL: not checked */
    int mutable_tag, force;
};

static const struct job_case job_cases[] = {
    {.name = "a new tag deploys",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .pushed_at = "2026-11-25T09:00:00Z",
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE},
    {.name = "first deploy: no autodeploy labels yet",
     .image = OLD_IMAGE,
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE},
    {.name = "already runs it",
     .image = NEW_IMAGE,
     .digest = DIGEST_B,
     .action = DECIDE_UNCHANGED,
     .state = "unchanged",
     .reason = "the app already runs this image and digest",
     .new_image = NEW_IMAGE},
    {.name = "already runs it, replayed at start",
     .image = NEW_IMAGE,
     .digest = DIGEST_B,
     .replayed = 1,
     .action = DECIDE_UNCHANGED,
     .state = "unchanged",
     .reason = "ended while autodeployd was stopped"},
    {.name = "already runs it, a deployment listed: follow",
     .image = NEW_IMAGE,
     .digest = DIGEST_B,
     .deployment = DEPLOYMENT,
     .action = DECIDE_FOLLOW,
     .new_image = NEW_IMAGE},
    {.name = "follow beats landed",
     .image = NEW_IMAGE,
     .digest = DIGEST_B,
     .deployment = DEPLOYMENT,
     .sent_unanswered = 1,
     .action = DECIDE_FOLLOW},
    {.name = "our lost update landed and ended",
     .image = NEW_IMAGE,
     .digest = DIGEST_B,
     .sent_unanswered = 1,
     .action = DECIDE_LANDED,
     .new_image = NEW_IMAGE},
    {.name = "our lost update did not land: send again",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .sent_unanswered = 1,
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE},
    {.name = "older than the push the app runs",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .pushed_at = "2026-11-25T10:05:00Z",
     .action = DECIDE_SKIP,
     .state = "skipped",
     .reason = "older than the one the app runs (pushed at 2026-11-25T10:05:00Z)"},
    {.name = "older by a millisecond",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .pushed_at = "2026-11-25T10:00:00.001Z",
     .action = DECIDE_SKIP,
     .state = "skipped",
     .reason = "older"},
    {.name = "pushed at the same instant, another offset: not older",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .pushed_at = "2026-11-25T11:00:00+01:00",
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE},
    {.name = "label later as a string, earlier as a time: not older",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .pushed_at = "2026-11-25T10:30:00+01:00",
     .action = DECIDE_DEPLOY},
    {.name = "a push without timestamp is never older",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .pushed_at = "2026-11-25T10:05:00Z",
     .push_ts = "",
     .action = DECIDE_DEPLOY},
    {.name = "an unparseable pushed-at label is ignored",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .pushed_at = "yesterday",
     .action = DECIDE_DEPLOY},
    {.name = "older but already there: unchanged",
     .image = NEW_IMAGE,
     .digest = DIGEST_B,
     .pushed_at = "2026-11-25T10:05:00Z",
     .action = DECIDE_UNCHANGED,
     .state = "unchanged"},
    {.name = "dry run",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .cfg_dry = 1,
     .action = DECIDE_SKIP,
     .state = "dry_run",
     .reason = "dry run: would deploy " NEW_IMAGE " (now " OLD_IMAGE ")",
     .new_image = NEW_IMAGE},
    {.name = "dry run of an older push: skipped as older",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .pushed_at = "2026-11-25T10:05:00Z",
     .cfg_dry = 1,
     .action = DECIDE_SKIP,
     .state = "skipped",
     .reason = "older"},
    {.name = "paused",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .lk = "autodeploy.paused",
     .lv = "true",
     .action = DECIDE_SKIP,
     .state = "skipped",
     .reason = "paused"},
    {.name = "paused=yes",
     .image = OLD_IMAGE,
     .lk = "autodeploy.paused",
     .lv = "yes",
     .action = DECIDE_SKIP,
     .state = "skipped",
     .reason = "paused"},
    {.name = "paused, dry run: skipped, not dry_run",
     .image = OLD_IMAGE,
     .lk = "autodeploy.paused",
     .lv = "1",
     .cfg_dry = 1,
     .action = DECIDE_SKIP,
     .state = "skipped",
     .reason = "paused"},
    {.name = "paused=false deploys",
     .image = OLD_IMAGE,
     .lk = "autodeploy.paused",
     .lv = "false",
     .action = DECIDE_DEPLOY},
    {.name = "no docker image",
     .image = NULL,
     .digest = DIGEST_A,
     .action = DECIDE_SKIP,
     .state = "skipped",
     .reason = "no container.docker.image"},
    {.name = "current image does not parse",
     .image = REG "/Strava/Foo:master-1",
     .action = DECIDE_SKIP,
     .state = "skipped",
     .reason = "cannot parse the app's current image"},
    {.name = "id outside Marathon's rules",
     .id = "/svc/../admin",
     .image = OLD_IMAGE,
     .action = DECIDE_SKIP,
     .state = "skipped",
     .reason = "id rules"},
    {.name = "outside --app-prefix",
     .image = OLD_IMAGE,
     .prefix = "/staging/",
     .action = DECIDE_SKIP,
     .state = "skipped",
     .reason = "--app-prefix"},
    {.name = "inside --app-prefix",
     .image = OLD_IMAGE,
     .prefix = "/svc/",
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE},
    {.name = "mutable tag: same image, new digest",
     .image = NEW_IMAGE,
     .digest = DIGEST_A,
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE,
     .mutable_tag = 1},
    {.name = "mutable tag, app deployed by hand (no digest label)",
     .image = NEW_IMAGE,
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE,
     .mutable_tag = 1},
    {.name = "same tag pinned by --pin-digest: not mutable",
     .image = NEW_IMAGE,
     .digest = DIGEST_A,
     .cfg_pin = 1,
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE "@" DIGEST_B},
    {.name = "same tag pinned by label: not mutable",
     .image = NEW_IMAGE "@" DIGEST_A,
     .digest = DIGEST_A,
     .lk = "autodeploy.pin-digest",
     .lv = "true",
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE "@" DIGEST_B},
    {.name = "pinned and already there",
     .image = NEW_IMAGE "@" DIGEST_B,
     .digest = DIGEST_B,
     .cfg_pin = 1,
     .action = DECIDE_UNCHANGED,
     .state = "unchanged",
     .new_image = NEW_IMAGE "@" DIGEST_B},
    {.name = "pinned image without the digest label: deploy to write the labels",
     .image = NEW_IMAGE "@" DIGEST_B,
     .cfg_pin = 1,
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE "@" DIGEST_B},
    {.name = "unpinned app on a pinned image: the pin is dropped",
     .image = OLD_IMAGE "@" DIGEST_A,
     .digest = DIGEST_A,
     .action = DECIDE_DEPLOY,
     .new_image = NEW_IMAGE},
    {.name = "--force",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .cfg_force = 1,
     .action = DECIDE_DEPLOY,
     .force = 1},
    {.name = "label autodeploy.force",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .lk = "autodeploy.force",
     .lv = "true",
     .action = DECIDE_DEPLOY,
     .force = 1},
    {.name = "label autodeploy.force=false",
     .image = OLD_IMAGE,
     .digest = DIGEST_A,
     .lk = "autodeploy.force",
     .lv = "false",
     .action = DECIDE_DEPLOY,
     .force = 0},
    {.name = "mutable tag with --force",
     .image = NEW_IMAGE,
     .digest = DIGEST_A,
     .cfg_force = 1,
     .action = DECIDE_DEPLOY,
     .mutable_tag = 1,
     .force = 1},
};

static void test_job(void)
{
    for (size_t i = 0; i < sizeof job_cases / sizeof *job_cases; i++) {
        const struct job_case *c = &job_cases[i];
        cJSON *app = app_new();
        struct app_view v;
        struct config cfg;
        struct decision d;
        char *pfx[1] = {(char *)c->prefix};

        put_str(app, "id", c->id ? c->id : "/svc/foo");
        set_image(app, c->image);
        set_label(app, "autodeploy.digest", c->digest);
        set_label(app, "autodeploy.pushed-at", c->pushed_at);
        if (c->lk) set_label(app, c->lk, c->lv);
        set_deployment(app, c->deployment);
        decide_app_view(app, "autodeploy", &v);

        memset(&cfg, 0, sizeof cfg);
        cfg.force = c->cfg_force;
        cfg.pin_digest = c->cfg_pin;
        cfg.dry_run = c->cfg_dry;
        if (c->prefix) {
            cfg.app_prefix.v = pfx;
            cfg.app_prefix.n = 1;
        }
        struct push p =
            mkpush("strava/foo", c->tag ? c->tag : "master-2", c->push_dig ? c->push_dig : DIGEST_B,
                   c->push_ts ? c->push_ts : PUSH_TS, "alice");
        p.replayed = c->replayed;

        memset(&d, 0x5a, sizeof d);
        CHECK(decide_job(&cfg, &v, &p, c->sent_unanswered, &d) == 0, "%s: returns 0", c->name);
        CHECK(d.action == c->action, "%s: action %d, want %d (%s)", c->name, d.action, c->action,
              d.reason);
        if (c->action == DECIDE_SKIP || c->action == DECIDE_UNCHANGED)
            CHECK(d.state && c->state && strcmp(d.state, c->state) == 0,
                  "%s: state \"%s\", want \"%s\"", c->name, d.state ? d.state : "(null)", c->state);
        if (c->reason)
            CHECK(has(d.reason, c->reason), "%s: reason \"%s\", want \"%s\"", c->name, d.reason,
                  c->reason);
        else if (c->action == DECIDE_SKIP || c->action == DECIDE_UNCHANGED)
            CHECK(d.reason[0] != '\0', "%s: a reason is given", c->name);
        if (c->new_image)
            CHECK(strcmp(d.new_image, c->new_image) == 0, "%s: new image %s, want %s", c->name,
                  d.new_image, c->new_image);
        if (c->action != DECIDE_SKIP)
            CHECK(d.mutable_tag == c->mutable_tag && d.force == c->force,
                  "%s: mutable_tag %d force %d, want %d %d", c->name, d.mutable_tag, d.force,
                  c->mutable_tag, c->force);
        cJSON_Delete(app);
    }
}

/* --- decide_update_body --------------------------------------------------------------------- */

/* The container of app with docker.image set to image (and forcePullImage true when force). */
static cJSON *expected_container(const cJSON *app, const char *image, int force_pull)
{
    cJSON *c = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(app, "container"), 1);
    cJSON *docker = cJSON_GetObjectItemCaseSensitive(c, "docker");
    put_str(docker, "image", image);
    if (force_pull) {
        cJSON_DeleteItemFromObjectCaseSensitive(docker, "forcePullImage");
        cJSON_AddTrueToObject(docker, "forcePullImage");
    }
    return c;
}

/* Checks body's top level: container and labels only. */
static void check_top_level(const cJSON *body, const char *ctx)
{
    static const char *const never[] = {"instances", "version",     "env",         "id",
                                        "cmd",       "cpus",        "mem",         "healthChecks",
                                        "tasks",     "deployments", "versionInfo", "tasksRunning"};
    for (size_t i = 0; i < sizeof never / sizeof *never; i++)
        CHECK(!cJSON_HasObjectItem(body, never[i]), "%s: body has \"%s\"", ctx, never[i]);
    CHECK(only_container_and_labels(body), "%s: body has keys besides container and labels", ctx);
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(body, "container")) &&
              cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(body, "labels")),
          "%s: container and labels are objects", ctx);
}

static void test_update_body(void)
{
    cJSON *app = app_new();
    struct app_view v;
    struct config cfg;
    struct decision d;
    struct push p = mkpush("strava/foo", "master-2", DIGEST_B, "2026-11-25T10:00:00.123Z", "alice");
    const char *deployed_at = "2026-11-25T10:00:04Z";

    memset(&cfg, 0, sizeof cfg);
    decide_app_view(app, "autodeploy", &v);
    CHECK(decide_job(&cfg, &v, &p, 0, &d) == 0 && d.action == DECIDE_DEPLOY, "job deploys: %s",
          d.reason);
    char *s = decide_update_body(&v, &d, &p, deployed_at);
    cJSON *body = s ? cJSON_Parse(s) : NULL;
    CHECK(body != NULL, "update body is JSON: %s", s ? s : "(null)");
    if (body) {
        check_top_level(body, "update");
        cJSON *want = expected_container(app, NEW_IMAGE, 0);
        CHECK(cJSON_Compare(want, cJSON_GetObjectItemCaseSensitive(body, "container"), 1),
              "update: container is the app's with only docker.image changed: %s", s);
        cJSON_Delete(want);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(body, "container");
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c, "portMappings")) == 1 &&
                  cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c, "volumes")) == 1 &&
                  cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                      cJSON_GetObjectItemCaseSensitive(c, "docker"), "parameters")) == 2,
              "update: portMappings, volumes, parameters kept");
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(c, "docker"), "forcePullImage")),
              "update: forcePullImage left false for a new tag");
        CHECK_STR(label_of(body, "autodeploy.digest"), DIGEST_B, "update: digest label");
        CHECK_STR(label_of(body, "autodeploy.pushed-by"), "alice", "update: pushed-by label");
        CHECK_STR(label_of(body, "autodeploy.deployed-at"), deployed_at, "update: deployed-at");
        CHECK_STR(label_of(body, "autodeploy.pushed-at"), "2026-11-25T10:00:00.123Z",
                  "update: pushed-at label");
        CHECK_STR(label_of(body, "autodeploy"), "strava/foo:master-*", "update: pattern kept");
        CHECK_STR(label_of(body, "autodeploy.slack-channel"), "#foo-deploys",
                  "update: channel kept");
        CHECK_STR(label_of(body, "team"), "core", "update: team kept");
        CHECK_STR(label_of(body, "HAPROXY_GROUP"), "external", "update: HAPROXY_GROUP kept");
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "labels")) == 8,
              "update: 8 labels, got %d",
              cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "labels")));
    }
    cJSON_Delete(body);
    free(s);

    /* Mutable tag: forcePullImage true, replacing false, or added when the app had none. */
    set_image(app, NEW_IMAGE);
    for (int had = 1; had >= 0; had--) {
        if (!had) put(docker_of(app), "forcePullImage", NULL);
        decide_app_view(app, "autodeploy", &v);
        CHECK(decide_job(&cfg, &v, &p, 0, &d) == 0 && d.action == DECIDE_DEPLOY && d.mutable_tag,
              "mutable tag deploys (had forcePullImage %d)", had);
        s = decide_update_body(&v, &d, &p, deployed_at);
        body = s ? cJSON_Parse(s) : NULL;
        CHECK(body != NULL, "mutable body is JSON");
        if (body) {
            check_top_level(body, "mutable");
            cJSON *want = expected_container(app, NEW_IMAGE, 1);
            CHECK(cJSON_Compare(want, cJSON_GetObjectItemCaseSensitive(body, "container"), 1),
                  "mutable (had forcePullImage %d): forcePullImage true, nothing else: %s", had, s);
            cJSON_Delete(want);
        }
        cJSON_Delete(body);
        free(s);
    }

    /* No pusher: "unknown"; no timestamp: no pushed-at label; an app without labels. */
    cJSON_Delete(app);
    app = app_new();
    put(app, "labels", NULL);
    decide_app_view(app, "autodeploy", &v);
    struct push anon = mkpush("strava/foo", "master-2", DIGEST_B, NULL, "");
    CHECK(decide_job(&cfg, &v, &anon, 0, &d) == 0 && d.action == DECIDE_DEPLOY,
          "anonymous push deploys: %s", d.reason);
    s = decide_update_body(&v, &d, &anon, deployed_at);
    body = s ? cJSON_Parse(s) : NULL;
    CHECK(body != NULL, "anonymous body is JSON");
    if (body) {
        check_top_level(body, "anonymous");
        CHECK_STR(label_of(body, "autodeploy.pushed-by"), "unknown", "empty pusher");
        CHECK(!cJSON_HasObjectItem(cJSON_GetObjectItemCaseSensitive(body, "labels"),
                                   "autodeploy.pushed-at"),
              "no timestamp: no pushed-at label: %s", s);
        CHECK_STR(label_of(body, "autodeploy.digest"), DIGEST_B, "digest label on a bare app");
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "labels")) == 3,
              "bare app: 3 labels: %s", s);
    }
    cJSON_Delete(body);
    free(s);
    cJSON_Delete(app);
}

/* --- decide_rollback_body ------------------------------------------------------------------- */

static void test_rollback_body(void)
{
    /* The app after our deploy of master-2, then scaled to 5 and given a new env by someone
     * else, who also changed the team label. */
    cJSON *app = app_new();
    set_image(app, NEW_IMAGE);
    put(app, "instances", cJSON_CreateNumber(5));
    put(app, "env", cJSON_Parse("{\"JAVA_OPTS\":\"-Xmx2g\",\"FEATURE_X\":\"on\"}"));
    put_str(app, "version", V2);
    set_label(app, "autodeploy.digest", DIGEST_B);
    set_label(app, "autodeploy.pushed-by", "alice");
    set_label(app, "autodeploy.deployed-at", "2026-11-25T10:00:04Z");
    set_label(app, "autodeploy.pushed-at", "2026-11-25T10:00:00Z");
    set_label(app, "team", "platform");
    struct app_view now;
    decide_app_view(app, "autodeploy", &now);

    /* The labels before our deploy: no pushed-at (deployed before autodeployd wrote one). */
    cJSON *old =
        cJSON_Parse("{\"autodeploy\":\"strava/foo:master-*\",\"autodeploy.digest\":\"" DIGEST_A
                    "\",\"autodeploy.pushed-by\":\"bob\",\"autodeploy.deployed-at\":"
                    "\"2026-11-25T09:00:05Z\",\"team\":\"core\"}");
    /* The container.docker before our update: the same as now but for the image. */
    cJSON *old_docker = cJSON_Duplicate(docker_of(app), 1);
    char *s = decide_rollback_body(&now, OLD_IMAGE, DIGEST_A, NEW_IMAGE, old_docker, old);
    cJSON *body = s ? cJSON_Parse(s) : NULL;
    CHECK(body != NULL, "rollback body is JSON: %s", s ? s : "(null)");
    if (body) {
        check_top_level(body, "rollback");
        cJSON *want = expected_container(app, OLD_IMAGE, 0);
        CHECK(cJSON_Compare(want, cJSON_GetObjectItemCaseSensitive(body, "container"), 1),
              "rollback: the container as now with the old image: %s", s);
        cJSON_Delete(want);
        CHECK_STR(label_of(body, "autodeploy.digest"), DIGEST_A, "rollback: digest put back");
        CHECK_STR(label_of(body, "autodeploy.pushed-by"), "bob", "rollback: pushed-by put back");
        CHECK_STR(label_of(body, "autodeploy.deployed-at"), "2026-11-25T09:00:05Z",
                  "rollback: deployed-at put back");
        CHECK(label_of(body, "autodeploy.pushed-at") == NULL,
              "rollback: pushed-at removed (absent in the old labels)");
        CHECK_STR(label_of(body, "team"), "platform", "rollback: other labels as now");
        CHECK_STR(label_of(body, "HAPROXY_GROUP"), "external", "rollback: other labels kept");
        CHECK_STR(label_of(body, "autodeploy.slack-channel"), "#foo-deploys",
                  "rollback: channel kept");
        CHECK_STR(label_of(body, "autodeploy"), "strava/foo:master-*", "rollback: pattern kept");
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "labels")) == 7,
              "rollback: 7 labels: %s", s);
    }
    cJSON_Delete(body);
    free(s);

    /* A mutable-tag deploy set forcePullImage and kept the image string: the rollback pins the
     * digest that ran before (the string alone would pull the failed bits again) and puts
     * forcePullImage back as it was. */
    put(docker_of(app), "forcePullImage", cJSON_CreateTrue());
    set_image(app, NEW_IMAGE);
    decide_app_view(app, "autodeploy", &now);
    s = decide_rollback_body(&now, NEW_IMAGE, DIGEST_A, NEW_IMAGE, old_docker, old);
    body = s ? cJSON_Parse(s) : NULL;
    if (body) {
        cJSON *want = expected_container(app, NEW_IMAGE "@" DIGEST_A, 0);
        cJSON_ReplaceItemInObjectCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(want, "docker"), "forcePullImage",
            cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(old_docker, "forcePullImage"), 1));
        CHECK(cJSON_Compare(want, cJSON_GetObjectItemCaseSensitive(body, "container"), 1),
              "rollback of a mutable tag: pinned to the old digest, forcePullImage as before: %s",
              s);
        cJSON_Delete(want);
    } else {
        CHECK(0, "rollback body of a mutable tag is JSON");
    }
    cJSON_Delete(body);
    free(s);
    /* Without the old digest it cannot be pinned: the string is put back as it was. */
    s = decide_rollback_body(&now, NEW_IMAGE, NULL, NEW_IMAGE, old_docker, old);
    CHECK(s && strstr(s, "@sha256") == NULL, "mutable tag, no old digest: not pinned: %s",
          s ? s : "(null)");
    free(s);

    /* No old labels at all (the app had none): the four are removed. */
    s = decide_rollback_body(&now, OLD_IMAGE, NULL, NEW_IMAGE, NULL, NULL);
    body = s ? cJSON_Parse(s) : NULL;
    CHECK(body != NULL, "rollback without old labels is JSON");
    if (body) {
        check_top_level(body, "rollback, no old labels");
        for (size_t i = 0; decide_own_labels[i]; i++)
            CHECK(label_of(body, decide_own_labels[i]) == NULL, "no old labels: %s removed",
                  decide_own_labels[i]);
        CHECK_STR(label_of(body, "team"), "platform", "no old labels: team as now");
    }
    cJSON_Delete(body);
    free(s);
    cJSON_Delete(old);
    cJSON_Delete(old_docker);
    cJSON_Delete(app);

    /* decide_own_labels: the four, in order. */
    static const char *const own[] = {"autodeploy.digest", "autodeploy.pushed-by",
                                      "autodeploy.deployed-at", "autodeploy.pushed-at", NULL};
    for (size_t i = 0; i < 5; i++)
        CHECK_STR(decide_own_labels[i], own[i], "decide_own_labels");
}

/* --- decide_owner --------------------------------------------------------------------------- */

#define OURS NEW_IMAGE
#define FAILURE "Container exited with non-zero exit code 137 (OOMKilled)"

struct owner_case {
    const char *name;
    const char *image;   /* NULL: none */
    const char *digest;  /* label; NULL: none */
    const char *version; /* "version" */
    const char *lcc;     /* versionInfo.lastConfigChangeAt; NULL: no versionInfo */
    int instances;       /* -1: absent */
    const char *deployment;
    const char *tasks;   /* JSON array */
    const char *failure; /* lastTaskFailure.message; NULL: none */
    const char *our_digest, *our_version;
    enum decide_owner want;
    const char *reason; /* substring */
};

static const struct owner_case owner_cases[] = {
    {"all tasks on our configuration", OURS, DIGEST_B, V1, V1, 2, NULL,
     "[" TASK("1", "TASK_RUNNING", V1) "," TASK("2", "TASK_RUNNING", V1) "]", NULL, DIGEST_B, V1,
     OWNER_SUCCEEDED, "2 of 2"},
    {"a scale after ours keeps the configuration", OURS, DIGEST_B, V2, V1, 3, NULL,
     "[" TASK("1", "TASK_RUNNING", V1) "," TASK("2", "TASK_RUNNING",
                                                V1) "," TASK("3", "TASK_RUNNING", V2) "]",
     NULL, DIGEST_B, V1, OWNER_SUCCEEDED, "3 of 3"},
    {"a scale after ours, our version unknown", OURS, DIGEST_B, V2, V1, 3, NULL,
     "[" TASK("1", "TASK_RUNNING", V1) "," TASK("2", "TASK_RUNNING",
                                                V1) "," TASK("3", "TASK_RUNNING", V2) "]",
     NULL, DIGEST_B, NULL, OWNER_SUCCEEDED, "3 of 3"},
    {"fewer running than instances", OURS, DIGEST_B, V1, V1, 3, NULL,
     "[" TASK("1", "TASK_RUNNING", V1) "," TASK("2", "TASK_RUNNING",
                                                V1) "," TASK("3", "TASK_STAGING", V1) "]",
     FAILURE, DIGEST_B, V1, OWNER_FAILED,
     "2 of 3 tasks running the new version; last task "
     "failure: " FAILURE},
    {"only the old configuration's tasks run", OURS, DIGEST_B, V1, V1, 2, NULL,
     "[" TASK("1", "TASK_RUNNING", V0) "," TASK("2", "TASK_RUNNING", V0) "]", FAILURE, DIGEST_B, V1,
     OWNER_FAILED, "0 of 2"},
    {"no tasks, no failure recorded", OURS, DIGEST_B, V1, V1, 2, NULL, "[]", NULL, DIGEST_B, V1,
     OWNER_FAILED, "the deployment ended with 0 of 2 tasks running the new version"},
    {"killed tasks do not count", OURS, DIGEST_B, V1, V1, 2, NULL,
     "[" TASK("1", "TASK_RUNNING", V1) "," TASK("2", "TASK_KILLED", V1) "]", FAILURE, DIGEST_B, V1,
     OWNER_FAILED, FAILURE},
    {"another image", REG "/strava/foo:hotfix-7", DIGEST_B, V2, V2, 2, NULL,
     "[" TASK("1", "TASK_RUNNING", V2) "," TASK("2", "TASK_RUNNING", V2) "]", NULL, DIGEST_B, V1,
     OWNER_CHANGED, "cancelled by another writer: the app now runs " REG "/strava/foo:hotfix-7"},
    {"our image, another digest", OURS, DIGEST_A, V2, V2, 2, NULL,
     "[" TASK("1", "TASK_RUNNING", V2) "," TASK("2", "TASK_RUNNING", V2) "]", NULL, DIGEST_B, V1,
     OWNER_CHANGED, "cancelled by another writer"},
    {"our image, digest label removed", OURS, NULL, V2, V2, 2, NULL, "[]", NULL, DIGEST_B, V1,
     OWNER_CHANGED, "cancelled by another writer"},
    {"no image any more", NULL, DIGEST_B, V2, V2, 2, NULL, "[]", NULL, DIGEST_B, V1, OWNER_CHANGED,
     "no image"},
    {"another image, a deployment running: changed", REG "/strava/foo:hotfix-7", DIGEST_B, V2, V2,
     2, "other-deployment", "[]", NULL, DIGEST_B, V1, OWNER_CHANGED, "hotfix-7"},
    {"a deployment listed", OURS, DIGEST_B, V2, V2, 2, DEPLOYMENT,
     "[" TASK("1", "TASK_RUNNING", V1) "]", NULL, DIGEST_B, V1, OWNER_TAKEN_OVER, DEPLOYMENT},
    {"our_digest NULL: digest label not checked", OURS, DIGEST_A, V1, V1, 1, NULL,
     "[" TASK("1", "TASK_RUNNING", V1) "]", NULL, NULL, V1, OWNER_SUCCEEDED, "1 of 1"},
    {"our_digest NULL, no digest label", OURS, NULL, V1, V1, 1, NULL,
     "[" TASK("1", "TASK_RUNNING", V1) "]", NULL, NULL, V1, OWNER_SUCCEEDED, "1 of 1"},
    {"a task version with a fraction is later than one without", OURS, DIGEST_B,
     "2026-11-25T10:00:00Z", "2026-11-25T10:00:00Z", 1, NULL,
     "[" TASK("1", "TASK_RUNNING", "2026-11-25T10:00:00.500Z") "]", NULL, DIGEST_B,
     "2026-11-25T10:00:00Z", OWNER_SUCCEEDED, "1 of 1"},
    {"a task version without a fraction is earlier than one with", OURS, DIGEST_B,
     "2026-11-25T10:00:00.500Z", "2026-11-25T10:00:00.500Z", 1, NULL,
     "[" TASK("1", "TASK_RUNNING", "2026-11-25T10:00:00Z") "]", NULL, DIGEST_B,
     "2026-11-25T10:00:00.500Z", OWNER_FAILED, "0 of 1"},
    {"equal times written with different fraction digits", OURS, DIGEST_B, "2026-11-25T10:00:00.5Z",
     "2026-11-25T10:00:00.5Z", 1, NULL,
     "[" TASK("1", "TASK_RUNNING", "2026-11-25T10:00:00.500000Z") "]", NULL, DIGEST_B, NULL,
     OWNER_SUCCEEDED, "1 of 1"},
    {"no versionInfo: version is the configuration", OURS, DIGEST_B, V1, NULL, 2, NULL,
     "[" TASK("1", "TASK_RUNNING", V1) "," TASK("2", "TASK_RUNNING", V1) "]", NULL, DIGEST_B, V1,
     OWNER_SUCCEEDED, "2 of 2"},
    {"lastConfigChangeAt older than our version: ours counts", OURS, DIGEST_B, V1, V0, 2, NULL,
     "[" TASK("1", "TASK_RUNNING", V0) "," TASK("2", "TASK_RUNNING", V1) "]", NULL, DIGEST_B, V1,
     OWNER_FAILED, "1 of 2"},
    {"instances absent: one task", OURS, DIGEST_B, V1, V1, -1, NULL,
     "[" TASK("1", "TASK_RUNNING", V1) "]", NULL, DIGEST_B, V1, OWNER_SUCCEEDED, "1 of 1"},
    {"scaled to zero", OURS, DIGEST_B, V2, V1, 0, NULL, "[]", NULL, DIGEST_B, V1, OWNER_SUCCEEDED,
     "0 of 0"},
};

static void test_owner(void)
{
    for (size_t i = 0; i < sizeof owner_cases / sizeof *owner_cases; i++) {
        const struct owner_case *c = &owner_cases[i];
        cJSON *app = app_new();
        struct app_view v;
        char reason[DECIDE_REASON_MAX];

        set_image(app, c->image);
        set_label(app, "autodeploy.digest", c->digest);
        put_str(app, "version", c->version);
        put(app, "versionInfo", c->lcc ? cJSON_CreateObject() : NULL);
        if (c->lcc)
            put_str(cJSON_GetObjectItemCaseSensitive(app, "versionInfo"), "lastConfigChangeAt",
                    c->lcc);
        put(app, "instances", c->instances < 0 ? NULL : cJSON_CreateNumber(c->instances));
        set_deployment(app, c->deployment);
        put(app, "tasks", cJSON_Parse(c->tasks));
        CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(app, "tasks")), "%s: tasks parse",
              c->name);
        if (c->failure) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "appId", "/svc/foo");
            cJSON_AddStringToObject(f, "message", c->failure);
            cJSON_AddStringToObject(f, "state", "TASK_FAILED");
            cJSON_AddStringToObject(f, "taskId", "svc_foo.instance-9");
            cJSON_AddStringToObject(f, "version", c->version);
            put(app, "lastTaskFailure", f);
        }
        decide_app_view(app, "autodeploy", &v);

        reason[0] = '\0';
        enum decide_owner got =
            decide_owner(&v, OURS, c->our_digest, c->our_version, reason, sizeof reason);
        CHECK(got == c->want, "%s: owner %d, want %d (%s)", c->name, got, c->want, reason);
        CHECK(has(reason, c->reason), "%s: reason \"%s\", want \"%s\"", c->name, reason, c->reason);
        CHECK(strchr(reason, '\n') == NULL, "%s: one line", c->name);
        CHECK(decide_owner(&v, OURS, c->our_digest, c->our_version, NULL, 0) == got,
              "%s: reason may be NULL", c->name);
        char tiny[8];
        memset(tiny, 'x', sizeof tiny);
        CHECK(decide_owner(&v, OURS, c->our_digest, c->our_version, tiny, sizeof tiny) == got &&
                  memchr(tiny, '\0', sizeof tiny) != NULL,
              "%s: a short reason buffer is cut, not overrun", c->name);
        cJSON_Delete(app);
    }
}

/* --- decide_verify --------------------------------------------------------------------------- */

static void test_verify(void)
{
    struct push p = mkpush("strava/foo", "master-2", DIGEST_A, PUSH_TS, "ci");
    static const struct {
        const char *mode;
        enum registry_result res;
        const char *digest;
        int late, settled;
        enum decide_verified want;
        const char *reason; /* a part of it */
    } cases[] = {
        {"off", REGISTRY_UNREACHABLE, "", 1, 1, VERIFIED_DEPLOY, ""},
        {"require", REGISTRY_OK, DIGEST_A, 0, 1, VERIFIED_DEPLOY, ""},
        {"warn", REGISTRY_OK, DIGEST_A, 0, 1, VERIFIED_DEPLOY, ""},
        {"require", REGISTRY_OK, DIGEST_B, 0, 1, VERIFIED_MOVED,
         "superseded in the registry by " DIGEST_B},
        {"warn", REGISTRY_OK, DIGEST_B, 0, 1, VERIFIED_MOVED, DIGEST_B},
        {"require", REGISTRY_NOT_FOUND, "", 0, 1, VERIFIED_MISSING,
         "not in the registry (" NEW_IMAGE ")"},
        {"warn", REGISTRY_NOT_FOUND, "", 1, 1, VERIFIED_MISSING, "not in the registry"},
        {"require", REGISTRY_UNREACHABLE, "", 0, 1, VERIFIED_RETRY, ""},
        {"require", REGISTRY_AUTH, "", 0, 1, VERIFIED_RETRY, ""},
        {"require", REGISTRY_UNREACHABLE, "", 1, 1, VERIFIED_FAIL, "registry unreachable: boom"},
        {"require", REGISTRY_AUTH, "", 1, 1, VERIFIED_FAIL, "registry refused the credentials"},
        {"require", REGISTRY_ERROR, "", 1, 1, VERIFIED_FAIL, "registry error"},
        {"warn", REGISTRY_UNREACHABLE, "", 1, 1, VERIFIED_WARN, "deployed without verification"},
        /* Before the registry had time to link the tag (it notifies first): asked again. */
        {"require", REGISTRY_NOT_FOUND, "", 0, 0, VERIFIED_RETRY,
         "does not have " NEW_IMAGE " yet"},
        {"warn", REGISTRY_NOT_FOUND, "", 0, 0, VERIFIED_RETRY, "asking again"},
        {"require", REGISTRY_OK, DIGEST_B, 0, 0, VERIFIED_RETRY, "still points at " DIGEST_B},
        {"require", REGISTRY_NOT_FOUND, "", 1, 0, VERIFIED_MISSING, "not in the registry"},
        {"require", REGISTRY_OK, DIGEST_B, 1, 0, VERIFIED_MOVED, "superseded in the registry"},
        {"require", REGISTRY_OK, DIGEST_A, 0, 0, VERIFIED_DEPLOY, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct verify_answer a = {cases[i].res, "", "boom"};
        snprintf(a.digest, sizeof a.digest, "%s", cases[i].digest);
        char why[DECIDE_REASON_MAX];
        enum decide_verified got = decide_verify(cases[i].mode, &p, NEW_IMAGE, &a, cases[i].late,
                                                 cases[i].settled, why, sizeof why);
        CHECK(got == cases[i].want, "verify case %zu: %d, want %d", i, got, cases[i].want);
        CHECK(strstr(why, cases[i].reason) != NULL, "verify case %zu: reason \"%s\"", i, why);
    }
    /* A push that names no digest (other registries' webhooks) takes the registry's. */
    struct push nod = p;
    nod.digest[0] = '\0';
    struct verify_answer a = {REGISTRY_OK, DIGEST_B, ""};
    char why[DECIDE_REASON_MAX];
    CHECK(decide_verify("require", &nod, NEW_IMAGE, &a, 0, 1, why, sizeof why) == VERIFIED_DEPLOY,
          "no digest in the push: deployed");
}

/* ---------------------------------------------------------------- reconcile */

/* One tag the registry has: "tag@created_hour[#digest-seed]", created_hour 0 = none. */
struct rtag {
    const char *tag;
    int hour;
    char dseed; /* digest "sha256:<dseed x64>"; 0: not asked */
    int exact;
};

static const struct reconcile_case {
    const char *name;
    const char *label, *image, *digest_label, *baseline;
    struct rtag tags[8];
    enum reconcile_action want;
    const char *want_tag; /* the pick; NULL for none */
    const char *reason_has;
    const char *host, *repo; /* the candidates'; NULL: reg.io and one derived from the label */
} reconcile_cases[] = {
    {"glob: newest by created, not by name",
     "strava/foo:main-*",
     "reg.io/strava/foo:main-1",
     NULL,
     NULL,
     {{"main-1", 1, 0, 0}, {"main-10", 12, 0, 0}, {"main-9", 9, 0, 0}},
     RECONCILE_DEPLOY,
     "main-10",
     "newer than main-1",
     NULL,
     NULL},
    {"glob: runs the newest already",
     "strava/foo:main-*",
     "reg.io/strava/foo:main-10",
     NULL,
     NULL,
     {{"main-1", 1, 0, 0}, {"main-10", 12, 0, 0}, {"main-9", 9, 0, 0}},
     RECONCILE_NOTHING,
     NULL,
     "newest matching image (main-10)",
     NULL,
     NULL},
    {"glob: running tag built at the same time as the newest: no restart",
     "strava/foo:main-*",
     "reg.io/strava/foo:main-a",
     NULL,
     NULL,
     {{"main-a", 5, 0, 0}, {"main-b", 5, 0, 0}},
     RECONCILE_NOTHING,
     NULL,
     "newest",
     NULL,
     NULL},
    {"glob: undated tags are older than any dated one",
     "strava/foo:main-*",
     "reg.io/strava/foo:main-0",
     NULL,
     NULL,
     {{"main-0", 1, 0, 0}, {"main-z", 0, 0, 0}, {"main-y", 0, 0, 0}},
     RECONCILE_NOTHING,
     NULL,
     "main-0",
     NULL,
     NULL},
    {"glob: all undated: then by name",
     "strava/foo:main-*",
     "reg.io/strava/foo:other",
     NULL,
     NULL,
     {{"main-a", 0, 0, 0}, {"main-c", 0, 0, 0}, {"main-b", 0, 0, 0}},
     RECONCILE_DEPLOY,
     "main-c",
     "runs none of them",
     NULL,
     NULL},
    {"glob: app runs something else: newest deploys",
     "strava/foo:main-*",
     "reg.io/strava/foo:hotfix",
     NULL,
     NULL,
     {{"main-1", 1, 0, 0}, {"hotfix", 20, 0, 0}},
     RECONCILE_DEPLOY,
     "main-1",
     "runs none of them",
     NULL,
     NULL},
    {"no tag matches",
     "strava/foo:main-*",
     "reg.io/strava/foo:main-1",
     NULL,
     NULL,
     {{"dev-1", 1, 0, 0}},
     RECONCILE_NOTHING,
     NULL,
     "no tag in the registry",
     NULL,
     NULL},
    {"semver: highest in range, not the later backport",
     "semver:strava/api:^1.2",
     "reg.io/strava/api:1.2.0",
     NULL,
     NULL,
     {{"1.2.0", 1, 0, 0}, {"1.3.0", 2, 0, 0}, {"2.0.0", 3, 0, 0}, {"1.2.9", 4, 0, 0}},
     RECONCILE_DEPLOY,
     "1.3.0",
     "highest version",
     NULL,
     NULL},
    {"semver: never a downgrade",
     "semver:strava/api:^1",
     "reg.io/strava/api:1.3.0",
     NULL,
     NULL,
     {{"1.2.9", 9, 0, 0}, {"1.3.0", 1, 0, 0}},
     RECONCILE_NOTHING,
     NULL,
     "highest version in range",
     NULL,
     NULL},
    {"semver: nothing in range",
     "semver:strava/api:^3",
     "reg.io/strava/api:1.0.0",
     NULL,
     NULL,
     {{"1.2.9", 9, 0, 0}, {"2.0.0", 1, 0, 0}},
     RECONCILE_NOTHING,
     NULL,
     "no tag",
     NULL,
     NULL},
    {"exact: digest moved since the label",
     "strava/w:latest",
     "reg.io/strava/w:latest",
     "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     NULL,
     {{"latest", 0, 'b', 1}},
     RECONCILE_DEPLOY,
     "latest",
     "moved",
     NULL,
     NULL},
    {"exact: the label's digest: nothing",
     "strava/w:latest",
     "reg.io/strava/w:latest",
     "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
     NULL,
     {{"latest", 0, 'b', 1}},
     RECONCILE_NOTHING,
     NULL,
     "current digest",
     NULL,
     NULL},
    {"exact: deployed by hand: adopted",
     "strava/w:latest",
     "reg.io/strava/w:latest",
     NULL,
     NULL,
     {{"latest", 0, 'b', 1}},
     RECONCILE_ADOPT,
     "latest",
     "deployed by hand",
     NULL,
     NULL},
    {"exact: the adopted baseline: nothing",
     "strava/w:latest",
     "reg.io/strava/w:latest",
     NULL,
     "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
     {{"latest", 0, 'b', 1}},
     RECONCILE_NOTHING,
     NULL,
     "current digest",
     NULL,
     NULL},
    {"exact: moved past the baseline",
     "strava/w:latest",
     "reg.io/strava/w:latest",
     NULL,
     "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     {{"latest", 0, 'b', 1}},
     RECONCILE_DEPLOY,
     "latest",
     "moved",
     NULL,
     NULL},
    {"exact: a pinned image's digest counts as known",
     "strava/w:latest",
     "reg.io/strava/"
     "w:latest@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
     NULL,
     NULL,
     {{"latest", 0, 'b', 1}},
     RECONCILE_NOTHING,
     NULL,
     "current digest",
     NULL,
     NULL},
    {"exact: the app runs another tag",
     "strava/w:latest",
     "reg.io/strava/w:v1",
     NULL,
     NULL,
     {{"latest", 0, 'b', 1}},
     RECONCILE_DEPLOY,
     "latest",
     "not latest",
     NULL,
     NULL},
    {"semver: a pre-release is no candidate of a range that names none",
     "semver:strava/api:^1.4",
     "reg.io/strava/api:1.4.0",
     NULL,
     NULL,
     {{"1.4.0", 1, 0, 0}, {"1.5.0-rc.1", 9, 0, 0}, {"1.4.1", 2, 0, 0}},
     RECONCILE_DEPLOY,
     "1.4.1",
     "highest version",
     NULL,
     NULL},
    {"semver: the release beats its own pre-release",
     "semver:strava/api:>=1.5.0-rc.1",
     "reg.io/strava/api:1.5.0-rc.1",
     NULL,
     NULL,
     {{"1.5.0-rc.2", 9, 0, 0}, {"1.5.0", 1, 0, 0}, {"1.6.0-rc.1", 10, 0, 0}},
     RECONCILE_DEPLOY,
     "1.5.0",
     "highest version",
     NULL,
     NULL},
    /* Docker Hub's official images: the app's "nginx" is the registry's "library/nginx". */
    {"hub exact: nginx is library/nginx, same digest: nothing",
     "docker.io/nginx:latest",
     "nginx:latest",
     "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
     NULL,
     {{"latest", 0, 'b', 1}},
     RECONCILE_NOTHING,
     NULL,
     "current digest",
     "docker.io",
     "library/nginx"},
    {"hub glob: the app runs the newest as docker.io/nginx: nothing",
     "docker.io/nginx:1.*",
     "docker.io/nginx:1.27.0",
     NULL,
     NULL,
     {{"1.26.0", 1, 0, 0}, {"1.27.0", 5, 0, 0}},
     RECONCILE_NOTHING,
     NULL,
     "newest matching image (1.27.0)",
     "docker.io",
     "library/nginx"},
    {"hub: a one-component repository elsewhere is not library/",
     "reg.io/nginx:latest",
     "reg.io/nginx:latest",
     "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
     NULL,
     {{"latest", 0, 'b', 1}},
     RECONCILE_NOTHING,
     NULL,
     "current digest",
     "reg.io",
     "nginx"},
};

static void test_reconcile(void)
{
    static char digests[8][80];
    for (size_t k = 0; k < sizeof reconcile_cases / sizeof reconcile_cases[0]; k++) {
        const struct reconcile_case *rc = &reconcile_cases[k];
        struct reconcile_candidate c[8];
        size_t n = 0;
        for (; n < 8 && rc->tags[n].tag; n++) {
            const struct rtag *t = &rc->tags[n];
            memset(&c[n], 0, sizeof c[n]);
            c[n].host = rc->host ? rc->host : "reg.io";
            c[n].repository =
                rc->repo ? rc->repo
                : strchr(rc->label, ':') && !strncmp(rc->label, "semver:", 7)
                    ? "strava/api"
                    : (!strncmp(rc->label, "strava/w", 8) ? "strava/w" : "strava/foo");
            c[n].tag = t->tag;
            c[n].created_ns = (int64_t)t->hour * 3600 * 1000000000LL;
            c[n].exact = t->exact;
            if (t->dseed) {
                snprintf(digests[n], sizeof digests[n], "sha256:");
                memset(digests[n] + 7, t->dseed, 64);
                digests[n][71] = '\0';
                c[n].digest = digests[n];
            }
        }
        match_set *ms = compile(rc->label);
        struct reconcile_verdict v;
        decide_reconcile(ms, rc->image, rc->digest_label, rc->baseline, c, n, &v);
        CHECK(v.action == rc->want, "%s: action %d, want %d (%s)", rc->name, v.action, rc->want,
              v.reason);
        const char *got = v.pick >= 0 ? c[v.pick].tag : NULL;
        CHECK((!got && !rc->want_tag) || (got && rc->want_tag && !strcmp(got, rc->want_tag)),
              "%s: picked %s, want %s", rc->name, got ? got : "none",
              rc->want_tag ? rc->want_tag : "none");
        CHECK(strstr(v.reason, rc->reason_has) != NULL, "%s: reason \"%s\" lacks \"%s\"", rc->name,
              v.reason, rc->reason_has);
        match_free(ms);
    }
}

/* --- pushes without a digest (Docker Hub, Quay, Nexus webhooks) ----------------------------- */

/* Docker Hub's official images: a push of library/nginx to an app running "nginx" keeps the
 * app's spelling, so a re-delivered push of what it runs changes nothing. */
static void test_hub_spelling(void)
{
    cJSON *app = app_new();
    struct app_view v;
    struct config cfg;
    struct decision d;
    memset(&cfg, 0, sizeof cfg);
    set_image(app, "nginx:1.27.0");
    set_label(app, "autodeploy.digest", DIGEST_B);
    decide_app_view(app, "autodeploy", &v);
    struct push p = mkpush("library/nginx", "1.27.0", DIGEST_B, PUSH_TS, "hub");
    snprintf(p.host, sizeof p.host, "docker.io");
    CHECK(decide_job(&cfg, &v, &p, 0, &d) == 0 && d.action == DECIDE_UNCHANGED,
          "hub: the image it runs is unchanged (%d %s %s)", d.action, d.new_image, d.reason);
    struct push q = mkpush("library/nginx", "1.27.1", DIGEST_A, PUSH_TS, "hub");
    snprintf(q.host, sizeof q.host, "docker.io");
    CHECK(decide_job(&cfg, &v, &q, 0, &d) == 0 && d.action == DECIDE_DEPLOY &&
              !strcmp(d.new_image, "nginx:1.27.1"),
          "hub: the app's spelling is kept (%s)", d.new_image);
    struct push r = mkpush("nginx", "1.27.1", DIGEST_A, PUSH_TS, "ci");
    set_image(app, "reg.io/library/nginx:1");
    decide_app_view(app, "autodeploy", &v);
    CHECK(decide_job(&cfg, &v, &r, 0, &d) == 0 && !strcmp(d.new_image, "reg.io/nginx:1.27.1"),
          "another registry: library/nginx and nginx differ (%s)", d.new_image);
    cJSON_Delete(app);
}

static void test_no_digest(void)
{
    cJSON *app = app_new();
    struct app_view v;
    struct config cfg;
    struct decision d;
    memset(&cfg, 0, sizeof cfg);
    /* The app runs master-2 at DIGEST_B; the same tag is pushed again, digest unknown. */
    set_image(app, NEW_IMAGE);
    set_label(app, "autodeploy.digest", DIGEST_B);
    decide_app_view(app, "autodeploy", &v);
    struct push p = mkpush("strava/foo", "master-2", "", PUSH_TS, "hub");
    CHECK(decide_job(&cfg, &v, &p, 0, &d) == 0 && d.action == DECIDE_DEPLOY,
          "no digest: never taken for the running one (%d %s)", d.action, d.reason);
    CHECK(d.mutable_tag == 1, "same tag, unknown digest: the agents must pull");
    char *s = decide_update_body(&v, &d, &p, "2026-11-25T10:00:04Z");
    cJSON *body = s ? cJSON_Parse(s) : NULL;
    const cJSON *docker = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(body, "container"), "docker");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(docker, "forcePullImage")),
          "deploy by tag sets forcePullImage: %s", s ? s : "(null)");
    CHECK(label_of(body, "autodeploy.digest") == NULL,
          "the previous digest label is removed, not left claiming the new image: %s",
          s ? s : "(null)");
    CHECK(label_of(body, "autodeploy.pushed-by") != NULL, "the other labels are written");
    cJSON_Delete(body);
    free(s);

    /* Another tag, digest unknown: pulled afresh too (the agents may hold an old copy). */
    struct push other_tag = mkpush("strava/foo", "master-3", "", PUSH_TS, "hub");
    CHECK(decide_job(&cfg, &v, &other_tag, 0, &d) == 0 && d.action == DECIDE_DEPLOY &&
              d.mutable_tag == 1,
          "new tag without digest: forcePullImage");
    struct push with_digest = mkpush("strava/foo", "master-3", DIGEST_A, PUSH_TS, "ci");
    CHECK(decide_job(&cfg, &v, &with_digest, 0, &d) == 0 && d.mutable_tag == 0,
          "new tag with a digest: no forced pull");

    /* After the deploy the app has no digest label: it is still ours. */
    set_label(app, "autodeploy.digest", NULL);
    decide_app_view(app, "autodeploy", &v);
    char why[DECIDE_REASON_MAX];
    CHECK(decide_owner(&v, NEW_IMAGE, "", NULL, why, sizeof why) != OWNER_CHANGED,
          "deployed by tag: an empty digest is not checked (%s)", why);
    CHECK(decide_owner(&v, NEW_IMAGE, DIGEST_A, NULL, why, sizeof why) == OWNER_CHANGED,
          "a digest we wrote must still be there");

    /* --verify-push require|warn: the registry's answer becomes the push's digest. */
    struct verify_answer ok = {REGISTRY_OK, DIGEST_B, ""};
    struct verify_answer bad = {REGISTRY_OK, "sha256:short", ""};
    struct verify_answer down = {REGISTRY_UNREACHABLE, "", "boom"};
    struct push q = p;
    CHECK(decide_adopt_digest(&q, &down) == 0 && !q.digest[0], "no answer: still no digest");
    CHECK(decide_adopt_digest(&q, &bad) == 0 && !q.digest[0], "an invalid digest is not taken");
    CHECK(decide_adopt_digest(&q, &ok) == 1 && !strcmp(q.digest, DIGEST_B), "digest adopted");
    struct verify_answer other = {REGISTRY_OK, DIGEST_A, ""};
    CHECK(decide_adopt_digest(&q, &other) == 0 && !strcmp(q.digest, DIGEST_B),
          "a push's own digest is never replaced");
    /* Decided again with it: the app already runs that digest. */
    set_label(app, "autodeploy.digest", DIGEST_B);
    decide_app_view(app, "autodeploy", &v);
    CHECK(decide_job(&cfg, &v, &q, 0, &d) == 0 && d.action == DECIDE_UNCHANGED,
          "with the registry's digest the running image is recognised (%d)", d.action);
    cJSON_Delete(app);
}

/* --- approval labels ------------------------------------------------------------------------ */

static void test_approve_labels(void)
{
    static const struct {
        const char *labels;
        int approve;
        long want; /* ms, -1: refused */
    } cases[] = {
        {"{}", 0, 3600000},
        {"{\"autodeploy.approve\":\"true\"}", 1, 3600000},
        {"{\"autodeploy.approve\":\"yes\",\"autodeploy.approve-timeout\":\"30m\"}", 1, 1800000},
        {"{\"autodeploy.approve\":\"false\",\"autodeploy.approve-timeout\":\"1s\"}", 0, 1000},
        {"{\"autodeploy.approve\":\"1\",\"autodeploy.approve-timeout\":\"90\"}", 1, 90000},
        /* A safety gate fails closed: any case of true asks, anything unreadable is -1. */
        {"{\"autodeploy.approve\":\"TRUE\"}", 1, 3600000},
        {"{\"autodeploy.approve\":\"True\"}", 1, 3600000},
        {"{\"autodeploy.approve\":\"on\"}", 1, 3600000},
        {"{\"autodeploy.approve\":\"FALSE\"}", 0, 3600000},
        {"{\"autodeploy.approve\":\"no\"}", 0, 3600000},
        {"{\"autodeploy.approve\":\"Off\"}", 0, 3600000},
        {"{\"autodeploy.approve\":\"0\"}", 0, 3600000},
        {"{\"autodeploy.approve\":\"ture\"}", -1, 3600000},
        {"{\"autodeploy.approve\":\"\"}", -1, 3600000},
        {"{\"autodeploy.approve\":\" true\"}", -1, 3600000},
        {"{\"autodeploy.approve\":true}", -1, 3600000},
        {"{\"autodeploy.approve-timeout\":\"500ms\"}", 0, -1},
        {"{\"autodeploy.approve-timeout\":\"8d\"}", 0, -1},
        {"{\"autodeploy.approve-timeout\":\"soon\"}", 0, -1},
        {"{\"autodeploy.approve-timeout\":\"\"}", 0, -1},
        {"{\"autodeploy.approve-timeout\":5}", 0, 3600000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char doc[512], why[DECIDE_REASON_MAX] = "";
        snprintf(doc, sizeof doc, "{\"id\":\"/prod/api\",\"labels\":%s}", cases[i].labels);
        cJSON *app = cJSON_Parse(doc);
        struct app_view v;
        decide_app_view(app, "autodeploy", &v);
        CHECK(v.approve == cases[i].approve, "approve label, case %zu", i);
        long ms = decide_approve_timeout(&v, 3600000, why, sizeof why);
        CHECK(ms == cases[i].want, "approve-timeout case %zu: got %ld", i, ms);
        if (ms < 0)
            CHECK(strstr(why, "autodeploy.approve-timeout") != NULL, "the reason names the label");
        cJSON_Delete(app);
    }
}

int main(void)
{
    test_reconcile();
    test_approve_labels();
    test_hub_spelling();
    test_app_view();
    test_is_true();
    test_app_id();
    test_gate();
    test_new_image();
    test_choose_semver();
    test_choose_glob();
    test_job();
    test_update_body();
    test_rollback_body();
    test_owner();
    test_verify();
    test_no_digest();
    return TEST_DONE("test_decide");
}
