/*
 * Reading one layer as a stream of tar entries, in one pass over the blob:
 *   blob bytes -> sha256 + size (must equal the manifest's digest/size)
 *              -> decompress (gzip, zstd or none, detected from the magic bytes)
 *              -> sha256 (must equal the config's diff_id) and the decompression-bomb check
 *              -> tar parser (libarchive, tar formats only: ustar, pax, GNU long names)
 * Entry paths are normalised (no leading "./" or "/", no trailing "/"); a path with a ".."
 * component, an empty path or one over the path limit fails with ES_EUNSAFE naming the layer and
 * entry. Whiteout names (".wh.X", ".wh..wh..opq") are passed through unchanged: see
 * es_whiteout_kind. Hardlink targets are normalised the same way.
 */
#ifndef ES_LAYER_LAYER_READER_H
#define ES_LAYER_LAYER_READER_H

#include <archive_entry.h>

#include "oci/image.h"
#include "util/reader.h"

typedef struct es_layer_stream es_layer_stream;

typedef struct es_layer_expect {
    const char *name;          /* for error messages, e.g. "layer 2 (sha256:ab12...)" */
    const char *digest;        /* expected blob digest or NULL (already verified by the blob reader) */
    int64_t size;              /* expected blob size or -1 */
    const char *diff_id;       /* expected diff_id or NULL */
} es_layer_expect;

typedef struct es_layer_stats {
    es_digest digest;          /* of the compressed blob */
    int64_t size;              /* compressed bytes */
    es_digest diff_id;         /* of the uncompressed tar */
    int64_t uncompressed_size;
    int64_t entries;
    es_compression compression;
} es_layer_stats;

/* Takes ownership of blob. */
int es_layer_stream_open(es_reader *blob, const es_layer_expect *exp, const es_limits *lim,
                         es_layer_stream **out, es_error *err);
/* Convenience: es_image_open_layer_blob + es_layer_stream_open with the image's expectations. */
int es_image_open_layer(es_image *img, size_t i, es_layer_stream **out, es_error *err);
/* Next entry: 1 and *e set (owned by the stream, valid until the next call), 0 at end, -1 error. */
int es_layer_stream_next(es_layer_stream *s, struct archive_entry **e, es_error *err);
/* Data of the current entry (regular files only): >0 bytes, 0 at end of entry, -1 error. */
ssize_t es_layer_stream_read(es_layer_stream *s, void *buf, size_t n, es_error *err);
/* Reads to the end of the blob and checks digest, size and diff_id. Fills *st if not NULL.
 * Must be called to learn whether the layer was intact: entries seen before a failure here
 * came from an unverified stream. */
int es_layer_stream_finish(es_layer_stream *s, es_layer_stats *st, es_error *err);
void es_layer_stream_free(es_layer_stream *s);
/* Progress: compressed bytes consumed so far. */
int64_t es_layer_stream_consumed(const es_layer_stream *s);

typedef enum { ES_WH_NONE = 0, ES_WH_FILE, ES_WH_OPAQUE } es_whiteout;
/* For a normalised path: ES_WH_FILE with *target set to the (malloc'd) hidden path for
 * "dir/.wh.name", ES_WH_OPAQUE with *target set to the directory for "dir/.wh..wh..opq",
 * ES_WH_NONE otherwise. ".wh..wh..plnk" (aufs hardlink dir) is ES_WH_FILE with target NULL:
 * callers skip it. */
es_whiteout es_whiteout_kind(const char *path, char **target);

/* "./a//b/" -> "a/b"; returns NULL for "..", absolute-escape or empty after normalisation. */
char *es_path_normalize(const char *path);

#endif
