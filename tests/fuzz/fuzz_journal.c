/*
 * fuzz_journal.c: libFuzzer target for the state file's loader. The file is the daemon's own,
 * but a crash can cut it anywhere and a disk can hand back anything: whatever it holds, opening
 * it must not crash, every push it returns must pass the reference grammar, and what it writes
 * back (the compacted file) must load to the same pushes and approvals.
 */
#include "journal.h"
#include "log.h"
#include "reference.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static void check(const struct push *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!p[i].jid || !ref_valid_repository(p[i].repository) || !ref_valid_tag(p[i].tag) ||
            (p[i].digest[0] && !ref_valid_digest(p[i].digest))) /* "": a push without one */
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/fuzz-journal-%d", (int)getpid());
        log_setup(LOG_ERROR, LOG_FORMAT_JSON);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    struct push *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int pa = 0, pb = 0;
    char err[256];
    struct journal *j = journal_open(path, &a, &na, &pa, err, sizeof err);
    if (!j) abort(); /* a regular file we can write: always opens */
    check(a, na);
    char **la = NULL, **lb = NULL;
    size_t nla = journal_approvals(j, &la);
    journal_close(j);
    j = journal_open(path, &b, &nb, &pb, err, sizeof err);
    if (!j || nb != na || pb != pa) abort();
    /* Approval lines come back the same after the compaction. */
    size_t nlb = journal_approvals(j, &lb);
    if (nla != nlb) abort();
    for (size_t i = 0; i < nla; i++) {
        if (strcmp(la[i], lb[i]) != 0) abort();
        free(la[i]);
        free(lb[i]);
    }
    free(la);
    free(lb);
    for (size_t i = 0; i < na; i++)
        if (a[i].jid != b[i].jid || strcmp(a[i].tag, b[i].tag) || strcmp(a[i].digest, b[i].digest))
            abort();
    journal_close(j);
    free(a);
    free(b);
    return 0;
}
