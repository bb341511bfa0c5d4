/*
 * test_notify.c: the Slack messages, byte for byte: each report kind's summary, colour, title,
 * link, diff and fields; escaping of hostile strings; truncation on UTF-8 boundaries; the
 * channel override; and which pushes --slack-pushes lets through.
 */
#include "notify.h"
#include "testlib.h"

#include <cjson/cJSON.h>

#define DIGEST "sha256:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e2"
#define OLD_DIGEST "sha256:1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcdef01"
#define REG "registry.example.com:5000"
#define OLD_IMAGE REG "/strava/foo-service:master-abc122"
#define NEW_IMAGE REG "/strava/foo-service:master-abc123"
#define DEPLOYMENT "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43"
#define UI "https://marathon.example.com/"
#define LINK "https://marathon.example.com/ui/#/apps/%2Fsvc%2Ffoo"
#define WJ "\xe2\x81\xa0"
#define TRUNC "\xe2\x80\xa6(truncated)"

/* CHECK_STR with a context that need not be a literal. */
#define CHECK_EQ(got, want, ctx)                                                                   \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        CHECK((!g_ && !w_) || (g_ && w_ && strcmp(g_, w_) == 0), "%s: got \"%s\", want \"%s\"",    \
              (ctx), g_ ? g_ : "(null)", w_ ? w_ : "(null)");                                      \
    } while (0)

/* A push that deploys /svc/foo from master-abc122 to master-abc123; cases change what they test. */
static struct report base(enum report_kind kind)
{
    struct report r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    snprintf(r.push.repository, sizeof r.push.repository, "strava/foo-service");
    snprintf(r.push.tag, sizeof r.push.tag, "master-abc123");
    snprintf(r.push.digest, sizeof r.push.digest, DIGEST);
    snprintf(r.push.pusher, sizeof r.push.pusher, "alice");
    snprintf(r.push.host, sizeof r.push.host, REG);
    snprintf(r.app_id, sizeof r.app_id, "/svc/foo");
    snprintf(r.old_image, sizeof r.old_image, OLD_IMAGE);
    snprintf(r.old_digest, sizeof r.old_digest, OLD_DIGEST);
    snprintf(r.new_image, sizeof r.new_image, NEW_IMAGE);
    snprintf(r.deployment_id, sizeof r.deployment_id, DEPLOYMENT);
    r.instances = 3;
    r.duration_s = 42.3;
    return r;
}

/* --- the cases ------------------------------------------------------------------------------ */

static void pushed_two_apps(struct report *r)
{
    r->n_apps = 2;
    snprintf(r->apps, sizeof r->apps, "/svc/foo, /svc/foo-canary");
}

static void pushed_one_app(struct report *r)
{
    r->n_apps = 1;
    snprintf(r->apps, sizeof r->apps, "/svc/foo");
}

static void pushed_anonymous(struct report *r)
{
    r->push.pusher[0] = '\0';
    r->push.host[0] = '\0';
}

static void found_by_reconcile(struct report *r)
{
    r->push.pusher[0] = '\0';
    snprintf(r->push.source, sizeof r->push.source, "reconcile");
    r->n_apps = 1;
    snprintf(r->apps, sizeof r->apps, "/svc/foo");
}

static void pushed_hostile(struct report *r)
{
    snprintf(r->push.pusher, sizeof r->push.pusher, "<!channel> <http://evil|click>");
}

static void deploying_first(struct report *r)
{
    r->old_image[0] = '\0';
    r->old_digest[0] = '\0';
    r->instances = -1;
    r->push.pusher[0] = '\0';
}

static void failed_task(struct report *r)
{
    r->duration_s = 95;
    snprintf(r->reason, sizeof r->reason, "deployment failed");
    snprintf(r->task_message, sizeof r->task_message,
             "Docker container run error: Container exited on error: exited with status 1\n"
             "panic: <!channel> & <http://evil|click>");
}

static void timed_out(struct report *r)
{
    r->duration_s = 600;
    snprintf(r->reason, sizeof r->reason, "no healthy task after --deploy-timeout");
    snprintf(r->task_message, sizeof r->task_message, "Task was killed: health check failed");
}

static void interrupted(struct report *r)
{
    snprintf(r->reason, sizeof r->reason, "autodeployd stopped; Marathon goes on with it");
}

static void rolled_back(struct report *r)
{
    snprintf(r->reason, sizeof r->reason, "deployment timed out");
    snprintf(r->deployment_id, sizeof r->deployment_id, "rollback-1");
}

static void rollback_failed(struct report *r)
{
    snprintf(r->reason, sizeof r->reason, "not finished after --deploy-timeout 600s");
    snprintf(r->error, sizeof r->error, "HTTP 500: leader lost <!channel>");
}

