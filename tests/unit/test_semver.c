/*
 * test_semver.c: semver 2.0.0 parsing and precedence checked against the examples of the
 * specification (semver.org, items 2, 9, 10 and 11), and the range grammar against its npm
 * meaning, including the rule that pre-releases match only when the range names one.
 */
#include "semver.h"
#include "testlib.h"

static const struct {
    const char *text;
    int allow_v, ok;
    unsigned long long ma, mi, pa;
    const char *pre, *build;
} parse_cases[] = {
    {"1.2.3", 0, 1, 1, 2, 3, "", ""},
    {"0.0.0", 0, 1, 0, 0, 0, "", ""},
    {"10.20.30", 0, 1, 10, 20, 30, "", ""},
    {"1.0.0-alpha", 0, 1, 1, 0, 0, "alpha", ""},
    {"1.0.0-alpha.1", 0, 1, 1, 0, 0, "alpha.1", ""},
    {"1.0.0-0.3.7", 0, 1, 1, 0, 0, "0.3.7", ""},
    {"1.0.0-x.7.z.92", 0, 1, 1, 0, 0, "x.7.z.92", ""},
    {"1.0.0-x-y-z.--", 0, 1, 1, 0, 0, "x-y-z.--", ""},
    {"1.0.0-alpha+001", 0, 1, 1, 0, 0, "alpha", "001"},
    {"1.0.0+20130313144700", 0, 1, 1, 0, 0, "", "20130313144700"},
    {"1.0.0-beta+exp.sha.5114f85", 0, 1, 1, 0, 0, "beta", "exp.sha.5114f85"},
    {"1.0.0+21AF26D3----117B344092BD", 0, 1, 1, 0, 0, "", "21AF26D3----117B344092BD"},
    {"18446744073709551614.0.0", 0, 1, 18446744073709551614ULL, 0, 0, "", ""},
    {"v1.2.3", 1, 1, 1, 2, 3, "", ""},
    {"v1.2.3", 0, 0, 0, 0, 0, NULL, NULL},
    {"V1.2.3", 1, 0, 0, 0, 0, NULL, NULL},
    {"vv1.2.3", 1, 0, 0, 0, 0, NULL, NULL},
    {"", 0, 0, 0, 0, 0, NULL, NULL},
    {"1", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.3.4", 0, 0, 0, 0, 0, NULL, NULL},
    {"01.2.3", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.02.3", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.03", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.3-01", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.3-0a", 0, 1, 1, 2, 3, "0a", ""},
    {"1.2.3+01", 0, 1, 1, 2, 3, "", "01"},
    {"1.2.3-", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.3+", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.3-a..b", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.3-a.", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.3-a_b", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.3+a+b", 0, 0, 0, 0, 0, NULL, NULL},
    {" 1.2.3", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.3 ", 0, 0, 0, 0, 0, NULL, NULL},
    {"-1.2.3", 0, 0, 0, 0, 0, NULL, NULL},
    {"1.2.x", 0, 0, 0, 0, 0, NULL, NULL},
    {"18446744073709551615.0.0", 0, 0, 0, 0, 0, NULL, NULL},
    {"99999999999999999999.0.0", 0, 0, 0, 0, 0, NULL, NULL},
    {"latest", 1, 0, 0, 0, 0, NULL, NULL},
};

/* Each entry has strictly lower precedence than the next (semver.org item 11). */
static const char *const ordered[] = {
    "0.0.0-0",
    "0.0.0",
    "0.9.0",
    "1.0.0-0",
    "1.0.0-1",
    "1.0.0-2",
    "1.0.0-10",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "1.10.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
    "10.0.0",
    "18446744073709551614.0.0",
};

static const struct {
    const char *range, *version;
    int want; /* 1 match, 0 no, -1 range invalid */
} range_cases[] = {
    {"*", "1.2.3", 1},
    {"x", "0.0.0", 1},
    {"*", "1.2.3-rc.1", 0},
    {"1.2.3", "1.2.3", 1},
    {"=1.2.3", "1.2.3+build", 1},
    {"1.2.3", "1.2.4", 0},
    {"1.2", "1.2.9", 1},
    {"1.2", "1.3.0", 0},
    {"1.2.x", "1.2.0", 1},
    {"1", "1.99.0", 1},
    {"1.x", "2.0.0", 0},
    {"1.X.X", "1.5.5", 1},
    {">1.2.3", "1.2.4", 1},
    {">1.2.3", "1.2.3", 0},
    {">1.2", "1.2.9", 0},
    {">1.2", "1.3.0", 1},
    {">1", "2.0.0", 1},
    {">=1.2", "1.2.0", 1},
    {"<1.2.3", "1.2.2", 1},
    {"<1.2.3", "1.2.3", 0},
    {"<1.2", "1.1.99", 1},
    {"<1.2", "1.2.0", 0},
    {"<=1.2", "1.2.99", 1},
    {"<=1.2", "1.3.0", 0},
    {"<=1.2.3", "1.2.3", 1},
    {"^1.4", "1.4.0", 1},
    {"^1.4", "1.99.0", 1},
    {"^1.4", "2.0.0", 0},
    {"^1.4", "1.3.9", 0},
    {"^1.2.3", "1.2.3", 1},
    {"^1.2.3", "1.2.2", 0},
    {"^0.2.3", "0.2.9", 1},
    {"^0.2.3", "0.3.0", 0},
    {"^0.0.3", "0.0.3", 1},
    {"^0.0.3", "0.0.4", 0},
    {"^0.0", "0.0.9", 1},
    {"^0.0", "0.1.0", 0},
    {"^0", "0.9.9", 1},
    {"^0", "1.0.0", 0},
    {"^1", "1.0.0", 1},
    {"^v1.4", "1.5.0", 1},
    {"~1.4.2", "1.4.2", 1},
    {"~1.4.2", "1.4.9", 1},
    {"~1.4.2", "1.5.0", 0},
    {"~1.4", "1.4.0", 1},
    {"~1", "1.9.0", 1},
    {"~1", "2.0.0", 0},
    {">=1.2.0,<2.0.0", "1.2.0", 1},
    {">=1.2.0,<2.0.0", "2.0.0", 0},
    {">=1.2.0,<2.0.0", "1.1.9", 0},
    {"^1.4||^3", "3.1.0", 1},
    {"^1.4||^3", "2.0.0", 0},
    /* pre-releases: only when a comparator names one on the same MAJOR.MINOR.PATCH */
    {"^1.4", "1.5.0-rc.1", 0},
    {">=1.5.0-rc.1", "1.5.0-rc.2", 1},
    {">=1.5.0-rc.1", "1.5.0-rc.0", 0},
    {">=1.5.0-rc.1", "1.5.0", 1},
    {">=1.5.0-rc.1", "1.6.0-rc.1", 0},
    {">=1.5.0-rc.1,<2.0.0", "1.9.0", 1},
    {"^1.5.0-beta", "1.5.0-beta.2", 1},
    {"^1.5.0-beta", "2.0.0-rc.1", 0},
    {"~1.5.0-beta", "1.5.0-alpha", 0},
    {"1.5.0-rc.1", "1.5.0-rc.1", 1},
    {"<1.5.0-rc.1", "1.5.0-alpha", 1},
    {"^1.4||>=2.0.0-rc.1", "2.0.0-rc.2", 1},
    /* invalid ranges */
    {"", "1.0.0", -1},
    {"^", "1.0.0", -1},
    {">*", "1.0.0", -1},
    {"<*", "1.0.0", -1},
    {"1.x.3", "1.0.0", -1},
    {"1.2-rc", "1.0.0", -1},
    {"01.2", "1.0.0", -1},
    {">=1.2.0 <2.0.0", "1.0.0", -1},
    {">=1.2.0,", "1.0.0", -1},
    {"^1.4|^2", "1.0.0", -1},
    {"^1.4||", "1.0.0", -1},
    {"latest", "1.0.0", -1},
    {"1.2.3-", "1.0.0", -1},
    {">>1", "1.0.0", -1},
};

static const struct {
    const char *range, *formatted;
} format_cases[] = {
    {"^1.4", ">=1.4.0,<2.0.0"},
    {"~1.4.2", ">=1.4.2,<1.5.0"},
    {"^0.2.3", ">=0.2.3,<0.3.0"},
    {"^0.0.3", ">=0.0.3,<0.0.4"},
    {"1.2", ">=1.2.0,<1.3.0"},
    {"*", "*"},
    {">1.2", ">=1.3.0"},
    {"<=1", "<2.0.0"},
    {"^1.4||*", ">=1.4.0,<2.0.0||*"},
    {">=1.5.0-rc.1", ">=1.5.0-rc.1"},
    {"=v1.2.3", "=1.2.3"},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        struct semver v;
        char err[128] = "";
        int rc = semver_parse(parse_cases[i].text, parse_cases[i].allow_v, &v, err, sizeof(err));
        CHECK((rc == 0) == parse_cases[i].ok, "parse \"%s\": rc %d (%s)", parse_cases[i].text, rc,
              err);
        if (rc == 0 && parse_cases[i].ok) {
            CHECK(v.major == parse_cases[i].ma && v.minor == parse_cases[i].mi &&
                      v.patch == parse_cases[i].pa,
                  "parse \"%s\": numbers", parse_cases[i].text);
            CHECK_STR(v.pre, parse_cases[i].pre, "pre-release");
            CHECK_STR(v.build, parse_cases[i].build, "build");
        }
        if (rc != 0) CHECK(err[0] != '\0', "parse \"%s\": a reason", parse_cases[i].text);
    }
    {
        char longv[SEMVER_MAX_LEN + 8];
        struct semver v;
        memset(longv, 'a', sizeof(longv));
        memcpy(longv, "1.0.0-", 6);
        longv[sizeof(longv) - 1] = '\0';
        CHECK(semver_parse(longv, 0, &v, NULL, 0) < 0, "over-long version refused");
        CHECK(semver_parse(NULL, 0, &v, NULL, 0) < 0, "NULL refused");
    }
}

static void test_order(void)
{
    size_t n = sizeof(ordered) / sizeof(ordered[0]);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            struct semver a, b;
            int want = i < j ? -1 : i > j ? 1 : 0, got;
            if (semver_parse(ordered[i], 0, &a, NULL, 0) < 0 ||
                semver_parse(ordered[j], 0, &b, NULL, 0) < 0) {
                CHECK(0, "unparsable %s or %s", ordered[i], ordered[j]);
                continue;
            }
            got = semver_compare(&a, &b);
            got = got < 0 ? -1 : got > 0 ? 1 : 0;
            CHECK(got == want, "compare %s %s: %d, want %d", ordered[i], ordered[j], got, want);
        }
    }
    {
        struct semver a, b;
        semver_parse("1.0.0+a", 0, &a, NULL, 0);
        semver_parse("1.0.0+b", 0, &b, NULL, 0);
        CHECK(semver_compare(&a, &b) == 0, "build metadata is ignored by precedence");
    }
}

