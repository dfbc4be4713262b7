/* tests/fuzz/fuzz_agent_config.c: libFuzzer target for the YAML-subset parser, the config loader
 * on its tree and the pipeline built from its routes (every filter's config reader). */
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/yaml.h"
#include "filters/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ea_config c;
    ea_config_defaults(&c);
    char err[512];
    ea_node *root = ea_yaml_parse(&c.arena, (const char *)data, size, err, sizeof err);
    if (root && ea_config_apply_tree(&c, root, err, sizeof err) == 0) {
        ea_filter_env env = {"dev", "site"};
        ea_pipeline *p = ea_pipeline_new(c.routes, &env, err, sizeof err);
        ea_pipeline_free(p);
    }
    ea_config_free(&c);
    return 0;
}
