/*
 * Decompressing reader for layer blobs: gzip (zlib, any number of concatenated members), zstd
 * (libzstd streaming, any number of frames) or plain tar, chosen from the magic bytes.
 * Invariants: every byte returned came from a complete, checked stream (zlib checks each
 * member's CRC and length, zstd its frame checksums when present); running out of input inside
 * a member or frame is ES_EFORMAT with the compressed offset; the bomb limits are checked after
 * every step, before the caller sees the bytes.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "layer/layer_internal.h"

#define IN_BUF (256 * 1024)

typedef struct {
    es_reader *inner;
    char *name;
    es_limits lim;
    es_compression kind;
    unsigned char *in;
    size_t in_len, in_pos; /* bytes in `in`, of which in_pos consumed */
    int in_eof;
    _Atomic int64_t in_total; /* bytes read from inner */
    int64_t out_total;
    /* gzip */
    z_stream z;
    int z_init, z_in_member;
    /* zstd */
    ZSTD_DCtx *zd;
    size_t zd_last; /* last ZSTD_decompressStream return: 0 at a frame boundary */
    int zd_any;
} decomp;

static int fill_input(decomp *d, es_error *err)
{
    if (d->in_pos < d->in_len || d->in_eof) return 0;
    ssize_t k = es_reader_read(d->inner, d->in, IN_BUF, err);
    if (k < 0) return -1;
    d->in_len = (size_t)k;
    d->in_pos = 0;
    if (k == 0) d->in_eof = 1;
    atomic_fetch_add(&d->in_total, k);
    return 0;
}

static int64_t in_offset(const decomp *d)
{
    return atomic_load(&d->in_total) - (int64_t)(d->in_len - d->in_pos);
}

static int check_bomb(decomp *d, es_error *err)
{
    if (d->out_total > d->lim.max_layer_bytes)
        return es_err(err, ES_EUNSAFE, "%s: decompresses to more than the %lld-byte layer limit",
                      d->name, (long long)d->lim.max_layer_bytes);
    int64_t in = in_offset(d);
    if (d->kind != ES_COMP_NONE && d->out_total > d->lim.ratio_floor && in > 0 &&
        d->out_total / in > d->lim.max_ratio)
        return es_err(err, ES_EUNSAFE,
                      "%s: decompression bomb: %lld bytes from %lld compressed (ratio over %lld)",
                      d->name, (long long)d->out_total, (long long)in, (long long)d->lim.max_ratio);
    return 0;
}

static ssize_t gzip_step(decomp *d, unsigned char *buf, size_t n, es_error *err)
{
    for (;;) {
        if (fill_input(d, err) < 0) return -1;
        if (!d->z_in_member) {
            if (d->in_pos == d->in_len) return 0; /* clean end after a complete member */
            if (inflateReset(&d->z) != Z_OK) return es_err(err, ES_EFAIL, "%s: zlib reset", d->name);
            d->z_in_member = 1;
        }
        if (d->in_pos == d->in_len)
            return es_err(err, ES_EFORMAT, "%s: truncated gzip stream at compressed offset %lld",
                          d->name, (long long)in_offset(d));
        d->z.next_in = d->in + d->in_pos;
        d->z.avail_in = (uInt)(d->in_len - d->in_pos);
        d->z.next_out = buf;
        d->z.avail_out = (uInt)n;
        int r = inflate(&d->z, Z_NO_FLUSH);
        d->in_pos = d->in_len - d->z.avail_in;
        size_t got = n - d->z.avail_out;
        if (r == Z_STREAM_END) d->z_in_member = 0;
        else if (r != Z_OK && r != Z_BUF_ERROR)
            return es_err(err, ES_EFORMAT, "%s: corrupt gzip stream near compressed offset %lld: %s",
                          d->name, (long long)in_offset(d), d->z.msg ? d->z.msg : "inflate error");
        if (got) return (ssize_t)got;
    }
}

