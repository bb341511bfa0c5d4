/*
 * test_regauth.c: the registry client's pure half against headers and bodies as real
 * registries send them (Docker Hub, GHCR, Harbor, Quay, GitLab, ECR, GCP, Nexus, Distribution),
 * then malformed and hostile variants, one table per parser. Secrets in the config.json and
 * token tables are checked never to reach an error message.
 */
#include "regauth.h"
#include "testlib.h"

#define HUB_REALM "https://auth.docker.io/token"

/* CHECK_STR for table rows: the message names the case (CHECK_STR wants a literal label). */
static void check_str(const char *name, const char *what, const char *got, const char *want)
{
    int ok = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);
    CHECK(ok, "%s: %s \"%s\", want \"%s\"", name, what, got ? got : "(null)",
          want ? want : "(null)");
}

struct chal_case {
    const char *name;
    const char *hdr;
    size_t len; /* 0: strlen(hdr) */
    int rc;
    enum regauth_scheme scheme;
    const char *realm, *service, *scope;
};

static const struct chal_case chal_cases[] = {
    {"Docker Hub manifest",
     "Bearer realm=\"" HUB_REALM "\",service=\"registry.docker.io\","
     "scope=\"repository:library/nginx:pull\"",
     0, 0, REGAUTH_BEARER, HUB_REALM, "registry.docker.io", "repository:library/nginx:pull"},
    {"Docker Hub /v2/", "Bearer realm=\"" HUB_REALM "\",service=\"registry.docker.io\"", 0, 0,
     REGAUTH_BEARER, HUB_REALM, "registry.docker.io", ""},
    {"Docker Hub insufficient_scope",
     "Bearer realm=\"" HUB_REALM "\",service=\"registry.docker.io\",scope=\"repository:library/"
     "nginx:pull\",error=\"insufficient_scope\"",
     0, 0, REGAUTH_BEARER, HUB_REALM, "registry.docker.io", "repository:library/nginx:pull"},
    {"GHCR",
     "Bearer realm=\"https://ghcr.io/token\",service=\"ghcr.io\",scope=\"repository:"
     "octo-org/app:pull\"",
     0, 0, REGAUTH_BEARER, "https://ghcr.io/token", "ghcr.io", "repository:octo-org/app:pull"},
    {"Harbor",
     "Bearer realm=\"https://harbor.example.com/service/token\",service=\"harbor-"
     "registry\",scope=\"repository:library/nginx:pull\"",
     0, 0, REGAUTH_BEARER, "https://harbor.example.com/service/token", "harbor-registry",
     "repository:library/nginx:pull"},
    {"Harbor, two scopes",
     "Bearer realm=\"https://h.example/service/token\",service=\"harbor-"
     "registry\",scope=\"repository:a/b:pull repository:a/c:pull\"",
     0, 0, REGAUTH_BEARER, "https://h.example/service/token", "harbor-registry",
     "repository:a/b:pull repository:a/c:pull"},
    {"Harbor catalog Basic", "Basic realm=\"harbor\"", 0, 0, REGAUTH_BASIC, "harbor", "", ""},
    {"Distribution auth: token, quoted commas",
     "Bearer realm=\"https://auth.example.com/token\",service=\"Docker registry\",scope="
     "\"repository:team/app:pull,push\"",
     0, 0, REGAUTH_BEARER, "https://auth.example.com/token", "Docker registry",
     "repository:team/app:pull,push"},
    {"Distribution htpasswd", "Basic realm=\"Registry Realm\"", 0, 0, REGAUTH_BASIC,
     "Registry Realm", "", ""},
    {"Nexus upper-case scheme", "BASIC realm=\"Sonatype Nexus Repository Manager\"", 0, 0,
     REGAUTH_BASIC, "Sonatype Nexus Repository Manager", "", ""},
    {"GitLab",
     "Bearer realm=\"https://gitlab.com/jwt/auth\",service=\"container_registry\","
     "scope=\"repository:group/project:pull\"",
     0, 0, REGAUTH_BEARER, "https://gitlab.com/jwt/auth", "container_registry",
     "repository:group/project:pull"},
    {"Quay", "Bearer realm=\"https://quay.io/v2/auth\",service=\"quay.io\"", 0, 0, REGAUTH_BEARER,
     "https://quay.io/v2/auth", "quay.io", ""},
    {"ECR Basic",
     "Basic realm=\"https://123456789012.dkr.ecr.us-east-1.amazonaws.com/\","
     "service=\"ecr.amazonaws.com\"",
     0, 0, REGAUTH_BASIC, "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/",
     "ecr.amazonaws.com", ""},
    {"GCP realm only", "Bearer realm=\"https://us-docker.pkg.dev/v2/token\"", 0, 0, REGAUTH_BEARER,
     "https://us-docker.pkg.dev/v2/token", "", ""},
    {"lower-case scheme", "bearer realm=\"https://r.example/token\",service=\"r.example\"", 0, 0,
     REGAUTH_BEARER, "https://r.example/token", "r.example", ""},
    {"upper-case parameter names", "Bearer REALM=\"https://r.example/t\",Service=\"s\"", 0, 0,
     REGAUTH_BEARER, "https://r.example/t", "s", ""},
    {"whitespace everywhere",
     "  Bearer \t realm = \"https://r.example/t\" ,  service= s.x  ,"
     "scope =\"repository:a:pull\"  ",
     0, 0, REGAUTH_BEARER, "https://r.example/t", "s.x", "repository:a:pull"},
    {"unquoted token value", "Bearer realm=\"https://r.example/t\",service=registry.example.com", 0,
     0, REGAUTH_BEARER, "https://r.example/t", "registry.example.com", ""},
    {"escaped quotes and comma", "Basic realm=\"say \\\"hi\\\", then go\"", 0, 0, REGAUTH_BASIC,
     "say \"hi\", then go", "", ""},
    {"escaped backslash", "Basic realm=\"a\\\\b\"", 0, 0, REGAUTH_BASIC, "a\\b", "", ""},
    {"tab inside quotes", "Basic realm=\"a\tb\"", 0, 0, REGAUTH_BASIC, "a\tb", "", ""},
    {"empty list elements", ",Bearer ,realm=\"https://r.example/t\",, ,service=\"s\",", 0, 0,
     REGAUTH_BEARER, "https://r.example/t", "s", ""},
    {"Bearer preferred over earlier Basic", "Basic realm=\"r\", Bearer realm=\"https://r/t\"", 0, 0,
     REGAUTH_BEARER, "https://r/t", "", ""},
    {"first Bearer kept", "Bearer realm=\"https://a/t\", Bearer realm=\"https://b/t\"", 0, 0,
     REGAUTH_BEARER, "https://a/t", "", ""},
    {"token68 challenge skipped", "Negotiate YWJjZA==, Basic realm=\"r\"", 0, 0, REGAUTH_BASIC, "r",
     "", ""},
    {"unknown scheme with params skipped", "acsjwt realm=\"x\", Basic realm=\"y\"", 0, 0,
     REGAUTH_BASIC, "y", "", ""},
    {"Basic without realm", "Basic", 0, 0, REGAUTH_BASIC, "", "", ""},
    {"unknown parameter duplicated is ignored", "Basic realm=\"r\",x=1,x=2", 0, 0, REGAUTH_BASIC,
     "r", "", ""},
    {"length bounds the header", "Basic realm=\"r\"garbage", 15, 0, REGAUTH_BASIC, "r", "", ""},
    /* refused */
    {"empty", "", 0, -1, 0, NULL, NULL, NULL},
    {"only whitespace and commas", "  , ,", 0, -1, 0, NULL, NULL, NULL},
    {"garbage", "\x01\x02\xff", 3, -1, 0, NULL, NULL, NULL},
    {"quotes only", "\"\"\"", 0, -1, 0, NULL, NULL, NULL},
    {"no scheme", "=realm", 0, -1, 0, NULL, NULL, NULL},
    {"unknown scheme only", "Negotiate", 0, -1, 0, NULL, NULL, NULL},
    {"Bearer without realm", "Bearer service=\"s\"", 0, -1, 0, NULL, NULL, NULL},
    {"Bearer with empty realm", "Bearer realm=\"\"", 0, -1, 0, NULL, NULL, NULL},
    {"unterminated quote", "Bearer realm=\"https://r/t", 0, -1, 0, NULL, NULL, NULL},
    {"cut by length inside quotes", "Basic realm=\"r\"", 14, -1, 0, NULL, NULL, NULL},
    {"escape at the end", "Basic realm=\"r\\", 0, -1, 0, NULL, NULL, NULL},
    {"missing comma between params", "Bearer realm=\"https://r/t\" service=\"s\"", 0, -1, 0, NULL,
     NULL, NULL},
    {"missing comma between challenges", "Bearer Basic realm=\"r\"", 0, -1, 0, NULL, NULL, NULL},
    {"no space after scheme", "Bearer\"realm\"", 0, -1, 0, NULL, NULL, NULL},
    {"realm twice", "Bearer realm=\"https://a/t\",realm=\"https://b/t\"", 0, -1, 0, NULL, NULL,
     NULL},
    {"scope twice, case folded", "Bearer realm=\"https://a/t\",scope=\"a\",SCOPE=\"b\"", 0, -1, 0,
     NULL, NULL, NULL},
    {"unquoted URL is not a token", "Bearer realm=https://r/t", 0, -1, 0, NULL, NULL, NULL},
    {"parameter without value", "Bearer realm=\"https://r/t\",service=,scope=\"x\"", 0, -1, 0, NULL,
     NULL, NULL},
    {"control character in quotes", "Basic realm=\"a\x01\"", 0, -1, 0, NULL, NULL, NULL},
    {"NUL inside quotes", "Basic realm=\"a\0b\"", 16, -1, 0, NULL, NULL, NULL},
    {"newline inside quotes (header splitting)", "Basic realm=\"a\r\nX: y\"", 0, -1, 0, NULL, NULL,
     NULL},
};

