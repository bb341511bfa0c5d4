/*
 * reference.c: hand-written checks for Docker's reference grammar. They run on the webhook's
 * hot path for every event, so they are simple scans rather than regular expressions.
 */
#include "reference.h"

#include <stdio.h>
#include <string.h>

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* One path component: alnum runs joined by '.', '_', '__' or one or more '-'. Returns the
 * number of bytes consumed, 0 if the component is invalid. */
static size_t path_component(const char *s)
{
    size_t i = 0;
    if (!is_lower_alnum(s[i])) return 0;
    while (is_lower_alnum(s[i]))
        i++;
    for (;;) {
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i++;
            if (s[i] == '_') i++;
        } else if (s[i] == '-') {
            while (s[i] == '-')
                i++;
        } else {
            return i;
        }
        if (!is_lower_alnum(s[i])) return 0;
        while (is_lower_alnum(s[i]))
            i++;
    }
}

int ref_valid_repository(const char *s)
{
    if (!s || !*s || strlen(s) > REF_NAME_MAX) return 0;
    for (;;) {
        size_t n = path_component(s);
        if (n == 0) return 0;
        s += n;
        if (*s == '\0') return 1;
        if (*s != '/') return 0;
        s++;
    }
}

int ref_valid_tag(const char *s)
{
    if (!s || !*s) return 0;
    if (!(is_alnum(s[0]) || s[0] == '_')) return 0;
    size_t i = 1;
    for (; s[i]; i++) {
        if (i >= REF_TAG_MAX) return 0;
        if (!(is_alnum(s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-')) return 0;
    }
    return 1;
}

int ref_valid_digest(const char *s)
{
    if (!s || strncmp(s, "sha256:", 7) != 0) return 0;
    s += 7;
    size_t i = 0;
    for (; s[i]; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
    }
    return i == 64;
}

static int valid_port(const char *p)
{
    if (!*p) return 0;
    size_t n = 0;
    long v = 0;
    for (; p[n]; n++) {
        if (p[n] < '0' || p[n] > '9' || n >= 5) return 0;
        v = v * 10 + (p[n] - '0');
    }
    return v <= 65535;
}

int ref_valid_host(const char *s)
{
    if (!s || !*s || strlen(s) > 255) return 0;
    const char *p = s;
    if (*p == '[') {
        p++;
        size_t n = 0;
        while (p[n] && p[n] != ']') {
            char c = p[n];
            if (!(is_alnum(c) || c == ':' || c == '.' || c == '%')) return 0;
            n++;
        }
        if (n == 0 || p[n] != ']') return 0;
        p += n + 1;
        if (*p == '\0') return 1;
        return *p == ':' && valid_port(p + 1);
    }
    /* domain-component ('.' domain-component)*, components [A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?
     */
    for (;;) {
        if (!is_alnum(*p)) return 0;
        const char *start = p;
        while (is_alnum(*p) || *p == '-')
            p++;
        if (p[-1] == '-' || p - start > 63) return 0;
        if (*p == '.') {
            p++;
            continue;
        }
        if (*p == '\0') return 1;
        if (*p == ':') return valid_port(p + 1);
        return 0;
    }
}

int ref_parse_image(const char *s, struct image_ref *out)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s || strlen(s) >= REF_IMAGE_MAX) return -1;
    char tmp[REF_IMAGE_MAX];
    snprintf(tmp, sizeof tmp, "%s", s);
    char *at = strchr(tmp, '@');
    if (at) {
        *at = '\0';
        if (!ref_valid_digest(at + 1)) return -1;
        snprintf(out->digest, sizeof out->digest, "%s", at + 1);
    }
    char *name = tmp;
    char *slash = strchr(tmp, '/');
    if (slash) {
        size_t n = (size_t)(slash - tmp);
        if ((memchr(tmp, '.', n) || memchr(tmp, ':', n) ||
             (n == 9 && !strncmp(tmp, "localhost", 9)))) {
            *slash = '\0';
            if (!ref_valid_host(tmp) || strlen(tmp) >= sizeof out->host) return -1;
            snprintf(out->host, sizeof out->host, "%s", tmp);
            name = slash + 1;
        }
    }
    char *colon = strrchr(name, ':');
    if (colon) {
        *colon = '\0';
        if (!ref_valid_tag(colon + 1)) return -1;
        snprintf(out->tag, sizeof out->tag, "%s", colon + 1);
    }
    if (!ref_valid_repository(name)) return -1;
    snprintf(out->repository, sizeof out->repository, "%s", name);
    return 0;
}

int ref_format_image(const struct image_ref *r, char *out, size_t len)
{
    int n = snprintf(out, len, "%s%s%s%s%s%s%s", r->host, r->host[0] ? "/" : "", r->repository,
                     r->tag[0] ? ":" : "", r->tag, r->digest[0] ? "@" : "", r->digest);
    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}
