/*
 * libFuzzer target: the text formats inspect reads from images or the user — dpkg status, apk
 * installed db, a .dive-ci file, dive byte strings — and the security.capability decoder.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/caps.h"
#include "analyze/dive_ci.h"
#include "analyze/packages.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_package_list l = {0};
    es_dpkg_parse((const char *)data, size, &l);
    es_package_list_free(&l);
    es_apk_parse((const char *)data, size, &l);
    es_package_list_free(&l);

    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    es_ci_config c;
    es_ci_config_default(&c);
    es_error err = {0};
    if (es_ci_config_parse(&c, text, "fuzz", &err) == 0) {
        es_waste_metrics m = {.efficiency = 0.5, .wasted_bytes = 1000, .user_wasted_percent = 0.2};
        es_ci_result res[ES_CI_NRULES];
        es_ci_evaluate(&c, &m, res);
    }
    uint64_t b;
    es_ci_parse_bytes(text, &b);
    free(text);

    es_caps caps;
    if (es_caps_decode(data, size, &caps) == 0) {
        char t[2048];
        es_caps_text(&caps, t, sizeof t);
    }
    return 0;
}
