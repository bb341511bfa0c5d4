/*
 * ui.c: the console's files, embedded at build time (see ui.h).
 *
 * The files stay ordinary files in ui/ (edited, reviewed and diffed as such); the assembler's
 * .incbin copies each one into .rodata when this file is compiled, so the build needs no tool
 * beyond the compiler (gcc and clang alike, in every build directory: the path is relative to
 * the repository root, where make runs). The Makefile makes this object depend on the files of ui/,
 * since the compiler's dependency files do not know of .incbin.
 */
#include "ui.h"

#include <string.h>

#ifndef UI_DIR
#define UI_DIR "ui"
#endif

/* Defines sym (the first byte) and sym_end (one past the last; a NUL follows) in .rodata. */
#define UI_EMBED(sym, file)                                                                        \
    __asm__(".pushsection .rodata\n"                                                               \
            ".balign 16\n"                                                                         \
            ".globl " #sym "\n"                                                                    \
            ".hidden " #sym "\n" #sym ":\n"                                                        \
            ".incbin \"" UI_DIR "/" file "\"\n"                                                    \
            ".globl " #sym "_end\n"                                                                \
            ".hidden " #sym "_end\n" #sym "_end:\n"                                                \
            ".byte 0\n"                                                                            \
            ".popsection\n");                                                                      \
    extern const char sym[], sym##_end[]

UI_EMBED(autodeploy_ui_index_html, "index.html");
UI_EMBED(autodeploy_ui_console_css, "console.css");
UI_EMBED(autodeploy_ui_console_js, "console.js");
UI_EMBED(autodeploy_ui_favicon_svg, "favicon.svg");

/* Addresses are link-time constants; lengths are computed per lookup. */
static const struct {
    const char *path, *content_type, *start, *end;
} files[] = {
    {"/", "text/html; charset=utf-8", autodeploy_ui_index_html, autodeploy_ui_index_html_end},
    {"/ui/", "text/html; charset=utf-8", autodeploy_ui_index_html, autodeploy_ui_index_html_end},
    {"/ui/index.html", "text/html; charset=utf-8", autodeploy_ui_index_html,
     autodeploy_ui_index_html_end},
    {"/ui/console.css", "text/css; charset=utf-8", autodeploy_ui_console_css,
     autodeploy_ui_console_css_end},
    {"/ui/console.js", "text/javascript; charset=utf-8", autodeploy_ui_console_js,
     autodeploy_ui_console_js_end},
    {"/ui/favicon.svg", "image/svg+xml", autodeploy_ui_favicon_svg, autodeploy_ui_favicon_svg_end},
};

int ui_owns_path(const char *path)
{
    return path && (!strcmp(path, "/") || !strncmp(path, "/ui/", 4) || !strcmp(path, "/ui"));
}

int ui_lookup(const char *path, struct ui_asset *out)
{
    if (!path) return -1;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (strcmp(path, files[i].path) != 0) continue;
        out->path = files[i].path;
        out->content_type = files[i].content_type;
        out->data = files[i].start;
        out->len = (size_t)(files[i].end - files[i].start);
        return 0;
    }
    return -1;
}

/* 'self' only: no inline script or style (the page has none), no eval, nothing from another
 * origin, no plugins, no framing, forms post nowhere. connect-src 'self' is the JSON API. */
static const struct ui_header headers[] = {
    {"Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
     "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Cross-Origin-Opener-Policy", "same-origin"},
    {"Cache-Control", "no-cache"},
    {NULL, NULL},
};

const struct ui_header *ui_headers(void)
{
    return headers;
}
