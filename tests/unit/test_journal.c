/*
 * test_journal.c: the state file keeps accepted pushes until their work ends, across restarts;
 * the queue refuses a push the file cannot record.
 */
#include "journal.h"
#include "queue.h"
#include "testlib.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char path[128];

static struct push mk(const char *tag, char dch)
{
    struct push p;
    memset(&p, 0, sizeof p);
    snprintf(p.event_id, sizeof p.event_id, "ev-%s", tag);
    snprintf(p.timestamp, sizeof p.timestamp, "2026-11-25T10:00:00Z");
    p.timestamp_ns = 1795600800000000000LL;
    snprintf(p.host, sizeof p.host, "registry.example.com:5000");
    snprintf(p.repository, sizeof p.repository, "strava/foo-service");
    snprintf(p.tag, sizeof p.tag, "%s", tag);
    snprintf(p.digest, sizeof p.digest, "sha256:");
    memset(p.digest + 7, dch, 64);
    p.digest[71] = '\0';
    snprintf(p.media_type, sizeof p.media_type, "application/vnd.oci.image.manifest.v1+json");
    snprintf(p.pusher, sizeof p.pusher, "alice \"the\" <pusher>");
    return p;
}

static struct journal *reopen(struct push **pending, size_t *n, int *paused)
{
    char err[256] = "";
    struct journal *j = journal_open(path, pending, n, paused, err, sizeof err);
    CHECK(j != NULL, "journal_open: %s", err);
    return j;
}

/* Appends n bytes to the state file as they are (NUL bytes included). */
static void append_bytes(const char *p, size_t n)
{
    FILE *f = fopen(path, "ab");
    fwrite(p, 1, n, f);
    fclose(f);
}

static void append_raw(const char *text)
{
    append_bytes(text, strlen(text));
}

static long file_size(void)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void test_pending_survive_and_done_do_not(void)
{
    unlink(path);
    struct push *pending;
    size_t n;
    int paused;
    struct journal *j = reopen(&pending, &n, &paused);
    CHECK(n == 0 && !paused && pending == NULL, "a new file has nothing pending");
    struct push a = mk("master-1", 'a'), b = mk("master-2", 'b'), c = mk("master-3", 'c');
    CHECK(journal_add(j, &a) == 0 && journal_add(j, &b) == 0 && journal_add(j, &c) == 0,
          "three pushes recorded");
    CHECK(a.jid && b.jid > a.jid && c.jid > b.jid, "increasing ids");
    unsigned long long bid = b.jid;
    CHECK(journal_add(j, &b) == 0 && b.jid == bid, "a push with an id is not recorded again");
    /* a: matched nothing (its own reference released). b: two jobs, one ended. c: untouched. */
    journal_release(j, a.jid);
    journal_hold(j, b.jid);
    journal_hold(j, b.jid);
    journal_release(j, b.jid); /* the dispatcher's own reference */
    journal_release(j, b.jid); /* first job */
    CHECK(journal_pending(j) == 2, "b (one job left) and c pending (got %zu)", journal_pending(j));
    journal_release(j, 9999); /* unknown: ignored */
    journal_close(j);         /* a crash or a stop: the same to the file */

    j = reopen(&pending, &n, &paused);
    CHECK(n == 2, "two pushes come back (got %zu)", n);
    if (n == 2) {
        CHECK_STR(pending[0].tag, "master-2", "in their order");
        CHECK_STR(pending[1].tag, "master-3");
        CHECK(pending[0].jid == bid, "with their ids");
        CHECK(!memcmp(pending[0].digest, b.digest, sizeof b.digest), "digest kept");
        CHECK_STR(pending[0].pusher, "alice \"the\" <pusher>", "pusher kept, escaped and back");
        CHECK_STR(pending[0].host, "registry.example.com:5000");
        CHECK_STR(pending[0].event_id, "ev-master-2");
        CHECK_STR(pending[0].timestamp, "2026-11-25T10:00:00Z");
        CHECK(pending[0].timestamp_ns == b.timestamp_ns, "event time kept");
        CHECK(pending[0].seq == 0, "the queue gives a new seq");
        CHECK(pending[0].replayed && pending[1].replayed, "marked as replayed");
    }
    /* A replayed push keeps its id; a new one continues after the highest. */
    struct push d = mk("master-4", 'd');
    CHECK(journal_add(j, &d) == 0 && d.jid > c.jid, "ids continue after a restart");
    CHECK(journal_add(j, &pending[0]) == 0 && pending[0].jid == bid, "replay keeps its id");
    journal_release(j, pending[0].jid);
    journal_release(j, pending[1].jid);
    journal_release(j, d.jid);
    CHECK(journal_pending(j) == 0, "all done");
    free(pending);
    journal_close(j);
    j = reopen(&pending, &n, &paused);
    CHECK(n == 0, "nothing comes back once done (got %zu)", n);
    CHECK(file_size() == 0, "compacted at start: empty file (size %ld)", file_size());
    free(pending);
    journal_close(j);
}

