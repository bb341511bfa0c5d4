/*
 * test_deploy.c: the deployer's update protocol and outcome paths against a scripted Marathon
 * and a fake clock, in the manner of chrony's unit tests: the deployer is handed a
 * deploy_env whose clock only moves when the deployer sleeps or waits, and whose Marathon is a
 * small model of the app, its deployments and other writers (an operator, an autoscaler) acting
 * at set times. Every scenario of a minute of Marathon time runs in microseconds.
 */
#include "approvals.h"
#include "deploy.h"
#include "job.h"
#include "journal.h"
#include "listing.h"
#include "log.h"
#include "report.h"
#include "testlib.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <unistd.h>

#define MAXDEP 16
#define MAXLOG 256
#define MAXREP 64

struct fdep {
    char id[64];
    int running, visible_delay_done;
    int64_t created, ends_at; /* ends_at < 0: hangs */
    int fail;                 /* ends failed (a task crash loop Marathon gave up on) */
    int by_us;                /* created by a request of the deployer */
    cJSON *original;          /* the app before (what a DELETE reverts to) */
    char version[40];
};

struct fake {
    int64_t now;
    cJSON *app; /* id, container, labels, instances, version, versionInfo */
    cJSON *tasks;
    struct fdep deps[MAXDEP];
    int ndeps, nver;
    long rollout_ms, revert_ms, list_delay_ms;
    int hang, revert_hang, fail_deploy, no_patch;
    int patch_status[8], n_patch_status, patch_i, lost_applies; /* scripted PATCH answers */
    int delete_status;                                          /* scripted DELETE answer */
    int connected;
    unsigned generation;
    struct {
        char dep[64];
        enum follow_outcome o;
        char reason[128];
    } events[32];
    int nevents;
    int watch_ids[8];
    char watch_dep[8][64];
    int64_t action_at;
    void (*action)(struct fake *);
    struct {
        char method[8], path[256];
        char *body;
        int64_t at;
    } log[MAXLOG];
    int nlog;
};

static struct fake F;

/* ---------------------------------------------------------------- reports captured */

static struct {
    enum report_kind kind;
    int64_t at;
    char reason[REPORT_TEXT_MAX];
    char approval_id[40], by[128], via[16];
} reps[MAXREP];
static int nreps;

static void sink(const struct report *r, void *ctx)
{
    (void)ctx;
    if (nreps < MAXREP) {
        reps[nreps].kind = r->kind;
        reps[nreps].at = F.now;
        snprintf(reps[nreps].reason, sizeof reps[nreps].reason, "%s", r->reason);
        snprintf(reps[nreps].approval_id, sizeof reps[0].approval_id, "%s", r->approval_id);
        snprintf(reps[nreps].by, sizeof reps[0].by, "%s", r->approval_by);
        snprintf(reps[nreps].via, sizeof reps[0].via, "%s", r->approval_via);
        nreps++;
    }
}

/* "deploying,deployed,..." of the reports so far. */
static const char *kinds(void)
{
    static char s[1024];
    s[0] = '\0';
    for (int i = 0; i < nreps; i++) {
        if (i) strcat(s, ",");
        strcat(s, report_kind_name(reps[i].kind));
    }
    return s;
}

static int find_rep(enum report_kind k)
{
    for (int i = 0; i < nreps; i++)
        if (reps[i].kind == k) return i;
    return -1;
}

/* ---------------------------------------------------------------- the Marathon model */

static void iso(int64_t ms, char *out, size_t len)
{
    /* A fixed day; ms since the test's start. */
    snprintf(out, len, "2026-11-25T10:%02d:%02d.%03dZ", (int)(ms / 60000 % 60),
             (int)(ms / 1000 % 60), (int)(ms % 1000));
}

static void new_version(char *out, size_t len)
{
    iso(F.now + (F.nver++ % 7), out, len); /* unique even within one ms */
}

static cJSON *vinfo(void)
{
    return cJSON_GetObjectItemCaseSensitive(F.app, "versionInfo");
}

static const char *app_str(const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(F.app, k));
}

static const char *app_image(void)
{
    cJSON *c = cJSON_GetObjectItemCaseSensitive(F.app, "container");
    return cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "docker"), "image"));
}

static const char *app_label(const char *k)
{
    return cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(F.app, "labels"), k));
}

static int app_instances(void)
{
    return cJSON_GetObjectItemCaseSensitive(F.app, "instances")->valueint;
}

static void set_tasks(int n, const char *version, const char *state)
{
    cJSON_Delete(F.tasks);
    F.tasks = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "id", "t");
        cJSON_AddStringToObject(t, "version", version);
        cJSON_AddStringToObject(t, "state", state);
        cJSON_AddItemToArray(F.tasks, t);
    }
}

static void setup(const char *image, const char *pattern, int instances)
{
    cJSON_Delete(F.app);
    cJSON_Delete(F.tasks);
    for (int i = 0; i < F.ndeps; i++)
        cJSON_Delete(F.deps[i].original);
    for (int i = 0; i < F.nlog; i++)
        free(F.log[i].body);
    memset(&F, 0, sizeof F);
    nreps = 0;
    F.now = 100000;
    F.rollout_ms = 1000;
    F.revert_ms = 1000;
    F.connected = 1;
    F.delete_status = 200;
    char doc[2048], v[40];
    iso(0, v, sizeof v);
    snprintf(doc, sizeof doc,
             "{\"id\":\"/staging/foo\",\"instances\":%d,\"cmd\":\"run\",\"env\":{\"A\":\"1\"},"
             "\"container\":{\"type\":\"DOCKER\",\"docker\":{\"image\":\"%s\","
             "\"forcePullImage\":false},\"volumes\":[{\"containerPath\":\"/d\"}]},"
             "\"labels\":{\"autodeploy\":\"%s\",\"team\":\"x\",\"autodeploy.digest\":"
             "\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"},"
             "\"version\":\"%s\",\"versionInfo\":{\"lastConfigChangeAt\":\"%s\","
             "\"lastScalingAt\":\"%s\"}}",
             instances, image, pattern, v, v, v);
    F.app = cJSON_Parse(doc);
    set_tasks(instances, v, "TASK_RUNNING");
}

static void event(const char *dep, enum follow_outcome o, const char *reason)
{
    if (!F.connected || F.nevents >= 32) return; /* a cut stream loses events for good */
    snprintf(F.events[F.nevents].dep, sizeof F.events[0].dep, "%s", dep);
    F.events[F.nevents].o = o;
    snprintf(F.events[F.nevents].reason, sizeof F.events[0].reason, "%s", reason);
    F.nevents++;
}

static struct fdep *running_dep(void)
{
    for (int i = 0; i < F.ndeps; i++)
        if (F.deps[i].running) return &F.deps[i];
    return NULL;
}

/* Starts a deployment to the app's current definition. */
static struct fdep *start_dep(int by_us, cJSON *original, long ms, int hang, int fail)
{
    struct fdep *d = &F.deps[F.ndeps++];
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "dep-%d", F.ndeps);
    d->running = 1;
    d->created = F.now;
    d->ends_at = hang ? -1 : F.now + ms;
    d->fail = fail;
    d->by_us = by_us;
    d->original = original;
    snprintf(d->version, sizeof d->version, "%s", app_str("version"));
    return d;
}

/* Cancels a running deployment as a forced update or a DELETE does. */
static void cancel(struct fdep *d)
{
    d->running = 0;
    event(d->id, FOLLOW_FAILED, "The upgrade has been cancelled");
}

