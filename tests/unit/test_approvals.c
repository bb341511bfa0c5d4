/*
 * test_approvals.c: the approval store's transitions (approvals.h) and the Slack interaction
 * verification and parsing (slackact.h), with no clock and no network: every time is given.
 */
#include "approvals.h"
#include "slackact.h"
#include "testlib.h"

#include <cjson/cJSON.h>

#define T0 1764650000000LL /* Unix ms, a fixed moment */
#define HOUR 3600000LL

static struct approval mk(const char *id, const char *app, char dch, int64_t created)
{
    struct approval a;
    memset(&a, 0, sizeof a);
    snprintf(a.id, sizeof a.id, "%s", id);
    snprintf(a.app_id, sizeof a.app_id, "%s", app);
    snprintf(a.push.repository, sizeof a.push.repository, "strava/api");
    snprintf(a.push.tag, sizeof a.push.tag, "v2");
    snprintf(a.push.digest, sizeof a.push.digest, "sha256:");
    memset(a.push.digest + 7, dch, 64);
    a.push.digest[71] = '\0';
    snprintf(a.push.pusher, sizeof a.push.pusher, "ci-bot");
    snprintf(a.old_image, sizeof a.old_image, "registry.example.com/strava/api:v1");
    snprintf(a.new_image, sizeof a.new_image, "registry.example.com/strava/api:v2");
    a.created_ms = created;
    a.expires_ms = created + HOUR;
    return a;
}

#define ID1 "00112233445566778899aabbccddeeff"
#define ID2 "ffeeddccbbaa99887766554433221100"
#define ID3 "0123456789abcdef0123456789abcdef"

static void created_pending_then_approved_once(void)
{
    struct approvals *s = approvals_new(0);
    struct approval a = mk(ID1, "/prod/api", 'a', T0), sup[4], out;
    size_t n;
    CHECK(approvals_create(s, &a, sup, 4, &n) == 0 && n == 0, "a first approval is created");
    CHECK(approvals_create(s, &a, sup, 4, &n) < 0, "the same id twice is refused");
    CHECK(approvals_get(s, ID1, &out) == 0 && out.state == APPROVAL_PENDING, "it is pending");
    CHECK(!approvals_allows(s, ID1, "/prod/api", a.push.digest), "a pending one lets nothing by");
    CHECK(approvals_decide(s, ID1, 1, "alice", "api", T0 + 1000, &out) == APPROVAL_DONE &&
              out.state == APPROVAL_APPROVED && !strcmp(out.decided_by, "alice") &&
              !strcmp(out.decided_via, "api") && out.decided_ms == T0 + 1000,
          "approved by alice through the API, recorded");
    CHECK(approvals_decide(s, ID1, 1, "bob", "slack", T0 + 2000, &out) == APPROVAL_NOT_PENDING &&
              !strcmp(out.decided_by, "alice"),
          "approving twice: the second is refused and changes nothing");
    CHECK(approvals_decide(s, ID1, 0, "bob", "console", T0 + 2000, &out) == APPROVAL_NOT_PENDING,
          "nor can it be rejected afterwards");
    CHECK(approvals_allows(s, ID1, "/prod/api", a.push.digest), "the approved push may deploy");
    char other[72];
    memcpy(other, a.push.digest, sizeof other);
    other[8] = 'b';
    CHECK(!approvals_allows(s, ID1, "/prod/api", other), "only the approved digest");
    CHECK(!approvals_allows(s, ID1, "/prod/web", a.push.digest), "only for the approved app");
    CHECK(approvals_decide(s, "nope", 1, "x", "api", T0, NULL) == APPROVAL_UNKNOWN, "unknown id");
    approvals_free(s);
}