static void test_pause_is_restored(void)
{
    unlink(path);
    struct push *pending;
    size_t n;
    int paused;
    struct journal *j = reopen(&pending, &n, &paused);
    journal_set_paused(j, 1);
    journal_close(j);
    j = reopen(&pending, &n, &paused);
    CHECK(paused == 1, "paused survives a restart");
    journal_close(j);
    j = reopen(&pending, &n, &paused);
    CHECK(paused == 1, "and a second one (kept by the compaction)");
    journal_set_paused(j, 0);
    journal_close(j);
    j = reopen(&pending, &n, &paused);
    CHECK(paused == 0, "resumed survives a restart");
    journal_close(j);
}

static void test_torn_and_bad_lines_are_skipped(void)
{
    unlink(path);
    struct push *pending;
    size_t n;
    int paused;
    struct journal *j = reopen(&pending, &n, &paused);
    struct push a = mk("master-1", 'a');
    journal_add(j, &a);
    journal_close(j);
    append_raw("not json\n");
    append_raw("{\"id\":7,\"push\":{\"event_id\":\"x\",\"timestamp\":\"\",\"timestamp_ns\":0,"
               "\"host\":\"\",\"repository\":\"UPPER/case\",\"tag\":\"t\",\"digest\":\"sha256:1\","
               "\"media_type\":\"\",\"pusher\":\"\"}}\n"); /* fails the reference grammar */
    append_raw("{\"done\":424242}\n");                     /* unknown id: ignored */
    append_raw("{\"id\":8,\"push\":{\"event_id\":\"ev-master-2\",\"tim"); /* cut by a crash */
    j = reopen(&pending, &n, &paused);
    CHECK(n == 1, "the good push survives the bad lines (got %zu)", n);
    if (n == 1) CHECK_STR(pending[0].tag, "master-1");
    CHECK(file_size() > 0 && file_size() < 400, "the bad lines are gone from the file (%ld)",
          file_size());
    struct push c = mk("master-3", 'c');
    CHECK(n == 1 && journal_add(j, &c) == 0 && c.jid > pending[0].jid, "a new id (%llu)", c.jid);
    free(pending);
    journal_close(j);
    j = reopen(&pending, &n, &paused);
    CHECK(n == 2, "nothing glued to the torn line: both pushes back (got %zu)", n);
    free(pending);
    journal_close(j);
}

static void test_compaction_when_idle(void)
{
    unlink(path);
    struct push *pending;
    size_t n;
    int paused;
    struct journal *j = reopen(&pending, &n, &paused);
    journal_set_paused(j, 1);
    for (int i = 0; i < 3000; i++) { /* ~1.2 MiB of lines */
        char tag[32];
        snprintf(tag, sizeof tag, "build-%d", i);
        struct push p = mk(tag, 'a' + (char)(i % 6));
        journal_add(j, &p);
        journal_release(j, p.jid);
    }
    CHECK(file_size() < 1024 * 1024, "truncated once nothing is pending (size %ld)", file_size());
    journal_close(j);
    j = reopen(&pending, &n, &paused);
    CHECK(n == 0 && paused == 1, "pause kept through the truncation");
    journal_close(j);
}

/* Approvals: the last line per id wins across a restart and through compaction, and an
 * approved push carries its approval id. */