static void test_ranges(void)
{
    for (size_t i = 0; i < sizeof(range_cases) / sizeof(range_cases[0]); i++) {
        char err[160] = "", why[160] = "";
        size_t off = 999;
        semver_range *r = semver_range_new(range_cases[i].range, err, sizeof(err), &off);
        struct semver v;

        if (range_cases[i].want < 0) {
            CHECK(r == NULL, "range \"%s\" should be invalid", range_cases[i].range);
            CHECK(off <= strlen(range_cases[i].range), "range \"%s\": offset %zu in bounds",
                  range_cases[i].range, off);
            CHECK(strncmp(err, "offset ", 7) == 0, "range \"%s\": reason \"%s\"",
                  range_cases[i].range, err);
            semver_range_free(r);
            continue;
        }
        CHECK(r != NULL, "range \"%s\": %s", range_cases[i].range, err);
        if (!r) continue;
        if (semver_parse(range_cases[i].version, 0, &v, NULL, 0) < 0) {
            CHECK(0, "bad test version %s", range_cases[i].version);
        } else {
            int got = semver_range_test(r, &v, why, sizeof(why));
            CHECK(got == range_cases[i].want, "%s in \"%s\": got %d, want %d (%s)",
                  range_cases[i].version, range_cases[i].range, got, range_cases[i].want, why);
        }
        semver_range_free(r);
    }
    {
        size_t off = 0;
        semver_range *r = semver_range_new("^1.x.3", NULL, 0, &off);
        CHECK(r == NULL && off == 4, "error offset points at the bad part: %zu", off);
        r = semver_range_new(">=1.0.0,foo", NULL, 0, &off);
        CHECK(r == NULL && off == 8, "error offset of the second comparator: %zu", off);
    }
    semver_range_free(NULL);
}

static void test_format(void)
{
    for (size_t i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]); i++) {
        char buf[128];
        semver_range *r = semver_range_new(format_cases[i].range, NULL, 0, NULL);
        CHECK(r != NULL, "range %s", format_cases[i].range);
        if (!r) continue;
        CHECK(semver_range_format(r, buf, sizeof(buf)) == 0, "format fits");
        CHECK_STR(buf, format_cases[i].formatted, "formatted range");
        if (strlen(format_cases[i].formatted) >= 3)
            CHECK(semver_range_format(r, buf, 3) == -1, "truncation reported");
        semver_range_free(r);
    }
}

int main(void)
{
    test_parse();
    test_order();
    test_ranges();
    test_format();
    return TEST_DONE("test_semver");
}
