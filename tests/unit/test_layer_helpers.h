/*
 * Helpers shared by the layer and fs unit tests: building real tar archives in memory with
 * libarchive (ustar/pax/gnutar), compressing them with zlib/libzstd, and reading a layer blob
 * through es_layer_stream. Header-only so each test stays one executable.
 */
#ifndef TEST_LAYER_HELPERS_H
#define TEST_LAYER_HELPERS_H

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "layer/layer_reader.h"

typedef struct {
    unsigned char *data;
    size_t len, cap;
    struct archive *a;
} tarbuf;

static la_ssize_t tarbuf_write(struct archive *a, void *ud, const void *buf, size_t n)
{
    (void)a;
    tarbuf *t = ud;
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2;
        t->data = realloc(t->data, t->cap);
    }
    memcpy(t->data + t->len, buf, n);
    t->len += n;
    return (la_ssize_t)n;
}

/* format: ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FORMAT_TAR_GNUTAR, ... */
static inline void tar_begin(tarbuf *t, int format)
{
    memset(t, 0, sizeof *t);
    t->a = archive_write_new();
    archive_write_set_format(t->a, format);
    archive_write_set_bytes_in_last_block(t->a, 1);
    archive_write_open2(t->a, t, NULL, tarbuf_write, NULL, NULL);
}

static inline void tar_add(tarbuf *t, const char *path, mode_t type, mode_t perm, const char *data,
                           const char *link, int hardlink)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_mtime(e, 1000000, 0);
    size_t n = data ? strlen(data) : 0;
    archive_entry_set_size(e, (la_int64_t)n);
    if (link && hardlink) archive_entry_set_hardlink(e, link);
    else if (link) archive_entry_set_symlink(e, link);
    archive_write_header(t->a, e);
    if (n) archive_write_data(t->a, data, n);
    archive_entry_free(e);
}

static inline void tar_file(tarbuf *t, const char *path, const char *data)
{
    tar_add(t, path, AE_IFREG, 0644, data, NULL, 0);
}
static inline void tar_dir(tarbuf *t, const char *path)
{
    tar_add(t, path, AE_IFDIR, 0755, NULL, NULL, 0);
}
static inline void tar_symlink(tarbuf *t, const char *path, const char *target)
{
    tar_add(t, path, AE_IFLNK, 0777, NULL, target, 0);
}
static inline void tar_hardlink(tarbuf *t, const char *path, const char *target)
{
    tar_add(t, path, AE_IFREG, 0644, NULL, target, 1);
}
static inline void tar_entry(tarbuf *t, struct archive_entry *e, const void *data, size_t n)
{
    archive_write_header(t->a, e);
    if (n) archive_write_data(t->a, data, n);
}
static inline void tar_end(tarbuf *t)
{
    archive_write_close(t->a);
    archive_write_free(t->a);
    t->a = NULL;
}

static inline unsigned char *gzip_buf(const void *in, size_t n, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    unsigned char *out = malloc(cap);
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    *outlen = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static inline unsigned char *zstd_buf(const void *in, size_t n, size_t *outlen)
{
    size_t cap = ZSTD_compressBound(n);
    unsigned char *out = malloc(cap);
    *outlen = ZSTD_compress(out, cap, in, n, 3);
    return out;
}

/* Reads every entry (and its data) of a blob; returns 0 or the error code. */
typedef struct {
    int n;
    char *paths[64];
    char *data[64];
    int64_t sizes[64];
} read_result;

static inline void read_result_free(read_result *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->paths[i]);
        free(r->data[i]);
    }
    r->n = 0;
}

static inline int read_blob(const void *blob, size_t len, const es_layer_expect *exp,
                            const es_limits *lim, read_result *res, es_layer_stats *st, es_error *err)
{
    es_layer_stream *s = NULL;
    memset(res, 0, sizeof *res);
    if (es_layer_stream_open(es_reader_mem(blob, len), exp, lim, &s, err) < 0) return err->code;
    struct archive_entry *e;
    int r;
    while ((r = es_layer_stream_next(s, &e, err)) > 0) {
        char buf[65536];
        size_t got = 0;
        ssize_t k;
        while ((k = es_layer_stream_read(s, buf + got, sizeof buf - 1 - got, err)) > 0) got += (size_t)k;
        if (k < 0) {
            r = -1;
            break;
        }
        buf[got] = 0;
        if (res->n < 64) {
            res->paths[res->n] = strdup(archive_entry_pathname(e));
            res->data[res->n] = strdup(buf);
            res->sizes[res->n] = (int64_t)got;
            res->n++;
        }
    }
    if (r == 0) r = es_layer_stream_finish(s, st, err);
    es_layer_stream_free(s);
    return r < 0 ? err->code : 0;
}

#endif
