/*
 * queue.c: bounded FIFO of pushes plus the duplicate memory (see queue.h).
 *
 * Duplicate memory is two fixed-size hash maps of 64-bit keyed hashes (open addressing with
 * linear probing and backward-shift deletion) with a FIFO ring that decides what to forget.
 * Hashes are seeded at start-up so that nobody can precompute colliding event ids.
 */
#include "queue.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A bounded map from 64-bit key hashes to 64-bit values; key 0 marks an empty slot. */
struct hmap {
    uint64_t *keys;
    uint64_t *vals;
    size_t mask;     /* slots - 1; slots is a power of two, at least twice the capacity */
    uint64_t *order; /* FIFO of inserted keys, for eviction */
    size_t cap, head, count;
};

static int hmap_init(struct hmap *m, size_t cap)
{
    size_t slots = 16;
    while (slots < cap * 2)
        slots *= 2;
    m->keys = calloc(slots, sizeof *m->keys);
    m->vals = calloc(slots, sizeof *m->vals);
    m->order = calloc(cap ? cap : 1, sizeof *m->order);
    m->mask = slots - 1;
    m->cap = cap ? cap : 1;
    m->head = m->count = 0;
    return (m->keys && m->vals && m->order) ? 0 : -1;
}

static void hmap_free(struct hmap *m)
{
    free(m->keys);
    free(m->vals);
    free(m->order);
}

static size_t hmap_find(const struct hmap *m, uint64_t k)
{
    size_t i = (size_t)k & m->mask;
    while (m->keys[i] && m->keys[i] != k)
        i = (i + 1) & m->mask;
    return i;
}

static void hmap_delete(struct hmap *m, uint64_t k)
{
    size_t i = hmap_find(m, k);
    if (!m->keys[i]) return;
    m->keys[i] = 0;
    /* Backward-shift: move later entries of the probe run into the hole they may depend on. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (!m->keys[j]) break;
        size_t home = (size_t)m->keys[j] & m->mask;
        int movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->keys[j] = 0;
            i = j;
        }
    }
}

/* Returns 1 and the value when k is present. */
static int hmap_get(const struct hmap *m, uint64_t k, uint64_t *v)
{
    size_t i = hmap_find(m, k);
    if (!m->keys[i]) return 0;
    if (v) *v = m->vals[i];
    return 1;
}

static void hmap_put(struct hmap *m, uint64_t k, uint64_t v)
{
    size_t i = hmap_find(m, k);
    if (m->keys[i]) {
        m->vals[i] = v;
        return;
    }
    if (m->count == m->cap) { /* forget the oldest key */
        hmap_delete(m, m->order[m->head]);
        m->head = (m->head + 1) % m->cap;
        m->count--;
        i = hmap_find(m, k);
    }
    m->keys[i] = k;
    m->vals[i] = v;
    m->order[(m->head + m->count) % m->cap] = k;
    m->count++;
}

struct recent {
    struct push p;
    int64_t received_ns;
    char state[32];
};

struct pushq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct push *ring;
    size_t cap, head, len;
    int closed, paused;
    struct hmap ids;  /* event id -> 1 */
    struct hmap tags; /* repository:tag -> digest */
    struct recent *recent;
    size_t recent_cap, recent_len;
    uint64_t seed;
    unsigned long long next_seq;
    int locks_ready;
    struct pushq_hooks hooks;
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_str(uint64_t seed, const char *a, const char *b)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    if (b) {
        h = (h ^ 0xff) * 0x100000001b3ULL; /* separator no string byte can be */
        for (const unsigned char *p = (const unsigned char *)b; *p; p++)
            h = (h ^ *p) * 0x100000001b3ULL;
    }
    h = mix64(h);
    return h ? h : 1;
}

static uint64_t make_seed(void)
{
    uint64_t s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&s, sizeof s, 1, f) != 1) s = 0;
        fclose(f);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return s ^ mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32));
}

struct pushq *pushq_new(size_t capacity, size_t dedup, size_t recent)
{
    struct pushq *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->cap = capacity ? capacity : 1;
    q->recent_cap = recent ? recent : 1;
    q->ring = calloc(q->cap, sizeof *q->ring);
    q->recent = calloc(q->recent_cap, sizeof *q->recent);
    if (!q->ring || !q->recent || hmap_init(&q->ids, dedup) < 0 || hmap_init(&q->tags, dedup) < 0) {
        pushq_free(q);
        return NULL;
    }
    q->seed = make_seed();
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->locks_ready = 1;
    return q;
}

void pushq_free(struct pushq *q)
{
    if (!q) return;
    if (q->locks_ready) {
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
    }
    free(q->ring);
    free(q->recent);
    hmap_free(&q->ids);
    hmap_free(&q->tags);
    free(q);
}

void pushq_set_hooks(struct pushq *q, const struct pushq_hooks *h)
{
    q->hooks = *h;
}

enum pushq_result pushq_offer(struct pushq *q, const struct push *p)
{
    uint64_t idk = p->event_id[0] ? hash_str(q->seed, "id", p->event_id) : 0;
    uint64_t tagk = hash_str(q->seed, p->repository, p->tag);
    uint64_t dig = hash_str(q->seed, p->digest, NULL);
    uint64_t seen;
    enum pushq_result r;
    /* A push without a digest (Docker Hub, Quay, Nexus) cannot be told from the tag's previous
     * push by its content: only its event id makes it a duplicate. */
    int has_digest = p->digest[0] != '\0';

