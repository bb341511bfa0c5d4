/*
 * fuzz_semver.c: libFuzzer target for the semver parser, precedence and range compiler.
 *
 * Tags are chosen by whoever pushes and ranges by whoever labels an app; neither may crash the
 * daemon. The input is split at newlines into a range and two versions; every piece is parsed,
 * compared and tested against the range, and the range is formatted back.
 */
#include "semver.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf, *parts[3] = {NULL, NULL, NULL}, err[256], fmt[1024];
    struct semver a, b;
    semver_range *r;
    size_t off;
    int n = 0, ha, hb;

    if (size > MAX_INPUT) return 0;
    buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    parts[n++] = buf;
    for (char *p = buf; *p && n < 3; p++) {
        if (*p == '\n') {
            *p = '\0';
            parts[n++] = p + 1;
        }
    }
    r = semver_range_new(parts[0], err, sizeof(err), &off);
    if (r) (void)semver_range_format(r, fmt, sizeof(fmt));
    ha = parts[1] && semver_parse(parts[1], 1, &a, err, sizeof(err)) == 0;
    hb = parts[2] && semver_parse(parts[2], 0, &b, err, sizeof(err)) == 0;
    if (!ha) ha = semver_parse(parts[0], 1, &a, err, sizeof(err)) == 0;
    if (ha && hb) {
        int x = semver_compare(&a, &b), y = semver_compare(&b, &a);
        if ((x < 0 && y <= 0) || (x > 0 && y >= 0) || (x == 0 && y != 0))
            abort(); /* antisymmetry */
        if (semver_compare(&a, &a) != 0) abort();
    }
    if (r && ha) (void)semver_range_test(r, &a, err, sizeof(err));
    if (r && hb) (void)semver_range_test(r, &b, NULL, 0);
    semver_range_free(r);
    free(buf);
    return 0;
}
