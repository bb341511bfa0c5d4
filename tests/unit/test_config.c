/*
 * test_config.c: layering (flags > env > file > defaults), errors that name the setting,
 * secrets from files and never echoed, value parsers; and the JSON log line format.
 */
#include "config.h"
#include "log.h"
#include "testlib.h"

#include <cjson/cJSON.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/autodeploy-test-config-XXXXXX";

static const char *write_tmp(const char *name, const char *content)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(content, f);
        fclose(f);
    }
    return path;
}

static int load(struct config *c, char **argv, char **envp, char *err, size_t errlen)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    enum config_action a;
    return config_load(c, argc, argv, envp, &a, err, errlen);
}

static void test_defaults(void)
{
    struct config c;
    char err[256];
    char *argv[] = {"autodeployd", NULL};
    CHECK(load(&c, argv, NULL, err, sizeof err) == 0, "defaults load: %s", err);
    CHECK_STR(c.listen, "127.0.0.1:8080", "listen default");
    CHECK(c.max_body_bytes == 1048576, "max body default 1 MiB");
    CHECK(c.queue_size == 1000, "queue default");
    CHECK(c.webhook_token == NULL, "no token by default");
    CHECK_STR(c.log_format, "json", "json logs by default");
    CHECK(c.http_timeout_ms == 10000, "http timeout 10 s");
    config_free(&c);
}

static void test_precedence(void)
{
    struct config c;
    char err[256];
    char file[256];
    snprintf(file, sizeof file, "%s",
             write_tmp("cfg.json", "{\"listen\":\"127.0.0.1:1111\",\"queue-size\":11,"
                                   "\"log-level\":\"debug\",\"max-body-bytes\":\"2MiB\"}"));
    char cfgarg[300];
    snprintf(cfgarg, sizeof cfgarg, "--config=%s", file);

    char *argv1[] = {"autodeployd", cfgarg, NULL};
    CHECK(load(&c, argv1, NULL, err, sizeof err) == 0, "file loads: %s", err);
    CHECK_STR(c.listen, "127.0.0.1:1111", "file beats default");
    CHECK(c.queue_size == 11, "file number");
    CHECK(c.max_body_bytes == 2 * 1048576, "file size string");
    config_free(&c);

    char *env[] = {"AUTODEPLOY_LISTEN=127.0.0.1:2222", "AUTODEPLOY_QUEUE_SIZE=22", "PATH=/bin",
                   NULL};
    CHECK(load(&c, argv1, env, err, sizeof err) == 0, "env loads: %s", err);
    CHECK_STR(c.listen, "127.0.0.1:2222", "env beats file");
    CHECK(c.queue_size == 22, "env number beats file");
    CHECK_STR(c.log_level, "debug", "file value kept where env is silent");
    config_free(&c);

    char *argv2[] = {"autodeployd", "--listen", "127.0.0.1:3333", cfgarg, NULL};
    CHECK(load(&c, argv2, env, err, sizeof err) == 0, "flags load: %s", err);
    CHECK_STR(c.listen, "127.0.0.1:3333", "flag beats env (flag before --config)");
    CHECK(c.queue_size == 22, "env kept where flags are silent");
    config_free(&c);

    char *env2[] = {"AUTODEPLOY_CONFIG=/nonexistent/x.json", NULL};
    char *argv3[] = {"autodeployd", NULL};
    CHECK(load(&c, argv3, env2, err, sizeof err) < 0 && strstr(err, "--config"),
          "missing config file named: %s", err);
    config_free(&c);
}