    pthread_mutex_lock(&q->mu);
    if ((idk && hmap_get(&q->ids, idk, NULL)) ||
        (has_digest && hmap_get(&q->tags, tagk, &seen) && seen == dig)) {
        r = PUSHQ_DUPLICATE;
        if (idk) hmap_put(&q->ids, idk, 1);
        goto out;
    }
    if (q->len == q->cap) {
        r = PUSHQ_FULL;
        goto out;
    }
    struct push *slot = &q->ring[(q->head + q->len) % q->cap];
    *slot = *p;
    slot->seq = q->next_seq + 1;
    if (q->hooks.accepted && q->hooks.accepted(slot, q->hooks.ctx) < 0) {
        r = PUSHQ_UNSAVED;
        goto out;
    }
    q->next_seq++;
    q->len++;
    if (idk) hmap_put(&q->ids, idk, 1);
    /* Without a digest the tag moved to something unknown: 0, which no digest hashes to,
     * makes the next push of the tag new whatever its digest. */
    hmap_put(&q->tags, tagk, has_digest ? dig : 0);

    struct recent *rc = &q->recent[(slot->seq - 1) % q->recent_cap];
    rc->p = *slot;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rc->received_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    snprintf(rc->state, sizeof rc->state, "queued");
    if (q->recent_len < q->recent_cap) q->recent_len++;
    r = PUSHQ_ACCEPTED;
    /* The one consumer only waits on an empty queue: wake it on the first push only. */
    if (q->len == 1) pthread_cond_signal(&q->cv);
out:
    pthread_mutex_unlock(&q->mu);
    return r;
}

enum pushq_result pushq_remember(struct pushq *q, struct push *p, const char *state)
{
    uint64_t tagk = hash_str(q->seed, p->repository, p->tag);
    uint64_t dig = hash_str(q->seed, p->digest, NULL);
    uint64_t seen;
    enum pushq_result r = PUSHQ_DUPLICATE;
    pthread_mutex_lock(&q->mu);
    if (!(hmap_get(&q->tags, tagk, &seen) && seen == dig)) {
        hmap_put(&q->tags, tagk, dig);
        p->seq = ++q->next_seq;
        struct recent *rc = &q->recent[(p->seq - 1) % q->recent_cap];
        rc->p = *p;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rc->received_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        snprintf(rc->state, sizeof rc->state, "%s", state);
        if (q->recent_len < q->recent_cap) q->recent_len++;
        r = PUSHQ_ACCEPTED;
    }
    pthread_mutex_unlock(&q->mu);
    return r;
}

int pushq_take(struct pushq *q, struct push *out)
{
    pthread_mutex_lock(&q->mu);
    while (!q->closed && (q->paused || q->len == 0))
        pthread_cond_wait(&q->cv, &q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    *out = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    pthread_mutex_unlock(&q->mu);
    return 0;
}

int pushq_take_nowait(struct pushq *q, struct push *out)
{
    pthread_mutex_lock(&q->mu);
    int rc = -1;
    if (q->len) {
        *out = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        rc = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void pushq_close(struct pushq *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void pushq_set_paused(struct pushq *q, int paused)
{
    pthread_mutex_lock(&q->mu);
    if (q->hooks.paused && q->paused != (paused ? 1 : 0))
        q->hooks.paused(paused ? 1 : 0, q->hooks.ctx);
    q->paused = paused ? 1 : 0;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

int pushq_paused(struct pushq *q)
{
    pthread_mutex_lock(&q->mu);
    int p = q->paused;
    pthread_mutex_unlock(&q->mu);
    return p;
}

size_t pushq_depth(struct pushq *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void pushq_set_state(struct pushq *q, const struct push *p, const char *state)
{
    if (!p->seq) return;
    pthread_mutex_lock(&q->mu);
    /* The record of push number seq is at a fixed place, unless newer ones replaced it. */
    struct recent *r = &q->recent[(p->seq - 1) % q->recent_cap];
    if (r->p.seq == p->seq) snprintf(r->state, sizeof r->state, "%s", state);
    pthread_mutex_unlock(&q->mu);
}

static void add_field(struct buf *b, const char *k, const char *v, int comma)
{
    if (comma) buf_add(b, ",", 1);
    buf_add_json_string(b, k);
    buf_add(b, ":", 1);
    buf_add_json_string(b, v && *v ? v : NULL);
}

int pushq_recent_json(struct pushq *q, struct buf *b)
{
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    rc |= buf_adds(b, "{\"pushes\":[");
    for (size_t i = 0; i < q->recent_len; i++) {
        /* Push number next_seq - i sits at (next_seq - i - 1) % cap: newest first. */
        size_t k = (size_t)((q->next_seq - 1 - i) % q->recent_cap);
        const struct recent *r = &q->recent[k];
        char when[40];
        time_t sec = (time_t)(r->received_ns / 1000000000LL);
        struct tm tm;
        gmtime_r(&sec, &tm);
        size_t tl = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + tl, sizeof when - tl, ".%03dZ", (int)(r->received_ns / 1000000 % 1000));
        rc |= buf_adds(b, i ? ",{" : "{");
        add_field(b, "event_id", r->p.event_id, 0);
        add_field(b, "received_at", when, 1);
        add_field(b, "timestamp", r->p.timestamp, 1);
        add_field(b, "registry", r->p.host, 1);
        add_field(b, "repository", r->p.repository, 1);
        add_field(b, "tag", r->p.tag, 1);
        add_field(b, "digest", r->p.digest, 1);
        add_field(b, "media_type", r->p.media_type, 1);
        add_field(b, "pusher", r->p.pusher, 1);
        add_field(b, "source", r->p.source[0] ? r->p.source : "registry", 1);
        add_field(b, "state", r->state, 1);
        if (r->p.replayed) rc |= buf_adds(b, ",\"replayed\":true");
        rc |= buf_adds(b, "}");
    }
    rc |= buf_adds(b, "]}");
    pthread_mutex_unlock(&q->mu);
    return rc ? -1 : 0;
}
