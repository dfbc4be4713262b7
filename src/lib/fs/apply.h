/*
 * Applying layers into a root filesystem, safely. All file system access goes through a
 * directory fd of the root and openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS) (or an O_NOFOLLOW
 * walk where openat2 is missing), so no entry, symlink or hardlink in a layer can make us write
 * outside the root. Whiteouts are applied (opaque first, whatever their position in the layer)
 * and never materialised. Missing parent directories are created (0755). Device nodes are
 * created only when allowed (and we are root); otherwise ES_EUNSAFE, or skipped with a count if
 * opts->skip_devices.
 */
#ifndef ES_FS_APPLY_H
#define ES_FS_APPLY_H

#include "layer/layer_reader.h"
#include "util/progress.h"

typedef struct es_apply_opts {
    int allow_devices;   /* create char/block/fifo nodes (needs root) */
    int skip_devices;    /* silently skip (count) instead of failing */
    int keep_owner;      /* chown to the tar's uid/gid (default when running as root) */
    int keep_xattrs;     /* set xattrs incl. security.capability (default on; errors ignored when not root) */
} es_apply_opts;

typedef struct es_apply_stats {
    int64_t files, dirs, symlinks, hardlinks, devices, whiteouts, skipped_devices, bytes;
} es_apply_stats;

void es_apply_opts_default(es_apply_opts *o);
/* Applies one layer onto the tree under rootfd. */
int es_apply_layer(int rootfd, es_layer_stream *s, const es_apply_opts *o, es_apply_stats *st,
                   es_error *err);
/* Unpacks all layers of img into dir (created; must not exist or be empty). Works in a
 * temporary sibling directory and renames it to dir at the end; on failure removes it. */
int es_unpack_image(es_image *img, const char *dir, const es_apply_opts *o, es_apply_stats *st,
                    es_progress *prog, es_error *err);

#endif