static void superseded(struct report *r)
{
    snprintf(r->reason, sizeof r->reason, "a newer push (strava/foo-service:master-abc124)");
}

static void skipped_locked(struct report *r)
{
    snprintf(r->reason, sizeof r->reason, "app is locked by deployment %s", DEPLOYMENT);
    r->deployment_id[0] = '\0';
}

static void skipped_label(struct report *r)
{
    snprintf(r->reason, sizeof r->reason, "invalid autodeploy.image label: \"<oops>\"");
    r->new_image[0] = '\0';
    r->deployment_id[0] = '\0';
}

static void paused(struct report *r)
{
    memset(&r->push, 0, sizeof r->push);
    r->app_id[0] = '\0';
    snprintf(r->reason, sizeof r->reason, "ops@example.com");
}

static void resumed_anonymous(struct report *r)
{
    memset(&r->push, 0, sizeof r->push);
    r->app_id[0] = '\0';
}

static void channel_override(struct report *r)
{
    snprintf(r->slack_channel, sizeof r->slack_channel, "#team-foo");
}

struct fld {
    const char *title, *value;
    int is_short;
};

struct format_case {
    const char *name;
    enum report_kind kind;
    void (*setup)(struct report *r);
    int no_ui;           /* format without --marathon-ui-url */
    const char *channel; /* NULL: no "channel" member */
    const char *text;    /* also the attachment's fallback */
    const char *color;
    const char *title;
    const char *link; /* NULL: no title_link */
    const char *body; /* attachment text; NULL: none */
    struct fld fields[8];
};