static ssize_t zstd_step(decomp *d, unsigned char *buf, size_t n, es_error *err)
{
    for (;;) {
        if (fill_input(d, err) < 0) return -1;
        if (d->in_pos == d->in_len) {
            if (d->zd_any && d->zd_last != 0)
                return es_err(err, ES_EFORMAT, "%s: truncated zstd stream at compressed offset %lld",
                              d->name, (long long)in_offset(d));
            return 0;
        }
        ZSTD_inBuffer ib = {d->in, d->in_len, d->in_pos};
        ZSTD_outBuffer ob = {buf, n, 0};
        size_t r = ZSTD_decompressStream(d->zd, &ob, &ib);
        d->in_pos = ib.pos;
        d->zd_any = 1;
        if (ZSTD_isError(r))
            return es_err(err, ES_EFORMAT, "%s: corrupt zstd stream near compressed offset %lld: %s",
                          d->name, (long long)in_offset(d), ZSTD_getErrorName(r));
        d->zd_last = r;
        if (ob.pos) return (ssize_t)ob.pos;
    }
}

static ssize_t plain_step(decomp *d, unsigned char *buf, size_t n, es_error *err)
{
    if (fill_input(d, err) < 0) return -1;
    size_t avail = d->in_len - d->in_pos;
    if (avail == 0) return 0;
    if (n > avail) n = avail;
    memcpy(buf, d->in + d->in_pos, n);
    d->in_pos += n;
    return (ssize_t)n;
}

static ssize_t decomp_read(es_reader *r, void *buf, size_t n, es_error *err)
{
    decomp *d = r->ctx;
    if (n > UINT32_MAX) n = UINT32_MAX;
    ssize_t k = d->kind == ES_COMP_GZIP   ? gzip_step(d, buf, n, err)
                : d->kind == ES_COMP_ZSTD ? zstd_step(d, buf, n, err)
                                          : plain_step(d, buf, n, err);
    if (k <= 0) return k;
    d->out_total += k;
    if (check_bomb(d, err) < 0) return -1;
    return k;
}

static void decomp_close(es_reader *r)
{
    decomp *d = r->ctx;
    if (d->z_init) inflateEnd(&d->z);
    if (d->zd) ZSTD_freeDCtx(d->zd);
    es_reader_free(d->inner);
    free(d->in);
    free(d->name);
    free(d);
}

/* Reads until at least 4 bytes are buffered (or the blob ends) to look at the magic. */
static int sniff(decomp *d, es_error *err)
{
    while (d->in_len < 4) {
        ssize_t k = es_reader_read(d->inner, d->in + d->in_len, IN_BUF - d->in_len, err);
        if (k < 0) return -1;
        if (k == 0) {
            d->in_eof = 1;
            break;
        }
        d->in_len += (size_t)k;
        atomic_fetch_add(&d->in_total, k);
    }
    const unsigned char *m = d->in;
    if (d->in_len >= 2 && m[0] == 0x1f && m[1] == 0x8b) d->kind = ES_COMP_GZIP;
    else if (d->in_len >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
        d->kind = ES_COMP_ZSTD;
    else d->kind = ES_COMP_NONE;
    return 0;
}

static int init_codec(decomp *d, es_error *err)
{
    if (d->kind == ES_COMP_GZIP) {
        if (inflateInit2(&d->z, 16 + MAX_WBITS) != Z_OK)
            return es_err(err, ES_EFAIL, "%s: cannot initialise zlib", d->name);
        d->z_init = 1;
    } else if (d->kind == ES_COMP_ZSTD) {
        d->zd = ZSTD_createDCtx();
        if (!d->zd) return es_err(err, ES_EFAIL, "%s: cannot initialise zstd", d->name);
    }
    return 0;
}

int es_decompress_open(es_reader *blob, const char *name, const es_limits *lim, es_reader **out,
                       es_compression *detected, es_error *err)
{
    decomp *d = es_xcalloc(1, sizeof *d);
    d->inner = blob;
    d->name = es_xstrdup(name ? name : "layer");
    d->lim = *(lim ? lim : es_limits_default());
    d->in = es_xmalloc(IN_BUF);
    es_reader *r = es_xcalloc(1, sizeof *r);
    r->read = decomp_read;
    r->close = decomp_close;
    r->ctx = d;
    if (sniff(d, err) < 0 || init_codec(d, err) < 0) {
        es_reader_free(r);
        return -1;
    }
    if (detected) *detected = d->kind;
    *out = r;
    return 0;
}

int64_t es_decompress_consumed(es_reader *dec)
{
    decomp *d = dec->ctx;
    return atomic_load(&d->in_total);
}
