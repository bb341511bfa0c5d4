/*
 * notify.c: the Slack messages (see notify.h).
 *
 * A message is composed in parts (summary, title, link, text, fields), each holding Slack text
 * that is already escaped, then written out as JSON in one place. Keeping the two escapings
 * apart (Slack's entities while composing, JSON's when writing) means no string can reach the
 * payload having had only one of them.
 */
#include "notify.h"

#include <stdio.h>
#include <string.h>

#define PART_MAX (16 * 1024)
#define MAX_FIELDS 8

/* U+2060 WORD JOINER: invisible, and breaks "@channel" into something that mentions nobody. */
#define WORD_JOINER "\xe2\x81\xa0"
#define REPLACEMENT_CHAR "\xef\xbf\xbd"

struct field {
    const char *title;
    struct buf value;
    int is_short;
};

struct msg {
    const char *color;
    struct buf summary; /* one line: the top-level text and the attachment's fallback */
    struct buf title;
    struct buf link; /* title_link, "" for none */
    struct buf text; /* attachment text, "" for none */
    struct field fields[MAX_FIELDS];
    int n_fields;
    int rc; /* -1 once any part overflowed */
};

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 when p does not start one. Reads no
 * byte past a NUL, since a NUL is never a continuation byte. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;  /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0; /* past U+10FFFF */
        return 4;
    }
    return 0;
}

static int is_ascii_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_ascii_alnum(unsigned char c)
{
    return is_ascii_alpha(c) || (c >= '0' && c <= '9');
}

int notify_escape(struct buf *out, const char *s, size_t max, int flags)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t used = 0;
    int rc = 0;
    int after_word = 0; /* the previous character could be part of a word (or an e-mail) */

    while (*p) {
        size_t n = utf8_len(p);
        size_t take = n ? n : 1;
        if (used + take > max) {
            rc |= buf_adds(out, NOTIFY_TRUNCATED);
            break;
        }
        used += take;
        if (n != 1) {
            rc |= n ? buf_add(out, p, n) : buf_adds(out, REPLACEMENT_CHAR);
            after_word = 1;
            p += take;
            continue;
        }
        unsigned char c = *p;
        switch (c) {
        case '&':
            rc |= buf_adds(out, "&amp;");
            break;
        case '<':
            rc |= buf_adds(out, "&lt;");
            break;
        case '>':
            rc |= buf_adds(out, "&gt;");
            break;
        case '\r':
            if ((flags & NOTIFY_ONE_LINE) && p[1] != '\n') rc |= buf_adds(out, " ");
            break;
        case '\n':
        case '\t':
            rc |= buf_add(out, (flags & NOTIFY_ONE_LINE) ? " " : (const char *)p, 1);
            break;
        case '@':
            rc |= buf_adds(out, "@");
            if (!after_word && is_ascii_alpha(p[1])) rc |= buf_adds(out, WORD_JOINER);
            break;
        default:
            if (c >= 0x20 && c != 0x7f) rc |= buf_add(out, p, 1);
        }
        after_word = is_ascii_alnum(c) || c == '_';
        p++;
    }
    return rc ? -1 : 0;
}

void notify_short_digest(const char *digest, char *out, size_t outlen)
{
    if (!outlen) return;
    out[0] = '\0';
    if (!digest) return;
    const char *hex = strchr(digest, ':');
    hex = hex ? hex + 1 : digest;
    size_t n = 0;
    while (n < 12 && n + 1 < outlen && hex[n] &&
           ((hex[n] >= '0' && hex[n] <= '9') || (hex[n] >= 'a' && hex[n] <= 'f'))) {
        out[n] = hex[n];
        n++;
    }
    out[n] = '\0';
}

int notify_should_send(const struct report *r, const struct notify_opts *o)
{
    if (r->kind != REPORT_PUSHED) return 1;
    const char *policy = (o && o->pushes) ? o->pushes : "matched";
    if (strcmp(policy, "all") == 0) return 1;
    if (strcmp(policy, "none") == 0) return 0;
    return r->n_apps > 0;
}

/* --- composing ------------------------------------------------------------------------------ */

static void msg_init(struct msg *m)
{
    memset(m, 0, sizeof *m);
    buf_init(&m->summary, PART_MAX);
    buf_init(&m->title, PART_MAX);
    buf_init(&m->link, PART_MAX);
    buf_init(&m->text, PART_MAX);
}

