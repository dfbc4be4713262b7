/*
 * Writing one layer blob deterministically and in one pass: tar (PAX, sorted entries chosen by
 * the caller or by es_layer_from_dir, uname/gname cleared, mtimes clamped to SOURCE_DATE_EPOCH
 * when set, no atime/ctime) -> sha256 of the tar (diff_id) -> compression (gzip with a fixed
 * header and no name/mtime, block-parallel across cores; zstd multi-threaded; or none) -> sha256
 * and size of the blob -> a temporary file renamed to out_path at finish.
 */
#ifndef ES_LAYER_LAYER_WRITER_H
#define ES_LAYER_LAYER_WRITER_H

#include <archive_entry.h>

#include "layer/layer_reader.h"
#include "oci/image_writer.h"
#include "util/progress.h"

typedef struct es_write_opts {
    es_compression compression; /* default ES_COMP_GZIP */
    int level;                  /* 0 = default (gzip 4: see docs/DESIGN.md, zstd 3) */
    int threads;                /* 0 = number of online CPUs */
    int64_t source_date_epoch;  /* -1 = not set (es_source_date_epoch() reads the env) */
} es_write_opts;

void es_write_opts_default(es_write_opts *o); /* gzip, defaults, SOURCE_DATE_EPOCH from env */
int64_t es_source_date_epoch(void);           /* -1 when unset or invalid */

typedef struct es_layer_writer es_layer_writer;
int es_layer_writer_open(const char *out_path, const es_write_opts *o, es_layer_writer **out,
                         es_error *err);
/* Adds one entry; data (regular files only) is read to its end (entry size bytes). The writer
 * normalises metadata for determinism; it does not sort: callers add in sorted order. */
int es_layer_writer_add(es_layer_writer *w, struct archive_entry *e, es_reader *data,
                        es_error *err);
/* Finishes, fsyncs, renames into out_path and fills *blob (path points to out_path). */
int es_layer_writer_finish(es_layer_writer *w, es_layer_blob *blob, es_error *err);
void es_layer_writer_abort(es_layer_writer *w); /* removes the temporary file */

/* The whole tree under rootfs as one layer, entries sorted by path (bytewise), hardlinks kept
 * as hardlinks, xattrs kept. filter (may be NULL) decides per relative path whether to include;
 * an excluded directory is still descended into (its included children are written, and apply
 * creates their missing parents 0755). Sockets are skipped. */
typedef int (*es_path_filter)(const char *relpath, void *arg);
int es_layer_from_dir(const char *rootfs, const es_write_opts *o, es_path_filter filter,
                      void *filter_arg, const char *out_path, es_layer_blob *blob,
                      es_progress *prog, es_error *err);

/* Re-encodes a layer blob with other compression; the tar (and so the diff_id) is unchanged.
 * The input is verified against exp while streaming. */
int es_layer_recompress(es_reader *blob, const es_layer_expect *exp, const es_write_opts *o,
                        const char *out_path, es_layer_blob *outblob, es_progress *prog,
                        es_error *err);

#endif
