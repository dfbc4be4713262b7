/*
 * One pass over a layer blob: verify (digest, size) -> decompress (+ bomb limits) ->
 * [prefetch thread boundary] -> sha256 of the tar (diff_id) -> libarchive tar parser fed through
 * its read callback, zero-copy from the prefetch ring.
 * Invariants: every tar byte handed to libarchive, and every byte after the end-of-archive
 * marker (drained in finish), is hashed exactly once and in order, so the diff_id covers the
 * whole decompressed stream; every entry returned has passed the path, count, size and xattr
 * checks; after the first error the stream stays failed.
 */
#include <archive.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layer/layer_internal.h"

struct es_layer_stream {
    char *name;
    es_limits lim;
    char *exp_diff_id;
    es_digest_result blob_res;
    es_reader *dec; /* borrowed: owned by pf; used only for the consumed-bytes counter */
    es_prefetch *pf;
    es_compression comp;
    es_sha256 *tar_hash; /* NULL for an uncompressed blob: the diff_id is the blob digest */
    int64_t tar_bytes;
    struct archive *ar; /* NULL in raw mode */
    int raw;
    int archive_eof, failed, finished;
    int64_t entries;
    char *last_path;
    es_error cb_err; /* error raised below libarchive, inside the read callback */
};

static la_ssize_t tar_read_cb(struct archive *a, void *ud, const void **buf)
{
    es_layer_stream *s = ud;
    size_t len = 0;
    int r = es_prefetch_next(s->pf, buf, &len, &s->cb_err);
    if (r < 0) {
        archive_set_error(a, EIO, "%s", s->cb_err.msg);
        return -1;
    }
    if (r == 0) return 0;
    if (s->tar_hash) es_sha256_update(s->tar_hash, *buf, len);
    s->tar_bytes += (int64_t)len;
    return (la_ssize_t)len;
}

static int fail(es_layer_stream *s, es_error *err)
{
    (void)err; /* already filled by the caller */
    s->failed = 1;
    return -1;
}

/* Reports a libarchive failure: an error from below (decompression, digest) wins. `in_entry`
 * says whether the failure is inside the data of the last entry or in the header after it. */
static int archive_fail(es_layer_stream *s, int in_entry, es_error *err)
{
    if (s->cb_err.code) {
        if (err && !err->code) *err = s->cb_err;
    } else {
        const char *msg = archive_error_string(s->ar);
        msg = msg ? msg : "malformed tar";
        if (!s->last_path) es_err(err, ES_EFORMAT, "%s: not a valid tar: %s", s->name, msg);
        else if (in_entry) es_err(err, ES_EFORMAT, "%s: data of entry '%s': %s", s->name, s->last_path, msg);
        else es_err(err, ES_EFORMAT, "%s: tar header after entry '%s': %s", s->name, s->last_path, msg);
    }
    return fail(s, err);
}

static int open_common(es_reader *blob, const es_layer_expect *exp, const es_limits *lim,
                       int raw, es_layer_stream **out, es_error *err)
{
    es_layer_stream *s = es_xcalloc(1, sizeof *s);
    s->name = es_xstrdup(exp && exp->name ? exp->name : "layer");
    s->lim = *(lim ? lim : es_limits_default());
    s->exp_diff_id = exp && exp->diff_id ? es_xstrdup(exp->diff_id) : NULL;
    s->raw = raw;
    s->tar_hash = es_sha256_new();
    es_reader *v = es_reader_verify(blob, exp ? exp->digest : NULL, exp ? exp->size : -1, s->name,
                                    &s->blob_res);
    if (es_decompress_open(v, s->name, &s->lim, &s->dec, &s->comp, err) < 0) {
        es_layer_stream_free(s);
        return -1;
    }
    if (s->comp == ES_COMP_NONE) {
        /* The tar is the blob: its digest, computed by the verify reader below, is the diff_id. */
        es_sha256_free(s->tar_hash);
        s->tar_hash = NULL;
    }
    s->pf = es_prefetch_start(s->dec, es_layer_threads_enabled());
    if (!raw) {
        s->ar = archive_read_new();
        archive_read_support_format_tar(s->ar);
        if (archive_read_open(s->ar, s, NULL, tar_read_cb, NULL) != ARCHIVE_OK) {
            /* An empty stream is an empty layer; anything else is reported. */
            if (s->tar_bytes == 0 && !s->cb_err.code) {
                s->archive_eof = 1;
            } else {
                archive_fail(s, 0, err);
                es_layer_stream_free(s);
                return -1;
            }
        }
    }
    *out = s;
    return 0;
}