static void test_approvals_survive(void)
{
    unlink(path);
    struct push *pending;
    size_t n;
    int paused;
    struct journal *j = reopen(&pending, &n, &paused);
    CHECK(journal_put_approval(j, "aaaa", "{\"id\":\"aaaa\",\"state\":\"pending\"}", 1) == 0,
          "an approval is written");
    journal_put_approval(j, "bbbb", "{\"id\":\"bbbb\",\"state\":\"pending\"}", 1);
    journal_put_approval(j, "aaaa", "{\"id\":\"aaaa\",\"state\":\"approved\",\"by\":\"x\"}", 1);
    struct push p = mk("approved-1", 'c');
    snprintf(p.approval, sizeof p.approval, "aaaa");
    journal_add(j, &p);
    journal_close(j);
    append_raw("{\"approval\":{\"id\":\"dddd\",\"state\":\"pending\",\"by\":\"a\\u0000b\"}}\n");
    append_raw("{\"approval\":{\"id\":\"cccc\",\"state\":\"pend"); /* torn by a crash */
    j = reopen(&pending, &n, &paused);
    char **lines;
    size_t k = journal_approvals(j, &lines);
    CHECK(k == 2, "two approvals, the torn one and the one with a NUL skipped (got %zu)", k);
    CHECK(k == 2 && !strcmp(lines[0], "{\"id\":\"bbbb\",\"state\":\"pending\"}") &&
              !strcmp(lines[1], "{\"id\":\"aaaa\",\"state\":\"approved\",\"by\":\"x\"}"),
          "the latest line of each, oldest first: %s / %s", k ? lines[0] : "-",
          k > 1 ? lines[1] : "-");
    for (size_t i = 0; i < k; i++)
        free(lines[i]);
    free(lines);
    CHECK(n == 1 && !strcmp(pending[0].approval, "aaaa"), "the approved push keeps its approval");
    free(pending);
    journal_close(j);
    /* Reopened again: the compaction at open kept them. */
    j = reopen(&pending, &n, &paused);
    k = journal_approvals(j, &lines);
    CHECK(k == 2, "kept through the compaction at open (got %zu)", k);
    for (size_t i = 0; i < k; i++)
        free(lines[i]);
    free(lines);
    free(pending);
    journal_close(j);
}

static int fail_hook(struct push *p, void *ctx)
{
    (void)p;
    (void)ctx;
    return -1;
}

static int add_hook(struct push *p, void *ctx)
{
    return journal_add(ctx, p);
}

static void test_queue_hooks(void)
{
    unlink(path);
    struct push *pending;
    size_t n;
    int paused;
    struct journal *j = reopen(&pending, &n, &paused);
    struct pushq *q = pushq_new(10, 100, 10);
    struct pushq_hooks h = {fail_hook, NULL, NULL};
    pushq_set_hooks(q, &h);
    struct push a = mk("master-1", 'a');
    CHECK(pushq_offer(q, &a) == PUSHQ_UNSAVED, "a push the hook refuses is not accepted");
    CHECK(pushq_depth(q) == 0, "nor queued");
    h.accepted = add_hook;
    h.ctx = j;
    pushq_set_hooks(q, &h);
    CHECK(pushq_offer(q, &a) == PUSHQ_ACCEPTED, "nor remembered: its retry is accepted");
    struct push got;
    CHECK(pushq_take_nowait(q, &got) == 0 && got.jid != 0 && got.seq == 1,
          "the queued copy carries its journal id and the first seq");
    CHECK(journal_pending(j) == 1, "recorded");
    pushq_free(q);
    journal_close(j);
}

static void test_unwritable_path(void)
{
    struct push *pending;
    size_t n;
    int paused;
    char err[256] = "";
    struct journal *j =
        journal_open("/nonexistent-dir/state", &pending, &n, &paused, err, sizeof err);
    CHECK(j == NULL, "a path that cannot be written is refused at start");
    CHECK(strstr(err, "/nonexistent-dir/state") != NULL, "naming the path: %s", err);
    j = journal_open("/dev/null", &pending, &n, &paused, err, sizeof err);
    CHECK(j == NULL && strstr(err, "not a regular file"), "a device is refused: %s", err);
    struct stat st;
    CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode), "and left as it was");
}

