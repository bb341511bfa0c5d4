/*
 * journal.c: the state file of accepted pushes (see journal.h).
 *
 * Lines:  {"id":N,"push":{...}}   a push accepted, journal id N
 *         {"done":N}              everything push N caused has ended
 *         {"paused":true|false}   an operator paused or resumed
 *         {"approval":{...}}      an approval as it is now (approvals.h); the last line for an
 *                                 id wins
 *
 * Pending pushes are kept in memory too, in order, so that compaction can rewrite the file
 * without reading it back and a start can hand them out as they were read.
 */
#include "journal.h"

#include "buf.h"
#include "log.h"
#include "reference.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES (64 * 1024)
#define COMPACT_EMPTY_BYTES (1024 * 1024)    /* nothing pending and larger: truncate */
#define COMPACT_ANY_BYTES (64 * 1024 * 1024) /* larger even with pushes pending: rewrite */

struct entry {
    unsigned long long id;
    int refs;
    struct push p;
    struct entry *prev, *next;
};

/* An approval's latest line, kept for compaction and handed to the deployer at start. */
struct appr {
    char id[40];
    char *line; /* the whole line, with its newline */
    int pending;
    struct appr *next; /* oldest first */
};

#define APPROVALS_KEPT 256

struct journal {
    pthread_mutex_t mu;
    struct appr *appr;
    size_t n_appr;
    char *path;
    int fd;
    off_t size;
    unsigned long long next_id;
    struct entry *head, *tail;
    size_t n;
    int paused;
    time_t last_error_log;
};

static void log_write_error(struct journal *j, const char *what)
{
    time_t now = time(NULL);
    if (now - j->last_error_log < 10) return;
    j->last_error_log = now;
    log_error("cannot write the state file", "path", j->path, "doing", what, "error",
              strerror(errno), NULL);
}

/* Appends len bytes; on a short or failed write, cuts the file back so no torn line is left
 * for the next line to be glued to. */
static int append(struct journal *j, const char *data, size_t len, const char *what)
{
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(j->fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            if (done && ftruncate(j->fd, j->size) != 0) { /* best effort */
            }
            errno = w < 0 ? e : ENOSPC;
            log_write_error(j, what);
            return -1;
        }
        done += (size_t)w;
    }
    j->size += (off_t)len;
    return 0;
}

static void add_field(struct buf *b, const char *key, const char *v, int first)
{
    buf_printf(b, "%s\"%s\":", first ? "" : ",", key);
    buf_add_json_string(b, v);
}

static char *push_line(const struct push *p, unsigned long long id)
{
    struct buf b;
    buf_init(&b, LINE_MAX_BYTES);
    buf_printf(&b, "{\"id\":%llu,\"push\":{", id);
    add_field(&b, "event_id", p->event_id, 1);
    add_field(&b, "timestamp", p->timestamp, 0);
    buf_printf(&b, ",\"timestamp_ns\":%lld", (long long)p->timestamp_ns);
    add_field(&b, "host", p->host, 0);
    add_field(&b, "repository", p->repository, 0);
    add_field(&b, "tag", p->tag, 0);
    add_field(&b, "digest", p->digest, 0);
    add_field(&b, "media_type", p->media_type, 0);
    add_field(&b, "pusher", p->pusher, 0);
    if (p->source[0]) add_field(&b, "source", p->source, 0);
    if (p->approval[0]) add_field(&b, "approval", p->approval, 0);
    if (buf_adds(&b, "}}\n") < 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

/* A JSON number that is an id: a whole number from 1 to 2^53. */
static int as_id(const cJSON *v, unsigned long long *out)
{
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 1 && d <= 9007199254740992.0) || d != (double)(unsigned long long)d) return -1;
    *out = (unsigned long long)d;
    return 0;
}

static int copy_str(const cJSON *o, const char *k, char *dst, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n) return -1;
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

