/*
 * report.c: the fan-out of reports to their sinks (see report.h). The sink list is written
 * only at start-up and shutdown, so emitting needs no lock beyond a read of the count.
 */
#include "report.h"

#include <pthread.h>
#include <stddef.h>

#define MAX_SINKS 8

static struct {
    report_sink_fn fn;
    void *ctx;
} sinks[MAX_SINKS];
static int n_sinks;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

int report_add_sink(report_sink_fn fn, void *ctx)
{
    pthread_mutex_lock(&mu);
    int rc = -1;
    if (n_sinks < MAX_SINKS) {
        sinks[n_sinks].fn = fn;
        sinks[n_sinks].ctx = ctx;
        n_sinks++;
        rc = 0;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void report_emit(const struct report *r)
{
    pthread_mutex_lock(&mu);
    int n = n_sinks;
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++)
        sinks[i].fn(r, sinks[i].ctx);
}

void report_clear_sinks(void)
{
    pthread_mutex_lock(&mu);
    n_sinks = 0;
    pthread_mutex_unlock(&mu);
}

const char *report_kind_name(enum report_kind k)
{
    static const char *const names[] = {
        "pushed",      "deploying",       "deployed",        "failed",    "timed_out",
        "rolled_back", "superseded",      "skipped",         "paused",    "resumed",
        "interrupted", "rollback_failed", "rolling_back",    "cancelled", "awaiting_approval",
        "approved",    "rejected",        "approval_expired"};
    if ((int)k < 0 || (size_t)k >= sizeof names / sizeof names[0]) return "unknown";
    return names[k];
}