static int64_t next_change(void)
{
    int64_t t = INT64_MAX;
    for (int i = 0; i < F.ndeps; i++)
        if (F.deps[i].running && F.deps[i].ends_at >= 0 && F.deps[i].ends_at < t)
            t = F.deps[i].ends_at;
    if (F.action && F.action_at < t) t = F.action_at;
    return t;
}

/* Brings the model up to F.now: scripted actions, deployments that end. */
static void tick(void)
{
    if (F.action && F.now >= F.action_at) {
        void (*a)(struct fake *) = F.action;
        F.action = NULL;
        a(&F);
    }
    for (int i = 0; i < F.ndeps; i++) {
        struct fdep *d = &F.deps[i];
        if (!d->running || d->ends_at < 0 || F.now < d->ends_at) continue;
        d->running = 0;
        if (d->fail) {
            set_tasks(app_instances(), d->version, "TASK_FAILED");
            cJSON_AddItemToObject(F.app, "lastTaskFailure",
                                  cJSON_Parse("{\"message\":\"exit 1: boom\"}"));
            event(d->id, FOLLOW_FAILED, "task failed: exit 1: boom");
        } else {
            set_tasks(app_instances(), app_str("version"), "TASK_RUNNING");
            event(d->id, FOLLOW_SUCCEEDED, "");
        }
    }
}

/* Moves the clock to until, stopping at each change on the way. */
static void advance(int64_t until)
{
    tick();
    while (F.now < until) {
        int64_t n = next_change();
        F.now = n < until && n > F.now ? n : until;
        tick();
    }
}

static void reply(struct httpc_resp *r, long status, const char *fmt, ...)
{
    r->status = status;
    char tmp[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_adds(&r->body, tmp);
}

static void app_json(struct buf *b)
{
    cJSON *a = cJSON_Duplicate(F.app, 1);
    cJSON_AddItemToObject(a, "tasks", cJSON_Duplicate(F.tasks, 1));
    cJSON *deps = cJSON_AddArrayToObject(a, "deployments");
    for (int i = 0; i < F.ndeps; i++) {
        struct fdep *d = &F.deps[i];
        if (d->running && F.now >= d->created + F.list_delay_ms) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", d->id);
            cJSON_AddItemToArray(deps, o);
        }
    }
    char *s = cJSON_PrintUnformatted(a);
    buf_adds(b, "{\"app\":");
    buf_adds(b, s);
    buf_adds(b, "}");
    free(s);
    cJSON_Delete(a);
}

/* PATCH / PUT of the app: Marathon's merge of top-level fields, its lock, its deployment. */
static void update(const char *body, int force, struct httpc_resp *r)
{
    struct fdep *run = running_dep();
    if (run && !force) {
        reply(r, 409,
              "{\"message\":\"App is locked by one or more deployments.\","
              "\"deployments\":[{\"id\":\"%s\"}]}",
              run->id);
        return;
    }
    if (run) cancel(run);
    cJSON *b = cJSON_Parse(body), *item;
    cJSON *original = cJSON_Duplicate(F.app, 1);
    int config = 0;
    cJSON_ArrayForEach(item, b)
    {
        config |= strcmp(item->string, "instances") != 0;
        cJSON_ReplaceItemInObjectCaseSensitive(F.app, item->string, cJSON_Duplicate(item, 1));
    }
    cJSON_Delete(b);
    char v[40];
    new_version(v, sizeof v);
    cJSON_ReplaceItemInObjectCaseSensitive(F.app, "version", cJSON_CreateString(v));
    cJSON_ReplaceItemInObjectCaseSensitive(vinfo(), config ? "lastConfigChangeAt" : "lastScalingAt",
                                           cJSON_CreateString(v));
    int fail = F.fail_deploy > 0; /* the first deployment only: the rollback's works */
    F.fail_deploy -= fail;
    struct fdep *d = start_dep(1, original, F.rollout_ms, F.hang, fail);
    r->status = 200;
    snprintf(r->deployment_id, sizeof r->deployment_id, "%s", d->id);
    reply(r, 200, "{\"version\":\"%s\",\"deploymentId\":\"%s\"}", v, d->id);
}

/* DELETE /v2/deployments/{id}: cancels it and starts Marathon's revert. */
static struct fdep *revert(struct fdep *d)
{
    cancel(d);
    cJSON *orig = d->original;
    d->original = NULL;
    cJSON *now = F.app;
    F.app = orig;
    struct fdep *rb = start_dep(0, now, F.revert_ms, F.revert_hang, 0);
    return rb;
}

static int req(void *ctx, const char *method, const char *path, const char *body,
               struct httpc_resp *r)
{
    (void)ctx;
    memset(r, 0, sizeof *r);
    buf_init(&r->body, 1 << 20);
    tick();
    if (F.nlog < MAXLOG) {
        snprintf(F.log[F.nlog].method, sizeof F.log[0].method, "%s", method);
        snprintf(F.log[F.nlog].path, sizeof F.log[0].path, "%s", path);
        F.log[F.nlog].body = body ? strdup(body) : NULL;
        F.log[F.nlog].at = F.now;
        F.nlog++;
    }
    int write = !strcmp(method, "PATCH") || !strcmp(method, "PUT");
    if (!strcmp(method, "GET") && !strcmp(path, "/v2/apps?label=autodeploy")) {
        /* The labelled apps: 40 others around the model app (Marathon lists whole apps). */
        r->status = 200;
        char *a = cJSON_PrintUnformatted(F.app);
        buf_adds(&r->body, "{\"apps\":[");
        for (int i = 0; i < 41; i++) {
            if (i == 20)
                buf_adds(&r->body, a);
            else
                buf_printf(&r->body,
                           "{\"id\":\"/other/app-%d\",\"env\":{\"N\":\"%d\",\"PAD\":\"%0*d\"},"
                           "\"container\":{\"docker\":{\"image\":\"r/other:%d\"}},\"labels\":"
                           "{\"autodeploy\":\"r/other:main-*\"},\"instances\":%d}",
                           i, i, 3000, 0, i, i); /* 41 apps, 120 KiB: read ahead in pieces */
            buf_adds(&r->body, i < 40 ? "," : "]}");
        }
        free(a);
    } else if (!strcmp(method, "GET") && !strcmp(path, "/v2/apps/staging/foo")) {
        r->status = 200;
        app_json(&r->body);
    } else if (!strcmp(method, "GET") && !strcmp(path, "/v2/deployments")) {
        r->status = 200;
        buf_adds(&r->body, "[");
        int n = 0;
        for (int i = 0; i < F.ndeps; i++)
            if (F.deps[i].running && F.now >= F.deps[i].created + F.list_delay_ms)
                buf_printf(&r->body, "%s{\"id\":\"%s\",\"version\":\"%s\"}", n++ ? "," : "",
                           F.deps[i].id, F.deps[i].version);
        buf_adds(&r->body, "]");
    } else if (write && strncmp(path, "/v2/apps/staging/foo", 20) == 0) {
        if (!strcmp(method, "PATCH") && F.no_patch) {
            reply(r, 405, "{\"message\":\"HTTP 405 Method Not Allowed\"}");
        } else if (F.patch_i < F.n_patch_status) {
            int st = F.patch_status[F.patch_i++];
            if (st == 0 && F.lost_applies) update(body, strstr(path, "force=true") != NULL, r);
            buf_free(&r->body);
            buf_init(&r->body, 1 << 20);
            r->status = st;
            r->deployment_id[0] = '\0';
            if (st == 0) snprintf(r->err, sizeof r->err, "Operation timed out");
            if (st) reply(r, st, "{\"message\":\"scripted %d\"}", st);
            return st ? 0 : -1;
        } else {
            update(body, strstr(path, "force=true") != NULL, r);
        }
    } else if (!strcmp(method, "DELETE") && !strncmp(path, "/v2/deployments/", 16)) {
        struct fdep *d = NULL;
        for (int i = 0; i < F.ndeps; i++)
            if (F.deps[i].running && !strcmp(F.deps[i].id, path + 16)) d = &F.deps[i];
        if (F.delete_status != 200)
            reply(r, F.delete_status, "{\"message\":\"scripted %d\"}", F.delete_status);
        else if (!d)
            reply(r, 404, "{\"message\":\"DeploymentPlan %s does not exist\"}", path + 16);
        else {
            struct fdep *rb = revert(d);
            reply(r, 200, "{\"deploymentId\":\"%s\",\"version\":\"x\"}", rb->id);
        }
    } else {
        reply(r, 404, "{\"message\":\"not found\"}");
    }
    return 0;
}