static void test_challenge_table(void)
{
    for (size_t i = 0; i < sizeof chal_cases / sizeof chal_cases[0]; i++) {
        const struct chal_case *c = &chal_cases[i];
        struct regauth_challenge ch;
        char err[256] = "";
        size_t len = c->len ? c->len : strlen(c->hdr);
        int rc = regauth_parse_challenge(c->hdr, len, &ch, err, sizeof err);
        CHECK(rc == c->rc, "%s: rc %d, want %d (%s)", c->name, rc, c->rc, err);
        if (rc < 0) {
            CHECK(err[0] != '\0', "%s: refusal has a reason", c->name);
            continue;
        }
        CHECK(ch.scheme == c->scheme, "%s: scheme %d, want %d", c->name, ch.scheme, c->scheme);
        check_str(c->name, "realm", ch.realm, c->realm);
        check_str(c->name, "service", ch.service, c->service);
        check_str(c->name, "scope", ch.scope, c->scope);
    }
}

/* Values exactly at the limit fit; one byte more is an error, never a cut. */
static void test_challenge_limits(void)
{
    static char hdr[4096], want[REGAUTH_REALM_MAX];
    struct regauth_challenge ch;
    char err[256];
    memset(want, 'a', sizeof want - 1);
    want[sizeof want - 1] = '\0';
    snprintf(hdr, sizeof hdr, "Basic realm=\"%s\"", want);
    CHECK(regauth_parse_challenge(hdr, strlen(hdr), &ch, err, sizeof err) == 0 &&
              strcmp(ch.realm, want) == 0,
          "realm of %zu bytes fits", sizeof want - 1);
    snprintf(hdr, sizeof hdr, "Basic realm=\"%sa\"", want);
    CHECK(regauth_parse_challenge(hdr, strlen(hdr), &ch, err, sizeof err) < 0 &&
              strstr(err, "realm") && strstr(err, "longer"),
          "realm one byte too long refused by name (%s)", err);
    snprintf(hdr, sizeof hdr, "Bearer realm=\"https://r/t\",service=%.*s", REGAUTH_SERVICE_MAX,
             want);
    CHECK(regauth_parse_challenge(hdr, strlen(hdr), &ch, err, sizeof err) < 0 &&
              strstr(err, "service"),
          "unquoted service too long refused (%s)", err);
    /* A too-long parameter of a skipped scheme costs nothing. */
    snprintf(hdr, sizeof hdr, "Foo x=\"%s%s\", Basic realm=\"r\"", want, want);
    CHECK(regauth_parse_challenge(hdr, strlen(hdr), &ch, err, sizeof err) == 0,
          "long parameter of another scheme ignored (%s)", err);
    /* err may be left out. */
    CHECK(regauth_parse_challenge("x=", 2, &ch, NULL, 0) < 0, "NULL err accepted");
    CHECK(regauth_parse_challenge(NULL, 5, &ch, err, sizeof err) < 0, "NULL header refused");
}