static void test_secrets(void)
{
    struct config c;
    char err[256];
    char path[256];
    snprintf(path, sizeof path, "%s", write_tmp("token", "t0ps3cret\n"));
    char *env[] = {NULL, NULL};
    char envs[300];
    snprintf(envs, sizeof envs, "AUTODEPLOY_WEBHOOK_TOKEN_FILE=%s", path);
    env[0] = envs;
    char *argv[] = {"autodeployd", NULL};
    CHECK(load(&c, argv, env, err, sizeof err) == 0, "token file loads: %s", err);
    CHECK_STR(c.webhook_token, "t0ps3cret", "token read from file, newline stripped");
    struct buf b;
    buf_init(&b, 1 << 16);
    config_json_redacted(&c, &b);
    CHECK(strstr(b.data, "t0ps3cret") == NULL, "effective config never shows the secret");
    CHECK(strstr(b.data, "\"webhook-token\":\"(set)\"") != NULL, "but says it is set: %s", b.data);
    buf_free(&b);
    config_free(&c);

    char *argv2[] = {"autodeployd", "--admin-token-file", "/nonexistent/tok", NULL};
    CHECK(load(&c, argv2, NULL, err, sizeof err) < 0 && strstr(err, "--admin-token-file"),
          "unreadable secret file named: %s", err);
    config_free(&c);
    /* A path secret read from a file obeys the flag's own rules (16+ URL-safe characters). */
    char weak[256], good[256];
    snprintf(weak, sizeof weak, "%s", write_tmp("weak", "abc\n"));
    snprintf(good, sizeof good, "%s", write_tmp("good", "0123456789abcdef-._~\n"));
    char *argv3[] = {"autodeployd", "--dockerhub-webhook-secret-file", weak, NULL};
    CHECK(load(&c, argv3, NULL, err, sizeof err) < 0 && strstr(err, "16 to 256"),
          "a short path secret from a file is refused: %s", err);
    CHECK(strstr(err, "abc") == NULL, "and not echoed: %s", err);
    config_free(&c);
    char *argv4[] = {"autodeployd", "--quay-webhook-secret-file", good, NULL};
    CHECK(load(&c, argv4, NULL, err, sizeof err) == 0, "a good one loads: %s", err);
    config_free(&c);
}

struct bad {
    const char *flag, *value, *must_name;
};

