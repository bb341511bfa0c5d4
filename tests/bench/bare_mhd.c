/*
 * bare_mhd.c: the baseline of the ingestion benchmark. A libmicrohttpd server started with the
 * same flags as autodeployd's (internal polling thread, epoll, a thread pool of 2, connection
 * limit 512, 10 s idle timeout) that reads each request body into memory and answers
 * 202 {"accepted":1} without looking at it. Whatever autodeployd costs above this server is its
 * own work: routing, parsing, filtering, deduplicating, queueing, logging, metrics.
 *
 *   bare_mhd PORT_FILE [THREADS]     listens on 127.0.0.1, port chosen by the kernel, written
 *                                    to PORT_FILE; stops on SIGTERM or SIGINT
 *
 * Built by tests/bench/run.sh (not by the Makefile: it links nothing of the daemon).
 *
 * Built with -DLIBRARY_FLOOR (and linked with libcurl, cJSON and PCRE2 as well), it is the floor
 * of the memory benchmark: the same server, plus every library autodeployd links, loaded and
 * initialised as autodeployd initialises them (curl_global_init), and nothing else. Its RSS is
 * what the libraries cost before autodeployd does any work of its own.
 */
#define _POSIX_C_SOURCE 200809L
#include <microhttpd.h>
#ifdef LIBRARY_FLOOR
#include <cjson/cJSON.h>
#include <curl/curl.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if MHD_VERSION < 0x00097002
#define MHD_Result int
#endif

struct body {
    char *data;
    size_t len, cap;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version;
    struct body *b = *con_cls;
    if (!b) { /* headers: start a body, as autodeployd does for its webhook */
        b = calloc(1, sizeof *b);
        if (!b) return MHD_NO;
        *con_cls = b;
        return MHD_YES;
    }
    if (*upload_size) {
        if (b->len + *upload_size > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->len + *upload_size)
                cap *= 2;
            char *p = realloc(b->data, cap);
            if (!p) return MHD_NO;
            b->data = p;
            b->cap = cap;
        }
        memcpy(b->data + b->len, upload, *upload_size);
        b->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    static const char answer[] = "{\"accepted\":1}";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof answer - 1, (void *)answer,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(c, 202, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    struct body *b = *con_cls;
    if (!b) return;
    free(b->data);
    free(b);
    *con_cls = NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bare_mhd PORT_FILE [THREADS]\n");
        return 2;
    }
    unsigned int threads = argc > 2 ? (unsigned int)atoi(argv[2]) : 2;
#ifdef LIBRARY_FLOOR
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
    uint32_t unicode = 0;
    pcre2_config(PCRE2_CONFIG_UNICODE, &unicode);
    cJSON_Delete(cJSON_Parse("{}"));
#endif
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;

    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES) flags |= MHD_USE_EPOLL;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)512, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bare_mhd: cannot start the server\n");
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", info ? (unsigned)info->port : 0u) < 0 || fclose(f) != 0 ||
        rename(tmp, argv[1]) != 0) {
        fprintf(stderr, "bare_mhd: cannot write %s\n", argv[1]);
        MHD_stop_daemon(d);
        return 1;
    }
    while (!stop) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(d);
    return 0;
}
