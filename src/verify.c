/*
 * verify.c: asking the registry before deploying (--verify-push; see deploy.h).
 *
 * Before a job sends its update it asks the registry the new image is pulled from (the app's
 * own host) which digest the tag points at now. What the answer means is decided by
 * decide_verify (decide.c). Jobs for the same push ask once: answers are shared for a few
 * seconds, and a job finding the same question in flight waits for its answer, so a push that
 * matches 50 apps costs one HEAD, not 50.
 */
#include "job.h"

#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARE_MS 3000

struct verify_entry {
    char key[PUSH_HOST_MAX + PUSH_REPO_MAX + PUSH_TAG_MAX + PUSH_DIGEST_MAX + 4]; /* "" unused */
    int busy;
    int64_t at;
    struct verify_answer a;
};

struct verify_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct verify_entry e[64];
    int next;
};

struct verify_cache *verify_cache_new(void)
{
    struct verify_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return c;
}

void verify_cache_free(struct verify_cache *c)
{
    if (!c) return;
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static struct verify_entry *find(struct verify_cache *c, const char *key)
{
    for (int i = 0; i < 64; i++)
        if (!strcmp(c->e[i].key, key)) return &c->e[i];
    return NULL;
}

void job_verify(struct job *j, const char *host, struct verify_answer *out)
{
    struct deployer *d = j->d;
    struct verify_cache *c = d->verify;
    char key[sizeof c->e[0].key];
    /* The push's digest is part of the question: a newer push of the same tag asks anew. */
    snprintf(key, sizeof key, "%s|%s|%s|%s", host, j->p->repository, j->p->tag, j->p->digest);
    pthread_mutex_lock(&c->mu);
    struct verify_entry *e;
    while ((e = find(c, key)) && e->busy)
        pthread_cond_wait(&c->cv, &c->mu);
    /* Failures are shared too: the jobs of one push waiting on an unreachable registry each
     * back off instead of asking it one after another. */
    /* A job asking again (the tag was not linked yet) takes no answer older than its last. */
    if (e && job_now(d) - e->at < SHARE_MS && e->at > j->verify_seen) {
        *out = e->a;
        j->verify_seen = e->at;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    for (int tries = 0; !e && tries < 64; tries++) { /* a free slot, or the oldest idle one */
        struct verify_entry *x = &c->e[c->next];
        c->next = (c->next + 1) % 64;
        if (!x->busy) e = x;
    }
    if (!e) { /* 64 questions in flight: ask without sharing */
        pthread_mutex_unlock(&c->mu);
        memset(out, 0, sizeof *out);
        out->res =
            registry_manifest_digest(d->registry, host, j->p->repository, j->p->tag, out->digest,
                                     sizeof out->digest, out->err, sizeof out->err);
        j->verify_seen = job_now(d);
        return;
    }
    snprintf(e->key, sizeof e->key, "%s", key);
    e->busy = 1;
    pthread_mutex_unlock(&c->mu);

    struct verify_answer a;
    memset(&a, 0, sizeof a);
    a.res = registry_manifest_digest(d->registry, host, j->p->repository, j->p->tag, a.digest,
                                     sizeof a.digest, a.err, sizeof a.err);
    pthread_mutex_lock(&c->mu);
    e->a = a;
    e->at = job_now(d);
    if (e->at <= j->verify_seen) e->at = j->verify_seen + 1; /* a clock that did not move */
    j->verify_seen = e->at;
    e->busy = 0;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    *out = a;
}
