/* Default bounds for untrusted input, with environment overrides so tests can tighten them. */
#include "util/limits.h"

#include <stdlib.h>

static int64_t env_or(const char *name, int64_t def)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end = NULL;
    long long x = strtoll(v, &end, 10);
    return (end && *end == 0 && x > 0) ? (int64_t)x : def;
}

const es_limits *es_limits_default(void)
{
    static es_limits l;
    static int init;
    if (!init) {
        l.max_json_bytes = env_or("ES_MAX_JSON_BYTES", 16LL << 20);
        l.max_layers = env_or("ES_MAX_LAYERS", 1000);
        l.max_entries = env_or("ES_MAX_ENTRIES", 10000000);
        l.max_path = env_or("ES_MAX_PATH", 4096);
        l.max_layer_bytes = env_or("ES_MAX_LAYER_BYTES", 256LL << 30);
        l.max_ratio = env_or("ES_MAX_RATIO", 1000);
        l.ratio_floor = env_or("ES_RATIO_FLOOR", 64LL << 20);
        l.max_xattr_bytes = env_or("ES_MAX_XATTR_BYTES", 64 << 10);
        l.max_index_entries = env_or("ES_MAX_INDEX_ENTRIES", 4096);
        init = 1;
    }
    return &l;
}
