/*
 * semver.c: Semantic Versioning 2.0.0 parsing, precedence and npm-style ranges.
 *
 * Kept apart from the pattern matcher so that the one thing that decides whether a tag is an
 * upgrade can be read and tested against the specification on its own. Parsing is strict (a
 * tag that merely looks like a version must not deploy), ranges are desugared once into plain
 * comparators, and testing a version is then a short loop with no allocation.
 */
#include "semver.h"

#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RANGE_MAX_LEN 256
#define RANGE_MAX_CMPS 64
#define RANGE_MAX_SETS 16
/* Numbers are capped one below UINT64_MAX so that "the next minor" never overflows. */
#define NUM_MAX (UINT64_MAX - 1)

enum op { OP_EQ, OP_LT, OP_LE, OP_GT, OP_GE };

struct cmp {
    enum op op;
    int named_pre; /* the range text wrote a pre-release on this comparator */
    struct semver v;
};

struct cset {
    size_t first, n; /* comparators cmps[first .. first+n); n == 0 means any version */
};

struct semver_range {
    struct cmp *cmps;
    size_t ncmps, capcmps;
    struct cset sets[RANGE_MAX_SETS];
    size_t nsets;
};

/* A version as written in a range: up to three numbers, then x-ranges or nothing. */
struct partial {
    int n; /* how many leading numbers were given (0..3) */
    uint64_t v[3];
    char pre[SEMVER_MAX_LEN + 1];
    char build[SEMVER_MAX_LEN + 1];
};

/* Where a parse error goes: the caller's buffer and the offset of the offending byte. */
struct perr {
    char *err;
    size_t errlen;
    size_t off;
};

/* Records a parse error at offset off as "offset OFF: MESSAGE"; returns -1. */
static int fail(struct perr *pe, size_t off, const char *fmt, ...)
{
    va_list ap;
    int w = 0;
    pe->off = off;
    if (!pe->err || pe->errlen == 0) return -1;
    w = snprintf(pe->err, pe->errlen, "offset %zu: ", off);
    if (w < 0 || (size_t)w >= pe->errlen) return -1;
    va_start(ap, fmt);
    vsnprintf(pe->err + w, pe->errlen - (size_t)w, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_ident_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* Parses a number without leading zeros at s[*pos]; advances *pos. */
static int parse_num(const char *s, size_t *pos, uint64_t *out, struct perr *pe)
{
    size_t i = *pos;
    uint64_t v = 0;

    if (!is_digit(s[i])) {
        return fail(pe, i, "expected a number");
    }
    if (s[i] == '0' && is_digit(s[i + 1])) {
        return fail(pe, i, "leading zero in a number");
    }
    while (is_digit(s[i])) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (NUM_MAX - d) / 10) {
            return fail(pe, *pos, "number too large");
        }
        v = v * 10 + d;
        i++;
    }
    *pos = i;
    *out = v;
    return 0;
}

/*
 * Copies dot-separated identifiers starting at s[*pos] into out (capacity SEMVER_MAX_LEN + 1).
 * Numeric identifiers may not have leading zeros when numeric_strict (pre-release, not build).
 */
static int parse_idents(const char *s, size_t *pos, char *out, int numeric_strict, struct perr *pe)
{
    size_t i = *pos, o = 0;

    for (;;) {
        size_t start = i;
        int all_digits = 1;
        while (is_ident_char(s[i])) {
            if (!is_digit(s[i])) all_digits = 0;
            i++;
        }
        if (i == start) {
            return fail(pe, i, "empty identifier");
        }
        if (numeric_strict && all_digits && s[start] == '0' && i - start > 1) {
            return fail(pe, start, "leading zero in a numeric pre-release identifier");
        }
        if (o + (i - start) + 1 > SEMVER_MAX_LEN) {
            return fail(pe, start, "identifiers too long");
        }
        memcpy(out + o, s + start, i - start);
        o += i - start;
        if (s[i] != '.') break;
        out[o++] = '.';
        i++;
    }
    out[o] = '\0';
    *pos = i;
    return 0;
}

static int is_x(char c)
{
    return c == 'x' || c == 'X' || c == '*';
}

/*
 * Parses a (possibly partial) version at s[*pos]. With allow_x, parts may be x, X, * or missing;
 * after the first such part no number may follow. Stops at the first character that cannot
 * continue the version and leaves *pos there.
 */
