/*
 * notify.h: turning a report into the Slack message a channel watcher reads.
 *
 * Pure code: no I/O, no logging, no globals, so every message can be checked byte for byte in a
 * unit test. The output is an incoming-webhook payload that Slack and Mattermost both accept: a
 * one-line plain summary in "text" (what a phone notification shows) and one colour-coded
 * attachment with the details. Everything that came from outside (repository, tag, pusher,
 * reasons, task messages, image names, app ids) is escaped by Slack's rules and cut to a
 * bounded length, so a push cannot inject links, mentions or a wall of text.
 */
#ifndef AUTODEPLOY_NOTIFY_H
#define AUTODEPLOY_NOTIFY_H

#include "buf.h"
#include "report.h"

#include <stddef.h>

/* Appended where a text was cut. */
#define NOTIFY_TRUNCATED "\xe2\x80\xa6(truncated)"

/* Longest part of a user-controlled string kept in the one-line summary, and in a field. */
#define NOTIFY_SUMMARY_MAX 150
#define NOTIFY_FIELD_MAX 500

/* Attachment colours (hex, so that Mattermost shows the same ones as Slack). */
#define NOTIFY_COLOR_INFO "#439FE0"
#define NOTIFY_COLOR_GOOD "#2EB886"
#define NOTIFY_COLOR_WARNING "#DAA038"
#define NOTIFY_COLOR_DANGER "#A30200"

struct notify_opts {
    const char *pushes;          /* "all", "matched" or "none"; NULL means "matched" */
    const char *marathon_ui_url; /* base of the Marathon UI for app links; NULL or "": no links */
};

/* notify_escape flag: turn line breaks and tabs into spaces (for one-line texts). */
#define NOTIFY_ONE_LINE 1

/* Appends s to out as Slack message text: '&', '<' and '>' become "&amp;", "&lt;", "&gt;"; an
 * '@' that would start a mention (at the start or after a non-alphanumeric character, before a
 * letter) is followed by an invisible word joiner, so "@channel" notifies nobody in Mattermost
 * either; invalid UTF-8 becomes U+FFFD; control characters are dropped (line breaks and tabs
 * are kept, or become spaces with NOTIFY_ONE_LINE). At most max bytes of s are kept, cut on a
 * character boundary and followed by NOTIFY_TRUNCATED when something was left out. The result
 * is text, not JSON: JSON-escape it when it goes into a payload. 0, or -1 when out is full. */
int notify_escape(struct buf *out, const char *s, size_t max, int flags);

/* Writes the 12 hex digits after "sha256:" (or after the algorithm of another digest) into
 * out, NUL-terminated; "" when digest has none. out must hold at least 13 bytes. */
void notify_short_digest(const char *digest, char *out, size_t outlen);

/* 1 when a report of this kind should reach Slack under the --slack-pushes policy in o: a push
 * that deploys nowhere is announced only with "all", and "none" announces no push at all.
 * Every other kind is always sent. */
int notify_should_send(const struct report *r, const struct notify_opts *o);

/* Appends the incoming-webhook JSON payload for r to out (o may be NULL: no links). The payload
 * carries "channel" only when the app asked for one (label autodeploy.slack-channel). Returns 0,
 * or -1 when out's cap was reached (out may then hold part of a payload: reset it). */
int notify_format_slack(const struct report *r, const struct notify_opts *o, struct buf *out);

#endif
