/*
 * httpc.h: the HTTP client (the only module that includes libcurl).
 *
 * Each thread keeps its own easy handle, so connections are reused within a thread and no
 * handle is ever shared between threads. Every response body is read into a capped buffer.
 * On a transport failure, status is 0 and err holds curl's error buffer, which callers log.
 */
#ifndef AUTODEPLOY_HTTPC_H
#define AUTODEPLOY_HTTPC_H

#include "buf.h"

#include <stdatomic.h>
#include <stddef.h>

/* Once in main, before any thread uses the client; and its pair at the very end. */
int httpc_global_init(void);
void httpc_global_cleanup(void);

#define HTTPC_FOLLOW_KEEP_AUTH_HOME 2

struct httpc_req {
    const char *method; /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *url;
    const char *body; /* NULL for none */
    size_t body_len;
    const char *content_type; /* for the body; NULL: application/json when body is set */
    const char *accept;       /* NULL: application/json */
    const char *userpwd;      /* Basic auth "user:password", or NULL */
    const char *auth_header;  /* a whole header, e.g. "Authorization: token=..." */
    const char *ca_file;      /* PEM bundle to verify https peers, NULL for the system's */
    long connect_timeout_ms;  /* 0: 5000 */
    long timeout_ms;          /* whole request; 0: 30000; ignored by httpc_stream */
    int follow_redirects;     /* follow 3xx, keeping method, body and credentials; with
                                 HTTPC_FOLLOW_KEEP_AUTH_HOME the credentials (Basic or an
                                 Authorization header) go to the first host only */
    size_t max_response;      /* cap on the body kept; 0: 4 MiB */
    /* Optional: polled while the request runs (on each chunk, and about once a second while
     * the peer is silent); nonzero abandons the request (httpc_do then fails with "abandoned").
     * Lets a shutdown end a request that would otherwise run to its time-out. */
    int (*abandon)(void *ctx);
    void *abandon_ctx;
    /* Optional (httpc_do only): called each time more of a 2xx answer's body has arrived, with
     * all of it so far (body, len; the buffer may move between calls), so a large answer can be
     * read while it arrives; and with (NULL, 0) when httpc_do starts, before any answer, so a
     * caller trying several URLs forgets the previous attempt's (libcurl hands over no body
     * of a redirect it follows). The body is kept in resp as without it. Called on the requesting
     * thread. */
    void (*on_body)(const char *body, size_t len, void *ctx);
    void *on_body_ctx;
};

struct httpc_resp {
    long status;             /* 0 when no HTTP answer was received */
    struct buf body;         /* the body, NUL-terminated; free with httpc_resp_free */
    char err[256];           /* transport error (curl's buffer), "" when status != 0 */
    char deployment_id[128]; /* Marathon-Deployment-Id header, "" when absent */
    char retry_after[32];    /* Retry-After header, "" when absent */
    char content_type[128];
    /* For registries (regauth.h parses them); "" when absent or longer than the field, which
     * sets header_cut instead of keeping a shortened value. */
    char www_authenticate[2048];
    char docker_content_digest[128];
    char link[2048];
    char ratelimit_remaining[64];
    int header_cut;  /* a header above did not fit its field */
    int body_cut;    /* the body went past max_response: httpc_do fails with "answer too large" */
    int tls_refused; /* the server spoke TLS and its certificate (or ours) was refused: no retry
                        or plain-http fallback can help */
};

/* Performs one request (method "HEAD" reads no body); returns 0 when an HTTP answer (any
 * status) arrived whole, -1 otherwise (err says why; an answer whose body went past
 * max_response keeps its status and fails with "answer too large (over N bytes)"). resp is
 * initialised by the call; free it with httpc_resp_free in both cases. */
int httpc_do(const struct httpc_req *req, struct httpc_resp *resp);

/* Streams the body of a GET (Server-Sent Events): on_data is called for each chunk as it
 * arrives, until the peer closes, an error, or another thread sets *stop to nonzero (checked
 * on each chunk and about once a second while the peer is silent). Returns 0 when the stream
 * ended normally or was stopped, -1 on error. For a status other than 2xx the body is kept in
 * resp->body instead and on_data is not called. */
int httpc_stream(const struct httpc_req *req, void (*on_data)(const char *p, size_t n, void *ctx),
                 void *ctx, const atomic_int *stop, struct httpc_resp *resp);

void httpc_resp_free(struct httpc_resp *resp);

/* Percent-encodes s for a URL query value (RFC 3986 unreserved characters kept). */
int httpc_url_escape(const char *s, struct buf *out);

#endif
