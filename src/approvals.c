/*
 * approvals.c: the approval store and its transitions (see approvals.h).
 *
 * The approvals are kept in an array in creation order, oldest first; the store is small
 * (APPROVALS_KEEP) so every look-up is a scan. Each transition happens under the store's
 * mutex, which is what makes "approving twice deploys once" and "a superseded approval cannot
 * be approved" hold when the console, the API and Slack race.
 */
#include "approvals.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct approvals {
    pthread_mutex_t mu;
    struct approval *v; /* oldest first */
    size_t n, cap;
};

struct approvals *approvals_new(size_t cap)
{
    struct approvals *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cap = cap ? cap : APPROVALS_KEEP;
    s->v = calloc(s->cap, sizeof *s->v);
    if (!s->v) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void approvals_free(struct approvals *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s->v);
    free(s);
}

const char *approval_state_name(enum approval_state st)
{
    static const char *const names[] = {"pending", "approved", "rejected", "superseded", "expired"};
    if ((int)st < 0 || (size_t)st >= sizeof names / sizeof names[0]) return "unknown";
    return names[st];
}

static struct approval *find(struct approvals *s, const char *id)
{
    for (size_t i = 0; id && i < s->n; i++)
        if (!strcmp(s->v[i].id, id)) return &s->v[i];
    return NULL;
}

/* Makes room for one more (mu held): forgets the oldest decided approval when full. */
static int make_room(struct approvals *s)
{
    if (s->n < s->cap) return 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].state == APPROVAL_PENDING) continue;
        memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
        s->n--;
        return 0;
    }
    return -1;
}

