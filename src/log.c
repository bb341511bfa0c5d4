/*
 * log.c: structured records on stderr. Each record is built whole in memory and written with
 * one call under the stream lock, so lines from concurrent threads never interleave. The level,
 * the format and the stream are atomics: a reload changes them while other threads log.
 */
#include "log.h"

#include "buf.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int log_level_cur = LOG_INFO;
static atomic_int log_format_cur = LOG_FORMAT_JSON;
static _Atomic(FILE *) log_stream;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level level, enum log_format format)
{
    atomic_store(&log_level_cur, (int)level);
    atomic_store(&log_format_cur, (int)format);
}

void log_set_stream(FILE *f)
{
    atomic_store(&log_stream, f);
}

int log_level_parse(const char *s)
{
    if (!s) return -1;
    if (strcasecmp(s, "debug") == 0) return LOG_DEBUG;
    if (strcasecmp(s, "info") == 0) return LOG_INFO;
    if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0) return LOG_WARN;
    if (strcasecmp(s, "error") == 0) return LOG_ERROR;
    return -1;
}

int log_format_parse(const char *s)
{
    if (!s) return -1;
    if (strcasecmp(s, "json") == 0) return LOG_FORMAT_JSON;
    if (strcasecmp(s, "text") == 0) return LOG_FORMAT_TEXT;
    return -1;
}

int log_enabled(enum log_level level)
{
    return (int)level >= atomic_load(&log_level_cur);
}

/* Text values are quoted when they hold spaces, quotes or '=' so that key=value stays parseable. */
static void add_text_value(struct buf *b, const char *v)
{
    if (v[strcspn(v, " \t\"=\n\r")] == '\0' && *v) {
        buf_adds(b, v);
        return;
    }
    buf_add_json_string(b, v);
}

static void log_vwrite(enum log_level level, const char *msg, va_list ap)
{
    struct buf b;
    buf_init(&b, 64 * 1024);

    struct timespec ts;
    struct tm tm;
    char tbuf[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t tl = strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tbuf + tl, sizeof tbuf - tl, ".%03ldZ", ts.tv_nsec / 1000000L);

    int json = atomic_load(&log_format_cur) == LOG_FORMAT_JSON;
    if (json) {
        buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", tbuf, level_names[level]);
        buf_add_json_string(&b, msg);
    } else {
        buf_printf(&b, "%s %-5s %s", tbuf, level_names[level], msg);
    }

    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        if (!v || !*v) continue;
        if (json) {
            buf_add(&b, ",", 1);
            buf_add_json_string(&b, k);
            buf_add(&b, ":", 1);
            buf_add_json_string(&b, v);
        } else {
            buf_printf(&b, " %s=", k);
            add_text_value(&b, v);
        }
    }
    if (json) buf_add(&b, "}", 1);
    buf_add(&b, "\n", 1);

    FILE *f = atomic_load(&log_stream);
    if (!f) f = stderr;
    if (b.data) {
        flockfile(f);
        fwrite(b.data, 1, b.len, f);
        fflush(f);
        funlockfile(f);
    }
    buf_free(&b);
}

void log_write(enum log_level level, const char *msg, ...)
{
    if (!log_enabled(level)) return;
    va_list ap;
    va_start(ap, msg);
    log_vwrite(level, msg, ap);
    va_end(ap);
}

void log_always(enum log_level level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    log_vwrite(level, msg, ap);
    va_end(ap);
}