static const struct format_case cases[] = {
    {"pushed, no app",
     REPORT_PUSHED,
     NULL,
     0,
     NULL,
     "Pushed strava/foo-service:master-abc123 (0a8f49daa4be) by alice: no app deploys it",
     NOTIFY_COLOR_INFO,
     "Pushed strava/foo-service:master-abc123",
     NULL,
     NULL,
     {{"Digest", "0a8f49daa4be", 1},
      {"Pushed by", "alice", 1},
      {"Registry", REG, 1},
      {"Deploys to", "no app", 0}}},
    {"pushed, one app",
     REPORT_PUSHED,
     pushed_one_app,
     0,
     NULL,
     "Pushed strava/foo-service:master-abc123 (0a8f49daa4be) by alice: will deploy to /svc/foo",
     NOTIFY_COLOR_INFO,
     "Pushed strava/foo-service:master-abc123",
     NULL,
     NULL,
     {{"Digest", "0a8f49daa4be", 1},
      {"Pushed by", "alice", 1},
      {"Registry", REG, 1},
      {"Deploys to", "/svc/foo", 0}}},
    {"pushed, two apps",
     REPORT_PUSHED,
     pushed_two_apps,
     0,
     NULL,
     "Pushed strava/foo-service:master-abc123 (0a8f49daa4be) by alice: will deploy to 2 apps",
     NOTIFY_COLOR_INFO,
     "Pushed strava/foo-service:master-abc123",
     NULL,
     NULL,
     {{"Digest", "0a8f49daa4be", 1},
      {"Pushed by", "alice", 1},
      {"Registry", REG, 1},
      {"Deploys to", "/svc/foo, /svc/foo-canary", 0}}},
    {"pushed, no pusher, no registry host",
     REPORT_PUSHED,
     pushed_anonymous,
     0,
     NULL,
     "Pushed strava/foo-service:master-abc123 (0a8f49daa4be): no app deploys it",
     NOTIFY_COLOR_INFO,
     "Pushed strava/foo-service:master-abc123",
     NULL,
     NULL,
     {{"Digest", "0a8f49daa4be", 1}, {"Pushed by", "unknown", 1}, {"Deploys to", "no app", 0}}},
    {"found in the registry by reconcile",
     REPORT_PUSHED,
     found_by_reconcile,
     0,
     NULL,
     "Found strava/foo-service:master-abc123 (0a8f49daa4be) in the registry by reconcile (missed "
     "by the webhook): will deploy to /svc/foo",
     NOTIFY_COLOR_INFO,
     "Found in the registry strava/foo-service:master-abc123",
     NULL,
     NULL,
     {{"Digest", "0a8f49daa4be", 1},
      {"Found by", "reconcile: the webhook missed it", 1},
      {"Registry", REG, 1},
      {"Deploys to", "/svc/foo", 0}}},
    {"pushed by a hostile name",
     REPORT_PUSHED,
     pushed_hostile,
     0,
     NULL,
     "Pushed strava/foo-service:master-abc123 (0a8f49daa4be) by &lt;!channel&gt; "
     "&lt;http://evil|click&gt;: no app deploys it",
     NOTIFY_COLOR_INFO,
     "Pushed strava/foo-service:master-abc123",
     NULL,
     NULL,
     {{"Digest", "0a8f49daa4be", 1},
      {"Pushed by", "&lt;!channel&gt; &lt;http://evil|click&gt;", 1},
      {"Registry", REG, 1},
      {"Deploys to", "no app", 0}}},
    {"deploying",
     REPORT_DEPLOYING,
     NULL,
     0,
     NULL,
     "Deploying strava/foo-service:master-abc123 to /svc/foo, pushed by alice",
     NOTIFY_COLOR_INFO,
     "/svc/foo",
     LINK,
     "```\n- " OLD_IMAGE " (1b2c3d4e5f60)\n+ " NEW_IMAGE " (0a8f49daa4be)\n```",
     {{"Deployment", DEPLOYMENT, 1}, {"Instances", "3", 1}, {"Pushed by", "alice", 1}}},
    {"deploying a new app, no UI link",
     REPORT_DEPLOYING,
     deploying_first,
     1,
     NULL,
     "Deploying strava/foo-service:master-abc123 to /svc/foo",
     NOTIFY_COLOR_INFO,
     "/svc/foo",
     NULL,
     "```\n- (unknown)\n+ " NEW_IMAGE " (0a8f49daa4be)\n```",
     {{"Deployment", DEPLOYMENT, 1}}},
    {"deployed",
     REPORT_DEPLOYED,
     NULL,
     0,
     NULL,
     "Deployed strava/foo-service:master-abc123 to /svc/foo in 42s",
     NOTIFY_COLOR_GOOD,
     "/svc/foo",
     LINK,
     NULL,
     {{"Image", NEW_IMAGE, 0}, {"Duration", "42s", 1}, {"Pushed by", "alice", 1}}},
    {"failed, with the last task failure",
     REPORT_FAILED,
     failed_task,
     0,
     NULL,
     "Failed to deploy strava/foo-service:master-abc123 to /svc/foo: deployment failed",
     NOTIFY_COLOR_DANGER,
     "/svc/foo",
     LINK,
     NULL,
     {{"Reason", "deployment failed", 0},
      {"Last task failure",
       "Docker container run error: Container exited on error: exited with status 1\n"
       "panic: &lt;!channel&gt; &amp; &lt;http://evil|click&gt;",
       0},
      {"Image", NEW_IMAGE, 0},
      {"Deployment", DEPLOYMENT, 1},
      {"Duration", "1m 35s", 1}}},
    {"timed out",
     REPORT_TIMED_OUT,
     timed_out,
     0,
     NULL,
     "Timed out deploying strava/foo-service:master-abc123 to /svc/foo after 10m 00s: no "
     "healthy task after --deploy-timeout",
     NOTIFY_COLOR_DANGER,
     "/svc/foo",
     LINK,
     NULL,
     {{"Reason", "no healthy task after --deploy-timeout", 0},
      {"Last task failure", "Task was killed: health check failed", 0},
      {"Image", NEW_IMAGE, 0},
      {"Deployment", DEPLOYMENT, 1}}},
    {"interrupted",
     REPORT_INTERRUPTED,
     interrupted,
     0,
     NULL,
     "Stopped following strava/foo-service:master-abc123 to /svc/foo: autodeployd stopped; "
     "Marathon goes on with it",
     NOTIFY_COLOR_WARNING,
     "/svc/foo",
     LINK,
     NULL,
     {{"Reason", "autodeployd stopped; Marathon goes on with it", 0},
      {"Image", NEW_IMAGE, 0},
      {"Deployment", DEPLOYMENT, 1}}},
    {"rolled back",
     REPORT_ROLLED_BACK,
     rolled_back,
     0,
     NULL,
     "Rolled back /svc/foo to " OLD_IMAGE ": deployment timed out",
     NOTIFY_COLOR_WARNING,
     "/svc/foo",
     LINK,
     NULL,
     {{"Rolled back to", OLD_IMAGE, 0},
      {"Reason", "deployment timed out", 0},
      {"Failed image", NEW_IMAGE, 0},
      {"Deployment", "rollback-1", 1}}},
    {"rollback refused",
     REPORT_ROLLBACK_FAILED,
     rollback_failed,
     0,
     NULL,
     "Rollback of /svc/foo refused: HTTP 500: leader lost &lt;!channel&gt;; it needs a hand",
     NOTIFY_COLOR_DANGER,
     "/svc/foo",
     LINK,
     NULL,
     {{"Marathon answered", "HTTP 500: leader lost &lt;!channel&gt;", 0},
      {"Why it was rolled back", "not finished after --deploy-timeout 600s", 0},
      {"Failed image", NEW_IMAGE, 0},
      {"Previous image", OLD_IMAGE, 0},
      {"Deployment", DEPLOYMENT, 1}}},
    {"superseded",
     REPORT_SUPERSEDED,
     superseded,
     0,
     NULL,
     "Superseded: strava/foo-service:master-abc123 will not deploy to /svc/foo: a newer push "
     "(strava/foo-service:master-abc124)",
     NOTIFY_COLOR_WARNING,
     "/svc/foo",
     LINK,
     NULL,
     {{"Reason", "a newer push (strava/foo-service:master-abc124)", 0}, {"Image", NEW_IMAGE, 0}}},
    {"skipped, locked",
     REPORT_SKIPPED,
     skipped_locked,
     0,
     NULL,
     "Skipped deploying strava/foo-service:master-abc123 to /svc/foo: app is locked by "
     "deployment " DEPLOYMENT,
     NOTIFY_COLOR_WARNING,
     "/svc/foo",
     LINK,
     NULL,
     {{"Reason", "app is locked by deployment " DEPLOYMENT, 0},
      {"Image", NEW_IMAGE, 0},
      {"Pushed by", "alice", 1}}},
    {"skipped, invalid label, no image",
     REPORT_SKIPPED,
     skipped_label,
     1,
     NULL,
     "Skipped deploying strava/foo-service:master-abc123 to /svc/foo: invalid "
     "autodeploy.image label: \"&lt;oops&gt;\"",
     NOTIFY_COLOR_WARNING,
     "/svc/foo",
     NULL,
     NULL,
     {{"Reason", "invalid autodeploy.image label: \"&lt;oops&gt;\"", 0},
      {"Image", "strava/foo-service:master-abc123", 0},
      {"Pushed by", "alice", 1}}},
    {"paused",
     REPORT_PAUSED,
     paused,
     0,
     NULL,
     "Deployments paused by ops@example.com",
     NOTIFY_COLOR_WARNING,
     "Deployments paused",
     NULL,
     NULL,
     {{NULL, NULL, 0}}},
    {"resumed",
     REPORT_RESUMED,
     resumed_anonymous,
     0,
     NULL,
     "Deployments resumed",
     NOTIFY_COLOR_GOOD,
     "Deployments resumed",
     NULL,
     NULL,
     {{NULL, NULL, 0}}},
    {"deployed to an app with its own channel",
     REPORT_DEPLOYED,
     channel_override,
     0,
     "#team-foo",
     "Deployed strava/foo-service:master-abc123 to /svc/foo in 42s",
     NOTIFY_COLOR_GOOD,
     "/svc/foo",
     LINK,
     NULL,
     {{"Image", NEW_IMAGE, 0}, {"Duration", "42s", 1}, {"Pushed by", "alice", 1}}},
};

