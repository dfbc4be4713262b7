/*
 * Internals of the layer module shared between its files (not a public interface): the
 * decompressing reader, the background prefetch queue, the block-parallel compressor sink, and
 * the raw (unparsed) access to a layer's tar bytes that recompression uses.
 */
#ifndef ES_LAYER_INTERNAL_H
#define ES_LAYER_INTERNAL_H

#include <stdint.h>

#include "layer/layer_reader.h"
#include "layer/layer_writer.h"
#include "util/limits.h"

/* ---- decompression (layer_decompress.c) ---- */
/* Sniffs the first bytes of blob (owned) and returns a reader of the decompressed bytes.
 * Concatenated gzip members and zstd frames are read as one stream. A truncated or corrupt
 * stream fails with ES_EFORMAT naming `name` and the compressed offset; more output than
 * lim->max_layer_bytes, or more than lim->max_ratio times the input once past lim->ratio_floor,
 * fails with ES_EUNSAFE. */
int es_decompress_open(es_reader *blob, const char *name, const es_limits *lim, es_reader **out,
                       es_compression *detected, es_error *err);
/* Compressed bytes consumed so far (safe to call from another thread). */
int64_t es_decompress_consumed(es_reader *dec);

/* ---- prefetch (layer_prefetch.c) ---- */
/* Reads src (owned) ahead in a background thread (threaded != 0) into a small ring of chunks,
 * so decompression runs on one core while the consumer hashes and parses on the other. */
typedef struct es_prefetch es_prefetch;
es_prefetch *es_prefetch_start(es_reader *src, int threaded);
/* Next chunk: 1 with buf and len valid until the next call, 0 at end, -1 with err. */
int es_prefetch_next(es_prefetch *p, const void **buf, size_t *len, es_error *err);
void es_prefetch_free(es_prefetch *p);
/* Whether layer reading uses a second thread (env ES_LAYER_THREADS=1 turns it off). */
int es_layer_threads_enabled(void);

/* ---- raw tar access (layer_reader.c) ---- */
/* Opens the stream without a tar parser: es_layer_stream_raw_next hands out the verified,
 * hashed tar bytes chunk by chunk. es_layer_stream_finish works as usual. */
int es_layer_stream_open_raw(es_reader *blob, const es_layer_expect *exp, const es_limits *lim,
                             es_layer_stream **out, es_error *err);
int es_layer_stream_raw_next(es_layer_stream *s, const void **buf, size_t *len, es_error *err);

/* ---- compressing sink (layer_compress.c) ---- */
/* Compresses bytes written to it into fd, hashing the compressed output. gzip is block-parallel
 * (independent blocks primed with the previous 32 KiB, one member, combined CRC), so the output
 * does not depend on the number of threads; zstd always runs with >= 1 worker for the same
 * reason. */
typedef struct es_compressor es_compressor;
int es_compressor_open(int fd, es_compression c, int level, int threads, const char *name,
                       es_compressor **out, es_error *err);
int es_compressor_write(es_compressor *c, const void *buf, size_t n, es_error *err);
/* Flushes the end of the stream; fills digest and size of what was written to fd. */
int es_compressor_finish(es_compressor *c, es_digest *digest, int64_t *size, es_error *err);
void es_compressor_free(es_compressor *c);

#endif
