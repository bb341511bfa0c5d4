/*
 * fuzz_listing.c: libFuzzer target for the app-listing scanner. The listing comes from
 * Marathon (or whoever answers at its address): any bytes must be read or refused without a
 * crash or a leak, and whenever both the scanner and cJSON accept a document they must agree
 * on every string matching uses; read as it arrives (in chunks whose size the input's first
 * byte chooses), it must give exactly what it gives read whole.
 */
#include "listing.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Reads text in chunks of step bytes, as the dispatcher reads Marathon's answer, and checks
 * the result is the whole reading's (rc, err and, when read, every string). */
static void streamed_same(const char *text, size_t size, size_t step, int rc, const char *err,
                          const struct listing *whole)
{
    struct listing_stream ls;
    listing_stream_init(&ls, "autodeploy");
    for (size_t have = step; have < size; have += step) {
        char *arrived = malloc(have);
        if (!arrived) abort();
        memcpy(arrived, text, have); /* exactly what has come: reading past it is an error */
        listing_stream_feed(&ls, arrived, have);
        free(arrived);
    }
    struct listing l;
    char e[256] = "";
    int r = listing_stream_end(&ls, text, size, &l, e, sizeof e);
    if (r != rc || strcmp(e, err) != 0) abort();
    if (r != 0) return;
    if (l.n != whole->n) abort();
    for (size_t i = 0; i < l.n; i++) {
        const struct listed_app *a = &l.apps[i], *b = &whole->apps[i];
        if (!same(a->id, b->id) || !same(a->image, b->image) || !same(a->label, b->label) ||
            !same(a->channel, b->channel) || !same(a->paused, b->paused) || !same(a->pin, b->pin) ||
            !same(a->digest, b->digest))
            abort();
    }
    listing_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct listing l;
    char err[256] = "";
    int rc = listing_parse(text, size, "autodeploy", &l, err, sizeof err);
    if (size > 0) streamed_same(text, size, 1 + (size_t)data[0] % 97, rc, err, &l);
    /* Compare only documents both accept, free of the cases where they legitimately differ:
     * NUL (C strings), and escapes cJSON decodes differently (lone surrogates). */
    cJSON *root = (rc == 0 && !memchr(text, '\0', size) && !strstr(text, "\\u"))
                      ? cJSON_ParseWithLength(text, size)
                      : NULL;
    const cJSON *apps = cJSON_GetObjectItemCaseSensitive(root, "apps");
    if (root && cJSON_IsArray(apps)) {
        size_t i = 0;
        const cJSON *a;
        cJSON_ArrayForEach(a, apps)
        {
            if (!cJSON_IsObject(a)) continue;
            if (i >= l.n) abort();
            const struct listed_app *g = &l.apps[i++];
            const cJSON *labels = cJSON_GetObjectItemCaseSensitive(a, "labels");
            const cJSON *docker = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(a, "container"), "docker");
            if (!same(g->id, jstr(a, "id")) || !same(g->label, jstr(labels, "autodeploy")) ||
                !same(g->image, jstr(docker, "image")))
                abort();
        }
        if (i != l.n) abort();
    }
    cJSON_Delete(root);
    if (rc == 0) listing_free(&l);
    free(text);
    return 0;
}