int es_layer_stream_open(es_reader *blob, const es_layer_expect *exp, const es_limits *lim,
                         es_layer_stream **out, es_error *err)
{
    return open_common(blob, exp, lim, 0, out, err);
}

int es_layer_stream_open_raw(es_reader *blob, const es_layer_expect *exp, const es_limits *lim,
                             es_layer_stream **out, es_error *err)
{
    return open_common(blob, exp, lim, 1, out, err);
}

int es_layer_stream_raw_next(es_layer_stream *s, const void **buf, size_t *len, es_error *err)
{
    if (s->failed) return es_err(err, ES_EFAIL, "%s: stream already failed", s->name);
    int r = es_prefetch_next(s->pf, buf, len, err);
    if (r < 0) return fail(s, err);
    if (r > 0) {
        if (s->tar_hash) es_sha256_update(s->tar_hash, *buf, *len);
        s->tar_bytes += (int64_t)*len;
    }
    return r;
}

static int64_t xattr_total(struct archive_entry *e)
{
    int64_t total = 0;
    const char *name;
    const void *val;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &val, &size) == ARCHIVE_OK)
        total += (int64_t)strlen(name) + (int64_t)size;
    return total;
}

static const char *entry_path(struct archive_entry *e)
{
    const char *p = archive_entry_pathname(e);
    return p ? p : archive_entry_pathname_utf8(e);
}

/* Normalises the entry's path (and hardlink target) in place and checks the limits.
 * Returns 1 if the entry is to be returned, 0 to skip it (the root directory itself). */
static int check_entry(es_layer_stream *s, struct archive_entry *e, es_error *err)
{
    const char *raw = entry_path(e);
    if (!raw) return es_err(err, ES_EFORMAT, "%s: entry %lld has no readable path", s->name, (long long)s->entries);
    if ((int64_t)strlen(raw) > s->lim.max_path)
        return es_err(err, ES_EUNSAFE, "%s: entry %lld: path longer than %lld bytes", s->name,
                      (long long)s->entries, (long long)s->lim.max_path);
    if (raw[0] == '/' && strspn(raw, "/") != strlen(raw))
        return es_err(err, ES_EUNSAFE, "%s: entry '%s': absolute path in a layer", s->name, raw);
    char *norm = es_path_normalize(raw);
    if (!norm) {
        if (strstr(raw, "..") == NULL && archive_entry_filetype(e) == AE_IFDIR) return 0;
        return es_err(err, ES_EUNSAFE, "%s: entry '%s': path escapes the root", s->name, raw);
    }
    archive_entry_copy_pathname(e, norm);
    free(s->last_path);
    s->last_path = norm;
    const char *hl = archive_entry_hardlink(e);
    if (!hl) hl = archive_entry_hardlink_utf8(e);
    if (hl) {
        if (hl[0] == '/')
            return es_err(err, ES_EUNSAFE, "%s: entry '%s': hardlink target '%s' is an absolute path",
                          s->name, norm, hl);
        es_cleanup_free char *hn = es_path_normalize(hl);
        if (!hn)
            return es_err(err, ES_EUNSAFE, "%s: entry '%s': hardlink target '%s' escapes the root",
                          s->name, norm, hl);
        archive_entry_copy_hardlink(e, hn);
    }
    int64_t size = archive_entry_size(e);
    if (size < 0 || size > s->lim.max_layer_bytes)
        return es_err(err, ES_EUNSAFE, "%s: entry '%s': size %lld is over the layer limit", s->name, norm, (long long)size);
    if (xattr_total(e) > s->lim.max_xattr_bytes)
        return es_err(err, ES_EUNSAFE, "%s: entry '%s': extended attributes over %lld bytes", s->name,
                      norm, (long long)s->lim.max_xattr_bytes);
    return 1;
}