/* A push as written by push_line; -1 when a field is missing or fails its grammar. */
static int push_parse(const cJSON *o, struct push *p)
{
    memset(p, 0, sizeof *p);
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(o, "timestamp_ns");
    if (copy_str(o, "event_id", p->event_id, sizeof p->event_id) < 0 ||
        copy_str(o, "timestamp", p->timestamp, sizeof p->timestamp) < 0 ||
        copy_str(o, "host", p->host, sizeof p->host) < 0 ||
        copy_str(o, "repository", p->repository, sizeof p->repository) < 0 ||
        copy_str(o, "tag", p->tag, sizeof p->tag) < 0 ||
        copy_str(o, "digest", p->digest, sizeof p->digest) < 0 ||
        copy_str(o, "media_type", p->media_type, sizeof p->media_type) < 0 ||
        copy_str(o, "pusher", p->pusher, sizeof p->pusher) < 0 || !cJSON_IsNumber(ns) ||
        !(ns->valuedouble >= -9.2e18 && ns->valuedouble <= 9.2e18))
        return -1;
    p->timestamp_ns = (int64_t)ns->valuedouble;
    /* "source" is optional: state files written before it existed lack it. */
    if (cJSON_GetObjectItemCaseSensitive(o, "source") &&
        copy_str(o, "source", p->source, sizeof p->source) < 0)
        return -1;
    /* "approval" is optional: only an approved push has one. */
    if (cJSON_GetObjectItemCaseSensitive(o, "approval") &&
        copy_str(o, "approval", p->approval, sizeof p->approval) < 0)
        return -1;
    if (!ref_valid_repository(p->repository) || !ref_valid_tag(p->tag) ||
        (p->digest[0] && !ref_valid_digest(p->digest)) || (p->host[0] && !ref_valid_host(p->host)))
        return -1;
    return 0;
}

static void entry_unlink(struct journal *j, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        j->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        j->tail = e->prev;
    j->n--;
    free(e);
}

static struct entry *entry_append(struct journal *j, unsigned long long id, const struct push *p)
{
    struct entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->id = id;
    e->refs = 1;
    e->p = *p;
    e->prev = j->tail;
    if (j->tail)
        j->tail->next = e;
    else
        j->head = e;
    j->tail = e;
    j->n++;
    return e;
}

static struct entry *entry_find(struct journal *j, unsigned long long id)
{
    for (struct entry *e = j->head; e; e = e->next)
        if (e->id == id) return e;
    return NULL;
}

/* Keeps line as approval id's latest (line is taken over). The oldest decided approval is
 * forgotten past APPROVALS_KEPT. */
static void appr_keep(struct journal *j, const char *id, char *line, int pending)
{
    struct appr **pp = &j->appr, *a;
    while ((a = *pp) != NULL && strcmp(a->id, id) != 0)
        pp = &a->next;
    if (a) { /* moves to the end: the newest */
        *pp = a->next;
        free(a->line);
        j->n_appr--;
    } else if (!(a = calloc(1, sizeof *a))) {
        free(line);
        return;
    }
    snprintf(a->id, sizeof a->id, "%s", id);
    a->line = line;
    a->pending = pending;
    a->next = NULL;
    for (pp = &j->appr; *pp; pp = &(*pp)->next) {
    }
    *pp = a;
    j->n_appr++;
    for (pp = &j->appr; j->n_appr > APPROVALS_KEPT && *pp;) {
        struct appr *o = *pp;
        if (o->pending) {
            pp = &o->next;
            continue;
        }
        *pp = o->next;
        free(o->line);
        free(o);
        j->n_appr--;
    }
}

/* {"approval":{...}} -> its id and whether it is pending; -1 when it is not one. */
static int appr_parse(const cJSON *o, char *id, size_t idlen, int *pending)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "approval");
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(a, "id");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(a, "state");
    if (!cJSON_IsObject(a) || !cJSON_IsString(i) || strlen(i->valuestring) >= idlen ||
        !i->valuestring[0] || !cJSON_IsString(st))
        return -1;
    snprintf(id, idlen, "%s", i->valuestring);
    *pending = !strcmp(st->valuestring, "pending");
    return 0;
}

static const char *paused_line(int paused)
{
    return paused ? "{\"paused\":true}\n" : "{\"paused\":false}\n";
}

/* Replaces the file by one holding only what is pending (and the pause), atomically. */
static int rewrite(struct journal *j)
{
    size_t plen = strlen(j->path);
    char *tmp = malloc(plen + 8);
    if (!tmp) return -1;
    memcpy(tmp, j->path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0;
    off_t size = 0;
    for (struct entry *e = j->head; ok && e; e = e->next) {
        char *line = push_line(&e->p, e->id);
        size_t len = line ? strlen(line) : 0;
        ok = line && write(fd, line, len) == (ssize_t)len;
        size += (off_t)len;
        free(line);
    }
    for (struct appr *a = j->appr; ok && a; a = a->next) {
        size_t len = strlen(a->line);
        ok = write(fd, a->line, len) == (ssize_t)len;
        size += (off_t)len;
    }
    if (ok && j->paused) {
        const char *l = paused_line(1);
        ok = write(fd, l, strlen(l)) == (ssize_t)strlen(l);
        size += (off_t)strlen(l);
    }
    if (ok) ok = fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) close(fd);
    if (ok) ok = rename(tmp, j->path) == 0;
    if (!ok) {
        e = errno ? errno : e;
        unlink(tmp);
        free(tmp);
        errno = e;
        return -1;
    }
    free(tmp);
    int nfd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (nfd < 0) return -1;
    if (j->fd >= 0) close(j->fd);
    j->fd = nfd;
    j->size = size;
    return 0;
}

