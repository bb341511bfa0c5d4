/*
 * match.c: compiles autodeploy label values (glob, regex: and semver: patterns) into PCRE2 code
 * and tests pushes against them; plus the cache that keeps compiled values between events.
 *
 * Every push is tested against every app, so the work is split: everything that depends only on
 * the label (parsing, safety checks, glob translation, alias expansion, JIT compilation) happens
 * once in match_compile, and match_test is a handful of anchored JIT matches on a subject built
 * on the stack. The cache makes "once" true across events: it is keyed by the label value,
 * reference-counted so a set stays valid while a worker uses it, and bounded with LRU eviction.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "buf.h"
#include "match.h"
#include "semver.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LABEL_MAX_LEN 4096   /* a label value longer than this is rejected */
#define PATTERN_MAX_LEN 1024 /* one pattern */
#define MAX_PATTERNS 64      /* patterns per label value */
#define BRACE_MAX_DEPTH 16   /* {a,{b,c}} nesting */
#define REGEX_MAX_LEN 65536  /* generated PCRE2 source */
#define SUBJECT_MAX_LEN 1024 /* host/repository:tag of a push */
#define MATCH_LIMIT 100000   /* PCRE2 match limit: bounds backtracking per match */
#define DEPTH_LIMIT 1000     /* PCRE2 depth limit (interpreter only; JIT uses its stack) */
#define HEAP_LIMIT_KIB 4096  /* PCRE2 heap limit for the interpreter */
#define NONE SIZE_MAX

enum kind { K_GLOB, K_REGEX, K_SEMVER };

#define QUICK_LEN 32 /* bytes of the literal prefix kept inline, next to the kind */

struct pattern {
    enum kind kind;
    int with_host;         /* subject starts with the push's host and '/' */
    size_t quick_len;      /* min(prefix_len, QUICK_LEN) */
    char quick[QUICK_LEN]; /* start of prefix: checked without another cache miss */
    char *text;            /* as written in the label (control bytes as '?'), for messages */
    char *regex;           /* the PCRE2 source that was compiled */
    pcre2_code *code;      /* glob: host?/repository:tag; regex: repository:tag; semver: repo */
    int jit;               /* code was JIT-compiled */
    char *prefix;          /* literal start of "repository:tag" every match has ("" if none) */
    size_t prefix_len;
    char *literal_repo;  /* regex: repository the push must name (NULL if wildcards allowed) */
    semver_range *range; /* semver only */
    char *range_text;    /* semver: desugared range, for messages */
    /* What a registry must be asked about (match_targets): */
    char *target_host; /* the registry host written in the pattern, NULL when none */
    char *target_repo; /* the repository, NULL when it has wildcards */
    char *target_tag;  /* glob: the one tag it names, NULL when it has wildcards */
};

struct match_set {
    atomic_size_t refs;      /* cache references; match_compile starts at 1 */
    atomic_int md_busy;      /* md is in use by a thread */
    pcre2_match_data *md;    /* reused when free, so most matches allocate nothing */
    pcre2_match_context *mc; /* limits; read-only after compile, shared between threads */
    size_t n;
    struct pattern pats[];
};

/* A compile error: offset inside the pattern and a message. */
struct cerr {
    size_t off;
    char msg[256];
};

static int cerr_set(struct cerr *e, size_t off, const char *fmt, ...)
{
    va_list ap;
    e->off = off;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return -1;
}

static int is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ---- a small growable string with a hard cap ---- */

struct sbuf {
    char *p;
    size_t len, cap;
    int failed; /* out of memory or over REGEX_MAX_LEN */
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *np;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > REGEX_MAX_LEN) {
            b->failed = 1;
            return;
        }
        np = realloc(b->p, cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

/*
 * Appends c so that PCRE2 reads it literally outside a class: a backslash before any
 * non-alphanumeric byte, except the common punctuation of image names, left bare to keep the
 * regex readable. Inside a class (in_class) every non-alphanumeric byte is escaped.
 */
static void sb_lit_ex(struct sbuf *b, char c, int in_class)
{
    char two[2] = {'\\', c};
    if (is_alnum(c) || (!in_class && (c == '/' || c == ':' || c == '-' || c == '_' || c == '@')))
        sb_putn(b, &c, 1);
    else
        sb_putn(b, two, 2);
}

static void sb_lit(struct sbuf *b, char c)
{
    sb_lit_ex(b, c, 0);
}

static void sb_insert(struct sbuf *b, size_t at, const char *s)
{
    size_t n = strlen(s), old = b->len;
    sb_putn(b, s, n); /* grow */
    if (b->failed) return;
    memmove(b->p + at + n, b->p + at, old - at);
    memcpy(b->p + at, s, n);
}

/* ---- registry hosts and aliases ---- */

/* Docker Hub answers to several names; they are always aliases of one another. */
static const char *const hub_aliases[][2] = {
    {"docker.io", "index.docker.io"},
    {"docker.io", "registry-1.docker.io"},
    {"docker.io", "registry.hub.docker.com"},
};

struct hostset {
    const char **name;
    size_t *len;
    size_t n, cap;
};

static int hostset_has(const struct hostset *hs, const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < hs->n; i++)
        if (hs->len[i] == len && strncasecmp(hs->name[i], s, len) == 0) return 1;
    return 0;
}

/* Adds b if a is in the set (or a if b is); returns 1 if the set grew. */
static int hostset_link(struct hostset *hs, const char *a, const char *b)
{
    size_t la, lb;
    if (!a || !b || !*a || !*b) return 0;
    la = strlen(a);
    lb = strlen(b);
    if (hostset_has(hs, a, la) && !hostset_has(hs, b, lb) && hs->n < hs->cap) {
        hs->name[hs->n] = b;
        hs->len[hs->n++] = lb;
        return 1;
    }
    if (hostset_has(hs, b, lb) && !hostset_has(hs, a, la) && hs->n < hs->cap) {
        hs->name[hs->n] = a;
        hs->len[hs->n++] = la;
        return 1;
    }
    return 0;
}