struct link_case {
    const char *name;
    const char *hdr;
    int rc;
    const char *url;
};

static const struct link_case link_cases[] = {
    {"Distribution", "</v2/team/app/tags/list?last=b&n=2>; rel=\"next\"", 1,
     "/v2/team/app/tags/list?last=b&n=2"},
    {"GHCR", "</v2/octo-org/app/tags/list?last=v1.2.3&n=100>; rel=\"next\"", 1,
     "/v2/octo-org/app/tags/list?last=v1.2.3&n=100"},
    {"Quay", "</v2/keycloak/keycloak/tags/list?n=100&last=23.0.4-0>; rel=\"next\"", 1,
     "/v2/keycloak/keycloak/tags/list?n=100&last=23.0.4-0"},
    {"absolute target", "<https://registry.example.com/v2/a/tags/list?n=100&last=x>; rel=\"next\"",
     1, "https://registry.example.com/v2/a/tags/list?n=100&last=x"},
    {"unquoted rel", "</v2/a/tags/list?n=1&last=x>;rel=next", 1, "/v2/a/tags/list?n=1&last=x"},
    {"several links",
     "</v2/a/tags/list?n=1>; rel=\"first\", </v2/a/tags/list?n=1&last=x>; "
     "rel=\"next\", </v2/a/tags/list?n=1&last=z>; rel=last",
     1, "/v2/a/tags/list?n=1&last=x"},
    {"other params around rel",
     "</v2/a/tags/list?last=x>; title=\"Next; page, please\"; rel=\"next\"; type=\"text/json\"", 1,
     "/v2/a/tags/list?last=x"},
    {"relation list", "</x>; rel=\"prev next\"", 1, "/x"},
    {"upper case", "</x>; REL=\"NEXT\"", 1, "/x"},
    {"comma and semicolon inside the target", "</v2/a/tags/list?last=a,b;c&n=1>; rel=\"next\"", 1,
     "/v2/a/tags/list?last=a,b;c&n=1"},
    {"parameter without value", "</x>; crossorigin; rel=\"next\"", 1, "/x"},
    {"whitespace", "  </x>  ;  rel = \"next\"  ,  ", 1, "/x"},
    {"last page", "</v2/a/tags/list?n=1>; rel=\"prev\"", 0, NULL},
    {"empty header", "", 0, NULL},
    {"later rel ignored (RFC 8288)", "</x>; rel=\"prev\"; rel=\"next\"", 0, NULL},
    {"nextish is not next", "</x>; rel=\"nextpage\"", 0, NULL},
    /* refused */
    {"no angle brackets", "/v2/a/tags/list; rel=\"next\"", -1, NULL},
    {"unclosed target", "</v2/a/tags/list; rel=\"next\"", -1, NULL},
    {"space in target", "</v2/a b>; rel=\"next\"", -1, NULL},
    {"newline in target", "</v2/a\r\nX: y>; rel=\"next\"", -1, NULL},
    {"two next links", "</a>; rel=next, </b>; rel=next", -1, NULL},
    {"missing semicolon", "</x> rel=\"next\"", -1, NULL},
    {"unterminated rel", "</x>; rel=\"next", -1, NULL},
    {"empty parameter", "</x>;", -1, NULL},
    {"empty target", "<>; rel=next", -1, NULL},
    {"unquoted value that is not a token", "</x>; rel=next; type=text/json", -1, NULL},
    {"missing comma between links", "</a>; rel=prev </b>; rel=next", -1, NULL},
};

static void test_link_table(void)
{
    for (size_t i = 0; i < sizeof link_cases / sizeof link_cases[0]; i++) {
        const struct link_case *c = &link_cases[i];
        char url[REGAUTH_URL_MAX] = "", err[256] = "";
        int rc = regauth_link_next(c->hdr, strlen(c->hdr), url, sizeof url, err, sizeof err);
        CHECK(rc == c->rc, "%s: rc %d, want %d (%s)", c->name, rc, c->rc, err);
        if (rc < 0) CHECK(err[0] != '\0', "%s: refusal has a reason", c->name);
        if (rc == 1) check_str(c->name, "url", url, c->url);
    }
    char small[8], err[128];
    const char *h = "</v2/a/tags/list>; rel=next";
    CHECK(regauth_link_next(h, strlen(h), small, sizeof small, err, sizeof err) < 0,
          "target larger than the output refused, not cut");
    CHECK(regauth_link_next(h, 10, small, sizeof small, err, sizeof err) < 0,
          "length bounds the header: '<' not closed within it");
}

struct resolve_case {
    const char *name;
    const char *base, *ref;
    int rc;
    const char *want; /* on success; on refusal a word the reason must hold, or NULL */
};

#define REG "https://registry.example.com"
#define TAGS "/v2/team/app/tags/list?n=100&last=x"