static int parse_partial(const char *s, size_t *pos, int allow_x, struct partial *p,
                         struct perr *pe)
{
    size_t i = *pos;
    int k;

    memset(p, 0, sizeof(*p));
    for (k = 0; k < 3; k++) {
        if (k > 0) {
            if (s[i] != '.') {
                if (allow_x) break;
                return fail(pe, i, "expected '.' (MAJOR.MINOR.PATCH)");
            }
            i++;
        }
        if (allow_x && is_x(s[i])) {
            i++;
            /* Everything after an x must be x too: "1.x.3" says nothing sensible. */
            while (s[i] == '.' && is_x(s[i + 1]))
                i += 2;
            if (s[i] == '.') {
                return fail(pe, i, "a number cannot follow 'x'");
            }
            break;
        }
        if (parse_num(s, &i, &p->v[k], pe) < 0) return -1;
        p->n = k + 1;
    }
    if (s[i] == '-') {
        if (p->n < 3) {
            return fail(pe, i, "a pre-release needs a full MAJOR.MINOR.PATCH");
        }
        i++;
        if (parse_idents(s, &i, p->pre, 1, pe) < 0) return -1;
    }
    if (s[i] == '+') {
        if (p->n < 3) {
            return fail(pe, i, "build metadata needs a full MAJOR.MINOR.PATCH");
        }
        i++;
        if (parse_idents(s, &i, p->build, 0, pe) < 0) return -1;
    }
    *pos = i;
    return 0;
}

int semver_parse(const char *text, int allow_v, struct semver *out, char *err, size_t errlen)
{
    struct perr pe = {err, errlen, 0};
    struct partial p;
    size_t i = 0;

    if (!text || !out) {
        err_printf(err, errlen, "no version");
        return -1;
    }
    if (strlen(text) > SEMVER_MAX_LEN) {
        err_printf(err, errlen, "longer than %d characters", SEMVER_MAX_LEN);
        return -1;
    }
    if (allow_v && text[0] == 'v') i = 1;
    if (parse_partial(text, &i, 0, &p, &pe) < 0) return -1;
    if (text[i] != '\0') return fail(&pe, i, "unexpected '%c'", text[i]);
    out->major = p.v[0];
    out->minor = p.v[1];
    out->patch = p.v[2];
    memcpy(out->pre, p.pre, sizeof(out->pre));
    memcpy(out->build, p.build, sizeof(out->build));
    return 0;
}

/* Compares one identifier each from a and b (up to '.' or NUL); advances both. */
static int compare_ident(const char **a, const char **b)
{
    size_t la = strcspn(*a, "."), lb = strcspn(*b, ".");
    int na = la == strspn(*a, "0123456789"), nb = lb == strspn(*b, "0123456789");
    int r;

    if (na && nb) {
        /* No leading zeros, so the longer number is the larger; this works at any size. */
        r = la < lb ? -1 : la > lb ? 1 : memcmp(*a, *b, la);
    } else if (na != nb) {
        r = na ? -1 : 1; /* numeric identifiers have lower precedence */
    } else {
        r = memcmp(*a, *b, la < lb ? la : lb);
        if (r == 0) r = la < lb ? -1 : la > lb ? 1 : 0;
    }
    *a += la;
    *b += lb;
    return r;
}

static int compare_pre(const char *a, const char *b)
{
    if (!*a || !*b) return (*a ? -1 : 0) + (*b ? 1 : 0); /* a release outranks a pre-release */
    for (;;) {
        int r = compare_ident(&a, &b);
        if (r) return r < 0 ? -1 : 1;
        if (!*a || !*b) return (*a ? 1 : 0) - (*b ? 1 : 0); /* more identifiers rank higher */
        a++;
        b++;
    }
}

int semver_compare(const struct semver *a, const struct semver *b)
{
    if (a->major != b->major) return a->major < b->major ? -1 : 1;
    if (a->minor != b->minor) return a->minor < b->minor ? -1 : 1;
    if (a->patch != b->patch) return a->patch < b->patch ? -1 : 1;
    return compare_pre(a->pre, b->pre);
}