/* --- checks --------------------------------------------------------------------------------- */

static const char *str_member(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* No string in the payload (but title_link) may hold a raw '<' or '>', or an '&' that does not
 * start one of the three entities: that is what makes links and mentions impossible. */
static int all_escaped(const cJSON *node, const char *key, const char *ctx)
{
    int ok = 1;
    if (cJSON_IsString(node) && !(key && strcmp(key, "title_link") == 0)) {
        const char *s = node->valuestring;
        for (const char *p = s; *p; p++) {
            if (*p == '<' || *p == '>' ||
                (*p == '&' && strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) &&
                 strncmp(p, "&gt;", 4))) {
                CHECK(0, "%s: unescaped character in %s: \"%s\"", ctx, key ? key : "?", s);
                return 0;
            }
        }
    }
    for (const cJSON *c = node ? node->child : NULL; c; c = c->next)
        ok &= all_escaped(c, c->string ? c->string : key, ctx);
    return ok;
}

static void check_case(const struct format_case *c)
{
    struct report r = base(c->kind);
    if (c->setup) c->setup(&r);
    struct notify_opts o = {"all", c->no_ui ? NULL : UI};
    struct buf b;
    buf_init(&b, 1 << 20);
    CHECK(notify_format_slack(&r, &o, &b) == 0, "%s: formats", c->name);
    cJSON *j = cJSON_Parse(b.data ? b.data : "");
    CHECK(j != NULL, "%s: payload is JSON: %s", c->name, b.data ? b.data : "(null)");
    if (!j) goto out;

    CHECK_EQ(str_member(j, "channel"), c->channel, c->name);
    CHECK_EQ(str_member(j, "text"), c->text, c->name);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "unfurl_links")),
          "%s: unfurl_links false", c->name);
    const cJSON *atts = cJSON_GetObjectItemCaseSensitive(j, "attachments");
    CHECK(cJSON_GetArraySize(atts) == 1, "%s: one attachment", c->name);
    const cJSON *a = cJSON_GetArrayItem(atts, 0);
    CHECK_EQ(str_member(a, "fallback"), c->text, c->name);
    CHECK_EQ(str_member(a, "color"), c->color, c->name);
    CHECK_EQ(str_member(a, "title"), c->title, c->name);
    CHECK_EQ(str_member(a, "title_link"), c->link, c->name);
    CHECK_EQ(str_member(a, "text"), c->body, c->name);

    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(a, "fields");
    int want = 0;
    while (want < 8 && c->fields[want].title)
        want++;
    CHECK(cJSON_GetArraySize(fields) == want, "%s: %d fields (got %d)", c->name, want,
          cJSON_GetArraySize(fields));
    for (int i = 0; i < want && i < cJSON_GetArraySize(fields); i++) {
        const cJSON *f = cJSON_GetArrayItem(fields, i);
        CHECK_EQ(str_member(f, "title"), c->fields[i].title, c->name);
        CHECK_EQ(str_member(f, "value"), c->fields[i].value, c->name);
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(f, "short");
        CHECK(cJSON_IsBool(sh) && cJSON_IsTrue(sh) == c->fields[i].is_short,
              "%s: field %s short=%d", c->name, c->fields[i].title, c->fields[i].is_short);
    }
    CHECK(all_escaped(j, NULL, c->name), "%s: every string escaped", c->name);
