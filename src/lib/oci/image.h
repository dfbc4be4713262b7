/*
 * The image model: a reference is resolved through its transport to one manifest (choosing a
 * platform from an index when there is one), its config and its ordered layers. Nothing is
 * extracted: blobs are opened as verified streams on demand, so memory does not grow with the
 * size of the image.
 *
 * Transports (skopeo's names):
 *   docker-archive:PATH      docker save / podman save tarball, all three layouts:
 *                            pre-25 "<id>/layer.tar", skopeo/podman "<diffid>.tar",
 *                            Docker 25+ "blobs/sha256/<hex>" with index.json
 *   oci:DIR[:REF]            OCI image layout directory; REF matches
 *                            org.opencontainers.image.ref.name (default: the only manifest, or
 *                            "latest")
 *   oci-archive:PATH[:REF]   a tar of an OCI image layout
 *   PATH                     bare path: a directory with oci-layout -> oci; a tar file with
 *                            oci-layout -> oci-archive, with manifest.json -> docker-archive
 */
#ifndef ES_OCI_IMAGE_H
#define ES_OCI_IMAGE_H

#include <jansson.h>
#include <stdint.h>

#include "util/digest.h"
#include "util/error.h"
#include "util/limits.h"
#include "util/reader.h"

#define ES_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define ES_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define ES_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define ES_MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define ES_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define ES_MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define ES_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define ES_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define ES_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define ES_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"

typedef enum {
    ES_TR_AUTO = 0,
    ES_TR_DOCKER_ARCHIVE,
    ES_TR_OCI,
    ES_TR_OCI_ARCHIVE,
} es_transport_kind;

typedef enum { ES_COMP_NONE = 0, ES_COMP_GZIP, ES_COMP_ZSTD, ES_COMP_UNKNOWN } es_compression;

typedef struct es_image_ref {
    es_transport_kind kind;
    char *path; /* file or directory */
    char *ref;  /* oci ref name / docker-archive "repo:tag" or NULL */
} es_image_ref;

/* Parses "transport:path[:ref]" or a bare path (kind ES_TR_AUTO until opened/detected). */
int es_ref_parse(const char *s, es_image_ref *out, es_error *err);
void es_ref_free(es_image_ref *r);
const char *es_transport_name(es_transport_kind k);
const char *es_compression_name(es_compression c);
int es_compression_parse(const char *s, es_compression *out); /* "gzip"|"zstd"|"none" */

typedef struct es_layer_info {
    es_digest digest;        /* blob digest as stored */
    int64_t size;            /* blob size as stored */
    char media_type[128];    /* as in the manifest (docker-archive: synthesised) */
    es_compression compression; /* from the media type; for docker-archive sniffed from magic */
    es_digest diff_id;       /* from config rootfs.diff_ids[i] */
} es_layer_info;

typedef struct es_history_entry {
    char *created;
    char *created_by;
    char *comment;
    int empty_layer;
} es_history_entry;

typedef struct es_source es_source; /* transport-private */

typedef struct es_image {
    es_image_ref ref;
    es_digest manifest_digest;   /* of the manifest bytes (docker-archive: of a synthesised OCI manifest) */
    char manifest_media_type[128];
    es_digest config_digest;
    int64_t config_size;
    json_t *config;              /* the parsed image config, owned */
    size_t n_layers;
    es_layer_info *layers;
    size_t n_history;
    es_history_entry *history;
    char os[32], arch[32], variant[32]; /* from the config (falls back to the index entry) */
    char **repo_tags;            /* docker-archive RepoTags / oci ref names; NULL-terminated, may be NULL */
    es_source *src;
    /* Added: the config exactly as stored (its digest is config_digest), so a copy can keep it
     * byte for byte. Owned, NUL-terminated. */
    char *config_raw;
    size_t config_raw_len;
} es_image;

typedef struct es_open_opts {
    const char *platform;      /* "os/arch[/variant]"; NULL = the host platform */
    const es_limits *limits;   /* NULL = es_limits_default() */
} es_open_opts;

/* Opens and validates index/manifest/config (digests and sizes of those small blobs checked).
 * Layers are not read. Errors: ES_EIO, ES_EFORMAT, ES_EDIGEST, ES_EUNSUPPORTED (no such
 * platform: the message lists the platforms the index has). */
int es_image_open(const char *ref, const es_open_opts *opts, es_image **out, es_error *err);
void es_image_close(es_image *img);

/* A verified stream of layer i's blob as stored (compressed). The stream fails with ES_EDIGEST
 * at end if size or digest mismatch, and as soon as it passes the declared size. */
int es_image_open_layer_blob(es_image *img, size_t i, es_reader **out, es_error *err);

/* Host platform as "linux/amd64", "linux/arm64/v8" style strings (os, arch, variant). */
void es_host_platform(char os[32], char arch[32], char variant[32]);

/* Config accessors (NULL / 0 when absent). Strings point into img->config. */
const char *es_config_user(const es_image *img);
const char *es_config_workdir(const es_image *img);
json_t *es_config_env(const es_image *img);        /* array of "K=V" (borrowed) */
json_t *es_config_entrypoint(const es_image *img); /* array (borrowed) */
json_t *es_config_cmd(const es_image *img);        /* array (borrowed) */
json_t *es_config_exposed_ports(const es_image *img); /* object (borrowed) */
json_t *es_config_labels(const es_image *img);     /* object (borrowed) */

#endif
