/*
 * es_image_open_layer: the bridge from the image model (oci/) to the layer stream. Kept in its
 * own file so that programs using only layer streams (unit tests, fuzzers) do not link the
 * transports.
 */
#include <stdlib.h>

#include "layer/layer_reader.h"

int es_image_open_layer(es_image *img, size_t i, es_layer_stream **out, es_error *err)
{
    if (i >= img->n_layers) return es_err(err, ES_EFAIL, "layer %zu: no such layer", i);
    es_reader *blob;
    if (es_image_open_layer_blob(img, i, &blob, err) < 0) return -1;
    const es_layer_info *li = &img->layers[i];
    /* Every later error of the stream names the image file and the layer. */
    es_cleanup_free char *name = es_xasprintf("%s:%s: layer %zu (%.19s)",
                                              es_transport_name(img->ref.kind), img->ref.path,
                                              i + 1, li->digest.s);
    es_layer_expect exp = {
        .name = name,
        .digest = NULL, /* the blob reader verifies digest and size already */
        .size = -1,
        .diff_id = li->diff_id.s[0] ? li->diff_id.s : NULL,
    };
    return es_layer_stream_open(blob, &exp, NULL, out, err);
}