out:
    cJSON_Delete(j);
    buf_free(&b);
}

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

struct escape_case {
    const char *in;
    size_t max;
    int flags;
    const char *want;
};

static const struct escape_case escapes[] = {
    {"plain text", 100, 0, "plain text"},
    {"a&b<c>d", 100, 0, "a&amp;b&lt;c&gt;d"},
    {"<!channel> <http://evil|click>", 100, 0, "&lt;!channel&gt; &lt;http://evil|click&gt;"},
    {"<@U024BE7LH> <#C024BE7LR> <!subteam^SAZ94GDB8>", 100, 0,
     "&lt;@" WJ "U024BE7LH&gt; &lt;#C024BE7LR&gt; &lt;!subteam^SAZ94GDB8&gt;"},
    {"&amp; already", 100, 0, "&amp;amp; already"},
    {"@channel look", 100, 0, "@" WJ "channel look"},
    {"ping @here now", 100, 0, "ping @" WJ "here now"},
    {"bob@example.com", 100, 0, "bob@example.com"},
    {"@ 1 @2", 100, 0, "@ 1 @2"},
    {"line1\nline2\ttab\r\nend", 100, 0, "line1\nline2\ttab\nend"},
    {"line1\nline2\ttab\r\nend\rx", 100, NOTIFY_ONE_LINE, "line1 line2 tab end x"},
    {"\x01\x1b[31mred\x7f", 100, 0, "[31mred"},
    {"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80", 100, 0,
     "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80"},
    {"a\xff"
     "b",
     100, 0,
     "a\xef\xbf\xbd"
     "b"},
    {"cut \xc3", 100, 0, "cut \xef\xbf\xbd"},
    {"\xc0\xaf", 100, 0, "\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xed\xa0\x80", 100, 0, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xf4\x90\x80\x80", 100, 0, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"abc", 3, 0, "abc"},
    {"abcd", 3, 0, "abc" TRUNC},
    {"h\xc3\xa9llo", 2, 0, "h" TRUNC},
    {"h\xc3\xa9llo", 3, 0, "h\xc3\xa9" TRUNC},
    {"\xf0\x9f\x9a\x80\xf0\x9f\x9a\x80", 5, 0, "\xf0\x9f\x9a\x80" TRUNC},
    {"<<<<", 2, 0, "&lt;&lt;" TRUNC},
    {"", 0, 0, ""},
    {"x", 0, 0, TRUNC},
    {NULL, 10, 0, ""},
};

static void test_escape(void)
{
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        const struct escape_case *c = &escapes[i];
        struct buf b;
        buf_init(&b, 4096);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "escape case %zu", i);
        CHECK(notify_escape(&b, c->in, c->max, c->flags) == 0, "%s: ok", ctx);
        CHECK_EQ(b.data ? b.data : "", c->want, ctx);
        buf_free(&b);
    }
    struct buf small;
    buf_init(&small, 4);
    CHECK(notify_escape(&small, "<<<<", 100, 0) < 0, "escape reports a full buffer");
    buf_free(&small);
}