/* The listing read while it arrives (marathon_get_progressive's contract): first part of an
 * answer that then starts over (another Marathon URL), then the answer in growing prefixes of
 * `step` bytes more each. */
static size_t progressive_step;

static int get_progressive(void *ctx, const char *path,
                           void (*on_body)(const char *body, size_t len, void *arg), void *arg,
                           struct httpc_resp *r)
{
    static char lost[100000];
    int lost_len = snprintf(lost, sizeof lost,
                            "{\"apps\":[{\"id\":\"/ghost\",\"labels\":{\"autodeploy\":\"g:*\"},"
                            "\"env\":{\"PAD\":\"%0*d\"}},{\"id\":",
                            80000, 0);
    on_body(NULL, 0, arg);
    on_body(lost, (size_t)lost_len, arg);
    on_body(NULL, 0, arg);
    int rc = req(ctx, "GET", path, NULL, r);
    if (rc == 0 && r->status >= 200 && r->status < 300 && r->body.data) {
        for (size_t n = progressive_step; n < r->body.len; n += progressive_step)
            on_body(r->body.data, n, arg);
        on_body(r->body.data, r->body.len, arg);
    }
    return rc;
}

static int64_t now_ms(void *ctx)
{
    (void)ctx;
    return F.now;
}

static void sleep_ms(void *ctx, long ms)
{
    (void)ctx;
    advance(F.now + ms);
}

static int connected(void *ctx)
{
    (void)ctx;
    return F.connected;
}

static unsigned generation(void *ctx)
{
    (void)ctx;
    return F.generation;
}

static int watch(void *ctx, const char *dep, const char *app)
{
    (void)ctx;
    (void)app;
    for (int i = 0; i < 8; i++)
        if (!F.watch_ids[i]) {
            F.watch_ids[i] = i + 1;
            snprintf(F.watch_dep[i], sizeof F.watch_dep[i], "%s", dep);
            return i + 1;
        }
    return -1;
}

static int take_event(int w, char *reason, size_t len)
{
    for (int i = 0; i < F.nevents; i++)
        if (!strcmp(F.events[i].dep, F.watch_dep[w - 1])) {
            snprintf(reason, len, "%s", F.events[i].reason);
            return F.events[i].o;
        }
    return FOLLOW_PENDING;
}

static enum follow_outcome wait_ev(void *ctx, int w, int64_t deadline, long max_wait, char *reason,
                                   size_t len, char *task, size_t tlen)
{
    (void)ctx;
    if (tlen) task[0] = '\0';
    int64_t until = F.now + max_wait < deadline ? F.now + max_wait : deadline;
    for (;;) {
        int o = take_event(w, reason, len);
        if (o != FOLLOW_PENDING || F.now >= until) return (enum follow_outcome)o;
        int64_t n = next_change();
        F.now = n < until && n > F.now ? n : until;
        tick();
    }
}

static void unwatch(void *ctx, int w)
{
    (void)ctx;
    if (w > 0 && w <= 8) F.watch_ids[w - 1] = 0;
}

/* ---------------------------------------------------------------- harness */

static struct config cfg;

static struct deployer *make(const char *extra_flags)
{
    static char *argv[32];
    static char flags[512];
    int argc = 0;
    argv[argc++] = "autodeployd";
    argv[argc++] = "--marathon-url";
    argv[argc++] = "http://127.0.0.1:1";
    snprintf(flags, sizeof flags, "%s", extra_flags);
    for (char *t = strtok(flags, " "); t && argc < 30; t = strtok(NULL, " "))
        argv[argc++] = t;
    static struct config live[16];
    static int nlive;
    struct config *c = &live[nlive++ % 16];
    config_free(c);
    memset(c, 0, sizeof *c);
    enum config_action a;
    char err[256];
    if (config_load(c, argc, argv, NULL, &a, err, sizeof err) < 0) {
        fprintf(stderr, "config: %s\n", err);
        exit(2);
    }
    config_publish(c);
    cfg = *c;
    struct deploy_env env = {.now_ms = now_ms,
                             .sleep_ms = sleep_ms,
                             .request = req,
                             .stream_connected = connected,
                             .stream_generation = generation,
                             .watch = watch,
                             .wait = wait_ev,
                             .unwatch = unwatch};
    if (progressive_step) env.get_progressive = get_progressive;
    return deployer_new_env(c, NULL, &env, err, sizeof err);
}

static struct push mkpush(const char *repo, const char *tag, char dch, const char *ts)
{
    struct push p;
    memset(&p, 0, sizeof p);
    snprintf(p.repository, sizeof p.repository, "%s", repo);
    snprintf(p.tag, sizeof p.tag, "%s", tag);
    snprintf(p.digest, sizeof p.digest, "sha256:");
    memset(p.digest + 7, dch, 64);
    p.digest[71] = '\0';
    snprintf(p.pusher, sizeof p.pusher, "ci");
    if (ts) {
        snprintf(p.timestamp, sizeof p.timestamp, "%s", ts);
        event_parse_rfc3339(ts, &p.timestamp_ns);
    }
    return p;
}

static int count(const char *method, const char *prefix)
{
    int n = 0;
    for (int i = 0; i < F.nlog; i++)
        if (!strcmp(F.log[i].method, method) && !strncmp(F.log[i].path, prefix, strlen(prefix)))
            n++;
    return n;
}

/* No write of the deployer carries instances or version, and none forces. */
static void check_writes(const char *name)
{
    for (int i = 0; i < F.nlog; i++) {
        if (!F.log[i].body) continue;
        cJSON *b = cJSON_Parse(F.log[i].body);
        CHECK(!cJSON_HasObjectItem(b, "instances"), "%s: a write carries instances: %s", name,
              F.log[i].body);
        CHECK(!cJSON_HasObjectItem(b, "version"), "%s: a write carries version", name);
        CHECK(!strstr(F.log[i].path, "force=true"), "%s: a forced write %s", name, F.log[i].path);
        cJSON_Delete(b);
    }
}

static const char *state_of(struct deployer *d)
{
    static char s[32];
    struct buf b;
    buf_init(&b, 1 << 20);
    deployer_records_json(d, &b);
    cJSON *j = cJSON_Parse(b.data);
    buf_free(&b);
    const cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "deployments"), 0);
    snprintf(s, sizeof s, "%s",
             cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r0, "state")));
    cJSON_Delete(j);
    return s;
}

static const char *M1 = "registry.example.com/strava/foo:master-1";
static const char *M2 = "registry.example.com/strava/foo:master-2";

