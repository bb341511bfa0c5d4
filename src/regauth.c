/*
 * regauth.c: see regauth.h. Everything here reads bytes a registry or a config file chose, so
 * the header parsers are hand-written scanners over (pointer, length) that refuse rather than
 * guess, and the JSON readers refuse what a C string could not carry (\u0000). Secrets pass
 * through cJSON and scratch buffers; both are wiped before they are freed.
 */
#include "regauth.h"

#include "buf.h"
#include "reference.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Byte classes and a cursor over (pointer, length)                                           */

struct lex {
    const unsigned char *p;
    size_t n, i;
    int sep; /* 1 when a ',' was consumed just before the current position */
};

static int at_end(const struct lex *l)
{
    return l->i >= l->n;
}

static int cur(const struct lex *l)
{
    return l->i < l->n ? l->p[l->i] : -1;
}

/* RFC 9110 tchar. */
static int is_tchar(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != -1 && c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 9110 token68 characters, without the trailing '='s. */
static int is_t68char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

static int is_ctl(int c)
{
    return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* 1 when the n bytes at s equal the lower-case literal lit, ignoring ASCII case. */
static int ci_eq(const unsigned char *s, size_t n, const char *lit)
{
    if (strlen(lit) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((char)s[i]) != lit[i]) return 0;
    return 1;
}

/* 1 when NUL-terminated s starts with the lower-case literal lit, ignoring ASCII case. */
static int ci_prefix(const char *s, const char *lit)
{
    for (size_t i = 0; lit[i]; i++)
        if (ascii_lower(s[i]) != lit[i]) return 0; /* also stops at s's NUL */
    return 1;
}

static void skip_ows(struct lex *l)
{
    while (cur(l) == ' ' || cur(l) == '\t')
        l->i++;
}

/* Skips whitespace and empty list elements (RFC 9110 section 5.6.1); returns the commas seen. */
static int skip_list_sep(struct lex *l)
{
    int commas = 0;
    for (;;) {
        skip_ows(l);
        if (cur(l) != ',') return commas;
        commas++;
        l->i++;
    }
}

static size_t lex_token(struct lex *l)
{
    size_t s = l->i;
    while (is_tchar(cur(l)))
        l->i++;
    return l->i - s;
}

/* Appends c to dst (cap bytes, *o used); -2 when it would not fit with its NUL. */
static int put(char *dst, size_t cap, size_t *o, int c)
{
    if (!dst) return 0;
    if (*o + 1 >= cap) return -2;
    dst[(*o)++] = (char)c;
    dst[*o] = '\0';
    return 0;
}

/* Reads a quoted-string (cursor on the opening quote), unescaping quoted-pairs into dst.
 * 0, -1 (syntax, err set) or -2 (too long). */
static int read_quoted(struct lex *l, char *dst, size_t cap, size_t *o, char *err, size_t errlen)
{
    size_t open = l->i++;
    while (!at_end(l)) {
        int c = l->p[l->i++];
        if (c == '"') return 0;
        if (c == '\\') {
            if (at_end(l)) break;
            c = l->p[l->i++];
        }
        if (is_ctl(c)) {
            err_printf(err, errlen, "control character in a quoted string at byte %zu", l->i - 1);
            return -1;
        }
        if (put(dst, cap, o, c) < 0) return -2;
    }
    err_printf(err, errlen, "quoted string opened at byte %zu is not closed", open);
    return -1;
}

/* Reads token / quoted-string into dst (may be NULL to skip); see read_quoted for results. */
static int read_value(struct lex *l, char *dst, size_t cap, char *err, size_t errlen)
{
    size_t o = 0;
    if (dst) dst[0] = '\0';
    if (cur(l) == '"') return read_quoted(l, dst, cap, &o, err, errlen);
    size_t s = l->i, n = lex_token(l);
    if (n == 0) {
        err_printf(err, errlen, "expected a token or a quoted string at byte %zu", s);
        return -1;
    }
    for (size_t k = 0; k < n; k++)
        if (put(dst, cap, &o, l->p[s + k]) < 0) return -2;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* WWW-Authenticate                                                                           */

struct chal {
    struct regauth_challenge c;
    int known; /* scheme is Basic or Bearer: keep its parameters */
    int seen_realm, seen_service, seen_scope;
};

/* 1 when the cursor is on "token BWS =", i.e. an auth-param rather than the next scheme. */
static int looks_like_param(const struct lex *l)
{
    struct lex t = *l;
    if (lex_token(&t) == 0) return 0;
    skip_ows(&t);
    return cur(&t) == '=';
}

/* After "scheme SP": a token68 followed by the end or a ','. Consumes it and returns 1. */
static int skip_token68(struct lex *l)
{
    struct lex t = *l;
    size_t s = t.i;
    while (is_t68char(cur(&t)))
        t.i++;
    if (t.i == s) return 0;
    while (cur(&t) == '=')
        t.i++;
    skip_ows(&t);
    if (!at_end(&t) && cur(&t) != ',') return 0;
    *l = t;
    return 1;
}

static int parse_param(struct lex *l, struct chal *ch, char *err, size_t errlen)
{
    size_t s = l->i, n = lex_token(l);
    skip_ows(l);
    l->i++; /* '=', as looks_like_param saw */
    skip_ows(l);
    const struct {
        const char *name;
        char *dst;
        size_t cap;
        int *seen;
    } slots[] = {
        {"realm", ch->c.realm, sizeof ch->c.realm, &ch->seen_realm},
        {"service", ch->c.service, sizeof ch->c.service, &ch->seen_service},
        {"scope", ch->c.scope, sizeof ch->c.scope, &ch->seen_scope},
    };
    const char *what = NULL;
    char *dst = NULL;
    size_t cap = 0;
    int *seen = NULL;
    for (size_t k = 0; ch->known && k < sizeof slots / sizeof slots[0]; k++)
        if (ci_eq(l->p + s, n, slots[k].name))
            what = slots[k].name, dst = slots[k].dst, cap = slots[k].cap, seen = slots[k].seen;
    if (seen && *seen) {
        err_printf(err, errlen, "parameter %s appears twice in one challenge (byte %zu)", what, s);
        return -1;
    }
    if (seen) *seen = 1;
    int rc = read_value(l, dst, cap, err, errlen);
    if (rc == -2)
        err_printf(err, errlen, "parameter %s at byte %zu is longer than %zu bytes", what, s,
                   cap - 1);
    return rc < 0 ? -1 : 0;
}

/* Parameters up to the end or the next challenge; leaves l->sep saying whether a ',' came
 * before that challenge. */
static int parse_params(struct lex *l, struct chal *ch, char *err, size_t errlen)
{
    for (;;) {
        int commas = skip_list_sep(l);
        if (at_end(l)) return 0;
        if (!looks_like_param(l)) {
            l->sep = commas > 0;
            return 0;
        }
        if (parse_param(l, ch, err, errlen) < 0) return -1;
        skip_ows(l);
        if (!at_end(l) && cur(l) != ',') {
            err_printf(err, errlen, "expected ',' or the end after a parameter at byte %zu", l->i);
            return -1;
        }
    }
}

static int parse_one_challenge(struct lex *l, struct chal *ch, char *err, size_t errlen)
{
    size_t s = l->i, n = lex_token(l);
    if (n == 0) {
        err_printf(err, errlen, "expected an authentication scheme at byte %zu", s);
        return -1;
    }
    if (ci_eq(l->p + s, n, "bearer")) ch->c.scheme = REGAUTH_BEARER;
    if (ci_eq(l->p + s, n, "basic")) ch->c.scheme = REGAUTH_BASIC;
    ch->known = ch->c.scheme != 0;
    l->sep = 0;
    if (at_end(l)) return 0;
    if (cur(l) == ',') {
        l->sep = skip_list_sep(l) > 0;
        return 0;
    }
    if (cur(l) != ' ' && cur(l) != '\t') {
        err_printf(err, errlen, "expected a space after the scheme at byte %zu", l->i);
        return -1;
    }
    skip_ows(l);
    if (skip_token68(l)) {
        l->sep = skip_list_sep(l) > 0;
        return 0;
    }
    return parse_params(l, ch, err, errlen);
}

int regauth_parse_challenge(const char *hdr, size_t len, struct regauth_challenge *out, char *err,
                            size_t errlen)
{
    struct lex l = {(const unsigned char *)hdr, hdr ? len : 0, 0, 0};
    int have = 0;
    skip_list_sep(&l);
    if (at_end(&l)) {
        err_printf(err, errlen, "WWW-Authenticate is empty");
        return -1;
    }
    while (!at_end(&l)) {
        struct chal ch;
        memset(&ch, 0, sizeof ch);
        if (parse_one_challenge(&l, &ch, err, errlen) < 0) return -1;
        if (ch.known && (int)ch.c.scheme > have) {
            *out = ch.c;
            have = (int)ch.c.scheme;
        }
        if (!at_end(&l) && !l.sep) {
            err_printf(err, errlen, "expected ',' between challenges at byte %zu", l.i);
            return -1;
        }
    }
    if (!have) {
        err_printf(err, errlen, "WWW-Authenticate offers neither Basic nor Bearer");
        return -1;
    }
    if (out->scheme == REGAUTH_BEARER && out->realm[0] == '\0') {
        err_printf(err, errlen, "the Bearer challenge has no realm (token endpoint)");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Link                                                                                       */

/* 1 when the space-separated relation list holds "next" (relation types ignore case). */
static int rel_has_next(const char *rel)
{
    const char *s = rel;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strcspn(s, " \t");
        if (ci_eq((const unsigned char *)s, n, "next")) return 1;
        s += n;
    }
    return 0;
}

/* "<" target ">": returns the target's offset and length through *s and *n. */
static int link_target(struct lex *l, size_t *s, size_t *n, char *err, size_t errlen)
{
    if (cur(l) != '<') {
        err_printf(err, errlen, "expected '<' at byte %zu", l->i);
        return -1;
    }
    size_t open = l->i++;
    *s = l->i;
    while (!at_end(l) && cur(l) != '>') {
        int c = cur(l);
        if (is_ctl(c) || c == ' ' || c == '\t' || c == '<') {
            err_printf(err, errlen, "byte %zu has no place in a link target", l->i);
            return -1;
        }
        l->i++;
    }
    if (at_end(l)) {
        err_printf(err, errlen, "'<' at byte %zu is not closed", open);
        return -1;
    }
    *n = l->i++ - *s;
    return 0;
}

/* The ";"-separated parameters after a target; the first rel value lands in rel. */
static int link_params(struct lex *l, char *rel, size_t relcap, char *err, size_t errlen)
{
    int have_rel = 0;
    rel[0] = '\0';
    for (;;) {
        skip_ows(l);
        if (at_end(l) || cur(l) == ',') return 0;
        if (cur(l) != ';') {
            err_printf(err, errlen, "expected ';' or ',' at byte %zu", l->i);
            return -1;
        }
        l->i++;
        skip_ows(l);
        size_t s = l->i, n = lex_token(l);
        if (n == 0) {
            err_printf(err, errlen, "expected a link parameter name at byte %zu", s);
            return -1;
        }
        skip_ows(l);
        if (cur(l) != '=') continue;
        l->i++;
        skip_ows(l);
        int keep = !have_rel && ci_eq(l->p + s, n, "rel"); /* later rels are ignored (8288) */
        int rc = read_value(l, keep ? rel : NULL, relcap, err, errlen);
        if (rc == -2) err_printf(err, errlen, "rel at byte %zu is too long", s);
        if (rc < 0) return -1;
        have_rel |= keep;
    }
}

int regauth_link_next(const char *hdr, size_t len, char *url, size_t urllen, char *err,
                      size_t errlen)
{
    struct lex l = {(const unsigned char *)hdr, hdr ? len : 0, 0, 0};
    int found = 0;
    char rel[256];
    for (;;) {
        skip_list_sep(&l);
        if (at_end(&l)) return found;
        size_t s, n;
        if (link_target(&l, &s, &n, err, errlen) < 0) return -1;
        if (link_params(&l, rel, sizeof rel, err, errlen) < 0) return -1;
        if (!rel_has_next(rel)) continue;
        if (found) {
            err_printf(err, errlen, "more than one rel=\"next\" link (byte %zu)", s);
            return -1;
        }
        if (n == 0 || n >= urllen) {
            err_printf(err, errlen, "the next link is %zu bytes; 1 to %zu fit", n,
                       urllen ? urllen - 1 : 0);
            return -1;
        }
        memcpy(url, l.p + s, n);
        url[n] = '\0';
        found = 1;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* URL resolution                                                                             */

struct origin {
    int https;
    char host[256]; /* lower-cased; IPv6 in brackets */
    unsigned port;  /* the scheme's default when none is written */
};

static int is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

static int is_v6_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
}

/* host[:port] or [v6][:port], n bytes at a, no user information. */
static int parse_authority(const char *a, size_t n, struct origin *o)
{
    size_t h = 0;
    if (n > 0 && a[0] == '[') {
        for (h = 1; h < n && a[h] != ']'; h++)
            if (!is_v6_char(a[h])) return -1;
        if (h == n || h == 1) return -1;
        h++;
    } else {
        while (h < n && is_host_char(a[h]))
            h++;
    }
    if (h == 0 || h >= sizeof o->host) return -1;
    for (size_t k = 0; k < h; k++)
        o->host[k] = ascii_lower(a[k]);
    o->host[h] = '\0';
    o->port = o->https ? 443 : 80;
    if (h == n) return 0;
    if (a[h] != ':' || n - h < 2 || n - h > 6) return -1;
    unsigned p = 0;
    for (size_t k = h + 1; k < n; k++) {
        if (a[k] < '0' || a[k] > '9') return -1;
        p = p * 10 + (unsigned)(a[k] - '0');
    }
    if (p == 0 || p > 65535) return -1;
    o->port = p;
    return 0;
}

/* Reads "http[s]://authority" from s; *rest is what follows the authority. */
static int parse_origin(const char *s, struct origin *o, const char **rest)
{
    o->https = ci_prefix(s, "https://");
    if (!o->https && !ci_prefix(s, "http://")) return -1;
    s += o->https ? 8 : 7;
    size_t n = strcspn(s, "/?#");
    *rest = s + n;
    return parse_authority(s, n, o);
}

/* A byte a URL may hold (RFC 3986), less '#': a fragment has no place in a request. Whether
 * a '%' starts a valid escape is left to the server. */
static int is_url_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("\"<>\\^`{|}#", c);
}

static int url_chars_ok(const char *s, size_t *bad)
{
    for (size_t i = 0; s[i]; i++)
        if (!is_url_char((unsigned char)s[i])) {
            *bad = i;
            return 0;
        }
    return 1;
}

/* The origin and path+query that ref names, relative to base. */
static int ref_origin(const char *ref, const struct origin *base, struct origin *o,
                      const char **rest, char *err, size_t errlen)
{
    *o = *base;
    if (ref[0] == '/' && ref[1] != '/') {
        *rest = ref;
        return 0;
    }
    int ok;
    if (ref[0] == '/') {
        size_t n = strcspn(ref + 2, "/?");
        *rest = ref + 2 + n;
        ok = !memchr(ref + 2, '@', n) && parse_authority(ref + 2, n, o) == 0;
    } else if (strchr(ref, ':') && strcspn(ref, ":") < strcspn(ref, "/?")) {
        ok = parse_origin(ref, o, rest) == 0 && !memchr(ref, '@', (size_t)(*rest - ref));
    } else {
        err_printf(err, errlen, "next URL is a relative path without a leading '/'");
        return -1;
    }
    if (!ok) {
        err_printf(err, errlen,
                   "next URL has no usable http(s)://host[:port] (user "
                   "information, another scheme or a malformed host)");
        return -1;
    }
    return 0;
}

int regauth_resolve_url(const char *base, const char *ref, char *out, size_t outlen, char *err,
                        size_t errlen)
{
    struct origin b, r;
    const char *brest, *rest;
    size_t bad;
    memset(&b, 0, sizeof b);
    if (!base || parse_origin(base, &b, &brest) < 0 || memchr(base, '@', (size_t)(brest - base)) ||
        (*brest && strcmp(brest, "/") != 0)) {
        err_printf(err, errlen, "registry base URL is not http(s)://host[:port]");
        return -1;
    }
    if (!ref || !*ref || !url_chars_ok(ref, &bad)) {
        err_printf(err, errlen, "next URL is empty or has a byte with no place in a URL (%zu)",
                   ref && *ref ? bad : 0);
        return -1;
    }
    if (ref_origin(ref, &b, &r, &rest, err, errlen) < 0) return -1;
    if (r.https != b.https || r.port != b.port || strcmp(r.host, b.host) != 0) {
        err_printf(err, errlen,
                   "next URL points to %s://%s:%u, not the registry %s://%s:%u: refused so "
                   "that credentials go nowhere else",
                   r.https ? "https" : "http", r.host, r.port, b.https ? "https" : "http", b.host,
                   b.port);
        return -1;
    }
    size_t blen = (size_t)(brest - base);
    int n = snprintf(out, outlen, "%.*s%s%s", (int)blen, base, *rest == '/' ? "" : "/", rest);
    if (n < 0 || (size_t)n >= outlen) {
        err_printf(err, errlen, "resolved next URL does not fit in %zu bytes", outlen);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON helpers                                                                               */

static cJSON *parse_json(const char *s, size_t len, const char *what, char *err, size_t errlen)
{
    if (!s || len == 0) {
        err_printf(err, errlen, "%s is empty", what);
        return NULL;
    }
    if (json_has_escaped_nul(s, len)) {
        err_printf(err, errlen, "%s holds an escaped NUL (\\u0000), which no field may hold", what);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    size_t off = (end && end >= s && end <= s + len) ? (size_t)(end - s) : 0;
    if (!root) {
        err_printf(err, errlen, "%s is not valid JSON (near byte %zu)", what, off);
        return NULL;
    }
    while (off < len && (s[off] == ' ' || s[off] == '\t' || s[off] == '\r' || s[off] == '\n'))
        off++;
    if (off < len) {
        err_printf(err, errlen, "%s has data after the JSON value (byte %zu)", what, off);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Wipes every string value in the tree, then frees it. */
static void wipe_tree(cJSON *n)
{
    for (; n; n = n->next) {
        if (n->valuestring) OPENSSL_cleanse(n->valuestring, strlen(n->valuestring));
        wipe_tree(n->child);
    }
}

static void delete_wiped(cJSON *root)
{
    if (!root) return;
    wipe_tree(root);
    cJSON_Delete(root);
}

/* A string member, or NULL when absent or null; *bad set when present with another type. */
static const char *opt_string(const cJSON *o, const char *key, int *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsString(v) || !v->valuestring) {
        *bad = 1;
        return NULL;
    }
    return v->valuestring;
}

/* ------------------------------------------------------------------------------------------ */
/* config.json                                                                                */

#define HOST_KEY_MAX 256

/* The host[:port] a config key or a host argument names: scheme and path dropped, lower case,
 * Docker Hub's names folded into "docker.io". 0, or -1 when it is empty or too long. */
static int canon_host(const char *s, char *out, size_t cap)
{
    if (ci_prefix(s, "https://"))
        s += 8;
    else if (ci_prefix(s, "http://"))
        s += 7;
    size_t n = strcspn(s, "/");
    if (n == 0 || n >= cap) return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = ascii_lower(s[i]);
    out[n] = '\0';
    if (!strcmp(out, "index.docker.io") || !strcmp(out, "registry-1.docker.io"))
        snprintf(out, cap, "docker.io");
    return 0;
}

static const cJSON *find_entry(const cJSON *auths, const char *host)
{
    char want[HOST_KEY_MAX], have[HOST_KEY_MAX];
    const cJSON *e;
    cJSON_ArrayForEach(e, auths)
    {
        if (e->string && strcmp(e->string, host) == 0) return e;
    }
    if (canon_host(host, want, sizeof want) < 0) return NULL;
    cJSON_ArrayForEach(e, auths)
    {
        if (e->string && canon_host(e->string, have, sizeof have) == 0 && !strcmp(have, want))
            return e;
    }
    return NULL;
}

/* A registry key as it may appear in an error: printable ASCII only (others become '?'),
 * ending in "..." when it does not fit in cap bytes. */
static void key_name(const char *key, char *out, size_t cap)
{
    size_t i = 0;
    for (; key[i] && i + 4 < cap; i++)
        out[i] = (key[i] > 0x20 && key[i] < 0x7f) ? key[i] : '?';
    if (key[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

static int copy_field(char *dst, size_t cap, const char *src, size_t n, const char *what,
                      const char *key, char *err, size_t errlen)
{
    if (n >= cap) {
        err_printf(err, errlen, "the %s of config.json entry \"%s\" is longer than %zu bytes", what,
                   key, cap - 1);
        return -1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

static int is_b64char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Standard base64 with or without its '=' padding: 0 with the count of data characters, or -1. */
static int b64_check(const char *s, size_t *data)
{
    size_t n = 0, pad = 0;
    while (is_b64char(s[n]))
        n++;
    while (s[n + pad] == '=' && pad < 2)
        pad++;
    if (s[n + pad] != '\0' || n % 4 == 1 || (pad && (n + pad) % 4 != 0)) return -1;
    *data = n;
    return 0;
}

/* Decodes "auth" into a malloc'd buffer (wipe and free it); *outlen is the real length. */
static unsigned char *b64_decode(const char *s, size_t *outlen)
{
    size_t n;
    if (b64_check(s, &n) < 0 || n > 4 * (REGAUTH_USER_MAX + REGAUTH_SECRET_MAX)) return NULL;
    size_t padded = (n + 3) / 4 * 4, pad = padded - n, outcap = padded / 4 * 3 + 1;
    unsigned char *in = malloc(padded + 1), *out = malloc(outcap);
    if (!in || !out) goto fail;
    memcpy(in, s, n);
    memset(in + n, '=', pad);
    int r = EVP_DecodeBlock(out, in, (int)padded);
    if (r < 0 || (size_t)r < pad) goto fail;
    *outlen = (size_t)r - pad; /* EVP_DecodeBlock counts a zero byte for each '=' */
    OPENSSL_cleanse(in, padded);
    free(in);
    return out;
fail:
    if (in) OPENSSL_cleanse(in, padded);
    if (out) OPENSSL_cleanse(out, outcap);
    free(in);
    free(out);
    return NULL;
}

static int decode_auth(const char *auth, const char *key, struct regauth_cred *out, char *err,
                       size_t errlen)
{
    size_t n = 0;
    unsigned char *d = b64_decode(auth, &n);
    int rc = -1;
    if (!d) {
        err_printf(err, errlen, "the auth of config.json entry \"%s\" is not base64", key);
        return -1;
    }
    const unsigned char *colon = memchr(d, ':', n);
    if (memchr(d, '\0', n) || !colon || colon == d) {
        err_printf(err, errlen,
                   "the auth of config.json entry \"%s\" does not decode to user:password", key);
        goto out;
    }
    size_t ulen = (size_t)(colon - d);
    if (copy_field(out->username, sizeof out->username, (const char *)d, ulen, "user name", key,
                   err, errlen) < 0 ||
        copy_field(out->password, sizeof out->password, (const char *)colon + 1, n - ulen - 1,
                   "password", key, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    OPENSSL_cleanse(d, n);
    free(d);
    return rc;
}

static int read_entry(const cJSON *e, const char *key, struct regauth_cred *out, char *err,
                      size_t errlen)
{
    int bad = 0;
    if (!cJSON_IsObject(e)) {
        err_printf(err, errlen, "config.json entry \"%s\" is not an object", key);
        return -1;
    }
    const char *auth = opt_string(e, "auth", &bad), *user = opt_string(e, "username", &bad);
    const char *pass = opt_string(e, "password", &bad);
    const char *idt = opt_string(e, "identitytoken", &bad);
    if (bad) {
        err_printf(err, errlen, "config.json entry \"%s\" has a field that is not a string", key);
        return -1;
    }
    if (auth && *auth) {
        if (decode_auth(auth, key, out, err, errlen) < 0) return -1;
    } else if (user && *user) {
        if (strchr(user, ':')) {
            err_printf(err, errlen, "the user name of config.json entry \"%s\" has a ':'", key);
            return -1;
        }
        if (copy_field(out->username, sizeof out->username, user, strlen(user), "user name", key,
                       err, errlen) < 0 ||
            (pass && copy_field(out->password, sizeof out->password, pass, strlen(pass), "password",
                                key, err, errlen) < 0))
            return -1;
    }
    if (idt && *idt &&
        copy_field(out->identitytoken, sizeof out->identitytoken, idt, strlen(idt), "identitytoken",
                   key, err, errlen) < 0)
        return -1;
    if (!out->username[0] && !out->identitytoken[0]) {
        err_printf(err, errlen,
                   "config.json entry \"%s\" holds no credentials (a credsStore or credHelpers "
                   "may keep them; those are not supported)",
                   key);
        return -1;
    }
    return 1;
}

int regauth_config_lookup(const char *json, size_t len, const char *host, struct regauth_cred *out,
                          char *err, size_t errlen)
{
    char name[112];
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!host || !*host) {
        err_printf(err, errlen, "no registry host to look up");
        return -1;
    }
    cJSON *root = parse_json(json, len, "config.json", err, errlen);
    if (!root) return -1;
    const cJSON *auths =
        cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "auths") : NULL;
    if (!cJSON_IsObject(root) || (auths && !cJSON_IsObject(auths))) {
        err_printf(err, errlen, "config.json is not an object with an \"auths\" object");
        goto out;
    }
    const cJSON *e = auths ? find_entry(auths, host) : NULL;
    if (!e) {
        rc = 0;
        goto out;
    }
    key_name(e->string, name, sizeof name);
    rc = read_entry(e, name, out, err, errlen);
out:
    if (rc < 0) regauth_cred_wipe(out);
    delete_wiped(root);
    return rc;
}

void regauth_cred_wipe(struct regauth_cred *c)
{
    if (c) OPENSSL_cleanse(c, sizeof *c);
}

/* ------------------------------------------------------------------------------------------ */
/* Token endpoint                                                                             */

int regauth_pull_scope(const char *repository, char *out, size_t outlen, char *err, size_t errlen)
{
    if (!repository || !ref_valid_repository(repository)) {
        err_printf(err, errlen, "not a valid repository name for a pull scope");
        return -1;
    }
    int n = snprintf(out, outlen, "repository:%s:pull", repository);
    if (n < 0 || (size_t)n >= outlen) {
        err_printf(err, errlen, "the pull scope does not fit in %zu bytes", outlen);
        return -1;
    }
    return 0;
}

/* Appends name=<percent-encoded v> after sep. */
static int add_param(struct buf *b, const char **sep, const char *name, const char *v, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (buf_printf(b, "%s%s=", *sep, name) < 0) return -1;
    *sep = "&";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        if ((plain ? buf_add(b, &v[i], 1) : buf_add(b, esc, 3)) < 0) return -1;
    }
    return 0;
}

static int check_realm(const char *realm, char *err, size_t errlen)
{
    size_t bad = 0, n = realm ? strlen(realm) : 0;
    int web = (n > 8 && ci_prefix(realm, "https://")) || (n > 7 && ci_prefix(realm, "http://"));
    if (!web || !url_chars_ok(realm, &bad)) {
        err_printf(err, errlen,
                   "realm is not an http(s) URL without spaces, quotes or a fragment (byte %zu)",
                   bad);
        return -1;
    }
    return 0;
}

int regauth_token_url(const char *realm, const char *service, const char *scope, char *out,
                      size_t outlen, char *err, size_t errlen)
{
    if (check_realm(realm, err, errlen) < 0) return -1;
    struct buf b;
    buf_init(&b, outlen ? outlen - 1 : 0);
    size_t rl = strlen(realm);
    const char *sep = !strchr(realm, '?') ? "?" : strchr("?&", realm[rl - 1]) ? "" : "&";
    int rc = buf_add(&b, realm, rl);
    if (rc == 0 && service && *service)
        rc = add_param(&b, &sep, "service", service, strlen(service));
    for (const char *s = scope ? scope : ""; rc == 0 && *s;) {
        size_t n = strcspn(s, " ");
        if (n) rc = add_param(&b, &sep, "scope", s, n);
        s += n + strspn(s + n, " ");
    }
    if (rc < 0 || !b.data) {
        err_printf(err, errlen, "the token URL does not fit in %zu bytes", outlen);
        buf_free(&b);
        return -1;
    }
    memcpy(out, b.data, b.len + 1);
    buf_free(&b);
    return 0;
}

static long lifetime(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 1)
        return REGAUTH_EXPIRES_DEFAULT;
    if (v->valuedouble > REGAUTH_EXPIRES_MAX) return REGAUTH_EXPIRES_MAX;
    return (long)v->valuedouble;
}

/* The token to use: access_token when non-empty, else token; checked for use in a header. */
static const char *pick_token(const cJSON *root, char *err, size_t errlen)
{
    int bad = 0;
    const char *at = opt_string(root, "access_token", &bad), *t = opt_string(root, "token", &bad);
    const char *tok = (at && *at) ? at : t;
    if (bad || !tok || !*tok) {
        err_printf(err, errlen, "token answer holds no \"token\" or \"access_token\" string");
        return NULL;
    }
    size_t n = strlen(tok);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)tok[i] <= 0x20 || (unsigned char)tok[i] >= 0x7f) {
            err_printf(err, errlen, "the token has a byte that cannot go in a header (%zu)", i);
            return NULL;
        }
    if (n >= REGAUTH_TOKEN_MAX) {
        err_printf(err, errlen, "the token is longer than %d bytes", REGAUTH_TOKEN_MAX - 1);
        return NULL;
    }
    return tok;
}

int regauth_parse_token(const char *body, size_t len, char **token, long *expires_in, char *err,
                        size_t errlen)
{
    *token = NULL;
    *expires_in = REGAUTH_EXPIRES_DEFAULT;
    cJSON *root = parse_json(body, len, "token answer", err, errlen);
    if (!root) return -1;
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        err_printf(err, errlen, "token answer is not a JSON object");
        goto out;
    }
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    if (exp && !cJSON_IsNull(exp) && !cJSON_IsNumber(exp)) {
        err_printf(err, errlen, "token answer's expires_in is not a number");
        goto out;
    }
    const char *tok = pick_token(root, err, errlen);
    if (!tok) goto out;
    *token = strdup(tok);
    if (!*token) {
        err_printf(err, errlen, "out of memory copying the token");
        goto out;
    }
    *expires_in = lifetime(exp);
    rc = 0;
out:
    delete_wiped(root);
    return rc;
}

void regauth_secret_free(char *s)
{
    if (!s) return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Error bodies                                                                               */

static int valid_code(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!(is_host_char(s[n])) || n + 1 >= REGAUTH_ERRCODE_MAX) return 0;
    return n > 0;
}

/* Copies a human message: printable ASCII kept, every other byte '?', cut with "...". */
static void copy_message(struct regauth_error *e, const char *m)
{
    size_t cap = sizeof e->message, o = 0, i = 0;
    for (; m[i] && o + 1 < cap; i++)
        e->message[o++] = (m[i] >= 0x20 && m[i] < 0x7f) ? m[i] : '?';
    e->message[o] = '\0';
    e->message_cut = m[i] != '\0';
    if (e->message_cut) memcpy(e->message + cap - 4, "...", 4);
}

int regauth_parse_errors(const char *body, size_t len, struct regauth_error *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    cJSON *root = parse_json(body, len, "error body", err, errlen);
    if (!root) return -1;
    int rc = -1, bad = 0;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "errors");
    const cJSON *first = cJSON_GetArrayItem(list, 0);
    if (!cJSON_IsObject(root) || !cJSON_IsArray(list) || !cJSON_IsObject(first)) {
        err_printf(err, errlen, "not a registry error body {\"errors\":[{\"code\":...}]}");
        goto out;
    }
    const char *code = opt_string(first, "code", &bad), *msg = opt_string(first, "message", &bad);
    if (!code || !valid_code(code)) {
        err_printf(err, errlen, "the registry error has no code of [A-Za-z0-9_.-]{1,%d}",
                   REGAUTH_ERRCODE_MAX - 1);
        goto out;
    }
    memcpy(out->code, code, strlen(code) + 1);
    copy_message(out, msg ? msg : "");
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

enum regauth_error_kind regauth_error_kind(const char *code)
{
    static const struct {
        const char *code;
        enum regauth_error_kind kind;
    } kinds[] = {
        {"MANIFEST_UNKNOWN", REGAUTH_ERR_NOT_FOUND},
        {"NAME_UNKNOWN", REGAUTH_ERR_NOT_FOUND},
        {"BLOB_UNKNOWN", REGAUTH_ERR_NOT_FOUND},
        {"UNAUTHORIZED", REGAUTH_ERR_AUTH},
        {"DENIED", REGAUTH_ERR_AUTH},
        {"TOOMANYREQUESTS", REGAUTH_ERR_RATE},
    };
    for (size_t i = 0; code && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(code, kinds[i].code) == 0) return kinds[i].kind;
    return REGAUTH_ERR_OTHER;
}