static void test_short_digest(void)
{
    static const struct {
        const char *in, *want;
    } t[] = {
        {DIGEST, "0a8f49daa4be"},
        {"sha256:abc", "abc"},
        {"sha512:"
         "0123456789abcdef0123",
         "0123456789ab"},
        {"0a8f49daa4bed3de", "0a8f49daa4be"},
        {"sha256:<!here>", ""},
        {"", ""},
        {NULL, ""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[16];
        notify_short_digest(t[i].in, out, sizeof out);
        CHECK_EQ(out, t[i].want, "short digest");
    }
    char tiny[4];
    notify_short_digest(DIGEST, tiny, sizeof tiny);
    CHECK_EQ(tiny, "0a8", "short digest fits its buffer");
}

static void test_should_send(void)
{
    static const struct {
        enum report_kind kind;
        int n_apps;
        const char *policy;
        int want;
    } t[] = {
        {REPORT_PUSHED, 0, "all", 1},       {REPORT_PUSHED, 2, "all", 1},
        {REPORT_PUSHED, 0, "matched", 0},   {REPORT_PUSHED, 1, "matched", 1},
        {REPORT_PUSHED, 0, NULL, 0},        {REPORT_PUSHED, 3, NULL, 1},
        {REPORT_PUSHED, 0, "none", 0},      {REPORT_PUSHED, 5, "none", 0},
        {REPORT_DEPLOYING, 0, "none", 1},   {REPORT_DEPLOYED, 0, "none", 1},
        {REPORT_FAILED, 0, "matched", 1},   {REPORT_TIMED_OUT, 0, "none", 1},
        {REPORT_ROLLED_BACK, 0, "none", 1}, {REPORT_SUPERSEDED, 0, "none", 1},
        {REPORT_SKIPPED, 0, "none", 1},     {REPORT_PAUSED, 0, "none", 1},
        {REPORT_RESUMED, 0, "matched", 1},  {REPORT_ROLLBACK_FAILED, 0, "none", 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct report r = base(t[i].kind);
        r.n_apps = t[i].n_apps;
        struct notify_opts o = {t[i].policy, NULL};
        CHECK(notify_should_send(&r, &o) == t[i].want, "should_send %s n_apps=%d policy=%s: %d",
              report_kind_name(t[i].kind), t[i].n_apps, t[i].policy ? t[i].policy : "(default)",
              t[i].want);
    }
    struct report r = base(REPORT_PUSHED);
    CHECK(notify_should_send(&r, NULL) == 0, "no options: matched");
}

/* Formats r and returns the parsed payload (NULL on failure). */
static cJSON *format(const struct report *r, const struct notify_opts *o)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    cJSON *j = notify_format_slack(r, o, &b) == 0 ? cJSON_Parse(b.data) : NULL;
    buf_free(&b);
    return j;
}

static const char *field_value(const cJSON *j, const char *title)
{
    const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "attachments"), 0);
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(a, "fields"))
    {
        const char *t = str_member(f, "title");
        if (t && strcmp(t, title) == 0) return str_member(f, "value");
    }
    return NULL;
}

