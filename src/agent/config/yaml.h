/*
 * config/yaml.h: the strict YAML subset the agent's config file is written in, parsed into the
 * same ea_node tree as JSON (util/json.h), so one loader serves file and remote documents.
 *
 * Supported: block maps (`key: value`), block lists (`- item`, including `- key: value` maps),
 * plain/'single'/"double"-quoted scalars, flow lists `[a, b]` and flow maps `{k: v}` of scalars,
 * `#` comments, spaces for indentation. Plain scalars true/false -> bool, null/~ -> null, numbers
 * -> number, anything else -> string. Refused with a line number: tabs in indentation, duplicate
 * keys, anchors/aliases/tags (& * !), block scalars (| >), multiple documents, bad indentation.
 */
#ifndef EA_CONFIG_YAML_H
#define EA_CONFIG_YAML_H
#include <stddef.h>

#include "util/json.h"

/* Returns the root map (an empty map for an empty document) or NULL with "line N: why" in err. */
ea_node *ea_yaml_parse(ea_arena *a, const char *text, size_t len, char *err, size_t errlen);
#endif