/* Reads the previous run's file into j (entries, pause, next id). Returns the number of lines
 * that could not be used, or -1 when the file exists but cannot be read. */
static long load(struct journal *j)
{
    FILE *f = fopen(j->path, "re");
    if (!f) return errno == ENOENT ? 0 : -1;
    long bad = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len == 0 || (len == 1 && line[0] == '\n')) continue;
        /* A NUL byte, raw or escaped, would end a C string early: the value read would be
         * another (a digest cut to "" reads as a push without one). The line is corrupt. */
        if (memchr(line, '\0', (size_t)len) || json_has_escaped_nul(line, (size_t)len)) {
            bad++;
            continue;
        }
        cJSON *o = len < LINE_MAX_BYTES ? cJSON_ParseWithLength(line, (size_t)len) : NULL;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        const cJSON *pj = cJSON_GetObjectItemCaseSensitive(o, "push");
        const cJSON *done = cJSON_GetObjectItemCaseSensitive(o, "done");
        const cJSON *paused = cJSON_GetObjectItemCaseSensitive(o, "paused");
        struct push p;
        unsigned long long n;
        char aid[40];
        int apending;
        if (as_id(id, &n) == 0 && cJSON_IsObject(pj) && push_parse(pj, &p) == 0) {
            if (entry_find(j, n) || !entry_append(j, n, &p)) bad++;
            if (n >= j->next_id) j->next_id = n + 1;
        } else if (as_id(done, &n) == 0) {
            struct entry *e = entry_find(j, n);
            if (e) entry_unlink(j, e);
        } else if (cJSON_IsBool(paused)) {
            j->paused = cJSON_IsTrue(paused);
        } else if (appr_parse(o, aid, sizeof aid, &apending) == 0) {
            /* Kept as written, so it must be a whole line: not the last line cut by a crash. */
            char *copy = NULL;
            if (line[len - 1] == '\n') copy = strndup(line, (size_t)len);
            if (copy)
                appr_keep(j, aid, copy, apending);
            else
                bad++;
        } else {
            bad++;
        }
        cJSON_Delete(o);
    }
    int e = ferror(f) ? errno : 0;
    free(line);
    fclose(f);
    if (e) {
        errno = e;
        return -1;
    }
    return bad;
}

struct journal *journal_open(const char *path, struct push **pending, size_t *n_pending,
                             int *paused, char *err, size_t errlen)
{
    *pending = NULL;
    *n_pending = 0;
    *paused = 0;
    /* The file is replaced by rename at each compaction: it must be a regular file, and a
     * symbolic link is followed once here so that the link itself stays in place. */
    struct stat st;
    char real[PATH_MAX];
    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            snprintf(err, errlen, "the state file %s is not a regular file", path);
            return NULL;
        }
        if (!realpath(path, real)) {
            snprintf(err, errlen, "cannot resolve the state file %s: %s", path, strerror(errno));
            return NULL;
        }
        path = real;
    }
    struct journal *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    j->fd = -1;
    j->next_id = 1;
    pthread_mutex_init(&j->mu, NULL);
    long bad = load(j);
    if (bad < 0) {
        snprintf(err, errlen, "cannot read the state file %s: %s", path, strerror(errno));
        journal_close(j);
        return NULL;
    }
    if (rewrite(j) < 0) {
        snprintf(err, errlen, "cannot write the state file %s: %s", path, strerror(errno));
        journal_close(j);
        return NULL;
    }
    if (bad) {
        char n[24];
        snprintf(n, sizeof n, "%ld", bad);
        log_warn("state file: unreadable lines skipped (a line cut by a crash is expected)", "path",
                 path, "lines", n, NULL);
    }
    if (j->n) {
        *pending = calloc(j->n, sizeof **pending);
        if (!*pending) {
            snprintf(err, errlen, "out of memory");
            journal_close(j);
            return NULL;
        }
        for (struct entry *e = j->head; e; e = e->next) {
            struct push *p = &(*pending)[(*n_pending)++];
            *p = e->p;
            p->jid = e->id;
            p->replayed = 1;
        }
    }
    *paused = j->paused;
    return j;
}

