/*
 * fuzz_sse.c: libFuzzer target for the Server-Sent Events parser. The stream comes from
 * Marathon (or whoever answers at its address): any bytes, split anywhere, must parse to the
 * same events as when fed whole, within the memory cap.
 */
#include "sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct tally {
    size_t n, bytes;
};

static void count(const char *event, const char *data, size_t len, void *ctx)
{
    struct tally *t = ctx;
    if (strlen(event) >= 64 || len > 4096 || strlen(data) > len) abort();
    t->n++;
    t->bytes += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sse_parser whole, split;
    struct tally a = {0, 0}, b = {0, 0};
    sse_init(&whole, 4096);
    sse_init(&split, 4096);
    sse_feed(&whole, (const char *)data, size, count, &a);
    size_t step = size ? (data[0] % 7) + 1 : 1;
    for (size_t i = 0; i < size; i += step)
        sse_feed(&split, (const char *)data + i, size - i < step ? size - i : step, count, &b);
    if (a.n != b.n || a.bytes != b.bytes) abort();
    sse_free(&whole);
    sse_free(&split);
    return 0;
}
