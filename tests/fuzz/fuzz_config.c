/* libFuzzer target: the image config JSON parser (es_parse_config) on arbitrary bytes. It must return 0 or
 * -1 with a one-line message, never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "oci/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_limits lim = *es_limits_default();
    lim.max_layers = 64;
    lim.max_index_entries = 64;
    es_config_doc doc;
    es_error err = {0};
    if (es_parse_config((const char *)data, size, "fuzz.json", &lim, &doc, &err) == 0) es_config_doc_free(&doc);
    else if (!err.code || strchr(err.msg, '\n')) __builtin_trap();
    return 0;
}
