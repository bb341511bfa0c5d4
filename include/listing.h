/*
 * listing.h: reading Marathon's app listing (GET /v2/apps?label=...) for matching.
 *
 * The listing carries whole app definitions, about 1 KiB of JSON per app, and is read for
 * every push; matching needs five strings per app. A general JSON parser builds a tree of
 * tens of thousands of nodes only to drop it: this scanner walks the text once, decodes just
 * the wanted strings and skips everything else, with the same strict JSON syntax rules.
 * Pure: no I/O.
 */
#ifndef AUTODEPLOY_LISTING_H
#define AUTODEPLOY_LISTING_H

#include <stddef.h>

/* What matching needs of one app. Each string is NULL when absent or not a JSON string; the
 * strings belong to the listing (freed by listing_free, never one by one). */
struct listed_app {
    char *id;      /* "id" */
    char *image;   /* "container"."docker"."image" */
    char *label;   /* "labels".<the configured label> */
    char *channel; /* "labels"."autodeploy.slack-channel" */
    char *paused;  /* "labels"."autodeploy.paused" */
    char *pin;     /* "labels"."autodeploy.pin-digest" */
    char *digest;  /* "labels"."autodeploy.digest": what autodeployd last deployed */
};

struct listing_block;

struct listing {
    struct listed_app *apps;
    size_t n;
    struct listing_block *blocks; /* storage of the strings, owned by the listing */
};

/* Reads {"apps":[...]} (other keys ignored; when a key repeats, the first one counts, as
 * cJSON's lookups do). Returns 0 and fills out (free it with listing_free), or -1 with a
 * one-line reason when the text is not such a JSON document. */
int listing_parse(const char *json, size_t len, const char *label, struct listing *out, char *err,
                  size_t errlen);

/* Frees what listing_parse filled; safe on a zeroed listing. */
void listing_free(struct listing *l);

/*
 * Reading a listing while it arrives. A listing of 1,000 apps is a megabyte: read as its
 * chunks come, only the last chunk is left to read when the answer ends. Feed the stream the
 * whole text received so far each time more has come (the text may move between calls; only
 * offsets are kept); it reads the app objects that are whole by then. listing_stream_end, given
 * the whole text, reads the rest and gives exactly what listing_parse gives for that text (the
 * same listing, or the same error at the same byte). Reading ahead needs the document to begin
 * `{"apps":[`, as Marathon's does; any other document is read at the end. When what has come
 * ends inside an app object (or the opening, or a run of white space), reading ahead waits until
 * the text past what it has read has doubled, so that however the text arrives the whole costs
 * about two passes; an app read too early gives its strings back. Pure; not thread-safe (one
 * stream, one thread).
 */
struct listing_stream {
    struct listing out; /* the apps read so far */
    size_t cap;         /* room in out.apps */
    const char *label;  /* the configured label; the caller's, outlives the stream */
    size_t label_len;
    int seen_apps;   /* the "apps" member was found */
    int phase;       /* where reading ahead stands (listing.c) */
    int ahead_done;  /* reading ahead stopped; the end reads the rest */
    size_t pos;      /* offset of the first byte not read yet */
    size_t retry_at; /* text length at which the app at pos is tried again */
};

/* Starts an empty stream for the label (not copied: it must outlive the stream). */
void listing_stream_init(struct listing_stream *ls, const char *label);

/* text[0..len): everything received so far, a prefix of the final text. Never fails: what it
 * cannot read yet, or finds invalid, is left for listing_stream_end. */
void listing_stream_feed(struct listing_stream *ls, const char *text, size_t len);

/* json[0..len): the whole text. As listing_parse: 0 with out filled (free it with listing_free),
 * or -1 with a one-line reason. Either way the stream holds nothing more afterwards. */
int listing_stream_end(struct listing_stream *ls, const char *json, size_t len, struct listing *out,
                       char *err, size_t errlen);

/* Abandons a stream (an answer that failed or started over); safe to init it again after. */
void listing_stream_free(struct listing_stream *ls);

#endif
