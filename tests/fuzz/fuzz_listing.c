/*
 * fuzz_listing.c: libFuzzer target for the app-listing scanner. The listing comes from
 * Marathon (or whoever answers at its address): any bytes must be read or refused without a
 * crash or a leak, and whenever both the scanner and cJSON accept a document they must agree
 * on every string matching uses.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct listing l;
    char err[256];
    int rc = listing_parse(text, size, "autodeploy", &l, err, sizeof err);
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