static void msg_free(struct msg *m)
{
    buf_free(&m->summary);
    buf_free(&m->title);
    buf_free(&m->link);
    buf_free(&m->text);
    for (int i = 0; i < m->n_fields; i++)
        buf_free(&m->fields[i].value);
}

/* Appends text we wrote ourselves (no user content). */
static void lit(struct msg *m, struct buf *b, const char *s)
{
    m->rc |= buf_adds(b, s);
}

/* Appends a user-controlled string, escaped and capped. */
static void esc(struct msg *m, struct buf *b, const char *s, size_t max, int flags)
{
    m->rc |= notify_escape(b, s, max, flags);
}

/* Starts a field and returns its value buffer (NULL, and the message marked failed, past
 * MAX_FIELDS: a programming error caught by the tests, never input-dependent). */
static struct buf *field(struct msg *m, const char *title, int is_short)
{
    if (m->n_fields == MAX_FIELDS) {
        m->rc = -1;
        return NULL;
    }
    struct field *f = &m->fields[m->n_fields++];
    f->title = title;
    f->is_short = is_short;
    buf_init(&f->value, PART_MAX);
    return &f->value;
}

static void field_user(struct msg *m, const char *title, const char *value, int is_short, int flags)
{
    struct buf *b = field(m, title, is_short);
    if (b) esc(m, b, value, NOTIFY_FIELD_MAX, flags);
}

static void field_lit(struct msg *m, const char *title, const char *value, int is_short)
{
    struct buf *b = field(m, title, is_short);
    if (b) lit(m, b, value);
}