int journal_add(struct journal *j, struct push *p)
{
    if (!j || p->jid) return 0;
    pthread_mutex_lock(&j->mu);
    unsigned long long id = j->next_id;
    char *line = push_line(p, id);
    int rc = -1;
    if (line && append(j, line, strlen(line), "recording a push") == 0 && entry_append(j, id, p)) {
        p->jid = id;
        j->next_id++;
        rc = 0;
    }
    free(line);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

void journal_hold(struct journal *j, unsigned long long jid)
{
    if (!j || !jid) return;
    pthread_mutex_lock(&j->mu);
    struct entry *e = entry_find(j, jid);
    if (e) e->refs++;
    pthread_mutex_unlock(&j->mu);
}

void journal_release(struct journal *j, unsigned long long jid)
{
    if (!j || !jid) return;
    pthread_mutex_lock(&j->mu);
    struct entry *e = entry_find(j, jid);
    if (e && --e->refs == 0) {
        char line[48];
        int len = snprintf(line, sizeof line, "{\"done\":%llu}\n", jid);
        append(j, line, (size_t)len, "marking a push done"); /* on failure: replayed, harmless */
        entry_unlink(j, e);
        if (j->n == 0 && j->size > COMPACT_EMPTY_BYTES && j->appr) {
            if (rewrite(j) < 0) log_write_error(j, "compacting");
        } else if (j->n == 0 && j->size > COMPACT_EMPTY_BYTES) {
            if (ftruncate(j->fd, 0) == 0) {
                j->size = 0;
                if (j->paused) append(j, paused_line(1), strlen(paused_line(1)), "compacting");
            } else {
                log_write_error(j, "compacting");
            }
        } else if (j->size > COMPACT_ANY_BYTES && rewrite(j) < 0) {
            log_write_error(j, "compacting");
        }
    }
    pthread_mutex_unlock(&j->mu);
}

void journal_set_paused(struct journal *j, int paused)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    if (j->paused != !!paused) {
        j->paused = !!paused;
        append(j, paused_line(j->paused), strlen(paused_line(j->paused)), "recording a pause");
    }
    pthread_mutex_unlock(&j->mu);
}

size_t journal_pending(struct journal *j)
{
    if (!j) return 0;
    pthread_mutex_lock(&j->mu);
    size_t n = j->n;
    pthread_mutex_unlock(&j->mu);
    return n;
}

int journal_put_approval(struct journal *j, const char *id, const char *json, int pending)
{
    if (!j) return 0;
    size_t len = strlen(json);
    char *line = malloc(len + 16);
    if (!line) return -1;
    int n = snprintf(line, len + 16, "{\"approval\":%s}\n", json);
    pthread_mutex_lock(&j->mu);
    int rc = append(j, line, (size_t)n, "recording an approval");
    if (rc == 0)
        appr_keep(j, id, line, pending);
    else
        free(line);
    if (j->size > COMPACT_ANY_BYTES && rewrite(j) < 0) log_write_error(j, "compacting");
    pthread_mutex_unlock(&j->mu);
    return rc;
}

size_t journal_approvals(struct journal *j, char ***out)
{
    *out = NULL;
    if (!j) return 0;
    pthread_mutex_lock(&j->mu);
    size_t n = 0;
    *out = calloc(j->n_appr ? j->n_appr : 1, sizeof **out);
    for (struct appr *a = j->appr; *out && a; a = a->next) {
        /* The object inside {"approval":...}: the line without its wrapper and newline. */
        size_t len = strlen(a->line);
        const char *start = strchr(a->line, ':');
        if (!start || len < 3) continue;
        start++;
        const char *end = a->line + len - 1; /* the newline */
        while (end > start && end[-1] != '}')
            end--;
        if (end - 1 <= start) continue;
        (*out)[n] = strndup(start, (size_t)(end - 1 - start));
        if ((*out)[n]) n++;
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

void journal_close(struct journal *j)
{
    if (!j) return;
    while (j->appr) {
        struct appr *a = j->appr;
        j->appr = a->next;
        free(a->line);
        free(a);
    }
    while (j->head)
        entry_unlink(j, j->head);
    if (j->fd >= 0) close(j->fd);
    pthread_mutex_destroy(&j->mu);
    free(j->path);
    free(j);
}
