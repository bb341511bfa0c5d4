/*
 * metrics.h: counters and gauges behind one lock, rendered in Prometheus text format.
 *
 * A family is declared once (name, type, help); series are created on first use with at most
 * one label. Gauges that mirror another module's state (queue depth) are read through a
 * callback at render time, so nothing has to remember to update them.
 */
#ifndef AUTODEPLOY_METRICS_H
#define AUTODEPLOY_METRICS_H

#include "buf.h"

/* Declares a family; type is "counter" or "gauge". Idempotent. Call before threads start. */
void metrics_declare(const char *name, const char *type, const char *help);

/* A gauge whose value is fn(ctx) when rendered. */
void metrics_declare_gauge_fn(const char *name, const char *help, double (*fn)(void *), void *ctx);

/* Adds v to the series name{label="value"} (label may be NULL for an unlabelled series). */
void metrics_add(const char *name, const char *label, const char *value, double v);

/* A handle on one counter series, for hot paths: found (or created) once, then incremented
 * without the registry lock. NULL when the family is unknown or the registry is full. */
struct metrics_counter;
struct metrics_counter *metrics_counter(const char *name, const char *label, const char *value);

/* Adds n to the series behind c (a NULL c is ignored). Lock-free. */
void metrics_counter_inc(struct metrics_counter *c, unsigned long long n);

/* Sets the series to v. */
void metrics_set(const char *name, const char *label, const char *value, double v);

/* Reads a series (0 when it does not exist); for tests and the start-up summary. */
double metrics_get(const char *name, const char *label, const char *value);

/* Declares an unlabelled histogram with the given upper bounds (ascending, at most 16). */
void metrics_declare_histogram(const char *name, const char *help, const double *bounds, int n);

/* Records one observation in a histogram. */
void metrics_observe(const char *name, double v);

/* Appends every family in Prometheus text exposition format 0.0.4. */
int metrics_render(struct buf *b);

/* Forgets every family and series (tests). */
void metrics_reset(void);

#endif