static const struct resolve_case resolve_cases[] = {
    {"relative path", REG, TAGS, 0, REG TAGS},
    {"base with trailing slash", REG "/", TAGS, 0, REG TAGS},
    {"base with port", "http://127.0.0.1:5000", TAGS, 0, "http://127.0.0.1:5000" TAGS},
    {"absolute on the same host", REG, REG TAGS, 0, REG TAGS},
    {"absolute with the default port", REG, "https://registry.example.com:443" TAGS, 0, REG TAGS},
    {"host case ignored", REG, "HTTPS://Registry.Example.COM" TAGS, 0, REG TAGS},
    {"network path to the same host", REG, "//registry.example.com" TAGS, 0, REG TAGS},
    {"absolute without a path", REG, "https://registry.example.com?n=1", 0, REG "/?n=1"},
    {"IPv6", "http://[::1]:5000", "http://[::1]:5000/v2/x", 0, "http://[::1]:5000/v2/x"},
    {"IPv6 relative", "http://[::1]:5000", "/v2/x", 0, "http://[::1]:5000/v2/x"},
    {"double slash inside the path", REG, "/v2//x", 0, REG "/v2//x"},
    /* refused */
    {"another host", REG, "https://evil.example.com" TAGS, -1, "evil.example.com"},
    {"a suffix of the host", REG, "https://registry.example.com.evil.io" TAGS, -1, "refused"},
    {"another port", REG, "https://registry.example.com:8443" TAGS, -1, "8443"},
    {"downgrade to http", REG, "http://registry.example.com" TAGS, -1, "http://"},
    {"network path elsewhere", REG, "//evil.example.com" TAGS, -1, "evil.example.com"},
    {"user information to fool a parser", REG, "https://registry.example.com@evil.example.com/v2",
     -1, NULL},
    {"credentials in the URL", REG, "https://u:p@registry.example.com/v2", -1, NULL},
    {"another IPv6 host", "http://[::1]:5000", "http://[::2]:5000/v2/x", -1, "[::2]"},
    {"relative without slash", REG, "tags/list?n=1", -1, "leading"},
    {"query only", REG, "?n=1&last=x", -1, "leading"},
    {"fragment", REG, "/v2/x#frag", -1, NULL},
    {"backslash", REG, "/\\evil.example.com/v2", -1, NULL},
    {"control character", REG, "/v2/x\r\nHost: evil", -1, NULL},
    {"space", REG, "/v2/x y", -1, NULL},
    {"empty", REG, "", -1, NULL},
    {"another scheme", REG, "ftp://registry.example.com/v2", -1, NULL},
    {"port out of range", REG, "https://registry.example.com:99999/v2", -1, NULL},
    {"base without scheme", "registry.example.com", TAGS, -1, "base"},
    {"base with a path", REG "/v2", TAGS, -1, "base"},
    {"base with user information", "https://u@registry.example.com", TAGS, -1, "base"},
    {"base with empty port", "https://registry.example.com:", TAGS, -1, "base"},
};

static void test_resolve_table(void)
{
    for (size_t i = 0; i < sizeof resolve_cases / sizeof resolve_cases[0]; i++) {
        const struct resolve_case *c = &resolve_cases[i];
        char out[REGAUTH_URL_MAX] = "", err[256] = "";
        int rc = regauth_resolve_url(c->base, c->ref, out, sizeof out, err, sizeof err);
        CHECK(rc == c->rc, "%s: rc %d, want %d (%s)", c->name, rc, c->rc, err);
        if (rc == 0 && c->rc == 0) check_str(c->name, "url", out, c->want);
        if (rc < 0 && c->rc < 0)
            CHECK(err[0] && (!c->want || strstr(err, c->want)), "%s: reason \"%s\" names %s",
                  c->name, err, c->want ? c->want : "something");
    }
    char small[16], err[128];
    CHECK(regauth_resolve_url(REG, TAGS, small, sizeof small, err, sizeof err) < 0,
          "resolved URL larger than the output refused");
}

#define HUB_KEY "https://index.docker.io/v1/"
#define AUTH(key, b64) "{\"auths\":{\"" key "\":{\"auth\":\"" b64 "\"}}}"
#define ALICE "YWxpY2U6czNjcmV0" /* alice:s3cret */

struct config_case {
    const char *name;
    const char *json;
    const char *host;
    int rc;
    const char *user, *pass, *idt;
    const char *secret; /* must never appear in err */
};