static int add_cmp(semver_range *r, enum op op, uint64_t ma, uint64_t mi, uint64_t pa,
                   const char *pre)
{
    struct cmp *c;

    if (r->ncmps == RANGE_MAX_CMPS) return -1;
    if (r->ncmps == r->capcmps) {
        size_t cap = r->capcmps ? r->capcmps * 2 : 4;
        struct cmp *nc = realloc(r->cmps, cap * sizeof(*nc));
        if (!nc) return -1;
        r->cmps = nc;
        r->capcmps = cap;
    }
    c = &r->cmps[r->ncmps++];
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->v.major = ma;
    c->v.minor = mi;
    c->v.patch = pa;
    if (pre && *pre) {
        snprintf(c->v.pre, sizeof(c->v.pre), "%s", pre);
        c->named_pre = 1;
    }
    r->sets[r->nsets - 1].n++;
    return 0;
}

/* Turns one comparator (operator text + partial version) into plain comparators. */
static int desugar(semver_range *r, const char *op, const struct partial *p, size_t at,
                   struct perr *pe)
{
    uint64_t M = p->v[0], m = p->v[1], pt = p->v[2];
    int n = p->n, rc = 0;

    if (n == 0) {
        if (!strcmp(op, ">") || !strcmp(op, "<"))
            return fail(pe, at, "'%s*' matches no version", op);
        return 0; /* any version */
    }
    if (!*op || !strcmp(op, "=")) {
        if (n == 3) {
            rc = add_cmp(r, OP_EQ, M, m, pt, p->pre);
        } else {
            rc |= add_cmp(r, OP_GE, M, n == 2 ? m : 0, 0, NULL);
            rc |= n == 2 ? add_cmp(r, OP_LT, M, m + 1, 0, NULL)
                         : add_cmp(r, OP_LT, M + 1, 0, 0, NULL);
        }
    } else if (!strcmp(op, ">=")) {
        rc = add_cmp(r, OP_GE, M, m, pt, p->pre);
    } else if (!strcmp(op, ">")) {
        if (n == 3)
            rc = add_cmp(r, OP_GT, M, m, pt, p->pre);
        else if (n == 2)
            rc = add_cmp(r, OP_GE, M, m + 1, 0, NULL);
        else
            rc = add_cmp(r, OP_GE, M + 1, 0, 0, NULL);
    } else if (!strcmp(op, "<")) {
        rc = add_cmp(r, OP_LT, M, m, pt, p->pre);
    } else if (!strcmp(op, "<=")) {
        if (n == 3)
            rc = add_cmp(r, OP_LE, M, m, pt, p->pre);
        else if (n == 2)
            rc = add_cmp(r, OP_LT, M, m + 1, 0, NULL);
        else
            rc = add_cmp(r, OP_LT, M + 1, 0, 0, NULL);
    } else if (!strcmp(op, "~")) {
        rc |= add_cmp(r, OP_GE, M, m, pt, p->pre);
        rc |= n >= 2 ? add_cmp(r, OP_LT, M, m + 1, 0, NULL) : add_cmp(r, OP_LT, M + 1, 0, 0, NULL);
    } else { /* "^": keep the left-most non-zero part fixed */
        rc |= add_cmp(r, OP_GE, M, m, pt, p->pre);
        if (M > 0 || n == 1)
            rc |= add_cmp(r, OP_LT, M + 1, 0, 0, NULL);
        else if (m > 0 || n == 2)
            rc |= add_cmp(r, OP_LT, 0, m + 1, 0, NULL);
        else
            rc |= add_cmp(r, OP_LT, 0, 0, pt + 1, NULL);
    }
    if (rc) return fail(pe, at, "too many comparators (at most %d)", RANGE_MAX_CMPS);
    return 0;
}