/* ---------------------------------------------------------------- other writers */

static void set_instances(int n, int config_change)
{
    char v[40];
    new_version(v, sizeof v);
    cJSON_ReplaceItemInObjectCaseSensitive(F.app, "instances", cJSON_CreateNumber(n));
    cJSON_ReplaceItemInObjectCaseSensitive(F.app, "version", cJSON_CreateString(v));
    cJSON_ReplaceItemInObjectCaseSensitive(
        vinfo(), config_change ? "lastConfigChangeAt" : "lastScalingAt", cJSON_CreateString(v));
}

/* An operator: PUT ?force=true {"instances":3} mid-rollout. */
static void op_forced_scale(struct fake *f)
{
    (void)f;
    struct fdep *run = running_dep();
    cJSON *orig = cJSON_Duplicate(F.app, 1);
    if (run) cancel(run);
    set_instances(3, 0);
    start_dep(0, orig, 1000, 0, 0);
}

/* The same, whose deployment then hangs (no offers for the third instance). */
static void op_forced_scale_hangs(struct fake *f)
{
    (void)f;
    struct fdep *run = running_dep();
    cJSON *orig = cJSON_Duplicate(F.app, 1);
    if (run) cancel(run);
    set_instances(3, 0);
    start_dep(0, orig, 0, 1, 0);
}

/* An operator: DELETE /v2/deployments/<ours> (Marathon reverts). */
static void op_delete_ours(struct fake *f)
{
    (void)f;
    struct fdep *run = running_dep();
    if (run) revert(run);
}

/* An operator: a forced edit to another image. */
static void op_forced_other_image(struct fake *f)
{
    (void)f;
    struct fdep *run = running_dep();
    cJSON *orig = cJSON_Duplicate(F.app, 1);
    if (run) cancel(run);
    cJSON *docker = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(F.app, "container"), "docker");
    cJSON_ReplaceItemInObjectCaseSensitive(docker, "image",
                                           cJSON_CreateString("registry.example.com/hotfix:1"));
    set_instances(1, 1);
    start_dep(0, orig, 500, 0, 0);
}

/* An autoscaler: PUT {"instances":2} (no force) once nothing runs. */
static void autoscale(struct fake *f)
{
    (void)f;
    set_instances(2, 0);
    start_dep(0, NULL, 200, 0, 0);
}

/* An autoscaler scaling to 3 right when our deployment failed (no deployment: instant). */
static void scale_no_dep(struct fake *f)
{
    (void)f;
    set_instances(3, 0);
}

/* Someone else's deployment holds the app for 5 s from the start. */
static void other_lock(long ms)
{
    start_dep(0, NULL, ms, 0, 0);
}

/* ---------------------------------------------------------------- scenarios */

static void run(struct deployer *d, struct push *p, size_t n)
{
    deployer_run_job(d, "/staging/foo", p, n);
}

static void fault1_forced_scale(int stream)
{
    setup(M1, "strava/foo:master-*", 1);
    F.connected = stream;
    F.rollout_ms = 3000;
    F.action_at = F.now + 1000;
    F.action = op_forced_scale;
    struct deployer *d = make("--rollback-on-failure --poll-interval 3s");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK(!strcmp(state_of(d), "succeeded"),
          "fault 1 (stream %d): followed the operator's deployment: got %s", stream, state_of(d));
    CHECK(!strcmp(kinds(), "deploying,deployed"), "fault 1 (stream %d): reports: got %s", stream,
          kinds());
    CHECK(count("PATCH", "/") == 1 && count("PUT", "/") == 0 && count("DELETE", "/") == 0,
          "fault 1 (stream %d): one PATCH and no other write", stream);
    CHECK(app_instances() == 3 && !strcmp(app_image(), M2),
          "fault 1: the operator's 3 instances on master-2 stay (%d, %s)", app_instances(),
          app_image());
    check_writes("fault 1");
    deployer_free(d);
}

static void fault1_operator_revert(int stream)
{
    setup(M1, "strava/foo:master-*", 1);
    F.connected = stream;
    F.rollout_ms = 3000;
    F.action_at = F.now + 1000;
    F.action = op_delete_ours;
    struct deployer *d = make("--rollback-on-failure --poll-interval 1s");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK(!strcmp(state_of(d), "cancelled"),
          "operator's revert (stream %d) reported as such: got %s", stream, state_of(d));
    int k = find_rep(REPORT_CANCELLED);
    CHECK(k >= 0 && strstr(reps[k].reason, "cancelled by another writer") &&
              strstr(reps[k].reason, M1),
          "the cancel names the image the app runs now: %s", k >= 0 ? reps[k].reason : "-");
    CHECK(count("PATCH", "/") == 1 && count("DELETE", "/") == 0 && count("PUT", "/") == 0,
          "no write over the operator's revert");
    CHECK(!strcmp(app_image(), M1), "the revert stands");
    deployer_free(d);
}

static void fault1_forced_other_image(void)
{
    setup(M1, "strava/foo:master-*", 1);
    F.rollout_ms = 3000;
    F.action_at = F.now + 1000;
    F.action = op_forced_other_image;
    struct deployer *d = make("--rollback-on-failure");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "cancelled", "a forced edit to another image is someone else's");
    CHECK(count("PATCH", "/") == 1 && count("DELETE", "/") == 0, "and is left alone");
    CHECK(!strcmp(app_image(), "registry.example.com/hotfix:1"), "the hotfix stands");
    deployer_free(d);
}

static void fault2_rollback_restores_only_ours(void)
{
    setup(M1, "strava/foo:master-*", 1);
    F.fail_deploy = 1;
    F.action_at = F.now + 1000; /* right when the deployment fails */
    F.action = scale_no_dep;
    struct deployer *d = make("--rollback-on-failure");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "rolled_back", "fault 2: rolled back");
    CHECK_STR(kinds(), "deploying,failed,rolling_back,rolled_back", "fault 2: reports");
    CHECK(count("PATCH", "/") == 2 && count("PUT", "/") == 0, "fault 2: the rollback is a PATCH");
    CHECK(app_instances() == 3, "fault 2: the autoscaler's 3 instances survive the rollback (%d)",
          app_instances());
    CHECK(!strcmp(app_image(), M1), "fault 2: the old image is back");
    CHECK_STR(app_label("autodeploy.digest"),
              "sha256:0000000000000000000000000000000000000000000000000000000000000000",
              "fault 2: our digest label is put back");
    CHECK(app_label("autodeploy.pushed-by") == NULL, "fault 2: labels we added are removed");
    CHECK_STR(app_label("team"), "x", "fault 2: other labels stay");
    cJSON *env = cJSON_GetObjectItemCaseSensitive(F.app, "env");
    CHECK(cJSON_IsObject(env), "fault 2: env untouched");
    check_writes("fault 2");
    deployer_free(d);
}

static void fault3_scale_after_lost_success(void)
{
    setup(M1, "strava/foo:master-*", 1);
    F.connected = 0; /* the stream is cut: the success event is lost */
    F.rollout_ms = 1000;
    F.action_at = F.now + 1500;
    F.action = autoscale;
    struct deployer *d = make("--rollback-on-failure --poll-interval 3s");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "succeeded", "fault 3: a later scale is no failure");
    CHECK(count("PATCH", "/") == 1 && count("DELETE", "/") == 0 && count("PUT", "/") == 0,
          "fault 3: no rollback");
    CHECK(app_instances() == 2 && !strcmp(app_image(), M2), "fault 3: 2 instances on master-2");
    deployer_free(d);
}

