/*
 * testlib.h: the smallest harness that lets table-driven unit tests report what they checked.
 *
 * Every CHECK counts as one test; a failing one prints its location and a message and the run
 * goes on, so one broken case does not hide the others. TEST_DONE() prints the closing line
 * "NAME: N passed, M failed" that tests/run.sh adds up, and returns the exit status.
 * Tests run from the repository root, so fixtures are read as "tests/fixtures/...".
 */
#ifndef AUTODEPLOY_TESTLIB_H
#define AUTODEPLOY_TESTLIB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tl_passed, tl_failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            tl_passed++;                                                                           \
        } else {                                                                                   \
            tl_failed++;                                                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want, ...)                                                                  \
    do {                                                                                           \
        const char *tl_g = (got), *tl_w = (want);                                                  \
        int tl_ok = (tl_g == NULL && tl_w == NULL) ||                                              \
                    (tl_g != NULL && tl_w != NULL && strcmp(tl_g, tl_w) == 0);                     \
        CHECK(tl_ok, "%s: got \"%s\", want \"%s\"", tl_msg_(__VA_ARGS__ ""),                       \
              tl_g ? tl_g : "(null)", tl_w ? tl_w : "(null)");                                     \
    } while (0)

static inline const char *tl_msg_(const char *m)
{
    return m;
}

#define TEST_DONE(name)                                                                            \
    (printf("%s: %d passed, %d failed\n", (name), tl_passed, tl_failed), tl_failed ? 1 : 0)

/* Reads a whole file into a NUL-terminated buffer; the caller frees it. NULL if unreadable. */
static inline char *tl_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

#endif
