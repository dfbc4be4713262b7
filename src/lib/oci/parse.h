/*
 * Parsers for the JSON documents of an image: OCI/Docker index (manifest list), OCI/Docker
 * manifest, image config, and docker-archive's manifest.json. Each takes a buffer of untrusted
 * bytes plus a display name for errors, validates shape, digests (sha256, 64 lowercase hex),
 * sizes (non-negative, bounded) and counts (es_limits), and fills a plain C struct. They never
 * touch files, so the fuzz targets drive them directly.
 *
 * Invariants: on success every digest in the output is valid (es_digest_valid) and every size is
 * in [0, limit]; on failure nothing is allocated in *out (it is zeroed) and err names `name`.
 */
#ifndef ES_OCI_PARSE_H
#define ES_OCI_PARSE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "oci/image.h"
#include "util/error.h"
#include "util/limits.h"

#define ES_ANN_REF_NAME "org.opencontainers.image.ref.name"

typedef struct es_descriptor {
    char media_type[128];
    es_digest digest;
    int64_t size;
    int has_platform;
    char os[32], arch[32], variant[32];
    char *ref_name; /* annotation org.opencontainers.image.ref.name, or NULL */
    int has_urls;   /* non-distributable/foreign layers carry urls */
} es_descriptor;

typedef struct es_index_doc {
    size_t n;
    es_descriptor *manifests;
} es_index_doc;

typedef struct es_manifest_doc {
    char media_type[128];
    es_descriptor config;
    size_t n_layers;
    es_descriptor *layers;
} es_manifest_doc;

typedef struct es_config_doc {
    json_t *root; /* owned */
    size_t n_diff_ids;
    es_digest *diff_ids;
    size_t n_history;
    es_history_entry *history;
    char os[32], arch[32], variant[32];
} es_config_doc;

typedef struct es_docker_entry {
    char *config;     /* path inside the archive */
    char **repo_tags; /* NULL-terminated, may be empty */
    size_t n_layers;
    char **layers;    /* paths inside the archive */
} es_docker_entry;

typedef struct es_docker_manifest {
    size_t n;
    es_docker_entry *entries;
} es_docker_manifest;

/* Loads JSON with duplicate keys rejected; errors name `name`, line and column. */
json_t *es_json_parse(const char *buf, size_t len, const char *name, es_error *err);

int es_parse_index(const char *buf, size_t len, const char *name, const es_limits *lim,
                   es_index_doc *out, es_error *err);
void es_index_doc_free(es_index_doc *d);

int es_parse_manifest(const char *buf, size_t len, const char *name, const es_limits *lim,
                      es_manifest_doc *out, es_error *err);
void es_manifest_doc_free(es_manifest_doc *d);

int es_parse_config(const char *buf, size_t len, const char *name, const es_limits *lim,
                    es_config_doc *out, es_error *err);
void es_config_doc_free(es_config_doc *d);

int es_parse_docker_manifest(const char *buf, size_t len, const char *name, const es_limits *lim,
                             es_docker_manifest *out, es_error *err);
void es_docker_manifest_free(es_docker_manifest *d);

/* Media type classes. */
int es_mt_is_index(const char *mt);
int es_mt_is_manifest(const char *mt);
/* Layer media type -> compression: ES_COMP_UNKNOWN for types we do not know (the spec says
 * consumers must not fail on them while copying; unpacking them fails later). */
es_compression es_mt_layer_compression(const char *mt);
/* OCI layer media type for a compression. */
const char *es_mt_layer_for(es_compression c);

/* "os/arch[/variant]" -> parts; arm64 variant normalised to v8, arm to v7 when absent. */
int es_platform_parse(const char *s, char os[32], char arch[32], char variant[32], es_error *err);
/* Does descriptor platform (os, arch, variant) satisfy the wanted one? */
int es_platform_match(const char *want_os, const char *want_arch, const char *want_variant,
                      const char *os, const char *arch, const char *variant);

void es_history_free(es_history_entry *h, size_t n);

#endif
