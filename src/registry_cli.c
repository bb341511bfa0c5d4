/*
 * registry_cli.c: "autodeployd registry", the command that asks a registry what autodeployd
 * would ask it (a tag's digest, a repository's tags, an image's build time) with the same
 * client, settings and credentials as the daemon. For setting up --registry-auth and for
 * support: one command shows whether the registry can be reached and the credentials work.
 */
#include "registry.h"

#include "config.h"
#include "reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: autodeployd registry [--registry-auth FILE] [--registry-ca FILE]\n"
    "                            [--insecure-registry HOST[:PORT]]... [--registry-url "
    "HOST=URL]...\n"
    "                            [--registry-timeout DURATION] ping|digest|tags|created ARG\n"
    "\n"
    "  ping    HOST                    whether the registry answers GET /v2/ with our credentials\n"
    "  digest  HOST/REPOSITORY:TAG     the digest the tag points at now (HEAD of the manifest)\n"
    "  tags    HOST/REPOSITORY         every tag, all pages followed\n"
    "  created HOST/REPOSITORY@DIGEST  the image's build time (config blob \"created\")\n"
    "Exit status: 0 ok, 1 not found, 2 usage, 3 credentials refused, 4 unreachable, 5 error.\n";

#define MAX_LIST 32

struct cli {
    struct registry_opts o;
    const char *insecure[MAX_LIST], *urls[MAX_LIST];
};

static int list_add(const char **v, size_t *n, const char *s)
{
    if (*n >= MAX_LIST) return -1;
    v[(*n)++] = s;
    return 0;
}

/* Reads the flags into cfg (strings borrowed from argv). Returns the index of the command,
 * or -1 on a usage error. */
static int parse_flags(int argc, char **argv, struct cli *c)
{
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        const char *f = argv[i];
        if (i + 1 >= argc) return -1;
        char *v = argv[++i];
        int bad = 0;
        if (!strcmp(f, "--registry-auth"))
            c->o.auth_file = v;
        else if (!strcmp(f, "--registry-ca"))
            c->o.ca_file = v;
        else if (!strcmp(f, "--insecure-registry"))
            bad = list_add(c->insecure, &c->o.n_insecure, v);
        else if (!strcmp(f, "--registry-url"))
            bad = list_add(c->urls, &c->o.n_urls, v) || !strchr(v, '=');
        else if (!strcmp(f, "--registry-timeout"))
            bad = config_parse_duration_ms(v, &c->o.timeout_ms);
        else
            bad = 1;
        if (bad) return -1;
    }
    return i + 2 == argc ? i : -1;
}

static int exit_status(enum registry_result res)
{
    static const int codes[] = {0, 1, 3, 4, 5};
    return (unsigned)res < 5 ? codes[res] : 5;
}

static enum registry_result run(struct registry *r, const char *cmd, const struct image_ref *ref,
                                char *err, size_t errlen)
{
    enum registry_result res = REGISTRY_ERROR;
    if (!strcmp(cmd, "digest") && ref->tag[0]) {
        char digest[80];
        res = registry_manifest_digest(r, ref->host, ref->repository, ref->tag, digest,
                                       sizeof digest, err, errlen);
        if (res == REGISTRY_OK) printf("%s\n", digest);
    } else if (!strcmp(cmd, "tags")) {
        char **tags;
        size_t n;
        res = registry_tags(r, ref->host, ref->repository, 0, &tags, &n, err, errlen);
        for (size_t i = 0; res == REGISTRY_OK && i < n; i++)
            printf("%s\n", tags[i]);
        registry_tags_free(tags, n);
    } else if (!strcmp(cmd, "created") && ref->digest[0]) {
        int64_t ns;
        res = registry_image_created(r, ref->host, ref->repository, ref->digest, &ns, err, errlen);
        if (res == REGISTRY_OK) printf("%lld\n", (long long)(ns / 1000000000));
    } else {
        snprintf(err, errlen, "%s needs %s", cmd,
                 !strcmp(cmd, "created") ? "REPOSITORY@DIGEST" : "REPOSITORY:TAG");
    }
    return res;
}

int registry_cli_main(int argc, char **argv)
{
    struct cli c;
    memset(&c, 0, sizeof c);
    c.o.insecure = c.insecure;
    c.o.urls = c.urls;
    int i = parse_flags(argc, argv, &c);
    struct image_ref ref;
    int status = 2;
    char err[512] = "";
    int ping = i >= 0 && !strcmp(argv[i], "ping");
    if (i < 0 || (ping ? !ref_valid_host(argv[i + 1]) : ref_parse_image(argv[i + 1], &ref) < 0)) {
        fputs(usage_text, stderr);
        goto out;
    }
    struct registry *r = registry_new(&c.o, err, sizeof err);
    if (!r) {
        fprintf(stderr, "autodeployd registry: %s\n", err);
        goto out;
    }
    enum registry_result res = ping ? registry_ping(r, argv[i + 1], err, sizeof err)
                                    : run(r, argv[i], &ref, err, sizeof err);
    if (ping && res == REGISTRY_OK) printf("ok\n");
    if (res != REGISTRY_OK)
        fprintf(stderr, "autodeployd registry: %s: %s\n", registry_result_name(res), err);
    status = exit_status(res);
    registry_free(r);
out:
    return status;
}
