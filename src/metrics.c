/*
 * metrics.c: a small fixed-size metrics registry (see metrics.h). Sizes are fixed because the
 * set of series is known in advance (status codes, results, outcomes); a series past the limit
 * is dropped rather than grown, so a hostile input cannot inflate memory.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define MAX_FAMILIES 48
#define MAX_SERIES 384

struct family {
    char name[64];
    char type[12];
    char help[160];
    double (*fn)(void *);
    void *ctx;
};

#define MAX_BUCKETS 16

struct histogram {
    int family;
    double bounds[MAX_BUCKETS];
    unsigned long long counts[MAX_BUCKETS]; /* observations <= bounds[i] (not cumulative) */
    int n;
    unsigned long long count;
    double sum;
};

#define MAX_HISTOGRAMS 4
static struct histogram histograms[MAX_HISTOGRAMS];
static int n_histograms;

struct series {
    int family;
    char label[32];
    char value[64];
    double v;
    _Atomic(unsigned long long) fast; /* metrics_counter_inc's increments, without mu */
};

struct metrics_counter {
    struct series s;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct family families[MAX_FAMILIES];
static int n_families;
static struct series series[MAX_SERIES];
static int n_series;

static int family_find(const char *name)
{
    for (int i = 0; i < n_families; i++)
        if (strcmp(families[i].name, name) == 0) return i;
    return -1;
}

static void declare(const char *name, const char *type, const char *help, double (*fn)(void *),
                    void *ctx)
{
    pthread_mutex_lock(&mu);
    int f = family_find(name);
    if (f < 0 && n_families < MAX_FAMILIES) f = n_families++;
    if (f >= 0) {
        snprintf(families[f].name, sizeof families[f].name, "%s", name);
        snprintf(families[f].type, sizeof families[f].type, "%s", type);
        snprintf(families[f].help, sizeof families[f].help, "%s", help);
        families[f].fn = fn;
        families[f].ctx = ctx;
    }
    pthread_mutex_unlock(&mu);
}

void metrics_declare(const char *name, const char *type, const char *help)
{
    declare(name, type, help, NULL, NULL);
}

void metrics_declare_gauge_fn(const char *name, const char *help, double (*fn)(void *), void *ctx)
{
    declare(name, "gauge", help, fn, ctx);
}

/* Finds or creates a series; call with mu held. NULL when the family is unknown or full. */
static struct series *series_get(const char *name, const char *label, const char *value, int create)
{
    int f = family_find(name);
    if (f < 0) return NULL;
    label = label ? label : "";
    value = value ? value : "";
    for (int i = 0; i < n_series; i++) {
        struct series *s = &series[i];
        if (s->family == f && strcmp(s->label, label) == 0 && strcmp(s->value, value) == 0)
            return s;
    }
    if (!create || n_series == MAX_SERIES) return NULL;
    struct series *s = &series[n_series++];
    s->family = f;
    snprintf(s->label, sizeof s->label, "%s", label);
    snprintf(s->value, sizeof s->value, "%s", value);
    s->v = 0;
    atomic_store_explicit(&s->fast, 0, memory_order_relaxed);
    return s;
}

void metrics_add(const char *name, const char *label, const char *value, double v)
{
    pthread_mutex_lock(&mu);
    struct series *s = series_get(name, label, value, 1);
    if (s) s->v += v;
    pthread_mutex_unlock(&mu);
}

struct metrics_counter *metrics_counter(const char *name, const char *label, const char *value)
{
    pthread_mutex_lock(&mu);
    struct series *s = series_get(name, label, value, 1);
    pthread_mutex_unlock(&mu);
    /* The series array never moves, so the pointer stays valid for the process's life. */
    return (struct metrics_counter *)s;
}

void metrics_counter_inc(struct metrics_counter *c, unsigned long long n)
{
    if (c) atomic_fetch_add_explicit(&c->s.fast, n, memory_order_relaxed);
}

void metrics_set(const char *name, const char *label, const char *value, double v)
{
    pthread_mutex_lock(&mu);
    struct series *s = series_get(name, label, value, 1);
    if (s) {
        s->v = v;
        atomic_store_explicit(&s->fast, 0, memory_order_relaxed);
    }
    pthread_mutex_unlock(&mu);
}

double metrics_get(const char *name, const char *label, const char *value)
{
    pthread_mutex_lock(&mu);
    struct series *s = series_get(name, label, value, 0);
    double v = s ? s->v + (double)atomic_load_explicit(&s->fast, memory_order_relaxed) : 0;
    pthread_mutex_unlock(&mu);
    return v;
}

void metrics_declare_histogram(const char *name, const char *help, const double *bounds, int n)
{
    declare(name, "histogram", help, NULL, NULL);
    pthread_mutex_lock(&mu);
    int f = family_find(name);
    for (int i = 0; i < n_histograms; i++)
        if (histograms[i].family == f) f = -1; /* already declared */
    if (f >= 0 && n_histograms < MAX_HISTOGRAMS) {
        struct histogram *h = &histograms[n_histograms++];
        memset(h, 0, sizeof *h);
        h->family = f;
        h->n = n > MAX_BUCKETS ? MAX_BUCKETS : n;
        memcpy(h->bounds, bounds, (size_t)h->n * sizeof *bounds);
    }
    pthread_mutex_unlock(&mu);
}

void metrics_observe(const char *name, double v)
{
    pthread_mutex_lock(&mu);
    int f = family_find(name);
    for (int i = 0; f >= 0 && i < n_histograms; i++) {
        struct histogram *h = &histograms[i];
        if (h->family != f) continue;
        for (int b = 0; b < h->n; b++)
            if (v <= h->bounds[b]) {
                h->counts[b]++;
                break;
            }
        h->count++;
        h->sum += v;
    }
    pthread_mutex_unlock(&mu);
}

static void add_label_value(struct buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') buf_add(b, "\\", 1);
        if (*v == '\n') {
            buf_adds(b, "\\n");
            continue;
        }
        buf_add(b, v, 1);
    }
}

int metrics_render(struct buf *b)
{
    int rc = 0;
    pthread_mutex_lock(&mu);
    for (int f = 0; f < n_families; f++) {
        const struct family *fam = &families[f];
        rc |= buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
                         fam->type);
        if (fam->fn) {
            rc |= buf_printf(b, "%s %.17g\n", fam->name, fam->fn(fam->ctx));
            continue;
        }
        for (int i = 0; i < n_histograms; i++) {
            const struct histogram *h = &histograms[i];
            if (h->family != f) continue;
            unsigned long long cum = 0;
            for (int k = 0; k < h->n; k++) {
                cum += h->counts[k];
                rc |= buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", fam->name, h->bounds[k], cum);
            }
            rc |= buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.17g\n%s_count %llu\n",
                             fam->name, h->count, fam->name, h->sum, fam->name, h->count);
        }
        for (int i = 0; i < n_series; i++) {
            const struct series *s = &series[i];
            if (s->family != f) continue;
            rc |= buf_adds(b, fam->name);
            if (s->label[0]) {
                rc |= buf_printf(b, "{%s=\"", s->label);
                add_label_value(b, s->value);
                rc |= buf_adds(b, "\"}");
            }
            rc |= buf_printf(b, " %.17g\n",
                             s->v + (double)atomic_load_explicit(&s->fast, memory_order_relaxed));
        }
    }
    pthread_mutex_unlock(&mu);
    return rc ? -1 : 0;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&mu);
    n_families = 0;
    n_series = 0;
    n_histograms = 0;
    pthread_mutex_unlock(&mu);
}