static const struct config_case config_cases[] = {
    {"auth", AUTH("registry.example.com", ALICE), "registry.example.com", 1, "alice", "s3cret", "",
     NULL},
    {"password with colons", AUTH("r.example", "Ym9iOnBhOnNzOndvcmQ="), "r.example", 1, "bob",
     "pa:ss:word", "", NULL},
    {"base64 without one '='", AUTH("r.example", "YWxpY2U6cHc"), "r.example", 1, "alice", "pw", "",
     NULL},
    {"base64 without two '='", AUTH("r.example", "YWI6Yw"), "r.example", 1, "ab", "c", "", NULL},
    {"base64 with its padding", AUTH("r.example", "YWI6Yw=="), "r.example", 1, "ab", "c", "", NULL},
    {"username and password fields",
     "{\"auths\":{\"r.example\":{\"username\":\"carol\",\"password\":\"p@ss:w0rd\"}}}", "r.example",
     1, "carol", "p@ss:w0rd", "", NULL},
    {"auth wins over username/password",
     "{\"auths\":{\"r.example\":{\"auth\":\"" ALICE "\",\"username\":\"x\",\"password\":\"y\"}}}",
     "r.example", 1, "alice", "s3cret", "", NULL},
    {"identity token (ACR)",
     "{\"auths\":{\"team.azurecr.io\":{\"auth\":\"MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"
     "Og==\",\"identitytoken\":\"eyJhbGciOi.refresh\"}}}",
     "team.azurecr.io", 1, "00000000-0000-0000-0000-000000000000", "", "eyJhbGciOi.refresh", NULL},
    {"identity token alone", "{\"auths\":{\"r.example\":{\"identitytoken\":\"rt\"}}}", "r.example",
     1, "", "", "rt", NULL},
    {"Docker Hub key, docker.io", AUTH(HUB_KEY, "aHViLXVzZXI6aHViLXBhc3MtMQ=="), "docker.io", 1,
     "hub-user", "hub-pass-1", "", NULL},
    {"Docker Hub key, index.docker.io", AUTH(HUB_KEY, "aHViLXVzZXI6aHViLXBhc3MtMQ=="),
     "index.docker.io", 1, "hub-user", "hub-pass-1", "", NULL},
    {"Docker Hub key, registry-1.docker.io", AUTH(HUB_KEY, "aHViLXVzZXI6aHViLXBhc3MtMQ=="),
     "registry-1.docker.io", 1, "hub-user", "hub-pass-1", "", NULL},
    {"docker.io key serves registry-1", AUTH("docker.io", ALICE), "registry-1.docker.io", 1,
     "alice", "s3cret", "", NULL},
    {"host:port key", AUTH("registry.example.com:5000", ALICE), "registry.example.com:5000", 1,
     "alice", "s3cret", "", NULL},
    {"https:// key", AUTH("https://registry.example.com", ALICE), "registry.example.com", 1,
     "alice", "s3cret", "", NULL},
    {"http:// key with /v1/", AUTH("http://registry.example.com:5000/v1/", ALICE),
     "registry.example.com:5000", 1, "alice", "s3cret", "", NULL},
    {"key case ignored", AUTH("HTTPS://Registry.Example.COM/", ALICE), "registry.example.com", 1,
     "alice", "s3cret", "", NULL},
    {"exact key wins over an earlier normalised one",
     "{\"auths\":{\"https://r.example\":{\"auth\":\"YWI6Yw\"},\"r.example\":{\"auth\":\"" ALICE
     "\"}}}",
     "r.example", 1, "alice", "s3cret", "", NULL},
    {"first normalised match in file order",
     "{\"auths\":{\"https://r.example/\":{\"auth\":\"YWI6Yw\"},\"http://r.example\":{\"auth\":"
     "\"" ALICE "\"}}}",
     "r.example", 1, "ab", "c", "", NULL},
    {"other entries skipped, even broken ones",
     "{\"auths\":{\"a.example\":5,\"r.example\":{\"auth\":\"" ALICE "\"}},\"credsStore\":\"x\"}",
     "r.example", 1, "alice", "s3cret", "", NULL},
    {"trailing newline", AUTH("r.example", ALICE) "\n", "r.example", 1, "alice", "s3cret", "",
     NULL},
    /* no entry */
    {"no entry for the host", AUTH("r.example", ALICE), "other.example", 0, NULL, NULL, NULL, NULL},
    {"port differs", AUTH("registry.example.com", ALICE), "registry.example.com:5000", 0, NULL,
     NULL, NULL, NULL},
    {"not Docker Hub", AUTH(HUB_KEY, ALICE), "ghcr.io", 0, NULL, NULL, NULL, NULL},
    {"no auths at all", "{\"credsStore\":\"desktop\"}", "docker.io", 0, NULL, NULL, NULL, NULL},
    /* refused; secrets never in the reason */
    {"not JSON", "{\"auths\":", "r.example", -1, NULL, NULL, NULL, NULL},
    {"trailing garbage", AUTH("r.example", ALICE) "x", "r.example", -1, NULL, NULL, NULL, NULL},
    {"not an object", "[]", "r.example", -1, NULL, NULL, NULL, NULL},
    {"auths not an object", "{\"auths\":[]}", "r.example", -1, NULL, NULL, NULL, NULL},
    {"entry not an object", "{\"auths\":{\"r.example\":\"" ALICE "\"}}", "r.example", -1, NULL,
     NULL, NULL, "s3cret"},
    {"credsStore entry without credentials",
     "{\"auths\":{\"" HUB_KEY "\":{}},\"credsStore\":"
     "\"desktop\"}",
     "docker.io", -1, NULL, NULL, NULL, NULL},
    {"auth not base64", AUTH("r.example", "c2VjcmV0!!"), "r.example", -1, NULL, NULL, NULL,
     "c2VjcmV0"},
    {"auth with a bad length", AUTH("r.example", "YWxpY2U6czNjcmV0Y"), "r.example", -1, NULL, NULL,
     NULL, "s3cret"},
    {"auth with '=' inside", AUTH("r.example", "YW=xpY2U6"), "r.example", -1, NULL, NULL, NULL,
     NULL},
    {"auth with a newline", AUTH("r.example", "YWxp\\nY2U6czNjcmV0"), "r.example", -1, NULL, NULL,
     NULL, "s3cret"},
    {"auth without colon", AUTH("r.example", "anVzdGFzZWNyZXRub2NvbG9u"), "r.example", -1, NULL,
     NULL, NULL, "justasecretnocolon"},
    {"auth with an empty user", AUTH("r.example", "OmVtcHR5dXNlcg=="), "r.example", -1, NULL, NULL,
     NULL, "emptyuser"},
    {"auth decoding to a NUL", AUTH("r.example", "bnVsADp4"), "r.example", -1, NULL, NULL, NULL,
     NULL},
    {"auth not a string", "{\"auths\":{\"r.example\":{\"auth\":5}}}", "r.example", -1, NULL, NULL,
     NULL, NULL},
    {"escaped NUL cuts a password",
     "{\"auths\":{\"r.example\":{\"username\":\"u\",\"password\":\"ghp_SECRET\\u0000tail\"}}}",
     "r.example", -1, NULL, NULL, NULL, "ghp_SECRET"},
    {"user name with a colon",
     "{\"auths\":{\"r.example\":{\"username\":\"a:ghp_SECRET\",\"password\":\"x\"}}}", "r.example",
     -1, NULL, NULL, NULL, "ghp_SECRET"},
    {"password not a string", "{\"auths\":{\"r.example\":{\"username\":\"u\",\"password\":[1]}}}",
     "r.example", -1, NULL, NULL, NULL, NULL},
    {"GHCR token in auth, broken entry",
     "{\"auths\":{\"ghcr.io\":{\"auth\":\"Z2gtdXNlcjpnaHBfVE9QU0VDUkVUdG9rZW4xMjM=\","
     "\"identitytoken\":7}}}",
     "ghcr.io", -1, NULL, NULL, NULL, "TOPSECRET"},
    {"empty host", AUTH("r.example", ALICE), "", -1, NULL, NULL, NULL, NULL},
};

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

