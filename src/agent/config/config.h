/*
 * config/config.h: the agent's whole configuration, from (lowest to highest precedence) built-in
 * defaults, the config file (YAML subset, config/yaml.h), EDGEAGENT_<SECTION>_<KEY> environment
 * variables, and command-line flags. Every key is in one table (config.c) that drives the file
 * loader, the env loader, --set, and docs/agent-config.md. Errors name the line (file) or the
 * variable/flag and say what was expected.
 */
#ifndef EA_CONFIG_CONFIG_H
#define EA_CONFIG_CONFIG_H
#include <stddef.h>
#include <stdint.h>

#include "outputs/output.h"
#include "spool/spool.h"
#include "util/arena.h"
#include "util/json.h"

typedef struct ea_config {
    /* agent */
    const char *listen; /* agent.port: "8080" or "HOST:PORT" (health + ingest) */
    const char *device_id, *site;
    int log_level, allow_root, secure_memory, seccomp, remote_config;
    /* spool */
    ea_spool_config spool;
    /* http ingest */
    int http_enabled;
    const char *http_token;
    uint64_t http_max_body;
    int http_max_conns;
    uint32_t http_timeout_ms;
    /* line protocol */
    const char *lp_udp, *lp_tcp;
    int lp_tcp_max_conns;
    uint32_t lp_tcp_idle_ms;
    /* mqtt subscriptions (southbound) */
    const char *mqtt_in_url;
    const ea_node *mqtt_in_topics; /* list of strings */
    int mqtt_in_version;           /* 4 (3.1.1) or 5 */
    /* uplink */
    ea_output_config uplink;
    /* control */
    unsigned char control_key[32];
    int have_control_key;
    /* pipeline */
    const ea_node *routes;
    /* storage for strings and trees */
    ea_arena arena;
} ea_config;

void ea_config_defaults(ea_config *c);
void ea_config_free(ea_config *c);
/* Loads a file on top of c. err: "FILE: line N: ..." */
int ea_config_load_file(ea_config *c, const char *path, char *err, size_t errlen);
/* Applies a parsed tree (file or remote document) on top of c. */
int ea_config_apply_tree(ea_config *c, const ea_node *root, char *err, size_t errlen);
/* Applies EDGEAGENT_* variables from environ. */
int ea_config_apply_env(ea_config *c, char *err, size_t errlen);
/* Sets one key, "section.key" = text (flags, --set). */
int ea_config_set(ea_config *c, const char *dotted, const char *value, char *err, size_t errlen);
/* Cross-key checks after everything is applied (spool dir set, uplink URL scheme, ...). */
int ea_config_validate(const ea_config *c, char *err, size_t errlen);
/* Prints every key with its type and default as a Markdown table (docs generation). */
void ea_config_print_keys(int fd);
/* Parses "256MiB", "4k", "1GB", "1048576". */
int ea_parse_size(const char *s, uint64_t *out);
#endif