static void test_truncation(void)
{
    /* A reason as long as the report allows: cut in the summary and in its field, visibly. */
    struct report r = base(REPORT_FAILED);
    memset(r.reason, 'x', sizeof r.reason - 1);
    r.reason[sizeof r.reason - 1] = '\0';
    cJSON *j = format(&r, NULL);
    CHECK(j != NULL, "long reason formats");
    char want[1024];
    snprintf(want, sizeof want,
             "Failed to deploy strava/foo-service:master-abc123 to /svc/foo: %.*s" TRUNC,
             NOTIFY_SUMMARY_MAX, r.reason);
    CHECK_EQ(str_member(j, "text"), want, "long reason: summary");
    snprintf(want, sizeof want, "%.*s" TRUNC, NOTIFY_FIELD_MAX, r.reason);
    CHECK_EQ(field_value(j, "Reason"), want, "long reason: field");
    cJSON_Delete(j);

    /* Two-byte characters: the cut never splits one (cJSON_Parse would still accept it, so
     * compare bytes). 255 x "é" = 510 bytes; the field keeps 250 of them. */
    r = base(REPORT_FAILED);
    for (int i = 0; i < 255; i++)
        memcpy(r.task_message + 2 * i, "\xc3\xa9", 2);
    r.task_message[510] = '\0';
    j = format(&r, NULL);
    CHECK(j != NULL, "long UTF-8 task message formats");
    char *w = want;
    for (int i = 0; i < 250; i++, w += 2)
        memcpy(w, "\xc3\xa9", 2);
    snprintf(w, sizeof want - 500, TRUNC);
    CHECK_EQ(field_value(j, "Last task failure"), want, "UTF-8 cut on a character boundary");
    cJSON_Delete(j);

    /* A list of apps the reporter had to cut: the partial last id goes, "and N more" says so. */
    r = base(REPORT_PUSHED);
    struct buf apps;
    buf_init(&apps, sizeof r.apps - 1);
    int listed = 0;
    for (int i = 0; buf_printf(&apps, "%s/svc/app-%03d", i ? ", " : "", i) == 0; i++)
        listed++;
    /* fill up to the brim, as a reporter's snprintf would, with a partial id */
    size_t room = sizeof r.apps - 1 - apps.len;
    snprintf(r.apps, sizeof r.apps, "%s, /svc/app-partial-id-that-does-not-fit-xxxxxxxxxxxxxxxxxxx",
             apps.data);
    r.apps[sizeof r.apps - 1] = '\0';
    r.n_apps = 120;
    j = format(&r, NULL);
    const char *v = field_value(j, "Deploys to");
    char more[32];
    snprintf(more, sizeof more, " and %d more", 120 - listed);
    CHECK(v && room < 60 && strncmp(v, apps.data, apps.len) == 0 && strcmp(v + apps.len, more) == 0,
          "cut list of apps ends with \"%s\": %s", more, v ? v : "(null)");
    CHECK_EQ(str_member(j, "text"),
             "Pushed strava/foo-service:master-abc123 (0a8f49daa4be) by alice: will deploy to "
             "120 apps",
             "many apps: the summary counts them");
    cJSON_Delete(j);
    buf_free(&apps);

    /* The output buffer's cap is honoured. */
    struct buf tiny;
    buf_init(&tiny, 64);
    r = base(REPORT_DEPLOYING);
    CHECK(notify_format_slack(&r, NULL, &tiny) < 0, "a payload past the cap is an error");
    buf_free(&tiny);
}

static void test_hostile_everywhere(void)
{
    /* Every user-controlled string at once, in every kind: nothing unescaped anywhere. */
    static const char *const evil = "<!channel> <http://evil|click> & @everyone";
    for (int k = REPORT_PUSHED; k <= REPORT_RESUMED; k++) {
        struct report r = base((enum report_kind)k);
        snprintf(r.push.repository, sizeof r.push.repository, "%s", evil);
        snprintf(r.push.tag, sizeof r.push.tag, "%s", evil);
        snprintf(r.push.pusher, sizeof r.push.pusher, "%s", evil);
        snprintf(r.push.host, sizeof r.push.host, "%s", evil);
        snprintf(r.push.digest, sizeof r.push.digest, "%s", evil);
        snprintf(r.app_id, sizeof r.app_id, "%s", evil);
        snprintf(r.apps, sizeof r.apps, "%s", evil);
        r.n_apps = 1;
        snprintf(r.old_image, sizeof r.old_image, "%s", evil);
        snprintf(r.new_image, sizeof r.new_image, "%s", evil);
        snprintf(r.old_digest, sizeof r.old_digest, "%s", evil);
        snprintf(r.deployment_id, sizeof r.deployment_id, "%s", evil);
        snprintf(r.reason, sizeof r.reason, "%s", evil);
        snprintf(r.task_message, sizeof r.task_message, "%s", evil);
        struct notify_opts o = {"all", UI};
        cJSON *j = format(&r, &o);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "hostile %s", report_kind_name((enum report_kind)k));
        CHECK(j != NULL, "%s: formats", ctx);
        CHECK(all_escaped(j, NULL, ctx), "%s: escaped", ctx);
        const char *text = str_member(j, "text");
        CHECK(text && strstr(text, "@" WJ "everyone") && !strstr(text, "@everyone"),
              "%s: @everyone neutralised: %s", ctx, text ? text : "(null)");
        const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "attachments"), 0);
        const char *link = str_member(a, "title_link");
        if (k != REPORT_PUSHED && k != REPORT_PAUSED && k != REPORT_RESUMED)
            CHECK_EQ(link,
                     "https://marathon.example.com/ui/#/apps/"
                     "%3C%21channel%3E%20%3Chttp%3A%2F%2Fevil%7Cclick%3E%20%26%20%40everyone",
                     ctx);
        cJSON_Delete(j);
    }
}

