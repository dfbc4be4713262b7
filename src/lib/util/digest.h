/* SHA-256 digests in OCI form ("sha256:" + 64 lowercase hex), computed while streaming. */
#ifndef ES_UTIL_DIGEST_H
#define ES_UTIL_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/reader.h"

#define ES_DIGEST_LEN 71 /* "sha256:" + 64 */
typedef struct { char s[ES_DIGEST_LEN + 1]; } es_digest;

typedef struct es_sha256 es_sha256;
es_sha256 *es_sha256_new(void);
void es_sha256_update(es_sha256 *h, const void *data, size_t n);
void es_sha256_final(es_sha256 *h, es_digest *out); /* also frees h */
void es_sha256_free(es_sha256 *h);                  /* free without finishing */

void es_digest_buf(const void *data, size_t n, es_digest *out);
/* True when s is "sha256:" + 64 lowercase hex (the only algorithm we accept for content). */
int es_digest_valid(const char *s);
/* Hex part of a valid digest ("sha256:abc" -> "abc"). */
const char *es_digest_hex(const char *s);

/*
 * Wraps `inner` (taking ownership): counts bytes and hashes them; at end of stream checks the
 * count against expect_size (if >= 0) and the hash against expect_digest (if not NULL) and fails
 * with ES_EDIGEST naming `name` on mismatch; a stream longer than expect_size fails as soon as it
 * passes it. The final digest and size are written to *got (if not NULL) at end of stream.
 * When `inner` is itself an unread verify reader with compatible expectations, they are merged
 * into it and `inner` is returned (one hash pass, its name in messages).
 */
typedef struct { es_digest digest; int64_t size; int done; } es_digest_result;
es_reader *es_reader_verify(es_reader *inner, const char *expect_digest, int64_t expect_size,
                            const char *name, es_digest_result *got);

#endif
