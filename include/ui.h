/*
 * ui.h: the web console's files (ui/index.html, ui/console.css, ui/console.js,
 * ui/favicon.svg), built into the binary so the page works on a machine with no internet and
 * no files beside the daemon, and the headers every one of them is served with.
 *
 * Pure: a lookup from a request path to an asset; the HTTP server (server.c) does the serving.
 * The page itself only reads the JSON API (/v1/status, /v1/pushes, /v1/deployments, /v1/apps,
 * /v1/approvals) and posts the admin actions; it renders every string with textContent, and
 * the Content-Security-Policy below lets no inline script or style run anyway.
 */
#ifndef AUTODEPLOY_UI_H
#define AUTODEPLOY_UI_H

#include <stddef.h>

/* One embedded file. data is static (lives as long as the process) and NUL-terminated after
 * len bytes. */
struct ui_asset {
    const char *path;         /* the request path it answers, e.g. "/ui/console.js" */
    const char *content_type; /* e.g. "text/javascript; charset=utf-8" */
    const char *data;
    size_t len;
};

/* 1 when the path belongs to the console ("/" or anything under "/ui/"), whether or not such
 * a file exists (an unknown one is then a 404 of the console's, not of the API). */
int ui_owns_path(const char *path);

/* Fills out with the asset a GET of path answers ("/" and "/ui/" give the page) and returns
 * 0, or returns -1 when there is none. Thread-safe (reads constants only). */
int ui_lookup(const char *path, struct ui_asset *out);

/* The security headers of every console answer, as name/value pairs ending with a NULL name:
 * Content-Security-Policy (no inline script or style, nothing from another origin, no
 * framing), X-Content-Type-Options, X-Frame-Options, Referrer-Policy, Cache-Control. */
struct ui_header {
    const char *name, *value;
};
const struct ui_header *ui_headers(void);

#endif
