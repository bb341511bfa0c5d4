/*
 * event.c: from a notification body to verdicts (see event.h).
 *
 * The rules follow what a real registry sends: only action "push" with a manifest or index
 * media type and a non-empty tag names an image someone can deploy. Everything else a registry
 * reports (blob uploads, HEAD probes, mounts, deletes, the untagged children of an index) is
 * ignored; a push that looks deployable but carries values outside Docker's grammar is rejected.
 */
#include "event.h"

#include "reference.h"

#include "buf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const manifest_types[] = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
};

int event_is_manifest_media_type(const char *mt)
{
    if (!mt) return 0;
    for (size_t i = 0; i < sizeof manifest_types / sizeof manifest_types[0]; i++)
        if (strcmp(mt, manifest_types[i]) == 0) return 1;
    return 0;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int event_parse_rfc3339(const char *s, int64_t *ns)
{
    int Y, M, D, h, m, sec;
    if (!s || strlen(s) < 20) return -1;
    if (digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
        digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -1;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 9) frac = frac * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0) return -1;
        for (; nd < 9; nd++)
            frac *= 10;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = (oh * 60L + om) * 60L * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *ns = ((int64_t)t - off) * 1000000000LL + frac;
    return 0;
}

static const char *get_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Copies src (NULL: "") into dst of cap bytes, truncating; cheaper than snprintf on the hot
 * path, and every caller's input was length-checked or is a constant. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when it is not one: overlong
 * forms, UTF-16 surrogates and code points above U+10FFFF are invalid (RFC 3629). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80) return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) return 0;
        return 4;
    }
    return 0;
}

/* Copies free text (the pusher's name) keeping valid UTF-8 only and no control characters,
 * truncated on a character boundary. */
void event_copy_text(char *dst, size_t cap, const char *src)
{
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)(src ? src : "");
    while (*s && o + 1 < cap) {
        size_t n = utf8_len(s);
        if (n == 1 && (*s < 0x20 || *s == 0x7f)) {
            s++;
            continue;
        }
        if (n == 0) { /* invalid byte: replace it */
            dst[o++] = '?';
            s++;
            continue;
        }
        if (o + n >= cap) break;
        memcpy(dst + o, s, n);
        o += n;
        s += n;
    }
    dst[o] = '\0';
}

int event_valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= PUSH_ID_MAX - 1) return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return n > 0;
}

/* Decides one event. Ignore reasons come before grammar checks: a blob upload with an odd
 * repository name is still only a blob upload. */
static void classify(const cJSON *ev, struct event_item *it)
{
    memset(it, 0, sizeof *it);
    it->verdict = EVENT_REJECTED;
    if (!cJSON_IsObject(ev)) {
        copy_str(it->reason, sizeof it->reason, "event is not a JSON object");
        return;
    }
    const char *id = get_string(ev, "id");
    if (id && !event_valid_id(id)) {
        copy_str(it->reason, sizeof it->reason, "invalid event id");
        return;
    }
    copy_str(it->event_id, sizeof it->event_id, id);

    const char *action = get_string(ev, "action");
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(ev, "target");
    const char *repo = cJSON_IsObject(target) ? get_string(target, "repository") : NULL;
    if (repo && ref_valid_repository(repo)) copy_str(it->repository, sizeof it->repository, repo);

    if (!action) {
        copy_str(it->reason, sizeof it->reason, "event has no action");
        return;
    }
    it->verdict = EVENT_IGNORED;
    if (strcmp(action, "push") != 0) {
        snprintf(it->reason, sizeof it->reason, "action %.40s is not a push",
                 ref_valid_tag(action) ? action : "(unprintable)");
        return;
    }
    if (!cJSON_IsObject(target)) {
        it->verdict = EVENT_REJECTED;
        copy_str(it->reason, sizeof it->reason, "push without a target");
        return;
    }
    const char *mt = get_string(target, "mediaType");
    if (!event_is_manifest_media_type(mt)) {
        copy_str(it->reason, sizeof it->reason,
                 mt && strcmp(mt, "application/octet-stream") == 0
                     ? "blob upload, not a manifest"
                     : "media type is not an image manifest or index");
        return;
    }
    const char *tag = get_string(target, "tag");
    if (!tag || !*tag) {
        copy_str(it->reason, sizeof it->reason,
                 "manifest pushed without a tag (index child or push by digest)");
        return;
    }

    it->verdict = EVENT_REJECTED;
    const char *digest = get_string(target, "digest");
    const cJSON *request = cJSON_GetObjectItemCaseSensitive(ev, "request");
    const char *host = cJSON_IsObject(request) ? get_string(request, "host") : NULL;
    if (!repo || !ref_valid_repository(repo)) {
        copy_str(it->reason, sizeof it->reason, "repository is not a valid Docker repository");
        return;
    }
    if (!ref_valid_tag(tag)) {
        copy_str(it->reason, sizeof it->reason, "tag is not a valid Docker tag");
        return;
    }
    if (!digest || !ref_valid_digest(digest)) {
        copy_str(it->reason, sizeof it->reason, "digest is missing or not sha256:<64 hex>");
        return;
    }
    if (host && *host && !ref_valid_host(host)) {
        copy_str(it->reason, sizeof it->reason, "request.host is not a valid registry host");
        return;
    }

    struct push *p = &it->push;
    it->verdict = EVENT_PUSH;
    copy_str(p->event_id, sizeof p->event_id, id);
    copy_str(p->repository, sizeof p->repository, repo);
    copy_str(p->tag, sizeof p->tag, tag);
    copy_str(p->digest, sizeof p->digest, digest);
    copy_str(p->media_type, sizeof p->media_type, mt);
    copy_str(p->host, sizeof p->host, host);
    const char *ts = get_string(ev, "timestamp");
    if (ts && strlen(ts) < sizeof p->timestamp && event_parse_rfc3339(ts, &p->timestamp_ns) == 0)
        copy_str(p->timestamp, sizeof p->timestamp, ts);
    const cJSON *actor = cJSON_GetObjectItemCaseSensitive(ev, "actor");
    if (cJSON_IsObject(actor))
        event_copy_text(p->pusher, sizeof p->pusher, get_string(actor, "name"));
}