static void rejected(void)
{
    struct approvals *s = approvals_new(0);
    struct approval a = mk(ID1, "/prod/api", 'a', T0), sup[4], out;
    size_t n;
    approvals_create(s, &a, sup, 4, &n);
    CHECK(approvals_decide(s, ID1, 0, "carol", "console", T0 + 5, &out) == APPROVAL_DONE &&
              out.state == APPROVAL_REJECTED && !strcmp(out.decided_via, "console"),
          "rejected through the console");
    CHECK(!approvals_allows(s, ID1, "/prod/api", a.push.digest), "a rejected push never deploys");
    CHECK(approvals_decide(s, ID1, 1, "carol", "slack", T0 + 6, NULL) == APPROVAL_NOT_PENDING,
          "a rejected approval cannot be approved later");
    approvals_free(s);
}

static void superseded_by_newer_push(void)
{
    struct approvals *s = approvals_new(0);
    struct approval a = mk(ID1, "/prod/api", 'a', T0), b = mk(ID2, "/prod/api", 'b', T0 + 10);
    struct approval c = mk(ID3, "/prod/web", 'c', T0 + 20), sup[4], out;
    size_t n;
    approvals_create(s, &a, sup, 4, &n);
    CHECK(approvals_create(s, &c, sup, 4, &n) == 0 && n == 0,
          "another app's push supersedes nothing");
    CHECK(approvals_create(s, &b, sup, 4, &n) == 0 && n == 1 && !strcmp(sup[0].id, ID1) &&
              sup[0].state == APPROVAL_SUPERSEDED && !strcmp(sup[0].superseded_by, ID2),
          "a newer push for the same app supersedes the pending approval");
    CHECK(approvals_decide(s, ID1, 1, "mallory", "slack", T0 + 30, &out) == APPROVAL_NOT_PENDING &&
              out.state == APPROVAL_SUPERSEDED,
          "the old button cannot approve the superseded push");
    CHECK(!approvals_allows(s, ID1, "/prod/api", a.push.digest), "it never deploys");
    CHECK(approvals_pending_for(s, "/prod/api", &out) == 0 && !strcmp(out.id, ID2),
          "the newer one is the app's pending approval");
    approvals_free(s);
}

static void expiry(void)
{
    struct approvals *s = approvals_new(0);
    struct approval a = mk(ID1, "/prod/api", 'a', T0), b = mk(ID2, "/prod/web", 'b', T0);
    struct approval sup[4], out[4];
    size_t n;
    b.expires_ms = T0 + 2 * HOUR;
    approvals_create(s, &a, sup, 4, &n);
    approvals_create(s, &b, sup, 4, &n);
    CHECK(approvals_expire(s, T0 + HOUR - 1, out, 4) == 0, "nothing expires early");
    CHECK(approvals_expire(s, T0 + HOUR, out, 4) == 1 && !strcmp(out[0].id, ID1) &&
              out[0].state == APPROVAL_EXPIRED,
          "the first expires at its time-out");
    CHECK(approvals_expire(s, T0 + HOUR + 5, out, 4) == 0, "and only once");
    CHECK(approvals_decide(s, ID1, 1, "a", "api", T0 + HOUR + 6, NULL) == APPROVAL_NOT_PENDING,
          "an expired approval cannot be approved");
    CHECK(approvals_decide(s, ID2, 1, "a", "api", T0 + 2 * HOUR, out) == APPROVAL_EXPIRED_NOW &&
              out[0].state == APPROVAL_EXPIRED,
          "one past its time-out before the timer ran expires when someone tries it");
    approvals_free(s);

    /* More due at once than the caller takes (one push to 20 gated apps, or a restart after
     * a long stop): each call expires only what it hands back; none expires unreported. */
    s = approvals_new(0);
    for (int i = 0; i < 5; i++) {
        char id[40], app[32];
        snprintf(id, sizeof id, "%032x", i + 1);
        snprintf(app, sizeof app, "/prod/app%d", i);
        a = mk(id, app, 'a', T0);
        approvals_create(s, &a, sup, 4, &n);
    }
    size_t total = 0, got;
    while ((got = approvals_expire(s, T0 + HOUR, out, 2)) > 0) {
        CHECK(got <= 2, "at most max at a time (%zu)", got);
        total += got;
        CHECK(approvals_pending_count(s) == 5 - total, "only those handed back expired");
    }
    CHECK(total == 5, "all five handed back in turn (%zu)", total);
    approvals_free(s);
}

