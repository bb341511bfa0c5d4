/*
 * listing.c: a one-pass scanner over Marathon's app listing (see listing.h). It follows
 * RFC 8259 (strings without raw control characters, valid escapes, numbers and literals as
 * the grammar says) and bounds nesting, so anything cJSON would refuse is refused here too.
 */
#include "listing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_DEPTH 512

struct sc {
    const char *p, *end;
    int depth;
    const char *fail;    /* first error, a static string */
    struct listing *out; /* owns the strings kept */
};

/* The strings kept are carved out of a few shared blocks, freed together by listing_free: a
 * listing of thousands of apps keeps thousands of short strings. */
#define BLOCK_SIZE 16384

struct listing_block {
    struct listing_block *next;
    size_t used, cap;
    char data[];
};

static char *alloc_string(struct sc *s, size_t n)
{
    struct listing_block *b = s->out->blocks;
    if (!b || b->cap - b->used < n) {
        int own = n > BLOCK_SIZE / 4; /* a long string gets a block of its own */
        size_t cap = own ? n : BLOCK_SIZE;
        struct listing_block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->used = 0;
        nb->cap = cap;
        if (b && own) { /* and the current block goes on being filled */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            s->out->blocks = nb;
        }
        b = nb;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

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

/* Whether c ends a run of plain string text: '"', '\\', or a control character (RFC 8259
 * allows none raw in a string). */
static int stop_byte(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The stop bytes among the 8 bytes at p, as the high bit of each (little-endian: the lowest set
 * bit is the first stop byte; bits above it may be false, never bits below). 0: none. */
static uint64_t stop_mask(const char *p)
{
    uint64_t w, q, b;
    memcpy(&w, p, sizeof w);
    q = w ^ (ONES * '"');
    b = w ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w)) & HIGHS;
}

/* The first stop byte at or after p, or end. Most of the listing is strings that are skipped:
 * plain text is passed over a word at a time where the byte order allows. */
static inline const char *next_stop(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  ctl = _mm_set1_epi8(0x1f);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hit =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
                         _mm_cmpeq_epi8(_mm_min_epu8(x, ctl), x));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m) return p + __builtin_ctz(m);
        p += 16;
    }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t m = stop_mask(p);
        if (m) return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && !stop_byte((unsigned char)*p))
        p++;
    return p;
}

/* scan_string from p, the first stop byte of the string at s->p, on: escapes, the end. */
static int scan_rest(struct sc *s, const char *p, const char **raw, size_t *len, int *esc)
{
    const char *end = s->end;
    int e = 0;
    for (; p < end; p = next_stop(p, end)) {
        if (*p == '"') {
            *raw = s->p + 1;
            *len = (size_t)(p - *raw);
            *esc = e;
            s->p = p + 1;
            return 0;
        }
        if (*p != '\\' || p + 1 >= end) break; /* a control character, or a cut escape */
        e = 1;
        char x = p[1];
        if (x && strchr("\"\\/bfnrt", x)) {
            p += 2;
            continue;
        }
        unsigned cp, lo;
        if (x != 'u' || end - p < 6 || hex4(p + 2, &cp) < 0) break;
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            hex4(p + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
            p += 6; /* a surrogate pair: one code point, never 0 */
            continue;
        }
        if (cp == 0) break; /* no C string can hold it */
    }
    return err(s, "invalid string");
}

/* Checks the string at s->p ('"') and moves past it, decoding nothing. *raw and *len give its
 * text between the quotes as written; *esc is set when that text holds escapes. Inline for
 * the usual string, plain text up to its closing quote. */
static inline int scan_string(struct sc *s, const char **raw, size_t *len, int *esc)
{
    const char *p = next_stop(s->p + 1, s->end);
    if (p < s->end && *p == '"') {
        *raw = s->p + 1;
        *len = (size_t)(p - *raw);
        *esc = 0;
        s->p = p + 1;
        return 0;
    }
    return scan_rest(s, p, raw, len, esc);
}

/* Decodes the text of a string checked by scan_string (len bytes with escapes) into dst, which
 * has room for len + 1 bytes (the decoded form is never longer); NUL-terminates it. */
