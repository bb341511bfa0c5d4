/*
 * test_ui.c: the console's embedded files (ui.h): every path the page uses answers the very
 * bytes of the file in ui/ with its type, nothing else does, and the security headers hold
 * what the README promises.
 */
#include "testlib.h"
#include "ui.h"

static void files_are_the_repository_files(void)
{
    static const struct {
        const char *path, *file, *type;
    } cases[] = {
        {"/", "ui/index.html", "text/html; charset=utf-8"},
        {"/ui/", "ui/index.html", "text/html; charset=utf-8"},
        {"/ui/index.html", "ui/index.html", "text/html; charset=utf-8"},
        {"/ui/console.css", "ui/console.css", "text/css; charset=utf-8"},
        {"/ui/console.js", "ui/console.js", "text/javascript; charset=utf-8"},
        {"/ui/favicon.svg", "ui/favicon.svg", "image/svg+xml"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ui_asset a;
        size_t len = 0;
        char *want = tl_read_file(cases[i].file, &len);
        CHECK(want != NULL, "%s unreadable", cases[i].file);
        CHECK(ui_lookup(cases[i].path, &a) == 0, "%s: no asset", cases[i].path);
        CHECK(ui_owns_path(cases[i].path), "%s: not the console's", cases[i].path);
        if (want && a.data) {
            CHECK(a.len == len && memcmp(a.data, want, len) == 0, "%s: not the bytes of %s",
                  cases[i].path, cases[i].file);
            CHECK(a.data[a.len] == '\0', "%s: no NUL after the data", cases[i].path);
        }
        CHECK(a.content_type && !strcmp(a.content_type, cases[i].type), "%s: type %s",
              cases[i].path, a.content_type ? a.content_type : "(none)");
        free(want);
    }
}

static void other_paths_are_not_assets(void)
{
    static const char *const none[] = {
        "/ui",
        "/ui/missing.js",
        "/ui/console.js/",
        "/ui/../README.md",
        "/index.html",
        "/UI/console.js",
        "",
        "/ui/console.jsx",
        "/ui/console",
        "/healthz",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        struct ui_asset a;
        CHECK(ui_lookup(none[i], &a) < 0, "%s: answered", none[i]);
    }
    CHECK(ui_lookup(NULL, &(struct ui_asset){0}) < 0, "NULL answered");
    /* Owned (a 404 of the console's) or not (the API's routes). */
    CHECK(ui_owns_path("/ui") && ui_owns_path("/ui/missing.js"), "ui paths not owned");
    CHECK(!ui_owns_path("/v1/status") && !ui_owns_path("/healthz") && !ui_owns_path("/uix") &&
              !ui_owns_path(NULL),
          "an API path owned");
}

static void headers_are_strict(void)
{
    const char *csp = NULL, *nosniff = NULL, *frame = NULL, *referrer = NULL, *cache = NULL;
    for (const struct ui_header *h = ui_headers(); h->name; h++) {
        if (!strcmp(h->name, "Content-Security-Policy")) csp = h->value;
        if (!strcmp(h->name, "X-Content-Type-Options")) nosniff = h->value;
        if (!strcmp(h->name, "X-Frame-Options")) frame = h->value;
        if (!strcmp(h->name, "Referrer-Policy")) referrer = h->value;
        if (!strcmp(h->name, "Cache-Control")) cache = h->value;
    }
    CHECK(csp && strstr(csp, "default-src 'none'") && strstr(csp, "script-src 'self'") &&
              strstr(csp, "frame-ancestors 'none'") && strstr(csp, "connect-src 'self'"),
          "CSP: %s", csp ? csp : "(none)");
    CHECK(csp && !strstr(csp, "unsafe") && !strstr(csp, "http") && !strstr(csp, "*"),
          "CSP allows too much: %s", csp ? csp : "(none)");
    CHECK_STR(nosniff, "nosniff");
    CHECK_STR(frame, "DENY");
    CHECK_STR(referrer, "no-referrer");
    CHECK(cache != NULL, "no Cache-Control");
}

/* The page loads nothing but its own files: no inline script or style, no other origin. */
static void page_loads_only_its_own_files(void)
{
    struct ui_asset a;
    CHECK(ui_lookup("/", &a) == 0, "no page");
    CHECK(strstr(a.data, "<script src=\"/ui/console.js\"") != NULL, "no script tag");
    CHECK(strstr(a.data, "<script>") == NULL && strstr(a.data, "style=") == NULL &&
              strstr(a.data, "<style") == NULL && strstr(a.data, " on") == NULL,
          "inline script or style in the page");
    CHECK(strstr(a.data, "//") == NULL, "a URL of another origin in the page");
    CHECK(ui_lookup("/ui/console.js", &a) == 0, "no script");
    CHECK(strstr(a.data, "innerHTML") == NULL && strstr(a.data, "outerHTML") == NULL &&
              strstr(a.data, "insertAdjacentHTML") == NULL &&
              strstr(a.data, "document.write") == NULL && strstr(a.data, "eval(") == NULL,
          "the script parses HTML from strings");
    CHECK(strstr(a.data, "document.cookie") == NULL && strstr(a.data, "localStorage") == NULL,
          "the script keeps the token beyond the tab");
}

int main(void)
{
    files_are_the_repository_files();
    other_paths_are_not_assets();
    headers_are_strict();
    page_loads_only_its_own_files();
    return TEST_DONE("test_ui");
}