static void bounded(void)
{
    struct approvals *s = approvals_new(3);
    struct approval sup[4];
    size_t n;
    char id[APPROVAL_ID_MAX], app[32];
    int created = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "%032d", i);
        snprintf(app, sizeof app, "/prod/a%d", i);
        struct approval a = mk(id, app, 'a', T0 + i);
        created += approvals_create(s, &a, sup, 4, &n) == 0;
    }
    struct approval x = mk("ffffffffffffffffffffffffffffffff", "/prod/x", 'a', T0 + 9);
    CHECK(created == 3 && approvals_create(s, &x, sup, 4, &n) < 0,
          "a store full of pending approvals refuses a new one (none is forgotten)");
    approvals_decide(s, "00000000000000000000000000000001", 0, "r", "api", T0 + 10, NULL);
    CHECK(approvals_create(s, &x, sup, 4, &n) == 0, "a decided one makes room");
    struct approval out;
    CHECK(approvals_get(s, "00000000000000000000000000000001", &out) < 0 &&
              approvals_get(s, "00000000000000000000000000000000", &out) == 0,
          "the decided one was forgotten, the pending ones kept");
    approvals_free(s);
}

static void json_round_trip(void)
{
    struct approval a = mk(ID1, "/prod/api", 'a', T0), back;
    snprintf(a.channel, sizeof a.channel, "#deploys");
    snprintf(a.push.host, sizeof a.push.host, "registry.example.com");
    snprintf(a.push.source, sizeof a.push.source, "reconcile");
    a.state = APPROVAL_APPROVED;
    a.decided_ms = T0 + 1234;
    snprintf(a.decided_by, sizeof a.decided_by, "al\"ice <@U1>");
    snprintf(a.decided_via, sizeof a.decided_via, "slack");
    struct buf b;
    buf_init(&b, 1 << 16);
    approval_json(&a, 1, &b);
    cJSON *o = cJSON_Parse(b.data);
    CHECK(o != NULL, "valid JSON: %s", b.data);
    CHECK(approval_from_json(o, &back) == 0, "reads back");
    CHECK(!strcmp(back.id, a.id) && !strcmp(back.app_id, a.app_id) && back.state == a.state &&
              back.created_ms == a.created_ms && back.expires_ms == a.expires_ms &&
              back.decided_ms == a.decided_ms && !strcmp(back.decided_by, a.decided_by) &&
              !strcmp(back.push.digest, a.push.digest) && !strcmp(back.channel, "#deploys") &&
              !strcmp(back.push.source, "reconcile") && !strcmp(back.new_image, a.new_image) &&
              !strcmp(back.old_image, a.old_image) && !strcmp(back.push.host, a.push.host),
          "every field survives the round trip");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "expires_at")),
              "2025-12-02T05:33:20.000Z", "expires_at is RFC 3339 UTC");
    cJSON_ReplaceItemInObject(o, "state", cJSON_CreateString("approvedish"));
    CHECK(approval_from_json(o, &back) < 0, "an unknown state is refused");
    cJSON_ReplaceItemInObject(o, "state", cJSON_CreateString("pending"));
    cJSON_ReplaceItemInObject(o, "id", cJSON_CreateString("../../x"));
    CHECK(approval_from_json(o, &back) < 0, "an id that is not hex is refused");
    cJSON_Delete(o);
    buf_reset(&b);
    struct approvals *s = approvals_new(0);
    size_t n;
    struct approval sup[1], c = mk(ID2, "/prod/api", 'b', T0 + 5);
    approvals_create(s, &a, sup, 1, &n);
    approvals_create(s, &c, sup, 1, &n);
    approvals_json(s, &b);
    o = cJSON_Parse(b.data);
    const cJSON *list = cJSON_GetObjectItem(o, "approvals");
    CHECK(cJSON_GetArraySize(list) == 2 &&
              !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "id")),
                      ID2) &&
              !cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "channel"),
          "the list is newest first, without the state-file fields: %s", b.data);
    cJSON_Delete(o);
    approvals_free(s);
    buf_free(&b);
}

