/*
 * listing.c: a one-pass scanner over Marathon's app listing (see listing.h). It follows
 * RFC 8259 (strings without raw control characters, valid escapes, numbers and literals as
 * the grammar says) and bounds nesting, so anything cJSON would refuse is refused here too.
 */
#include "listing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 512

struct sc {
    const char *p, *end;
    int depth;
    const char *fail; /* first error, a static string */
};

static int err(struct sc *s, const char *why)
{
    if (!s->fail) s->fail = why;
    return -1;
}

static void ws(struct sc *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Reads the string at s->p ('"'). With out, decodes it into a new NUL-terminated string. */
static int string(struct sc *s, char **out)
{
    const char *p = s->p + 1;
    char *dst = NULL;
    size_t o = 0;
    if (out) {
        /* The decoded string is never longer than its JSON form. */
        const char *q = p;
        while (q < s->end && *q != '"')
            q += (*q == '\\' && q + 1 < s->end) ? 2 : 1;
        dst = malloc((size_t)(q - p) + 1);
        if (!dst) return err(s, "out of memory");
    }
    while (p < s->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            s->p = p + 1;
            if (out) {
                dst[o] = '\0';
                *out = dst;
            }
            return 0;
        }
        if (c < 0x20) break;
        if (c != '\\') {
            if (dst) dst[o++] = (char)c;
            p++;
            continue;
        }
        if (p + 1 >= s->end) break;
        char e = p[1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            if (dst) dst[o++] = map[simple - "\"\\/bfnrt"];
            p += 2;
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || s->end - p < 6 || hex4(p + 2, &cp) < 0) break;
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff && s->end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            hex4(p + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        } else if (cp >= 0xd800 && cp <= 0xdfff) {
            cp = 0xfffd; /* a lone surrogate cannot be UTF-8 */
        }
        if (cp == 0) break; /* no C string can hold it */
        if (!dst) continue;
        if (cp < 0x80) {
            dst[o++] = (char)cp;
        } else if (cp < 0x800) {
            dst[o++] = (char)(0xc0 | (cp >> 6));
            dst[o++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            dst[o++] = (char)(0xe0 | (cp >> 12));
            dst[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            dst[o++] = (char)(0x80 | (cp & 0x3f));
        } else {
            dst[o++] = (char)(0xf0 | (cp >> 18));
            dst[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            dst[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            dst[o++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    free(dst);
    return err(s, "invalid string");
}

static int number(struct sc *s)
{
    const char *p = s->p;
    if (p < s->end && *p == '-') p++;
    if (p >= s->end) return err(s, "invalid number");
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    else
        return err(s, "invalid number");
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || *p < '0' || *p > '9') return err(s, "invalid number");
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-')) p++;
        if (p >= s->end || *p < '0' || *p > '9') return err(s, "invalid number");
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    s->p = p;
    return 0;
}

static int value(struct sc *s);

/* Walks an object at s->p ('{'), calling on_member for each key with s->p at its value; the
 * callback must consume the value. Without a callback every value is skipped. */
typedef int (*member_fn)(struct sc *s, const char *key, void *ctx);

static int object(struct sc *s, member_fn fn, void *ctx)
{
    if (++s->depth > MAX_DEPTH) return err(s, "nested too deeply");
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        ws(s);
        if (s->p >= s->end || *s->p != '"') return err(s, "expected a key");
        char *key = NULL;
        if (string(s, fn ? &key : NULL) < 0) return -1;
        ws(s);
        if (s->p >= s->end || *s->p != ':') {
            free(key);
            return err(s, "expected ':'");
        }
        s->p++;
        ws(s);
        int rc = fn ? fn(s, key, ctx) : value(s);
        free(key);
        if (rc < 0) return -1;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            s->depth--;
            return 0;
        }
        return err(s, "expected ',' or '}'");
    }
}

/* Walks an array at s->p ('['), calling on_elem for each element (or skipping them). */
typedef int (*elem_fn)(struct sc *s, void *ctx);

static int array(struct sc *s, elem_fn fn, void *ctx)
{
    if (++s->depth > MAX_DEPTH) return err(s, "nested too deeply");
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        ws(s);
        if ((fn ? fn(s, ctx) : value(s)) < 0) return -1;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            s->depth--;
            return 0;
        }
        return err(s, "expected ',' or ']'");
    }
}

static int literal(struct sc *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return err(s, "invalid value");
    s->p += n;
    return 0;
}

static int value(struct sc *s)
{
    if (s->p >= s->end) return err(s, "unexpected end");
    switch (*s->p) {
    case '"':
        return string(s, NULL);
    case '{':
        return object(s, NULL, NULL);
    case '[':
        return array(s, NULL, NULL);
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    default:
        return number(s);
    }
}

/* A string member kept (first occurrence wins), anything else skipped. */
static int keep_string(struct sc *s, char **slot)
{
    if (s->p < s->end && *s->p == '"' && !*slot) return string(s, slot);
    return value(s);
}

struct app_ctx {
    struct listed_app *app;
    const char *label;
    int seen_labels, seen_container, seen_docker;
};

static int docker_member(struct sc *s, const char *key, void *ctx)
{
    struct app_ctx *a = ctx;
    if (!strcmp(key, "image")) return keep_string(s, &a->app->image);
    return value(s);
}

static int container_member(struct sc *s, const char *key, void *ctx)
{
    struct app_ctx *a = ctx;
    if (!strcmp(key, "docker") && !a->seen_docker++ && s->p < s->end && *s->p == '{')
        return object(s, docker_member, ctx);
    return value(s);
}

static int label_member(struct sc *s, const char *key, void *ctx)
{
    struct app_ctx *a = ctx;
    if (!strcmp(key, a->label)) return keep_string(s, &a->app->label);
    if (!strcmp(key, "autodeploy.slack-channel")) return keep_string(s, &a->app->channel);
    if (!strcmp(key, "autodeploy.paused")) return keep_string(s, &a->app->paused);
    if (!strcmp(key, "autodeploy.pin-digest")) return keep_string(s, &a->app->pin);
    return value(s);
}

static int app_member(struct sc *s, const char *key, void *ctx)
{
    struct app_ctx *a = ctx;
    int obj = s->p < s->end && *s->p == '{';
    if (!strcmp(key, "id")) return keep_string(s, &a->app->id);
    if (!strcmp(key, "labels") && !a->seen_labels++ && obj) return object(s, label_member, ctx);
    if (!strcmp(key, "container") && !a->seen_container++ && obj)
        return object(s, container_member, ctx);
    return value(s);
}

struct top_ctx {
    struct listing *out;
    size_t cap;
    const char *label;
    int seen_apps;
};

static int app_elem(struct sc *s, void *ctx)
{
    struct top_ctx *t = ctx;
    if (s->p >= s->end || *s->p != '{') return value(s); /* not an app: cJSON skips it too */
    if (t->out->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        struct listed_app *na = realloc(t->out->apps, ncap * sizeof *na);
        if (!na) return err(s, "out of memory");
        t->out->apps = na;
        t->cap = ncap;
    }
    struct listed_app *app = &t->out->apps[t->out->n++];
    memset(app, 0, sizeof *app);
    struct app_ctx a = {app, t->label, 0, 0, 0};
    return object(s, app_member, &a);
}

static int top_member(struct sc *s, const char *key, void *ctx)
{
    struct top_ctx *t = ctx;
    if (!strcmp(key, "apps") && !t->seen_apps++) {
        if (s->p < s->end && *s->p == '[') return array(s, app_elem, ctx);
        return err(s, "\"apps\" is not an array");
    }
    return value(s);
}

int listing_parse(const char *json, size_t len, const char *label, struct listing *out, char *e,
                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct sc s = {json, json + len, 0, NULL};
    struct top_ctx t = {out, 0, label, 0};
    ws(&s);
    int rc = (s.p < s.end && *s.p == '{') ? object(&s, top_member, &t) : err(&s, "not an object");
    if (rc == 0) {
        ws(&s);
        if (s.p != s.end) rc = err(&s, "trailing data");
    }
    if (rc == 0 && !t.seen_apps) rc = err(&s, "no \"apps\" array");
    if (rc < 0) {
        snprintf(e, errlen, "Marathon's app list is not valid: %s at byte %ld", s.fail,
                 (long)(s.p - json));
        listing_free(out);
        return -1;
    }
    return 0;
}

void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->apps[i].id);
        free(l->apps[i].image);
        free(l->apps[i].label);
        free(l->apps[i].channel);
        free(l->apps[i].paused);
        free(l->apps[i].pin);
    }
    free(l->apps);
    memset(l, 0, sizeof *l);
}
