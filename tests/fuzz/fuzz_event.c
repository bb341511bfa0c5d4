/*
 * fuzz_event.c: libFuzzer target for the notification envelope parser. The body comes from
 * the network: any bytes must give a verdict or a refusal, never a crash, a leak or a push
 * whose fields break Docker's grammar.
 */
#include "event.h"
#include "reference.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(const struct event_item *it, void *ctx)
{
    (void)ctx;
    if (it->verdict != EVENT_PUSH) return;
    const struct push *p = &it->push;
    if (!ref_valid_repository(p->repository) || !ref_valid_tag(p->tag) ||
        !ref_valid_digest(p->digest) || (p->host[0] && !ref_valid_host(p->host)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    event_parse_envelope((const char *)data, size, check, NULL, err, sizeof err);
    return 0;
}
