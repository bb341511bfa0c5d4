/*
 * match_cli.c: "autodeployd match", the command that answers "would this label deploy this
 * image, and if not, why?" without a registry or Marathon.
 *
 * It exists so that people writing labels can try them, and so that support questions can be
 * answered by pasting one command. It uses the matcher exactly as the daemon does (same
 * compiler, same options, same reasons) and only adds parsing of a Docker image reference and
 * printing.
 */
#include "match.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REF_MAX 1024

static const char usage_text[] =
    "usage: autodeployd match [--allow-repository-wildcards] [--registry-alias NAME=HOST]...\n"
    "                         [--current-tag TAG] PATTERN IMAGE_REF\n"
    "\n"
    "Tests a label value (PATTERN, one or more patterns separated by spaces) against an image\n"
    "reference such as strava/foo:master-1 or registry.example.com:5000/strava/foo:master-1.\n"
    "Prints the compiled regex of each pattern and the verdict.\n"
    "Exit status: 0 match, 1 no match, 2 invalid pattern or usage error.\n";

/* A parsed IMAGE_REF: [HOST/]REPOSITORY[:TAG], stored in one caller-owned buffer. */
struct ref {
    char buf[REF_MAX + 1];
    char repo[REF_MAX + sizeof("library/")]; /* used when "library/" is prepended */
    const char *host, *repository, *tag;
    int default_tag; /* no tag was written: Docker's "latest" */
};

static int is_hub(const char *h)
{
    return !strcasecmp(h, "docker.io") || !strcasecmp(h, "index.docker.io") ||
           !strcasecmp(h, "registry-1.docker.io") || !strcasecmp(h, "registry.hub.docker.com");
}

/*
 * Splits an image reference the way Docker does: the first component is a registry host if it
 * contains '.' or ':' or is "localhost"; the tag follows the last ':' after the last '/'.
 * Returns 0, or -1 with a reason in err.
 */
static int parse_ref(const char *text, struct ref *r, char *err, size_t errlen)
{
    char *rest, *slash, *colon, *lastslash;
    size_t n = strlen(text);

    memset(r, 0, sizeof(*r));
    if (n == 0 || n > REF_MAX) {
        snprintf(err, errlen, "image reference is empty or longer than %d bytes", REF_MAX);
        return -1;
    }
    if (strchr(text, '@')) {
        snprintf(err, errlen, "a digest reference has no tag to match; give REPOSITORY:TAG");
        return -1;
    }
    if (strpbrk(text, " \t\r\n")) {
        snprintf(err, errlen, "image reference contains whitespace");
        return -1;
    }
    rest = r->buf;
    memcpy(rest, text, n + 1);
    r->host = "";
    slash = strchr(rest, '/');
    if (slash) {
        size_t hl = (size_t)(slash - rest);
        if (memchr(rest, '.', hl) || memchr(rest, ':', hl) ||
            (hl == 9 && strncmp(rest, "localhost", 9) == 0)) {
            *slash = '\0';
            r->host = rest;
            rest = slash + 1;
        }
    }
    lastslash = strrchr(rest, '/');
    colon = strrchr(lastslash ? lastslash : rest, ':');
    if (colon) {
        *colon = '\0';
        r->tag = colon + 1;
    } else {
        r->tag = "latest";
        r->default_tag = 1;
    }
    if (!*rest || !*r->tag) {
        snprintf(err, errlen, "image reference needs a repository and a non-empty tag");
        return -1;
    }
    r->repository = rest;
    if (*r->host && is_hub(r->host) && !strchr(rest, '/')) {
        /* Docker Hub's official images: docker.io/nginx is docker.io/library/nginx. */
        snprintf(r->repo, sizeof(r->repo), "library/%s", rest);
        r->repository = r->repo;
    }
    return 0;
}

/* Prints label with a caret under the 1-based column named by "column N:" in err. */
static void print_caret(const char *label, const char *err)
{
    unsigned long col;
    size_t i, n = strlen(label);
    char *end;

    if (strncmp(err, "column ", 7) != 0) return;
    col = strtoul(err + 7, &end, 10);
    if (end == err + 7 || col == 0 || col > n + 1 || n > 200) return;
    printf("  ");
    for (i = 0; i < n; i++)
        putchar(label[i] == '\t' || label[i] == '\n' || label[i] == '\r' ? ' ' : label[i]);
    printf("\n  %*s^\n", (int)(col - 1), "");
}

