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
        /* New blocks go first, so that an app read too early can give its strings back
         * (drop_since); after a long string the next short one starts a new block. */
        nb->next = b;
        s->out->blocks = nb;
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

/* One member at s->p (its key, ':', its value). */
static int member(struct sc *s, member_fn fn, void *ctx)
{
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
    return rc;
}

/* The rest of an object whose '{' was read: from its first member on, or (after_value) from
 * the end of a member's value on. */
static int object_rest(struct sc *s, member_fn fn, void *ctx, int after_value)
{
    ws(s);
    if (!after_value && s->p < s->end && *s->p == '}') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        if (!after_value && member(s, fn, ctx) < 0) return -1;
        after_value = 0;
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

static int object(struct sc *s, member_fn fn, void *ctx)
{
    if (++s->depth > MAX_DEPTH) return err(s, "nested too deeply");
    s->p++;
    return object_rest(s, fn, ctx, 0);
}

/* Walks an array at s->p ('['), calling on_elem for each element (or skipping them). */
typedef int (*elem_fn)(struct sc *s, void *ctx);

/* The rest of an array whose '[' was read: from its first element on, or (after_elem) from
 * the end of an element on. */
static int array_rest(struct sc *s, elem_fn fn, void *ctx, int after_elem)
{
    ws(s);
    if (!after_elem && s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        if (!after_elem) {
            ws(s);
            if ((fn ? fn(s, ctx) : value(s)) < 0) return -1;
        }
        after_elem = 0;
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

static int array(struct sc *s, elem_fn fn, void *ctx)
{
    if (++s->depth > MAX_DEPTH) return err(s, "nested too deeply");
    s->p++;
    return array_rest(s, fn, ctx, 0);
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

static int app_elem(struct sc *s, void *ctx)
{
    struct listing_stream *t = ctx;
    if (s->p >= s->end || *s->p != '{') return value(s); /* not an app: cJSON skips it too */
    if (t->out.n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        struct listed_app *na = realloc(t->out.apps, ncap * sizeof *na);
        if (!na) return err(s, "out of memory");
        t->out.apps = na;
        t->cap = ncap;
    }
    struct listed_app *app = &t->out.apps[t->out.n++];
    memset(app, 0, sizeof *app);
    struct app_ctx a = {app, t->label, t->label_len, 0, 0, 0};
    return object(s, app_member, &a);
}

static int top_member(struct sc *s, const struct key *key, void *ctx)
{
    struct listing_stream *t = ctx;
    if (KEY_IS(key, "apps") && !t->seen_apps++) {
        if (s->p < s->end && *s->p == '[') return array(s, app_elem, ctx);
        return err(s, "\"apps\" is not an array");
    }
    return value(s);
}

enum { LS_PREFIX, LS_FIRST, LS_NEXT, LS_OFF };

void listing_stream_init(struct listing_stream *ls, const char *label)
{
    memset(ls, 0, sizeof *ls);
    ls->label = label;
    ls->label_len = strlen(label);
    ls->phase = LS_PREFIX;
}

/* Reads the document's opening `{"apps":[` (white space allowed between the tokens, as JSON
 * does) once it has all come; anything else turns reading ahead off: the end reads it all. */
/* Not all here yet: try again once the text past pos has doubled, so that however it arrives
 * (a long app, a long run of white space) reading ahead costs about two passes in all. */
static void wait_for_more(struct listing_stream *ls, size_t len)
{
    ls->retry_at = len + (len - ls->pos);
}

/* Gives back the strings kept since the mark (the first block then and how full it was). */
static void drop_since(struct listing *l, struct listing_block *mark, size_t used)
{
    while (l->blocks && l->blocks != mark) {
        struct listing_block *b = l->blocks;
        l->blocks = b->next;
        free(b);
    }
    if (mark) mark->used = used;
}

static void stream_prefix(struct listing_stream *ls, const char *text, size_t len)
{
    static const char *const tokens[] = {"{", "\"apps\"", ":", "["};
    const char *p = text, *end = text + len;
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            p++;
        size_t n = strlen(tokens[i]), have = (size_t)(end - p);
        if (memcmp(p, tokens[i], have < n ? have : n) != 0) {
            ls->phase = LS_OFF;
            return;
        }
        if (have < n) { /* not all here yet */
            wait_for_more(ls, len);
            return;
        }
        p += n;
    }
    ls->pos = (size_t)(p - text);
    ls->seen_apps = 1;
    ls->phase = LS_FIRST;
}

void listing_stream_feed(struct listing_stream *ls, const char *text, size_t len)
{
    if (len < ls->retry_at) return;
    if (ls->phase == LS_PREFIX) stream_prefix(ls, text, len);
    while ((ls->phase == LS_FIRST || ls->phase == LS_NEXT) && !ls->ahead_done) {
        struct sc s = {text + ls->pos, text + len, 2, NULL, &ls->out};
        ws(&s);
        /* White space is read for good: the end allows it here as the whole reading does. A
         * ',' is not: only with the element after it. */
        ls->pos = (size_t)(s.p - text);
        if (ls->phase == LS_NEXT && s.p < s.end) {
            if (*s.p != ',') { /* ']' or an error: the end reads it */
                ls->ahead_done = 1;
                return;
            }
            s.p++;
            ws(&s);
        }
        if (s.p >= s.end) {
            wait_for_more(ls, len);
            return;
        }
        /* Only objects are read ahead: they end with their own '}', so one that reads whole
         * now reads the same when all has come; a number at the edge could still grow. */
        if (*s.p != '{') {
            ls->ahead_done = 1;
            return;
        }
        size_t n = ls->out.n;
        struct listing_block *mark = ls->out.blocks;
        size_t used = mark ? mark->used : 0;
        if (app_elem(&s, ls) < 0) { /* not all here yet (or not valid: the end says) */
            ls->out.n = n;
            drop_since(&ls->out, mark, used);
            wait_for_more(ls, len);
            return;
        }
        ls->pos = (size_t)(s.p - text);
        ls->phase = LS_NEXT;
    }
}

int listing_stream_end(struct listing_stream *ls, const char *json, size_t len, struct listing *out,
                       char *e, size_t errlen)
{
    struct sc s = {json, json + len, 0, NULL, &ls->out};
    int rc;
    if (ls->phase == LS_FIRST || ls->phase == LS_NEXT) {
        /* Inside the top object's "apps" array, after what was read ahead. */
        s.p = json + ls->pos;
        s.depth = 2;
        rc = array_rest(&s, app_elem, ls, ls->phase == LS_NEXT);
        if (rc == 0) rc = object_rest(&s, top_member, ls, 1);
    } else {
        ws(&s);
        rc = (s.p < s.end && *s.p == '{') ? object(&s, top_member, ls) : err(&s, "not an object");
    }
    if (rc == 0) {
        ws(&s);
        if (s.p != s.end) rc = err(&s, "trailing data");
    }
    if (rc == 0 && !ls->seen_apps) rc = err(&s, "no \"apps\" array");
    if (rc < 0) {
        snprintf(e, errlen, "Marathon's app list is not valid: %s at byte %ld", s.fail,
                 (long)(s.p - json));
        listing_stream_free(ls);
        memset(out, 0, sizeof *out);
        return -1;
    }
    *out = ls->out;
    memset(&ls->out, 0, sizeof ls->out);
    ls->cap = 0;
    return 0;
}

void listing_stream_free(struct listing_stream *ls)
{
    listing_free(&ls->out);
    ls->cap = 0;
}

int listing_parse(const char *json, size_t len, const char *label, struct listing *out, char *e,
                  size_t errlen)
{
    struct listing_stream ls;
    listing_stream_init(&ls, label);
    return listing_stream_end(&ls, json, len, out, e, errlen);
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
