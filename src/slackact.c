/*
 * slackact.c: verifying and parsing Slack interactivity requests (see slackact.h).
 */
#include "slackact.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEEN_MAX 4096

/* Decimal Unix seconds, digits only; -1 otherwise. */
static int64_t parse_ts(const char *ts)
{
    if (!ts || !*ts || strlen(ts) > 12 || strspn(ts, "0123456789") != strlen(ts)) return -1;
    return (int64_t)strtoll(ts, NULL, 10);
}

enum slackact_verdict slackact_verify(const char *secret, const char *ts, const char *sig,
                                      const char *body, size_t len, int64_t now_s)
{
    int64_t t = parse_ts(ts);
    if (!secret || !*secret || t < 0 || !sig || strlen(sig) != 67 || strncmp(sig, "v0=", 3) != 0)
        return SLACKACT_BAD_SIGNATURE;
    if (t > now_s + SLACKACT_WINDOW_S || t < now_s - SLACKACT_WINDOW_S) return SLACKACT_STALE;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    /* HMAC-SHA256 streamed over "v0:" ts ":" body, so the body is not copied (EVP_PKEY HMAC
     * works with OpenSSL 1.1 and 3). */
    EVP_MD_CTX *md = NULL;
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL, (const unsigned char *)secret,
                                                 strlen(secret));
    size_t outlen = sizeof mac;
    int ok = key && (md = EVP_MD_CTX_new()) != NULL &&
             EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestSignUpdate(md, "v0:", 3) == 1 &&
             EVP_DigestSignUpdate(md, ts, strlen(ts)) == 1 &&
             EVP_DigestSignUpdate(md, ":", 1) == 1 &&
             EVP_DigestSignUpdate(md, body ? body : "", len) == 1 &&
             EVP_DigestSignFinal(md, mac, &outlen) == 1;
    maclen = (unsigned int)outlen;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    if (!ok || maclen != 32) return SLACKACT_BAD_SIGNATURE;
    static const char hex[] = "0123456789abcdef";
    char want[64];
    for (unsigned i = 0; i < 32; i++) {
        want[2 * i] = hex[mac[i] >> 4];
        want[2 * i + 1] = hex[mac[i] & 15];
    }
    /* Slack sends lower-case hex; anything else simply does not match. */
    return CRYPTO_memcmp(want, sig + 3, 64) == 0 ? SLACKACT_OK : SLACKACT_BAD_SIGNATURE;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The form field name's value, URL-decoded, malloc'd; NULL when absent or malformed. */
static char *form_field(const char *body, size_t len, const char *name)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        if (end - i > nl && !memcmp(body + i, name, nl) && body[i + nl] == '=') {
            char *out = malloc(end - i);
            size_t o = 0;
            for (size_t k = i + nl + 1; out && k < end; k++) {
                char c = body[k];
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    int h = k + 2 < end ? hexval(body[k + 1]) : -1;
                    int l = h >= 0 ? hexval(body[k + 2]) : -1;
                    if (l < 0 || (h == 0 && l == 0)) { /* malformed, or a NUL */
                        free(out);
                        return NULL;
                    }
                    c = (char)(h * 16 + l);
                    k += 2;
                }
                out[o++] = c;
            }
            if (out) out[o] = '\0';
            return out;
        }
        i = end + 1;
    }
    return NULL;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

int slackact_parse(const char *body, size_t len, struct slackact *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof out[0]);
    int rc = -1;
    char *payload = form_field(body, len, "payload");
    cJSON *p = payload ? cJSON_Parse(payload) : NULL;
    const char *type = jstr(p, "type");
    const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p, "actions"), 0);
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(p, "user");
    const char *act = jstr(a0, "action_id"), *val = jstr(a0, "value");
    const char *who = jstr(user, "name");
    if (!who) who = jstr(user, "username");
    if (!who) who = jstr(user, "id");
    if (!payload || !p) {
        snprintf(err, errlen, "no payload form field holding JSON");
    } else if (!type || strcmp(type, "block_actions") != 0) {
        snprintf(err, errlen, "not a block_actions interaction");
    } else if (!act || (strcmp(act, "approve") != 0 && strcmp(act, "reject") != 0)) {
        snprintf(err, errlen, "the action is neither approve nor reject");
    } else if (!val || strlen(val) >= sizeof out->value) {
        snprintf(err, errlen, "the button carries no approval id");
    } else if (!who) {
        snprintf(err, errlen, "the interaction names no user");
    } else {
        snprintf(out->action_id, sizeof out->action_id, "%s", act);
        snprintf(out->value, sizeof out->value, "%s", val);
        /* A longer name is cut on a character boundary: it is only ever recorded. */
        size_t n = strlen(who);
        if (n >= sizeof out->user) {
            n = sizeof out->user - 1;
            while (n && ((unsigned char)who[n] & 0xC0) == 0x80)
                n--;
        }
        memcpy(out->user, who, n);
        out->user[n] = '\0';
        rc = 0;
    }
    cJSON_Delete(p);
    free(payload);
    return rc;
}

/* ---------------------------------------------------------------- replays */

struct slackact_seen {
    pthread_mutex_t mu;
    struct {
        char sig[68];
        int64_t ts;
    } v[SEEN_MAX];
    size_t n;
};

struct slackact_seen *slackact_seen_new(void)
{
    struct slackact_seen *s = calloc(1, sizeof *s);
    if (s) pthread_mutex_init(&s->mu, NULL);
    return s;
}

void slackact_seen_free(struct slackact_seen *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int slackact_seen_check(struct slackact_seen *s, const char *sig, int64_t ts_s, int64_t now_s)
{
    int replay = 0;
    pthread_mutex_lock(&s->mu);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].ts < now_s - SLACKACT_WINDOW_S) continue; /* outside the window: forgotten */
        if (!strcmp(s->v[i].sig, sig)) replay = 1;
        s->v[k++] = s->v[i];
    }
    s->n = k;
    if (!replay) {
        if (s->n == SEEN_MAX || strlen(sig) >= sizeof s->v[0].sig) {
            replay = 1;
        } else {
            snprintf(s->v[s->n].sig, sizeof s->v[0].sig, "%s", sig);
            s->v[s->n].ts = ts_s;
            s->n++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return replay;
}
