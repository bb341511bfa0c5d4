/*
 * fuzz_regauth.c: libFuzzer target for the registry client's parsers. Every header and body
 * comes from a registry or a config file: any bytes must give a result or a refusal, never a
 * crash, a read past the given length, a leak, an unterminated output, a next-page URL that
 * leaves the registry, or credentials left behind after a refusal.
 */
#include "regauth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BASE "https://registry.example.com:5000"

static void must(int cond)
{
    if (!cond) abort();
}

static int terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static int header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) return 0;
    return 1;
}

static void challenge(const char *data, size_t size)
{
    struct regauth_challenge ch;
    char err[256], url[REGAUTH_URL_MAX];
    if (regauth_parse_challenge(data, size, &ch, err, sizeof err) < 0) return;
    must(ch.scheme == REGAUTH_BASIC || ch.scheme == REGAUTH_BEARER);
    must(terminated(ch.realm, sizeof ch.realm) && terminated(ch.service, sizeof ch.service) &&
         terminated(ch.scope, sizeof ch.scope));
    must(ch.scheme == REGAUTH_BASIC || ch.realm[0] != '\0');
    if (regauth_token_url(ch.realm, ch.service, ch.scope, url, sizeof url, err, sizeof err) == 0)
        must(header_safe(url) && strncmp(url, ch.realm, strlen(ch.realm)) == 0);
}

static void next_link(const char *data, size_t size)
{
    char next[REGAUTH_URL_MAX], out[REGAUTH_URL_MAX], err[256];
    if (regauth_link_next(data, size, next, sizeof next, err, sizeof err) != 1) return;
    must(next[0] != '\0' && terminated(next, sizeof next));
    if (regauth_resolve_url(BASE, next, out, sizeof out, err, sizeof err) == 0)
        must(strncmp(out, BASE "/", strlen(BASE) + 1) == 0 && header_safe(out));
}

/* The input as a whole URL, both as a next-page target and as the registry's base. */
static void resolve(const char *s)
{
    char out[REGAUTH_URL_MAX], err[256];
    if (regauth_resolve_url(BASE, s, out, sizeof out, err, sizeof err) == 0)
        must(strncmp(out, BASE "/", strlen(BASE) + 1) == 0 && header_safe(out));
    if (regauth_resolve_url(s, "/v2/x", out, sizeof out, err, sizeof err) == 0) {
        size_t n = strlen(out);
        must(n >= 5 && strcmp(out + n - 5, "/v2/x") == 0);
    }
}

static void config(const char *data, size_t size)
{
    static const char *hosts[] = {"docker.io", "registry.example.com:5000", "r"};
    struct regauth_cred cred;
    char err[256];
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        int rc = regauth_config_lookup(data, size, hosts[i], &cred, err, sizeof err);
        if (rc == 1) {
            must(terminated(cred.username, sizeof cred.username) &&
                 terminated(cred.password, sizeof cred.password) &&
                 terminated(cred.identitytoken, sizeof cred.identitytoken));
            must(cred.username[0] || cred.identitytoken[0]);
            must(!strchr(cred.username, ':'));
        } else {
            static const struct regauth_cred zero;
            must(memcmp(&cred, &zero, sizeof cred) == 0);
        }
        regauth_cred_wipe(&cred);
    }
}

static void bodies(const char *data, size_t size)
{
    char *tok, err[256];
    long exp;
    if (regauth_parse_token(data, size, &tok, &exp, err, sizeof err) == 0) {
        must(tok && tok[0] && header_safe(tok) && strlen(tok) < REGAUTH_TOKEN_MAX);
        must(exp >= 1 && exp <= REGAUTH_EXPIRES_MAX);
        regauth_secret_free(tok);
    } else {
        must(tok == NULL);
    }
    struct regauth_error e;
    if (regauth_parse_errors(data, size, &e, err, sizeof err) == 0)
        must(e.code[0] && terminated(e.code, sizeof e.code) &&
             terminated(e.message, sizeof e.message));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    challenge(d, size);
    next_link(d, size);
    config(d, size);
    bodies(d, size);
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    resolve(s);
    free(s);
    return 0;
}
