/*
 * signature.c: webhook authentication checks (see signature.h). Only libcrypto computes
 * anything: HMAC() for the MACs, EVP_Digest for the hashes, CRYPTO_memcmp for comparisons.
 */
#include "signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <strings.h>

int sig_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char ha[EVP_MAX_MD_SIZE], hb[EVP_MAX_MD_SIZE];
    unsigned int la = 0, lb = 0;
    if (!a || !b) return 0;
    if (!EVP_Digest(a, alen, ha, &la, EVP_sha256(), NULL) ||
        !EVP_Digest(b, blen, hb, &lb, EVP_sha256(), NULL) || la != lb)
        return 0;
    /* Equal hashes of different lengths cannot happen short of a SHA-256 collision. */
    return CRYPTO_memcmp(ha, hb, la) == 0 && alen == blen;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sig_hmac_hex_ok(const char *md, const char *key, const char *body, size_t len, const char *hex,
                    size_t hexlen)
{
    const EVP_MD *m = !md                     ? NULL
                      : !strcmp(md, "sha256") ? EVP_sha256()
                      : !strcmp(md, "sha1")   ? EVP_sha1()
                                              : NULL;
    unsigned char mac[EVP_MAX_MD_SIZE], sent[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!m || !key || !hex) return 0;
    if (!HMAC(m, key, (int)strlen(key), (const unsigned char *)(body ? body : ""), len, mac,
              &maclen))
        return 0;
    if (hexlen != 2 * (size_t)maclen) return 0;
    int bad = 0;
    for (unsigned int i = 0; i < maclen; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        bad |= hi < 0 || lo < 0;
        sent[i] = (unsigned char)(((hi & 15) << 4) | (lo & 15));
    }
    return !bad && CRYPTO_memcmp(mac, sent, maclen) == 0;
}

/* The header without surrounding blanks. */
static const char *trimmed(const char *h, size_t *n)
{
    while (*h == ' ' || *h == '\t')
        h++;
    size_t l = strlen(h);
    while (l && (h[l - 1] == ' ' || h[l - 1] == '\t'))
        l--;
    *n = l;
    return h;
}

int sig_github_ok(const char *secret, const char *body, size_t len, const char *header)
{
    size_t n;
    if (!secret || !header) return 0;
    const char *h = trimmed(header, &n);
    if (n < 7 || strncmp(h, "sha256=", 7) != 0) return 0;
    return sig_hmac_hex_ok("sha256", secret, body, len, h + 7, n - 7);
}

int sig_nexus_ok(const char *secret, const char *body, size_t len, const char *header)
{
    size_t n;
    if (!secret || !header) return 0;
    const char *h = trimmed(header, &n);
    return sig_hmac_hex_ok("sha1", secret, body, len, h, n);
}

int sig_jfrog_ok(const char *secret, const char *body, size_t len, const char *header)
{
    size_t n;
    if (!secret || !header) return 0;
    const char *h = trimmed(header, &n);
    /* Both checks always run, so the time taken does not tell which form was expected. */
    int plain = sig_equal(h, n, secret, strlen(secret));
    int signed_ok = sig_hmac_hex_ok("sha256", secret, body, len, h, n);
    return plain | signed_ok;
}

int sig_bearer_ok(const char *header, const char *token, int allow_bare)
{
    size_t n;
    if (!header || !token) return 0;
    const char *h = trimmed(header, &n);
    if (n >= 7 && strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
        n -= 7;
        while (n && (*h == ' ' || *h == '\t')) {
            h++;
            n--;
        }
    } else if (!allow_bare) {
        return 0;
    }
    return sig_equal(h, n, token, strlen(token));
}
