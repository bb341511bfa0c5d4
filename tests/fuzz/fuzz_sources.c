/*
 * fuzz_sources.c: libFuzzer target for the other registries' webhook parsers. Every input goes
 * through every parser (GitHub's as a "package" event): any bytes must give verdicts or a
 * refusal, never a crash, a leak or a push whose fields break Docker's grammar.
 */
#include "reference.h"
#include "sources.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(const struct event_item *it, void *ctx)
{
    (void)ctx;
    if (it->verdict != EVENT_PUSH) return;
    const struct push *p = &it->push;
    if (!ref_valid_repository(p->repository) || !ref_valid_tag(p->tag) ||
        (p->digest[0] && !ref_valid_digest(p->digest)) ||
        (p->host[0] && !ref_valid_host(p->host)) || !p->source[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    for (size_t i = 0; i < source_count(); i++) {
        err[0] = '\0';
        int rc = source_table[i].parse((const char *)data, size, "package", check, NULL, err,
                                       sizeof err);
        if (rc < 0 && !err[0]) abort(); /* a refusal always says why */
    }
    return 0;
}
