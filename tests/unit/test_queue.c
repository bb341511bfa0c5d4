/*
 * test_queue.c: duplicate detection, bounds, back-pressure and pause of the push queue.
 */
#include "queue.h"
#include "testlib.h"

#include <cjson/cJSON.h>
#include <pthread.h>

static struct push mk(const char *id, const char *repo, const char *tag, char dch)
{
    struct push p;
    memset(&p, 0, sizeof p);
    snprintf(p.event_id, sizeof p.event_id, "%s", id);
    snprintf(p.repository, sizeof p.repository, "%s", repo);
    snprintf(p.tag, sizeof p.tag, "%s", tag);
    snprintf(p.digest, sizeof p.digest, "sha256:");
    memset(p.digest + 7, dch, 64);
    p.digest[71] = '\0';
    return p;
}

static void test_duplicates(void)
{
    struct pushq *q = pushq_new(100, 1000, 10);
    struct push a = mk("e1", "strava/foo", "master", 'a');
    CHECK(pushq_offer(q, &a) == PUSHQ_ACCEPTED, "first push accepted");
    CHECK(pushq_offer(q, &a) == PUSHQ_DUPLICATE, "same event id again is a duplicate");
    struct push a2 = mk("e2", "strava/foo", "master", 'a');
    CHECK(pushq_offer(q, &a2) == PUSHQ_DUPLICATE, "re-push of the same digest is a duplicate");
    struct push b = mk("e3", "strava/foo", "master", 'b');
    CHECK(pushq_offer(q, &b) == PUSHQ_ACCEPTED, "mutable tag moved to a new digest: accepted");
    struct push a3 = mk("e4", "strava/foo", "master", 'a');
    CHECK(pushq_offer(q, &a3) == PUSHQ_ACCEPTED, "tag moved back to the old digest: accepted");
    struct push other = mk("e5", "strava/foo", "release", 'a');
    CHECK(pushq_offer(q, &other) == PUSHQ_ACCEPTED, "same digest under another tag: accepted");
    struct push noid = mk("", "strava/bar", "v1", 'c');
    CHECK(pushq_offer(q, &noid) == PUSHQ_ACCEPTED, "push without id accepted");
    CHECK(pushq_offer(q, &noid) == PUSHQ_DUPLICATE, "push without id deduplicated by content");
    CHECK(pushq_depth(q) == 5, "five queued (got %zu)", pushq_depth(q));
    pushq_free(q);
}

static void test_full(void)
{
    struct pushq *q = pushq_new(2, 1000, 10);
    struct push p1 = mk("f1", "a", "1", '1'), p2 = mk("f2", "a", "2", '2'),
                p3 = mk("f3", "a", "3", '3');
    CHECK(pushq_offer(q, &p1) == PUSHQ_ACCEPTED, "1 of 2");
    CHECK(pushq_offer(q, &p2) == PUSHQ_ACCEPTED, "2 of 2");
    CHECK(pushq_offer(q, &p3) == PUSHQ_FULL, "third is refused while full");
    CHECK(pushq_offer(q, &p3) == PUSHQ_FULL, "a full queue remembers nothing: still full, not dup");
    CHECK(pushq_offer(q, &p1) == PUSHQ_DUPLICATE, "an accepted push stays a duplicate when full");
    struct push out;
    CHECK(pushq_take(q, &out) == 0 && strcmp(out.event_id, "f1") == 0, "FIFO order");
    CHECK(pushq_offer(q, &p3) == PUSHQ_ACCEPTED, "the retry is accepted once there is room");
    CHECK(pushq_take(q, &out) == 0 && strcmp(out.event_id, "f2") == 0, "FIFO order 2");
    CHECK(pushq_take(q, &out) == 0 && strcmp(out.event_id, "f3") == 0, "FIFO order 3");
    CHECK(pushq_depth(q) == 0, "drained");
    pushq_free(q);
}

static void test_bounded_memory(void)
{
    /* With room for 16 keys, the oldest are forgotten; the newest are still remembered. */
    struct pushq *q = pushq_new(100000, 16, 4);
    char id[32], tag[32];
    int accepted = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        snprintf(tag, sizeof tag, "t%d", i);
        struct push p = mk(id, "r", tag, 'a');
        accepted += pushq_offer(q, &p) == PUSHQ_ACCEPTED;
    }
    CHECK(accepted == 5000, "5000 distinct pushes accepted (%d)", accepted);
    struct push recent = mk("id-4999", "r", "t4999", 'a');
    CHECK(pushq_offer(q, &recent) == PUSHQ_DUPLICATE, "newest remembered");
    struct push old = mk("id-0", "r", "t0", 'a');
    CHECK(pushq_offer(q, &old) == PUSHQ_ACCEPTED, "oldest forgotten (memory is bounded)");
    for (int i = 4990; i < 5000; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        snprintf(tag, sizeof tag, "t%d", i);
        struct push p = mk(id, "r", tag, 'a');
        CHECK(pushq_offer(q, &p) == PUSHQ_DUPLICATE, "recent %d still remembered", i);
    }
    struct buf b;
    buf_init(&b, 1 << 20);
    pushq_recent_json(q, &b);
    cJSON *j = cJSON_Parse(b.data);
    const cJSON *arr = cJSON_GetObjectItem(j, "pushes");
    CHECK(cJSON_GetArraySize(arr) == 4, "recent list bounded to 4 (%d)", cJSON_GetArraySize(arr));
    const cJSON *first = cJSON_GetArrayItem(arr, 0);
    CHECK(first && strcmp(cJSON_GetObjectItem(first, "event_id")->valuestring, "id-0") == 0,
          "newest first");
    CHECK(first && strcmp(cJSON_GetObjectItem(first, "state")->valuestring, "queued") == 0,
          "state queued");
    cJSON_Delete(j);
    buf_free(&b);
    pushq_free(q);
}

