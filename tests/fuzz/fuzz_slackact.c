/*
 * fuzz_slackact.c: libFuzzer target for the Slack interaction parser and verifier
 * (slackact.h), which read request bodies from the network: whatever the body, they must not
 * crash, a parsed action is approve or reject with a NUL-terminated value and user, and a
 * random signature never verifies.
 */
#include "slackact.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct slackact a;
    char err[160];
    if (slackact_parse((const char *)data, size, &a, err, sizeof err) == 0) {
        if (strcmp(a.action_id, "approve") != 0 && strcmp(a.action_id, "reject") != 0) abort();
        if (strlen(a.value) >= sizeof a.value || strlen(a.user) >= sizeof a.user) abort();
    }
    char sig[68] = "v0=";
    for (int i = 0; i < 64; i++)
        sig[3 + i] = "0123456789abcdef"[(size > (size_t)i ? data[i] : i) & 15];
    sig[67] = '\0';
    if (slackact_verify("secret", "1700000000", sig, (const char *)data, size, 1700000000) ==
        SLACKACT_OK)
        abort(); /* a 2^-256 chance */
    return 0;
}
