/*
 * follow.c: the event-stream follower (see follow.h).
 *
 * Watches and recently finished deployments live in small fixed tables under one mutex; a
 * condition variable wakes waiters whenever anything is settled, and wakes the stream thread
 * from its reconnection back-off when the follower stops. The stream thread only parses and
 * records: it never calls back into the deployer.
 */
#include "follow.h"

#include "log.h"
#include "metrics.h"
#include "sse.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WATCHES 256
#define MAX_FINISHED 256

struct watch {
    int id; /* 0: free slot */
    char deployment_id[128];
    char app_id[256];
    enum follow_outcome outcome;
    char reason[512];
    char task_message[512];
};

struct finished {
    char deployment_id[128];
    enum follow_outcome outcome;
    char reason[512];
};

struct follower {
    struct marathon *m;
    pthread_t thread;
    int started;
    atomic_int stop; /* set once by follower_free; also read by libcurl's progress callback */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int connected;
    unsigned generation;
    int interrupted;
    int next_id;
    struct watch watches[MAX_WATCHES];
    struct finished finished[MAX_FINISHED];
    int finished_next;
    struct sse_parser sse;
};

int64_t follower_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct follower *follower_new(struct marathon *m)
{
    struct follower *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->m = m;
    atomic_init(&f->stop, 0);
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    sse_init(&f->sse, 1024 * 1024);
    metrics_declare("autodeploy_event_stream_connected", "gauge",
                    "1 while the Marathon event stream is attached.");
    metrics_set("autodeploy_event_stream_connected", NULL, NULL, 0);
    return f;
}

/* The absolute CLOCK_MONOTONIC time of ms (a follower_now_ms value), for timed waits. */
static struct timespec mono_timespec(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    return ts;
}

static struct watch *find_watch(struct follower *f, int id)
{
    for (int i = 0; i < MAX_WATCHES; i++)
        if (f->watches[i].id == id && id > 0) return &f->watches[i];
    return NULL;
}

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* Records an outcome for deployment id; called with mu held. */
static void settle_locked(struct follower *f, const char *dep_id, enum follow_outcome o,
                          const char *reason)
{
    int found = 0;
    for (int i = 0; i < MAX_WATCHES; i++) {
        struct watch *w = &f->watches[i];
        if (w->id && w->outcome == FOLLOW_PENDING && !strcmp(w->deployment_id, dep_id)) {
            w->outcome = o;
            copy(w->reason, sizeof w->reason, reason);
            found = 1;
        }
    }
    if (!found) {
        struct finished *fin = &f->finished[f->finished_next];
        f->finished_next = (f->finished_next + 1) % MAX_FINISHED;
        copy(fin->deployment_id, sizeof fin->deployment_id, dep_id);
        fin->outcome = o;
        copy(fin->reason, sizeof fin->reason, reason);
    }
    pthread_cond_broadcast(&f->cv);
}

static int is_failed_task_state(const char *s)
{
    static const char *const bad[] = {"TASK_FAILED",  "TASK_ERROR", "TASK_LOST",
                                      "TASK_DROPPED", "TASK_GONE",  "TASK_UNREACHABLE"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!strcmp(s, bad[i])) return 1;
    return 0;
}

void follower_handle_event(struct follower *f, const char *type, const char *data, size_t len)
{
    int success = !strcmp(type, "deployment_success");
    int failed = !strcmp(type, "deployment_failed");
    int status = !strcmp(type, "status_update_event");
    int attached = !strcmp(type, "event_stream_attached");
    if (attached) {
        pthread_mutex_lock(&f->mu);
        f->connected = 1;
        f->generation++;
        pthread_mutex_unlock(&f->mu);
        metrics_set("autodeploy_event_stream_connected", NULL, NULL, 1);
        log_info("Marathon event stream attached", NULL);
        return;
    }
    if (!success && !failed && !status) return;
    cJSON *j = cJSON_ParseWithLength(data, len);
    if (!j) {
        log_warn("unparseable Marathon event", "event", type, NULL);
        return;
    }
    pthread_mutex_lock(&f->mu);
    if (success || failed) {
        /* The id is top-level in deployment_success/failed; plan.id is the same plan. */
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (!cJSON_IsString(id)) {
            const cJSON *plan = cJSON_GetObjectItemCaseSensitive(j, "plan");
            id = cJSON_GetObjectItemCaseSensitive(plan, "id");
        }
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(j, "reason");
        if (cJSON_IsString(id))
            settle_locked(f, id->valuestring, success ? FOLLOW_SUCCEEDED : FOLLOW_FAILED,
                          cJSON_IsString(reason) ? reason->valuestring : NULL);
    } else {
        const cJSON *app = cJSON_GetObjectItemCaseSensitive(j, "appId");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "taskStatus");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
        if (cJSON_IsString(app) && cJSON_IsString(st) && is_failed_task_state(st->valuestring)) {
            for (int i = 0; i < MAX_WATCHES; i++) {
                struct watch *w = &f->watches[i];
                if (!w->id || strcmp(w->app_id, app->valuestring) != 0) continue;
                snprintf(w->task_message, sizeof w->task_message, "%s: %s", st->valuestring,
                         cJSON_IsString(msg) && *msg->valuestring ? msg->valuestring
                                                                  : "(no message)");
            }
        }
    }
    pthread_mutex_unlock(&f->mu);
    cJSON_Delete(j);
}

static void on_sse(const char *event, const char *data, size_t len, void *ctx)
{
    follower_handle_event(ctx, event, data, len);
}