static void test_config_table(void)
{
    static struct regauth_cred cred;
    for (size_t i = 0; i < sizeof config_cases / sizeof config_cases[0]; i++) {
        const struct config_case *c = &config_cases[i];
        char err[512] = "";
        memset(&cred, 'x', sizeof cred);
        int rc = regauth_config_lookup(c->json, strlen(c->json), c->host, &cred, err, sizeof err);
        CHECK(rc == c->rc, "%s: rc %d, want %d (%s)", c->name, rc, c->rc, err);
        if (rc == 1 && c->rc == 1) {
            check_str(c->name, "user", cred.username, c->user);
            check_str(c->name, "password", cred.password, c->pass);
            check_str(c->name, "identity token", cred.identitytoken, c->idt);
        }
        if (rc <= 0) CHECK(all_zero(&cred, sizeof cred), "%s: credentials wiped", c->name);
        if (rc < 0) CHECK(err[0] != '\0', "%s: refusal has a reason", c->name);
        if (c->secret)
            CHECK(strstr(err, c->secret) == NULL, "%s: the secret leaked into \"%s\"", c->name,
                  err);
        regauth_cred_wipe(&cred);
        CHECK(all_zero(&cred, sizeof cred), "%s: regauth_cred_wipe zeroes", c->name);
    }
    regauth_cred_wipe(NULL);
}

/* Over-long secrets are refused without being echoed; the key is named instead. */
static void test_config_limits(void)
{
    static char json[4 * REGAUTH_SECRET_MAX], pw[REGAUTH_SECRET_MAX + 1];
    static struct regauth_cred cred;
    char err[512];
    memset(pw, 'S', REGAUTH_SECRET_MAX);
    pw[REGAUTH_SECRET_MAX] = '\0';
    snprintf(json, sizeof json,
             "{\"auths\":{\"r.example\":{\"username\":\"u\",\"password\":\"%s\"}}}", pw);
    CHECK(regauth_config_lookup(json, strlen(json), "r.example", &cred, err, sizeof err) < 0 &&
              strstr(err, "r.example") && strstr(err, "password") && !strstr(err, "SSSS"),
          "password of %d bytes refused, key named, secret not (%s)", REGAUTH_SECRET_MAX, err);
    pw[REGAUTH_SECRET_MAX - 1] = '\0';
    snprintf(json, sizeof json,
             "{\"auths\":{\"r.example\":{\"username\":\"u\",\"password\":\"%s\"}}}", pw);
    CHECK(regauth_config_lookup(json, strlen(json), "r.example", &cred, err, sizeof err) == 1 &&
              strlen(cred.password) == REGAUTH_SECRET_MAX - 1,
          "password of %d bytes fits (%s)", REGAUTH_SECRET_MAX - 1, err);
    regauth_cred_wipe(&cred);
    /* A hostile key is named in printable form only. */
    const char *k = "{\"auths\":{\"r.example\\n\\u001b[31m\":{}}}";
    CHECK(regauth_config_lookup(k, strlen(k), "r.example\n\x1b[31m", &cred, err, sizeof err) < 0 &&
              strstr(err, "r.example??[31m") && !strchr(err, '\n') && !strchr(err, '\x1b'),
          "control bytes of a key kept out of the reason (%s)", err);
}

struct token_case {
    const char *name;
    const char *body;
    int rc;
    const char *token;
    long expires;
    const char *secret; /* must never appear in err */
};