static void test_link_forms(void)
{
    struct report r = base(REPORT_DEPLOYED);
    snprintf(r.app_id, sizeof r.app_id, "/team.a/web-1_x~y");
    struct notify_opts o = {NULL, "http://m:8080"};
    cJSON *j = format(&r, &o);
    const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "attachments"), 0);
    CHECK_EQ(str_member(a, "title_link"), "http://m:8080/ui/#/apps/%2Fteam.a%2Fweb-1_x~y",
             "link without trailing slash, unreserved characters kept");
    cJSON_Delete(j);
    o.marathon_ui_url = "";
    j = format(&r, &o);
    a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "attachments"), 0);
    CHECK(str_member(a, "title_link") == NULL, "empty UI URL: no link");
    cJSON_Delete(j);
}

static void test_durations(void)
{
    static const struct {
        double s;
        const char *want;
    } t[] = {{0.4, " in 0.4s"},  {9.2, " in 9.2s"},     {42.3, " in 42s"},    {59.6, " in 1m 00s"},
             {61, " in 1m 01s"}, {3599, " in 59m 59s"}, {3725, " in 1h 02m"}, {0, ""}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct report r = base(REPORT_DEPLOYED);
        r.duration_s = t[i].s;
        cJSON *j = format(&r, NULL);
        char want[256];
        snprintf(want, sizeof want, "Deployed strava/foo-service:master-abc123 to /svc/foo%s",
                 t[i].want);
        CHECK_EQ(str_member(j, "text"), want, "duration");
        cJSON_Delete(j);
    }
}

/* Approval messages: what would deploy and how to approve, with buttons carrying the id; the
 * decider's name escaped (it comes from Slack or the API caller). */
static void test_approvals(void)
{
    struct report r = base(REPORT_AWAITING_APPROVAL);
    snprintf(r.approval_id, sizeof r.approval_id, "00112233445566778899aabbccddeeff");
    snprintf(r.approval_expires, sizeof r.approval_expires, "2026-12-02T05:00:00.000Z");
    cJSON *j = format(&r, NULL);
    CHECK(j != NULL, "awaiting: valid payload");
    const char *text = str_member(j, "text");
    CHECK(text && strstr(text, "Approval needed") && strstr(text, "/svc/foo") &&
              strstr(text, "alice"),
          "awaiting summary: %s", text ? text : "-");
    CHECK_EQ(field_value(j, "Running now"), OLD_IMAGE, "old image");
    CHECK_EQ(field_value(j, "Would deploy"), NEW_IMAGE, "new image");
    CHECK_EQ(field_value(j, "Approval"), "00112233445566778899aabbccddeeff", "approval id");
    const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "attachments"), 0);
    const char *how = str_member(a, "text");
    CHECK(how && strstr(how, "POST /v1/approvals/00112233445566778899aabbccddeeff/approve"),
          "how to approve through the API: %s", how ? how : "-");
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(j, "blocks");
    const cJSON *els = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(blocks, 1), "elements");
    CHECK(cJSON_GetArraySize(els) == 2 &&
              !strcmp(str_member(cJSON_GetArrayItem(els, 0), "action_id"), "approve") &&
              !strcmp(str_member(cJSON_GetArrayItem(els, 0), "value"),
                      "00112233445566778899aabbccddeeff") &&
              !strcmp(str_member(cJSON_GetArrayItem(els, 1), "action_id"), "reject"),
          "Approve and Reject buttons carry the approval id");
    cJSON_Delete(j);

    r.kind = REPORT_APPROVED;
    snprintf(r.approval_by, sizeof r.approval_by, "<!channel> bob");
    snprintf(r.approval_via, sizeof r.approval_via, "slack");
    j = format(&r, NULL);
    text = str_member(j, "text");
    CHECK(text && strstr(text, "Approved") && strstr(text, "&lt;!channel&gt; bob") &&
              strstr(text, "(slack)") && !strstr(text, "<!channel>"),
          "approved: who (escaped) and through which path: %s", text ? text : "-");
    CHECK(!cJSON_GetObjectItemCaseSensitive(j, "blocks"), "no buttons once decided");
    cJSON_Delete(j);
    r.kind = REPORT_REJECTED;
    snprintf(r.approval_via, sizeof r.approval_via, "console");
    j = format(&r, NULL);
    text = str_member(j, "text");
    CHECK(text && strstr(text, "Rejected") && strstr(text, "(console)"), "rejected: %s",
          text ? text : "-");
    cJSON_Delete(j);
    r.kind = REPORT_APPROVAL_EXPIRED;
    j = format(&r, NULL);
    text = str_member(j, "text");
    CHECK(text && strstr(text, "expired"), "expired: %s", text ? text : "-");
    cJSON_Delete(j);
}

int main(void)
{
    test_approvals();
    test_cases();
    test_escape();
    test_short_digest();
    test_should_send();
    test_truncation();
    test_hostile_everywhere();
    test_link_forms();
    test_durations();
    return TEST_DONE("test_notify");
}