static void fault4_semver_choice(int reversed)
{
    setup("registry.example.com/strava/api:1.1.0", "semver:strava/api:^1", 1);
    struct deployer *d = make("");
    struct push p[2] = {mkpush("strava/api", "1.2.0", 'b', "2026-11-25T10:00:00Z"),
                        mkpush("strava/api", "1.1.9", 'c', "2026-11-25T10:00:30Z")};
    if (reversed) {
        struct push t = p[0];
        p[0] = p[1];
        p[1] = t;
    }
    run(d, p, 2);
    CHECK(count("PATCH", "/") == 1, "fault 4: one deployment, not two (%d)", count("PATCH", "/"));
    CHECK_STR(app_image(), "registry.example.com/strava/api:1.2.0", "fault 4: the highest wins");
    CHECK(find_rep(REPORT_SUPERSEDED) >= 0, "fault 4: the backport is reported superseded");
    /* The backport arriving on its own later is never deployed over 1.2.0. */
    nreps = 0;
    struct push late = mkpush("strava/api", "1.1.9", 'c', "2026-11-25T10:00:30Z");
    run(d, &late, 1);
    CHECK(count("PATCH", "/") == 1, "fault 4: no downgrade to 1.1.9");
    CHECK_STR(state_of(d), "skipped", "fault 4: the late backport is skipped");
    deployer_free(d);
}

static void fault4_newest_of_three(void)
{
    setup(M1, "strava/foo:main-*", 1);
    struct deployer *d = make("");
    struct push p[3] = {mkpush("strava/foo", "main-1", '1', "2026-11-25T10:00:01Z"),
                        mkpush("strava/foo", "main-2", '2', "2026-11-25T10:00:02Z"),
                        mkpush("strava/foo", "main-3", '3', "2026-11-25T10:00:03Z")};
    run(d, p, 3);
    CHECK(count("PATCH", "/") == 1, "fault 4: one deployment for three waiting pushes");
    CHECK_STR(app_image(), "registry.example.com/strava/foo:main-3", "fault 4: the newest");
    CHECK_STR(kinds(), "superseded,superseded,deploying,deployed", "fault 4: reports");
    deployer_free(d);
}

static void fault5_timeout_from_acceptance(void)
{
    setup(M1, "strava/foo:master-*", 1);
    other_lock(5000);
    F.rollout_ms = 4000;
    struct deployer *d = make("--deploy-timeout 7s --rollback-on-failure");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "succeeded", "fault 5: the lock's wait is not the rollout's time");
    CHECK(count("DELETE", "/") == 0, "fault 5: no rollback");
    CHECK(count("PATCH", "/") == 2, "fault 5: one 409, then the update (%d)", count("PATCH", "/"));
    deployer_free(d);

    setup(M1, "strava/foo:master-*", 1);
    other_lock(5000);
    d = make("--update-timeout 2s --rollback-on-failure");
    run(d, &p, 1);
    CHECK_STR(state_of(d), "skipped", "fault 5: a lock past --update-timeout");
    int k = find_rep(REPORT_SKIPPED);
    CHECK(k >= 0 && strstr(reps[k].reason, "--update-timeout"), "fault 5: named: %s",
          k >= 0 ? reps[k].reason : "-");
    CHECK(F.now - 100000 < 4000, "fault 5: given up at the bound, not at the lock's end");
    deployer_free(d);
}

static void fault6a_listed_late(void)
{
    setup(M1, "strava/foo:master-*", 1);
    F.connected = 0;
    F.list_delay_ms = 1500;
    F.rollout_ms = 3000;
    struct deployer *d = make("--poll-interval 300ms --rollback-on-failure");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "succeeded", "fault 6a: a deployment listed late is not ended");
    CHECK(count("DELETE", "/") == 0 && count("PATCH", "/") == 1, "fault 6a: no rollback");
    deployer_free(d);
}

static void fault6b_rollback_followed(int revert_hangs)
{
    setup(M1, "strava/foo:master-*", 1);
    F.hang = 1;
    F.revert_ms = 1500;
    F.revert_hang = revert_hangs;
    struct deployer *d = make("--deploy-timeout 2s --rollback-on-failure");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK(count("DELETE", "/v2/deployments/dep-1") == 1, "6b: our own deployment is cancelled");
    if (!revert_hangs) {
        CHECK_STR(kinds(), "deploying,timed_out,rolling_back,rolled_back", "6b: reports");
        int a = find_rep(REPORT_ROLLING_BACK), b = find_rep(REPORT_ROLLED_BACK);
        CHECK(a >= 0 && b >= 0 && reps[b].at - reps[a].at >= 1500,
              "6b: rolled back only once the revert ended");
        CHECK_STR(state_of(d), "rolled_back", "6b: record");
        CHECK(!strcmp(app_image(), M1), "6b: master-1 back");
    } else {
        CHECK_STR(kinds(), "deploying,timed_out,rolling_back,rollback_failed", "6b hang: reports");
        CHECK_STR(state_of(d), "rollback_failed", "6b hang: record");
        int k = find_rep(REPORT_ROLLBACK_FAILED);
        CHECK(k >= 0 && strstr(reps[k].reason, "did not complete"), "6b hang: %s",
              k >= 0 ? reps[k].reason : "-");
    }
    check_writes("6b");
    deployer_free(d);
}

/* The dispatcher's listing: the same apps whether read at the end of the answer or while it
 * arrives (in steps that cut apps anywhere), and an answer that started over leaves nothing. */
static void dispatcher_listing(size_t step)
{
    setup(M1, "strava/foo:master-*", 1);
    progressive_step = step;
    struct deployer *d = make("");
    struct listing l;
    char err[256] = "";
    int rc = dispatch_list_apps(d, F.now + 1000, &l, err, sizeof err);
    CHECK(rc == 0, "listing (step %zu): %s", step, err);
    CHECK(rc == 0 && l.n == 41, "listing (step %zu): 41 apps, not %zu", step, rc ? 0 : l.n);
    if (rc == 0 && l.n == 41) {
        CHECK_STR(l.apps[0].id, "/other/app-0", "first app");
        CHECK_STR(l.apps[20].id, "/staging/foo", "the model app in place");
        CHECK_STR(l.apps[20].label, "strava/foo:master-*", "its label");
        CHECK_STR(l.apps[20].image, M1, "its image");
        CHECK_STR(l.apps[40].image, "r/other:40", "last app");
    }
    if (rc == 0) listing_free(&l);
    progressive_step = 0;
    deployer_free(d);
}

static void protocol_405_put(void)
{
    setup(M1, "strava/foo:master-*", 1);
    F.no_patch = 1;
    struct deployer *d = make("");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "succeeded", "405: falls back to PUT");
    CHECK(count("PUT", "/v2/apps/staging/foo?partialUpdate=true") == 1, "405: PUT partialUpdate");
    deployer_free(d);
}

static void protocol_lost_answer(void)
{
    setup(M1, "strava/foo:master-*", 1);
    F.patch_status[0] = 0;
    F.n_patch_status = 1;
    F.lost_applies = 1;
    struct deployer *d = make("");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "succeeded", "lost answer: the update that landed is followed");
    CHECK(count("PATCH", "/") == 1, "lost answer: not sent twice (%d)", count("PATCH", "/"));
    deployer_free(d);

    setup(M1, "strava/foo:master-*", 1);
    F.patch_status[0] = 0;
    F.n_patch_status = 1;
    F.lost_applies = 0;
    d = make("");
    run(d, &p, 1);
    CHECK_STR(state_of(d), "succeeded", "lost answer that did not land: sent again");
    CHECK(count("PATCH", "/") == 2, "lost answer: sent again once");
    deployer_free(d);
}

