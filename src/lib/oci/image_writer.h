/*
 * Writing images. The caller first produces each layer blob as a file (see layer/layer_writer.h,
 * which computes digest, size and diff_id in the same pass), then hands the config and the layer
 * files to es_image_write, which writes the target transport atomically: everything goes to a
 * temporary name next to the destination and is renamed into place only when complete, so a
 * failure leaves nothing behind. Output is deterministic: stable JSON (sorted keys, no
 * whitespace), sorted tar entries with fixed metadata, no timestamps from the clock.
 *
 * Transports written: oci:DIR[:REF], oci-archive:PATH[:REF], docker-archive:PATH[:repo:tag]
 * (loadable by `podman load` and `docker load`).
 */
#ifndef ES_OCI_IMAGE_WRITER_H
#define ES_OCI_IMAGE_WRITER_H

#include <jansson.h>

#include "oci/image.h"

typedef struct es_layer_blob {
    const char *path;           /* file holding the blob exactly as it will be stored */
    es_digest digest;           /* of the blob */
    int64_t size;               /* of the blob */
    es_digest diff_id;          /* of the uncompressed tar */
    es_compression compression;
} es_layer_blob;

typedef struct es_image_out {
    json_t *config;             /* full image config; the writer sets rootfs.diff_ids from layers */
    size_t n_layers;
    const es_layer_blob *layers;
    const char *os, *arch, *variant; /* platform for an index entry; NULL = from config */
    json_t *annotations;        /* manifest annotations, may be NULL */
    /* Added: config bytes to store verbatim (e.g. es_image.config_raw) when their
     * rootfs.diff_ids already equal the layers' diff_ids, so a copy keeps the config digest;
     * otherwise (or when NULL) the writer serialises `config` with the diff_ids set. */
    const char *config_raw;
    size_t config_raw_len;
} es_image_out;

typedef struct es_write_result {
    es_digest manifest_digest;  /* for an index write: the index digest */
    es_digest config_digest;
    int64_t total_size;         /* bytes written */
} es_write_result;

/* One image. For docker-archive the ref (if any) becomes RepoTags (default "localhost/edgeslim:latest"
 * when none is given). */
int es_image_write(const es_image_out *img, const char *dst_ref, es_write_result *res,
                   es_error *err);
/* Several images under one OCI index (multi-platform). oci and oci-archive only;
 * docker-archive gets ES_EUNSUPPORTED. */
int es_index_write(const es_image_out *imgs, size_t n, const char *dst_ref, es_write_result *res,
                   es_error *err);

/* Stable JSON serialisation used for every document we write (sorted keys, compact). */
char *es_json_dump_stable(const json_t *j);

#endif
