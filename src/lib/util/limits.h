/*
 * Bounds applied to untrusted images. Everything an image says about sizes and counts is checked
 * against these before memory is allocated or data is written. Defaults are generous for real
 * images (the biggest we know are tens of GB with a million files) and tight for attacks.
 */
#ifndef ES_UTIL_LIMITS_H
#define ES_UTIL_LIMITS_H

#include <stdint.h>

typedef struct es_limits {
    int64_t max_json_bytes;        /* manifest, index, config, docker manifest.json: 16 MiB */
    int64_t max_layers;            /* per image: 1000 */
    int64_t max_entries;           /* tar entries per layer: 10 M */
    int64_t max_path;              /* bytes in one path: 4096 */
    int64_t max_layer_bytes;       /* uncompressed bytes per layer: 256 GiB */
    int64_t max_ratio;             /* uncompressed/compressed beyond which a layer is a bomb: 1000 */
    int64_t ratio_floor;           /* ratio is only checked past this many uncompressed bytes: 64 MiB */
    int64_t max_xattr_bytes;       /* per entry: 64 KiB */
    int64_t max_index_entries;     /* manifests in an index: 4096 */
} es_limits;

/* The defaults above; overridable from the environment for tests (ES_MAX_RATIO, ...). */
const es_limits *es_limits_default(void);

#endif