int match_cli_main(int argc, char **argv)
{
    struct match_alias *aliases = NULL;
    char **dups = NULL;
    struct match_opts o = {0};
    const char *pattern = NULL, *image = NULL, *current = NULL;
    match_set *ms = NULL;
    struct ref *ref = NULL;
    char err[512], why[4096], desc[8192];
    int i, npos = 0, opts_done = 0, status = 2;
    size_t ndups = 0;

    aliases = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*aliases));
    dups = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*dups));
    ref = malloc(sizeof(*ref));
    if (!aliases || !dups || !ref) {
        fprintf(stderr, "match: out of memory\n");
        goto out;
    }
    o.aliases = aliases;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (!opts_done && a[0] == '-' && a[1] != '\0') {
            if (!strcmp(a, "--")) {
                opts_done = 1;
            } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                fputs(usage_text, stdout);
                status = 0;
                goto out;
            } else if (!strcmp(a, "--allow-repository-wildcards")) {
                o.allow_repository_wildcards = 1;
            } else if (!strncmp(a, "--registry-alias", 16) && (a[16] == '=' || a[16] == '\0')) {
                char *eq;
                val = a[16] == '=' ? a + 17 : (i + 1 < argc ? argv[++i] : NULL);
                if (!val || !(dups[ndups] = strdup(val))) {
                    fprintf(stderr, "match: --registry-alias needs NAME=HOST\n%s", usage_text);
                    goto out;
                }
                eq = strchr(dups[ndups], '=');
                if (!eq || eq == dups[ndups] || eq[1] == '\0') {
                    fprintf(stderr, "match: --registry-alias needs NAME=HOST, got \"%s\"\n", val);
                    free(dups[ndups]);
                    goto out;
                }
                *eq = '\0';
                aliases[o.n_aliases].name = dups[ndups];
                aliases[o.n_aliases].host = eq + 1;
                o.n_aliases++;
                ndups++;
            } else if (!strncmp(a, "--current-tag", 13) && (a[13] == '=' || a[13] == '\0')) {
                current = a[13] == '=' ? a + 14 : (i + 1 < argc ? argv[++i] : NULL);
                if (!current) {
                    fprintf(stderr, "match: --current-tag needs a value\n%s", usage_text);
                    goto out;
                }
            } else {
                fprintf(stderr, "match: unknown option %s\n%s", a, usage_text);
                goto out;
            }
            continue;
        }
        if (npos == 0)
            pattern = a;
        else if (npos == 1)
            image = a;
        npos++;
    }
    if (npos != 2) {
        fprintf(stderr, "match: expected PATTERN and IMAGE_REF\n%s", usage_text);
        goto out;
    }
    if (parse_ref(image, ref, err, sizeof(err)) < 0) {
        fprintf(stderr, "match: %s: %s\n", image, err);
        goto out;
    }
    ms = match_compile(pattern, &o, err, sizeof(err));
    if (!ms) {
        printf("invalid pattern: %s\n", err);
        print_caret(pattern, err);
        goto out;
    }
    match_describe(ms, desc, sizeof(desc));
    printf("image:    host %s, repository %s, tag %s%s%s%s\n", *ref->host ? ref->host : "(none)",
           ref->repository, ref->tag, ref->default_tag ? " (Docker's default)" : "",
           current ? ", current tag " : "", current ? current : "");
    printf("compiled:\n");
    {
        const char *line = desc;
        while (*line) {
            const char *nl = strchr(line, '\n');
            size_t len = nl ? (size_t)(nl - line) : strlen(line);
            printf("  %.*s\n", (int)len, line);
            line += len + (nl ? 1 : 0);
        }
    }
    {
        struct match_subject s = {ref->host, ref->repository, ref->tag, current};
        if (match_test(ms, &s, why, sizeof(why))) {
            printf("result:   match (%s)\n", why);
            status = 0;
        } else {
            printf("result:   no match\nwhy:      %s\n", why);
            status = 1;
        }
    }
out:
    match_free(ms);
    while (ndups > 0)
        free(dups[--ndups]);
    free(dups);
    free(aliases);
    free(ref);
    return status;
}
