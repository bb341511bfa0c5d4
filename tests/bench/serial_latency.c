/*
 * serial_latency.c: acknowledgement latency under serial delivery, as a registry delivers its
 * notifications: one request in flight at a time, on one keep-alive connection.
 *
 *   serial_latency URL BODY_FILE N [WARMUP]
 *
 * Sends WARMUP (default 200) then N POSTs of BODY_FILE to URL, each made distinct (its own event
 * id and tag, so every one is a new push and nothing is answered "duplicate"), and times each
 * round trip from just before curl_easy_perform() to its return (request written, answer read,
 * CLOCK_MONOTONIC). Prints one line:
 *   SERIAL n=N p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. non202=.. failed=.. connects=..
 * Built by tests/bench/run.sh with libcurl; links nothing of the daemon.
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char ID_FIELD[] = "\"id\": \"73837aee-790b-40e2-85a4-760e415653f3\"";
static const char TAG_FIELD[] = "\"tag\": \"master-abc123\"";

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(1 << 20);
    *len = b ? fread(b, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (b) b[*len] = '\0';
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: serial_latency URL BODY_FILE N [WARMUP]\n");
        return 2;
    }
    const char *url = argv[1];
    long n = atol(argv[3]), warm = argc > 4 ? atol(argv[4]) : 200;
    size_t len;
    char *tmpl = read_file(argv[2], &len);
    char *idp = tmpl ? strstr(tmpl, ID_FIELD) : NULL;
    char *tagp = tmpl ? strstr(tmpl, TAG_FIELD) : NULL;
    if (n <= 0 || !idp || !tagp || tagp < idp) {
        fprintf(stderr, "serial_latency: %s has no event id then tag to vary\n", argv[2]);
        return 2;
    }
    /* body = tmpl[0, idp) + id + tmpl[after id, tagp) + tag + tmpl[after tag, end) */
    size_t a = (size_t)(idp - tmpl), b = (size_t)(tagp - tmpl);
    size_t a2 = a + strlen(ID_FIELD), b2 = b + strlen(TAG_FIELD);
    char *body = malloc(len + 256);
    long *t = calloc((size_t)n, sizeof *t);
    if (!body || !t) return 1;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, "Content-Type: application/vnd.docker.distribution.events.v1+json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);

    long non202 = 0, failed = 0, connects = 0;
    long long total_start = now_ns();
    for (long i = -warm; i < n; i++) {
        size_t o = a;
        memcpy(body, tmpl, a);
        o += (size_t)sprintf(body + o, "\"id\": \"serial-%lld-%ld\"", total_start, i + warm);
        memcpy(body + o, tmpl + a2, b - a2);
        o += b - a2;
        o += (size_t)sprintf(body + o, "\"tag\": \"serial-%lld-%ld\"", total_start, i + warm);
        memcpy(body + o, tmpl + b2, len - b2);
        o += len - b2;
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)o);

        long t0 = now_ns();
        CURLcode rc = curl_easy_perform(h);
        long dt = now_ns() - t0;
        long status = 0, nconn = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &nconn);
        if (i < 0) continue;
        connects += nconn;
        if (rc != CURLE_OK) failed++;
        else if (status != 202) non202++;
        t[i] = dt;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_long);
#define PCT(p) (t[(long)((double)(n - 1) * (p))] / 1000.0)
    printf("SERIAL n=%ld p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f non202=%ld "
           "failed=%ld connects=%ld\n",
           n, PCT(0.50), PCT(0.90), PCT(0.99), PCT(0.999), t[n - 1] / 1000.0, non202, failed,
           connects);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    free(body);
    free(t);
    free(tmpl);
    return 0;
}