static void protocol_5xx(void)
{
    setup(M1, "strava/foo:master-*", 1);
    F.patch_status[0] = 503;
    F.patch_status[1] = 502;
    F.n_patch_status = 2;
    struct deployer *d = make("");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "succeeded", "5xx: retried");
    deployer_free(d);

    setup(M1, "strava/foo:master-*", 1);
    for (int i = 0; i < 8; i++)
        F.patch_status[i] = 503;
    F.n_patch_status = 8;
    d = make("--update-timeout 3s");
    run(d, &p, 1);
    CHECK_STR(state_of(d), "failed", "5xx past --update-timeout: failed");
    int k = find_rep(REPORT_FAILED);
    CHECK(k >= 0 && strstr(reps[k].reason, "--update-timeout"), "5xx: %s",
          k >= 0 ? reps[k].reason : "-");
    deployer_free(d);

    setup(M1, "strava/foo:master-*", 1);
    F.patch_status[0] = 422;
    F.n_patch_status = 1;
    d = make("");
    run(d, &p, 1);
    CHECK_STR(state_of(d), "failed", "422: not retried");
    CHECK(count("PATCH", "/") == 1, "422: sent once");
    deployer_free(d);
}

static void rollback_refused(void)
{
    setup(M1, "strava/foo:master-*", 1);
    F.hang = 1;
    F.delete_status = 500;
    struct deployer *d = make("--deploy-timeout 2s --rollback-on-failure");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(kinds(), "deploying,timed_out,rollback_failed", "rollback refused: reports");
    int k = find_rep(REPORT_ROLLBACK_FAILED);
    CHECK(k >= 0 && strstr(reps[k].reason, "was refused"), "refused: %s",
          k >= 0 ? reps[k].reason : "-");
    deployer_free(d);
}

static void timeout_someone_elses(void)
{
    /* Our deployment is taken over by an operator's forced scale that then hangs: at our
     * time-out, that deployment is not ours to cancel. */
    setup(M1, "strava/foo:master-*", 1);
    F.rollout_ms = 3000;
    F.action_at = F.now + 500;
    F.action = op_forced_scale_hangs;
    struct deployer *d = make("--deploy-timeout 2s --rollback-on-failure");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK(count("DELETE", "/") == 0 && count("PATCH", "/") == 1,
          "someone else's deployment is never cancelled nor written over");
    CHECK_STR(kinds(), "deploying,timed_out,rollback_failed", "takeover that hangs: reports");
    int k = find_rep(REPORT_ROLLBACK_FAILED);
    CHECK(k >= 0 && strstr(reps[k].reason, "did not start"), "takeover: %s",
          k >= 0 ? reps[k].reason : "-");
    check_writes("takeover");
    deployer_free(d);
}

static void set_label_now(const char *k, const char *v)
{
    cJSON *labels = cJSON_GetObjectItemCaseSensitive(F.app, "labels");
    cJSON_DeleteItemFromObjectCaseSensitive(labels, k);
    cJSON_AddStringToObject(labels, k, v);
}

static void set_image_now(const char *image)
{
    cJSON *docker = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(F.app, "container"), "docker");
    cJSON_ReplaceItemInObjectCaseSensitive(docker, "image", cJSON_CreateString(image));
}

static void duplicate_during_someone_elses_scale(void)
{
    /* The app already runs our image and digest; an autoscaler's scale hangs. A re-delivered
     * push must neither adopt nor cancel that deployment. */
    setup(M2, "strava/foo:master-*", 1);
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    set_label_now("autodeploy.digest", p.digest);
    set_instances(3, 0);
    start_dep(0, NULL, 0, 1, 0);
    struct deployer *d = make("--deploy-timeout 2s --rollback-on-failure");
    run(d, &p, 1);
    CHECK_STR(state_of(d), "unchanged", "a scale by someone else is not our deployment");
    CHECK(count("DELETE", "/") == 0 && count("PATCH", "/") == 0, "nothing written");
    deployer_free(d);
}

static void rollback_on_marathon_13(void)
{
    setup(M1, "strava/foo:master-*", 1);
    F.no_patch = 1;
    F.fail_deploy = 1;
    struct deployer *d = make("--rollback-on-failure");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "rolled_back", "1.3: the rollback falls back to PUT too");
    CHECK(count("PUT", "/v2/apps/staging/foo?partialUpdate=true") == 2,
          "1.3: update and rollback by PUT ?partialUpdate=true");
    CHECK(!strcmp(app_image(), M1), "1.3: master-1 back");
    deployer_free(d);
}

static void lost_answer_landed_and_failed(void)
{
    setup(M1, "strava/foo:master-*", 1);
    F.patch_status[0] = 0;
    F.n_patch_status = 1;
    F.lost_applies = 1;
    F.fail_deploy = 1;
    F.rollout_ms = 10;
    struct deployer *d = make("");
    /* The lost answer costs a backoff (about 0.5 s): the deployment has failed by the re-read. */
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "failed", "a lost answer whose deployment failed is no success");
    CHECK(find_rep(REPORT_DEPLOYED) < 0, "never reported deployed");
    deployer_free(d);
}

static void mutable_tag_rollback_pins_old_digest(void)
{
    const char *MT = "registry.example.com/strava/foo:master";
    setup(MT, "strava/foo:master", 1);
    F.fail_deploy = 1;
    struct deployer *d = make("--rollback-on-failure");
    struct push p = mkpush("strava/foo", "master", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "rolled_back", "mutable tag: rolled back");
    CHECK_STR(app_image(),
              "registry.example.com/strava/foo:master@sha256:"
              "0000000000000000000000000000000000000000000000000000000000000000",
              "mutable tag: the rollback pins the digest that ran before");
    deployer_free(d);
}

/* During our wait for the lock, an operator puts a hotfix image in. */
static void op_hotfix(struct fake *f)
{
    (void)f;
    set_image_now("registry.example.com/strava/foo:hotfix-7");
    set_instances(1, 1);
}

static void rollback_target_is_what_ran_before_the_update(void)
{
    setup(M1, "strava/foo:master-*", 1);
    other_lock(2000);
    F.action_at = F.now + 1000;
    F.action = op_hotfix;
    F.fail_deploy = 1;
    struct deployer *d = make("--rollback-on-failure");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "rolled_back", "hotfix: rolled back");
    CHECK_STR(app_image(), "registry.example.com/strava/foo:hotfix-7",
              "the rollback puts back the hotfix that ran when our update went out");
    deployer_free(d);
}

static void semver_lost_answer_is_followed(void)
{
    setup("registry.example.com/strava/api:1.1.0", "semver:strava/api:^1", 1);
    F.patch_status[0] = 0;
    F.n_patch_status = 1;
    F.lost_applies = 1;
    F.rollout_ms = 3000;
    struct deployer *d = make("");
    struct push p = mkpush("strava/api", "1.2.0", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "succeeded", "semver: a landed update is not 'older than itself'");
    CHECK(count("PATCH", "/") == 1, "semver lost answer: sent once");
    deployer_free(d);
}

/* ---------------------------------------------------------------- approvals */