int approvals_create(struct approvals *s, const struct approval *a, struct approval *sup,
                     size_t max_sup, size_t *n_sup)
{
    *n_sup = 0;
    pthread_mutex_lock(&s->mu);
    int rc = -1;
    if (find(s, a->id) || !a->id[0]) goto out;
    for (size_t i = 0; i < s->n; i++) {
        struct approval *o = &s->v[i];
        if (o->state != APPROVAL_PENDING || strcmp(o->app_id, a->app_id) != 0) continue;
        o->state = APPROVAL_SUPERSEDED;
        o->decided_ms = a->created_ms;
        memcpy(o->superseded_by, a->id, sizeof o->superseded_by);
        if (*n_sup < max_sup) sup[(*n_sup)++] = *o;
    }
    if (make_room(s) < 0) goto out;
    s->v[s->n] = *a;
    s->v[s->n].state = APPROVAL_PENDING;
    s->v[s->n].decided_ms = 0;
    s->n++;
    rc = 0;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int approvals_restore(struct approvals *s, const struct approval *a, struct approval *sup)
{
    pthread_mutex_lock(&s->mu);
    int rc = -1;
    if (a->id[0] && !find(s, a->id) && make_room(s) == 0) {
        struct approval *nw = &s->v[s->n++];
        *nw = *a;
        rc = 0;
        for (size_t i = 0; nw->state == APPROVAL_PENDING && i + 1 < s->n; i++) {
            struct approval *o = &s->v[i];
            if (o->state != APPROVAL_PENDING || strcmp(o->app_id, nw->app_id) != 0) continue;
            struct approval *older = o->created_ms <= nw->created_ms ? o : nw;
            struct approval *newer = older == o ? nw : o;
            older->state = APPROVAL_SUPERSEDED;
            older->decided_ms = newer->created_ms;
            memcpy(older->superseded_by, newer->id, sizeof older->superseded_by);
            *sup = *older;
            rc = 1;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Copies src into dst (n bytes), cut at a UTF-8 character boundary when it does not fit. */
static void copy_cut(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src ? src : "");
    if (len >= n) {
        len = n - 1;
        while (len && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, src ? src : "", len);
    dst[len] = '\0';
}

enum approval_result approvals_decide(struct approvals *s, const char *id, int approve,
                                      const char *by, const char *via, int64_t now,
                                      struct approval *out)
{
    pthread_mutex_lock(&s->mu);
    enum approval_result r;
    struct approval *a = find(s, id);
    if (!a) {
        r = APPROVAL_UNKNOWN;
    } else if (a->state != APPROVAL_PENDING) {
        r = APPROVAL_NOT_PENDING;
    } else if (now >= a->expires_ms) {
        a->state = APPROVAL_EXPIRED;
        a->decided_ms = now;
        r = APPROVAL_EXPIRED_NOW;
    } else {
        a->state = approve ? APPROVAL_APPROVED : APPROVAL_REJECTED;
        a->decided_ms = now;
        copy_cut(a->decided_by, sizeof a->decided_by, by);
        copy_cut(a->decided_via, sizeof a->decided_via, via);
        r = APPROVAL_DONE;
    }
    if (a && out) *out = *a;
    pthread_mutex_unlock(&s->mu);
    return r;
}

size_t approvals_expire(struct approvals *s, int64_t now, struct approval *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
        struct approval *a = &s->v[i];
        if (a->state != APPROVAL_PENDING || now < a->expires_ms) continue;
        if (n == max) break; /* the rest in the next call: each one is reported */
        a->state = APPROVAL_EXPIRED;
        a->decided_ms = now;
        out[n++] = *a;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

int approvals_get(struct approvals *s, const char *id, struct approval *out)
{
    pthread_mutex_lock(&s->mu);
    struct approval *a = find(s, id);
    if (a) *out = *a;
    pthread_mutex_unlock(&s->mu);
    return a ? 0 : -1;
}

int approvals_pending_for(struct approvals *s, const char *app_id, struct approval *out)
{
    int rc = -1;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n && rc < 0; i++) {
        if (s->v[i].state == APPROVAL_PENDING && !strcmp(s->v[i].app_id, app_id)) {
            *out = s->v[i];
            rc = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int approvals_allows(struct approvals *s, const char *id, const char *app_id, const char *digest)
{
    pthread_mutex_lock(&s->mu);
    const struct approval *a = find(s, id);
    int ok = a && a->state == APPROVAL_APPROVED && !strcmp(a->app_id, app_id) &&
             !strcmp(a->push.digest, digest);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

size_t approvals_pending_count(struct approvals *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++)
        n += s->v[i].state == APPROVAL_PENDING;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void approvals_set_record(struct approvals *s, const char *id, uint64_t record)
{
    pthread_mutex_lock(&s->mu);
    struct approval *a = find(s, id);
    if (a) a->record = record;
    pthread_mutex_unlock(&s->mu);
}

int approvals_json(struct approvals *s, struct buf *b)
{
    int rc = buf_adds(b, "{\"approvals\":[");
    pthread_mutex_lock(&s->mu);
    for (size_t i = s->n; i-- > 0;) {
        if (i + 1 < s->n) rc |= buf_adds(b, ",");
        rc |= approval_json(&s->v[i], 0, b);
    }
    pthread_mutex_unlock(&s->mu);
    return rc | buf_adds(b, "]}");
}

/* ---------------------------------------------------------------- JSON */

static int add_str(struct buf *b, const char *key, const char *v)
{
    int rc = buf_printf(b, ",\"%s\":", key);
    return rc | buf_add_json_string(b, v && *v ? v : NULL);
}

static int add_time(struct buf *b, const char *key, int64_t t)
{
    char s[40];
    if (t <= 0) return add_str(b, key, NULL);
    format_rfc3339_ms(t, s, sizeof s);
    return add_str(b, key, s);
}

int approval_json(const struct approval *a, int full, struct buf *b)
{
    const struct push *p = &a->push;
    int rc = buf_adds(b, "{\"id\":");
    rc |= buf_add_json_string(b, a->id);
    rc |= add_str(b, "app", a->app_id);
    rc |= add_str(b, "image", a->new_image);
    rc |= add_str(b, "old_image", a->old_image);
    rc |= add_str(b, "digest", p->digest);
    rc |= add_str(b, "pusher", p->pusher);
    rc |= add_str(b, "source", p->source[0] ? p->source : "registry");
    rc |= add_str(b, "repository", p->repository);
    rc |= add_str(b, "tag", p->tag);
    rc |= add_time(b, "created_at", a->created_ms);
    rc |= add_time(b, "expires_at", a->expires_ms);
    rc |= add_str(b, "state", approval_state_name(a->state));
    rc |= add_str(b, "decided_by", a->decided_by);
    rc |= add_str(b, "decided_via", a->decided_via);
    rc |= add_time(b, "decided_at", a->decided_ms);
    rc |= add_str(b, "superseded_by", a->superseded_by);
    if (full) {
        rc |= add_str(b, "channel", a->channel);
        rc |= add_str(b, "registry", p->host);
        rc |= add_str(b, "event_id", p->event_id);
        rc |= add_str(b, "pushed_at", p->timestamp);
        rc |= buf_printf(b, ",\"pushed_at_ns\":%lld", (long long)p->timestamp_ns);
        rc |= add_str(b, "media_type", p->media_type);
    }
    return rc | buf_adds(b, "}");
}

/* o[k] into dst (n bytes): absent or null reads as "", anything else but a string that fits
 * is an error. */
static int get_str(const cJSON *o, const char *k, char *dst, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    dst[0] = '\0';
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n) return -1;
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

/* An RFC 3339 time of o[k] as Unix ms; absent or null is 0. */
static int get_time(const cJSON *o, const char *k, int64_t *t)
{
    char s[64];
    int64_t ns;
    *t = 0;
    if (get_str(o, k, s, sizeof s) < 0) return -1;
    if (!s[0]) return 0;
    if (event_parse_rfc3339(s, &ns) < 0) return -1;
    *t = ns / 1000000;
    return 0;
}

static int is_hex_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 16 || n >= APPROVAL_ID_MAX) return 0;
    return strspn(s, "0123456789abcdef") == n;
}

int approval_from_json(const cJSON *o, struct approval *a)
{
    memset(a, 0, sizeof *a);
    struct push *p = &a->push;
    char state[16];
    if (!cJSON_IsObject(o)) return -1;
    if (get_str(o, "id", a->id, sizeof a->id) || get_str(o, "app", a->app_id, sizeof a->app_id) ||
        get_str(o, "image", a->new_image, sizeof a->new_image) ||
        get_str(o, "old_image", a->old_image, sizeof a->old_image) ||
        get_str(o, "digest", p->digest, sizeof p->digest) ||
        get_str(o, "pusher", p->pusher, sizeof p->pusher) ||
        get_str(o, "source", p->source, sizeof p->source) ||
        get_str(o, "repository", p->repository, sizeof p->repository) ||
        get_str(o, "tag", p->tag, sizeof p->tag) || get_str(o, "state", state, sizeof state) ||
        get_str(o, "decided_by", a->decided_by, sizeof a->decided_by) ||
        get_str(o, "decided_via", a->decided_via, sizeof a->decided_via) ||
        get_str(o, "superseded_by", a->superseded_by, sizeof a->superseded_by) ||
        get_str(o, "channel", a->channel, sizeof a->channel) ||
        get_str(o, "registry", p->host, sizeof p->host) ||
        get_str(o, "event_id", p->event_id, sizeof p->event_id) ||
        get_str(o, "pushed_at", p->timestamp, sizeof p->timestamp) ||
        get_str(o, "media_type", p->media_type, sizeof p->media_type) ||
        get_time(o, "created_at", &a->created_ms) || get_time(o, "expires_at", &a->expires_ms) ||
        get_time(o, "decided_at", &a->decided_ms))
        return -1;
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(o, "pushed_at_ns");
    if (cJSON_IsNumber(ns) && ns->valuedouble >= -9.2e18 && ns->valuedouble <= 9.2e18)
        p->timestamp_ns = (int64_t)ns->valuedouble;
    if (!strcmp(p->source, "registry")) p->source[0] = '\0';
    int st = -1;
    for (int i = 0; i <= APPROVAL_EXPIRED; i++)
        if (!strcmp(state, approval_state_name((enum approval_state)i))) st = i;
    if (st < 0 || !is_hex_id(a->id) || !a->app_id[0] || !a->expires_ms ||
        !ref_valid_repository(p->repository) || !ref_valid_tag(p->tag) ||
        !ref_valid_digest(p->digest) || (p->host[0] && !ref_valid_host(p->host)))
        return -1;
    a->state = (enum approval_state)st;
    return 0;
}