/* Checks NAME[:PORT] or [IPV6][:PORT]; returns the offset of the first bad byte or NONE. */
static size_t host_check(const char *h, size_t n)
{
    size_t i = 0;
    if (n == 0) return 0;
    if (h[0] == '[') {
        for (i = 1; i < n && h[i] != ']'; i++)
            if (!is_alnum(h[i]) && h[i] != ':' && h[i] != '.') return i;
        if (i >= n || i == 1) return i;
        i++;
    } else {
        for (; i < n && h[i] != ':'; i++)
            if (!is_alnum(h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_') return i;
        if (i == 0) return 0;
    }
    if (i < n) {
        size_t p = ++i;
        if (h[p - 1] != ':') return p - 1;
        for (; i < n; i++)
            if (h[i] < '0' || h[i] > '9') return i;
        if (i == p || i - p > 5) return p;
    }
    return NONE;
}

/*
 * Emits "(?i:NAME|ALIAS...)" for the pattern's host and every host aliased to it, directly or
 * through other aliases. Sets *hub when the host is a Docker Hub name.
 */
static int emit_hosts(struct sbuf *re, const char *h, size_t hlen, const struct match_opts *o,
                      int *hub)
{
    struct hostset hs = {0};
    size_t nal = o ? o->n_aliases : 0, i, k;
    size_t nhub = sizeof(hub_aliases) / sizeof(hub_aliases[0]);
    int grew;

    hs.cap = 2 * nal + 2 * nhub + 1;
    hs.name = calloc(hs.cap, sizeof(*hs.name));
    hs.len = calloc(hs.cap, sizeof(*hs.len));
    if (!hs.name || !hs.len) {
        free(hs.name);
        free(hs.len);
        return -1;
    }
    hs.name[0] = h;
    hs.len[0] = hlen;
    hs.n = 1;
    do {
        grew = 0;
        for (i = 0; i < nhub; i++)
            grew |= hostset_link(&hs, hub_aliases[i][0], hub_aliases[i][1]);
        for (i = 0; i < nal; i++)
            grew |= hostset_link(&hs, o->aliases[i].name, o->aliases[i].host);
    } while (grew);
    *hub = hostset_has(&hs, "docker.io", 9);
    sb_puts(re, "(?i:");
    for (i = 0; i < hs.n; i++) {
        if (i) sb_puts(re, "|");
        for (k = 0; k < hs.len[i]; k++)
            sb_lit(re, hs.name[i][k]);
    }
    sb_puts(re, ")");
    free(hs.name);
    free(hs.len);
    return 0;
}

/* ---- glob translation ---- */

/* Reads one class member at p[*i] (handling '\'); returns -1 on a trailing backslash. */
static int class_char(const char *p, size_t n, size_t *i, char *out)
{
    if (p[*i] == '\\') {
        if (*i + 1 >= n) return -1;
        *out = p[*i + 1];
        *i += 2;
    } else {
        *out = p[(*i)++];
    }
    return 0;
}

/* Translates "[...]" at p[*i]; on return *i is past the closing ']'. */
static int glob_class(const char *p, size_t n, size_t *i, struct sbuf *re, struct cerr *e)
{
    size_t open = *i, k = *i + 1;
    int first = 1;

    sb_puts(re, "[");
    if (k < n && (p[k] == '!' || p[k] == '^')) {
        sb_puts(re, "^/");
        k++;
    }
    for (;;) {
        char lo, hi;
        if (k >= n) return cerr_set(e, open, "unterminated '['");
        if (p[k] == ']' && !first) {
            k++;
            break;
        }
        first = 0;
        if (class_char(p, n, &k, &lo) < 0) return cerr_set(e, k, "trailing '\\'");
        if (lo == '/') return cerr_set(e, k - 1, "'/' cannot appear in a character class");
        if (k + 1 < n && p[k] == '-' && p[k + 1] != ']') {
            size_t at = k;
            k++;
            if (class_char(p, n, &k, &hi) < 0) return cerr_set(e, k, "trailing '\\'");
            if ((unsigned char)hi < (unsigned char)lo)
                return cerr_set(e, at, "character range '%c-%c' is out of order", lo, hi);
            if ((unsigned char)lo <= '/' && (unsigned char)hi >= '/')
                return cerr_set(e, at, "character range '%c-%c' includes '/'", lo, hi);
            sb_lit_ex(re, lo, 1);
            sb_puts(re, "-");
            sb_lit_ex(re, hi, 1);
        } else {
            sb_lit_ex(re, lo, 1);
        }
    }
    sb_puts(re, "]");
    *i = k;
    return 0;
}

/*
 * Translates glob p[0..n) into an anchored PCRE2 source in re. With repo_only (the repository
 * of a semver pattern) there is no tag part. Detects a leading registry host as Docker does and
 * enforces the repository-wildcard rule.
 */
/* The registry host a glob may start with ("host[:port]/", Docker's rule: a first component
 * with '.' or ':', or "localhost"): emitted into re with its aliases; *start is where the
 * repository begins (0 without a host). -1 with e set for an invalid host. */
static int glob_host(const char *p, size_t n, const struct match_opts *o, struct sbuf *re, int *hub,
                     int *with_host, size_t *start, struct cerr *e)
{
    const char *slash = memchr(p, '/', n);
    *with_host = 0;
    *start = 0;
    if (!slash) return 0;
    size_t hl = (size_t)(slash - p);
    if (!memchr(p, '.', hl) && !memchr(p, ':', hl) &&
        !(hl == 9 && strncasecmp(p, "localhost", 9) == 0))
        return 0;
    size_t bad = host_check(p, hl);
    if (bad != NONE)
        return cerr_set(e, bad, "invalid registry host '%.*s' (hosts are literal: NAME[:PORT])",
                        (int)hl, p);
    if (emit_hosts(re, p, hl, o, hub) < 0) return cerr_set(e, 0, "out of memory");
    sb_puts(re, "/");
    *with_host = 1;
    *start = hl + 1;
    return 0;
}

static int glob_translate(const char *p, size_t n, int repo_only, const struct match_opts *o,
                          struct sbuf *re, struct sbuf *lit, int *with_host, int *literal,
                          struct cerr *e)
{
    size_t start, i, repo_at, wild_at = NONE, colon_at = NONE, depth = 0;
    size_t brace_at[BRACE_MAX_DEPTH];
    int hub = 0, in_repo = 1, slash_in_repo = 0, lit_open = 1;
    int allow = o && o->allow_repository_wildcards;

    sb_puts(re, "^");
    if (glob_host(p, n, o, re, &hub, with_host, &start, e) < 0) return -1;
    repo_at = re->len;
    if (start == n || (!repo_only && p[start] == ':'))
        return cerr_set(e, start, "empty repository");

    for (i = start; i < n;) {
        char c = p[i];
        switch (c) {
        case '\\':
            if (i + 1 >= n) return cerr_set(e, i, "trailing '\\'");
            if (in_repo && p[i + 1] == '/') slash_in_repo = 1;
            if (lit_open) sb_putn(lit, p + i + 1, 1);
            sb_lit(re, p[i + 1]);
            i += 2;
            break;
        case '*': {
            size_t j = i;
            while (j < n && p[j] == '*')
                j++;
            sb_puts(re, j - i >= 2 ? ".*" : "[^/]*");
            lit_open = 0;
            if (in_repo && wild_at == NONE) wild_at = i;
            i = j;
            break;
        }
        case '?':
            sb_puts(re, "[^/]");
            lit_open = 0;
            if (in_repo && wild_at == NONE) wild_at = i;
            i++;
            break;
        case '[':
            if (in_repo && wild_at == NONE) wild_at = i;
            lit_open = 0;
            if (glob_class(p, n, &i, re, e) < 0) return -1;
            break;
        case '{':
            if (depth == BRACE_MAX_DEPTH)
                return cerr_set(e, i, "'{' nested more than %d deep", BRACE_MAX_DEPTH);
            brace_at[depth++] = i;
            lit_open = 0;
            sb_puts(re, "(?:");
            i++;
            break;
        case ',':
            if (depth)
                sb_puts(re, "|");
            else
                sb_lit(re, c);
            if (lit_open) sb_putn(lit, &c, 1);
            i++;
            break;
        case '}':
            if (!depth) return cerr_set(e, i, "unmatched '}' (write '\\}' for a literal one)");
            depth--;
            sb_puts(re, ")");
            i++;
            break;
        case ':':
            if (depth) return cerr_set(e, i, "':' inside {...} (write separate patterns instead)");
            if (repo_only) return cerr_set(e, i, "':' in a repository name");
            if (in_repo) {
                in_repo = 0;
                colon_at = i;
            }
            if (lit_open) sb_putn(lit, &c, 1);
            sb_lit(re, c);
            i++;
            break;
        default:
            if (c == '/' && in_repo) slash_in_repo = 1;
            if (lit_open) sb_putn(lit, &c, 1);
            sb_lit(re, c);
            i++;
            break;
        }
    }
    if (depth) return cerr_set(e, brace_at[depth - 1], "unterminated '{'");
    if (wild_at != NONE && !allow)
        return cerr_set(e, wild_at,
                        "wildcard in the repository part would let pushes to other repositories "
                        "deploy (allowed only with --allow-repository-wildcards)");
    if (!repo_only && colon_at == NONE && wild_at == NONE)
        return cerr_set(e, n, "missing ':TAG' (write REPOSITORY:TAG, e.g. strava/foo:*)");
    if (colon_at == n - 1) return cerr_set(e, colon_at, "empty tag after ':'");
    *literal = lit_open;
    /* Docker Hub's official images live under library/: docker.io/nginx is library/nginx. */
    if (hub && !slash_in_repo) {
        sb_insert(re, repo_at, "library/");
        sb_insert(lit, 0, "library/");
    }
    sb_puts(re, "$");
    sb_puts(lit, "");
    if (re->failed || lit->failed) return cerr_set(e, 0, "pattern too long or out of memory");
    return 0;
}

/* ---- compiling one pattern ---- */

static int pcre_compile(struct pattern *pt, const char *src, size_t len, uint32_t opts,
                        size_t *erroff, char *msg, size_t msglen)
{
    int ec;
    PCRE2_SIZE eo = 0;

    pt->code = pcre2_compile((PCRE2_SPTR)src, len, opts | PCRE2_NEVER_UTF, &ec, &eo, NULL);
    if (!pt->code) {
        PCRE2_UCHAR buf[200];
        pcre2_get_error_message(ec, buf, sizeof(buf));
        snprintf(msg, msglen, "%s", (const char *)buf);
        *erroff = eo;
        return -1;
    }
    pt->jit = pcre2_jit_compile(pt->code, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}

/* Fills the pattern's targets from its literal prefix (repository[:tag...]) once compiled. */
static int glob_targets(struct pattern *pt, const char *p, int repo_only, int literal,
                        struct cerr *e)
{
    const char *colon = memchr(pt->prefix, ':', pt->prefix_len);
    if (pt->with_host) {
        const char *slash = strchr(p, '/');
        pt->target_host = strndup(p, (size_t)(slash - p));
        if (!pt->target_host) return cerr_set(e, 0, "out of memory");
    }
    if (repo_only ? literal : colon != NULL) {
        size_t rl = repo_only ? pt->prefix_len : (size_t)(colon - pt->prefix);
        pt->target_repo = strndup(pt->prefix, rl);
        if (!pt->target_repo) return cerr_set(e, 0, "out of memory");
    }
    if (!repo_only && literal && colon) {
        pt->target_tag = strdup(colon + 1);
        if (!pt->target_tag) return cerr_set(e, 0, "out of memory");
    }
    return 0;
}

static int compile_glob(struct pattern *pt, const char *p, size_t n, int repo_only,
                        const struct match_opts *o, struct cerr *e)
{
    struct sbuf re = {0}, lit = {0};
    size_t eo;
    int rc = -1, literal = 0;

    if (glob_translate(p, n, repo_only, o, &re, &lit, &pt->with_host, &literal, e) < 0) goto out;
    if (pcre_compile(pt, re.p, re.len, PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY, &eo, e->msg,
                     sizeof(e->msg)) < 0) {
        e->off = 0; /* a generated regex that PCRE2 refuses: say so, at the pattern */
        goto out;
    }
    pt->regex = re.p;
    re.p = NULL;
    pt->prefix = lit.p;
    pt->prefix_len = lit.len;
    pt->quick_len = lit.len < QUICK_LEN ? lit.len : QUICK_LEN;
    memcpy(pt->quick, lit.p, pt->quick_len);
    lit.p = NULL;
    rc = glob_targets(pt, p, repo_only, literal, e);
out:
    free(re.p);
    free(lit.p);
    return rc;
}

/* regex:<PCRE2>. Without the wildcard option it must begin with a literal "repository:". */
static int compile_regex(struct pattern *pt, const char *p, size_t n, const struct match_opts *o,
                         struct cerr *e)
{
    const char *re = p + 6;
    size_t rn = n - 6, i = 0, eo = 0;
    char msg[200];

    if (rn == 0) return cerr_set(e, 6, "empty regex");
    if (!(o && o->allow_repository_wildcards)) {
        struct sbuf lit = {0};
        while (i < rn && re[i] != ':') {
            if (is_alnum(re[i]) || re[i] == '/' || re[i] == '_' || re[i] == '-') {
                sb_putn(&lit, re + i, 1);
                i++;
            } else if (re[i] == '\\' && i + 1 < rn && !is_alnum(re[i + 1])) {
                if (re[i + 1] == ':') break;
                sb_putn(&lit, re + i + 1, 1);
                i += 2;
            } else {
                free(lit.p);
                return cerr_set(e, 6 + i,
                                "a regex must begin with the literal repository and ':' (escape "
                                "'.' as '\\.'; wildcards need --allow-repository-wildcards)");
            }
        }
        if (i == rn || i == 0 || lit.failed) {
            free(lit.p);
            return cerr_set(e, 6 + i,
                            "a regex must begin with the literal repository and ':' "
                            "(e.g. regex:strava/api:v[0-9]+)");
        }
        pt->literal_repo = lit.p;
        pt->target_repo = strdup(lit.p);
        if (!pt->target_repo) return cerr_set(e, 0, "out of memory");
    }
    if (pcre_compile(pt, re, rn, PCRE2_ANCHORED | PCRE2_ENDANCHORED, &eo, msg, sizeof(msg)) < 0)
        return cerr_set(e, 6 + eo, "regex: %s", msg);
    pt->regex = strndup(re, rn);
    if (!pt->regex) return cerr_set(e, 0, "out of memory");
    return 0;
}

/* semver:<repository>:<range>; the range has no ':', so the last ':' splits them. */
static int compile_semver(struct pattern *pt, const char *p, size_t n, const struct match_opts *o,
                          struct cerr *e)
{
    const char *body = p + 7;
    size_t bn = n - 7, colon, ro = 0;
    char *range = NULL, fmt[512];

    for (colon = bn; colon > 0 && body[colon - 1] != ':'; colon--)
        ;
    if (colon == 0) return cerr_set(e, n, "expected semver:REPOSITORY:RANGE");
    colon--;
    if (colon + 1 == bn) return cerr_set(e, n, "empty version range");
    if (compile_glob(pt, body, colon, 1, o, e) < 0) {
        e->off += 7;
        return -1;
    }
    range = strndup(body + colon + 1, bn - colon - 1);
    if (!range) return cerr_set(e, 0, "out of memory");
    pt->range = semver_range_new(range, e->msg, sizeof(e->msg), &ro);
    free(range);
    if (!pt->range) {
        /* semver messages start with "offset N: "; the column says it better. */
        const char *m = strstr(e->msg, ": ");
        if (strncmp(e->msg, "offset ", 7) == 0 && m) memmove(e->msg, m + 2, strlen(m + 2) + 1);
        e->off = 7 + colon + 1 + ro;
        return -1;
    }
    if (semver_range_format(pt->range, fmt, sizeof(fmt)) < 0)
        return cerr_set(e, 0, "range too long");
    pt->range_text = strdup(fmt);
    if (!pt->range_text) return cerr_set(e, 0, "out of memory");
    return 0;
}

/* Copies n bytes of a label for messages, control bytes shown as '?': labels end up in logs. */
static char *printable_dup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    size_t i;
    if (!d) return NULL;
    for (i = 0; i < n; i++)
        d[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    d[n] = '\0';
    return d;
}

static void pattern_clear(struct pattern *pt)
{
    free(pt->text);
    free(pt->regex);
    free(pt->prefix);
    pcre2_code_free(pt->code);
    free(pt->literal_repo);
    semver_range_free(pt->range);
    free(pt->range_text);
    free(pt->target_host);
    free(pt->target_repo);
    free(pt->target_tag);
}

size_t match_targets(const match_set *ms, struct match_target *out, size_t max)
{
    size_t i;
    for (i = 0; i < ms->n && i < max; i++) {
        const struct pattern *pt = &ms->pats[i];
        out[i].host = pt->target_host;
        out[i].repository = pt->target_repo;
        out[i].tag = pt->kind == K_GLOB ? pt->target_tag : NULL;
        out[i].semver = pt->kind == K_SEMVER;
    }
    return ms->n;
}

match_set *match_compile(const char *label_value, const struct match_opts *o, char *err,
                         size_t errlen)
{
    match_set *ms = NULL;
    const char *v = label_value;
    size_t n, i, count = 0;
    struct cerr e = {0, ""};
    size_t pat_at = 0, pat_len = 0;
    char *shown;

    if (!v) {
        err_printf(err, errlen, "column 1: no label value");
        return NULL;
    }
    n = strlen(v);
    if (n > LABEL_MAX_LEN) {
        err_printf(err, errlen, "column %d: label value longer than %d bytes", LABEL_MAX_LEN + 1,
                   LABEL_MAX_LEN);
        return NULL;
    }
    for (i = 0; i < n;) {
        while (i < n && is_space(v[i]))
            i++;
        if (i < n) count++;
        while (i < n && !is_space(v[i]))
            i++;
    }
    if (count == 0) {
        err_printf(err, errlen, "column 1: empty label value (no patterns)");
        return NULL;
    }
    if (count > MAX_PATTERNS) {
        err_printf(err, errlen, "column 1: more than %d patterns", MAX_PATTERNS);
        return NULL;
    }
    ms = calloc(1, sizeof(*ms) + count * sizeof(ms->pats[0]));
    if (!ms) {
        err_printf(err, errlen, "column 1: out of memory");
        return NULL;
    }
    atomic_init(&ms->refs, 1);
    atomic_init(&ms->md_busy, 0);
    ms->md = pcre2_match_data_create(1, NULL);
    ms->mc = pcre2_match_context_create(NULL);
    if (!ms->md || !ms->mc) {
        cerr_set(&e, 0, "out of memory");
        goto fail;
    }
    pcre2_set_match_limit(ms->mc, MATCH_LIMIT);
    pcre2_set_depth_limit(ms->mc, DEPTH_LIMIT);
    pcre2_set_heap_limit(ms->mc, HEAP_LIMIT_KIB);

    for (i = 0; i < n;) {
        struct pattern *pt = &ms->pats[ms->n];
        const char *p;
        int rc;

        while (i < n && is_space(v[i]))
            i++;
        if (i == n) break;
        pat_at = i;
        while (i < n && !is_space(v[i]))
            i++;
        pat_len = i - pat_at;
        p = v + pat_at;
        ms->n++;
        if (pat_len > PATTERN_MAX_LEN) {
            cerr_set(&e, PATTERN_MAX_LEN, "pattern longer than %d bytes", PATTERN_MAX_LEN);
            pat_len = 40; /* quote only the start of it */
            goto fail;
        }
        pt->text = printable_dup(p, pat_len);
        if (!pt->text) {
            cerr_set(&e, 0, "out of memory");
            goto fail;
        }
        if (pat_len >= 6 && strncmp(p, "regex:", 6) == 0) {
            pt->kind = K_REGEX;
            rc = compile_regex(pt, p, pat_len, o, &e);
        } else if (pat_len >= 7 && strncmp(p, "semver:", 7) == 0) {
            pt->kind = K_SEMVER;
            rc = compile_semver(pt, p, pat_len, o, &e);
        } else {
            pt->kind = K_GLOB;
            rc = compile_glob(pt, p, pat_len, 0, o, &e);
        }
        if (rc < 0) goto fail;
    }
    return ms;

fail:
    shown = printable_dup(v + pat_at, pat_len);
    err_printf(err, errlen, "column %zu: %s in pattern \"%s\"", pat_at + e.off + 1, e.msg,
               shown ? shown : "");
    free(shown);
    match_free(ms);
    return NULL;
}

void match_free(match_set *ms)
{
    size_t i;
    if (!ms) return;
    for (i = 0; i < ms->n; i++)
        pattern_clear(&ms->pats[i]);
    pcre2_match_data_free(ms->md);
    pcre2_match_context_free(ms->mc);
    free(ms);
}

/* ---- matching ---- */

/* Appends a formatted reason to why; keeps what fits. */
static void why_add(char *why, size_t whylen, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int w;
    if (!why || *used + 1 >= whylen) return;
    va_start(ap, fmt);
    w = vsnprintf(why + *used, whylen - *used, fmt, ap);
    va_end(ap);
    if (w > 0) *used = (size_t)w >= whylen - *used ? whylen - 1 : *used + (size_t)w;
}

/* 1 match, 0 no match, -1 PCRE2 error (match limit, out of memory). */
static int run(const match_set *ms, const struct pattern *pt, const char *s, size_t len,
               pcre2_match_data *md)
{
    int rc;
    if (pt->jit)
        rc = pcre2_jit_match(pt->code, (PCRE2_SPTR)s, len, 0, 0, md, ms->mc);
    else
        rc = pcre2_match(pt->code, (PCRE2_SPTR)s, len, 0, 0, md, ms->mc);
    if (rc >= 0) return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

/* Writes a reason for a non-match, unless the caller did not ask for one (r == NULL). */
static void reason(char *r, size_t rlen, const char *fmt, ...)
{
    va_list ap;
    if (!r) return;
    va_start(ap, fmt);
    vsnprintf(r, rlen, fmt, ap);
    va_end(ap);
}

/* Match data for one match_test call: the set's own when free, else a private one. */
struct md_slot {
    struct match_set *ms;
    pcre2_match_data *md;
    int own;
};

static pcre2_match_data *md_get(struct md_slot *sl)
{
    if (sl->md) return sl->md;
    if (!atomic_exchange(&sl->ms->md_busy, 1)) {
        sl->md = sl->ms->md;
    } else {
        sl->md = pcre2_match_data_create(1, NULL);
        sl->own = 1;
    }
    return sl->md;
}

static void md_put(struct md_slot *sl)
{
    if (!sl->md) return;
    if (sl->own)
        pcre2_match_data_free(sl->md);
    else
        atomic_store(&sl->ms->md_busy, 0);
}

/*
 * Tests one pattern; on 0 writes the reason (without the pattern's name) to r. Cheap checks
 * that every match must pass (the literal prefix, the regex's repository) come before PCRE2:
 * most apps do not match most pushes, and this keeps them off the JIT code entirely.
 */
static int test_one(struct md_slot *sl, const struct pattern *pt, const char *full, size_t hostpart,
                    size_t repolen, size_t fulllen, const struct match_subject *s, char *r,
                    size_t rlen)
{
    const char *subj = pt->with_host ? full : full + hostpart;
    size_t slen = pt->with_host ? fulllen : fulllen - hostpart;
    struct semver tag, cur;
    pcre2_match_data *md;
    char e[160];
    int rc;

    if (pt->kind == K_SEMVER) slen = pt->with_host ? hostpart + repolen : repolen;
    if (pt->kind == K_REGEX && pt->literal_repo && strcmp(pt->literal_repo, s->repository) != 0) {
        reason(r, rlen, "repository \"%s\" is not \"%s\"", s->repository, pt->literal_repo);
        return 0;
    }
    if (pt->quick_len && (fulllen - hostpart < pt->prefix_len ||
                          memcmp(full + hostpart, pt->quick, pt->quick_len) != 0 ||
                          memcmp(full + hostpart, pt->prefix, pt->prefix_len) != 0)) {
        rc = 0;
    } else {
        md = md_get(sl);
        if (!md) {
            reason(r, rlen, "out of memory");
            return 0;
        }
        rc = run(sl->ms, pt, subj, slen, md);
    }
    if (rc < 0) {
        reason(r, rlen, "matching stopped at the PCRE2 match limit");
        return 0;
    }
    if (pt->kind != K_SEMVER) {
        if (!rc) reason(r, rlen, "\"%.*s\" does not match", (int)slen, subj);
        return rc;
    }
    if (!rc) {
        reason(r, rlen, "repository \"%.*s\" does not match", (int)slen, subj);
        return 0;
    }
    if (semver_parse(s->tag, 1, &tag, e, sizeof(e)) < 0) {
        reason(r, rlen, "tag \"%s\" is not a semantic version (%s)", s->tag, e);
        return 0;
    }
    if (!semver_range_test(pt->range, &tag, e, sizeof(e))) {
        reason(r, rlen, "tag %s %s %s", s->tag, e, pt->range_text);
        return 0;
    }
    if (s->current_tag && *s->current_tag) {
        if (semver_parse(s->current_tag, 1, &cur, e, sizeof(e)) < 0) {
            reason(r, rlen,
                   "the current tag \"%s\" is not a semantic version, so a downgrade cannot "
                   "be ruled out",
                   s->current_tag);
            return 0;
        }
        if (semver_compare(&tag, &cur) <= 0) {
            reason(r, rlen, "tag %s is not newer than the current tag %s", s->tag, s->current_tag);
            return 0;
        }
    }
    return 1;
}

/* Returns NULL if the push names a repository and tag that can be matched, else why not. */
static const char *subject_problem(const struct match_subject *s)
{
    if (!s || !s->repository || !*s->repository) return "the push has no repository";
    if (!s->tag || !*s->tag) return "the push has no tag (pushed by digest?)";
    if (strpbrk(s->repository, ": \t\r\n")) return "the push's repository name is invalid";
    if (strpbrk(s->tag, "/: \t\r\n")) return "the push's tag is invalid";
    return NULL;
}

int match_test(const match_set *ms, const struct match_subject *s, char *why, size_t whylen)
{
    return match_test_semver(ms, s, why, whylen, NULL);
}

int match_test_semver(const match_set *ms, const struct match_subject *s, char *why, size_t whylen,
                      int *semver)
{
    struct match_set *m = (struct match_set *)ms; /* only md_busy/md are touched, atomically */
    char full[SUBJECT_MAX_LEN];
    const char *host, *problem;
    size_t hl, rl, tl, used = 0, i;
    struct md_slot sl = {m, NULL, 0};
    int matched = 0;

    if (why && whylen) why[0] = '\0';
    if (!ms) return 0;
    problem = subject_problem(s);
    if (problem) {
        why_add(why, whylen, &used, "%s", problem);
        return 0;
    }
    host = s->host ? s->host : "";
    hl = strlen(host);
    rl = strlen(s->repository);
    tl = strlen(s->tag);
    if (hl + rl + tl + 3 > sizeof(full)) {
        why_add(why, whylen, &used, "the image reference is too long");
        return 0;
    }
    /* One buffer serves every kind: "host/repo:tag", "repo:tag" and "repo" are slices of it. */
    memcpy(full, host, hl);
    full[hl] = '/';
    memcpy(full + hl + 1, s->repository, rl);
    full[hl + 1 + rl] = ':';
    memcpy(full + hl + 2 + rl, s->tag, tl);
    full[hl + 2 + rl + tl] = '\0';

    for (i = 0; i < ms->n && !matched; i++) {
        const struct pattern *pt = &ms->pats[i];
        char r[512] = "";
        if (test_one(&sl, pt, full, hl + 1, rl, hl + 2 + rl + tl, s, why ? r : NULL, sizeof(r))) {
            matched = 1;
            if (semver) *semver = pt->kind == K_SEMVER;
            if (why && whylen) why[0] = '\0';
            used = 0;
            why_add(why, whylen, &used, "matched by pattern \"%s\"", pt->text);
        } else {
            why_add(why, whylen, &used, "%spattern \"%s\": %s", i ? "; " : "", pt->text, r);
        }
    }
    md_put(&sl);
    return matched;
}

int match_describe(const match_set *ms, char *buf, size_t len)
{
    size_t used = 0, i;
    if (!buf || len == 0) return -1;
    buf[0] = '\0';
    if (!ms) return -1;
    for (i = 0; i < ms->n; i++) {
        const struct pattern *pt = &ms->pats[i];
        if (pt->kind == K_GLOB) {
            why_add(buf, len, &used, "%zu. glob \"%s\": regex %s against %s\n", i + 1, pt->text,
                    pt->regex, pt->with_host ? "host/repository:tag" : "repository:tag");
        } else if (pt->kind == K_REGEX) {
            why_add(buf, len, &used,
                    "%zu. regex \"%s\": regex %s (anchored at both ends) against "
                    "repository:tag",
                    i + 1, pt->text, pt->regex);
            if (pt->literal_repo)
                why_add(buf, len, &used, ", and the repository must be \"%s\"", pt->literal_repo);
            why_add(buf, len, &used, "\n");
        } else {
            why_add(buf, len, &used,
                    "%zu. semver \"%s\": regex %s against %s, tag (optional 'v') in range %s and "
                    "newer than the current tag\n",
                    i + 1, pt->text, pt->regex, pt->with_host ? "host/repository" : "repository",
                    pt->range_text);
        }
    }
    return used + 1 >= len ? -1 : 0;
}

/* ---- the cache ---- */

struct centry {
    uint64_t hash;
    size_t keylen;
    struct centry *hnext;
    match_set *ms; /* NULL if the value is invalid; the cache holds one reference */
    char *err;
    char **warned; /* app ids already told about err */
    size_t nwarned, capwarned;
    int warned_anon;
    int referenced; /* used since it last reached the eviction end: gets a second chance */
    struct centry *prev, *next;
    char key[]; /* inline: a lookup touches one allocation, not two */
};

struct match_cache {
    pthread_mutex_t lock;
    struct match_opts opts;
    struct match_alias *aliases; /* owned copies */
    size_t capacity, count, nbuckets, max_buckets;
    struct centry **buckets;
    struct centry *head, *tail; /* newest (or second-chanced) first; evict from the tail */
    struct match_cache_stats st;
};

/* A word-at-a-time multiplicative hash: every push hashes one label value per app. */
static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

match_cache *match_cache_new(const struct match_opts *o, size_t capacity)
{
    match_cache *c;
    size_t i;

    if (capacity == 0) return NULL;
    c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->capacity = capacity;
    /* The table grows with the entries (cache_grow) instead of being sized for the capacity at
     * once: every push looks up one value per app, so a 65,536-bucket table (512 KiB) for the
     * 1,000 values of a cluster becomes resident at the first push and spreads each push's
     * lookups over all of it; sized to the values in use, it is 16 KiB. */
    for (c->max_buckets = 16; c->max_buckets < capacity && c->max_buckets < (1u << 20);)
        c->max_buckets *= 2;
    c->nbuckets = c->max_buckets < 64 ? c->max_buckets : 64;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->buckets) goto fail;
    if (o) {
        c->opts.allow_repository_wildcards = o->allow_repository_wildcards;
        if (o->n_aliases) {
            c->aliases = calloc(o->n_aliases, sizeof(*c->aliases));
            if (!c->aliases) goto fail;
            c->opts.aliases = c->aliases;
            for (i = 0; i < o->n_aliases; i++) {
                c->aliases[i].name = o->aliases[i].name ? strdup(o->aliases[i].name) : NULL;
                c->aliases[i].host = o->aliases[i].host ? strdup(o->aliases[i].host) : NULL;
                c->opts.n_aliases = i + 1;
                if ((o->aliases[i].name && !c->aliases[i].name) ||
                    (o->aliases[i].host && !c->aliases[i].host))
                    goto fail;
            }
        }
    }
    return c;
fail:
    match_cache_free(c);
    return NULL;
}

static struct centry *cache_find(match_cache *c, const char *key, size_t n, uint64_t h)
{
    struct centry *e;
    for (e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->keylen == n && memcmp(e->key, key, n) == 0) return e;
    return NULL;
}

/* Doubles the table when it is more than half full (and may still grow); called with the lock
 * held. Out of memory: the table stays as it is, only slower. */
static void cache_grow(match_cache *c)
{
    size_t n = c->nbuckets * 2, i;
    struct centry **nb, *e, *next;
    if (c->count * 2 <= c->nbuckets || c->nbuckets >= c->max_buckets) return;
    nb = calloc(n, sizeof(*nb));
    if (!nb) return;
    for (i = 0; i < c->nbuckets; i++) {
        for (e = c->buckets[i]; e; e = next) {
            next = e->hnext;
            e->hnext = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    }
    free(c->buckets);
    c->buckets = nb;
    c->nbuckets = n;
}

static void lru_unlink(match_cache *c, struct centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(match_cache *c, struct centry *e)
{
    e->next = c->head;
    e->prev = NULL;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static void entry_free(struct centry *e)
{
    size_t i;
    if (!e) return;
    match_cache_release(e->ms); /* the cache's own reference */
    for (i = 0; i < e->nwarned; i++)
        free(e->warned[i]);
    free(e->warned);
    free(e->err);
    free(e);
}

static void cache_evict_tail(match_cache *c)
{
    struct centry *e = c->tail, **pp;
    if (!e) return;
    lru_unlink(c, e);
    for (pp = &c->buckets[e->hash & (c->nbuckets - 1)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            break;
        }
    }
    c->count--;
    c->st.evictions++;
    entry_free(e);
}

/*
 * Evicts until the cache is within capacity, never evicting keep. This is the CLOCK
 * approximation of LRU: an entry used since it last reached the tail is moved back to the head
 * once instead of being evicted, so hits only set a flag and never touch the list.
 */
static void cache_make_room(match_cache *c, struct centry *keep)
{
    /* count > capacity >= 1, so some entry other than keep exists and the loop ends: each
     * pass over the list clears every flag it meets. */
    while (c->count > c->capacity && c->tail) {
        struct centry *t = c->tail;
        if (t->referenced || t == keep) {
            t->referenced = 0;
            lru_unlink(c, t);
            lru_push_front(c, t);
        } else {
            cache_evict_tail(c);
        }
    }
}

/* Returns 1 if app_id (or, for NULL, anyone) has not yet been told about e's error. */
static int first_report(struct centry *e, const char *app_id)
{
    size_t i;
    char *dup;
    if (!app_id) {
        if (e->warned_anon) return 0;
        e->warned_anon = 1;
        return 1;
    }
    for (i = 0; i < e->nwarned; i++)
        if (strcmp(e->warned[i], app_id) == 0) return 0;
    if (e->nwarned == e->capwarned) {
        size_t cap = e->capwarned ? e->capwarned * 2 : 4;
        char **nw = realloc(e->warned, cap * sizeof(*nw));
        if (!nw) return 1; /* cannot remember: warning again beats never warning */
        e->warned = nw;
        e->capwarned = cap;
    }
    dup = strdup(app_id);
    if (dup) e->warned[e->nwarned++] = dup;
    return 1;
}

/* Answers from entry e; called with the lock held. */
static const match_set *entry_answer(struct centry *e, const char *app_id, char *err, size_t errlen,
                                     int *first_error)
{
    if (e->ms) {
        atomic_fetch_add(&e->ms->refs, 1);
        return e->ms;
    }
    err_printf(err, errlen, "%s", e->err ? e->err : "invalid");
    if (first_error) *first_error = first_report(e, app_id);
    return NULL;
}

const match_set *match_cache_get(match_cache *c, const char *label_value, const char *app_id,
                                 char *err, size_t errlen, int *first_error)
{
    struct centry *e, *ne = NULL;
    const match_set *ret;
    match_set *fresh;
    char cerrbuf[512];
    size_t n;
    uint64_t h;

    if (first_error) *first_error = 0;
    if (!c || !label_value) {
        err_printf(err, errlen, "column 1: no label value");
        return NULL;
    }
    n = strlen(label_value);
    h = hash_str(label_value, n);

    pthread_mutex_lock(&c->lock);
    e = cache_find(c, label_value, n, h);
    if (e) {
        c->st.hits++;
        e->referenced = 1; /* no relinking on the hot path: see cache_make_room */
        ret = entry_answer(e, app_id, err, errlen, first_error);
        pthread_mutex_unlock(&c->lock);
        return ret;
    }
    c->st.misses++;
    pthread_mutex_unlock(&c->lock);

    /* Compile without the lock: other workers keep matching meanwhile. */
    cerrbuf[0] = '\0';
    fresh = match_compile(label_value, &c->opts, cerrbuf, sizeof(cerrbuf));
    ne = calloc(1, sizeof(*ne) + n + 1);
    if (ne) {
        memcpy(ne->key, label_value, n + 1);
        ne->err = fresh ? NULL : strdup(cerrbuf);
    }
    if (!ne || (!fresh && !ne->err)) {
        free(ne);
        if (!fresh) {
            err_printf(err, errlen, "%s", cerrbuf);
            if (first_error) *first_error = 1;
        }
        return fresh; /* uncached: the caller's release frees it */
    }
    ne->keylen = n;
    ne->hash = h;
    ne->ms = fresh;

    pthread_mutex_lock(&c->lock);
    e = cache_find(c, label_value, n, h);
    if (!e) { /* we won the race: insert */
        size_t b = h & (c->nbuckets - 1);
        ne->hnext = c->buckets[b];
        c->buckets[b] = ne;
        lru_push_front(c, ne);
        c->count++;
        e = ne;
        ne = NULL;
        cache_make_room(c, e);
        cache_grow(c);
    }
    ret = entry_answer(e, app_id, err, errlen, first_error);
    c->st.entries = c->count;
    pthread_mutex_unlock(&c->lock);
    entry_free(ne); /* another thread inserted the same value first */
    return ret;
}

void match_cache_release(const match_set *ms)
{
    struct match_set *m = (struct match_set *)ms;
    if (!m) return;
    if (atomic_fetch_sub(&m->refs, 1) == 1) match_free(m);
}

void match_cache_stats(match_cache *c, struct match_cache_stats *st)
{
    if (!c || !st) return;
    pthread_mutex_lock(&c->lock);
    *st = c->st;
    st->entries = c->count;
    pthread_mutex_unlock(&c->lock);
}

void match_cache_free(match_cache *c)
{
    size_t i;
    if (!c) return;
    if (c->buckets) {
        while (c->tail)
            cache_evict_tail(c);
    }
    free(c->buckets);
    for (i = 0; i < c->opts.n_aliases; i++) {
        free((char *)c->aliases[i].name);
        free((char *)c->aliases[i].host);
    }
    free(c->aliases);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