/* Field k of the newest record (or of approval i of GET /v1/approvals when approvals). */
static const char *field_of(struct deployer *d, int approvals, int i, const char *k)
{
    static char s[256];
    struct buf b;
    buf_init(&b, 1 << 20);
    if (approvals)
        deployer_approvals_json(d, &b);
    else
        deployer_records_json(d, &b);
    cJSON *j = cJSON_Parse(b.data);
    buf_free(&b);
    const cJSON *r = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(j, approvals ? "approvals" : "deployments"), i);
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, k));
    snprintf(s, sizeof s, "%s", v ? v : "(null)");
    cJSON_Delete(j);
    return s;
}

static int decide(struct deployer *d, const char *id, int approve, const char *by, const char *via)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    int st = deployer_approval_decide(d, id, approve, by, via, &b);
    buf_free(&b);
    return st;
}

static void approval_gated(const char *timeout)
{
    setup(M1, "strava/foo:master-*", 1);
    set_label_now("autodeploy.approve", "true");
    if (timeout) set_label_now("autodeploy.approve-timeout", timeout);
}

static void approval_approved_deploys_once(void)
{
    approval_gated(NULL);
    struct deployer *d = make("--poll-interval 1s");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "awaiting_approval", "a push to an approval app waits");
    CHECK(count("PATCH", "/") == 0, "nothing is written before approval");
    CHECK_STR(kinds(), "awaiting_approval", "the channel is asked");
    char id[40];
    snprintf(id, sizeof id, "%s", field_of(d, 1, 0, "id"));
    CHECK(strlen(id) == 32 && !strcmp(reps[0].approval_id, id), "the report carries the id %s", id);
    CHECK_STR(field_of(d, 1, 0, "state"), "pending", "listed as pending");
    CHECK_STR(field_of(d, 1, 0, "image"), M2, "the image that would deploy");
    CHECK_STR(field_of(d, 1, 0, "old_image"), M1, "the image it runs");
    CHECK_STR(field_of(d, 0, 0, "approval_id"), id, "the record names the approval");
    CHECK(decide(d, id, 1, "alice", "api") == 200, "approved through the API");
    CHECK(decide(d, id, 1, "bob", "slack") == 409, "a second approval is refused");
    deployer_run_queued(d);
    CHECK(count("PATCH", "/") == 1, "the approved push deployed once (PATCHes: %d)",
          count("PATCH", "/"));
    CHECK(!strcmp(app_image(), M2), "the app runs it");
    CHECK_STR(state_of(d), "succeeded", "the same record goes on to success");
    CHECK_STR(field_of(d, 0, 0, "decided_by"), "alice", "who approved is recorded");
    CHECK_STR(field_of(d, 0, 0, "decided_via"), "api", "and through which path");
    CHECK_STR(kinds(), "awaiting_approval,approved,deploying,deployed", "the channel's story");
    int k = find_rep(REPORT_APPROVED);
    CHECK(k >= 0 && !strcmp(reps[k].by, "alice") && !strcmp(reps[k].via, "api"),
          "the approval message names alice and the API");
    deployer_run_queued(d);
    CHECK(count("PATCH", "/") == 1, "nothing more runs");
    deployer_free(d);
}

static void approval_rejected(void)
{
    approval_gated(NULL);
    struct deployer *d = make("");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    char id[40];
    snprintf(id, sizeof id, "%s", field_of(d, 1, 0, "id"));
    CHECK(decide(d, id, 0, "carol", "console") == 200, "rejected through the console");
    CHECK(decide(d, id, 1, "carol", "console") == 409, "then it cannot be approved");
    deployer_run_queued(d);
    CHECK(count("PATCH", "/") == 0 && !strcmp(app_image(), M1), "nothing deployed");
    CHECK_STR(state_of(d), "rejected", "recorded rejected");
    CHECK_STR(field_of(d, 0, 0, "decided_via"), "console", "through the console");
    CHECK_STR(kinds(), "awaiting_approval,rejected", "the channel hears of it");
    deployer_free(d);
}

static void approval_superseded(void)
{
    approval_gated(NULL);
    struct deployer *d = make("");
    struct push p2 = mkpush("strava/foo", "master-2", 'b', NULL);
    struct push p3 = mkpush("strava/foo", "master-3", 'c', NULL);
    run(d, &p2, 1);
    char old[40], nw[40];
    snprintf(old, sizeof old, "%s", field_of(d, 1, 0, "id"));
    run(d, &p2, 1); /* a re-delivery waits on the same approval */
    CHECK_STR(field_of(d, 1, 0, "id"), old, "the same push again asks nothing new");
    run(d, &p3, 1);
    snprintf(nw, sizeof nw, "%s", field_of(d, 1, 0, "id"));
    CHECK(strcmp(old, nw) != 0, "a newer push asks again");
    CHECK_STR(field_of(d, 1, 1, "state"), "superseded", "the old approval is superseded");
    int k = find_rep(REPORT_SUPERSEDED);
    CHECK(k >= 0 && !strcmp(reps[k].approval_id, old) && strstr(reps[k].reason, "master-3"),
          "the channel hears the old one was replaced: %s", k >= 0 ? reps[k].reason : "-");
    CHECK(decide(d, old, 1, "mallory", "slack") == 409, "the old button cannot approve");
    deployer_run_queued(d);
    CHECK(count("PATCH", "/") == 0, "nothing nobody approved deploys");
    CHECK(decide(d, nw, 1, "alice", "slack") == 200, "the new one can");
    deployer_run_queued(d);
    CHECK(count("PATCH", "/") == 1 && strstr(app_image(), "master-3"), "master-3 deploys: %s",
          app_image());
    deployer_free(d);
}

static void approval_expires(void)
{
    approval_gated("30s");
    struct deployer *d = make("");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    char id[40];
    snprintf(id, sizeof id, "%s", field_of(d, 1, 0, "id"));
    F.now += 29000;
    deployer_approvals_tick(d);
    CHECK_STR(field_of(d, 1, 0, "state"), "pending", "still pending before its time-out");
    F.now += 1500;
    deployer_approvals_tick(d);
    CHECK_STR(field_of(d, 1, 0, "state"), "expired", "expired after 30 s");
    CHECK_STR(state_of(d), "expired", "the record says so");
    CHECK_STR(kinds(), "awaiting_approval,approval_expired", "and the channel");
    CHECK(decide(d, id, 1, "late", "api") == 409, "too late to approve");
    deployer_run_queued(d);
    CHECK(count("PATCH", "/") == 0, "nothing deployed");
    deployer_free(d);
}

/* autodeploy.approve fails closed: "True" asks, a typo deploys nothing (reported). */
static void approval_label_spelling(void)
{
    setup(M1, "strava/foo:master-*", 1);
    set_label_now("autodeploy.approve", "True");
    struct deployer *d = make("");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "awaiting_approval", "\"True\" asks for approval");
    CHECK(count("PATCH", "/") == 0, "nothing deployed before approval");
    deployer_free(d);

    setup(M1, "strava/foo:master-*", 1);
    set_label_now("autodeploy.approve", "ture");
    d = make("");
    run(d, &p, 1);
    CHECK_STR(state_of(d), "skipped", "a typo fails closed");
    CHECK(strstr(field_of(d, 0, 0, "reason"), "invalid label autodeploy.approve \"ture\"") != NULL,
          "the reason names the label: %s", field_of(d, 0, 0, "reason"));
    CHECK(count("PATCH", "/") == 0, "nothing deployed");
    deployer_free(d);
}

/* Twenty approvals expired while autodeployd was stopped (one push to twenty gated apps):
 * the first tick reports every one of them, not sixteen. */
