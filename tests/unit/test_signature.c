/*
 * test_signature.c: the webhook authentication checks against known answers (RFC 4231 and
 * RFC 2202 HMAC test vectors, GitHub's documented example), then every way a header can be
 * wrong.
 */
#include "signature.h"
#include "testlib.h"

/* RFC 4231 test case 2 and RFC 2202 test case 2: key "Jefe". */
static const char JEFE_MSG[] = "what do ya want for nothing?";
static const char JEFE_SHA256[] =
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
static const char JEFE_SHA1[] = "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79";
/* docs.github.com, "Validating webhook deliveries": secret "It's a Secret to Everybody",
 * payload "Hello, World!". */
static const char GH_SIG[] =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

static const struct {
    const char *what, *secret, *body, *header;
    int github, nexus, jfrog;
} cases[] = {
    {"GitHub's example", "It's a Secret to Everybody", "Hello, World!", GH_SIG, 1, 0, 0},
    {"GitHub, other body", "It's a Secret to Everybody", "Hello, World?", GH_SIG, 0, 0, 0},
    {"GitHub, other secret", "It's a secret to everybody", "Hello, World!", GH_SIG, 0, 0, 0},
    {"GitHub, no prefix", "It's a Secret to Everybody", "Hello, World!", GH_SIG + 7, 0, 0, 1},
    {"GitHub, sha1 prefix", "Jefe", JEFE_MSG, "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", 0, 0,
     0},
    {"upper-case hex", "Jefe", JEFE_MSG,
     "sha256=5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843", 1, 0, 0},
    {"truncated", "Jefe", JEFE_MSG, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d27398", 0, 0,
     0},
    {"non-hex", "Jefe", JEFE_MSG,
     "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec384g", 0, 0, 0},
    {"Nexus HMAC-SHA1", "Jefe", JEFE_MSG, JEFE_SHA1, 0, 1, 0},
    {"Nexus with blanks", "Jefe", JEFE_MSG, " effcdf6ae5eb2fa2d27416d5f184df9c259a7c79 ", 0, 1, 0},
    {"Nexus given SHA-256", "Jefe", JEFE_MSG, JEFE_SHA256, 0, 0, 1},
    {"JFrog plain secret", "s3cret-token", "{}", "s3cret-token", 0, 0, 1},
    {"JFrog wrong secret", "s3cret-token", "{}", "s3cret-tokem", 0, 0, 0},
    {"JFrog secret prefix", "s3cret-token", "{}", "s3cret", 0, 0, 0},
    {"JFrog signed", "Jefe", JEFE_MSG, JEFE_SHA256, 0, 0, 1},
    {"empty header", "Jefe", JEFE_MSG, "", 0, 0, 0},
    {"no header", "Jefe", JEFE_MSG, NULL, 0, 0, 0},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *b = cases[i].body, *h = cases[i].header, *k = cases[i].secret;
        CHECK(sig_github_ok(k, b, strlen(b), h) == cases[i].github, "%s: github", cases[i].what);
        CHECK(sig_nexus_ok(k, b, strlen(b), h) == cases[i].nexus, "%s: nexus", cases[i].what);
        CHECK(sig_jfrog_ok(k, b, strlen(b), h) == cases[i].jfrog, "%s: jfrog", cases[i].what);
    }
}

static void test_hmac(void)
{
    CHECK(sig_hmac_hex_ok("sha256", "Jefe", JEFE_MSG, strlen(JEFE_MSG), JEFE_SHA256, 64),
          "RFC 4231 case 2");
    CHECK(sig_hmac_hex_ok("sha1", "Jefe", JEFE_MSG, strlen(JEFE_MSG), JEFE_SHA1, 40),
          "RFC 2202 case 2");
    CHECK(!sig_hmac_hex_ok("md5", "Jefe", JEFE_MSG, strlen(JEFE_MSG), JEFE_SHA1, 40),
          "unknown digest refused");
    CHECK(!sig_hmac_hex_ok("sha256", "Jefe", JEFE_MSG, strlen(JEFE_MSG) - 1, JEFE_SHA256, 64),
          "one byte less is another MAC");
    /* The raw body counts byte for byte, NUL included. */
    CHECK(!sig_hmac_hex_ok("sha256", "Jefe", "what\0do", 7, JEFE_SHA256, 64), "NUL in body");
    CHECK(!sig_github_ok(NULL, "x", 1, GH_SIG), "no secret: nothing verifies");
}

static void test_equal_and_bearer(void)
{
    CHECK(sig_equal("abc", 3, "abc", 3), "equal");
    CHECK(!sig_equal("abc", 3, "abd", 3), "last byte differs");
    CHECK(!sig_equal("abc", 3, "abcd", 4), "prefix is not equal");
    CHECK(!sig_equal("", 0, "a", 1), "empty is not equal to something");
    CHECK(sig_equal("", 0, "", 0), "empty equals empty");
    CHECK(!sig_equal(NULL, 0, "", 0), "NULL equals nothing");

    CHECK(sig_bearer_ok("Bearer t0ken", "t0ken", 0), "Bearer");
    CHECK(sig_bearer_ok("bearer   t0ken  ", "t0ken", 0), "scheme case and blanks");
    CHECK(!sig_bearer_ok("t0ken", "t0ken", 0), "bare token needs allow_bare");
    CHECK(sig_bearer_ok("t0ken", "t0ken", 1), "bare token allowed (Harbor's Auth Header)");
    CHECK(!sig_bearer_ok("Basic t0ken", "t0ken", 0), "another scheme");
    CHECK(!sig_bearer_ok("Bearer t0ke", "t0ken", 1), "shorter token");
    CHECK(!sig_bearer_ok(NULL, "t0ken", 1), "no header");
    CHECK(!sig_bearer_ok("Bearer ", "t0ken", 1), "empty token");
}

int main(void)
{
    test_table();
    test_hmac();
    test_equal_and_bearer();
    return TEST_DONE("test_signature");
}
