/*
 * buf.h: a growable byte buffer with a hard cap, for everything read from the network and for
 * building responses. Appending past the cap fails and leaves the buffer as it was, so a caller
 * can answer "too large" instead of growing without bound.
 */
#ifndef AUTODEPLOY_BUF_H
#define AUTODEPLOY_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data; /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len */
};

/* Starts an empty buffer that may grow to max bytes. No allocation happens yet. */
void buf_init(struct buf *b, size_t max);

/* Frees the storage; the buffer may be reused after buf_init. */
void buf_free(struct buf *b);

/* Empties the buffer, keeping its storage. */
void buf_reset(struct buf *b);

/* Appends n bytes; 0 on success, -1 when it would pass the cap or memory runs out. */
int buf_add(struct buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string. */
int buf_adds(struct buf *b, const char *s);

/* Appends printf-style formatted text. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s as the body of a JSON string (no quotes added): escapes quotes, backslashes and
 * control characters; bytes >= 0x80 are copied as they are (callers pass valid UTF-8). */
int buf_add_json_escaped(struct buf *b, const char *s);

/* Appends s as a complete JSON string with quotes, or null when s is NULL. */
int buf_add_json_string(struct buf *b, const char *s);

/* Formats an error message into err (errlen bytes); does nothing when err is NULL or errlen 0,
 * for functions whose callers may not want the message. */
void err_printf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 when the JSON text s (len bytes) holds the escape \u0000 outside an escaped backslash: a
 * C string would end there, so a value read from it would be cut short and could pass for
 * another value. Callers refuse such text. */
int json_has_escaped_nul(const char *s, size_t len);

/* Writes Unix milliseconds as RFC 3339 UTC with milliseconds ("2026-12-02T04:46:15.123Z") into
 * out (len >= 25 holds any time from year 0 to 9999). */
void format_rfc3339_ms(int64_t unix_ms, char *out, size_t len);

/* Takes ownership of the data (NUL-terminated); the buffer is left empty. */
char *buf_steal(struct buf *b);

#endif