static void approvals_expired_in_one_tick_all_reported(void)
{
    char dir[] = "/tmp/autodeploy-expiry-XXXXXX", path[64];
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/state", dir);
    struct push *pending;
    size_t n;
    int paused;
    char err[256];
    setup(M1, "strava/foo:master-*", 1);
    struct journal *j = journal_open(path, &pending, &n, &paused, err, sizeof err);
    free(pending);
    for (int i = 0; i < 20; i++) {
        struct approval a;
        memset(&a, 0, sizeof a);
        snprintf(a.id, sizeof a.id, "%032x", i + 1);
        snprintf(a.app_id, sizeof a.app_id, "/prod/app%d", i);
        a.push = mkpush("strava/foo", "master-2", 'b', NULL);
        snprintf(a.new_image, sizeof a.new_image, "%s", M2);
        a.created_ms = 1000;
        a.expires_ms = 2000; /* long past */
        struct buf b;
        buf_init(&b, 1 << 16);
        approval_json(&a, 1, &b);
        journal_put_approval(j, a.id, b.data, 1);
        buf_free(&b);
    }
    journal_close(j);
    j = journal_open(path, &pending, &n, &paused, err, sizeof err);
    free(pending);
    struct deployer *d = make("");
    deployer_set_journal(d, j);
    nreps = 0;
    deployer_approvals_tick(d);
    int expired = 0;
    for (int i = 0; i < nreps; i++)
        expired += reps[i].kind == REPORT_APPROVAL_EXPIRED;
    CHECK(expired == 20, "every expired approval is reported (%d of 20)", expired);
    int still = 0;
    for (int i = 0; i < 20; i++)
        still += !strcmp(field_of(d, 1, i, "state"), "pending");
    CHECK(still == 0, "none is left pending (%d)", still);
    deployer_free(d);
    journal_close(j);
    unlink(path);
    rmdir(dir);
}

static void approval_label_invalid_timeout(void)
{
    approval_gated("soon");
    struct deployer *d = make("");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p, 1);
    CHECK_STR(state_of(d), "skipped", "an unreadable time-out fails closed");
    CHECK(count("PATCH", "/") == 0, "nothing deployed");
    deployer_free(d);
}

/* An approved push replayed after a restart is matched against every app again: another
 * approval app asks for its own approval instead of taking the push as approved (or
 * skipping it). */
static void approval_of_another_app(void)
{
    approval_gated(NULL);
    struct deployer *d = make("");
    struct push p = mkpush("strava/foo", "master-2", 'b', NULL);
    snprintf(p.approval, sizeof p.approval, "0123456789abcdef0123456789abcdef");
    run(d, &p, 1);
    CHECK_STR(state_of(d), "awaiting_approval", "another app's approval lets nothing by");
    CHECK(count("PATCH", "/") == 0, "nothing deployed");
    CHECK(strcmp(field_of(d, 1, 0, "id"), p.approval) != 0, "a new approval of its own");
    deployer_free(d);
}

/* Pending and approved approvals survive a restart with the state file; expiry after the
 * restart counts from the stored time. */
static void approval_survives_restart(void)
{
    char dir[] = "/tmp/autodeploy-approvals-XXXXXX", path[64];
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/state", dir);
    struct push *pending;
    size_t n;
    int paused;
    char err[256];
    approval_gated("60s");
    struct journal *j = journal_open(path, &pending, &n, &paused, err, sizeof err);
    struct deployer *d = make("");
    deployer_set_journal(d, j);
    struct push p2 = mkpush("strava/foo", "master-2", 'b', NULL);
    run(d, &p2, 1);
    char id[40];
    snprintf(id, sizeof id, "%s", field_of(d, 1, 0, "id"));
    deployer_free(d);
    journal_close(j);

    j = journal_open(path, &pending, &n, &paused, err, sizeof err);
    CHECK(j && n == 0, "no push to replay: the approval holds it (%zu)", n);
    free(pending);
    d = make("");
    deployer_set_journal(d, j);
    CHECK_STR(field_of(d, 1, 0, "id"), id, "the pending approval is back");
    CHECK_STR(field_of(d, 1, 0, "state"), "pending", "still pending");
    CHECK_STR(state_of(d), "awaiting_approval", "and its record waits");
    CHECK(decide(d, id, 1, "alice", "console") == 200, "approved after the restart");
    deployer_free(d); /* stopped before its job ran */
    journal_close(j);

    j = journal_open(path, &pending, &n, &paused, err, sizeof err);
    CHECK(j && n == 1 && !strcmp(pending[0].approval, id),
          "the approved push is replayed with its approval (%zu)", n);
    d = make("");
    deployer_set_journal(d, j);
    CHECK_STR(field_of(d, 1, 0, "state"), "approved", "the decision is kept");
    if (n == 1) run(d, &pending[0], 1);
    CHECK(count("PATCH", "/") == 1 && !strcmp(app_image(), M2), "and deploys after the restart");
    CHECK_STR(state_of(d), "succeeded", "to success");
    free(pending);
    deployer_free(d);
    journal_close(j);

    /* Another pending one, restarted, then expired on time. */
    struct push p3 = mkpush("strava/foo", "master-3", 'c', NULL);
    j = journal_open(path, &pending, &n, &paused, err, sizeof err);
    free(pending);
    d = make("");
    deployer_set_journal(d, j);
    run(d, &p3, 1);
    deployer_free(d);
    journal_close(j);
    j = journal_open(path, &pending, &n, &paused, err, sizeof err);
    free(pending);
    d = make("");
    deployer_set_journal(d, j);
    CHECK_STR(field_of(d, 1, 0, "state"), "pending", "pending after the restart");
    F.now += 61000;
    deployer_approvals_tick(d);
    CHECK_STR(field_of(d, 1, 0, "state"), "expired", "expires after the restart on time");
    deployer_free(d);
    journal_close(j);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    log_setup(LOG_ERROR, LOG_FORMAT_JSON);
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) log_set_stream(devnull);
    report_add_sink(sink, NULL);
    for (int stream = 0; stream <= 1; stream++) {
        fault1_forced_scale(stream);
        fault1_operator_revert(stream);
    }
    fault1_forced_other_image();
    fault2_rollback_restores_only_ours();
    fault3_scale_after_lost_success();
    fault4_semver_choice(0);
    fault4_semver_choice(1);
    fault4_newest_of_three();
    fault5_timeout_from_acceptance();
    fault6a_listed_late();
    fault6b_rollback_followed(0);
    fault6b_rollback_followed(1);
    dispatcher_listing(0);
    dispatcher_listing(1);
    dispatcher_listing(13);
    dispatcher_listing(4096);
    protocol_405_put();
    protocol_lost_answer();
    protocol_5xx();
    rollback_refused();
    timeout_someone_elses();
    duplicate_during_someone_elses_scale();
    rollback_on_marathon_13();
    lost_answer_landed_and_failed();
    mutable_tag_rollback_pins_old_digest();
    rollback_target_is_what_ran_before_the_update();
    semver_lost_answer_is_followed();
    approval_approved_deploys_once();
    approval_rejected();
    approval_superseded();
    approval_expires();
    approval_label_invalid_timeout();
    approval_label_spelling();
    approvals_expired_in_one_tick_all_reported();
    approval_of_another_app();
    approval_survives_restart();
    setup(M1, "x", 1); /* frees the model */
    cJSON_Delete(F.app);
    cJSON_Delete(F.tasks);
    if (devnull) {
        log_set_stream(stderr);
        fclose(devnull);
    }
    return TEST_DONE("test_deploy");
}