static const struct token_case token_cases[] = {
    {"Docker Hub",
     "{\"token\":\"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIifQ.c2ln\",\"access_token\":"
     "\"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIifQ.c2ln\",\"expires_in\":300,\"issued_at\":"
     "\"2026-01-02T03:04:05.123456789Z\"}",
     0, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIifQ.c2ln", 300, NULL},
    {"GHCR (token only)", "{\"token\":\"djE6b2N0by1vcmcvYXBwOjE3MDAwMDAwMDA=\"}", 0,
     "djE6b2N0by1vcmcvYXBwOjE3MDAwMDAwMDA=", 60, NULL},
    {"access_token only", "{\"access_token\":\"at-1\",\"expires_in\":900}", 0, "at-1", 900, NULL},
    {"access_token wins", "{\"token\":\"t\",\"access_token\":\"at\"}", 0, "at", 60, NULL},
    {"empty access_token falls back", "{\"token\":\"t\",\"access_token\":\"\"}", 0, "t", 60, NULL},
    {"null access_token falls back", "{\"token\":\"t\",\"access_token\":null}", 0, "t", 60, NULL},
    {"expires_in 0 gives the default", "{\"token\":\"t\",\"expires_in\":0}", 0, "t", 60, NULL},
    {"negative expires_in", "{\"token\":\"t\",\"expires_in\":-5}", 0, "t", 60, NULL},
    {"short expires_in kept", "{\"token\":\"t\",\"expires_in\":30}", 0, "t", 30, NULL},
    {"fraction dropped", "{\"token\":\"t\",\"expires_in\":299.7}", 0, "t", 299, NULL},
    {"huge expires_in capped", "{\"token\":\"t\",\"expires_in\":1e300}", 0, "t",
     REGAUTH_EXPIRES_MAX, NULL},
    {"null expires_in", "{\"token\":\"t\",\"expires_in\":null}", 0, "t", 60, NULL},
    {"other fields ignored", "{\"token\":\"t\",\"refresh_token\":\"r\",\"scope\":\"x\"}\n", 0, "t",
     60, NULL},
    /* refused */
    {"no token", "{\"expires_in\":300}", -1, NULL, 0, NULL},
    {"empty token", "{\"token\":\"\"}", -1, NULL, 0, NULL},
    {"token not a string", "{\"token\":5}", -1, NULL, 0, NULL},
    {"token with a space", "{\"token\":\"Bearer SECRETTOKEN\"}", -1, NULL, 0, "SECRETTOKEN"},
    {"token with a newline", "{\"token\":\"SECRETTOKEN\\r\\nX-Evil: 1\"}", -1, NULL, 0,
     "SECRETTOKEN"},
    {"token with UTF-8", "{\"token\":\"SECRETTOKEN\xc3\xa9\"}", -1, NULL, 0, "SECRETTOKEN"},
    {"token cut by an escaped NUL", "{\"token\":\"SECRETTOKEN\\u0000rest\"}", -1, NULL, 0,
     "SECRETTOKEN"},
    {"expires_in a string", "{\"token\":\"SECRETTOKEN\",\"expires_in\":\"300\"}", -1, NULL, 0,
     "SECRETTOKEN"},
    {"array", "[{\"token\":\"t\"}]", -1, NULL, 0, NULL},
    {"not JSON", "token=abc", -1, NULL, 0, "abc"},
    {"trailing data", "{\"token\":\"SECRETTOKEN\"}{}", -1, NULL, 0, "SECRETTOKEN"},
    {"empty", "", -1, NULL, 0, NULL},
};

static void test_token_table(void)
{
    for (size_t i = 0; i < sizeof token_cases / sizeof token_cases[0]; i++) {
        const struct token_case *c = &token_cases[i];
        char *tok = (char *)"unset";
        long exp = -1;
        char err[256] = "";
        int rc = regauth_parse_token(c->body, strlen(c->body), &tok, &exp, err, sizeof err);
        CHECK(rc == c->rc, "%s: rc %d, want %d (%s)", c->name, rc, c->rc, err);
        if (rc == 0 && c->rc == 0) {
            check_str(c->name, "token", tok, c->token);
            CHECK(exp == c->expires, "%s: expires %ld, want %ld", c->name, exp, c->expires);
        }
        if (rc < 0) CHECK(tok == NULL && err[0], "%s: no token and a reason", c->name);
        if (c->secret)
            CHECK(strstr(err, c->secret) == NULL, "%s: token leaked into \"%s\"", c->name, err);
        regauth_secret_free(rc == 0 ? tok : NULL);
    }
    static char body[REGAUTH_TOKEN_MAX + 64];
    int n = snprintf(body, sizeof body, "{\"token\":\"");
    memset(body + n, 'T', REGAUTH_TOKEN_MAX);
    snprintf(body + n + REGAUTH_TOKEN_MAX, sizeof body - (size_t)n - REGAUTH_TOKEN_MAX, "\"}");
    char *tok, err[256];
    long exp;
    CHECK(regauth_parse_token(body, strlen(body), &tok, &exp, err, sizeof err) < 0 &&
              !strstr(err, "TTTT"),
          "over-long token refused without echo (%s)", err);
}

struct url_case {
    const char *name;
    const char *realm, *service, *scope;
    int rc;
    const char *want;
};

static const struct url_case url_cases[] = {
    {"Docker Hub", HUB_REALM, "registry.docker.io", "repository:library/nginx:pull", 0,
     HUB_REALM "?service=registry.docker.io&scope=repository%3Alibrary%2Fnginx%3Apull"},
    {"realm with a query", "https://gitlab.example.com/jwt/auth?client_id=docker",
     "container_registry", "repository:g/p:pull", 0,
     "https://gitlab.example.com/jwt/auth?client_id=docker&service=container_registry&scope="
     "repository%3Ag%2Fp%3Apull"},
    {"realm ending in '?'", "https://r.example/token?", "s", NULL, 0,
     "https://r.example/token?service=s"},
    {"realm ending in '&'", "https://r.example/token?a=1&", "s", NULL, 0,
     "https://r.example/token?a=1&service=s"},
    {"service with a space", "https://auth.example.com/token", "Docker registry",
     "repository:team/app:pull", 0,
     "https://auth.example.com/token?service=Docker%20registry&scope=repository%3Ateam%2Fapp%"
     "3Apull"},
    {"no service (GCP)", "https://us-docker.pkg.dev/v2/token", "", "repository:p/r/i:pull", 0,
     "https://us-docker.pkg.dev/v2/token?scope=repository%3Ap%2Fr%2Fi%3Apull"},
    {"neither", "https://r.example/token", NULL, NULL, 0, "https://r.example/token"},
    {"several scopes", "https://h.example/service/token", "harbor-registry",
     "repository:a/b:pull  repository:a/c:pull,push", 0,
     "https://h.example/service/token?service=harbor-registry&scope=repository%3Aa%2Fb%3Apull&"
     "scope=repository%3Aa%2Fc%3Apull%2Cpush"},
    {"reserved bytes encoded", "http://127.0.0.1:5001/auth", "a&b=c?d", "x y", 0,
     "http://127.0.0.1:5001/auth?service=a%26b%3Dc%3Fd&scope=x&scope=y"},
    {"upper-case scheme", "HTTPS://r.example/t", "s", NULL, 0, "HTTPS://r.example/t?service=s"},
    /* refused */
    {"empty realm", "", "s", NULL, -1, NULL},
    {"NULL realm", NULL, "s", NULL, -1, NULL},
    {"not http", "ftp://r.example/t", "s", NULL, -1, NULL},
    {"no host", "https://", "s", NULL, -1, NULL},
    {"no scheme", "auth.docker.io/token", "s", NULL, -1, NULL},
    {"fragment", "https://r.example/t#x", "s", NULL, -1, NULL},
    {"space", "https://r.example/t oken", "s", NULL, -1, NULL},
    {"quote", "https://r.example/\"t", "s", NULL, -1, NULL},
    {"newline", "https://r.example/t\r\nX: y", "s", NULL, -1, NULL},
};

static void test_token_url_table(void)
{
    for (size_t i = 0; i < sizeof url_cases / sizeof url_cases[0]; i++) {
        const struct url_case *c = &url_cases[i];
        char out[REGAUTH_URL_MAX] = "", err[256] = "";
        int rc =
            regauth_token_url(c->realm, c->service, c->scope, out, sizeof out, err, sizeof err);
        CHECK(rc == c->rc, "%s: rc %d, want %d (%s)", c->name, rc, c->rc, err);
        if (rc == 0 && c->rc == 0) check_str(c->name, "url", out, c->want);
        if (rc < 0) CHECK(err[0] != '\0', "%s: refusal has a reason", c->name);
    }
    char small[40], err[128];
    CHECK(regauth_token_url(HUB_REALM, "registry.docker.io", NULL, small, sizeof small, err,
                            sizeof err) < 0,
          "token URL larger than the output refused");
    CHECK(regauth_token_url(HUB_REALM, NULL, NULL, small, 0, err, sizeof err) < 0,
          "zero-sized output refused");

    char scope[REGAUTH_SCOPE_MAX];
    CHECK(regauth_pull_scope("team/app", scope, sizeof scope, err, sizeof err) == 0 &&
              strcmp(scope, "repository:team/app:pull") == 0,
          "pull scope");
    const char *bad[] = {"", "Team/App", "a:b", "a b", "a/", "../x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(regauth_pull_scope(bad[i], scope, sizeof scope, err, sizeof err) < 0,
              "pull scope for \"%s\" refused", bad[i]);
    CHECK(regauth_pull_scope(NULL, scope, sizeof scope, err, sizeof err) < 0, "NULL refused");
    CHECK(regauth_pull_scope("team/app", scope, 20, err, sizeof err) < 0, "pull scope too long");
}

struct error_case {
    const char *name;
    const char *body;
    int rc;
    const char *code, *message;
    enum regauth_error_kind kind;
};

static const struct error_case error_cases[] = {
    {"manifest unknown",
     "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest "
     "unknown\",\"detail\":{\"Tag\":\"v9\"}}]}\n",
     0, "MANIFEST_UNKNOWN", "manifest unknown", REGAUTH_ERR_NOT_FOUND},
    {"Docker Hub unauthorized",
     "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":"
     "[{\"Type\":\"repository\",\"Class\":\"\",\"Name\":\"library/nginxx\",\"Action\":\"pull\"}]}"
     "]}",
     0, "UNAUTHORIZED", "authentication required", REGAUTH_ERR_AUTH},
    {"GHCR denied",
     "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"requested access to the "
     "resource is denied\"}]}",
     0, "DENIED", "requested access to the resource is denied", REGAUTH_ERR_AUTH},
    {"name unknown",
     "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"repository name not "
     "known to registry\"}]}",
     0, "NAME_UNKNOWN", "repository name not known to registry", REGAUTH_ERR_NOT_FOUND},
    {"rate limited",
     "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"You have reached "
     "your pull rate limit.\"}]}",
     0, "TOOMANYREQUESTS", "You have reached your pull rate limit.", REGAUTH_ERR_RATE},
    {"first of several", "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\"},{\"code\":\"DENIED\"}]}", 0,
     "BLOB_UNKNOWN", "", REGAUTH_ERR_NOT_FOUND},
    {"unknown code", "{\"errors\":[{\"code\":\"UNSUPPORTED\",\"message\":\"x\"}]}", 0,
     "UNSUPPORTED", "x", REGAUTH_ERR_OTHER},
    {"message with control bytes",
     "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"a\\nb\\u001b"
     "[31m\xc3\xa9\"}]}",
     0, "DENIED", "a?b?[31m??", REGAUTH_ERR_AUTH},
    {"message not a string", "{\"errors\":[{\"code\":\"DENIED\",\"message\":{}}]}", 0, "DENIED", "",
     REGAUTH_ERR_AUTH},
    /* refused */
    {"empty object", "{}", -1, NULL, NULL, 0},
    {"empty list", "{\"errors\":[]}", -1, NULL, NULL, 0},
    {"no code", "{\"errors\":[{\"message\":\"x\"}]}", -1, NULL, NULL, 0},
    {"code with a space", "{\"errors\":[{\"code\":\"NOT FOUND\"}]}", -1, NULL, NULL, 0},
    {"code too long",
     "{\"errors\":[{\"code\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
     "AAAAAAAAAAAA\"}]}",
     -1, NULL, NULL, 0},
    {"errors not a list", "{\"errors\":{\"code\":\"DENIED\"}}", -1, NULL, NULL, 0},
    {"HTML", "<html><body>502 Bad Gateway</body></html>", -1, NULL, NULL, 0},
    {"array", "[]", -1, NULL, NULL, 0},
};

static void test_errors_table(void)
{
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *c = &error_cases[i];
        struct regauth_error e;
        char err[256] = "";
        int rc = regauth_parse_errors(c->body, strlen(c->body), &e, err, sizeof err);
        CHECK(rc == c->rc, "%s: rc %d, want %d (%s)", c->name, rc, c->rc, err);
        if (rc < 0) CHECK(err[0] != '\0', "%s: refusal has a reason", c->name);
        if (rc != 0 || c->rc != 0) continue;
        check_str(c->name, "code", e.code, c->code);
        check_str(c->name, "message", e.message, c->message);
        CHECK(!e.message_cut, "%s: not cut", c->name);
        CHECK(regauth_error_kind(e.code) == c->kind, "%s: kind %d, want %d", c->name,
              regauth_error_kind(e.code), c->kind);
    }
    CHECK(regauth_error_kind(NULL) == REGAUTH_ERR_OTHER, "NULL code is OTHER");
    CHECK(regauth_error_kind("manifest_unknown") == REGAUTH_ERR_OTHER, "codes are upper case");

    static char body[2048];
    char msg[1000];
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    snprintf(body, sizeof body, "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"%s\"}]}", msg);
    struct regauth_error e;
    char err[128];
    CHECK(regauth_parse_errors(body, strlen(body), &e, err, sizeof err) == 0 && e.message_cut &&
              strlen(e.message) == sizeof e.message - 1 &&
              strcmp(e.message + sizeof e.message - 4, "...") == 0,
          "long message cut visibly");
}

int main(void)
{
    test_challenge_table();
    test_challenge_limits();
    test_link_table();
    test_resolve_table();
    test_config_table();
    test_config_limits();
    test_token_table();
    test_token_url_table();
    test_errors_table();
    return TEST_DONE("test_regauth");
}