semver_range *semver_range_new(const char *text, char *err, size_t errlen, size_t *err_offset)
{
    struct perr pe = {err, errlen, 0};
    semver_range *r = NULL;
    struct partial *p = NULL;
    size_t i = 0;

    if (!text || !*text) {
        fail(&pe, 0, "empty range");
        goto fail;
    }
    if (strlen(text) > RANGE_MAX_LEN) {
        fail(&pe, RANGE_MAX_LEN, "range longer than %d characters", RANGE_MAX_LEN);
        goto fail;
    }
    r = calloc(1, sizeof(*r));
    p = malloc(sizeof(*p));
    if (!r || !p) {
        fail(&pe, 0, "out of memory");
        goto fail;
    }
    r->nsets = 1;
    for (;;) {
        char op[3] = "";
        size_t at = i;
        if (text[i] == '^' || text[i] == '~' || text[i] == '=') {
            op[0] = text[i++];
        } else if (text[i] == '>' || text[i] == '<') {
            op[0] = text[i++];
            if (text[i] == '=') op[1] = text[i++];
        }
        if (text[i] == 'v' && is_digit(text[i + 1])) i++;
        if (!is_digit(text[i]) && !is_x(text[i])) {
            fail(&pe, i, "expected a version, '*' or an operator");
            goto fail;
        }
        if (parse_partial(text, &i, 1, p, &pe) < 0) goto fail;
        if (desugar(r, op, p, at, &pe) < 0) goto fail;
        if (text[i] == '\0') break;
        if (text[i] == ',') {
            i++;
            continue;
        }
        if (text[i] == '|' && text[i + 1] == '|') {
            if (r->nsets == RANGE_MAX_SETS) {
                fail(&pe, i, "too many '||' alternatives (at most %d)", RANGE_MAX_SETS);
                goto fail;
            }
            i += 2;
            r->sets[r->nsets].first = r->ncmps;
            r->sets[r->nsets].n = 0;
            r->nsets++;
            continue;
        }
        fail(&pe, i, "unexpected '%c' (comparators are joined by ',' or '||')", text[i]);
        goto fail;
    }
    free(p);
    if (err_offset) *err_offset = 0;
    return r;
fail:
    if (err_offset) *err_offset = pe.off;
    free(p);
    semver_range_free(r);
    return NULL;
}

static int cmp_holds(const struct cmp *c, const struct semver *v)
{
    int d = semver_compare(v, &c->v);
    switch (c->op) {
    case OP_EQ:
        return d == 0;
    case OP_LT:
        return d < 0;
    case OP_LE:
        return d <= 0;
    case OP_GT:
        return d > 0;
    default:
        return d >= 0;
    }
}

int semver_range_test(const semver_range *r, const struct semver *v, char *why, size_t whylen)
{
    int pre_blocked = 0;
    size_t s, k;

    for (s = 0; s < r->nsets; s++) {
        const struct cset *set = &r->sets[s];
        int ok = 1, named = 0;
        for (k = 0; k < set->n && ok; k++) {
            const struct cmp *c = &r->cmps[set->first + k];
            ok = cmp_holds(c, v);
            if (c->named_pre && c->v.major == v->major && c->v.minor == v->minor &&
                c->v.patch == v->patch)
                named = 1;
        }
        if (!ok) continue;
        if (!v->pre[0] || named) return 1;
        pre_blocked = 1;
    }
    if (pre_blocked)
        err_printf(why, whylen,
                   "is a pre-release and the range names no pre-release of %llu.%llu.%llu",
                   (unsigned long long)v->major, (unsigned long long)v->minor,
                   (unsigned long long)v->patch);
    else
        err_printf(why, whylen, "is outside the range");
    return 0;
}

/* Appends to buf at *used; returns -1 once the text no longer fits. */
static int append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int w;

    if (*used >= len) return -1;
    va_start(ap, fmt);
    w = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= len - *used) {
        *used = len;
        return -1;
    }
    *used += (size_t)w;
    return 0;
}

int semver_range_format(const semver_range *r, char *buf, size_t len)
{
    static const char *ops[] = {"=", "<", "<=", ">", ">="};
    size_t used = 0, s, k;
    int rc = 0;

    if (!buf || len == 0) return -1;
    buf[0] = '\0';
    for (s = 0; s < r->nsets; s++) {
        const struct cset *set = &r->sets[s];
        if (s > 0) rc |= append(buf, len, &used, "||");
        if (set->n == 0) rc |= append(buf, len, &used, "*");
        for (k = 0; k < set->n; k++) {
            const struct cmp *c = &r->cmps[set->first + k];
            rc |= append(buf, len, &used, "%s%s%llu.%llu.%llu%s%s", k ? "," : "", ops[c->op],
                         (unsigned long long)c->v.major, (unsigned long long)c->v.minor,
                         (unsigned long long)c->v.patch, c->v.pre[0] ? "-" : "", c->v.pre);
        }
    }
    return rc ? -1 : 0;
}

void semver_range_free(semver_range *r)
{
    if (!r) return;
    free(r->cmps);
    free(r);
}