static void on_bytes(const char *p, size_t n, void *ctx)
{
    struct follower *f = ctx;
    sse_feed(&f->sse, p, n, on_sse, f);
}

static void set_disconnected(struct follower *f)
{
    pthread_mutex_lock(&f->mu);
    int was = f->connected;
    f->connected = 0;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    metrics_set("autodeploy_event_stream_connected", NULL, NULL, 0);
    if (was) log_warn("Marathon event stream lost; polling deployments until it is back", NULL);
}

/* Sleeps up to ms, waking at once when follower_free sets stop (it broadcasts under mu). */
static void nap(struct follower *f, long ms)
{
    int64_t until = follower_now_ms() + ms;
    struct timespec ts = mono_timespec(until);
    pthread_mutex_lock(&f->mu);
    while (!atomic_load(&f->stop) && follower_now_ms() < until)
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    pthread_mutex_unlock(&f->mu);
}

static void *stream_main(void *arg)
{
    struct follower *f = arg;
    long backoff = 500;
    while (!atomic_load(&f->stop)) {
        struct httpc_resp resp;
        sse_reset(&f->sse);
        int64_t began = follower_now_ms();
        marathon_stream(f->m,
                        "/v2/events?event_type=event_stream_attached&event_type=deployment_success"
                        "&event_type=deployment_failed&event_type=status_update_event",
                        on_bytes, f, &f->stop, &resp);
        if (!atomic_load(&f->stop)) {
            char why[300];
            if (resp.status >= 300)
                marathon_error_text(&resp, why, sizeof why);
            else
                snprintf(why, sizeof why, "%s", resp.err[0] ? resp.err : "stream ended");
            log_warn("Marathon event stream closed", "error", why, NULL);
        }
        httpc_resp_free(&resp);
        set_disconnected(f);
        if (follower_now_ms() - began > 30000) backoff = 500; /* it had been up a while */
        nap(f, backoff);
        backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
    }
    return NULL;
}

int follower_start(struct follower *f)
{
    if (pthread_create(&f->thread, NULL, stream_main, f) != 0) return -1;
    f->started = 1;
    return 0;
}

void follower_free(struct follower *f)
{
    if (!f) return;
    /* Set before the broadcast, which is under mu: a thread that found stop clear under mu is
     * already waiting when the broadcast comes, so no wake-up is lost. */
    atomic_store(&f->stop, 1);
    pthread_mutex_lock(&f->mu);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->started) pthread_join(f->thread, NULL);
    sse_free(&f->sse);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

unsigned follower_generation(struct follower *f)
{
    pthread_mutex_lock(&f->mu);
    unsigned g = f->generation;
    pthread_mutex_unlock(&f->mu);
    return g;
}

void follower_interrupt(struct follower *f)
{
    pthread_mutex_lock(&f->mu);
    f->interrupted = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

int follower_connected(struct follower *f)
{
    pthread_mutex_lock(&f->mu);
    int c = f->connected;
    pthread_mutex_unlock(&f->mu);
    return c;
}

int follower_watch(struct follower *f, const char *deployment_id, const char *app_id)
{
    pthread_mutex_lock(&f->mu);
    int id = -1;
    for (int i = 0; i < MAX_WATCHES; i++) {
        struct watch *w = &f->watches[i];
        if (w->id) continue;
        memset(w, 0, sizeof *w);
        w->id = id = ++f->next_id;
        copy(w->deployment_id, sizeof w->deployment_id, deployment_id);
        copy(w->app_id, sizeof w->app_id, app_id);
        /* It may have ended already. */
        for (int k = 0; k < MAX_FINISHED; k++) {
            struct finished *fin = &f->finished[k];
            if (fin->deployment_id[0] && !strcmp(fin->deployment_id, deployment_id)) {
                w->outcome = fin->outcome;
                copy(w->reason, sizeof w->reason, fin->reason);
                fin->deployment_id[0] = '\0';
            }
        }
        break;
    }
    pthread_mutex_unlock(&f->mu);
    return id;
}

enum follow_outcome follower_wait(struct follower *f, int id, int64_t deadline_ms, long max_wait_ms,
                                  char *reason, size_t reason_len, char *task_message,
                                  size_t task_len)
{
    int64_t until = follower_now_ms() + max_wait_ms;
    if (until > deadline_ms) until = deadline_ms;
    pthread_mutex_lock(&f->mu);
    struct watch *w = find_watch(f, id);
    struct timespec ts = mono_timespec(until);
    while (w && w->outcome == FOLLOW_PENDING && !atomic_load(&f->stop) && !f->interrupted &&
           follower_now_ms() < until)
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    enum follow_outcome o = w ? w->outcome : FOLLOW_PENDING;
    if (w) {
        copy(reason, reason_len, w->reason);
        copy(task_message, task_len, w->task_message);
    }
    pthread_mutex_unlock(&f->mu);
    return o;
}

void follower_settle(struct follower *f, int id, enum follow_outcome o, const char *reason)
{
    pthread_mutex_lock(&f->mu);
    struct watch *w = find_watch(f, id);
    if (w && w->outcome == FOLLOW_PENDING) {
        w->outcome = o;
        copy(w->reason, sizeof w->reason, reason);
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
}

void follower_unwatch(struct follower *f, int id)
{
    pthread_mutex_lock(&f->mu);
    struct watch *w = find_watch(f, id);
    if (w) w->id = 0;
    pthread_mutex_unlock(&f->mu);
}