static void decode(const char *p, size_t len, char *dst)
{
    const char *end = p + len;
    size_t o = 0;
    while (p < end) {
        if (*p != '\\') {
            dst[o++] = *p++;
            continue;
        }
        char e = p[1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e != 'u' && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            dst[o++] = map[simple - "\"\\/bfnrt"];
            p += 2;
            continue;
        }
        unsigned cp = 0, lo;
        hex4(p + 2, &cp); /* checked by scan_string */
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            hex4(p + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        } else if (cp >= 0xd800 && cp <= 0xdfff) {
            cp = 0xfffd; /* a lone surrogate cannot be UTF-8 */
        }
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
    dst[o] = '\0';
}

/* Reads the string at s->p ('"'); with out, into a new NUL-terminated string. */
static int string(struct sc *s, char **out)
{
    const char *raw;
    size_t len;
    int esc;
    if (scan_string(s, &raw, &len, &esc) < 0) return -1;
    if (!out) return 0;
    char *dst = alloc_string(s, len + 1);
    if (!dst) return err(s, "out of memory");
    if (esc) {
        decode(raw, len, dst);
    } else {
        memcpy(dst, raw, len);
        dst[len] = '\0';
    }
    *out = dst;
    return 0;
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

/* A member's key: its text in place when it holds no escape (every key in practice), else
 * decoded. Not NUL-terminated: compare with key_is. */
struct key {
    const char *p;
    size_t len;
};

static int key_is(const struct key *k, const char *want, size_t want_len)
{
    return k->len == want_len && memcmp(k->p, want, want_len) == 0;
}

#define KEY_IS(k, lit) key_is((k), (lit), sizeof(lit) - 1)

/* Walks an object at s->p ('{'), calling fn for each key with s->p at its value; the callback
 * must consume the value. Without a callback every value is skipped. */
typedef int (*member_fn)(struct sc *s, const struct key *key, void *ctx);

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
        struct key key;
        int esc;
        char small[128], *decoded = NULL;
        if (scan_string(s, &key.p, &key.len, &esc) < 0) return -1;
        if (fn && esc) {
            decoded = key.len < sizeof small ? small : malloc(key.len + 1);
            if (!decoded) return err(s, "out of memory");
            decode(key.p, key.len, decoded);
            key.p = decoded;
            key.len = strlen(decoded); /* escapes of NUL are refused: no byte is cut off */
        }
        ws(s);
        int rc;
        if (s->p >= s->end || *s->p != ':') {
            rc = err(s, "expected ':'");
        } else {
            s->p++;
            ws(s);
            rc = fn ? fn(s, &key, ctx) : value(s);
        }
        if (decoded != small) free(decoded);
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
    size_t label_len;
    int seen_labels, seen_container, seen_docker;
};

static int docker_member(struct sc *s, const struct key *key, void *ctx)
{
    struct app_ctx *a = ctx;
    if (KEY_IS(key, "image")) return keep_string(s, &a->app->image);
    return value(s);
}

static int container_member(struct sc *s, const struct key *key, void *ctx)
{
    struct app_ctx *a = ctx;
    if (KEY_IS(key, "docker") && !a->seen_docker++ && s->p < s->end && *s->p == '{')
        return object(s, docker_member, ctx);
    return value(s);
}

static int label_member(struct sc *s, const struct key *key, void *ctx)
{
    struct app_ctx *a = ctx;
    if (key_is(key, a->label, a->label_len)) return keep_string(s, &a->app->label);
    if (KEY_IS(key, "autodeploy.slack-channel")) return keep_string(s, &a->app->channel);
    if (KEY_IS(key, "autodeploy.paused")) return keep_string(s, &a->app->paused);
    if (KEY_IS(key, "autodeploy.pin-digest")) return keep_string(s, &a->app->pin);
    if (KEY_IS(key, "autodeploy.digest")) return keep_string(s, &a->app->digest);
    return value(s);
}

static int app_member(struct sc *s, const struct key *key, void *ctx)
{
    struct app_ctx *a = ctx;
    int obj = s->p < s->end && *s->p == '{';
    if (KEY_IS(key, "id")) return keep_string(s, &a->app->id);
    if (KEY_IS(key, "labels") && !a->seen_labels++ && obj) return object(s, label_member, ctx);
    if (KEY_IS(key, "container") && !a->seen_container++ && obj)
        return object(s, container_member, ctx);
    return value(s);
}

struct top_ctx {
    struct listing *out;
    size_t cap;
    const char *label;
    size_t label_len;
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
    struct app_ctx a = {app, t->label, t->label_len, 0, 0, 0};
    return object(s, app_member, &a);
}

static int top_member(struct sc *s, const struct key *key, void *ctx)
{
    struct top_ctx *t = ctx;
    if (KEY_IS(key, "apps") && !t->seen_apps++) {
        if (s->p < s->end && *s->p == '[') return array(s, app_elem, ctx);
        return err(s, "\"apps\" is not an array");
    }
    return value(s);
}

int listing_parse(const char *json, size_t len, const char *label, struct listing *out, char *e,
                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct sc s = {json, json + len, 0, NULL, out};
    struct top_ctx t = {out, 0, label, strlen(label), 0};
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
    while (l->blocks) {
        struct listing_block *b = l->blocks;
        l->blocks = b->next;
        free(b);
    }
    free(l->apps);
    memset(l, 0, sizeof *l);
}