/* "repository:tag" of the push, or the new image when the report has no push. */
static void add_ref(struct msg *m, struct buf *b, const struct report *r)
{
    if (r->push.repository[0]) {
        esc(m, b, r->push.repository, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
        if (r->push.tag[0]) {
            lit(m, b, ":");
            esc(m, b, r->push.tag, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
        }
    } else if (r->new_image[0]) {
        esc(m, b, r->new_image, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
    } else {
        lit(m, b, "an image");
    }
}

/* The image the app is moving to: new_image, else repository:tag. */
static void add_new_image(struct msg *m, struct buf *b, const struct report *r)
{
    if (r->new_image[0])
        esc(m, b, r->new_image, NOTIFY_FIELD_MAX, NOTIFY_ONE_LINE);
    else
        add_ref(m, b, r);
}

static void add_app(struct msg *m, struct buf *b, const struct report *r)
{
    esc(m, b, r->app_id[0] ? r->app_id : "(unknown app)", NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
}

/* A field holding the pushed image (the new one). */
static void field_new_image(struct msg *m, const struct report *r, const char *title)
{
    struct buf *b = field(m, title, 0);
    if (b) add_new_image(m, b, r);
}

/* The summary's opening most messages share: "<verb> <repository:tag> to <app>". */
static void summary_ref_to_app(struct msg *m, const struct report *r, const char *verb)
{
    lit(m, &m->summary, verb);
    add_ref(m, &m->summary, r);
    lit(m, &m->summary, " to ");
    add_app(m, &m->summary, r);
}

static void add_reason(struct msg *m, struct buf *b, const struct report *r)
{
    if (!r->reason[0]) return;
    lit(m, b, ": ");
    esc(m, b, r->reason, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
}

static void format_duration(double s, char *out, size_t n)
{
    if (!(s >= 0) || s > 1e9) {
        snprintf(out, n, "?");
        return;
    }
    if (s < 9.95) {
        snprintf(out, n, "%.1fs", s);
        return;
    }
    long t = (long)(s + 0.5);
    if (t < 60)
        snprintf(out, n, "%lds", t);
    else if (t < 3600)
        snprintf(out, n, "%ldm %02lds", t / 60, t % 60);
    else
        snprintf(out, n, "%ldh %02ldm", t / 3600, (t % 3600) / 60);
}

/* The Marathon UI page of the app: <base>/ui/#/apps/<app id, percent-encoded>, the route and
 * encoding (encodeURIComponent) of mesosphere/marathon-ui. Nothing when no base is set. */
static void add_app_link(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    if (!o || !o->marathon_ui_url || !o->marathon_ui_url[0] || !r->app_id[0]) return;
    size_t blen = strlen(o->marathon_ui_url);
    while (blen && o->marathon_ui_url[blen - 1] == '/')
        blen--;
    m->rc |= buf_add(&m->link, o->marathon_ui_url, blen);
    lit(m, &m->link, "/ui/#/apps/");
    for (const unsigned char *p = (const unsigned char *)r->app_id; *p; p++) {
        if (is_ascii_alnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~')
            m->rc |= buf_add(&m->link, p, 1);
        else
            m->rc |= buf_printf(&m->link, "%%%02X", *p);
    }
}

/* The title of an attachment about one app: the app id, linked to the UI when possible. */
static void app_title(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    add_app(m, &m->title, r);
    add_app_link(m, r, o);
}

/* PUSHED's list of apps. The list in the report may have been cut to fit: then its last,
 * partial id is dropped and "and N more" says how many are not shown. */
static void add_apps(struct msg *m, struct buf *b, const struct report *r)
{
    char list[sizeof r->apps];
    snprintf(list, sizeof list, "%s", r->apps);
    if (strlen(list) == sizeof list - 1) {
        char *last = NULL;
        for (char *p = strstr(list, ", "); p; p = strstr(p + 2, ", "))
            last = p;
        if (last) *last = '\0';
    }
    int shown = 0;
    if (list[0]) {
        shown = 1;
        for (const char *p = strstr(list, ", "); p; p = strstr(p + 2, ", "))
            shown++;
        esc(m, b, list, sizeof list, NOTIFY_ONE_LINE);
    }
    if (r->n_apps > shown)
        m->rc |= buf_printf(b, "%s%d %s", shown ? " and " : "", r->n_apps - shown,
                            shown ? "more" : (r->n_apps == 1 ? "app" : "apps"));
    else if (!shown)
        lit(m, b, "no app");
}

/* A push reconcile found in the registry rather than a notification. */
static int reconciled(const struct report *r)
{
    return !strcmp(r->push.source, "reconcile");
}

static void compose_pushed(struct msg *m, const struct report *r)
{
    char sd[16];
    notify_short_digest(r->push.digest, sd, sizeof sd);
    m->color = NOTIFY_COLOR_INFO;
    int found = reconciled(r);

    lit(m, &m->summary, found ? "Found " : "Pushed ");
    add_ref(m, &m->summary, r);
    if (sd[0]) m->rc |= buf_printf(&m->summary, " (%s)", sd);
    if (found) lit(m, &m->summary, " in the registry by reconcile (missed by the webhook)");
    if (r->push.pusher[0]) {
        lit(m, &m->summary, " by ");
        esc(m, &m->summary, r->push.pusher, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
    }
    if (r->n_apps <= 0) {
        lit(m, &m->summary, ": no app deploys it");
    } else if (r->n_apps == 1 && r->apps[0]) {
        lit(m, &m->summary, ": will deploy to ");
        esc(m, &m->summary, r->apps, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
    } else {
        m->rc |= buf_printf(&m->summary, ": will deploy to %d app%s", r->n_apps,
                            r->n_apps == 1 ? "" : "s");
    }

    lit(m, &m->title, found ? "Found in the registry " : "Pushed ");
    add_ref(m, &m->title, r);
    if (sd[0]) field_lit(m, "Digest", sd, 1);
    if (found)
        field_lit(m, "Found by", "reconcile: the webhook missed it", 1);
    else
        field_user(m, "Pushed by", r->push.pusher[0] ? r->push.pusher : "unknown", 1,
                   NOTIFY_ONE_LINE);
    if (r->push.host[0]) field_user(m, "Registry", r->push.host, 1, NOTIFY_ONE_LINE);
    struct buf *b = field(m, "Deploys to", 0);
    if (b) add_apps(m, b, r);
}

static void compose_deploying(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    char sd[16], old_sd[16];
    notify_short_digest(r->push.digest, sd, sizeof sd);
    notify_short_digest(r->old_digest, old_sd, sizeof old_sd);
    m->color = NOTIFY_COLOR_INFO;

    summary_ref_to_app(m, r, "Deploying ");
    if (r->push.pusher[0]) {
        lit(m, &m->summary, ", pushed by ");
        esc(m, &m->summary, r->push.pusher, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
    }
    if (reconciled(r)) lit(m, &m->summary, ", found by reconcile (missed by the webhook)");

    app_title(m, r, o);
    /* The change as a two-line diff, monospaced so that the images line up. */
    lit(m, &m->text, "```\n- ");
    if (r->old_image[0])
        esc(m, &m->text, r->old_image, NOTIFY_FIELD_MAX, NOTIFY_ONE_LINE);
    else
        lit(m, &m->text, "(unknown)");
    if (old_sd[0]) m->rc |= buf_printf(&m->text, " (%s)", old_sd);
    lit(m, &m->text, "\n+ ");
    add_new_image(m, &m->text, r);
    if (sd[0]) m->rc |= buf_printf(&m->text, " (%s)", sd);
    lit(m, &m->text, "\n```");

    if (r->deployment_id[0]) field_user(m, "Deployment", r->deployment_id, 1, NOTIFY_ONE_LINE);
    if (r->instances >= 0) {
        char n[24];
        snprintf(n, sizeof n, "%d", r->instances);
        field_lit(m, "Instances", n, 1);
    }
    if (r->push.pusher[0]) field_user(m, "Pushed by", r->push.pusher, 1, NOTIFY_ONE_LINE);
}

static void compose_deployed(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    char dur[32];
    format_duration(r->duration_s, dur, sizeof dur);
    m->color = NOTIFY_COLOR_GOOD;

    summary_ref_to_app(m, r, "Deployed ");
    if (r->duration_s > 0) {
        lit(m, &m->summary, " in ");
        lit(m, &m->summary, dur);
    }

    app_title(m, r, o);
    field_new_image(m, r, "Image");
    if (r->duration_s > 0) field_lit(m, "Duration", dur, 1);
    if (r->push.pusher[0]) field_user(m, "Pushed by", r->push.pusher, 1, NOTIFY_ONE_LINE);
}

/* The fields every failure-like message shares: why, what the task said, which image. */
static void failure_fields(struct msg *m, const struct report *r)
{
    if (r->reason[0]) field_user(m, "Reason", r->reason, 0, 0);
    if (r->task_message[0]) field_user(m, "Last task failure", r->task_message, 0, 0);
    field_new_image(m, r, "Image");
    if (r->deployment_id[0]) field_user(m, "Deployment", r->deployment_id, 1, NOTIFY_ONE_LINE);
}

static void compose_failed(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_DANGER;
    summary_ref_to_app(m, r, "Failed to deploy ");
    add_reason(m, &m->summary, r);

    app_title(m, r, o);
    failure_fields(m, r);
    if (r->duration_s > 0) {
        char dur[32];
        format_duration(r->duration_s, dur, sizeof dur);
        field_lit(m, "Duration", dur, 1);
    }
}

static void compose_timed_out(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_DANGER;
    summary_ref_to_app(m, r, "Timed out deploying ");
    if (r->duration_s > 0) {
        char dur[32];
        format_duration(r->duration_s, dur, sizeof dur);
        lit(m, &m->summary, " after ");
        lit(m, &m->summary, dur);
    }
    add_reason(m, &m->summary, r);

    app_title(m, r, o);
    failure_fields(m, r);
}

static void compose_rolled_back(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_WARNING;
    lit(m, &m->summary, "Rolled back ");
    add_app(m, &m->summary, r);
    lit(m, &m->summary, " to ");
    if (r->old_image[0])
        esc(m, &m->summary, r->old_image, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
    else
        lit(m, &m->summary, "its previous version");
    add_reason(m, &m->summary, r);

    app_title(m, r, o);
    if (r->old_image[0]) field_user(m, "Rolled back to", r->old_image, 0, NOTIFY_ONE_LINE);
    if (r->reason[0]) field_user(m, "Reason", r->reason, 0, 0);
    if (r->task_message[0]) field_user(m, "Last task failure", r->task_message, 0, 0);
    field_new_image(m, r, "Failed image");
    if (r->deployment_id[0]) field_user(m, "Deployment", r->deployment_id, 1, NOTIFY_ONE_LINE);
}

static void compose_rollback_failed(struct msg *m, const struct report *r,
                                    const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_DANGER;
    lit(m, &m->summary, "Rollback of ");
    add_app(m, &m->summary, r);
    lit(m, &m->summary, r->rollback_id[0] ? " did not complete" : " refused");
    if (r->error[0]) {
        lit(m, &m->summary, ": ");
        esc(m, &m->summary, r->error, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
    }
    lit(m, &m->summary, "; it needs a hand");

    app_title(m, r, o);
    if (r->error[0]) field_user(m, "Marathon answered", r->error, 0, 0);
    if (r->reason[0]) field_user(m, "Why it was rolled back", r->reason, 0, 0);
    field_new_image(m, r, "Failed image");
    if (r->old_image[0]) field_user(m, "Previous image", r->old_image, 0, NOTIFY_ONE_LINE);
    if (r->deployment_id[0]) field_user(m, "Deployment", r->deployment_id, 1, NOTIFY_ONE_LINE);
}

static void compose_rolling_back(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_WARNING;
    lit(m, &m->summary, "Rolling back ");
    add_app(m, &m->summary, r);
    lit(m, &m->summary, " to ");
    if (r->old_image[0])
        esc(m, &m->summary, r->old_image, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
    else
        lit(m, &m->summary, "its previous image");
    if (r->rollback_id[0]) {
        lit(m, &m->summary, " (deployment ");
        esc(m, &m->summary, r->rollback_id, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
        lit(m, &m->summary, ")");
    }
    add_reason(m, &m->summary, r);

    app_title(m, r, o);
    if (r->reason[0]) field_user(m, "Why", r->reason, 0, 0);
    field_new_image(m, r, "Failed image");
    if (r->deployment_id[0])
        field_user(m, "Rollback deployment", r->deployment_id, 1, NOTIFY_ONE_LINE);
}

static void compose_cancelled(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_WARNING;
    summary_ref_to_app(m, r, "Deployment cancelled by someone else: ");
    add_reason(m, &m->summary, r);

    app_title(m, r, o);
    if (r->reason[0]) field_user(m, "What happened", r->reason, 0, 0);
    field_new_image(m, r, "Image");
    if (r->deployment_id[0]) field_user(m, "Deployment", r->deployment_id, 1, NOTIFY_ONE_LINE);
}

static void compose_superseded(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_WARNING;
    lit(m, &m->summary, "Superseded: ");
    add_ref(m, &m->summary, r);
    lit(m, &m->summary, " will not deploy to ");
    add_app(m, &m->summary, r);
    add_reason(m, &m->summary, r);

    app_title(m, r, o);
    if (r->reason[0]) field_user(m, "Reason", r->reason, 0, 0);
    field_new_image(m, r, "Image");
}

static void compose_skipped(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_WARNING;
    summary_ref_to_app(m, r, "Skipped deploying ");
    add_reason(m, &m->summary, r);

    app_title(m, r, o);
    if (r->reason[0]) field_user(m, "Reason", r->reason, 0, 0);
    if (r->task_message[0]) field_user(m, "Last task failure", r->task_message, 0, 0);
    field_new_image(m, r, "Image");
    if (r->push.pusher[0]) field_user(m, "Pushed by", r->push.pusher, 1, NOTIFY_ONE_LINE);
}

static void compose_interrupted(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_WARNING;
    summary_ref_to_app(m, r, "Stopped following ");
    add_reason(m, &m->summary, r);

    app_title(m, r, o);
    if (r->reason[0]) field_user(m, "Reason", r->reason, 0, 0);
    field_new_image(m, r, "Image");
    if (r->deployment_id[0]) field_user(m, "Deployment", r->deployment_id, 1, NOTIFY_ONE_LINE);
}

/* "approve" or "reject" through the console, the API or Slack. */
static void add_decider(struct msg *m, struct buf *b, const struct report *r)
{
    lit(m, b, " by ");
    esc(m, b, r->approval_by[0] ? r->approval_by : "someone", NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
    if (r->approval_via[0]) {
        lit(m, b, " (");
        esc(m, b, r->approval_via, 16, NOTIFY_ONE_LINE);
        lit(m, b, ")");
    }
}

/* The images and the pusher of an approval's messages. */
static void approval_fields(struct msg *m, const struct report *r)
{
    if (r->old_image[0]) field_user(m, "Running now", r->old_image, 0, NOTIFY_ONE_LINE);
    field_new_image(m, r, "Would deploy");
    if (r->push.pusher[0]) field_user(m, "Pushed by", r->push.pusher, 1, NOTIFY_ONE_LINE);
    if (r->approval_id[0]) field_user(m, "Approval", r->approval_id, 1, NOTIFY_ONE_LINE);
}

static void compose_awaiting(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_WARNING;
    summary_ref_to_app(m, r, "Approval needed to deploy ");
    if (r->push.pusher[0]) {
        lit(m, &m->summary, " (pushed by ");
        esc(m, &m->summary, r->push.pusher, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
        lit(m, &m->summary, ")");
    }
    app_title(m, r, o);
    approval_fields(m, r);
    if (r->approval_expires[0]) field_user(m, "Expires", r->approval_expires, 1, NOTIFY_ONE_LINE);
    lit(m, &m->text,
        "Approve or reject with the buttons below, in the console, or with the "
        "admin token: POST /v1/approvals/");
    esc(m, &m->text, r->approval_id, 40, NOTIFY_ONE_LINE);
    lit(m, &m->text, "/approve (or /reject). A newer push replaces this approval.");
}

static void compose_decided(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    int ok = r->kind == REPORT_APPROVED;
    m->color = ok ? NOTIFY_COLOR_GOOD : NOTIFY_COLOR_DANGER;
    summary_ref_to_app(m, r, ok ? "Approved deploying " : "Rejected deploying ");
    add_decider(m, &m->summary, r);
    app_title(m, r, o);
    approval_fields(m, r);
    struct buf *b = field(m, ok ? "Approved by" : "Rejected by", 1);
    if (b) {
        esc(m, b, r->approval_by[0] ? r->approval_by : "someone", NOTIFY_FIELD_MAX,
            NOTIFY_ONE_LINE);
        if (r->approval_via[0]) {
            lit(m, b, " via ");
            esc(m, b, r->approval_via, 16, NOTIFY_ONE_LINE);
        }
    }
}

static void compose_expired(struct msg *m, const struct report *r, const struct notify_opts *o)
{
    m->color = NOTIFY_COLOR_WARNING;
    summary_ref_to_app(m, r, "Approval expired: nobody approved deploying ");
    app_title(m, r, o);
    approval_fields(m, r);
    lit(m, &m->text, "It will not deploy; push again to ask again.");
}

static void compose_pause(struct msg *m, const struct report *r)
{
    int paused = r->kind == REPORT_PAUSED;
    m->color = paused ? NOTIFY_COLOR_WARNING : NOTIFY_COLOR_GOOD;
    const char *what = paused ? "Deployments paused" : "Deployments resumed";
    lit(m, &m->summary, what);
    if (r->reason[0]) {
        lit(m, &m->summary, " by ");
        esc(m, &m->summary, r->reason, NOTIFY_SUMMARY_MAX, NOTIFY_ONE_LINE);
    }
    lit(m, &m->title, what);
}

/* --- writing -------------------------------------------------------------------------------- */

/* Appends "key":"value" (value already Slack text) and a comma unless last. */
static int json_member(struct buf *out, const char *key, const struct buf *value, int last)
{
    int rc = buf_printf(out, "\"%s\":", key);
    rc |= buf_add_json_string(out, value->data ? value->data : "");
    if (!last) rc |= buf_adds(out, ",");
    return rc;
}

/* The Approve and Reject buttons (Block Kit; a Slack app's incoming webhook posts them, and a
 * click goes to the app's interactivity URL, /v1/slack/interactions). The approval id is ours
 * (hex), the rest literal. Mattermost ignores blocks and shows the attachment. */
static int add_buttons(const struct msg *m, const struct report *r, struct buf *out)
{
    /* With blocks, Slack shows them instead of "text": the summary (already Slack text) leads. */
    int rc = buf_adds(out, "\"blocks\":[{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\","
                           "\"text\":");
    rc |= buf_add_json_string(out, m->summary.data ? m->summary.data : "");
    rc |= buf_adds(out, "}},{\"type\":\"actions\",\"block_id\":\"autodeploy_approval\","
                        "\"elements\":[");
    static const char *const btn[][3] = {{"approve", "Approve", "primary"},
                                         {"reject", "Reject", "danger"}};
    for (int i = 0; i < 2; i++) {
        rc |= buf_printf(out,
                         "%s{\"type\":\"button\",\"action_id\":\"%s\",\"style\":\"%s\","
                         "\"text\":{\"type\":\"plain_text\",\"text\":\"%s\"},\"value\":",
                         i ? "," : "", btn[i][0], btn[i][2], btn[i][1]);
        rc |= buf_add_json_string(out, r->approval_id);
        rc |= buf_adds(out, "}");
    }
    return rc | buf_adds(out, "]}],");
}

static int write_payload(const struct msg *m, const struct report *r, struct buf *out)
{
    int rc = buf_adds(out, "{");
    if (r->slack_channel[0]) {
        rc |= buf_adds(out, "\"channel\":");
        rc |= buf_add_json_string(out, r->slack_channel);
        rc |= buf_adds(out, ",");
    }
    rc |= json_member(out, "text", &m->summary, 0);
    rc |= buf_adds(out, "\"attachments\":[{");
    rc |= json_member(out, "fallback", &m->summary, 0);
    rc |= buf_printf(out, "\"color\":\"%s\",", m->color);
    rc |= json_member(out, "title", &m->title, 0);
    if (m->link.len) rc |= json_member(out, "title_link", &m->link, 0);
    if (m->text.len) rc |= json_member(out, "text", &m->text, 0);
    if (m->n_fields) {
        rc |= buf_adds(out, "\"fields\":[");
        for (int i = 0; i < m->n_fields; i++) {
            const struct field *f = &m->fields[i];
            rc |= buf_adds(out, i ? ",{\"title\":" : "{\"title\":");
            rc |= buf_add_json_string(out, f->title);
            rc |= buf_adds(out, ",");
            rc |= json_member(out, "value", &f->value, 0);
            rc |= buf_adds(out, f->is_short ? "\"short\":true}" : "\"short\":false}");
        }
        rc |= buf_adds(out, "],");
    }
    rc |= buf_adds(out, "\"mrkdwn_in\":[\"text\"]}],");
    if (r->kind == REPORT_AWAITING_APPROVAL && r->approval_id[0]) rc |= add_buttons(m, r, out);
    rc |= buf_adds(out, "\"unfurl_links\":false,\"unfurl_media\":false}");
    return rc ? -1 : 0;
}

int notify_format_slack(const struct report *r, const struct notify_opts *o, struct buf *out)
{
    struct msg m;
    int rc = -1;
    msg_init(&m);
    switch (r->kind) {
    case REPORT_PUSHED:
        compose_pushed(&m, r);
        break;
    case REPORT_DEPLOYING:
        compose_deploying(&m, r, o);
        break;
    case REPORT_DEPLOYED:
        compose_deployed(&m, r, o);
        break;
    case REPORT_FAILED:
        compose_failed(&m, r, o);
        break;
    case REPORT_TIMED_OUT:
        compose_timed_out(&m, r, o);
        break;
    case REPORT_ROLLED_BACK:
        compose_rolled_back(&m, r, o);
        break;
    case REPORT_SUPERSEDED:
        compose_superseded(&m, r, o);
        break;
    case REPORT_SKIPPED:
        compose_skipped(&m, r, o);
        break;
    case REPORT_PAUSED:
    case REPORT_RESUMED:
        compose_pause(&m, r);
        break;
    case REPORT_INTERRUPTED:
        compose_interrupted(&m, r, o);
        break;
    case REPORT_ROLLBACK_FAILED:
        compose_rollback_failed(&m, r, o);
        break;
    case REPORT_ROLLING_BACK:
        compose_rolling_back(&m, r, o);
        break;
    case REPORT_CANCELLED:
        compose_cancelled(&m, r, o);
        break;
    case REPORT_AWAITING_APPROVAL:
        compose_awaiting(&m, r, o);
        break;
    case REPORT_APPROVED:
    case REPORT_REJECTED:
        compose_decided(&m, r, o);
        break;
    case REPORT_APPROVAL_EXPIRED:
        compose_expired(&m, r, o);
        break;
    default:
        goto out;
    }
    if (m.rc) goto out;
    rc = write_payload(&m, r, out);
out:
    msg_free(&m);
    return rc;
}
