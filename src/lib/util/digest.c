/* SHA-256 through OpenSSL's EVP interface, and a verifying reader that hashes while streaming. */
#include "util/digest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct es_sha256 {
    EVP_MD_CTX *ctx;
};

es_sha256 *es_sha256_new(void)
{
    es_sha256 *h = es_xcalloc(1, sizeof *h);
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "edgeslim: OpenSSL cannot initialise SHA-256\n");
        abort();
    }
    return h;
}

void es_sha256_update(es_sha256 *h, const void *data, size_t n)
{
    if (n) EVP_DigestUpdate(h->ctx, data, n);
}

void es_sha256_final(es_sha256 *h, es_digest *out)
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(h->ctx, md, &len);
    memcpy(out->s, "sha256:", 7);
    for (int i = 0; i < 32; i++) snprintf(out->s + 7 + 2 * i, 3, "%02x", md[i]);
    es_sha256_free(h);
}

void es_sha256_free(es_sha256 *h)
{
    if (!h) return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void es_digest_buf(const void *data, size_t n, es_digest *out)
{
    es_sha256 *h = es_sha256_new();
    es_sha256_update(h, data, n);
    es_sha256_final(h, out);
}

int es_digest_valid(const char *s)
{
    if (!s || strncmp(s, "sha256:", 7) != 0 || strlen(s) != ES_DIGEST_LEN) return 0;
    for (const char *p = s + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

const char *es_digest_hex(const char *s)
{
    const char *c = strchr(s, ':');
    return c ? c + 1 : s;
}

typedef struct {
    es_reader *inner;
    es_sha256 *h;
    int64_t n, expect_size;
    char *expect_digest, *name;
    es_digest_result *got;
} verify_ctx;

static ssize_t verify_read(es_reader *r, void *buf, size_t n, es_error *err)
{
    verify_ctx *c = r->ctx;
    if (!c->h) return 0; /* already finished */
    ssize_t k = es_reader_read(c->inner, buf, n, err);
    if (k < 0) return -1;
    if (k > 0) {
        c->n += k;
        if (c->expect_size >= 0 && c->n > c->expect_size)
            return es_err(err, ES_EDIGEST, "%s: size mismatch: more than the declared %lld bytes",
                          c->name, (long long)c->expect_size);
        es_sha256_update(c->h, buf, (size_t)k);
        return k;
    }
    es_digest d;
    es_sha256_final(c->h, &d);
    c->h = NULL;
    if (c->got) {
        c->got->digest = d;
        c->got->size = c->n;
        c->got->done = 1;
    }
    if (c->expect_size >= 0 && c->n != c->expect_size)
        return es_err(err, ES_EDIGEST, "%s: size mismatch: declared %lld bytes, found %lld", c->name,
                      (long long)c->expect_size, (long long)c->n);
    if (c->expect_digest && strcmp(c->expect_digest, d.s) != 0)
        return es_err(err, ES_EDIGEST, "%s: digest mismatch: declared %s, content is %s", c->name,
                      c->expect_digest, d.s);
    return 0;
}

static void verify_close(es_reader *r)
{
    verify_ctx *c = r->ctx;
    es_reader_free(c->inner);
    es_sha256_free(c->h);
    free(c->expect_digest);
    free(c->name);
    free(c);
}

/* A verify reader over another verify reader would hash the same bytes twice (the image hands
 * out a verified blob, the layer stream verifies what it reads): fold the new expectations into
 * the inner one when they do not conflict, and hand the inner reader back. */
static int verify_merge(es_reader *inner, const char *expect_digest, int64_t expect_size, es_digest_result *got)
{
    if (!inner || inner->read != verify_read) return 0;
    verify_ctx *c = inner->ctx;
    if (!c->h || c->n) return 0; /* already reading: the merged parts would miss bytes */
    if (expect_digest && c->expect_digest && strcmp(expect_digest, c->expect_digest) != 0) return 0;
    if (expect_size >= 0 && c->expect_size >= 0 && expect_size != c->expect_size) return 0;
    if (got && c->got) return 0;
    if (expect_digest && !c->expect_digest) c->expect_digest = es_xstrdup(expect_digest);
    if (expect_size >= 0) c->expect_size = expect_size;
    if (got) c->got = got;
    return 1;
}

es_reader *es_reader_verify(es_reader *inner, const char *expect_digest, int64_t expect_size,
                            const char *name, es_digest_result *got)
{
    if (verify_merge(inner, expect_digest, expect_size, got)) return inner;
    verify_ctx *c = es_xcalloc(1, sizeof *c);
    c->inner = inner;
    c->h = es_sha256_new();
    c->expect_size = expect_size;
    c->expect_digest = expect_digest ? es_xstrdup(expect_digest) : NULL;
    c->name = es_xstrdup(name ? name : "blob");
    c->got = got;
    es_reader *r = es_xcalloc(1, sizeof *r);
    r->read = verify_read;
    r->close = verify_close;
    r->ctx = c;
    return r;
}