/* ---------------------------------------------------------------- Slack */

/* Slack's own example (api.slack.com/authentication/verifying-requests-from-slack). */
static const char *SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
static const char *SLACK_BODY =
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
    "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
    "803a0bc887a14d10d2c447fce8b6703c";
static const char *SLACK_SIG =
    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

static void slack_verify_cases(void)
{
    size_t len = strlen(SLACK_BODY);
    const int64_t ts = 1531420618;
    struct {
        const char *secret, *ts, *sig;
        int64_t now;
        size_t len;
        enum slackact_verdict want;
        const char *what;
    } cases[] = {
        {SLACK_SECRET, "1531420618", SLACK_SIG, ts, len, SLACKACT_OK, "Slack's example"},
        {SLACK_SECRET, "1531420618", SLACK_SIG, ts + 300, len, SLACKACT_OK, "5 minutes late"},
        {SLACK_SECRET, "1531420618", SLACK_SIG, ts + 301, len, SLACKACT_STALE, "older than 5 min"},
        {SLACK_SECRET, "1531420618", SLACK_SIG, ts - 301, len, SLACKACT_STALE, "from the future"},
        {"8f742231b10e8888abcd99yyyzzz85a6", "1531420618", SLACK_SIG, ts, len,
         SLACKACT_BAD_SIGNATURE, "another secret"},
        {SLACK_SECRET, "1531420619", SLACK_SIG, ts, len, SLACKACT_BAD_SIGNATURE,
         "the timestamp is signed"},
        {SLACK_SECRET, "1531420618", SLACK_SIG, ts, len - 1, SLACKACT_BAD_SIGNATURE,
         "the whole body is signed"},
        {SLACK_SECRET, "1531420618",
         "v0=A2114D57B48EAC39B9AD189DD8316235A7B4A8D21A10BD27519666489C69B503", ts, len,
         SLACKACT_BAD_SIGNATURE, "upper-case hex is not what Slack sends"},
        {SLACK_SECRET, "1531420618",
         "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", ts, len,
         SLACKACT_BAD_SIGNATURE, "another version"},
        {SLACK_SECRET, "1531420618", "v0=a2114d57", ts, len, SLACKACT_BAD_SIGNATURE, "short"},
        {SLACK_SECRET, NULL, SLACK_SIG, ts, len, SLACKACT_BAD_SIGNATURE, "no timestamp"},
        {SLACK_SECRET, "1531420618", NULL, ts, len, SLACKACT_BAD_SIGNATURE, "no signature"},
        {SLACK_SECRET, "-1531420618", SLACK_SIG, ts, len, SLACKACT_BAD_SIGNATURE, "negative"},
        {SLACK_SECRET, "1531420618 ", SLACK_SIG, ts, len, SLACKACT_BAD_SIGNATURE, "trailing space"},
        {"", "1531420618", SLACK_SIG, ts, len, SLACKACT_BAD_SIGNATURE, "no secret"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(slackact_verify(cases[i].secret, cases[i].ts, cases[i].sig, SLACK_BODY, cases[i].len,
                              cases[i].now) == cases[i].want,
              "verify: %s", cases[i].what);
}

static void slack_parse_cases(void)
{
    struct {
        const char *body;
        int ok;
        const char *action, *value, *user;
    } cases[] = {
        {"payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A%7B%22id%22%3A%22U1%22%2C%22"
         "username%22%3A%22alice.s%22%2C%22name%22%3A%22alice%22%7D%2C%22actions%22%3A%5B%7B%22"
         "action_id%22%3A%22approve%22%2C%22value%22%3A%22" ID1 "%22%7D%5D%7D",
         1, "approve", ID1, "alice"},
        {"a=b&payload={\"type\":\"block_actions\",\"user\":{\"id\":\"U1\",\"username\":\"bob\"},"
         "\"actions\":[{\"action_id\":\"reject\",\"value\":\"x+y\"}]}",
         1, "reject", "x y", "bob"},
        {"payload={\"type\":\"view_submission\",\"user\":{\"name\":\"a\"},\"actions\":[{\"action_"
         "id\":\"approve\",\"value\":\"v\"}]}",
         0, NULL, NULL, NULL},
        {"payload={\"type\":\"block_actions\",\"user\":{\"name\":\"a\"},\"actions\":[{\"action_"
         "id\":\"deploy\",\"value\":\"v\"}]}",
         0, NULL, NULL, NULL},
        {"payload={\"type\":\"block_actions\",\"user\":{},\"actions\":[{\"action_id\":\"approve\","
         "\"value\":\"v\"}]}",
         0, NULL, NULL, NULL},
        {"payload={\"type\":\"block_actions\",\"user\":{\"name\":\"a\"},\"actions\":[]}", 0, NULL,
         NULL, NULL},
        {"payload=%7B%00", 0, NULL, NULL, NULL},
        {"payload=%zz", 0, NULL, NULL, NULL},
        {"nopayload=1", 0, NULL, NULL, NULL},
        {"", 0, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct slackact a;
        char err[128];
        int rc = slackact_parse(cases[i].body, strlen(cases[i].body), &a, err, sizeof err);
        CHECK((rc == 0) == cases[i].ok, "parse case %zu: %s", i, rc ? err : "ok");
        if (rc == 0 && cases[i].ok) {
            CHECK_STR(a.action_id, cases[i].action, "action");
            CHECK_STR(a.value, cases[i].value, "value");
            CHECK_STR(a.user, cases[i].user, "user");
        }
    }
}

static void slack_replays(void)
{
    struct slackact_seen *s = slackact_seen_new();
    CHECK(slackact_seen_check(s, SLACK_SIG, 1000, 1000) == 0, "first sight");
    CHECK(slackact_seen_check(s, SLACK_SIG, 1000, 1100) == 1, "the same signature is a replay");
    CHECK(slackact_seen_check(s, "v0=other", 1000, 1100) == 0, "another is not");
    CHECK(slackact_seen_check(s, SLACK_SIG, 1000, 1301) == 0,
          "forgotten once outside the window (the timestamp check refuses it then)");
    slackact_seen_free(s);
}

/* A state file with two pending approvals of one app (the superseded line of the older lost
 * to a failed write): whatever their order, only the newer stays pending. */
static void restored_twice_pending_for_one_app(void)
{
    for (int order = 0; order < 2; order++) {
        struct approvals *s = approvals_new(0);
        struct approval a = mk(ID1, "/prod/api", 'a', T0), b = mk(ID2, "/prod/api", 'b', T0 + 10);
        struct approval c = mk(ID3, "/prod/web", 'c', T0 + 5), sup, out;
        CHECK(approvals_restore(s, order ? &b : &a, &sup) == 0, "the first is restored");
        CHECK(approvals_restore(s, &c, &sup) == 0, "another app's is no concern");
        CHECK(approvals_restore(s, order ? &a : &b, &sup) == 1 && !strcmp(sup.id, ID1) &&
                  sup.state == APPROVAL_SUPERSEDED && !strcmp(sup.superseded_by, ID2),
              "order %d: the older is superseded", order);
        CHECK(approvals_decide(s, ID1, 1, "mallory", "slack", T0 + 30, &out) ==
                  APPROVAL_NOT_PENDING,
              "order %d: the older cannot be approved", order);
        CHECK(approvals_pending_for(s, "/prod/api", &out) == 0 && !strcmp(out.id, ID2),
              "order %d: the newer is the app's pending approval", order);
        CHECK(approvals_pending_count(s) == 2, "order %d: two pending in all", order);
        approvals_free(s);
    }
}

int main(void)
{
    restored_twice_pending_for_one_app();
    created_pending_then_approved_once();
    rejected();
    superseded_by_newer_push();
    expiry();
    bounded();
    json_round_trip();
    slack_verify_cases();
    slack_parse_cases();
    slack_replays();
    return TEST_DONE("test_approvals");
}