int es_layer_stream_next(es_layer_stream *s, struct archive_entry **e, es_error *err)
{
    if (s->failed) return es_err(err, ES_EFAIL, "%s: stream already failed", s->name);
    if (s->raw) return es_err(err, ES_EFAIL, "%s: raw stream has no entries", s->name);
    for (;;) {
        if (s->archive_eof) return 0;
        int r = archive_read_next_header(s->ar, e);
        if (r == ARCHIVE_EOF) {
            s->archive_eof = 1;
            return 0;
        }
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN && s->tar_bytes == 0 && !s->cb_err.code) {
            s->archive_eof = 1; /* an empty blob is an empty layer */
            return 0;
        }
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return archive_fail(s, 0, err);
        if (++s->entries > s->lim.max_entries) {
            es_err(err, ES_EUNSAFE, "%s: more than %lld entries", s->name, (long long)s->lim.max_entries);
            return fail(s, err);
        }
        int c = check_entry(s, *e, err);
        if (c < 0) return fail(s, err);
        if (c > 0) return 1;
    }
}

ssize_t es_layer_stream_read(es_layer_stream *s, void *buf, size_t n, es_error *err)
{
    if (s->failed) return es_err(err, ES_EFAIL, "%s: stream already failed", s->name);
    la_ssize_t k = archive_read_data(s->ar, buf, n);
    if (k < 0) return archive_fail(s, 1, err);
    return k;
}

/* Skips the remaining entries and hashes whatever follows the end-of-archive marker. */
static int drain(es_layer_stream *s, es_error *err)
{
    struct archive_entry *e;
    while (s->ar && !s->archive_eof) {
        int r = archive_read_next_header(s->ar, &e);
        if (r == ARCHIVE_EOF) s->archive_eof = 1;
        else if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return archive_fail(s, 0, err);
        else free(s->last_path), s->last_path = es_xstrdup(entry_path(e) ? entry_path(e) : "?");
    }
    const void *buf;
    size_t len;
    int r;
    while ((r = es_prefetch_next(s->pf, &buf, &len, err)) > 0) {
        if (s->tar_hash) es_sha256_update(s->tar_hash, buf, len);
        s->tar_bytes += (int64_t)len;
    }
    return r < 0 ? fail(s, err) : 0;
}

int es_layer_stream_finish(es_layer_stream *s, es_layer_stats *st, es_error *err)
{
    if (s->failed) return es_err(err, ES_EFAIL, "%s: stream already failed", s->name);
    if (s->finished) return es_err(err, ES_EFAIL, "%s: stream already finished", s->name);
    if (drain(s, err) < 0) return -1;
    s->finished = 1;
    es_digest diff_id;
    if (s->tar_hash) {
        es_sha256_final(s->tar_hash, &diff_id);
        s->tar_hash = NULL;
    } else if (s->blob_res.done) {
        diff_id = s->blob_res.digest;
    } else {
        es_err(err, ES_EFAIL, "%s: internal error: blob digest missing at end of stream", s->name);
        return fail(s, err);
    }
    if (s->exp_diff_id && strcmp(s->exp_diff_id, diff_id.s) != 0) {
        es_err(err, ES_EDIGEST, "%s: diff_id mismatch: config says %s, layer content is %s", s->name,
               s->exp_diff_id, diff_id.s);
        return fail(s, err);
    }
    if (st) {
        memset(st, 0, sizeof *st);
        st->digest = s->blob_res.digest;
        st->size = s->blob_res.size;
        st->diff_id = diff_id;
        st->uncompressed_size = s->tar_bytes;
        st->entries = s->entries;
        st->compression = s->comp;
    }
    return 0;
}

void es_layer_stream_free(es_layer_stream *s)
{
    if (!s) return;
    if (s->ar) archive_read_free(s->ar);
    es_prefetch_free(s->pf); /* joins the producer, frees the reader chain */
    if (!s->pf) es_reader_free(s->dec);
    es_sha256_free(s->tar_hash);
    free(s->exp_diff_id);
    free(s->last_path);
    free(s->name);
    free(s);
}

int64_t es_layer_stream_consumed(const es_layer_stream *s)
{
    return s && s->dec ? es_decompress_consumed(s->dec) : 0;
}
