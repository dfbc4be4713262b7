/*
 * The driver of the inspect core: reads every layer of an opened image once, in order, through
 * es_image_open_layer (digests and diff_ids verified while streaming) and feeds the entries to an
 * es_analyzer. Layer metadata (blob digest and size, uncompressed tar size, history created_by
 * aligned by skipping empty_layer entries) is attached to each layer. A progress bar over the
 * compressed bytes is drawn on stderr when it is a terminal.
 */
#ifndef ES_ANALYZE_INSPECT_IMAGE_H
#define ES_ANALYZE_INSPECT_IMAGE_H

#include <jansson.h>

#include "analyze/analyzer.h"
#include "oci/image.h"
#include "util/error.h"

typedef struct es_inspect_opts {
    int top_n; /* largest files/dirs listed; <= 0: 10 */
} es_inspect_opts;

/* Fills *report (new JSON reference: docs/inspect-json.md, without "ci") and *metrics.
 * Errors are those of the layer streams (ES_EIO, ES_EFORMAT, ES_EDIGEST, ES_EUNSAFE). */
int es_inspect_image(es_image *img, const es_inspect_opts *opts, json_t **report,
                     es_waste_metrics *metrics, es_error *err);

#endif