cJSON *event_json_parse(const char *body, size_t len, char *err, size_t errlen)
{
    if (!body || len == 0) {
        snprintf(err, errlen, "empty body: expected a JSON object");
        return NULL;
    }
    if (json_has_escaped_nul(body, len)) {
        snprintf(err, errlen,
                 "body contains an escaped NUL character (\\u0000), which no "
                 "field may hold");
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = (at && at >= body && at <= body + len) ? (long)(at - body) : -1;
        snprintf(err, errlen, "body is not valid JSON (error near byte %ld)", off);
        return NULL;
    }
    while (end && end < body + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && end < body + len) {
        snprintf(err, errlen, "body has trailing data after the JSON value (byte %ld)",
                 (long)(end - body));
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Calls fn for each event of the envelope root, or for root itself when bare is set and root
 * is one event object; -1 (err set) when root is neither. */
static int walk(const cJSON *root, int bare, event_fn fn, void *ctx, char *err, size_t errlen)
{
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(root, "events");
    struct event_item item;
    if (bare && cJSON_IsObject(root) && !events &&
        cJSON_GetObjectItemCaseSensitive(root, "action")) {
        classify(root, &item);
        fn(&item, ctx);
        return 1;
    }
    if (!cJSON_IsObject(root) || !cJSON_IsArray(events)) {
        snprintf(err, errlen,
                 bare ? "not a notification: expected an object with an \"events\" array or "
                        "one event object with an \"action\""
                      : "not a notification envelope: expected an object with an "
                        "\"events\" array");
        return -1;
    }
    const cJSON *ev;
    int n = 0;
    cJSON_ArrayForEach(ev, events)
    {
        classify(ev, &item);
        fn(&item, ctx);
        n++;
    }
    return n;
}

static int parse_notification(const char *body, size_t len, int bare, event_fn fn, void *ctx,
                              char *err, size_t errlen)
{
    if (!body || len == 0) {
        snprintf(err, errlen, "empty body: expected a notification envelope {\"events\":[...]}");
        return -1;
    }
    cJSON *root = event_json_parse(body, len, err, errlen);
    if (!root) return -1;
    int rc = walk(root, bare, fn, ctx, err, errlen);
    cJSON_Delete(root);
    return rc;
}

int event_parse_envelope(const char *body, size_t len, event_fn fn, void *ctx, char *err,
                         size_t errlen)
{
    return parse_notification(body, len, 0, fn, ctx, err, errlen);
}

int event_parse_notification(const char *body, size_t len, event_fn fn, void *ctx, char *err,
                             size_t errlen)
{
    return parse_notification(body, len, 1, fn, ctx, err, errlen);
}