static void test_errors(void)
{
    const struct bad bad[] = {
        {"--max-body-bytes", "abc", "--max-body-bytes"},
        {"--max-body-bytes", "10", "--max-body-bytes"},
        {"--queue-size", "0", "--queue-size"},
        {"--queue-size", "12x", "--queue-size"},
        {"--listen", "8080", "--listen"},
        {"--listen", "::1:80", "--listen"},
        {"--listen", "host:99999", "--listen"},
        {"--log-level", "loud", "--log-level"},
        {"--log-format", "xml", "--log-format"},
        {"--http-timeout", "10 parsecs", "--http-timeout"},
        {"--nonsense", "1", "--nonsense"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct config c;
        char err[256] = "";
        char *argv[] = {"autodeployd", (char *)bad[i].flag, (char *)bad[i].value, NULL};
        int rc = load(&c, argv, NULL, err, sizeof err);
        CHECK(rc < 0 && strstr(err, bad[i].must_name), "%s %s refused naming it: %s", bad[i].flag,
              bad[i].value, err);
        CHECK(strchr(err, '\n') == NULL, "one-line message");
        config_free(&c);
    }
    struct config c;
    char err[256] = "";
    char *argv[] = {"autodeployd", "--webhook-token", NULL};
    CHECK(load(&c, argv, NULL, err, sizeof err) < 0 && strstr(err, "needs a value"),
          "flag without value: %s", err);
    config_free(&c);

    char *envb[] = {"AUTODEPLOY_QUEUE_SIZE=lots", NULL};
    char *argv2[] = {"autodeployd", NULL};
    CHECK(load(&c, argv2, envb, err, sizeof err) < 0 && strstr(err, "AUTODEPLOY_QUEUE_SIZE"),
          "env error names the variable: %s", err);
    config_free(&c);

    char file[256], arg[300];
    snprintf(file, sizeof file, "%s",
             write_tmp("bad.json", "{\"listen\":\"127.0.0.1:1\",\"colour\":1}"));
    snprintf(arg, sizeof arg, "--config=%s", file);
    char *argv3[] = {"autodeployd", arg, NULL};
    CHECK(load(&c, argv3, NULL, err, sizeof err) < 0 && strstr(err, "colour"),
          "unknown file key named: %s", err);
    config_free(&c);
    snprintf(file, sizeof file, "%s", write_tmp("bad2.json", "{\"listen\":"));
    snprintf(arg, sizeof arg, "--config=%s", file);
    CHECK(load(&c, argv3, NULL, err, sizeof err) < 0 && strstr(err, "not a JSON object"),
          "broken file: %s", err);
    config_free(&c);

    char *argv4[] = {"autodeployd", "--webhook-token=", NULL};
    CHECK(load(&c, argv4, NULL, err, sizeof err) < 0 && strstr(err, "--webhook-token") &&
              strstr(err, "empty"),
          "empty token refused: %s", err);
    config_free(&c);
}

static void test_bools_and_lists(void)
{
    struct config c;
    char err[256] = "";
    char file[256], arg[300];
    snprintf(file, sizeof file, "%s",
             write_tmp("lists.json", "{\"app-prefix\":[\"/a/\",\"/b/\"],\"dry-run\":true,"
                                     "\"registry-alias\":\"x.io=y.io, z.io=y.io\"}"));
    snprintf(arg, sizeof arg, "--config=%s", file);
    char *argv1[] = {"autodeployd", arg, NULL};
    CHECK(load(&c, argv1, NULL, err, sizeof err) == 0, "lists from a file: %s", err);
    CHECK(c.app_prefix.n == 2 && !strcmp(c.app_prefix.v[1], "/b/"), "JSON array list");
    CHECK(c.registry_alias.n == 2 && !strcmp(c.registry_alias.v[1], "z.io=y.io"),
          "comma-separated list, blanks trimmed");
    CHECK(c.dry_run == 1, "JSON boolean");
    config_free(&c);

    char *env[] = {"AUTODEPLOY_APP_PREFIX=/e/", "AUTODEPLOY_DRY_RUN=false", NULL};
    CHECK(load(&c, argv1, env, err, sizeof err) == 0, "env over file: %s", err);
    CHECK(c.app_prefix.n == 1 && !strcmp(c.app_prefix.v[0], "/e/"), "env list replaces file list");
    CHECK(c.dry_run == 0, "env bool beats file");
    config_free(&c);

    char *argv2[] = {"autodeployd", arg, "--app-prefix", "/f1/", "--dry-run", "--app-prefix=/f2/",
                     "--force=no",  NULL};
    CHECK(load(&c, argv2, env, err, sizeof err) == 0, "flags: %s", err);
    CHECK(c.app_prefix.n == 2 && !strcmp(c.app_prefix.v[0], "/f1/") &&
              !strcmp(c.app_prefix.v[1], "/f2/"),
          "repeated flag appends, replacing lower layers");
    CHECK(c.dry_run == 1 && c.force == 0, "bare bool flag is true, =no is false");
    struct buf b;
    buf_init(&b, 1 << 16);
    config_json_redacted(&c, &b);
    CHECK(strstr(b.data, "\"app-prefix\":[\"/f1/\",\"/f2/\"]") &&
              strstr(b.data, "\"dry-run\":true"),
          "effective config shows lists and bools: %s", b.data);
    buf_free(&b);

    struct config boot;
    char *argv3[] = {"autodeployd", "--queue-size", "5", "--dry-run", NULL};
    CHECK(load(&boot, argv3, NULL, err, sizeof err) == 0, "second config");
    struct buf names;
    buf_init(&names, 4096);
    int n = config_restart_needed(&boot, &c, &names);
    CHECK(n == 2 && !strcmp(names.data, "--queue-size, --registry-alias"),
          "only restart-only settings are named (%d): %s", n, names.data ? names.data : "");
    buf_free(&names);
    config_free(&boot);
    config_free(&c);

    const char *bad[][2] = {{"--dry-run=maybe", "--dry-run"},
                            {"--app-prefix=staging", "--app-prefix"},
                            {"--registry-alias=nohost", "--registry-alias"},
                            {"--marathon-url=ftp://x", "--marathon-url"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv4[] = {"autodeployd", (char *)bad[i][0], NULL};
        CHECK(load(&c, argv4, NULL, err, sizeof err) < 0 && strstr(err, bad[i][1]),
              "%s refused: %s", bad[i][0], err);
        config_free(&c);
    }
}

static void test_parsers(void)
{
    size_t n;
    CHECK(config_parse_size("1048576", &n) == 0 && n == 1048576, "bytes");
    CHECK(config_parse_size("512KiB", &n) == 0 && n == 512 * 1024, "KiB");
    CHECK(config_parse_size("1MiB", &n) == 0 && n == 1048576, "MiB");
    CHECK(config_parse_size("-1", &n) < 0, "negative size");
    CHECK(config_parse_size("1TiB", &n) < 0, "unknown unit");
    long ms;
    CHECK(config_parse_duration_ms("1500ms", &ms) == 0 && ms == 1500, "ms");
    CHECK(config_parse_duration_ms("10", &ms) == 0 && ms == 10000, "bare seconds");
    CHECK(config_parse_duration_ms("2.5s", &ms) == 0 && ms == 2500, "fraction");
    CHECK(config_parse_duration_ms("10m", &ms) == 0 && ms == 600000, "minutes");
    CHECK(config_parse_duration_ms("s", &ms) < 0, "no number");
    char host[64];
    int port;
    CHECK(config_split_hostport("127.0.0.1:8080", host, sizeof host, &port) == 0 &&
              !strcmp(host, "127.0.0.1") && port == 8080,
          "v4");
    CHECK(config_split_hostport("[::1]:0", host, sizeof host, &port) == 0 && !strcmp(host, "::1") &&
              port == 0,
          "v6");
    CHECK(config_split_hostport("localhost", host, sizeof host, &port) < 0, "no port");
}

static void test_help(void)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    config_usage(&b);
    const char *must[] = {"--listen",     "--webhook-token",   "--max-body-bytes",
                          "--queue-size", "--log-level",       "--log-format",
                          "--config",     "AUTODEPLOY_LISTEN", "AUTODEPLOY_WEBHOOK_TOKEN_FILE",
                          "--version"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        CHECK(strstr(b.data, must[i]) != NULL, "--help mentions %s", must[i]);
    buf_free(&b);
}

static void test_log_lines(void)
{
    FILE *f = tmpfile();
    log_set_stream(f);
    log_setup(LOG_INFO, LOG_FORMAT_JSON);
    log_debug("hidden", "k", "v", NULL);
    log_info("quote \" and\nnewline", "repository", "a/b", "tag", "x\"y", "empty", "", NULL);
    log_setup(LOG_DEBUG, LOG_FORMAT_TEXT);
    log_debug("text line", "tag", "has space", NULL);
    log_set_stream(NULL);
    rewind(f);
    char line[1024];
    CHECK(fgets(line, sizeof line, f) != NULL, "one JSON line written");
    cJSON *j = cJSON_Parse(line);
    CHECK(j != NULL, "log line is JSON: %s", line);
    if (j) {
        CHECK_STR(cJSON_GetObjectItem(j, "level")->valuestring, "info", "level");
        CHECK_STR(cJSON_GetObjectItem(j, "msg")->valuestring, "quote \" and\nnewline", "msg");
        CHECK_STR(cJSON_GetObjectItem(j, "tag")->valuestring, "x\"y", "context field");
        CHECK(cJSON_GetObjectItem(j, "empty") == NULL, "empty fields left out");
        CHECK(cJSON_GetObjectItem(j, "ts") != NULL, "timestamp");
        cJSON_Delete(j);
    }
    CHECK(fgets(line, sizeof line, f) != NULL && strstr(line, "debug text line tag=\"has space\""),
          "text line: %s", line);
    CHECK(fgets(line, sizeof line, f) == NULL, "debug record below threshold was skipped");
    fclose(f);
    CHECK(log_level_parse("WARNING") == LOG_WARN && log_level_parse("x") < 0, "level parse");
}

int main(void)
{
    if (!mkdtemp(tmpdir)) return 1;
    test_defaults();
    test_precedence();
    test_secrets();
    test_errors();
    test_bools_and_lists();
    test_parsers();
    test_help();
    test_log_lines();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_DONE("test_config");
}