struct taker_state {
    struct pushq *q;
    int rc;
    volatile int done;
    struct push out;
};

static void *taker(void *arg)
{
    struct taker_state *st = arg;
    st->rc = pushq_take(st->q, &st->out);
    st->done = 1;
    return NULL;
}

static void test_pause_and_close(void)
{
    struct pushq *q = pushq_new(10, 100, 10);
    pushq_set_paused(q, 1);
    CHECK(pushq_paused(q) == 1, "paused");
    struct push p = mk("x", "a", "1", 'a');
    CHECK(pushq_offer(q, &p) == PUSHQ_ACCEPTED, "offers accepted while paused");
    struct taker_state st = {.q = q, .rc = 99};
    pthread_t t;
    pthread_create(&t, NULL, taker, &st);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(st.done == 0, "take waits while paused");
    pushq_set_paused(q, 0);
    pthread_join(t, NULL);
    CHECK(st.done == 1 && st.rc == 0, "take returns after resume");
    pushq_set_state(q, &p, "ignored"); /* not as taken from the queue: no seq, no effect */
    pushq_set_state(q, &st.out, "deployed");
    struct buf b;
    buf_init(&b, 1 << 16);
    pushq_recent_json(q, &b);
    CHECK(strstr(b.data, "\"state\":\"deployed\"") != NULL, "state recorded: %s", b.data);
    buf_free(&b);

    st.done = 0;
    pthread_create(&t, NULL, taker, &st);
    nanosleep(&ts, NULL);
    pushq_close(q);
    pthread_join(t, NULL);
    CHECK(st.done == 1 && st.rc == -1, "close wakes a waiting take with -1");
    pushq_free(q);
    pushq_free(NULL);
}

/* Pushes without a digest (Docker Hub, Quay, Nexus): only their event id dedups them. */
static void test_no_digest(void)
{
    struct pushq *q = pushq_new(100, 1000, 10);
    struct push a = mk("hub-1", "team/app", "latest", 'a');
    a.digest[0] = '\0';
    CHECK(pushq_offer(q, &a) == PUSHQ_ACCEPTED, "digest-less push accepted");
    CHECK(pushq_offer(q, &a) == PUSHQ_DUPLICATE, "its re-delivery (same id) is a duplicate");
    struct push b = a;
    snprintf(b.event_id, sizeof b.event_id, "hub-2");
    CHECK(pushq_offer(q, &b) == PUSHQ_ACCEPTED, "a new push of the tag is never dropped");
    struct push c = a;
    c.event_id[0] = '\0';
    CHECK(pushq_offer(q, &c) == PUSHQ_ACCEPTED && pushq_offer(q, &c) == PUSHQ_ACCEPTED,
          "without id nor digest nothing tells two pushes apart: both kept");
    /* A digest seen before the digest-less push is new again after it: the tag moved. */
    struct push d1 = mk("r-1", "team/web", "v1", 'd');
    CHECK(pushq_offer(q, &d1) == PUSHQ_ACCEPTED, "web:v1 @d");
    struct push nod = mk("hub-3", "team/web", "v1", 'x');
    nod.digest[0] = '\0';
    CHECK(pushq_offer(q, &nod) == PUSHQ_ACCEPTED, "web:v1 without digest");
    struct push d2 = mk("r-2", "team/web", "v1", 'd');
    CHECK(pushq_offer(q, &d2) == PUSHQ_ACCEPTED, "web:v1 @d again after an unknown push: new");
    struct push d3 = mk("harbor-x", "team/web", "v1", 'd');
    CHECK(pushq_offer(q, &d3) == PUSHQ_DUPLICATE,
          "the same image through a second path (another id, same digest): once");
    pushq_free(q);
}

int main(void)
{
    test_duplicates();
    test_no_digest();
    test_full();
    test_bounded_memory();
    test_pause_and_close();
    return TEST_DONE("test_queue");
}
