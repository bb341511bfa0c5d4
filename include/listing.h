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

#endif
