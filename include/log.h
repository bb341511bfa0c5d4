/*
 * log.h: one line per record on stderr, JSON (default) or text for humans.
 *
 * Records carry a message and context fields given as key/value string pairs ending with NULL,
 * so call sites read as data: log_info("push accepted", "repository", repo, "tag", tag, NULL).
 * A NULL or empty value leaves its field out. The level is checked before anything is formatted.
 * Secrets must never be passed as values: this module cannot tell them apart.
 */
#ifndef AUTODEPLOY_LOG_H
#define AUTODEPLOY_LOG_H

#include <stdio.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_JSON = 0, LOG_FORMAT_TEXT };

/* Sets the threshold and the format; safe to call again (SIGHUP reload). */
void log_setup(enum log_level level, enum log_format format);

/* Sends records to f instead of stderr (tests). f stays owned by the caller. */
void log_set_stream(FILE *f);

/* Parses "debug", "info", "warn"/"warning", "error"; returns -1 for anything else. */
int log_level_parse(const char *s);

/* Parses "json" or "text"; returns -1 for anything else. */
int log_format_parse(const char *s);

/* Nonzero when a record at this level would be written. */
int log_enabled(enum log_level level);

/* Writes one record: msg, then key/value string pairs, terminated by a NULL key. */
void log_write(enum log_level level, const char *msg, ...) __attribute__((sentinel));

/* Writes one record whatever the threshold: for the start-up and shutdown lines, which an
 * operator needs to see even with --log-level warn. */
void log_always(enum log_level level, const char *msg, ...) __attribute__((sentinel));

#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, __VA_ARGS__);                             \
    } while (0)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (log_enabled(LOG_INFO)) log_write(LOG_INFO, __VA_ARGS__);                               \
    } while (0)
#define log_warn(...)                                                                              \
    do {                                                                                           \
        if (log_enabled(LOG_WARN)) log_write(LOG_WARN, __VA_ARGS__);                               \
    } while (0)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