static void test_symlink_is_kept(void)
{
    unlink(path);
    char target[160], link_path[160];
    snprintf(target, sizeof target, "%s/real-state", dir);
    snprintf(link_path, sizeof link_path, "%s/link", dir);
    FILE *f = fopen(target, "w");
    fclose(f);
    CHECK(symlink(target, link_path) == 0, "symlink made");
    struct push *pending;
    size_t n;
    int paused;
    char err[256] = "";
    struct journal *j = journal_open(link_path, &pending, &n, &paused, err, sizeof err);
    CHECK(j != NULL, "opened through a link: %s", err);
    struct push a = mk("master-1", 'a');
    journal_add(j, &a);
    journal_close(j);
    struct stat st;
    CHECK(lstat(link_path, &st) == 0 && S_ISLNK(st.st_mode), "the link is still a link");
    j = journal_open(link_path, &pending, &n, &paused, err, sizeof err);
    CHECK(j != NULL && n == 1, "and the push is found through it");
    free(pending);
    journal_close(j);
    unlink(link_path);
    unlink(target);
}

/* A push without a digest (a Docker Hub or Quay webhook) survives a restart as one; a bad
 * digest still fails the grammar. */
static void test_push_without_digest(void)
{
    unlink(path);
    struct push *pending;
    size_t n;
    int paused;
    struct journal *j = reopen(&pending, &n, &paused);
    struct push a = mk("latest", 'a');
    a.digest[0] = '\0';
    snprintf(a.source, sizeof a.source, "dockerhub");
    CHECK(journal_add(j, &a) == 0, "digest-less push recorded");
    journal_close(j);
    append_raw("{\"id\":9,\"push\":{\"event_id\":\"x\",\"timestamp\":\"\",\"timestamp_ns\":0,"
               "\"host\":\"\",\"repository\":\"a/b\",\"tag\":\"t\",\"digest\":\"sha256:1\","
               "\"media_type\":\"\",\"pusher\":\"\"}}\n");
    j = reopen(&pending, &n, &paused);
    CHECK(n == 1, "the digest-less push is back, the bad digest is not (got %zu)", n);
    if (n == 1) {
        CHECK(pending[0].digest[0] == '\0', "still without a digest");
        CHECK_STR(pending[0].source, "dockerhub");
    }
    free(pending);
    journal_close(j);
}

/* A NUL byte inside a value (a disk handing back garbage): the line is refused, never read as
 * a shorter value (a digest cut to "" would read as a push without a digest). */
static void test_nul_bytes_refuse_the_line(void)
{
    unlink(path);
    struct push *pending;
    size_t n;
    int paused;
    struct journal *j = reopen(&pending, &n, &paused);
    journal_close(j);
    free(pending);
    static const char raw[] =
        "{\"id\":3,\"push\":{\"event_id\":\"e\",\"timestamp\":\"\",\"timestamp_ns\":1,\"host\":"
        "\"\",\"repository\":\"strava/foo\",\"tag\":\"master-1\",\"digest\":\"\0\0a256:0a8f\","
        "\"media_type\":\"\",\"pusher\":\"alice\"}}\n";
    append_bytes(raw, sizeof raw - 1);
    append_raw("{\"id\":4,\"push\":{\"event_id\":\"e\",\"timestamp\":\"\",\"timestamp_ns\":1,"
               "\"host\":\"\",\"repository\":\"strava/foo\",\"tag\":\"master-2\",\"digest\":"
               "\"\\u0000x\",\"media_type\":\"\",\"pusher\":\"alice\"}}\n");
    j = reopen(&pending, &n, &paused);
    CHECK(n == 0, "lines with NUL bytes are refused (got %zu pushes)", n);
    free(pending);
    journal_close(j);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/autodeploy-journal-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/state", dir);
    test_pending_survive_and_done_do_not();
    test_pause_is_restored();
    test_torn_and_bad_lines_are_skipped();
    test_compaction_when_idle();
    test_queue_hooks();
    test_approvals_survive();
    test_unwritable_path();
    test_symlink_is_kept();
    test_push_without_digest();
    test_nul_bytes_refuse_the_line();
    unlink(path);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    rmdir(dir);
    return TEST_DONE("test_journal");
}
